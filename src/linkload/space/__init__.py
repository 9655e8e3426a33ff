"""Spaces: where a module's bytes live and run.

A space reserves memory (optionally within a window of addresses), writes and reads it,
protects it (never writable and executable at once), flushes instruction caches, calls code,
and looks up the static module's symbols. ``native`` is this process; ``emulated`` (unicorn)
and ``image`` (an offline byte image) follow the same protocol. The linker also announces each
module it commits and withdraws it when it goes, for the debuggers and profilers of the code
the space runs (natively, GDB's JIT interface and perf's map; elsewhere nothing).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import UnsupportedError
from ..model import Module


class Protection(enum.Enum):
    """Page protections a space hands out. There is deliberately no read+write+execute."""

    NONE = "---"
    READ = "r--"
    READ_WRITE = "rw-"
    READ_EXECUTE = "r-x"


@dataclass(frozen=True)
class Window:
    """Where a reservation may go: ``low <= start`` and ``start + size <= high``; ``prefer``
    is the address the reservation should be closest to."""

    low: int
    high: int
    prefer: int


class Announcement(NamedTuple):
    """A module a space now holds, as debuggers and profilers are told of it: ``uid`` (the
    linker's), ``name``, its memory ``[base, base + size)``, the ``module`` itself (sections,
    symbols, debug sections kept aside), where each section was loaded
    (``section_addresses``; None: not loaded) and the run-time address of each symbol row
    (``symbol_addresses``: meaningful for the rows defined in a loaded section, common
    blocks and resolved names). (A named tuple: one is made at every link, and costs less.)"""

    uid: int
    name: str
    base: int
    size: int
    module: Module
    section_addresses: Sequence[int | None]
    symbol_addresses: np.ndarray


class Space:
    """The protocol every space implements (see the module docstring)."""

    page_size: int = 4096
    runs_code: bool = True  # False for a space that only holds bytes (no initialisers run)

    def reserve(self, size: int, align: int, window: Window | None = None) -> int:
        raise NotImplementedError

    def release(self, address: int, size: int) -> None:
        raise NotImplementedError

    def write(self, address: int, data) -> None:
        raise NotImplementedError

    def staging(self, address: int, size: int) -> np.ndarray:
        """A zeroed, writable uint8 buffer in which to build what goes to [address,
        address+size) of a fresh reservation, before it is written there. A space may hand
        out the reserved memory itself (nothing else can reach it yet): :meth:`write` of the
        buffer then has nothing to copy."""
        return np.zeros(size, np.uint8)

    def read(self, address: int, size: int) -> bytes:
        raise NotImplementedError

    def read_fields(self, addresses: np.ndarray, size: int, byteorder: str) -> np.ndarray:
        """The ``size``-byte fields at ``addresses``, as uint64."""
        raw = b"".join(self.read(int(a), size) for a in addresses)
        return np.frombuffer(raw, f"{byteorder}u{size}").astype(np.uint64)

    def write_fields(self, addresses: np.ndarray, size: int, byteorder: str,
                     values: np.ndarray) -> None:
        """Store ``size``-byte fields at ``addresses`` (protected pages are handled as by
        :meth:`write`)."""
        data = values.astype(f"{byteorder}u{size}").tobytes()
        for i, a in enumerate(addresses.tolist()):
            self.write(a, data[i * size:(i + 1) * size])

    def host_callback(self, function) -> int:
        """Address of code that calls the Python ``function(int) -> int``."""
        raise NotImplementedError

    def protect(self, address: int, size: int, protection: Protection) -> None:
        raise NotImplementedError

    def flush(self, address: int, size: int) -> None:
        """Make code written at [address, address+size) visible to instruction fetch."""

    def lookup(self, name: str) -> int | None:
        """Address of the static module's symbol ``name``, or None."""
        raise NotImplementedError

    def is_code(self, address: int) -> bool | None:
        """Whether the static module's symbol at ``address`` is a function (None: the space
        cannot tell)."""
        return None

    def call(self, address: int, *args: int, restype=None) -> int:
        """Call the function at ``address`` with integer arguments and return its result
        (``restype``: a ctypes type where the space runs native code; elsewhere the CPU's
        calling convention decides)."""
        raise NotImplementedError

    def start(self, address: int, args: list[int] | tuple[int, ...] = (), *,
              registers: dict[str, int] | None = None,
              stack: tuple[int, int] | None = None) -> int:
        """Run a program from ``address`` (a binfmt's exec): ``registers`` set first (a PIC
        base), on its own ``stack`` ``[low, high)``; returns its exit status."""
        raise UnsupportedError(f"{type(self).__name__} does not start programs; use call()")

    def preferred_window(self, purpose: str) -> Window | None:
        """Where code executed in place (``"code"``) or a program's data (``"data"``) should
        go in this space; None: anywhere."""
        return None

    def function(self, address: int, restype, *argtypes):
        """A ctypes callable for the function at ``address`` (spaces that run native code)."""
        raise UnsupportedError(f"{type(self).__name__} cannot make ctypes functions; use call()")

    def register_frames(self, address: int) -> None:
        """Hand an ``.eh_frame`` at ``address`` to the unwinder of the code the space runs
        (natively, libgcc's); a space without one ignores it."""

    def deregister_frames(self, address: int) -> None:
        """Take back what :meth:`register_frames` handed over."""

    def announce(self, module: Announcement) -> None:
        """Tell the debuggers and profilers of the code the space runs about a module just
        committed (before its initialisers run); a space without any ignores it."""

    def withdraw(self, uid: int) -> None:
        """Take back what :meth:`announce` told of module ``uid``, before its memory goes."""
