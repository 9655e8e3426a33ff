"""``makerel``: partially linked PowerPC ELF files (``.plf``) -> REL modules, as the
Dolphin/Revolution SDK tool of that name does.

Inputs: the static module (an ELF executable, or a DOL or nothing plus symbol lists or maps,
see :mod:`linkload.formats.symtab`) and the plf files, each made with
``powerpc-linux-gnu-ld -r`` of objects compiled with ``-mcpu=750 -msdata=none -fno-pic``.
Module ids are ``ids`` (one per plf), else ``base_id`` + the plf's position in the list (or
the original's id when matching one). Symbol lists may also name places in other REL modules
(``module,section,offset:name``, as pyelf2rel's ``makelst`` writes), for modules built apart.

Each relocation of module A is resolved at build time, in this order:

* target defined in A (any symbol or section): an entry against A's own id (target section,
  value + addend), except PC-relative references (REL24/REL14 branches; REL32, which
  ``.eh_frame`` uses) to A's sections with data: A is loaded as one block, so their
  displacement is known from the file offsets and is written into the file; no entry;
* target defined in the static module: an entry for module 0, the absolute address as addend
  (and the static module's section index, which the loader ignores, as section);
* target defined in another plf B: an entry for B's id (B's ELF section index of the defining
  symbol, value + addend); else named by a symbol list as a place in module B: likewise;
* target undefined everywhere: what ``missing`` says (:data:`MISSING_MODES`): by default (the
  SDK's ``"unresolved"``) a branch is pointed at A's ``_unresolved`` (in the file, when A
  defines it; else its displacement is left 0, and a warning says the call would branch to
  itself) and anything else is an error naming the symbol; ``"error"`` refuses calls too;
  ``"warn"`` and ``"ignore"`` (with a warning, or without) point calls at ``_unresolved`` and
  make other references 0 (an entry for the DOL with address 0 + addend). Weak references
  follow ``missing_weak`` (default: ``missing`` when it is one of those three, else
  ``"ignore"``: a weak undefined name is 0).

``ignore_sections`` leaves sections out (absent entries; their relocations dropped; a
reference into one is an error). ``block_duplicates`` refuses a name defined twice: by two
plfs, by a plf and the static module or a symbol list, or by two lines that disagree.
``match`` rebuilds modules to match original RELs (:class:`~linkload.formats.rel.RelTemplate`,
see :mod:`.relmatch`): their ids, versions, header values and section attributes are taken
from the originals, and each result is compared with its original (``RelOutput.mismatch``).

REL section indices are the plf's ELF section indices: sections that are not allocated become
absent entries, the one NOBITS section the bss. A REL, its file and its bss together, holds at
most :data:`~linkload.formats.rel.MAX_MODULE_SIZE` (64 MiB, the largest memory of a Wii): a
section, an alignment or a layout beyond it is a FormatError naming the plf's section. The REL
keeps no names; :class:`RelOutput` keeps the plf's section names (``section_names``) for
mapping back, and the linker takes symbol names from the plf itself.

Besides the RELs, makerel writes the ``.str`` table (the module names, NUL-terminated,
concatenated; each REL's ``nameOffset``/``nameSize`` point into it; ``name_table=False``
writes none and leaves those fields 0, as the other REL tools do) and ``import.lst``: the
static-module symbols the modules reference, one per line, for the static module's
``FORCEACTIVE`` list. Given no static module and no symbol list, only ``import.lst`` is made,
listing every name no plf defines (the SDK's first ``makerel`` pass).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..arch import ppc
from ..arch.fields import FieldBatch, kind_set, kinds_of, overflow_message, write_fields
from ..columns import distinct
from ..errors import (
    FormatError,
    LinkError,
    RelocationOverflowError,
    UndefinedSymbolError,
    UnsupportedError,
)
from ..formats import dol as dol_format
from ..formats import elf as elf_format
from ..formats import rel as rel_format
from ..formats import symtab
from ..formats.base import read_bytes
from ..model import ABS, COMMON, UNDEF, WEAK, Module, SectionKind
from .relmatch import Match, templates_for

Source = str | os.PathLike | bytes | Module

#: What happens to references to names defined nowhere (see the module docstring).
MISSING_MODES = ("unresolved", "error", "warn", "ignore")
#: What happens to weak references to names defined nowhere.
WEAK_MODES = ("error", "warn", "ignore")

# -- relocation kinds ---------------------------------------------------------------------------
# The PC-relative kinds makerel resolves in the file when source and target are both in the
# module (their encodings are the PowerPC arch's).
_PCREL = (ppc.R_PPC_REL24, ppc.R_PPC_REL14, ppc.R_PPC_REL14_BRTAKEN, ppc.R_PPC_REL14_BRNTAKEN,
          ppc.R_PPC_REL32)
# ELF kind -> REL type (R_PPC_REL32 only ever resolved in the file); -1: not expressible.
KIND_MAP = np.full(256, -1, np.int64)
KIND_MAP[list(rel_format.PATCHING_TYPES)[1:]] = list(rel_format.PATCHING_TYPES)[1:]
KIND_MAP[ppc.R_PPC_UADDR32], KIND_MAP[ppc.R_PPC_UADDR16] = ppc.R_PPC_ADDR32, ppc.R_PPC_ADDR16
KIND_MAP[ppc.R_PPC_REL32] = ppc.R_PPC_REL32
_IN_FILE = np.zeros(256, bool)
_IN_FILE[list(_PCREL)] = True


def _kind_problem(kind: int) -> str:
    if kind in ppc.SMALL_DATA_KINDS:
        return ("small-data relocation: r2/r13 belong to the static module, a REL cannot use "
                "small data; compile with -msdata=none (CodeWarrior: -sdata 0 -sdata2 0)")
    if kind in ppc.TLS_KINDS:
        return ("thread-local storage relocation: it needs r2 (reserved for the static module) "
                "and a TLS runtime; remove __thread variables and compile with -msdata=none")
    if kind in ppc.POSITION_INDEPENDENT_KINDS | ppc.DYNAMIC_KINDS:
        return "position-independent code relocation: compile with -fno-pic"
    if kind == ppc.R_PPC_REL32:
        return "R_PPC_REL32 to another module or the DOL cannot be expressed in a REL"
    return "relocation kind cannot be expressed in a REL"


# -- results ------------------------------------------------------------------------------------
@dataclass
class RelOutput:
    """One REL built from one plf. ``section_names[i]`` is the plf's name of REL section ``i``
    (``formats.rel.read(data, names=section_names)`` gives a module with those names)."""

    id: int
    name: str
    plf: str
    data: bytes
    section_names: list[str]
    name_offset: int
    name_size: int
    relocations: int  # entries in the REL's lists
    resolved_in_file: int  # branches (and REL32) written into the file instead
    path: str | None = None
    original: str | None = None  # the original REL it was rebuilt to match
    mismatch: str | None = None  # how it still differs from the original (None: identical)

    def read(self) -> Module:
        """The REL as a Module, its sections named as in the plf."""
        return rel_format.read(self.data, name=os.path.splitext(os.path.basename(self.plf))[0],
                               file=self.path or self.plf, names=self.section_names)


@dataclass
class MakerelResult:
    """What :func:`build` made: the RELs, the ``.str`` table, the ``import.lst`` names, and
    warnings (names defined nowhere under ``missing="warn"``, calls that would branch to
    themselves, ``ignore_sections`` naming no section)."""

    rels: list[RelOutput]
    string_table: bytes
    imports: list[str]
    str_path: str | None = None
    import_path: str | None = None
    warnings: list[str] = field(default_factory=list)


# -- inputs -------------------------------------------------------------------------------------
class _Plf(NamedTuple):
    path: str
    module: Module
    elf: elf_format.ElfFile
    id: int
    name: str
    elf_index: np.ndarray  # model section -> ELF section index
    ignored: np.ndarray  # per model section: left out (ignore_sections)

    def error(self, message: str, cls: type[LinkError] = FormatError, **where) -> LinkError:
        return cls(message, file=self.path, **where)


class _Definition(NamedTuple):
    module: int  # module id (0: the static module)
    section: int  # ELF section index in that module (static: containing section, or 0)
    value: int  # offset in the section (static: the address)
    weak: bool = False
    type: int = 0


def _load_plf(source: Source, module_id: int, name: str | None,
              ignore: frozenset[str]) -> _Plf:
    if isinstance(source, Module):
        raise LinkError("makerel reads plf files (it needs their ELF section table), not Modules")
    data, path = read_bytes(source)
    ef = elf_format.ElfFile(data, path)
    if ef.header.type != elf_format.ET_REL or ef.header.machine != 20:
        raise FormatError("not a PowerPC relocatable ELF file (make plfs with "
                          "powerpc-linux-gnu-ld -r)", file=path, section="header", offset=16)
    module = elf_format.read(data, file=path)
    index = np.array([s.index for s in module.sections], np.int64)
    ignored = np.array([s.name in ignore for s in module.sections], bool)
    return _Plf(path, module, ef, module_id, name if name is not None else path, index, ignored)


def _plf_path(source: Source) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<bytes>"


class _External(NamedTuple):
    """The names defined outside the plfs being built: in the static module (``static``) and,
    by symbol lists, in other REL modules (``modules``); ``given``: a static module or a
    symbol list was given; ``clashes``: names defined twice with different places.
    (NamedTuples rather than dataclasses for makerel's records: a command pays for making
    each class when it starts, and a dataclass costs several times more.)"""

    static: dict[str, _Definition]
    modules: dict[str, _Definition]
    given: bool
    clashes: dict[str, str]


def _symbol_sources(symbols: Source | Sequence[Source] | None) -> list[Source]:
    if symbols is None:
        return []
    if isinstance(symbols, (str, os.PathLike, bytes, Module)):
        return [symbols]
    return list(symbols)


def _external_definitions(static: Source | None, symbols: Source | Sequence[Source] | None,
                          find_clashes: bool = False) -> _External:
    """The static module's names (its ELF or DOL, and the symbol lists) and the other
    modules' names the symbol lists give; with ``find_clashes``, the names the lists give
    two places."""
    modules: list[Module] = []
    sections_module: Module | None = None
    if static is not None:
        sections_module = _read_static(static)
        modules.append(sections_module)
    listed: dict[str, _Definition] = {}
    clashes: dict[str, str] = {}
    places = symtab.dol_sections(sections_module) if sections_module else None
    for source in _symbol_sources(symbols):
        if isinstance(source, Module):
            modules.append(source)
            continue
        file = os.fspath(source)
        entries = symtab.parse_file(file)
        modules.append(symtab.to_module(symtab.resolve(entries, places, file),
                                        file=file))
        if find_clashes:
            clashes.update(_clashing_entries(entries, file))
        for e in symtab.other_modules(entries):
            listed.setdefault(e.name, _Definition(e.module, e.section, e.offset))
    out: dict[str, _Definition] = {}
    for m in modules:
        for name, d in _static_exports(m, sections_module or m):
            old = out.get(name)
            if old is None or (old.weak and not d.weak):
                out[name] = d
            elif old.value != d.value and not d.weak and not old.weak:
                clashes[name] = f"{old.value:#x} and {d.value:#x} in the static module"
    for name in set(out) & set(listed):
        clashes[name] = "the static module and another module (a symbol list)"
    return _External(out, listed, bool(modules), clashes)


def _static_exports(m: Module, sections_module: Module) -> list[tuple[str, _Definition]]:
    rows = m.exported()
    rows = rows[m.symbols["section"][rows] == ABS]
    addresses = m.symbols["value"][rows].astype(np.int64)
    sections = _containing_section(sections_module, addresses)
    types = m.symbols["type"][rows].tolist()
    weak = (m.symbols["bind"][rows] == WEAK).tolist()
    return [(name, _Definition(0, section, address, w, t)) for name, address, section, w, t in
            zip(m.symbol_names(rows), addresses.tolist(), sections.tolist(), weak, types,
                strict=True)]


def _clashing_entries(entries: list[symtab.SymbolEntry], file: str) -> dict[str, str]:
    """Names a symbol list gives two different places (line numbers)."""
    seen: dict[str, symtab.SymbolEntry] = {}
    out: dict[str, str] = {}
    for e in entries:
        old = seen.setdefault(e.name, e)
        place = (e.module, e.section, e.offset, e.address)
        if old is not e and (old.module, old.section, old.offset, old.address) != place:
            out[e.name] = f"lines {old.line} and {e.line} of {file}"
    return out


def _read_static(static: Source) -> Module:
    if isinstance(static, Module):
        return static
    if isinstance(static, (str, os.PathLike)) and os.fspath(static).lower().endswith(".dol"):
        return dol_format.read(static)
    module = elf_format.read(static)
    if module.kind not in ("executable", "shared"):
        raise FormatError("the static module must be an ELF executable (or a DOL with a "
                          "symbol list)", file=module.file)
    return module


def _containing_section(static: Module, addresses: np.ndarray) -> np.ndarray:
    """Index (in the static module's file) of the section holding each address, else 0."""
    placed = [s for s in static.sections if s.address is not None and s.size]
    if not placed:
        return np.zeros(len(addresses), np.int64)
    placed.sort(key=lambda s: s.address)
    starts = np.array([s.address for s in placed], np.int64)
    ends = starts + np.array([s.size for s in placed], np.int64)
    index = np.array([s.index for s in placed], np.int64)
    slot = np.searchsorted(starts, addresses, side="right") - 1
    inside = (slot >= 0) & (addresses < ends[np.maximum(slot, 0)])
    return np.where(inside, index[np.maximum(slot, 0)], 0)


ENTRY_POINTS = ("_prolog", "_epilog", "_unresolved")  # every module has its own


def _plf_definitions(plfs: list[_Plf]) -> tuple[dict[str, _Definition], dict[str, str]]:
    """Name -> definition over all plfs (a global beats a weak one), and the names two plfs
    define globally (name -> both files: an error only if some module refers to one, or
    with ``block_duplicates``)."""
    out: dict[str, _Definition] = {}
    where: dict[str, str] = {}
    ambiguous: dict[str, str] = {}
    for plf in plfs:
        _check_commons(plf)
        for name, d in _exports(plf):
            old = out.get(name)
            if old is None or (old.weak and not d.weak):
                out[name], where[name] = d, plf.path
            elif not old.weak and not d.weak and name not in ENTRY_POINTS:
                ambiguous[name] = f"{where[name]} and {plf.path}"
    for name in ENTRY_POINTS:
        out.pop(name, None)
    return out, ambiguous


def _exports(plf: _Plf) -> list[tuple[str, _Definition]]:
    """The plf's exported names and their definitions (ABS symbols: for the static module;
    names in sections left out are not exported)."""
    m = plf.module
    table = m.exports()
    rows = np.fromiter(table.values(), np.int64, len(table))
    section = m.symbols["section"][rows].astype(np.int64)
    keep = (section >= 0) | (section == ABS)  # not loaded (TLS): an error when referred to
    keep &= ~((section >= 0) & plf.ignored[np.maximum(section, 0)])
    names = [n for n, k in zip(table, keep.tolist(), strict=True) if k]
    rows, section = rows[keep], section[keep]
    inside = section >= 0
    module = np.where(inside, plf.id, 0).tolist()
    elf_section = np.where(inside, plf.elf_index[np.maximum(section, 0)], 0).tolist()
    values = m.symbols["value"][rows].tolist()
    weak = (m.symbols["bind"][rows] == WEAK).tolist()
    types = m.symbols["type"][rows].tolist()
    return [(n, _Definition(*d)) for n, d in zip(names, zip(module, elf_section, values, weak,
                                                            types, strict=True), strict=True)]


def _check_commons(plf: _Plf) -> None:
    common = np.flatnonzero(plf.module.symbols["section"] == COMMON)
    if len(common):
        name = plf.module.symbol_name(int(common[0]))
        raise plf.error("common symbol: a REL has one bss section and no common blocks; "
                        "compile with -fno-common", UnsupportedError, symbol=name)


# -- sections -----------------------------------------------------------------------------------
def _section_specs(plf: _Plf) -> list[rel_format.RelSection]:
    """The REL section table of a plf: its ELF section indices, unallocated ones absent."""
    shdrs = plf.elf.sections
    flags = shdrs["flags"].astype(np.int64)
    left_out = np.zeros(len(shdrs), bool)
    left_out[plf.elf_index[plf.ignored]] = True
    alloc = ((flags & elf_format.SHF_ALLOC) != 0) & ~left_out
    tls = np.flatnonzero(alloc & ((flags & elf_format.SHF_TLS) != 0))
    if len(tls):
        i = int(tls[0])
        raise plf.error("thread-local storage cannot be used in a REL (r2 is reserved for the "
                        "static module); remove __thread variables and compile with "
                        "-msdata=none", UnsupportedError, section=plf.elf.names[i])
    nobits = np.flatnonzero(alloc & (shdrs["type"] == elf_format.SHT_NOBITS) & (shdrs["size"] > 0))
    if len(nobits) > 1:
        names = ", ".join(plf.elf.names[int(i)] for i in nobits)
        raise plf.error(f"{len(nobits)} bss sections ({names}): a REL has one; merge them when "
                        "partially linking (a linker script with .bss : { *(.bss .bss.* .sbss "
                        "COMMON) } for ld -r) and compile with -fno-common", UnsupportedError,
                        section=plf.elf.names[int(nobits[1])])
    big = np.flatnonzero(alloc & (np.arange(len(shdrs)) > 255))
    if len(big):
        raise plf.error(f"allocated section index {int(big[0])}: REL section numbers have 8 "
                        "bits; merge sections when partially linking (no -ffunction-sections, "
                        "or a linker script)", UnsupportedError,
                        section=plf.elf.names[int(big[0])])
    _check_sizes(plf)
    specs = [rel_format.RelSection(absent=True) for _ in range(len(shdrs))]
    for s in plf.module.sections:
        if left_out[s.index]:
            continue
        if s.kind == SectionKind.BSS:
            specs[s.index] = rel_format.RelSection(s.size, align=s.align, bss=True) if s.size \
                else rel_format.RelSection(absent=True)
        else:
            executable = bool(int(shdrs["flags"][s.index]) & elf_format.SHF_EXECINSTR)
            specs[s.index] = rel_format.RelSection(s.size, bytes(s.data or b""), s.align,
                                                   executable)
    if not specs:
        specs = [rel_format.RelSection(absent=True)]
    return specs


def _check_sizes(plf: _Plf) -> None:
    """No section, alignment or bss larger than a REL can hold (:data:`~linkload.formats.rel.
    MAX_MODULE_SIZE`): the file is laid out (and made in memory) before it is written."""
    limit = rel_format.MAX_MODULE_SIZE
    for s in plf.module.sections:
        for what, header_field, value in (("alignment", "addralign", s.align),
                                          ("size", "size", s.size)):
            if value > limit:
                raise plf.error(f"{what} {value:#x} is larger than any REL ({limit:#x} bytes, "
                                "the largest memory of a Wii)", section=s.name,
                                offset=plf.elf.header_offset(s.index, header_field))


def _check_layout(plf: _Plf, specs: list[rel_format.RelSection], offsets: list[int]) -> None:
    """The REL's data and its bss together fit a console's memory (checked on the file's
    layout, before its image is made)."""
    limit = rel_format.MAX_MODULE_SIZE
    bss = sum(spec.size for spec in specs if spec.bss)
    for index, (spec, at) in enumerate(zip(specs, offsets, strict=True)):
        total = (at + spec.size if spec.has_data else 0) + bss
        if total > limit:
            raise plf.error(f"the module reaches {total:#x} bytes with this section (its bss "
                            f"included): no REL is larger than {limit:#x} bytes",
                            section=plf.elf.names[index], offset=plf.elf.header_offset(index, "size"))


# -- resolution ---------------------------------------------------------------------------------
class _Targets(NamedTuple):
    """Per relocation: target module id, section (ELF index) and value (before the addend);
    ``status`` 0 resolved, 1 undefined, 2 undefined weak."""

    module: np.ndarray
    section: np.ndarray
    value: np.ndarray
    status: np.ndarray
    static_names: set[str]


class _Names(NamedTuple):
    """Where names are looked up, after the module itself: the static module, the other plfs
    (and the names two of them define), the other modules of the symbol lists."""

    static: dict[str, _Definition]
    plfs: dict[str, _Definition]
    ambiguous: dict[str, str]
    listed: dict[str, _Definition]


def _targets(plf: _Plf, relocs: np.ndarray, names: _Names) -> _Targets:
    m = plf.module
    target = relocs["target"].astype(np.int64)
    section = m.symbols["section"][target].astype(np.int64)
    n = len(relocs)
    out = _Targets(np.zeros(n, np.int64), np.zeros(n, np.int64),
                   m.symbols["value"][target].astype(np.int64), np.zeros(n, np.int8), set())
    own = section >= 0
    out.module[own] = plf.id
    out.section[own] = plf.elf_index[section[own]]
    bad = np.flatnonzero((section < 0) & (section != ABS) & (section != UNDEF))
    if len(bad):
        i = int(bad[0])
        raise plf.error("refers to a symbol in a section that is not loaded (thread-local or "
                        "debug data)", UnsupportedError, symbol=m.symbol_name(int(target[i])),
                        section=_place(plf, relocs[i])[0], offset=int(relocs["offset"][i]))
    left_out = np.flatnonzero(own & plf.ignored[np.maximum(section, 0)])
    if len(left_out):
        i = int(left_out[0])
        raise _reloc_error(plf, relocs, i, f"refers to section "
                           f"{m.sections[int(section[i])].name}, which ignore_sections leaves out")
    undefined = np.flatnonzero(section == UNDEF)
    if len(undefined):
        _resolve_names(plf, target, undefined, out, names)
    return out


def _lookup(plf: _Plf, name: str, own: dict[str, int], names: _Names) -> _Definition | None:
    """Where an undefined name of ``plf`` is defined: the module itself (objects combined
    into one), the static module, another plf, a module of a symbol list; None: nowhere."""
    m = plf.module
    if name in own and m.symbols["section"][own[name]] >= 0:
        row = own[name]
        return _Definition(plf.id, int(plf.elf_index[m.symbols["section"][row]]),
                           int(m.symbols["value"][row]))
    if name in names.static:
        return names.static[name]
    if name in names.ambiguous:
        raise plf.error(f"defined in both {names.ambiguous[name]}: which module is meant?",
                        LinkError, symbol=name)
    return names.plfs.get(name) or names.listed.get(name)


def _resolve_names(plf: _Plf, target: np.ndarray, undefined: np.ndarray, out: _Targets,
                   names: _Names) -> None:
    m = plf.module
    rows, inverse = np.unique(target[undefined], return_inverse=True)
    own = m.exports()
    weak = (m.symbols["bind"][rows] == WEAK).tolist()
    k = len(rows)
    module, section, value, status = (np.zeros(k, np.int64), np.zeros(k, np.int64),
                                      np.zeros(k, np.int64), np.zeros(k, np.int8))
    for j, name in enumerate(m.symbol_names(rows)):
        d = _lookup(plf, name, own, names)
        if d is None:
            status[j] = 2 if weak[j] else 1
            continue
        if d.module == 0:
            out.static_names.add(name)
        module[j], section[j], value[j] = d.module, d.section, d.value
    out.module[undefined] = module[inverse]
    out.section[undefined] = section[inverse]
    out.value[undefined] = value[inverse]
    out.status[undefined] = status[inverse]


def _place(plf: _Plf, reloc: np.void) -> tuple[str, int]:
    return plf.module.sections[int(reloc["section"])].name, int(reloc["offset"])


def _reloc_error(plf: _Plf, relocs: np.ndarray, i: int, message: str,
                 cls: type[LinkError] = UnsupportedError, kind: int | None = None) -> LinkError:
    section, offset = _place(plf, relocs[i])
    symbol = plf.module.symbol_name(int(relocs["target"][i])) or None
    if symbol is None:
        symbol_section = int(plf.module.symbols["section"][int(relocs["target"][i])])
        if symbol_section >= 0:
            symbol = plf.module.sections[symbol_section].name
    return cls(message, file=plf.path, section=section, offset=offset,
               kind=ppc.ARCH.kind_name(int(relocs["kind"][i]) if kind is None else kind),
               symbol=symbol)


# -- names defined nowhere ----------------------------------------------------------------------
class Missing(NamedTuple):
    """What happens to references to names defined nowhere: ``mode`` for ordinary names (one
    of :data:`MISSING_MODES`), ``weak`` for weak ones (one of :data:`WEAK_MODES`)."""

    mode: str = "unresolved"
    weak: str = "ignore"

    @classmethod
    def of(cls, missing: str | None, missing_weak: str | None) -> Missing:
        """The policy of :func:`build`'s ``missing``/``missing_weak`` (None: the defaults;
        weak names follow ``missing`` when it is one of :data:`WEAK_MODES`)."""
        if missing is not None and missing not in MISSING_MODES:
            raise LinkError(f"missing mode {missing!r} is not one of {', '.join(MISSING_MODES)}")
        if missing_weak is not None and missing_weak not in WEAK_MODES:
            raise LinkError(f"missing-weak mode {missing_weak!r} is not one of "
                            f"{', '.join(WEAK_MODES)}")
        weak = missing_weak or (missing if missing in WEAK_MODES else "ignore")
        return cls(missing or "unresolved", weak)

    def refused(self, status: np.ndarray, branch: np.ndarray) -> np.ndarray:
        """The references this policy refuses (``status`` 1: undefined, 2: undefined weak)."""
        strong = (status == 1) & ((self.mode == "error") | ((self.mode == "unresolved") & ~branch))
        return strong | ((status == 2) & (self.weak == "error"))

    def warned(self, status: np.ndarray) -> np.ndarray:
        """The references whose names a warning lists."""
        return ((status == 1) & (self.mode == "warn")) | ((status == 2) & (self.weak == "warn"))

    def refusal(self, weak: bool, branch: bool) -> str:
        """Why a reference is refused (the end of the error message)."""
        if weak:
            return "a weak reference, and weak references to missing names are refused"
        if self.mode == "error":
            return "references to missing names are refused (missing mode 'error')"
        return ("only branches can go to _unresolved (missing mode 'warn' or 'ignore' makes "
                "other references 0)")


def _check_missing(plf: _Plf, relocs: np.ndarray, t: _Targets, branch: np.ndarray,
                   missing: Missing) -> None:
    refused = np.flatnonzero(missing.refused(t.status, branch))
    if not len(refused):
        return
    names = sorted({plf.module.symbol_name(int(relocs["target"][i])) for i in refused})
    more = f" (and {len(names) - 1} more: {', '.join(names[1:6])})" if len(names) > 1 else ""
    i = int(refused[0])
    raise _reloc_error(plf, relocs, i,
                       f"undefined in this module, the static module and every other module"
                       f"{more}; {missing.refusal(bool(t.status[i] == 2), bool(branch[i]))}",
                       UndefinedSymbolError)


def _missing_warnings(plf: _Plf, plan: _Plan, missing: Missing, has_unresolved: bool
                      ) -> list[str]:
    """Warnings for the names defined nowhere that ``missing`` asks to hear about, and for
    calls that branch to themselves (the module has no ``_unresolved``)."""
    out = []
    relocs, status = plan.relocs, plan.targets.status
    warned = distinct(relocs["target"][missing.warned(status)])
    for name, row in sorted(zip(plf.module.symbol_names(warned), warned.tolist(), strict=True)):
        uses = relocs["target"] == row
        calls, others = (uses & plan.unresolved).any(), (uses & ~plan.unresolved).any()
        what = " and ".join(w for w, yes in (("calls go to _unresolved", calls),
                                            ("references are 0", others)) if yes)
        out.append(f"{plf.path}: {name} is defined nowhere: {what}")
    if not has_unresolved:
        stuck = plan.unresolved & (status == 1) & (missing.mode != "ignore")
        names = sorted(set(plf.module.symbol_names(distinct(relocs["target"][stuck]))))
        if names:
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            out.append(f"{plf.path}: calls to {', '.join(names[:5])}{more} (defined nowhere) "
                       "branch to themselves: the module defines no _unresolved")
    return out


# -- planning -----------------------------------------------------------------------------------
class _Plan(NamedTuple):
    """How each (supported) relocation of a plf is handled."""

    relocs: np.ndarray  # the plf's relocations, without R_PPC_NONE
    rtype: np.ndarray  # REL type (R_PPC_REL32 for the in-file-only kind)
    targets: _Targets
    value: np.ndarray  # target value + addend (section offset, or address for the DOL)
    patched: np.ndarray  # ELF index of the section patched
    in_file: np.ndarray  # PC-relative to this module's own data: written into the file
    unresolved: np.ndarray  # branch to a name defined nowhere: to _unresolved
    entry: np.ndarray  # everything else: a relocation entry


def _supported(plf: _Plf) -> tuple[np.ndarray, np.ndarray]:
    """The relocations (R_PPC_NONE and those of sections left out dropped) and their REL
    types; an error for kinds a REL cannot express."""
    relocs = plf.module.relocations
    kinds = relocs["kind"].astype(np.int64)
    keep = (kinds != 0) & ~plf.ignored[relocs["section"].astype(np.int64)]
    relocs, kinds = relocs[keep], kinds[keep]
    rtype = np.where(kinds < 256, KIND_MAP[np.minimum(kinds, 255)], -1)
    bad = np.flatnonzero(rtype < 0)
    if len(bad):
        i = int(bad[0])
        raise _reloc_error(plf, relocs, i, _kind_problem(int(kinds[i])))
    return relocs, rtype


def _check_fields(plf: _Plf, relocs: np.ndarray) -> None:
    """Every field lies wholly inside the section it patches. The reader checks only where a
    field starts; a field that runs past its section's end would be written into the next
    section's bytes (or past the image)."""
    sizes = np.array([s.size for s in plf.module.sections], np.int64)
    width = ppc.ARCH.tables.width[relocs["kind"].astype(np.intp)]  # kinds checked known
    size = sizes[relocs["section"].astype(np.intp)]
    bad = np.flatnonzero(relocs["offset"].astype(np.int64) + width > size)
    if len(bad):
        i = int(bad[0])
        raise _reloc_error(plf, relocs, i, f"a {int(width[i])}-byte field runs past the end of "
                           f"the section ({int(size[i]):#x} bytes)", FormatError)


def _plan(plf: _Plf, specs: list[rel_format.RelSection], names: _Names,
          missing: Missing) -> _Plan:
    relocs, rtype = _supported(plf)
    _check_fields(plf, relocs)
    t = _targets(plf, relocs, names)
    value = t.value + relocs["addend"].astype(np.int64)
    branch = np.isin(rtype, rel_format.BRANCH_TYPES)
    has_data = np.array([s.has_data for s in specs] + [False])
    own_data = (t.module == plf.id) & (t.status == 0) & has_data[np.minimum(t.section, len(specs))]
    in_file = _IN_FILE[rtype] & own_data
    _check_missing(plf, relocs, t, branch, missing)
    unresolved = (t.status > 0) & branch
    entry = ~in_file & ~unresolved
    for bad, message in ((entry & (rtype == ppc.R_PPC_REL32), _kind_problem(ppc.R_PPC_REL32)),
                         (entry & (t.section > 255), "the target section's index does not fit "
                                                     "a REL entry (8 bits)")):
        if bad.any():
            raise _reloc_error(plf, relocs, int(np.flatnonzero(bad)[0]), message)
    null = entry & (t.status > 0)  # defined nowhere, and allowed: address 0, through the DOL
    t.module[null], t.section[null] = 0, 0
    value[null] = relocs["addend"][null]
    patched = plf.elf_index[relocs["section"].astype(np.int64)]
    return _Plan(relocs, rtype, t, value, patched, in_file, unresolved, entry)


def _resolve_in_file(plf: _Plf, plan: _Plan, offsets: np.ndarray, image: np.ndarray,
                     unresolved: tuple[int, int], has_data: bool) -> int:
    """Write the displacements known from the file layout; how many were written."""
    fix = plan.in_file | plan.unresolved
    rows = np.flatnonzero(fix)
    place = offsets[plan.patched[rows]] + plan.relocs["offset"][rows].astype(np.int64)
    section = np.minimum(plan.targets.section[rows], len(offsets) - 1)
    goal = offsets[section] + plan.value[rows]
    displacement = goal - place
    to_unresolved = plan.unresolved[rows]
    if unresolved[0] and has_data:
        displacement[to_unresolved] = offsets[unresolved[0]] + unresolved[1] - place[to_unresolved]
    else:
        displacement[to_unresolved] = 0  # no _unresolved: the branch is left at 0
    _patch(plf, plan.relocs, image, place, displacement, plan.rtype[rows], rows)
    return len(rows)


def _entries(plan: _Plan) -> np.ndarray:
    """The relocation entries (:data:`~linkload.formats.rel.ENTRY_DTYPE`) of the plan."""
    rows = plan.entry
    out = np.zeros(int(rows.sum()), rel_format.ENTRY_DTYPE)
    out["module"] = plan.targets.module[rows]
    out["section"] = plan.patched[rows]
    out["offset"] = plan.relocs["offset"][rows]
    out["type"] = plan.rtype[rows]
    out["target"] = plan.targets.section[rows]
    out["addend"] = plan.value[rows] & 0xFFFFFFFF
    return out


def _patch(plf: _Plf, relocs: np.ndarray, image: np.ndarray, place: np.ndarray,
           displacement: np.ndarray, kinds: np.ndarray, rows: np.ndarray) -> None:
    """Write PC-relative displacements into the file image through the one field writer:
    checked and encoded by the PowerPC arch's own fields (the branch-prediction bit
    included)."""
    kind = kinds.astype(np.intp)
    batch = FieldBatch(kind_set(ppc.ARCH, kinds_of(kind)), kind, place.astype(np.int64),
                       displacement.astype(np.int64))
    overflow = write_fields(ppc.ARCH, image, ppc.ARCH.byteorder, batch)
    if overflow is not None:
        k = ppc.ARCH.kinds[int(kind[overflow.row])]
        raise _reloc_error(plf, relocs, int(rows[overflow.row]),
                           overflow_message(k, overflow.value, overflow.count - 1),
                           RelocationOverflowError)


def _entry_point(plf: _Plf, name: str, specs: list[rel_format.RelSection]) -> tuple[int, int]:
    row = plf.module.exports().get(name)
    if row is None:
        return 0, 0
    section = int(plf.module.symbols["section"][row])
    if section < 0:
        raise plf.error("must be defined in a section of the module", symbol=name)
    index = int(plf.elf_index[section])
    if index >= len(specs) or not specs[index].has_data or index > 255:
        raise plf.error(f"is in section {plf.elf.names[index]}, which holds no code", symbol=name)
    return index, int(plf.module.symbols["value"][row])


# -- header choices -----------------------------------------------------------------------------
class _Choices(NamedTuple):
    """One module's header values: the REL version, the name fields, the alignments (None:
    computed), and the original it is to match (None: none)."""

    version: int
    name_offset: int
    name_size: int
    align: int | None
    bss_align: int | None
    template: rel_format.RelTemplate | None


def _check_alignment(name: str, value: int | None) -> None:
    if value is not None and (value < 1 or value & (value - 1)):
        raise LinkError(f"{name} {value} is not a power of two")


def _choices(plf: _Plf, version: int, name: tuple[int, int], align: int | None,
             bss_align: int | None, template: rel_format.RelTemplate | None) -> _Choices:
    """The header values of one module: given ones first, then the original's, then the
    defaults."""
    if template is not None:
        version = template.version or version
        if template.name_offset is not None:
            name = (template.name_offset, name[1])
        if template.name_size is not None:
            name = (name[0], template.name_size)
        align = template.align if align is None else align
        bss_align = template.bss_align if bss_align is None else bss_align
    if version < 2 and (align is not None or bss_align is not None):
        raise plf.error(f"REL version {version} has no align or bssAlign fields; they need "
                        "version 2 or 3")
    return _Choices(version, name[0], name[1], align, bss_align, template)


def _matched_sections(plf: _Plf, specs: list[rel_format.RelSection],
                      template: rel_format.RelTemplate) -> list[rel_format.RelSection]:
    """The section table with the original's count, exec bits and file offsets."""
    count = template.section_count if template.section_count is not None else len(specs)
    extra = [i for i in range(count, len(specs)) if not specs[i].absent]
    if extra:
        i = extra[0]
        origin = f"the original {template.file} has" if template.file else "the template asks for"
        raise plf.error(f"{origin} {count} sections, but section {i} "
                        f"({plf.elf.names[i]}) has contents; leave it out with "
                        "ignore_sections, or make the plf as the original was made",
                        section=plf.elf.names[i])
    specs = specs[:count] + [rel_format.RelSection(absent=True)] * (count - len(specs))
    offsets = template.section_offsets or (0,) * count
    execs = template.section_exec or tuple(s.exec for s in specs)
    return [dataclasses.replace(s, exec=bool(x) and not s.bss,
                                wanted_offset=o if s.has_data and o else None)
            for s, o, x in zip(specs, offsets, execs, strict=True)]


# -- the tool -----------------------------------------------------------------------------------
def build(static: Source | None, plfs: Sequence[Source], *, version: int = 3, base_id: int = 1,
          ids: Sequence[int] | None = None, module_names: Sequence[str] | None = None,
          symbols: Source | Sequence[Source] | None = None, align: int | None = None,
          bss_align: int | None = None, name_table: bool = True, missing: str | None = None,
          missing_weak: str | None = None, ignore_sections: Sequence[str] = (),
          block_duplicates: bool = False, match: Match = None) -> MakerelResult:
    """Build the RELs of ``plfs`` against ``static`` in memory (no files written).

    ``static`` is the static module's ELF executable (or a DOL, or a Module), ``symbols`` one
    or more symbol lists or maps (more static-module symbols, or all of them, and other
    modules' symbols); with neither, only the import list is made. ``ids`` gives each module
    its id (default ``base_id`` + position). ``module_names`` name the modules in the
    ``.str`` table (default: the plf paths as given); ``name_table=False`` makes no table
    and writes name offset and size 0. ``align``/``bss_align`` override the computed header
    values (v >= 2). ``missing``/``missing_weak``, ``ignore_sections``, ``block_duplicates``
    and ``match`` are described in the module docstring.
    """
    if version not in rel_format.HEADER_SIZES:
        raise LinkError(f"REL version {version} is not supported (1, 2 or 3)")
    _check_alignment("align", align)
    _check_alignment("bss_align", bss_align)
    policy = Missing.of(missing, missing_weak)
    names = list(module_names) if module_names is not None else [None] * len(plfs)
    if len(names) != len(plfs):
        raise LinkError(f"{len(names)} module names for {len(plfs)} plfs")
    paths = [_plf_path(p) for p in plfs]
    templates = templates_for(match, paths, names)
    module_ids = _module_ids(paths, base_id, ids, templates)
    ignore = frozenset(ignore_sections)
    loaded = [_load_plf(p, i, n, ignore) for p, i, n in zip(plfs, module_ids, names,
                                                            strict=True)]
    warnings = _unknown_sections(loaded, ignore)
    plf_defs, ambiguous = _plf_definitions(loaded)
    external = _external_definitions(static, symbols, find_clashes=block_duplicates)
    if block_duplicates:
        _refuse_duplicates(loaded, plf_defs, ambiguous, external)
    if not external.given:
        return MakerelResult([], b"", _undefined_names(loaded, plf_defs), warnings=warnings)
    lookup = _Names(external.static, plf_defs, ambiguous, external.modules)
    string_table = bytearray()
    rels, referenced = [], set()
    for plf, template in zip(loaded, templates, strict=True):
        name = (0, 0)
        if name_table:
            encoded = plf.name.encode("utf-8", "surrogateescape") + b"\0"
            name = (len(string_table), len(encoded))
            string_table += encoded
        choices = _choices(plf, version, name, align, bss_align, template)
        out, used, notes = _build_one(plf, lookup, choices, policy)
        rels.append(out)
        warnings += notes
        referenced |= used
    return MakerelResult(rels, bytes(string_table), sorted(referenced), warnings=warnings)


def _module_ids(paths: list[str], base_id: int, ids: Sequence[int] | None,
                templates: list[rel_format.RelTemplate | None]) -> list[int]:
    """Each module's id: given, else the original's, else ``base_id`` + position."""
    if ids is not None:
        if len(ids) != len(paths):
            raise LinkError(f"{len(ids)} module ids for {len(paths)} plfs")
        chosen = [int(i) for i in ids]
        for path, i, t in zip(paths, chosen, templates, strict=True):
            if t is not None and t.id is not None and t.id != i:
                raise LinkError(f"module id {i} given, but the original {t.file} has id {t.id}",
                                file=path)
    else:
        if base_id < 1 or base_id + len(paths) > 1 << 32:
            raise LinkError(f"module ids {base_id}..{base_id + len(paths) - 1} are out of range "
                            "(1 .. 2**32-1; 0 is the static module)")
        chosen = [t.id if t is not None and t.id is not None else base_id + k
                  for k, t in enumerate(templates)]
    seen: dict[int, str] = {}
    for path, i in zip(paths, chosen, strict=True):
        if not 0 < i < 1 << 32:
            raise LinkError(f"module id {i} is out of range (1 .. 2**32-1; 0 is the static "
                            "module)", file=path)
        if i in seen:
            raise LinkError(f"module id {i} is given to both {seen[i]} and {path}")
        seen[i] = path
    return chosen


def _unknown_sections(plfs: list[_Plf], ignore: frozenset[str]) -> list[str]:
    known = {s.name for plf in plfs for s in plf.module.sections}
    known |= {n for plf in plfs for n in plf.elf.names}
    return [f"ignore_sections: no plf has a section named {name}"
            for name in sorted(ignore - known)]


def _refuse_duplicates(plfs: list[_Plf], plf_defs: dict[str, _Definition],
                       ambiguous: dict[str, str], external: _External) -> None:
    """``block_duplicates``: every name defined twice is an error, used or not."""
    clashes = dict(external.clashes)
    clashes.update((n, where) for n, where in ambiguous.items())
    for name in sorted(set(plf_defs) & (set(external.static) | set(external.modules))):
        owner = next(p.path for p in plfs if p.id == plf_defs[name].module)
        clashes.setdefault(name, f"{owner} and the static module or a symbol list")
    if clashes:
        name = min(clashes)
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise LinkError(f"defined twice: in {clashes[name]}{more} (block_duplicates)",
                        symbol=name)


def _undefined_names(plfs: list[_Plf], plf_defs: dict[str, _Definition]) -> list[str]:
    names: set[str] = set()
    for plf in plfs:
        m = plf.module
        target = distinct(m.relocations["target"])
        target = target[m.symbols["section"][target] == UNDEF]
        names.update(n for n in m.symbol_names(target) if n and n not in plf_defs)
    return sorted(names)


def _build_one(plf: _Plf, names: _Names, choices: _Choices, missing: Missing
               ) -> tuple[RelOutput, set[str], list[str]]:
    specs = _section_specs(plf)
    template = choices.template
    if template is not None:
        specs = _matched_sections(plf, specs, template)
    offsets_list, data_end = rel_format.layout_sections(specs, choices.version)
    _check_layout(plf, specs, offsets_list)
    offsets = np.array(offsets_list, np.int64)
    image = np.zeros(data_end, np.uint8)
    for spec, at in zip(specs, offsets_list, strict=True):
        if spec.has_data and spec.size:
            image[at:at + spec.size] = np.frombuffer(spec.data, np.uint8)
    unresolved = _entry_point(plf, "_unresolved", specs)
    plan = _plan(plf, specs, names, missing)
    has_unresolved = bool(unresolved[0]) and specs[unresolved[0]].has_data
    in_file = _resolve_in_file(plf, plan, offsets, image, unresolved, has_unresolved)
    entries = _entries(plan)
    if template is not None and template.original is not None:
        _static_sections_from(entries, rel_format.RelFile(template.original,
                                                          template.file or "<original>"))
    patched = [rel_format.RelSection(s.size, image[at:at + s.size].tobytes(), s.align, s.exec,
                                     offset=at) if s.has_data else s
               for s, at in zip(specs, offsets_list, strict=True)]
    data = rel_format.write(plf.id, patched, entries, version=choices.version,
                            name_offset=choices.name_offset, name_size=choices.name_size,
                            prolog=_entry_point(plf, "_prolog", specs),
                            epilog=_entry_point(plf, "_epilog", specs), unresolved=unresolved,
                            align=choices.align, bss_align=choices.bss_align)
    out = RelOutput(plf.id, plf.name, plf.path, data, list(plf.elf.names), choices.name_offset,
                    choices.name_size, len(entries), in_file)
    if template is not None and template.original is not None:
        out.original = template.file
        out.mismatch = rel_format.first_difference(
            data, template.original, names=out.section_names, file=plf.path,
            original_file=template.file or "<original>")
    return out, plan.targets.static_names, _missing_warnings(plf, plan, missing, has_unresolved)


def _place_keys(entries: np.ndarray) -> np.ndarray:
    """One integer per entry for its place and type: patched section, offset, type."""
    return (entries["section"].astype(np.int64) << 40) | \
        (entries["offset"].astype(np.int64) << 8) | entries["type"].astype(np.int64)


def _static_sections_from(entries: np.ndarray, original: rel_format.RelFile) -> None:
    """Static-module entries whose section nobody gave (0: no static ELF or DOL, only symbol
    lists) take the original's at the same place: the loader ignores it, a match does not."""
    mine = np.flatnonzero((entries["module"] == 0) & (entries["target"] == 0))
    theirs = original.entries[original.entries["module"] == 0]
    if not len(mine) or not len(theirs):
        return
    known = _place_keys(theirs)
    order = np.argsort(known, kind="stable")
    known = known[order]
    wanted = _place_keys(entries[mine])
    at = np.minimum(np.searchsorted(known, wanted), len(known) - 1)
    found = known[at] == wanted
    entries["target"][mine[found]] = theirs["target"][order[at[found]]]


def makerel(static: Source | None, plfs: Sequence[Source], *,
            str_name: str | os.PathLike | None = None,
            import_list: str | os.PathLike | None = "import.lst",
            out_dir: str | os.PathLike | None = None, output: str | os.PathLike | None = None,
            **options) -> MakerelResult:
    """Build the RELs (:func:`build`, which takes the other keyword arguments) and write
    them: ``a.rel`` for ``a.plf`` beside it (in ``out_dir`` if given; ``output`` names the
    file when there is one plf), the ``.str`` table (``str_name``, default the static
    module's name with ``.str``, beside it or in ``out_dir``; none when ``name_table`` is
    False) and ``import.lst`` (``import_list``; None: not written). A bare file name for
    either goes into ``out_dir`` (or the folder of ``output``); a path is taken as given."""
    if output is not None and len(plfs) != 1:
        raise LinkError(f"an output file names one REL; {len(plfs)} plfs make {len(plfs)} "
                        "(give an output folder instead)")
    result = build(static, plfs, **options)
    out = Path(out_dir) if out_dir is not None else None
    if out is None and output is not None:
        out = Path(output).parent
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for r in result.rels:
        plf_path = Path(r.plf)
        target = Path(output) if output is not None else \
            (out if out is not None else plf_path.parent) / (plf_path.stem + ".rel")
        target.write_bytes(r.data)
        r.path = str(target)
    if result.rels and options.get("name_table", True):
        result.str_path = str(_str_path(static, options.get("symbols"), str_name, out))
        Path(result.str_path).write_bytes(result.string_table)
    if import_list is not None:
        path = _output_path(import_list, out)
        path.write_text("".join(n + "\n" for n in result.imports))
        result.import_path = str(path)
    return result


def _output_path(name: str | os.PathLike, out: Path | None) -> Path:
    """A bare file name goes into ``out``; a path with a folder is taken as given."""
    path = Path(name)
    if out is not None and len(path.parts) == 1:
        return out / path
    return path


def _str_path(static: Source | None, symbols: Source | Sequence[Source] | None,
              str_name: str | os.PathLike | None, out: Path | None) -> Path:
    if str_name is not None:
        return _output_path(str_name, out)
    listed = _symbol_sources(symbols)
    base = static if isinstance(static, (str, os.PathLike)) else (listed[0] if listed else None)
    if isinstance(base, (str, os.PathLike)):
        stem = Path(base)
        return (out if out is not None else stem.parent) / (stem.stem + ".str")
    return (out if out is not None else Path(".")) / "modules.str"


__all__ = ["KIND_MAP", "MISSING_MODES", "WEAK_MODES", "MakerelResult", "Missing", "RelOutput",
           "build", "makerel"]
