"""A module linked into a space, and the table of its references that can be rebound."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..columns import distinct
from ..errors import LinkError, UndefinedSymbolError
from ..model import ABS, Module
from ..space import Space
from .layout import Layout

# References of a module to names another module defines, or nobody yet: one row per field
# (and per GOT slot), so that linking, unlinking or reloading that other module can patch them.
REF_DTYPE = np.dtype([
    ("site", "<i8"),  # address of the field
    ("kind", "<u4"),  # relocation kind
    ("row", "<i4"),  # symbol row in the referencing module (its name)
    ("addend", "<i8"),
    ("bound", "<i4"),  # uid of the module it points into, or UNRESOLVED
], align=True)
UNRESOLVED = -1  # ``bound`` of a reference nobody defines yet (it reaches a fallback)
NO_REFS = np.zeros(0, REF_DTYPE)


@dataclass(frozen=True)
class Fallbacks:
    """Where a module's references to names nobody defines (yet, or any more) point.

    A call goes to the module's own ``_unresolved`` if it has one (the REL convention), else
    to the name's unresolved stub (``stubs``: symbol row -> stub), which reaches the
    unresolved handler; the address of a function is that same place, so a call through it
    reaches the handler too. A reference to data (a row of ``data_rows``) points into the
    guard area (``guard``), where any access faults. A weak reference is 0, and so is every
    data reference of a module whose references wait at 0 (``zero_data``: a REL, as OSLink
    leaves them)."""

    unresolved: int | None = None
    stubs: Mapping[int, int] = field(default_factory=dict)
    guard: int | None = None
    data_rows: frozenset[int] = frozenset()
    zero_data: bool = False

    def call(self, row: int) -> int:
        """Where a call to the name of symbol ``row`` goes (0: nowhere, a weak name that is
        never called)."""
        return self.unresolved if self.unresolved is not None else self.stubs.get(row, 0)

    def calls(self, rows: np.ndarray) -> np.ndarray:
        return np.array([self.call(r) for r in rows.tolist()], np.int64)

    def values(self, rows: np.ndarray, weak: np.ndarray) -> np.ndarray:
        """The address each of ``rows`` stands for while nobody defines it (``weak``: per
        row, a weak reference)."""
        if self.zero_data:
            return np.zeros(len(rows), np.int64)
        out = self.calls(rows)
        out[weak] = 0
        if self.guard is not None:  # (only weak data references: no guard, 0 says it all)
            data = np.array([r in self.data_rows for r in rows.tolist()], bool)
            out[data & ~weak] = self.guard
        return out


@dataclass(eq=False)
class LoadedModule:
    """A module linked into a space. Returned by :meth:`Linker.link`.

    ``refs`` (:data:`REF_DTYPE`) are its references that another module's coming or going
    rebinds; ``veneer_slots`` maps (symbol row, addend) to the address of that pair's veneer;
    ``fallbacks`` says where calls to names nobody defines go.
    """

    name: str
    module: Module
    space: Space
    base: int
    size: int
    layout: Layout
    section_addresses: list[int | None]
    uid: int = 0
    refs: np.ndarray = field(default_factory=lambda: NO_REFS.copy())
    veneer_slots: dict[tuple[int, int], int] = field(default_factory=dict)
    fallbacks: Fallbacks = Fallbacks()
    got: int = 0  # address of its GOT
    fini: list[int] = field(default_factory=list)
    eh_frames: list[int] = field(default_factory=list)
    image: np.ndarray | None = field(default=None, repr=False)  # the built image, until written
    linked: bool = True
    export_table: Callable[[], dict[str, int]] | None = None  # computes exports on demand
    bss_range: tuple[int, int] | None = None  # a block module's bss (address, size)
    _exports: dict[str, int] | None = None

    @property
    def exports(self) -> dict[str, int]:
        """Names this module defines for others, with their addresses."""
        if self._exports is None:
            self._exports = self.export_table() if self.export_table else {}
            self.export_table = None  # the link behind it can go
        return self._exports

    @property
    def dso_handle(self) -> int:
        """The address of the module's own ``__dso_handle``."""
        return self.base + self.layout.dso_handle_offset

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
        """A ctypes callable for a function of this module (native spaces): ``function("add",
        c_int, c_int, c_int)`` (restype first, then the argument types)."""
        return self.space.function(self._resolve(name_or_address), restype, *argtypes)

    def call(self, name_or_address: str | int, *args: int, restype=ctypes.c_int) -> int:
        """Call a function of this module with integer arguments and return its result.

        Natively the arguments are C longs and the result a C ``int`` unless ``restype`` says
        otherwise; in an emulated space the CPU's calling convention decides (PowerPC: r3..r10
        in, r3 out)."""
        return self.space.call(self._resolve(name_or_address), *args, restype=restype)

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
        """Names this module refers to that no linked module defines: its calls to them reach
        ``_unresolved`` (or the handler), its data references the guard area."""
        return list(self.waiting())

    def waiting(self) -> dict[str, str]:
        """The names of :meth:`pending`, each with what it is taken for: ``"function"`` (a
        call or an address that reaches the unresolved handler until defined) or ``"data"``
        (references that fault until defined)."""
        rows = distinct(self.refs["row"][self.refs["bound"] == UNRESOLVED]).tolist()
        kinds = ["data" if r in self.fallbacks.data_rows else "function" for r in rows]
        return dict(zip(self.module.symbol_names(np.array(rows, np.int64)), kinds, strict=True))

    def defines_function(self, name: str) -> bool:
        """True if this module's exported ``name`` is code."""
        return self.module.defines_code(name)

    def __repr__(self) -> str:
        state = "" if self.linked else ", unlinked"
        return f"<LoadedModule {self.name!r} at {self.base:#x}, {self.size:#x} bytes{state}>"
