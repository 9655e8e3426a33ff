"""``makerel``: partially linked PowerPC ELF files (``.plf``) -> REL modules, as the
Dolphin/Revolution SDK tool of that name does.

Inputs: the static module (an ELF executable, or a DOL or nothing plus a symbol list or map,
see :mod:`linkload.formats.symtab`) and the plf files, each made with
``powerpc-linux-gnu-ld -r`` of objects compiled with ``-mcpu=750 -msdata=none -fno-pic``.
Module ids are ``base_id`` + the plf's position in the list.

Each relocation of module A is resolved at build time, in this order:

* target defined in A (any symbol or section): an entry against A's own id (target section,
  value + addend), except PC-relative references (REL24/REL14 branches; REL32, which
  ``.eh_frame`` uses) to A's sections with data: A is loaded as one block, so their
  displacement is known from the file offsets and is written into the file; no entry;
* target defined in the static module: an entry for module 0, the absolute address as addend
  (and the static module's section index, which the loader ignores, as section);
* target defined in another plf B: an entry for B's id (B's ELF section index of the defining
  symbol, value + addend);
* target undefined everywhere: a branch is pointed at A's ``_unresolved`` (in the file, when A
  defines it; else its displacement is left 0); a weak reference that is not a branch becomes
  an entry for the DOL with address 0 + addend; anything else is an error naming the symbol.

REL section indices are the plf's ELF section indices: sections that are not allocated become
absent entries, the one NOBITS section the bss. A REL, its file and its bss together, holds at
most :data:`~linkload.formats.rel.MAX_MODULE_SIZE` (64 MiB, the largest memory of a Wii): a
section, an alignment or a layout beyond it is a FormatError naming the plf's section. The REL
keeps no names; :class:`RelOutput` keeps the plf's section names (``section_names``) for
mapping back, and the linker takes symbol names from the plf itself.

Besides the RELs, makerel writes the ``.str`` table (the module names, NUL-terminated,
concatenated; each REL's ``nameOffset``/``nameSize`` point into it) and ``import.lst``: the
static-module symbols the modules reference, one per line, for the static module's
``FORCEACTIVE`` list. Given no static module and no symbol list, only ``import.lst`` is made,
listing every name no plf defines (the SDK's first ``makerel`` pass).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..arch import ppc
from ..arch.fields import FieldBatch, kind_set, kinds_of, overflow_message, write_fields
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

Source = str | os.PathLike | bytes | Module

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

    def read(self) -> Module:
        """The REL as a Module, its sections named as in the plf."""
        return rel_format.read(self.data, name=os.path.splitext(os.path.basename(self.plf))[0],
                               file=self.path or self.plf, names=self.section_names)


@dataclass
class MakerelResult:
    """What :func:`build` made: the RELs, the ``.str`` table and the ``import.lst`` names."""

    rels: list[RelOutput]
    string_table: bytes
    imports: list[str]
    str_path: str | None = None
    import_path: str | None = None


# -- inputs -------------------------------------------------------------------------------------
@dataclass
class _Plf:
    path: str
    module: Module
    elf: elf_format.ElfFile
    id: int
    name: str
    elf_index: np.ndarray  # model section -> ELF section index

    def error(self, message: str, cls: type[LinkError] = FormatError, **where) -> LinkError:
        return cls(message, file=self.path, **where)


class _Definition(NamedTuple):
    module: int  # module id (0: the static module)
    section: int  # ELF section index in that module (static: containing section, or 0)
    value: int  # offset in the section (static: the address)
    weak: bool = False
    type: int = 0


def _load_plf(source: Source, module_id: int, name: str | None) -> _Plf:
    if isinstance(source, Module):
        raise LinkError("makerel reads plf files (it needs their ELF section table), not Modules")
    data, path = read_bytes(source)
    ef = elf_format.ElfFile(data, path)
    if ef.header.type != elf_format.ET_REL or ef.header.machine != 20:
        raise FormatError("not a PowerPC relocatable ELF file (make plfs with "
                          "powerpc-linux-gnu-ld -r)", file=path, section="header", offset=16)
    module = elf_format.read(data, file=path)
    index = np.array([s.index for s in module.sections], np.int64)
    return _Plf(path, module, ef, module_id, name if name is not None else path, index)


def _static_definitions(static: Source | None, symbols: Source | None
                        ) -> tuple[dict[str, _Definition], bool]:
    """Name -> definition in the static module, and whether a static module was given."""
    modules: list[Module] = []
    sections_module: Module | None = None
    if static is not None:
        sections_module = _read_static(static)
        modules.append(sections_module)
    if symbols is not None:
        if isinstance(symbols, Module):
            modules.append(symbols)
        else:
            places = symtab.dol_sections(sections_module) if sections_module else None
            modules.append(symtab.read(symbols, sections=places))
    out: dict[str, _Definition] = {}
    for m in modules:
        rows = m.exported()
        rows = rows[m.symbols["section"][rows] == ABS]
        addresses = m.symbols["value"][rows].astype(np.int64)
        sections = _containing_section(sections_module or m, addresses)
        types = m.symbols["type"][rows].tolist()
        weak = (m.symbols["bind"][rows] == WEAK).tolist()
        for name, address, section, w, t in zip(m.symbol_names(rows), addresses.tolist(),
                                                sections.tolist(), weak, types, strict=True):
            old = out.get(name)
            if old is None or (old.weak and not w):
                out[name] = _Definition(0, section, address, w, t)
    return out, bool(modules)


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
    define globally (name -> both files: an error only if some module refers to one)."""
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
    """The plf's exported names and their definitions (ABS symbols: for the static module)."""
    m = plf.module
    table = m.exports()
    rows = np.fromiter(table.values(), np.int64, len(table))
    section = m.symbols["section"][rows].astype(np.int64)
    keep = (section >= 0) | (section == ABS)  # not loaded (TLS): an error when referred to
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
    alloc = (flags & elf_format.SHF_ALLOC) != 0
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
@dataclass
class _Targets:
    """Per relocation: target module id, section (ELF index) and value (before the addend);
    ``status`` 0 resolved, 1 undefined, 2 undefined weak."""

    module: np.ndarray
    section: np.ndarray
    value: np.ndarray
    status: np.ndarray
    static_names: set[str]


