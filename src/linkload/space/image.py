"""The image space: memory regions held as byte arrays, offline.

Modules link into it as into any space (placed, relocated, veneered, protected), and the
bytes are then read back: for tools that place code without running it (the locator, a build
that writes a ROM image), and for CPUs that nothing here runs. Nothing executes in it:
:meth:`ImageSpace.call` and :meth:`ImageSpace.host_callback` refuse.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..arch.fields import gather, scatter
from ..errors import LinkError, UnsupportedError
from . import Protection, Space, Window
from .regions import Region, RegionMemory


class ImageSpace(Space):
    """Memory ``regions`` (``(base, size, name)``, whole pages) as zero-filled byte arrays;
    ``symbols`` names the static program's addresses (``{name: address}``)."""

    runs_code = False

    def __init__(self, regions: Sequence[tuple[int, int, str]], *,
                 symbols: dict[str, int] | None = None, page_size: int = 4096) -> None:
        self.page_size = page_size
        self.memory = RegionMemory(regions, page_size)
        self.symbols = dict(symbols or {})
        self._bytes = {r.base: np.zeros(r.size, np.uint8) for r in self.memory.regions}
        self._pages: dict[int, Protection] = {}

    # -- memory ------------------------------------------------------------------------------
    @property
    def regions(self) -> list[Region]:
        return self.memory.regions

    def region_bytes(self, name: str) -> bytes:
        """The whole contents of region ``name``."""
        return self._bytes[self.memory.region(name).base].tobytes()

    def _view(self, address: int, size: int) -> np.ndarray:
        """The bytes of [address, address+size), which must lie in one region."""
        self.memory.check(address, size)
        region = self.memory.region_of(address)
        start = address - region.base
        return self._bytes[region.base][start:start + size]

    def reserve(self, size: int, align: int, window: Window | None = None, *,
                region: str | None = None, address: int | None = None) -> int:
        """The lowest free place inside ``window`` (and ``region``), or exactly ``address``;
        it reads as zeros."""
        start = self.memory.reserve(size, align, window, region=region, address=address)
        self._view(start, max(int(size), 1))[:] = 0
        return start

    def release(self, address: int, size: int) -> None:
        held = self.memory.release(address)
        for page in range(address - address % self.page_size, address + held, self.page_size):
            self._pages.pop(page, None)

    def staging(self, address: int, size: int) -> np.ndarray:
        """The reserved bytes themselves: nothing can see them before the linker commits."""
        return self._view(address, size)

    def write(self, address: int, data) -> None:
        raw = data.view(np.uint8) if isinstance(data, np.ndarray) else np.frombuffer(bytes(data), np.uint8)
        if not len(raw):
            return
        target = self._view(address, len(raw))
        if target.ctypes.data != raw.ctypes.data:  # (a staging buffer is already in place)
            target[:] = raw

    def read(self, address: int, size: int) -> bytes:
        return self._view(address, size).tobytes()

    def read_fields(self, addresses: np.ndarray, size: int, byteorder: str) -> np.ndarray:
        out = np.zeros(len(addresses), np.uint64)
        for base, rows in self._by_region(addresses, size):
            out[rows] = gather(self._bytes[base], addresses[rows] - base, size, byteorder)
        return out

    def write_fields(self, addresses: np.ndarray, size: int, byteorder: str,
                     values: np.ndarray) -> None:
        for base, rows in self._by_region(addresses, size):
            scatter(self._bytes[base], addresses[rows] - base, size, byteorder, values[rows])

    def _by_region(self, addresses: np.ndarray, size: int):
        """(region base, indices of ``addresses``) per region the fields lie in."""
        addresses = np.asarray(addresses, np.int64)
        placed = np.zeros(len(addresses), bool)
        for region in self.memory.regions:
            rows = np.flatnonzero((addresses >= region.base) & (addresses + size <= region.end))
            placed[rows] = True
            if len(rows):
                yield region.base, rows
        if not placed.all():
            raise LinkError(f"field at {int(addresses[~placed][0]):#x} is not memory of this space")

    def protect(self, address: int, size: int, protection: Protection) -> None:
        """Record ``protection`` for the pages of [address, address+size) (see
        :meth:`protection`): the image keeps them for whoever writes it out."""
        self.memory.check(address, size)
        for page in range(address - address % self.page_size, address + size, self.page_size):
            self._pages[page] = protection

    def protection(self, address: int) -> Protection:
        return self._pages.get(address - address % self.page_size, Protection.READ_WRITE)

    # -- names and code ----------------------------------------------------------------------
    def lookup(self, name: str) -> int | None:
        return self.symbols.get(name)

    def call(self, address: int, *args: int, restype=None) -> int:
        raise UnsupportedError(f"nothing runs in an image space (a call of {address:#x})")

    def host_callback(self, function) -> int:
        raise UnsupportedError("nothing runs in an image space: a call to a name no module "
                               "defines cannot wait for one here")
