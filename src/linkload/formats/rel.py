"""REL: the relocatable modules of the Dolphin/Revolution SDK (GameCube, Wii), bytes ⇄ Module.

A REL is one block loaded as is (header, section table, section data, then the import table and
the relocation lists), plus a bss allocated apart. It has no symbol table: every reference is a
relocation entry against ``(module id, section index, offset)``, with module id 0 meaning the
static module (the DOL), whose entries carry absolute addresses. See ``docs`` and the shared
``rel-format.md`` for the byte layouts.

:func:`read` turns a REL into a :class:`~linkload.model.Module` (the mapping is documented on
the function); :func:`write` lays a REL out from sections and a table of entries, exactly as
Nintendo's ``makerel`` orders it for versions 1, 2 and 3; :func:`write_module` writes a module
:func:`read` produced back (``write -> read -> write`` gives identical bytes).

Relocation lists are parsed and written as numpy structured arrays of their 8-byte entries.
Every offset, size and index is checked; a malformed file raises
:class:`~linkload.errors.FormatError` naming the file, the part of it (``"header"``,
``"section 2"``, ``"import 3"``, ``"relocation list for module 5"``) and the file offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..arch import ppc
from ..arch.disasm import disassemble
from ..columns import distinct
from ..errors import FormatError, LinkError
from ..model import (
    ABS,
    FUNC,
    GLOBAL,
    NOTYPE,
    RELOC_DTYPE,
    SYMBOL_DTYPE,
    UNDEF,
    Module,
    OneBlock,
    Section,
    SectionKind,
)
from . import elf
from .base import Source, file_and_bytes, module_name, read_bytes

# -- relocation types ---------------------------------------------------------------------------
# A REL's types are the ELF R_PPC numbers its loader knows (their names and encodings are the
# PowerPC arch's), and the list-control types of the format itself.
MACHINE = "ppc"  # a REL holds PowerPC code
R_DOLPHIN_NOP, R_DOLPHIN_SECTION, R_DOLPHIN_END, R_DOLPHIN_MRKREF = 201, 202, 203, 204
PATCHING_TYPES = tuple(range(ppc.R_PPC_NONE, ppc.R_PPC_REL14_BRNTAKEN + 1))
BRANCH_TYPES = (ppc.R_PPC_REL24, ppc.R_PPC_REL14, ppc.R_PPC_REL14_BRTAKEN, ppc.R_PPC_REL14_BRNTAKEN)

TYPE_NAMES = {k: ppc.KINDS[k].name for k in PATCHING_TYPES} | {
    R_DOLPHIN_NOP: "R_DOLPHIN_NOP", R_DOLPHIN_SECTION: "R_DOLPHIN_SECTION",
    R_DOLPHIN_END: "R_DOLPHIN_END", R_DOLPHIN_MRKREF: "R_DOLPHIN_MRKREF",
}

# Bytes a type patches at its position (0: unknown, checked only to lie inside the section).
FIELD_WIDTH = np.zeros(256, np.int64)
FIELD_WIDTH[list(PATCHING_TYPES)] = ppc.ARCH.tables.width[list(PATCHING_TYPES)]


def type_name(kind: int) -> str:
    """``R_PPC_REL24`` for 10, ``type 99`` for an unknown number."""
    return TYPE_NAMES.get(int(kind), f"type {int(kind)}")


# -- file structures ----------------------------------------------------------------------------
HEADER_SIZES = {1: 0x40, 2: 0x48, 3: 0x4C}
#: The largest REL a GameCube or Wii can load: the largest memory of either console, the
#: Wii's MEM2, holds 64 MiB (MEM1 holds 24 MiB). The writer refuses a file, a bss or a
#: section alignment beyond it: such a module could never be loaded, and laying it out would
#: take that much memory here.
MAX_MODULE_SIZE = 64 << 20
MAX_VERSION = 3
_HEADER = struct.Struct(">12I4B3I")  # the 0x40 bytes every version has
_HEADER_FIELDS = (
    "id", "next", "prev", "numSections", "sectionInfoOffset", "nameOffset", "nameSize",
    "version", "bssSize", "relOffset", "impOffset", "impSize", "prologSection",
    "epilogSection", "unresolvedSection", "bssSection", "prolog", "epilog", "unresolved",
)
FIELD_OFFSETS = {name: off for name, off in zip(
    _HEADER_FIELDS + ("align", "bssAlign", "fixSize"),
    list(range(0, 0x30, 4)) + [0x30, 0x31, 0x32, 0x33, 0x34, 0x38, 0x3C, 0x40, 0x44, 0x48],
    strict=True)}

#: One relocation entry as stored in the file.
RAW_DTYPE = np.dtype([("offset", ">u2"), ("type", "u1"), ("section", "u1"), ("addend", ">u4")])
#: One import table entry.
IMPORT_DTYPE = np.dtype([("id", ">u4"), ("offset", ">u4")])
#: One section table entry (bit 0 of ``offset`` is the exec flag).
SECTION_DTYPE = np.dtype([("offset", ">u4"), ("size", ">u4")])

#: A decoded relocation entry: what :func:`write` takes and :class:`RelFile` yields.
#: ``module`` is the target module id, ``section`` the section patched, ``offset`` the position
#: in it, ``target`` the target section of module ``module`` (for the DOL: the static module's
#: section index, which the loader ignores), ``addend`` the offset in that section (for the
#: DOL: the absolute address); ``at`` is the entry's file offset (only filled by the reader).
ENTRY_DTYPE = np.dtype([("module", "<u4"), ("section", "<u4"), ("offset", "<u4"), ("type", "u1"),
                        ("target", "u1"), ("addend", "<u4"), ("at", "<u4")])


@dataclass(frozen=True)
class RelHeader:
    """Every field of a REL header (``OSModuleInfo`` + ``OSModuleHeader``), named as in the SDK.

    ``align`` and ``bssAlign`` are 0 for version 1, ``fixSize`` is 0 below version 3.
    """

    id: int
    next: int
    prev: int
    numSections: int
    sectionInfoOffset: int
    nameOffset: int
    nameSize: int
    version: int
    bssSize: int
    relOffset: int
    impOffset: int
    impSize: int
    prologSection: int
    epilogSection: int
    unresolvedSection: int
    bssSection: int
    prolog: int
    epilog: int
    unresolved: int
    align: int = 0
    bssAlign: int = 0
    fixSize: int = 0

    @property
    def size(self) -> int:
        """Bytes the header occupies in the file."""
        return HEADER_SIZES[self.version]

    def pack(self) -> bytes:
        """The header's bytes."""
        head = _HEADER.pack(*(getattr(self, f) for f in _HEADER_FIELDS))
        if self.version >= 2:
            head += struct.pack(">2I", self.align, self.bssAlign)
        if self.version >= 3:
            head += struct.pack(">I", self.fixSize)
        return head