def _targets(plf: _Plf, relocs: np.ndarray, statics: dict[str, _Definition],
             plf_defs: tuple[dict[str, _Definition], dict[str, str]]) -> _Targets:
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
    undefined = np.flatnonzero(section == UNDEF)
    if len(undefined):
        _resolve_names(plf, target, undefined, out, statics, plf_defs)
    return out


def _resolve_names(plf: _Plf, target: np.ndarray, undefined: np.ndarray, out: _Targets,
                   statics: dict[str, _Definition],
                   plf_defs: tuple[dict[str, _Definition], dict[str, str]]) -> None:
    m = plf.module
    others, ambiguous = plf_defs
    rows, inverse = np.unique(target[undefined], return_inverse=True)
    names = m.symbol_names(rows)
    own = m.exports()
    weak = (m.symbols["bind"][rows] == WEAK).tolist()
    k = len(rows)
    module, section, value, status = (np.zeros(k, np.int64), np.zeros(k, np.int64),
                                      np.zeros(k, np.int64), np.zeros(k, np.int8))
    for j, name in enumerate(names):
        d = None
        if name in own and m.symbols["section"][own[name]] >= 0:
            row = own[name]
            d = _Definition(plf.id, int(plf.elf_index[m.symbols["section"][row]]),
                            int(m.symbols["value"][row]))
        elif name in statics:
            d = statics[name]
            out.static_names.add(name)
        elif name in ambiguous:
            raise plf.error(f"defined in both {ambiguous[name]}: which module is meant?",
                            LinkError, symbol=name)
        elif name in others:
            d = others[name]
        if d is None:
            status[j] = 2 if weak[j] else 1
            continue
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


@dataclass
class _Plan:
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
    """The relocations (R_PPC_NONE dropped) and their REL types; an error for kinds a REL
    cannot express."""
    relocs = plf.module.relocations
    kinds = relocs["kind"].astype(np.int64)
    relocs, kinds = relocs[kinds != 0], kinds[kinds != 0]
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


