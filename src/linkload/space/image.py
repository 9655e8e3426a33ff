"""The image space: memory regions held as byte arrays, offline.

Modules link into it as into any space (placed, relocated, veneered, protected), and the
bytes are then read back: for tools that place code without running it (the locator, a build
that writes a ROM image), and for CPUs that nothing here runs. Nothing executes in it:
:meth:`ImageSpace.call` and :meth:`ImageSpace.host_callback` refuse.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from ..arch.fields import gather, scatter
from ..errors import LinkError, PlacementError, UnsupportedError
from . import Protection, Space, Window
from .regions import Region, RegionMemory


class ImageSpace(Space):
    """Memory ``regions`` (``(base, size, name)``, whole pages) whose reserved parts are
    zero-filled byte arrays; ``symbols`` names the static program's addresses (``{name:
    address}``).

    Only what is reserved takes memory: a board's 4 GiB address window or a 1 TiB region a
    configuration declares costs nothing until something is placed in it. Memory nothing
    reserved reads as zeros and cannot be written."""

    runs_code = False

    def __init__(self, regions: Sequence[tuple[int, int, str]], *,
                 symbols: dict[str, int] | None = None, page_size: int = 4096) -> None:
        self.page_size = page_size
        self.memory = RegionMemory(regions, page_size)
        self.symbols = dict(symbols or {})
        self._starts: list[int] = []  # the reservations' addresses, ascending
        self._blocks: dict[int, np.ndarray] = {}  # reservation address -> its bytes
        self._pages: dict[int, Protection] = {}

    # -- memory ------------------------------------------------------------------------------
    @property
    def regions(self) -> list[Region]:
        return self.memory.regions

    def _block_of(self, address: int, size: int) -> tuple[int, np.ndarray] | None:
        """(address, bytes) of the reservation holding all of [address, address+size)."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0:
            return None
        start = self._starts[i]
        block = self._blocks[start]
        return (start, block) if address + size <= start + len(block) else None

    def _view(self, address: int, size: int) -> np.ndarray:
        """The bytes of [address, address+size), which must lie in one reservation."""
        self.memory.check(address, size)
        found = self._block_of(address, size)
        if found is None:
            raise LinkError(f"[{address:#x}, {address + size:#x}) is not memory reserved in "
                            "this space")
        start, block = found
        return block[address - start:address - start + size]

    def reserve(self, size: int, align: int, window: Window | None = None, *,
                region: str | None = None, address: int | None = None) -> int:
        """The lowest free place inside ``window`` (and ``region``), or exactly ``address``;
        it reads as zeros."""
        start = self.memory.reserve(size, align, window, region=region, address=address)
        try:
            block = np.zeros(max(int(size), 1), np.uint8)
        except MemoryError:
            self.memory.release(start)
            raise PlacementError(f"{size:#x} bytes at {start:#x} do not fit in this machine's "
                                 "memory") from None
        bisect.insort(self._starts, start)
        self._blocks[start] = block
        return start

    def release(self, address: int, size: int) -> None:
        held = self.memory.release(address)
        del self._blocks[address]
        self._starts.remove(address)
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
        """The bytes of [address, address+size) (in one region): what reservations hold,
        zeros elsewhere."""
        self.memory.check(address, size)
        found = self._block_of(address, size)
        if found is not None:
            start, block = found
            return block[address - start:address - start + size].tobytes()
        out = bytearray(size)
        i = max(bisect.bisect_right(self._starts, address) - 1, 0)
        for start in self._starts[i:]:
            if start >= address + size:
                break
            block = self._blocks[start]
            lo, hi = max(start, address), min(start + len(block), address + size)
            if lo < hi:
                out[lo - address:hi - address] = block[lo - start:hi - start].tobytes()
        return bytes(out)

    def read_fields(self, addresses: np.ndarray, size: int, byteorder: str) -> np.ndarray:
        out = np.zeros(len(addresses), np.uint64)
        for start, rows in self._by_block(addresses, size):
            out[rows] = gather(self._blocks[start], addresses[rows] - start, size, byteorder)
        return out

    def write_fields(self, addresses: np.ndarray, size: int, byteorder: str,
                     values: np.ndarray) -> None:
        for start, rows in self._by_block(addresses, size):
            scatter(self._blocks[start], addresses[rows] - start, size, byteorder, values[rows])

    def _by_block(self, addresses: np.ndarray, size: int):
        """(reservation address, indices of ``addresses``) per reservation the fields lie in."""
        addresses = np.asarray(addresses, np.int64)
        if not len(addresses):
            return
        starts = np.array(self._starts, np.int64)
        which = np.searchsorted(starts, addresses, side="right") - 1
        ends = np.array([s + len(self._blocks[s]) for s in self._starts], np.int64)
        inside = (which >= 0) & (addresses + size <= ends[np.maximum(which, 0)]) \
            if len(starts) else np.zeros(len(addresses), bool)
        if not inside.all():
            raise LinkError(f"field at {int(addresses[~inside][0]):#x} is not memory reserved "
                            "in this space")
        for k in np.unique(which).tolist():
            yield self._starts[k], np.flatnonzero(which == k)

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