def parse_header(data: bytes | memoryview, file: str = "<bytes>") -> RelHeader:
    """The header of ``data``, with the version and the file size checked (nothing else)."""
    size = len(data)
    if size < HEADER_SIZES[1]:
        raise FormatError(f"file of {size:#x} bytes is shorter than a REL header (0x40 bytes)",
                          file=file, section="header", offset=0)
    values = dict(zip(_HEADER_FIELDS, _HEADER.unpack_from(data, 0), strict=True))
    version = values["version"]
    if not 1 <= version <= MAX_VERSION:
        raise FormatError(f"REL version {version} is not supported (1 to {MAX_VERSION})",
                          file=file, section="header", offset=FIELD_OFFSETS["version"])
    if size < HEADER_SIZES[version]:
        raise FormatError(f"file of {size:#x} bytes is shorter than a version {version} header "
                          f"({HEADER_SIZES[version]:#x} bytes)", file=file, section="header",
                          offset=HEADER_SIZES[1])
    if version >= 2:
        values["align"], values["bssAlign"] = struct.unpack_from(">2I", data, 0x40)
    if version >= 3:
        values["fixSize"] = struct.unpack_from(">I", data, 0x48)[0]
    return RelHeader(**values)


def _power_of_two_or_zero(value: int) -> bool:
    return value & (value - 1) == 0


class RelFile:
    """Raw, checked access to a REL file. :func:`read` turns it into a Module.

    ``header`` (:class:`RelHeader`), ``sections`` (the section table: columns ``offset`` with the
    exec bit cleared, ``size`` and ``exec``), ``imports`` (the import table, file order),
    ``entries`` (:data:`ENTRY_DTYPE`: every patching entry of every used list, in file order).
    """

    def __init__(self, data: bytes | bytearray | memoryview, file: str = "<bytes>") -> None:
        self.file = file
        self.data = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        self.header = parse_header(self.data, file)
        self._check_header()
        self.sections = self._read_sections()
        self.bss_index = self._find_bss()
        self._check_entry_points()
        self.imports = self._read_imports()
        self.used_imports = self._first_of_each_id()
        self.entries = self._read_lists()

    # -- checked primitives ----------------------------------------------------------------
    def error(self, message: str, section: str | None = "header", offset: int | None = None):
        return FormatError(message, file=self.file, section=section, offset=offset)

    def _field_error(self, field: str, message: str):
        return self.error(f"{field} {getattr(self.header, field):#x}: {message}",
                          offset=FIELD_OFFSETS[field])

    def _check_header(self) -> None:
        h, size = self.header, len(self.data)
        if h.id == 0:
            raise self._field_error("id", "module id 0 is the static module (the DOL), not a REL")
        for field in ("next", "prev"):
            if getattr(h, field):
                raise self._field_error(field, "the list links must be 0 in a file")
        if h.numSections == 0:
            raise self._field_error("numSections", "a REL has at least the null section")
        table_end = h.sectionInfoOffset + 8 * h.numSections
        if h.sectionInfoOffset < h.size or table_end > size:
            raise self._field_error("sectionInfoOffset",
                                    f"section table of {h.numSections} entries ends at "
                                    f"{table_end:#x}, outside {h.size:#x}..{size:#x}")
        if h.impSize % IMPORT_DTYPE.itemsize:
            raise self._field_error("impSize", "not a multiple of 8")
        if h.impOffset + h.impSize > size or (h.impSize and h.impOffset < h.size):
            raise self._field_error("impOffset", f"import table of {h.impSize:#x} bytes lies "
                                    f"outside {h.size:#x}..{size:#x}")
        if h.relOffset > size or (h.relOffset and h.relOffset < h.size):
            raise self._field_error("relOffset", f"outside {h.size:#x}..{size:#x}")
        if h.bssSection:
            raise self._field_error("bssSection", "must be 0 in a file (set when linked)")
        if h.version >= 2:
            for field in ("align", "bssAlign"):
                if not _power_of_two_or_zero(getattr(h, field)):
                    raise self._field_error(field, "not a power of two")
        if h.version >= 3 and not h.size <= h.fixSize <= size:
            raise self._field_error("fixSize", f"outside {h.size:#x}..{size:#x}")

    def _read_sections(self) -> np.ndarray:
        h = self.header
        raw = np.frombuffer(self.data, SECTION_DTYPE, h.numSections, h.sectionInfoOffset)
        table = np.zeros(h.numSections, [("offset", "<i8"), ("size", "<i8"), ("exec", "?")])
        table["offset"] = raw["offset"] & ~np.uint32(1)
        table["size"] = raw["size"]
        table["exec"] = (raw["offset"] & 1).astype(bool)
        if table["offset"][0] or table["size"][0]:
            raise self.error("entry 0 must be the null section (offset 0, size 0)", "section 0",
                             h.sectionInfoOffset)
        self._check_section_places(table)
        return table

    def _check_section_places(self, table: np.ndarray) -> None:
        h, size = self.header, len(self.data)
        offset, length = table["offset"], table["size"]
        table_start, table_end = h.sectionInfoOffset, h.sectionInfoOffset + 8 * h.numSections
        present = offset != 0
        outside = present & (offset + length > size)
        over_header = present & ~outside & (offset < h.size)
        over_table = present & ~outside & (offset < table_end) \
            & (offset + np.maximum(length, 1) > table_start)
        for mask, what in ((outside, f"lies outside the file ({size:#x} bytes)"),
                           (over_header, f"overlaps the header (0..{h.size:#x})"),
                           (over_table, f"overlaps the section table ({table_start:#x}.."
                                        f"{table_end:#x})")):
            hits = np.flatnonzero(mask)
            if len(hits):
                i = int(hits[0])
                raise self.error(f"data at {int(offset[i]):#x}, size {int(length[i]):#x}, {what}",
                                 f"section {i}", int(offset[i]))
        order = np.flatnonzero(present & (length > 0))
        order = order[np.argsort(offset[order], kind="stable")]
        clash = np.flatnonzero(offset[order][1:] < (offset + length)[order][:-1])
        if len(clash):
            i, j = int(order[clash[0]]), int(order[clash[0] + 1])
            raise self.error(f"data at {int(offset[j]):#x} overlaps section {i} "
                             f"({int(offset[i]):#x}..{int(offset[i] + length[i]):#x})",
                             f"section {j}", int(offset[j]))

    def _find_bss(self) -> int:
        """Index of the bss section (offset 0, size > 0), or 0 when there is none."""
        t = self.sections
        hits = np.flatnonzero((t["offset"] == 0) & (t["size"] > 0))
        entry_at = self.header.sectionInfoOffset
        if len(hits) > 1:
            i, j = int(hits[0]), int(hits[1])
            raise self.error(f"two bss sections ({i} and {j}); a REL has at most one",
                             f"section {j}", entry_at + 8 * j)
        if not len(hits):
            return 0
        i = int(hits[0])
        if t["exec"][i]:
            raise self.error("the bss section is marked executable", f"section {i}",
                             entry_at + 8 * i)
        if int(t["size"][i]) > self.header.bssSize:
            raise self._field_error("bssSize", f"smaller than bss section {i} "
                                    f"({int(t['size'][i]):#x} bytes)")
        return i

    def present(self, index: int) -> bool:
        """True if section ``index`` has data in the file or is the bss."""
        return 0 <= index < len(self.sections) and (int(self.sections["offset"][index]) != 0
                                                    or index == self.bss_index != 0)

    def _check_entry_points(self) -> None:
        h = self.header
        for what in ("prolog", "epilog", "unresolved"):
            section, offset = getattr(h, what + "Section"), getattr(h, what)
            if section == 0:
                continue
            if not self.present(section) or section == self.bss_index:
                raise self._field_error(what + "Section", "not a section with code")
            if offset >= int(self.sections["size"][section]):
                raise self._field_error(what, f"beyond section {section}'s "
                                        f"{int(self.sections['size'][section]):#x} bytes")

    def _read_imports(self) -> np.ndarray:
        h = self.header
        table = np.frombuffer(self.data, IMPORT_DTYPE, h.impSize // 8, h.impOffset if h.impSize
                              else 0)
        bad = np.flatnonzero((table["offset"] < h.size)
                             | (table["offset"].astype(np.int64) + 8 > len(self.data)))
        if len(bad):
            k = int(bad[0])
            raise self.error(f"relocation list for module {int(table['id'][k])} at "
                             f"{int(table['offset'][k]):#x} lies outside {h.size:#x}.."
                             f"{len(self.data):#x}", f"import {k}", h.impOffset + 8 * k)
        return table

    def _first_of_each_id(self) -> list[int]:
        """Indices of the imports the loader uses: the first with each module id."""
        _, first = np.unique(self.imports["id"], return_index=True)
        return sorted(first.tolist())

    # -- relocation lists --------------------------------------------------------------------
    def _read_lists(self) -> np.ndarray:
        parts = [self._read_list(k) for k in self.used_imports]
        return np.concatenate(parts) if parts else np.zeros(0, ENTRY_DTYPE)

    def list_entries(self, start: int, module: int) -> np.ndarray:
        """The raw entries of the list at ``start``, up to and without its R_DOLPHIN_END."""
        where = f"relocation list for module {module}"
        count = (len(self.data) - start) // RAW_DTYPE.itemsize
        raw = np.frombuffer(self.data, RAW_DTYPE, count, start)
        seen, chunk = 0, 4096
        while seen < count:  # look for the end in growing chunks, not the whole file each time
            hits = np.flatnonzero(raw["type"][seen:seen + chunk] == R_DOLPHIN_END)
            if len(hits):
                return raw[:seen + int(hits[0])]
            seen, chunk = seen + chunk, chunk * 4
        raise self.error("no R_DOLPHIN_END before the end of the file", where, start)

    def _read_list(self, k: int) -> np.ndarray:
        module, start = int(self.imports["id"][k]), int(self.imports["offset"][k])
        where = f"relocation list for module {module}"
        raw = self.list_entries(start, module)
        at = start + 8 * np.arange(len(raw), dtype=np.int64)
        types = raw["type"]
        is_section = types == R_DOLPHIN_SECTION
        self._check_section_entries(raw, is_section, at, where)
        # Position: the offsets summed since the last R_DOLPHIN_SECTION (whose own is ignored).
        step = np.where(is_section, 0, raw["offset"].astype(np.int64))
        total = np.cumsum(step)
        last = np.maximum.accumulate(np.where(is_section, np.arange(len(raw)), 0))
        keep = ~is_section & (types != R_DOLPHIN_NOP)
        position = (total - total[last])[keep]
        section = raw["section"][last][keep].astype(np.int64)
        self._check_positions(section, position, types[keep], at[keep], where)
        out = np.zeros(len(position), ENTRY_DTYPE)
        out["module"] = module
        out["section"] = section
        out["offset"] = position
        out["type"] = types[keep]
        out["target"] = raw["section"][keep]
        out["addend"] = raw["addend"][keep]
        out["at"] = at[keep]
        if module == self.header.id:
            self._check_own_targets(out, where)
        return out

    def _check_section_entries(self, raw: np.ndarray, is_section: np.ndarray, at: np.ndarray,
                               where: str) -> None:
        if len(raw) and not is_section[0]:
            raise self.error(f"{type_name(raw['type'][0])} before the first R_DOLPHIN_SECTION",
                             where, int(at[0]))
        for s in distinct(raw["section"][is_section]).tolist():
            if self.present(s) and s != self.bss_index:
                continue
            first = int(np.flatnonzero(is_section & (raw["section"] == s))[0])
            why = ("does not exist" if s >= len(self.sections) else
                   "is the bss section" if s == self.bss_index else "is absent")
            raise self.error(f"R_DOLPHIN_SECTION to section {s}, which {why}", where,
                             int(at[first]))

    def _check_positions(self, section: np.ndarray, position: np.ndarray, types: np.ndarray,
                         at: np.ndarray, where: str) -> None:
        sizes = self.sections["size"][section]
        bad = np.flatnonzero(position + FIELD_WIDTH[types] > sizes)
        if len(bad):
            i = int(bad[0])
            raise self.error(f"{type_name(types[i])} patches section {int(section[i])}"
                             f"+{int(position[i]):#x}, beyond its {int(sizes[i]):#x} bytes",
                             where, int(at[i]))

    def _check_own_targets(self, entries: np.ndarray, where: str) -> None:
        targets = distinct(entries["target"])
        bad = [int(s) for s in targets if not self.present(int(s))]
        if bad:
            e = entries[int(np.flatnonzero(entries["target"] == bad[0])[0])]
            raise self.error(f"{type_name(e['type'])} refers to section {bad[0]} of this module, "
                             f"which is absent", where, int(e["at"]))


