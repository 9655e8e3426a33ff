"""The format- and CPU-neutral model of a relocatable module.

A :class:`Module` is what every reader produces and what the linker consumes: a handful of
:class:`Section` objects, and two bulk tables held as numpy structured arrays:

* ``symbols`` (:data:`SYMBOL_DTYPE`): every symbol, and at the same time the *target table* of
  the relocations. A row is a named symbol to resolve at link time (``section == UNDEF``), a
  place in one of this module's sections, an absolute address (``section == ABS``), a common
  block to allocate (``section == COMMON``) or a section of another module (``module >= 0``,
  REL style).
* ``relocations`` (:data:`RELOC_DTYPE`): one row per field to patch. The module keeps them
  as :class:`RelocationRun` columns, one run per patched section (often views of the file's
  own table), and builds the flat table only when it is asked for.

Names live in one bytes string table and are decoded only when asked for.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .errors import LinkError


class SectionKind(enum.IntEnum):
    """What a section holds, which decides where it is placed and how it is protected."""

    TEXT = 1  # code: read + execute
    RODATA = 2  # read-only after relocation
    DATA = 3  # read + write, initialised
    BSS = 4  # read + write, zero-filled, no bytes in the file
    INIT = 5  # array of initialiser pointers (.init_array, .ctors)
    FINI = 6  # array of finaliser pointers (.fini_array, .dtors)
    DEBUG = 7  # read by debuggers, never loaded (DWARF .debug_*): kept apart, in Module.debug


# Special values of the symbol table's ``section`` column.
UNDEF = -1  # resolved by name at link time
ABS = -2  # ``value`` is an absolute address
COMMON = -3  # a common block: ``size`` bytes aligned to ``value``, allocated as bss
NOT_LOADED = -4  # defined in a section that is not loaded (debug info, TLS, a dropped group)

# Special values of ``Module.symbol_sections`` (a linked program's symbols, for the locator).
FIXED = -1  # an absolute address that stays where it is (a device register, a constant)
IMAGE_ADDRESS = -2  # the target of a fixup that names no symbol (a PE base relocation, an ELF
#                     RELATIVE relocation): S is 0 and the addend is an address of the image
IMAGE_ADDRESS_PART = -3  # the same, but the field holds only part of the address (a PE HIGH
#                          or LOW relocation): such a fixup moves with the whole image only

# How a linked program may move, as its fixups allow (``Module.moves``): its sections apart
# (every reference between sections is a fixup: ELF --emit-relocs), apart except its code
# sections, which may call one another without a fixup (a PE32 image for i386, whose data
# references are absolute), only as a whole (its fixups list absolute addresses only, and
# code reaches data PC-relatively: a PIE's RELATIVE relocations, a PE32+ image), or not at all
# (no fixups: an ELF executable linked without --emit-relocs).
MOVES_APART, MOVES_CODE_TOGETHER, MOVES_WHOLE, MOVES_NOT = "apart", "code together", "whole", "not"

# Symbol bindings and types (the ELF numbering, which every other format maps onto).
LOCAL, GLOBAL, WEAK = 0, 1, 2
NOTYPE, OBJECT, FUNC, SECTION_SYMBOL, FILE_SYMBOL = 0, 1, 2, 3, 4
GNU_IFUNC = 10

SYMBOL_DTYPE = np.dtype(
    [
        ("name", "<u4"),  # offset in Module.strtab; 0 is the empty name
        ("value", "<u8"),  # offset in its section, absolute address, or common alignment
        ("size", "<u8"),
        ("section", "<i4"),  # index in Module.sections, or UNDEF / ABS / COMMON
        ("module", "<i4"),  # -1, or the id of another module whose section `section` is meant
        ("bind", "u1"),
        ("type", "u1"),
        ("visibility", "u1"),
    ],
    align=True,  # aligned columns are faster to compute with
)

RELOC_DTYPE = np.dtype(
    [
        ("section", "<i4"),  # index in Module.sections of the section patched
        ("offset", "<u8"),  # offset of the field in that section
        ("kind", "<u4"),  # the CPU's relocation number (arch/<cpu>.py knows it)
        ("target", "<u4"),  # row of Module.symbols
        ("addend", "<i8"),
        ("implicit", "u1"),  # 1: the addend is stored in the field itself (ELF REL tables)
    ],
    align=True,
)


@dataclass(slots=True, eq=False)
class Section:
    """One section of a module.

    ``data`` is ``None`` for bss. ``index`` is the section's number in its file (kept for
    messages and for formats whose run-time tables use it). ``group`` is the COMDAT signature
    of the group the section belongs to, if any: only the first copy of a group is linked.
    Initialiser arrays run in ascending ``priority``; ``reverse`` says that the entries of this
    array run last to first (``.ctors``, ``.fini_array``).
    """

    name: str
    kind: SectionKind
    size: int
    align: int = 1
    data: bytes | memoryview | None = None
    index: int = 0
    group: str | None = None
    priority: int = 65536
    reverse: bool = False
    file: str = ""
    address: int | None = None  # fixed address, for sections of executables
    origin: int = 0  # which of the objects combined into the module it came from
    image_offset: int | None = None  # where it sits in a OneBlock load's image (REL: its file offset)

    @property
    def executable(self) -> bool:
        return self.kind == SectionKind.TEXT

    def taken_from(self, origin: int) -> Section:
        """This section as the one from object ``origin`` of a combined module."""
        return Section(self.name, self.kind, self.size, self.align, self.data, self.index,
                       self.group, self.priority, self.reverse, self.file, self.address, origin,
                       self.image_offset)

    @property
    def writable(self) -> bool:
        return self.kind in (SectionKind.DATA, SectionKind.BSS)


@dataclass(slots=True, eq=False)
class Segment:
    """A loadable piece of an executable at a fixed address (ELF PT_LOAD, a DOL section)."""

    address: int
    size: int
    data: bytes | memoryview
    readable: bool = True
    writable: bool = False
    executable: bool = False


@dataclass(frozen=True, eq=False)
class RelocationRun:
    """Consecutive relocations that patch one section: what one ELF relocation section holds.

    The columns are parallel arrays of one length. A reader may hand out read-only, strided
    views of the file's own table: a large table is then read without being copied.
    ``implicit``: the addends are stored in the fields themselves (ELF REL tables).
    """

    section: int
    offset: np.ndarray
    kind: np.ndarray
    target: np.ndarray
    addend: np.ndarray
    implicit: bool = False

    def __len__(self) -> int:
        return len(self.offset)


def relocation_table(runs: list[RelocationRun]) -> np.ndarray:
    """The runs as one flat :data:`RELOC_DTYPE` table."""
    out = np.empty(sum(len(r) for r in runs), RELOC_DTYPE)
    start = 0
    for run in runs:
        part = out[start:start + len(run)]
        part["section"] = run.section
        part["offset"] = run.offset
        part["kind"] = run.kind
        part["target"] = run.target
        part["addend"] = run.addend
        part["implicit"] = run.implicit
        start += len(run)
    return out


def relocation_runs(table: np.ndarray) -> list[RelocationRun]:
    """A flat table cut into runs where the section (or ``implicit``) changes; the runs'
    columns are views of the table."""
    if not len(table):
        return []
    section, implicit = table["section"], table["implicit"]
    cuts = np.flatnonzero((section[1:] != section[:-1]) | (implicit[1:] != implicit[:-1])) + 1
    bounds = [0, *cuts.tolist(), len(table)]
    return [RelocationRun(int(section[a]), table["offset"][a:b], table["kind"][a:b],
                          table["target"][a:b], table["addend"][a:b], bool(implicit[a]))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


class _Relocations:
    """``Module.relocations``: set to a flat table or to a list of runs; reads as the flat
    table, built from the runs on first use and then read-only (change relocations by
    setting the attribute). :attr:`Module.relocation_runs` gives the runs either way."""

    def __get__(self, module: Module | None, owner: type | None = None):
        if module is None:
            return ()  # the dataclass default: no relocations
        table = module.__dict__.get("_relocation_table")
        if table is None:
            table = relocation_table(module.__dict__["_relocation_runs"])
            table.flags.writeable = False
            module.__dict__["_relocation_table"] = table
        return table

    def __set__(self, module: Module, value: np.ndarray | list[RelocationRun] | tuple) -> None:
        if isinstance(value, np.ndarray):
            module.__dict__["_relocation_table"] = value
            module.__dict__["_relocation_runs"] = None
        else:
            module.__dict__["_relocation_table"] = None
            module.__dict__["_relocation_runs"] = list(value)


@dataclass(frozen=True)
class BySection:
    """How most modules load: each section is placed on its own, by its kind and alignment
    (object files)."""


@dataclass(frozen=True)
class OneBlock:
    """How a module loads that is one block, copied as is (a REL: the whole file, header
    included): each section sits at its ``image_offset`` in ``image``, and the bss is placed
    apart (after the block, at an address the caller gives, or in the block's reusable tail).

    ``align`` and ``bss_align``: the block's and the bss's addresses must be multiples of
    them. ``reusable_tail``: the offset from which the block's bytes are no longer needed
    once it is linked (the relocation lists of a REL, from its ``fixSize``, rounded as
    ``OSLinkFixed`` rounds it), so that linking it "fixed" puts the bss there; None: the
    format does not say.
    """

    image: bytes | memoryview
    align: int = 1
    bss_align: int = 1
    reusable_tail: int | None = None


@dataclass(frozen=True)
class SharedImage:
    """How a module loads whose read-only part is executed in place and shared by all its
    instances (NXFLAT's I-space, mapped from a ROMFS in flash): the sections with an
    ``image_offset`` lie at that offset of ``image``, which is placed once per ``key`` (the
    file's identity), read+execute, never written, and freed when its last instance goes;
    every other section (data, bss) is each instance's own and linked as usual. No
    relocation may patch the shared sections. ``align``: the image's alignment."""

    image: bytes | memoryview
    key: str
    align: int = 4


@dataclass(frozen=True)
class Startup:
    """How a program module starts (a binfmt's exec): at symbol row ``entry``, on a stack of
    ``stack_size`` bytes of its own, with ``base_register`` (if any) holding the address of
    symbol row ``base`` all the while it runs (a PIC base: NXFLAT's r10 or r9, pointing at
    its D-space).

    ``callbacks``: offsets from ``base`` of words that hold pointers to the program's own
    functions, which code outside the program may call (a ``qsort`` comparator): each
    instance gets trampolines that set ``base_register`` before entering them, and the words
    point at those."""

    entry: int
    stack_size: int
    base_register: str | None = None
    base: int = 0
    callbacks: tuple[int, ...] = ()


#: How a module loads, as its reader describes it (the linker never reads a file's header).
Loading = BySection | OneBlock | SharedImage
BY_SECTION = BySection()


@dataclass(frozen=True, eq=False)
class DebugSections:
    """The sections of one object file that debuggers read and the linker never loads (DWARF
    ``.debug_*``), with their relocations.

    ``relocation_runs``: ``section`` indexes ``sections``, ``target`` is a symbol row of the
    object (add :attr:`DebugInfo.first_symbol` for the module's row). ``symbol_sections``:
    per symbol row of the object, the index in ``sections`` of the section it is defined in
    (a debug section's own section symbol, which the others' relocations name), or -1."""

    sections: list[Section]
    relocation_runs: list[RelocationRun]
    symbol_sections: np.ndarray


@dataclass(frozen=True, eq=False)
class DebugInfo:
    """The debug sections of one of a module's object files, read when asked for: most links
    never need them, so a reader keeps them aside unread (``load()`` reads and checks them).
    ``origin``: which of the module's objects (its sections' :attr:`Section.origin`);
    ``first_symbol``: where that object's symbol rows start in the module's table."""

    load: Callable[[], DebugSections]
    origin: int = 0
    first_symbol: int = 0


@dataclass(eq=False)
class Module:
    """A relocatable module, independent of the file it came from.

    ``machine`` names the CPU (``"x86_64"``, ``"i386"``, ``"ppc"``, ``"arm"``, ``"aarch64"``);
    ``byteorder`` is ``"<"`` or ``">"``. ``kind`` is ``"relocatable"`` for object files,
    ``"rel"`` for REL modules, ``"executable"`` or ``"shared"`` for static modules, whose
    defined symbols are ``ABS`` rows holding their addresses (relative to the load base for
    ``"shared"``). ``loading`` says how it loads (:data:`Loading`).
    """

    name: str
    machine: str
    byteorder: str = "<"
    bits: int = 64
    sections: list[Section] = field(default_factory=list)
    symbols: np.ndarray = field(default_factory=lambda: np.zeros(0, SYMBOL_DTYPE))
    strtab: bytes = b"\0"
    relocations: np.ndarray = _Relocations()  # type: ignore[assignment]
    file: str = ""
    kind: str = "relocatable"
    segments: list[Segment] = field(default_factory=list)
    entry: int = 0
    loading: Loading = BY_SECTION
    # References to names nobody defines yet may be data too (REL: patched when the module
    # defining them is linked, 0 until then), not only calls.
    lazy_data: bool = False
    # Where the module's name lies, as (offset, size), in a table of module names kept apart
    # (a REL's nameOffset and nameSize, in makerel's .str file).
    name_in_table: tuple[int, int] | None = None
    # The file's own header values, for its format's writer and dump only (the linker never
    # reads them): a formats.rel.RelInfo, a formats.dol.DolHeader, or None.
    format_info: object | None = None
    # The debug sections of its object files, for the symbol files debuggers are given (one
    # entry per object that has any).
    debug: tuple[DebugInfo, ...] = ()
    # A program: how it starts (binfmt's exec), or None.
    startup: Startup | None = None
    # Every name it refers to must be defined when it loads (NXFLAT: the loader's ENOENT): a
    # name nobody defines is an error, not a reference that waits for a module linked later.
    binds_now: bool = False
    # For a linked program read to be located (``formats.read_program``): per symbol row, the
    # index in ``sections`` of the section the symbol belongs to (its ``ABS`` value is an
    # address in that section, or the section's end), or FIXED, or IMAGE_ADDRESS; the
    # relocations are then the program's fixups (S+A is the target's address as linked).
    symbol_sections: np.ndarray | None = None
    moves: str = MOVES_WHOLE  # how such a program may move (MOVES_*)

    @property
    def relocation_runs(self) -> list[RelocationRun]:
        """The relocations as runs, one per patched section (see :class:`RelocationRun`)."""
        runs = self.__dict__["_relocation_runs"]
        if runs is None:
            runs = self.__dict__["_relocation_runs"] = relocation_runs(self.relocations)
        return runs

    @cached_property
    def _string_pieces(self) -> tuple[list[str], np.ndarray]:
        """The string table decoded and split at its NULs (both in C, once), and the offset
        where each piece starts."""
        pieces = self.strtab.decode("utf-8", "surrogateescape").split("\0")
        nuls = np.flatnonzero(np.frombuffer(self.strtab, np.uint8) == 0)
        starts = np.concatenate([[0], nuls + 1])[:len(pieces)]
        return pieces, starts

    def symbol_names(self, rows: np.ndarray) -> list[str]:
        """Names of many symbol rows at once (decoded only for those rows)."""
        offsets = self.symbols["name"][rows].astype(np.int64)
        if len(offsets) < 64 and "_string_pieces" not in self.__dict__:
            return [_c_string(self.strtab, o) for o in offsets.tolist()]  # a few: no table
        pieces, starts = self._string_pieces
        slot = np.minimum(np.searchsorted(starts, offsets), len(starts) - 1)
        exact = starts[slot] == offsets
        out = [pieces[i] for i in slot.tolist()]
        for i in np.flatnonzero(~exact).tolist():  # a name sharing another's tail
            out[i] = _c_string(self.strtab, int(offsets[i]))
        return out

    @cached_property
    def names(self) -> list[str]:
        """The name of every symbol row."""
        return self.symbol_names(np.arange(len(self.symbols)))

    def symbol_name(self, index: int) -> str:
        """The name of symbol row ``index``."""
        if "names" in self.__dict__:
            return self.names[index]
        return self.symbol_names(np.array([index]))[0]

    def has_name(self, name: str) -> bool:
        """Cheap test: could some symbol be called ``name``? (False means certainly not.)"""
        # A name may also be the tail of another: tails are shared in string tables.
        return name.encode("utf-8", "surrogateescape") + b"\0" in self.strtab

    def exported(self) -> np.ndarray:
        """Rows of the symbols this module defines for others (global or weak, named)."""
        s = self.symbols
        mask = (s["bind"] != LOCAL) & (s["section"] != UNDEF) & (s["name"] != 0)
        mask &= (s["section"] != NOT_LOADED)
        mask &= (s["type"] != SECTION_SYMBOL) & (s["type"] != FILE_SYMBOL)
        return np.flatnonzero(mask)

    @cached_property
    def _exports(self) -> dict[str, int]:
        rows = self.exported()
        names = self.symbol_names(rows)
        # The common case, every name defined once, is one dict built in C.
        out = dict(zip(names, rows.tolist(), strict=True))
        if len(out) == len(names):
            return out
        # A weak definition or a common block yields to a global definition; among equals
        # the first stays.
        weak = ((self.symbols["bind"][rows] == WEAK) | (self.symbols["section"][rows] == COMMON)).tolist()
        out.clear()
        out_weak: dict[str, bool] = {}
        for name, row, is_weak in zip(names, rows.tolist(), weak, strict=True):
            if name not in out or (out_weak[name] and not is_weak):
                out[name] = row
                out_weak[name] = is_weak
        return out

    def exports(self) -> dict[str, int]:
        """Exported names mapped to their symbol rows; a global definition beats a weak one."""
        return self._exports

    def definitions_of(self, names: list[str]) -> dict[str, int]:
        """The exported rows defining ``names`` (those defined), as :meth:`exports` would give,
        without decoding the whole table when only a few names are asked for."""
        if len(names) > 64 or "_exports" in self.__dict__:
            table = self.exports()
            return {n: table[n] for n in names if n in table}
        exported, offsets = self._exported_by_name_offset
        weak = (self.symbols["bind"] == WEAK) | (self.symbols["section"] == COMMON)
        out = {}
        for name in names:
            key = name.encode("utf-8", "surrogateescape") + b"\0"
            rows = []
            at = self.strtab.find(key)
            while at >= 0:  # every occurrence: a name may be the tail of another
                lo, hi = np.searchsorted(offsets, [at, at + 1])
                rows += exported[lo:hi].tolist()
                at = self.strtab.find(key, at + 1)
            if rows:
                rows.sort()  # file order: the first definition of a kind wins
                strong = [r for r in rows if not weak[r]]
                out[name] = (strong or rows)[0]
        return out

    @cached_property
    def _exported_by_name_offset(self) -> tuple[np.ndarray, np.ndarray]:
        """Exported rows sorted by the string table offset of their names, and the offsets."""
        exported = self.exported()
        offsets = self.symbols["name"][exported].astype(np.int64)
        order = np.argsort(offsets, kind="stable")
        return exported[order], offsets[order]

    def defines_code(self, name: str) -> bool:
        """True if this module exports ``name`` as a function."""
        row = self.exports().get(name)
        return row is not None and int(self.symbols["type"][row]) in (FUNC, GNU_IFUNC)

    def find_symbol(self, name: str) -> int | None:
        """Row of the defining symbol called ``name`` (global first, then any), or None."""
        if not self.has_name(name):
            return None
        row = self.exports().get(name)
        if row is not None:
            return row
        section = self.symbols["section"]
        for i, candidate in enumerate(self.names):
            if candidate == name and section[i] != UNDEF:
                return i
        return None

    def iter_symbols(self) -> Iterator[tuple[str, np.void]]:
        """(name, row) pairs, for tools that print symbol tables."""
        yield from zip(self.names, self.symbols, strict=True)

    def section_named(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)


def _c_string(table: bytes, start: int) -> str:
    """The NUL-terminated name at ``start``, decoded as :meth:`Module.symbol_names` decodes a
    whole table (bytes that are not UTF-8 kept, so that a name is the same however it is
    looked up, and encodes back to its bytes)."""
    end = table.find(b"\0", start)
    return table[start:end if end >= 0 else len(table)].decode("utf-8", "surrogateescape")


def merge(modules: list[Module], name: str) -> Module:
    """Combine several modules of one CPU into one, as a static linker's input list would be.

    Sections, symbols and relocations are concatenated with their indices renumbered; names
    are not resolved here (the linker resolves an undefined name against the module's own
    definitions first).
    """
    if len(modules) == 1:
        alone = copy.copy(modules[0])  # not dataclasses.replace: that builds the flat table
        alone.name = name
        return alone
    first = modules[0]
    for m in modules:
        if isinstance(m.loading, OneBlock | SharedImage):
            raise LinkError("a module loaded as one block (a REL) or with shared code (an "
                            "NXFLAT program) cannot be combined with others", file=m.file)
    for m in modules[1:]:
        if (m.machine, m.byteorder, m.bits) != (first.machine, first.byteorder, first.bits):
            raise LinkError(
                f"cannot combine a {m.machine} object with a {first.machine} object",
                file=m.file,
            )
    symbols = np.empty(sum(len(m.symbols) for m in modules), SYMBOL_DTYPE)
    sections: list[Section] = []
    runs: list[RelocationRun] = []
    debug: list[DebugInfo] = []
    sym_base = str_base = 0
    for origin, m in enumerate(modules):
        sec_base = len(sections)
        sections += [sec.taken_from(origin) for sec in m.sections]
        debug += [DebugInfo(d.load, origin, d.first_symbol + sym_base) for d in m.debug]
        syms = symbols[sym_base:sym_base + len(m.symbols)]
        syms[:] = m.symbols
        syms["name"][syms["name"] != 0] += np.uint32(str_base)  # 0 stays the empty name
        syms["section"][syms["section"] >= 0] += sec_base
        runs += [RelocationRun(run.section + sec_base, run.offset, run.kind,
                               run.target + np.uint32(sym_base), run.addend, run.implicit)
                 for run in m.relocation_runs]
        sym_base += len(m.symbols)
        str_base += len(m.strtab)
    return Module(name, first.machine, first.byteorder, first.bits, sections, symbols,
                  b"".join(m.strtab for m in modules), runs, ",".join(m.file for m in modules),
                  debug=tuple(debug))


def placed_apart(module: Module, addresses: dict[int, int]) -> Module:
    """``module`` without the sections ``addresses`` maps to where they already are (shared
    code executed in place): their symbols become absolute (ABS rows at address + value),
    the other sections are renumbered. No relocation may patch those sections (a LinkError
    naming the first). Symbol rows keep their numbers."""
    for run in module.relocation_runs:
        if run.section in addresses and len(run):
            sec = module.sections[run.section]
            raise LinkError(f"a relocation patches {sec.name}, which is shared and executed in "
                            "place", file=sec.file or module.file, section=sec.name,
                            offset=int(run.offset[0]))
    kept = [i for i in range(len(module.sections)) if i not in addresses]
    renumber = np.full(len(module.sections), -1, np.int64)
    renumber[kept] = np.arange(len(kept))
    symbols = module.symbols.copy()
    section = symbols["section"].astype(np.int64)
    for index, address in addresses.items():
        rows = section == index
        symbols["value"][rows] += np.uint64(address)
        symbols["section"][rows] = ABS
    inside = (section >= 0) & ~np.isin(section, list(addresses))
    symbols["section"][inside] = renumber[section[inside]]
    runs = [RelocationRun(int(renumber[r.section]), r.offset, r.kind, r.target, r.addend,
                          r.implicit) for r in module.relocation_runs]
    out = copy.copy(module)
    out.sections = [module.sections[i] for i in kept]
    out.symbols = symbols
    out.relocations = runs
    out.loading = BY_SECTION
    out.__dict__.pop("_exports", None)
    out.__dict__.pop("_exported_by_name_offset", None)
    return out


def with_symbols(module: Module, names: list[str], sections: np.ndarray, values: np.ndarray,
                 *, bind: int = LOCAL, kind: int = NOTYPE) -> Module:
    """A copy of ``module`` with more defined symbols: ``sections`` are section indices (or
    ABS for absolute addresses), ``values`` offsets in them (or addresses). Used to name the
    functions of modules whose files carry no symbol table (REL, DOL) for lookups and calls."""
    extra = np.zeros(len(names), SYMBOL_DTYPE)
    blob = b"".join(n.encode("utf-8", "surrogateescape") + b"\0" for n in names)
    lengths = np.array([len(n.encode("utf-8", "surrogateescape")) + 1 for n in names], np.int64)
    starts = len(module.strtab) + np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    extra["name"] = starts
    extra["section"] = sections
    extra["value"] = values
    extra["module"] = -1
    extra["bind"] = bind
    extra["type"] = kind
    copy = dataclasses.replace(module, symbols=np.concatenate([module.symbols, extra]),
                               strtab=module.strtab + blob)
    return copy