def _plan(plf: _Plf, specs: list[rel_format.RelSection], statics: dict[str, _Definition],
          plf_defs: tuple[dict[str, _Definition], dict[str, str]]) -> _Plan:
    relocs, rtype = _supported(plf)
    _check_fields(plf, relocs)
    t = _targets(plf, relocs, statics, plf_defs)
    value = t.value + relocs["addend"].astype(np.int64)
    branch = np.isin(rtype, rel_format.BRANCH_TYPES)
    has_data = np.array([s.has_data for s in specs] + [False])
    own_data = (t.module == plf.id) & (t.status == 0) & has_data[np.minimum(t.section, len(specs))]
    in_file = _IN_FILE[rtype] & own_data
    unresolved = (t.status > 0) & branch
    _check_undefined(plf, relocs, t, branch)
    entry = ~in_file & ~unresolved
    for bad, message in ((entry & (rtype == ppc.R_PPC_REL32), _kind_problem(ppc.R_PPC_REL32)),
                         (entry & (t.section > 255), "the target section's index does not fit "
                                                     "a REL entry (8 bits)")):
        if bad.any():
            raise _reloc_error(plf, relocs, int(np.flatnonzero(bad)[0]), message)
    weak = entry & (t.status == 2)  # weak and undefined: address 0, through the DOL's list
    t.module[weak], t.section[weak] = 0, 0
    value[weak] = relocs["addend"][weak]
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


def _check_undefined(plf: _Plf, relocs: np.ndarray, t: _Targets, branch: np.ndarray) -> None:
    missing = np.flatnonzero((t.status == 1) & ~branch)
    if not len(missing):
        return
    names = sorted({plf.module.symbol_name(int(relocs["target"][i])) for i in missing})
    more = f" (and {len(names) - 1} more: {', '.join(names[1:6])})" if len(names) > 1 else ""
    raise _reloc_error(plf, relocs, int(missing[0]),
                       f"undefined in this module, the static module and every other module"
                       f"{more}; only branches can go to _unresolved", UndefinedSymbolError)


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
    if not specs[index].has_data or index > 255:
        raise plf.error(f"is in section {plf.elf.names[index]}, which holds no code", symbol=name)
    return index, int(plf.module.symbols["value"][row])


# -- the tool -----------------------------------------------------------------------------------
def build(static: Source | None, plfs: Sequence[Source], *, version: int = 3, base_id: int = 1,
          module_names: Sequence[str] | None = None, symbols: Source | None = None,
          align: int | None = None, bss_align: int | None = None) -> MakerelResult:
    """Build the RELs of ``plfs`` against ``static`` in memory (no files written).

    ``static`` is the static module's ELF executable (or a DOL, or a Module), ``symbols`` a
    symbol list or map (more static-module symbols, or all of them); with neither, only the
    import list is made. ``module_names`` name the modules in the ``.str`` table (default: the
    plf paths as given). ``align``/``bss_align`` override the computed header values (v >= 2).
    """
    if version not in rel_format.HEADER_SIZES:
        raise LinkError(f"REL version {version} is not supported (1, 2 or 3)")
    if base_id < 1 or base_id + len(plfs) > 1 << 32:
        raise LinkError(f"module ids {base_id}..{base_id + len(plfs) - 1} are out of range "
                        "(1 .. 2**32-1; 0 is the static module)")
    names = list(module_names) if module_names is not None else [None] * len(plfs)
    if len(names) != len(plfs):
        raise LinkError(f"{len(names)} module names for {len(plfs)} plfs")
    loaded = [_load_plf(p, base_id + i, n) for i, (p, n) in enumerate(zip(plfs, names,
                                                                          strict=True))]
    plf_defs, ambiguous = _plf_definitions(loaded)
    statics, have_static = _static_definitions(static, symbols)
    if not have_static:
        return MakerelResult([], b"", _undefined_names(loaded, plf_defs))
    string_table = bytearray()
    rels, referenced = [], set()
    for plf in loaded:
        name_offset = len(string_table)
        encoded = plf.name.encode("utf-8", "surrogateescape") + b"\0"
        string_table += encoded
        out, used = _build_one(plf, statics, (plf_defs, ambiguous), version, name_offset,
                               len(encoded), align, bss_align)
        rels.append(out)
        referenced |= used
    return MakerelResult(rels, bytes(string_table), sorted(referenced))