# -- REL -> Module ------------------------------------------------------------------------------
def section_kind(rel: RelFile, index: int) -> SectionKind:
    """TEXT for an executable entry, BSS for the bss, DATA otherwise."""
    if rel.sections["exec"][index]:
        return SectionKind.TEXT
    return SectionKind.BSS if index == rel.bss_index != 0 else SectionKind.DATA


@dataclass(frozen=True)
class RelInfo:
    """What a REL's file says beyond its Module (``Module.format_info``): the header, the
    import table as (module id, list offset) pairs in file order, and the decoded relocation
    entries (:data:`ENTRY_DTYPE`, one per relocation row). Only this file reads it back."""

    header: RelHeader
    imports: list[tuple[int, int]]
    entries: np.ndarray


OS_LINK_FIXED_ROUNDING = 32  # OSLinkFixed puts the bss at fixSize rounded up to this


def loading(header: RelHeader, data: bytes | memoryview) -> OneBlock:
    """How a REL loads: the whole file as one block, aligned to ``align`` (v2+), its bss to
    ``bssAlign``; from ``fixSize`` on (v3, rounded as OSLinkFixed rounds it) the block's tail
    is no longer needed once linked."""
    tail = None
    if header.version >= 3 and header.fixSize:
        tail = align_up(header.fixSize, OS_LINK_FIXED_ROUNDING)
    return OneBlock(data, align=header.align or 1, bss_align=header.bssAlign or 1,
                    reusable_tail=tail)


