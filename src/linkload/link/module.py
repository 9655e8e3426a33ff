"""A module linked into a space, and the table of its references that can be rebound."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import LinkError, UndefinedSymbolError
from ..model import ABS, Module
from .layout import Layout

if TYPE_CHECKING:
    from .linker import Linker

# References of a module to names another module defines, or nobody yet: one row per field
# (and per GOT slot), so that linking, unlinking or reloading that other module can patch them.
REF_DTYPE = np.dtype([
    ("site", "<i8"),  # address of the field
    ("kind", "<u4"),  # relocation kind
    ("row", "<i4"),  # symbol row in the referencing module (its name)
    ("addend", "<i8"),
    ("bound", "<i4"),  # uid of the module it points into, or UNRESOLVED
], align=True)
UNRESOLVED = -1


@dataclass(eq=False)
class LoadedModule:
    """A module linked into a space. Returned by :meth:`Linker.link`."""

    name: str
    module: Module
    linker: Linker
    base: int
    size: int
    layout: Layout
    section_addresses: list[int | None]
    _exports: dict[str, int] | None
    uid: int = 0
    refs: np.ndarray = field(default_factory=lambda: np.zeros(0, REF_DTYPE))
    veneer_slots: dict[int, int] = field(default_factory=dict)  # symbol row -> veneer address
    stub_slots: dict[int, int] = field(default_factory=dict)  # symbol row -> unresolved stub
    unresolved: int | None = None  # address of the module's own _unresolved
    got: int = 0
    fini: list[int] = field(default_factory=list)
    eh_frames: list[int] = field(default_factory=list)
    image: np.ndarray | None = None  # the built image, until it is written
    linked: bool = True
    export_table: Callable[[], dict[str, int]] | None = None  # computes exports on demand
    bss_range: tuple[int, int] | None = None  # an image module's bss (address, size)

    @property
    def exports(self) -> dict[str, int]:
        """Names this module defines for others, with their addresses."""
        if self._exports is None:
            self._exports = self.export_table() if self.export_table else {}
            self.export_table = None  # the job behind it can go
        return self._exports

    def address(self, name: str) -> int:
        """Address of the symbol ``name`` defined by this module (exported or local)."""
        if name in self.exports:
            return self.exports[name]
        row = self.module.find_symbol(name)
        if row is not None:
            sym = self.module.symbols[row]
            sec = int(sym["section"])
            if sec >= 0 and self.section_addresses[sec] is not None:
                return self.section_addresses[sec] + int(sym["value"])
            if sec == ABS:
                return int(sym["value"])
        raise UndefinedSymbolError(f"not defined in module {self.name!r}", symbol=name,
                                   file=self.module.file)

    def function(self, name_or_address: str | int, restype=ctypes.c_int, *argtypes):
        """A ctypes callable for a function of this module: ``function("add", c_int, c_int,
        c_int)`` (restype first, then the argument types)."""
        return self.linker.space.function(self._resolve(name_or_address), restype, *argtypes)

    def call(self, name_or_address: str | int, *args: int, restype=ctypes.c_int) -> int:
        """Call a function of this module with integer arguments and return its result.

        Natively the arguments are C longs and the result a C ``int`` unless ``restype`` says
        otherwise; in an emulated space the CPU's calling convention decides (PowerPC: r3..r10
        in, r3 out)."""
        space = self.linker.space
        if not hasattr(space, "function"):
            return space.call(self._resolve(name_or_address), *args)
        fn = self.function(name_or_address, restype, *([ctypes.c_long] * len(args)))
        return fn(*args)

    def _resolve(self, name_or_address: str | int) -> int:
        if isinstance(name_or_address, int):
            return name_or_address
        return self.address(name_or_address)

    def section_address(self, name: str) -> int:
        for sec, addr in zip(self.module.sections, self.section_addresses, strict=True):
            if sec.name == name and addr is not None:
                return addr
        raise LinkError(f"module {self.name!r} has no loaded section {name}")

    def pending(self) -> list[str]:
        """Names this module calls that no linked module defines (they reach _unresolved)."""
        rows = np.unique(self.refs["row"][self.refs["bound"] == UNRESOLVED])
        return self.module.symbol_names(rows)

    def __repr__(self) -> str:
        state = "" if self.linked else ", unlinked"
        return f"<LoadedModule {self.name!r} at {self.base:#x}, {self.size:#x} bytes{state}>"