def _undefined_names(plfs: list[_Plf], plf_defs: dict[str, _Definition]) -> list[str]:
    names: set[str] = set()
    for plf in plfs:
        m = plf.module
        target = np.unique(m.relocations["target"])
        target = target[m.symbols["section"][target] == UNDEF]
        names.update(n for n in m.symbol_names(target) if n and n not in plf_defs)
    return sorted(names)


def _build_one(plf: _Plf, statics: dict[str, _Definition],
               plf_defs: tuple[dict[str, _Definition], dict[str, str]], version: int,
               name_offset: int, name_size: int, align: int | None,
               bss_align: int | None) -> tuple[RelOutput, set[str]]:
    specs = _section_specs(plf)
    offsets_list, data_end = rel_format.layout_sections(specs, version)
    _check_layout(plf, specs, offsets_list)
    offsets = np.array(offsets_list, np.int64)
    image = np.zeros(data_end, np.uint8)
    for spec, at in zip(specs, offsets_list, strict=True):
        if spec.has_data and spec.size:
            image[at:at + spec.size] = np.frombuffer(spec.data, np.uint8)
    unresolved = _entry_point(plf, "_unresolved", specs)
    plan = _plan(plf, specs, statics, plf_defs)
    in_file = _resolve_in_file(plf, plan, offsets, image, unresolved,
                               specs[unresolved[0]].has_data)
    entries = _entries(plan)
    patched = [rel_format.RelSection(s.size, image[at:at + s.size].tobytes(), s.align, s.exec,
                                     offset=at) if s.has_data else s
               for s, at in zip(specs, offsets_list, strict=True)]
    data = rel_format.write(plf.id, patched, entries, version=version,
                            name_offset=name_offset, name_size=name_size,
                            prolog=_entry_point(plf, "_prolog", specs),
                            epilog=_entry_point(plf, "_epilog", specs), unresolved=unresolved,
                            align=align, bss_align=bss_align)
    out = RelOutput(plf.id, plf.name, plf.path, data, list(plf.elf.names), name_offset,
                    name_size, len(entries), in_file)
    return out, plan.targets.static_names


def makerel(static: Source | None, plfs: Sequence[Source], *, version: int = 3,
            base_id: int = 1, str_name: str | os.PathLike | None = None,
            import_list: str | os.PathLike | None = "import.lst",
            out_dir: str | os.PathLike | None = None, module_names: Sequence[str] | None = None,
            symbols: Source | None = None, align: int | None = None,
            bss_align: int | None = None) -> MakerelResult:
    """Build the RELs (:func:`build`) and write them: ``a.rel`` for ``a.plf`` beside it (in
    ``out_dir`` if given), the ``.str`` table (``str_name``, default the static module's name
    with ``.str``, beside it or in ``out_dir``) and ``import.lst`` (``import_list``; None: not
    written). A bare file name for either goes into ``out_dir``; a path is taken as given."""
    result = build(static, plfs, version=version, base_id=base_id, module_names=module_names,
                   symbols=symbols, align=align, bss_align=bss_align)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for r in result.rels:
        plf_path = Path(r.plf)
        target = (out if out is not None else plf_path.parent) / (plf_path.stem + ".rel")
        target.write_bytes(r.data)
        r.path = str(target)
    if result.rels:
        result.str_path = str(_str_path(static, symbols, str_name, out))
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


def _str_path(static: Source | None, symbols: Source | None, str_name: str | os.PathLike | None,
              out: Path | None) -> Path:
    if str_name is not None:
        return _output_path(str_name, out)
    base = static if isinstance(static, (str, os.PathLike)) else symbols
    if isinstance(base, (str, os.PathLike)):
        stem = Path(base)
        return (out if out is not None else stem.parent) / (stem.stem + ".str")
    return (out if out is not None else Path(".")) / "modules.str"


__all__ = ["KIND_MAP", "MakerelResult", "RelOutput", "build", "makerel"]