def read(source: Source, name: str | None = None, file: str | None = None,
         names: Sequence[str] | None = None) -> Module:
    """Read a REL into a Module.

    The mapping (the linker relies on it):

    * ``sections``: one per section table entry, in table order (model index == REL index),
      named ``section{i}`` unless ``names`` gives better names; TEXT for the exec bit, BSS for
      the bss entry, DATA otherwise; ``image_offset`` is the file offset (None for the bss and
      absent entries, which are size-0 sections with ``data == b""``); ``align`` is the
      header's ``align`` (version >= 2 and non-zero, else 4); for the bss, ``bssAlign``.
    * ``symbols``: row 0 null; ``@rel/{id}/{s}`` (GLOBAL, section s, value 0) for each present
      section; ``_prolog``/``_epilog``/``_unresolved`` (GLOBAL FUNC) when set; an UNDEF GLOBAL
      ``@rel/{M}/{S}`` per (other module M, section S) the relocations use; an ABS ``@dol``
      (value 0) when there are references to the static module.
    * ``relocations``: one row per patching entry of each used list (file order): the section
      patched, the position, the REL type as ``kind`` (the ELF R_PPC numbers; unknown types and
      R_DOLPHIN_MRKREF kept as they are), the target row above, the entry's addend.
    * ``loading`` is :func:`loading` (the whole file as one block), ``lazy_data`` is set,
      ``name_in_table`` is (nameOffset, nameSize), ``format_info`` a :class:`RelInfo`.
    """
    data, file = file_and_bytes(source, file)
    rel = RelFile(data, file)
    sections = _sections(rel, names)
    symbols, strtab, rows = _symbols(rel)
    relocations = _relocations(rel, rows)
    imports = [(int(i), int(o)) for i, o in zip(rel.imports["id"], rel.imports["offset"],
                                                strict=True)]
    h = rel.header
    return Module(module_name(file, name), MACHINE, ">", 32, sections, symbols, strtab,
                  relocations, file, "rel", loading=loading(h, memoryview(rel.data)),
                  lazy_data=True, name_in_table=(h.nameOffset, h.nameSize),
                  format_info=RelInfo(h, imports, rel.entries))


def _sections(rel: RelFile, names: Sequence[str] | None) -> list[Section]:
    h = rel.header
    align = h.align if h.version >= 2 and h.align else 4
    bss_align = h.bssAlign if h.version >= 2 and h.bssAlign else align
    view = memoryview(rel.data)
    out = []
    for i in range(h.numSections):
        offset, size = int(rel.sections["offset"][i]), int(rel.sections["size"][i])
        kind = section_kind(rel, i)
        name = names[i] if names is not None and i < len(names) and names[i] else f"section{i}"
        if kind == SectionKind.BSS:
            out.append(Section(name, kind, size, bss_align, None, i, file=rel.file))
        elif offset == 0:
            out.append(Section(name, kind, 0, align, b"", i, file=rel.file))
        else:
            out.append(Section(name, kind, size, align, view[offset:offset + size], i,
                               file=rel.file, image_offset=offset))
    return out


def _symbols(rel: RelFile) -> tuple[np.ndarray, bytes, dict]:
    """The symbol rows, their string table, and ``rows``: how to find the target row of an
    entry (``own``: per section index, ``other``: sorted keys M*256+S and their first row,
    ``dol``: the ``@dol`` row)."""
    h, entries = rel.header, rel.entries
    present = [i for i in range(h.numSections) if rel.present(i)]
    names: list[str] = [""]
    specs: list[tuple[int, int, int, int]] = [(UNDEF, 0, 0, NOTYPE)]  # section, value, bind, type
    own = np.zeros(256, np.int64)
    for s in present:
        if s < 256:
            own[s] = len(names)
        names.append(f"@rel/{h.id}/{s}")
        specs.append((s, 0, GLOBAL, NOTYPE))
    for what in ("prolog", "epilog", "unresolved"):
        if getattr(h, what + "Section"):
            names.append("_" + what)
            specs.append((getattr(h, what + "Section"), getattr(h, what), GLOBAL, FUNC))
    foreign = (entries["module"] != h.id) & (entries["module"] != 0)
    keys = distinct(entries["module"][foreign].astype(np.int64) * 256 + entries["target"][foreign])
    other_base = len(names)
    for key in keys.tolist():
        names.append(f"@rel/{key >> 8}/{key & 0xFF}")
        specs.append((UNDEF, 0, GLOBAL, NOTYPE))
    dol = -1
    if (entries["module"] == 0).any():
        dol = len(names)
        names.append("@dol")
        specs.append((ABS, 0, GLOBAL, NOTYPE))
    strtab, offsets = _string_table(names)
    symbols = np.zeros(len(names), SYMBOL_DTYPE)
    symbols["name"] = offsets
    symbols["section"] = [s[0] for s in specs]
    symbols["value"] = [s[1] for s in specs]
    symbols["bind"] = [s[2] for s in specs]
    symbols["type"] = [s[3] for s in specs]
    symbols["module"] = -1
    return symbols, strtab, {"own": own, "keys": keys, "other_base": other_base, "dol": dol}


def _string_table(names: list[str]) -> tuple[bytes, list[int]]:
    offsets, parts, at = [], [b"\0"], 1
    for n in names:
        if not n:
            offsets.append(0)
            continue
        encoded = n.encode("utf-8", "surrogateescape") + b"\0"
        offsets.append(at)
        parts.append(encoded)
        at += len(encoded)
    return b"".join(parts), offsets


def _relocations(rel: RelFile, rows: dict) -> np.ndarray:
    entries, own_id = rel.entries, rel.header.id
    out = np.zeros(len(entries), RELOC_DTYPE)
    out["section"] = entries["section"]
    out["offset"] = entries["offset"]
    out["kind"] = entries["type"]
    out["addend"] = entries["addend"]
    module = entries["module"].astype(np.int64)
    target = entries["target"].astype(np.int64)
    own = module == own_id
    dol = module == 0
    other = ~own & ~dol
    out["target"][own] = rows["own"][target[own]]
    if dol.any():
        out["target"][dol] = rows["dol"]
    if other.any():
        keys = module[other] * 256 + target[other]
        out["target"][other] = rows["other_base"] + np.searchsorted(rows["keys"], keys)
    return out


# -- writing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RelSection:
    """One section table entry to write.

    ``data`` holds the bytes of a section with contents; ``bss`` marks the bss (``size`` bytes,
    no data); ``absent`` an entry (0, 0; ``exec`` may still be set, as some originals have it).
    ``offset`` pins the file offset (to keep a read file's layout); ``wanted_offset`` places
    the section there if what precedes it ends there or before (to match an original's
    layout), else as by default: at the next multiple of ``align`` (at least 2, so that bit 0
    stays free for the exec flag).
    """

    size: int = 0
    data: bytes | bytearray | memoryview = b""
    align: int = 4
    exec: bool = False
    bss: bool = False
    absent: bool = False
    offset: int | None = None
    wanted_offset: int | None = None

    @property
    def has_data(self) -> bool:
        return not (self.bss or self.absent)


def align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


def layout_sections(sections: Sequence[RelSection], version: int) -> tuple[list[int], int]:
    """File offsets of the sections (0 for the bss and absent entries) and the end of the data,
    as :func:`write` lays them out."""
    at = HEADER_SIZES[version] + 8 * len(sections)
    offsets = []
    for i, s in enumerate(sections):
        if not s.has_data:
            offsets.append(0)
            continue
        place = s.offset if s.offset is not None else _section_place(s, at)
        if place < at or place % 2:
            raise LinkError(f"section {i}: file offset {place:#x} is odd or overlaps what "
                            f"precedes it (ends at {at:#x})")
        offsets.append(place)
        at = place + s.size
    return offsets, at


def _section_place(section: RelSection, at: int) -> int:
    """Where a section goes when what precedes it ends at ``at``."""
    wanted = section.wanted_offset
    if wanted is not None and wanted >= at and wanted % 2 == 0:
        return wanted
    return align_up(at, max(section.align, 2))


def _check_entries(sections: Sequence[RelSection], entries: np.ndarray) -> None:
    patched = entries["section"].astype(np.int64)
    bad = np.flatnonzero((patched >= len(sections)) | (patched == 0))
    if not len(bad):
        has_data = np.array([s.has_data for s in sections])
        sizes = np.array([s.size for s in sections], np.int64)
        ends = entries["offset"].astype(np.int64) + FIELD_WIDTH[entries["type"]]
        bad = np.flatnonzero(~has_data[patched] | (ends > sizes[patched]))
    if len(bad):
        e = entries[int(bad[0])]
        raise LinkError(f"relocation entry patches section {int(e['section'])}+"
                        f"{int(e['offset']):#x}, which has no data there")
    if len(entries) and int(entries["section"].max()) > 255:
        raise LinkError("REL relocation lists address at most 256 sections")


def build_lists(entries: np.ndarray, module_id: int, version: int) -> tuple[np.ndarray, np.ndarray]:
    """The relocation lists of ``entries`` as file entries (:data:`RAW_DTYPE`), and the import
    table (:data:`IMPORT_DTYPE`, list offsets relative to the first list).

    Lists are ordered by module id (v1/v2) or: other modules ascending, the module itself, the
    DOL last (v3). Each starts with an R_DOLPHIN_SECTION per patched section, whose entries
    follow sorted by offset, gaps over 0xFFFF bridged by R_DOLPHIN_NOP entries of 0xFFFF, and
    ends with R_DOLPHIN_END.
    """
    if not len(entries):
        return np.zeros(0, RAW_DTYPE), np.zeros(0, IMPORT_DTYPE)
    module = entries["module"].astype(np.int64)
    section = entries["section"].astype(np.int64)
    offset = entries["offset"].astype(np.int64)
    rank = np.zeros(len(entries), np.int64)
    if version >= 3:
        rank = np.where(module == module_id, 1, np.where(module == 0, 2, 0))
    order = np.lexsort((offset, section, module, rank))
    e = entries[order]
    module, section, offset = module[order], section[order], offset[order]
    first_of_module = np.ones(len(e), bool)
    first_of_module[1:] = module[1:] != module[:-1]
    first_of_section = first_of_module.copy()
    first_of_section[1:] |= section[1:] != section[:-1]
    last_of_module = np.roll(first_of_module, -1)
    previous = np.where(first_of_section, 0, np.concatenate([[0], offset[:-1]]))
    delta = offset - previous
    nops = np.where(delta > 0, (delta - 1) // 0xFFFF, 0)
    count = first_of_section + nops + 1 + last_of_module
    start = np.cumsum(count) - count
    out = np.zeros(int(count.sum()), RAW_DTYPE)
    at_section = start[first_of_section]
    out["type"][at_section] = R_DOLPHIN_SECTION
    out["section"][at_section] = section[first_of_section]
    at_entry = start + first_of_section + nops
    out["offset"][at_entry] = delta - nops * 0xFFFF
    out["type"][at_entry] = e["type"]
    out["section"][at_entry] = e["target"]
    out["addend"][at_entry] = e["addend"]
    if nops.any():
        total = int(nops.sum())
        first_nop = np.repeat(start + first_of_section, nops)
        within = np.arange(total) - np.repeat(np.cumsum(nops) - nops, nops)
        out["type"][first_nop + within] = R_DOLPHIN_NOP
        out["offset"][first_nop + within] = 0xFFFF
    out["type"][at_entry[last_of_module] + 1] = R_DOLPHIN_END
    imports = np.zeros(int(first_of_module.sum()), IMPORT_DTYPE)
    imports["id"] = module[first_of_module]
    imports["offset"] = 8 * start[first_of_module]
    return out, imports


def write(module_id: int, sections: Sequence[RelSection], entries: np.ndarray, *,
          version: int = 3, name_offset: int = 0, name_size: int = 0,
          prolog: tuple[int, int] = (0, 0), epilog: tuple[int, int] = (0, 0),
          unresolved: tuple[int, int] = (0, 0), align: int | None = None,
          bss_align: int | None = None) -> bytes:
    """A REL file.

    ``sections`` is the whole section table (entry 0 the null section); ``entries`` a table of
    :data:`ENTRY_DTYPE` rows in any order. ``prolog`` & co. are (section, offset) pairs.
    ``align`` defaults to the largest alignment of the sections with data, ``bss_align`` to the
    bss section's (1 without a bss); both are written for version >= 2 only.

    File order: v1/v2: header, section table, section data, relocation lists, import table;
    v3: header, section table, section data, import table, relocation lists, with ``fixSize``
    the offset of the first list for the module itself or the DOL (the file's end if neither
    has one). The relocation lists start at a multiple of 4.
    """
    if version not in HEADER_SIZES:
        raise LinkError(f"REL version {version} is not supported (1 to {MAX_VERSION})")
    if module_id == 0:
        raise LinkError("module id 0 is the static module; a REL needs another id")
    _check_sections(sections)
    _check_entries(sections, entries)
    offsets, data_end = layout_sections(sections, version)
    if data_end > MAX_MODULE_SIZE:
        raise LinkError(f"the sections end at {data_end:#x}: no REL is larger than "
                        f"{MAX_MODULE_SIZE:#x} bytes (the largest memory of a Wii)")
    lists, imports = build_lists(entries, module_id, version)
    lists_size, imp_size = 8 * len(lists), 8 * len(imports)
    after_data = align_up(data_end, 4)
    if version >= 3:
        imp_offset, rel_offset = after_data, after_data + imp_size
    else:
        rel_offset, imp_offset = after_data, after_data + lists_size
    imports["offset"] += np.uint32(rel_offset)
    fix_size = rel_offset + lists_size
    special = np.flatnonzero((imports["id"] == module_id) | (imports["id"] == 0))
    if len(special):
        fix_size = int(imports["offset"][special[0]])
    bss = [s for s in sections if s.bss]
    header = RelHeader(
        id=module_id, next=0, prev=0, numSections=len(sections),
        sectionInfoOffset=HEADER_SIZES[version], nameOffset=name_offset, nameSize=name_size,
        version=version, bssSize=bss[0].size if bss else 0, relOffset=rel_offset,
        impOffset=imp_offset, impSize=imp_size, prologSection=prolog[0],
        epilogSection=epilog[0], unresolvedSection=unresolved[0], bssSection=0,
        prolog=prolog[1], epilog=epilog[1], unresolved=unresolved[1],
        align=(_default_align(sections) if align is None else align) if version >= 2 else 0,
        bssAlign=((bss[0].align if bss else 1) if bss_align is None else bss_align)
        if version >= 2 else 0,
        fixSize=fix_size if version >= 3 else 0,
    )
    out = bytearray(rel_offset + lists_size + (imp_size if version < 3 else 0))
    out[:header.size] = header.pack()
    table = np.zeros(len(sections), SECTION_DTYPE)
    table["offset"] = np.array(offsets, np.uint32) | np.array([s.exec for s in sections], np.uint32)
    table["size"] = [0 if s.absent else s.size for s in sections]
    out[header.size:header.size + table.nbytes] = table.tobytes()
    for s, at in zip(sections, offsets, strict=True):
        if s.has_data and s.size:
            out[at:at + s.size] = s.data
    out[imp_offset:imp_offset + imp_size] = imports.tobytes()
    out[rel_offset:rel_offset + lists_size] = lists.tobytes()
    return bytes(out)


def _check_sections(sections: Sequence[RelSection]) -> None:
    if not sections or not sections[0].absent:
        raise LinkError("section 0 must be the absent null section")
    if sum(s.bss and s.size > 0 for s in sections) > 1:
        raise LinkError("a REL has at most one bss section")
    for i, s in enumerate(sections):
        if s.has_data and len(s.data) != s.size:
            raise LinkError(f"section {i}: {len(s.data):#x} bytes of data for size {s.size:#x}")
        if s.align < 1 or s.align & (s.align - 1):
            raise LinkError(f"section {i}: alignment {s.align} is not a power of two")
        if s.bss and s.size > MAX_MODULE_SIZE:
            raise LinkError(f"section {i}: a bss of {s.size:#x} bytes; no REL's is larger than "
                            f"{MAX_MODULE_SIZE:#x} bytes (the largest memory of a Wii)")


def _default_align(sections: Sequence[RelSection]) -> int:
    return max([s.align for s in sections if s.has_data] or [1])


# -- Module -> REL ------------------------------------------------------------------------------
def write_module(module: Module, version: int | None = None) -> bytes:
    """Write a module that :func:`read` produced back into a REL (same layout, same lists).

    The header values (id, name, alignment, entry points) come from its :class:`RelInfo`; the section
    data from the sections; the lists from the relocation rows and their target rows.
    """
    info = module.format_info
    if not isinstance(info, RelInfo):
        raise LinkError("module was not read from a REL (it has no REL header); use makerel "
                        "to build a REL", file=module.file)
    header = info.header
    version = version or header.version
    keep = version == header.version
    specs = [_section_spec(s, keep) for s in module.sections]
    entries = _module_entries(module, header.id)
    return write(header.id, specs, entries, version=version, name_offset=header.nameOffset,
                 name_size=header.nameSize,
                 prolog=(header.prologSection, header.prolog),
                 epilog=(header.epilogSection, header.epilog),
                 unresolved=(header.unresolvedSection, header.unresolved),
                 align=header.align if header.version >= 2 else None,
                 bss_align=header.bssAlign if header.version >= 2 else None)


def _section_spec(section: Section, keep_offsets: bool) -> RelSection:
    exec_ = section.kind == SectionKind.TEXT
    if section.kind == SectionKind.BSS:
        return RelSection(section.size, align=section.align, bss=True)
    if section.image_offset is None:
        return RelSection(0, exec=exec_, absent=True)
    return RelSection(section.size, bytes(section.data or b""), section.align, exec_,
                      offset=section.image_offset if keep_offsets else None)


def _module_entries(module: Module, own_id: int) -> np.ndarray:
    relocs = module.relocations
    out = np.zeros(len(relocs), ENTRY_DTYPE)
    out["section"] = relocs["section"]
    out["offset"] = relocs["offset"]
    out["type"] = relocs["kind"]
    out["addend"] = relocs["addend"] & 0xFFFFFFFF
    targets, where = np.unique(relocs["target"], return_inverse=True)
    names = module.symbol_names(targets)
    module_of, section_of = np.zeros(len(targets), np.int64), np.zeros(len(targets), np.int64)
    for k, (row, name) in enumerate(zip(targets.tolist(), names, strict=True)):
        module_of[k], section_of[k] = _target_of(module, row, name, own_id)
    out["module"] = module_of[where]
    out["target"] = section_of[where]
    recorded = module.format_info.entries
    if len(recorded) == len(out):
        dol = out["module"] == 0  # the loader ignores their section: keep what the file had
        out["target"][dol] = recorded["target"][dol]
    return out


def _target_of(module: Module, row: int, name: str, own_id: int) -> tuple[int, int]:
    if name == "@dol":
        return 0, 0
    if name.startswith("@rel/"):
        try:
            m, s = (int(x) for x in name[5:].split("/"))
        except ValueError:
            pass
        else:
            return m, s
    raise LinkError(f"relocation target {name!r} is not a REL module section", file=module.file)


# -- matching an original REL -------------------------------------------------------------------
@dataclass(frozen=True)
class RelTemplate:
    """What a rebuilt REL takes from an original (decompilation projects rebuild a game's RELs
    and need them byte-identical): the header values and section attributes the original
    fixes and a partially linked ELF does not say. None leaves a value to the builder.

    ``section_offsets`` are the original's file offsets (0: no data in the file): a section
    is placed at its original offset whenever what precedes it ends there or before, so the
    sections keep the original's alignment (:attr:`RelSection.wanted_offset`).
    ``section_exec`` is every entry's exec bit (originals may mark empty sections
    executable). ``original``, the original's bytes, is what the result is compared with
    (:func:`first_difference`); ``file`` names it in messages.
    """

    id: int | None = None
    version: int | None = None
    name_offset: int | None = None
    name_size: int | None = None
    align: int | None = None
    bss_align: int | None = None
    section_count: int | None = None
    section_offsets: tuple[int, ...] | None = None
    section_exec: tuple[bool, ...] | None = None
    original: bytes | None = None
    file: str | None = None

    def __post_init__(self) -> None:
        where = self.file or "REL template"
        if self.version is not None and self.version not in HEADER_SIZES:
            raise LinkError(f"REL version {self.version} is not supported (1 to {MAX_VERSION})",
                            file=where)
        if self.id is not None and not 0 < self.id < 1 << 32:
            raise LinkError(f"module id {self.id} is out of range (1 .. 2**32-1)", file=where)
        for name in ("align", "bss_align"):
            value = getattr(self, name)
            if value is not None and (value < 0 or not _power_of_two_or_zero(value)):
                raise LinkError(f"{name} {value} is not a power of two", file=where)
        for name in ("name_offset", "name_size"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1 << 32:
                raise LinkError(f"{name} {value} does not fit 32 bits", file=where)
        count = self.section_count
        if count is not None and not 1 <= count < 1 << 32:
            raise LinkError(f"section count {count} is out of range", file=where)
        for name in ("section_offsets", "section_exec"):
            values = getattr(self, name)
            if values is not None and count is not None and len(values) != count:
                raise LinkError(f"{name} has {len(values)} entries for {count} sections",
                                file=where)


def template(source: Source, file: str | None = None) -> RelTemplate:
    """Everything an original REL fixes for a rebuild: its id, version, name offset and size,
    ``align``/``bssAlign`` (v2+), section count, each section's file offset and exec bit, and
    its bytes for the comparison."""
    data, file = file_and_bytes(source, file)
    rel = RelFile(data, file)
    h = rel.header
    return RelTemplate(
        id=h.id, version=h.version, name_offset=h.nameOffset, name_size=h.nameSize,
        align=h.align if h.version >= 2 else None,
        bss_align=h.bssAlign if h.version >= 2 else None,
        section_count=h.numSections,
        section_offsets=tuple(int(o) for o in rel.sections["offset"]),
        section_exec=tuple(bool(x) for x in rel.sections["exec"]),
        original=bytes(data), file=file)


#: Header fields a builder chooses, compared first; then the sections, the lists, the layout.
_CHOSEN_FIELDS = ("id", "version", "numSections", "nameOffset", "nameSize", "align", "bssAlign",
                  "prologSection", "prolog", "epilogSection", "epilog", "unresolvedSection",
                  "unresolved")
_LAYOUT_FIELDS = ("bssSize", "sectionInfoOffset", "relOffset", "impOffset", "impSize",
                  "fixSize")


def first_difference(built: bytes | bytearray | memoryview, original: bytes | bytearray | memoryview,
                     *, names: Sequence[str] | None = None, file: str = "<built>",
                     original_file: str = "<original>") -> str | None:
    """None if the two RELs are byte identical, else the first difference that explains the
    others, as a sentence: a header value the builder chose, then the section table, the
    sections' bytes, the relocation entries, the file layout, the import table, and at last
    the first differing byte. ``names`` (the plf's section names) label the sections."""
    if bytes(built) == bytes(original):
        return None
    a, b = RelFile(built, file), RelFile(original, original_file)
    for compare in (_header_difference(_CHOSEN_FIELDS), _section_table_difference,
                    _section_data_difference, _relocation_difference,
                    _header_difference(_LAYOUT_FIELDS), _import_difference):
        found = compare(a, b, names)
        if found is not None:
            return found
    return _byte_difference(bytes(built), bytes(original))


def _header_difference(fields: tuple[str, ...]):
    def compare(a: RelFile, b: RelFile, names: Sequence[str] | None) -> str | None:
        for name in fields:
            mine, theirs = getattr(a.header, name), getattr(b.header, name)
            if mine != theirs:
                return (f"header {name} (offset {FIELD_OFFSETS[name]:#x}): built {mine:#x}, "
                        f"original {theirs:#x}")
        return None
    return compare


def _section_text(rel: RelFile, i: int) -> str:
    if i >= len(rel.sections):
        return "no entry"
    t = rel.sections
    offset, size = int(t["offset"][i]), int(t["size"][i])
    where = f"offset {offset:#x}" if offset else ("bss" if i == rel.bss_index else "absent")
    return f"{where}, size {size:#x}{', exec' if t['exec'][i] else ''}"


def _section_table_difference(a: RelFile, b: RelFile, names: Sequence[str] | None) -> str | None:
    for i in range(max(len(a.sections), len(b.sections))):
        mine, theirs = _section_text(a, i), _section_text(b, i)
        if mine != theirs:
            return f"section {i}{_label(names, i)}: built {mine}; original {theirs}"
    return None


def _section_data_difference(a: RelFile, b: RelFile, names: Sequence[str] | None) -> str | None:
    for i in range(min(len(a.sections), len(b.sections))):
        if not (a.present(i) and b.present(i)) or i == a.bss_index:
            continue
        at_a, at_b = int(a.sections["offset"][i]), int(b.sections["offset"][i])
        size = min(int(a.sections["size"][i]), int(b.sections["size"][i]))
        mine = np.frombuffer(a.data, np.uint8, size, at_a)
        theirs = np.frombuffer(b.data, np.uint8, size, at_b)
        differ = np.flatnonzero(mine != theirs)
        if len(differ):
            k = int(differ[0]) & ~3
            return (f"section {i}{_label(names, i)} + {k:#x}: built "
                    f"{bytes(mine[k:k + 4]).hex()}, original {bytes(theirs[k:k + 4]).hex()} "
                    f"(file offsets {at_a + k:#x}, {at_b + k:#x})")
    return None


def _entry_text(rel: RelFile, e: np.void) -> str:
    return (f"{type_name(e['type'])} at section {int(e['section'])}+{int(e['offset']):#x} -> "
            f"{_target_text(rel, e)}")


def _relocation_difference(a: RelFile, b: RelFile, names: Sequence[str] | None) -> str | None:
    modules = [int(b.imports["id"][k]) for k in b.used_imports]
    modules += [int(a.imports["id"][k]) for k in a.used_imports
                if int(a.imports["id"][k]) not in modules]
    for module in modules:
        mine = a.entries[a.entries["module"] == module]
        theirs = b.entries[b.entries["module"] == module]
        for k in range(min(len(mine), len(theirs))):
            x, y = _entry_text(a, mine[k]), _entry_text(b, theirs[k])
            if x != y:
                return (f"relocation list for module {module}, entry {k}: built {x} (file "
                        f"offset {int(mine[k]['at']):#x}); original {y} (file offset "
                        f"{int(theirs[k]['at']):#x})")
        if len(mine) != len(theirs):
            return (f"relocation list for module {module}: built {len(mine)} entries, "
                    f"original {len(theirs)}")
    return None


def _import_text(rel: RelFile, k: int) -> str:
    if k >= len(rel.imports):
        return "none"
    return f"module {int(rel.imports['id'][k])}, list at {int(rel.imports['offset'][k]):#x}"


def _import_difference(a: RelFile, b: RelFile, names: Sequence[str] | None) -> str | None:
    for k in range(max(len(a.imports), len(b.imports))):
        mine, theirs = _import_text(a, k), _import_text(b, k)
        if mine != theirs:
            return f"import {k}: built {mine}; original {theirs}"
    return None


def _byte_difference(built: bytes, original: bytes) -> str:
    size = min(len(built), len(original))
    mine = np.frombuffer(built, np.uint8, size)
    theirs = np.frombuffer(original, np.uint8, size)
    differ = np.flatnonzero(mine != theirs)
    if len(differ):
        k = int(differ[0])
        return f"byte {k:#x}: built {built[k]:#04x}, original {original[k]:#04x}"
    return f"built {len(built):#x} bytes, original {len(original):#x}"


# -- dump (reldump) -----------------------------------------------------------------------------
def dump(data: bytes | bytearray | memoryview, file: str, *, disasm: bool = False,
         plf: Source | None = None) -> Iterator[str]:
    """reldump: the header, sections (exec, bss), alignment checks, imports, every relocation
    entry (type, target module, section and offset); ``disasm``: the executable sections'
    code; ``plf``, the partially linked ELF the REL was made from, names its sections and
    gives their alignment needs."""
    rel = RelFile(data, file)
    names, needs = _plf_sections(plf, rel.header.numSections)
    h = rel.header
    yield f"{file}: REL version {h.version}, module id {h.id}"
    yield ""
    yield from _rel_header(rel)
    yield ""
    yield from _rel_sections(rel, names)
    yield ""
    yield from _rel_checks(rel, names, needs)
    yield ""
    yield from _rel_imports(rel)
    yield from _rel_lists(rel, names)
    if disasm:
        for i in range(h.numSections):
            offset, size = int(rel.sections["offset"][i]), int(rel.sections["size"][i])
            if rel.sections["exec"][i] and offset and size:
                yield ""
                yield f"Disassembly of section {i}{_label(names, i)}:"
                notes = _notes_for(rel, i)
                yield from disassemble(ppc.ARCH, bytes(rel.data[offset:offset + size]), 0, notes)


def _plf_sections(plf: Source | None, count: int) -> tuple[list[str] | None, list[int] | None]:
    if plf is None:
        return None, None
    data, file = read_bytes(plf)
    ef = elf.ElfFile(data, file)
    names = list(ef.names) + [""] * max(0, count - len(ef.names))
    needs = [max(int(a), 1) for a in ef.sections["addralign"]] + [1] * max(0, count - len(ef.names))
    return names, needs


def _label(names: list[str] | None, i: int) -> str:
    return f" {names[i]}" if names and i < len(names) and names[i] else ""


def _rel_header(rel) -> Iterator[str]:
    h = rel.header
    yield "Header:"
    rows = [("id", str(h.id)), ("numSections", str(h.numSections)),
            ("sectionInfoOffset", f"{h.sectionInfoOffset:#x}"),
            ("name", f"offset {h.nameOffset:#x}, size {h.nameSize} in the .str table"),
            ("version", str(h.version)), ("bssSize", f"{h.bssSize:#x}"),
            ("relOffset", f"{h.relOffset:#x}"), ("impOffset", f"{h.impOffset:#x}"),
            ("impSize", f"{h.impSize:#x} ({h.impSize // 8} imports)")]
    for what in ("prolog", "epilog", "unresolved"):
        section = getattr(h, what + "Section")
        rows.append((what, f"section {section} + {getattr(h, what):#x}" if section else "none"))
    rows.append(("bssSection", str(h.bssSection)))
    if h.version >= 2:
        rows += [("align", str(h.align)), ("bssAlign", str(h.bssAlign))]
    if h.version >= 3:
        rows.append(("fixSize", f"{h.fixSize:#x}"))
    for key, value in rows:
        yield f"  {key:<18} {value}"


def _rel_sections(rel, names: list[str] | None) -> Iterator[str]:
    t = rel.sections
    yield f"Sections ({len(t)}):"
    yield f"  {'nr':>3}  {'offset':>10}  {'size':>10}  flags"
    for i in range(len(t)):
        offset, size = int(t["offset"][i]), int(t["size"][i])
        flags = ["exec"] if t["exec"][i] else []
        if i == rel.bss_index and i:
            flags.append("bss")
        elif not offset:
            flags.append("absent")
        where = f"{offset:#10x}" if offset else f"{'-':>10}"
        flag_text = " ".join(flags) or "-"
        yield f"  {i:>3}  {where}  {size:#10x}  {flag_text:<8}{_label(names, i)}".rstrip()


def _lowbit(value: int) -> int:
    return value & -value if value else 1 << 31


def alignment_problems(rel, needs: list[int] | None = None) -> list[str]:
    """The alignment constraints a REL breaks, as sentences (empty: none).

    A section at file offset ``o`` of a module loaded at a multiple of ``align`` is aligned to
    ``min(align, lowest set bit of o)``. Without ``needs`` (the sections' own alignment, from
    the plf), only code is checked (4 bytes)."""
    h, t = rel.header, rel.sections
    out = []
    if h.version < 2:
        return out
    data_needs = [needs[i] for i in range(len(t)) if needs and i < len(needs) and t["offset"][i]]
    if h.align and data_needs and h.align < max(data_needs):
        out.append(f"module align {h.align} is below the {max(data_needs)} its sections need")
    for i in range(len(t)):
        offset = int(t["offset"][i])
        if not offset:
            continue
        need = needs[i] if needs and i < len(needs) else (4 if t["exec"][i] else 1)
        got = min(h.align or 1, _lowbit(offset))
        if got < need:
            out.append(f"section {i} at file offset {offset:#x} needs {need}-byte alignment, "
                       f"but a module aligned to {h.align or 1} only guarantees {got}")
    b = rel.bss_index
    if b and needs and b < len(needs) and (h.bssAlign or 1) < needs[b]:
        out.append(f"bss section {b} needs {needs[b]}-byte alignment, but bssAlign is "
                   f"{h.bssAlign}")
    return out


def _rel_checks(rel, names: list[str] | None, needs: list[int] | None) -> Iterator[str]:
    h = rel.header
    yield "Checks:"
    if h.version < 2:
        yield "  alignment: version 1 records none; the loader checks nothing"
    else:
        problems = alignment_problems(rel, needs)
        basis = "the plf's section alignments" if needs else "code needs 4 bytes"
        yield f"  alignment: module {h.align}, bss {h.bssAlign} ({basis}): " + \
            ("VIOLATION" if problems else "ok")
        for p in problems:
            yield f"    VIOLATION: {p}"
    if h.version >= 3:
        problems = fix_size_problems(rel)
        yield f"  fixSize {h.fixSize:#x}: " + ("VIOLATION" if problems else "ok")
        for p in problems:
            yield f"    VIOLATION: {p}"


def fix_size_problems(rel) -> list[str]:
    """What OSLinkFixed would free too early: data, the import table or the lists of other
    modules at or after ``fixSize``."""
    h, t = rel.header, rel.sections
    out = []
    ends = [int(o + s) for o, s in zip(t["offset"], t["size"], strict=True) if o]
    if ends and max(ends) > h.fixSize:
        out.append(f"section data reaches {max(ends):#x}, past fixSize")
    if h.impSize and h.impOffset + h.impSize > h.fixSize:
        out.append("the import table lies past fixSize")
    for k in rel.used_imports:
        module, offset = int(rel.imports["id"][k]), int(rel.imports["offset"][k])
        if module not in (0, h.id) and offset >= h.fixSize:
            out.append(f"the list for module {module} lies past fixSize")
    return out


def _module_label(rel, module: int) -> str:
    return "DOL" if module == 0 else "self" if module == rel.header.id else ""


def _rel_imports(rel) -> Iterator[str]:
    yield f"Imports ({len(rel.imports)}):"
    used = set(rel.used_imports)
    for k, (module, offset) in enumerate(zip(rel.imports["id"].tolist(),
                                             rel.imports["offset"].tolist(), strict=True)):
        label = _module_label(rel, module)
        note = f" ({label})" if label else ""
        unused = "" if k in used else "  (ignored: a repeated module id)"
        yield f"  module {module}{note}: list at {offset:#x}{unused}"


def _target_text(rel, entry) -> str:
    module, section, addend = int(entry["module"]), int(entry["target"]), int(entry["addend"])
    if module == 0:
        return f"DOL {addend:#010x}"
    return f"module {module} section {section} + {addend:#x}"


def _rel_lists(rel, names: list[str] | None) -> Iterator[str]:
    entries = rel.entries
    for k in rel.used_imports:
        module = int(rel.imports["id"][k])
        mine = entries[entries["module"] == module]
        label = _module_label(rel, module)
        yield ""
        yield (f"Relocations against module {module}{f' ({label})' if label else ''}: "
               f"{len(mine)} entries")
        yield f"  {'section':<8} {'offset':>10}  {'type':<22} target"
        yield from _entry_lines(mine, module)


def _entry_lines(entries: np.ndarray, module: int) -> Iterator[str]:
    """The lines of one module's entries, formatted from plain columns (a list can hold
    tens of thousands of entries; numpy scalars one at a time would be slow)."""
    types = {t: f"{type_name(t):<22}" for t in distinct(entries["type"]).tolist()}
    columns = (entries[c].tolist() for c in ("section", "offset", "type", "target", "addend"))
    for section, offset, kind, target, addend in zip(*columns, strict=True):
        where = f"DOL {addend:#010x}" if module == 0 else \
            f"module {module} section {target} + {addend:#x}"
        yield f"  {section:<8} {offset:#10x}  {types[kind]} {where}"


def _notes_for(rel, section: int) -> dict[int, list[str]]:
    notes: dict[int, list[str]] = {}
    mine = rel.entries[rel.entries["section"] == section]
    for e in mine:
        notes.setdefault(int(e["offset"]), []).append(f"{type_name(e['type'])} {_target_text(rel, e)}")
    return notes


__all__ = [
    "BRANCH_TYPES", "ENTRY_DTYPE", "HEADER_SIZES", "IMPORT_DTYPE", "MACHINE", "MAX_MODULE_SIZE",
    "RAW_DTYPE",
    "SECTION_DTYPE", "TYPE_NAMES", "RelFile", "RelHeader", "RelInfo", "RelSection",
    "RelTemplate", "alignment_problems", "build_lists", "dump", "first_difference",
    "fix_size_problems", "layout_sections", "loading", "parse_header", "read", "template",
    "type_name", "write", "write_module",
]
