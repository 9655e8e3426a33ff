"""PE/COFF images (Windows ``.exe`` and ``.dll``: PE32 for i386, PE32+ for x86-64), bytes to
:class:`~linkload.model.Module`, for the locator.

An image is an MS-DOS stub whose word at 0x3c points to the ``PE\\0\\0`` signature, a COFF
file header, an optional header (the image base, the entry point, the section alignment and
16 data directories) and a table of sections, each with its address relative to the image
base (RVA), its size in memory and its bytes in the file. Directory 5 points to the **base
relocations** (``.reloc``): blocks of ``u32 page RVA, u32 block size`` (the 8 bytes
included) followed by ``u16`` entries ``type << 12 | offset in the page``:

=====  =========  ==========================================================================
type   name       what is patched when the image moves by ``delta``
=====  =========  ==========================================================================
0      ABSOLUTE   nothing (pads a block to a multiple of 4 bytes)
1      HIGH       a ``u16`` holding the high half of an address: ``+= delta >> 16``
2      LOW        a ``u16`` holding the low half: ``+= delta & 0xffff``
3      HIGHLOW    a ``u32`` address: ``+= delta``
4      HIGHADJ    a ``u16`` high half whose low half is the *next entry*, signed: the high
                  half of ``(high << 16) + low + delta + 0x8000``; it takes two slots
10     DIR64      a ``u64`` address: ``+= delta``
=====  =========  ==========================================================================

:func:`read` gives a Module of kind ``"executable"``: the loaded sections (discardable ones,
``.reloc`` and debug information, are left out) at their addresses (image base + RVA), a
segment per section, the COFF symbols as ``ABS`` rows holding their addresses, the entry
point, ``format_info`` (a :class:`PeHeader`), and for the locator every base relocation as a
relocation row: the field's section and offset, the CPU's kind for that type (``HIGHLOW`` is
``R_386_32``; ``HIGH``, ``LOW`` and ``HIGHADJ`` the i386 file's PE kinds; ``DIR64``
``R_X86_64_64``), and as target the address the field holds (row 0, an
``IMAGE_ADDRESS``, plus the address as addend: decoded by the CPU's field, with ``HIGHADJ``'s
low half from the table). A ``HIGH`` or ``LOW`` field holds only half an address, so its row
targets row 1 (``IMAGE_ADDRESS_PART``): it moves with the whole image only. Code calls code
PC-relatively without a base relocation, so an i386 image's code sections keep their offsets
(``MOVES_CODE_TOGETHER``); an x86-64 image reaches data PC-relatively too (``MOVES_WHOLE``).

Every offset, size and index is checked; a malformed image raises
:class:`~linkload.errors.FormatError` naming the file, the place and the offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..arch import i386, x86_64
from ..arch.base import Arch
from ..arch.disasm import disassemble
from ..arch.fields import stored_addends
from ..errors import FormatError, UnsupportedError
from ..model import (
    ABS,
    FILE_SYMBOL,
    FIXED,
    FUNC,
    GLOBAL,
    IMAGE_ADDRESS,
    IMAGE_ADDRESS_PART,
    LOCAL,
    MOVES_CODE_TOGETHER,
    MOVES_WHOLE,
    NOTYPE,
    SECTION_SYMBOL,
    SYMBOL_DTYPE,
    UNDEF,
    WEAK,
    Module,
    RelocationRun,
    Section,
    SectionKind,
    Segment,
)
from .base import Source, file_and_bytes, module_name

MAGIC = b"MZ"
SIGNATURE = b"PE\0\0"
PE32, PE32_PLUS = 0x10B, 0x20B
MACHINES = {0x14C: "i386", 0x8664: "x86_64"}
ARCHES: dict[str, Arch] = {"i386": i386.ARCH, "x86_64": x86_64.ARCH}

SCN_CNT_CODE, SCN_CNT_UNINITIALIZED_DATA = 0x20, 0x80
SCN_MEM_DISCARDABLE, SCN_MEM_EXECUTE, SCN_MEM_READ, SCN_MEM_WRITE = (
    0x0200_0000, 0x2000_0000, 0x4000_0000, 0x8000_0000)
DIRECTORY_NAMES = ("export", "import", "resource", "exception", "security", "base relocations",
                   "debug", "architecture", "global pointer", "TLS", "load configuration",
                   "bound import", "import address table", "delay import", "CLR runtime",
                   "reserved")
DIRECTORY_BASERELOC = 5

ABSOLUTE, HIGH, LOW, HIGHLOW, HIGHADJ, DIR64 = 0, 1, 2, 3, 4, 10
TYPE_NAMES = {0: "ABSOLUTE", 1: "HIGH", 2: "LOW", 3: "HIGHLOW", 4: "HIGHADJ",
              5: "MIPS_JMPADDR/ARM_MOV32", 6: "reserved", 7: "THUMB_MOV32", 8: "RISCV_LOW12S",
              9: "MIPS_JMPADDR16", 10: "DIR64"}
# Per CPU: base relocation type -> the CPU's relocation kind.
KINDS = {
    "i386": {HIGH: i386.R_386_PE_HIGH, LOW: i386.R_386_PE_LOW, HIGHLOW: i386.R_386_32,
             HIGHADJ: i386.R_386_PE_HIGHADJ},
    "x86_64": {HIGHLOW: 10, DIR64: 1},  # R_X86_64_32, R_X86_64_64
}
HALF_ADDRESS_TYPES = (HIGH, LOW)

_COFF = struct.Struct("<HHIIIHH")
_SECTION = struct.Struct("<8sIIIIIIHHI")
_SYMBOL = np.dtype([("name", "S8"), ("value", "<u4"), ("section", "<i2"), ("type", "<u2"),
                    ("storage", "u1"), ("aux", "u1")])
assert _SYMBOL.itemsize == 18
# COFF storage classes
C_EXT, C_STAT, C_FILE, C_WEAKEXT = 2, 3, 103, 105
DT_FCN = 2  # the derived type "function", in bits 4-5 of a symbol's type


@dataclass(frozen=True)
class PeSection:
    """One entry of the section table."""

    number: int  # 1-based, as COFF symbols name sections
    name: str
    rva: int
    virtual_size: int
    raw_offset: int
    raw_size: int
    flags: int

    @property
    def loaded(self) -> bool:
        return not self.flags & SCN_MEM_DISCARDABLE

    @property
    def initialised(self) -> int:
        """How many of its bytes come from the file (the rest of it reads as zeros)."""
        if self.flags & SCN_CNT_UNINITIALIZED_DATA:
            return 0
        return min(self.raw_size, self.virtual_size)


@dataclass(frozen=True)
class PeHeader:
    """The header values of a PE image (``Module.format_info``)."""

    machine: int
    magic: int
    characteristics: int
    image_base: int
    entry_rva: int
    section_alignment: int
    file_alignment: int
    size_of_image: int
    size_of_headers: int
    subsystem: int
    dll_characteristics: int
    directories: tuple[tuple[int, int], ...]  # (rva, size)
    symbol_table: int
    symbol_count: int


@dataclass(frozen=True)
class BaseRelocations:
    """The base relocations, one row per field (the ``ABSOLUTE`` padding and the low halves
    of ``HIGHADJ`` left out): its RVA, its type and, for ``HIGHADJ``, the low half."""

    rva: np.ndarray
    type: np.ndarray
    low: np.ndarray  # HIGHADJ: the signed low half of the address; else 0


class PeFile:
    """Raw, checked access to a PE image's tables; :func:`read` makes the Module."""

    def __init__(self, data: bytes | bytearray | memoryview, file: str = "<bytes>") -> None:
        self.file = file
        self.data = memoryview(data).cast("B")
        self.header, self.table_offset = self._read_headers()
        self.sections = self._read_sections()

    def error(self, message: str, where: str | None = None, offset: int | None = None):
        return FormatError(message, file=self.file, section=where, offset=offset)

    def _bytes(self, offset: int, size: int, what: str) -> memoryview:
        if offset < 0 or size < 0 or offset + size > len(self.data):
            raise self.error(f"{what} at {offset:#x} size {size:#x} lies outside the file "
                             f"({len(self.data):#x} bytes)", offset=offset)
        return self.data[offset:offset + size]

    # -- headers -------------------------------------------------------------------------------
    def _read_headers(self) -> tuple[PeHeader, int]:
        if len(self.data) < 0x40 or bytes(self.data[:2]) != MAGIC:
            raise self.error("not a PE image (no MZ header)", offset=0)
        pe = struct.unpack_from("<I", self.data, 0x3C)[0]
        if bytes(self._bytes(pe, 4, "PE signature")) != SIGNATURE:
            raise self.error("not a PE image (no PE signature where the MZ header points)",
                             offset=pe)
        machine, count, _time, symbols, symbol_count, optional_size, characteristics = \
            _COFF.unpack(self._bytes(pe + 4, _COFF.size, "COFF header"))
        if machine not in MACHINES:
            raise UnsupportedError(f"PE machine {machine:#x} is not supported (i386 0x14c and "
                                   f"x86-64 0x8664 are)", file=self.file)
        optional = pe + 4 + _COFF.size
        opt = self._bytes(optional, optional_size, "optional header")
        if optional_size < 2:
            raise self.error("no optional header: an object file, not an image", offset=optional)
        magic = struct.unpack_from("<H", opt)[0]
        if magic not in (PE32, PE32_PLUS):
            raise self.error(f"optional header magic {magic:#x} is neither PE32 nor PE32+",
                             offset=optional)
        plus = magic == PE32_PLUS
        if plus != (MACHINES[machine] == "x86_64"):
            raise self.error(f"a {'PE32+' if plus else 'PE32'} image for machine {machine:#x}",
                             offset=optional)
        fixed = 112 if plus else 96  # bytes before the data directories
        if optional_size < fixed:
            raise self.error(f"optional header of {optional_size} bytes is shorter than {fixed}",
                             offset=optional)
        entry = struct.unpack_from("<I", opt, 16)[0]
        base = struct.unpack_from("<Q", opt, 24)[0] if plus else struct.unpack_from("<I", opt, 28)[0]
        (section_alignment, file_alignment) = struct.unpack_from("<II", opt, 32)
        size_of_image, size_of_headers = struct.unpack_from("<II", opt, 56)
        subsystem, dll_characteristics = struct.unpack_from("<HH", opt, 68)
        rva_count = struct.unpack_from("<I", opt, fixed - 4)[0]
        rva_count = min(rva_count, 16, (optional_size - fixed) // 8)
        directories = tuple(struct.unpack_from("<II", opt, fixed + 8 * i) for i in range(rva_count))
        if section_alignment == 0 or section_alignment & (section_alignment - 1):
            raise self.error(f"section alignment {section_alignment:#x} is not a power of two",
                             offset=optional + 32)
        bits = 64 if plus else 32
        if base + size_of_image > 1 << bits:
            raise self.error(f"image base {base:#x} and size of image {size_of_image:#x} pass the "
                             f"end of the {bits}-bit address space", offset=optional + (24 if plus else 28))
        header = PeHeader(machine, magic, characteristics, base, entry, section_alignment,
                          file_alignment, size_of_image, size_of_headers, subsystem,
                          dll_characteristics, directories, symbols, symbol_count)
        self.count = count
        return header, optional + optional_size

    def _read_sections(self) -> list[PeSection]:
        raw = self._bytes(self.table_offset, self.count * _SECTION.size, "section table")
        out: list[PeSection] = []
        for i in range(self.count):
            at = self.table_offset + i * _SECTION.size
            (name, vsize, rva, raw_size, raw_offset, _relocs, _lines, _nrelocs, _nlines,
             flags) = _SECTION.unpack_from(raw, i * _SECTION.size)
            text = self._section_name(name, at)
            if flags & SCN_CNT_UNINITIALIZED_DATA:
                raw_size = 0  # (some linkers put a size here; the bytes are zeros anyway)
            if vsize == 0:
                vsize = raw_size  # (older linkers leave the size in memory 0)
            if raw_size:
                self._bytes(raw_offset, raw_size, f"bytes of section {text}")
            if rva + vsize > self.header.size_of_image or rva + vsize >= 1 << 32:
                raise self.error(f"section {text} [{rva:#x}, {rva + vsize:#x}) passes the end of "
                                 f"the image ({self.header.size_of_image:#x})", offset=at)
            if out and rva < out[-1].rva + out[-1].virtual_size:
                raise self.error(f"section {text} at RVA {rva:#x} overlaps section {out[-1].name} "
                                 "or comes before it", offset=at)
            out.append(PeSection(i + 1, text, rva, vsize, raw_offset, raw_size, flags))
        return out

    def _section_name(self, raw: bytes, at: int) -> str:
        """A section's name: 8 bytes, or ``/123`` for a longer name at offset 123 of the COFF
        string table."""
        name = raw.split(b"\0", 1)[0].decode("utf-8", "replace")  # (NUL-padded: a C string)
        if name.startswith("/") and name[1:].isdigit() and self.header.symbol_table:
            strings = self.header.symbol_table + 18 * self.header.symbol_count
            return self._string(strings, int(name[1:]), at)
        return name

    def _string(self, table: int, offset: int, at: int) -> str:
        size = struct.unpack_from("<I", self._bytes(table, 4, "COFF string table"))[0]
        if not 4 <= offset < size:
            raise self.error(f"name at offset {offset} is outside the COFF string table "
                             f"({size} bytes)", offset=at)
        blob = bytes(self._bytes(table, size, "COFF string table"))
        end = blob.find(b"\0", offset)
        return blob[offset:end if end >= 0 else size].decode("utf-8", "replace")

    # -- contents ------------------------------------------------------------------------------
    def section_of(self, rva: int) -> PeSection | None:
        return next((s for s in self.sections if s.rva <= rva < s.rva + s.virtual_size), None)

    def section_bytes(self, section: PeSection) -> memoryview:
        return self.data[section.raw_offset:section.raw_offset + section.initialised]

    def at_rva(self, rva: int, size: int, what: str) -> memoryview:
        """``size`` bytes of the file at ``rva``, which must lie in one section's bytes."""
        section = self.section_of(rva)
        if section is None or rva + size > section.rva + section.initialised:
            raise self.error(f"{what} at RVA {rva:#x} size {size:#x} does not lie in the bytes "
                             "of one section", offset=rva)
        start = section.raw_offset + rva - section.rva
        return self.data[start:start + size]

    def base_relocations(self) -> BaseRelocations:
        """Every base relocation, checked: blocks inside the directory, fields inside the
        bytes of one section."""
        directories = self.header.directories
        rva, size = directories[DIRECTORY_BASERELOC] if len(directories) > DIRECTORY_BASERELOC \
            else (0, 0)
        empty = np.zeros(0, np.int64)
        if not size:
            return BaseRelocations(empty, empty, empty)
        table = self.at_rva(rva, size, "base relocation directory")
        rvas, types, lows = [], [], []
        at = 0
        while at < size:
            if size - at < 8:
                raise self.error(f"base relocation block at directory offset {at:#x} is cut "
                                 "short", "base relocations", at)
            page, block = struct.unpack_from("<II", table, at)
            if block < 8 or block % 2 or at + block > size:
                raise self.error(f"base relocation block size {block:#x} at directory offset "
                                 f"{at:#x} is not an even size inside the directory",
                                 "base relocations", at)
            entries = np.frombuffer(table, "<u2", (block - 8) // 2, at + 8).astype(np.int64)
            block_rva, block_type, block_low = self._block(page, entries, at)
            rvas.append(block_rva)
            types.append(block_type)
            lows.append(block_low)
            at += block
        return BaseRelocations(np.concatenate(rvas), np.concatenate(types), np.concatenate(lows))

    def _block(self, page: int, entries: np.ndarray, at: int) -> tuple[np.ndarray, ...]:
        """The fields of one block: RVAs, types, HIGHADJ low halves."""
        kinds, offsets = entries >> 12, entries & 0xFFF
        low = np.zeros(len(entries), np.int64)
        keep = kinds != ABSOLUTE
        adjusted = np.flatnonzero(kinds == HIGHADJ)
        if len(adjusted):
            # each HIGHADJ takes the next slot as its low half (a loop: the slots pair up in
            # order, and a slot taken as a low half is no field of its own)
            taken = np.zeros(len(entries), bool)
            for i in adjusted.tolist():
                if taken[i]:
                    continue
                if i + 1 >= len(entries):
                    raise self.error("HIGHADJ base relocation without its low half (the block's "
                                     "last slot)", "base relocations", at + 8 + 2 * i)
                taken[i + 1] = True
                low[i] = entries[i + 1] - ((entries[i + 1] & 0x8000) << 1)
            keep &= ~taken
        rows = np.flatnonzero(keep)
        return page + offsets[rows], kinds[rows], low[rows]

    def symbols(self) -> tuple[np.ndarray, list[str]]:
        """The COFF symbol table (auxiliary records left out) and the symbols' names."""
        table, names, _offsets = self.symbol_records()
        return table, names

    def symbol_records(self) -> tuple[np.ndarray, list[str], list[int]]:
        """:meth:`symbols`, and the file offset of each symbol's record."""
        h = self.header
        if not h.symbol_table or not h.symbol_count:
            return np.zeros(0, _SYMBOL), [], []
        raw = np.frombuffer(self._bytes(h.symbol_table, 18 * h.symbol_count, "COFF symbol table"),
                            _SYMBOL)
        rows, i = [], 0
        aux = raw["aux"].tolist()
        while i < len(raw):
            rows.append(i)
            i += 1 + aux[i]
        table = raw[rows]
        strings = h.symbol_table + 18 * h.symbol_count
        names = []
        for k, name in enumerate(table["name"].tolist()):
            if name[:4] == b"\0\0\0\0" and len(name) > 4:
                offset = struct.unpack("<I", name[4:].ljust(4, b"\0"))[0]
                names.append(self._string(strings, offset, h.symbol_table + 18 * rows[k]))
            else:
                names.append(name.split(b"\0", 1)[0].decode("utf-8", "replace"))
        return table, names, [h.symbol_table + 18 * r for r in rows]


# -- the Module ---------------------------------------------------------------------------------
def read(source: Source, name: str | None = None, file: str | None = None) -> Module:
    """Read a PE image into a Module (see the module docstring)."""
    data, file = file_and_bytes(source, file)
    pe = PeFile(data, file)
    machine = MACHINES[pe.header.machine]
    arch = ARCHES[machine]
    base = pe.header.image_base
    loaded = [s for s in pe.sections if s.loaded]
    number_to_index = {s.number: i for i, s in enumerate(loaded)}
    sections = [Section(s.name, _kind(s), s.virtual_size, pe.header.section_alignment,
                        None if not s.initialised else pe.section_bytes(s), s.number,
                        file=file, address=base + s.rva) for s in loaded]
    segments = [Segment(base + s.rva, s.virtual_size, pe.section_bytes(s),
                        bool(s.flags & SCN_MEM_READ), bool(s.flags & SCN_MEM_WRITE),
                        bool(s.flags & SCN_MEM_EXECUTE)) for s in loaded]
    symbols, strtab, symbol_sections = _symbols(pe, number_to_index)
    runs = _fixups(pe, arch, loaded, sections)
    # i386 code reaches data through absolute addresses, which the base relocations list,
    # and only code through PC-relative calls; x86-64 code reaches data PC-relatively too
    moves = MOVES_CODE_TOGETHER if machine == "i386" else MOVES_WHOLE
    return Module(module_name(file, name), machine, "<", 32 if machine == "i386" else 64,
                  sections, symbols, strtab, runs, file, "executable", segments,
                  base + pe.header.entry_rva, format_info=pe.header,
                  symbol_sections=symbol_sections, moves=moves)


def _kind(section: PeSection) -> SectionKind:
    if section.flags & SCN_CNT_UNINITIALIZED_DATA:
        return SectionKind.BSS
    if section.flags & (SCN_CNT_CODE | SCN_MEM_EXECUTE):
        return SectionKind.TEXT
    if section.flags & SCN_MEM_WRITE:
        return SectionKind.DATA
    return SectionKind.RODATA


def _symbols(pe: PeFile, number_to_index: dict[int, int]) -> tuple[np.ndarray, bytes, np.ndarray]:
    """Symbol rows (0: the target of fixups that name no symbol, 1: of half-address fixups;
    then the COFF symbols as ABS addresses), the string table, and each row's section."""
    raw, names, records = pe.symbol_records()
    base = pe.header.image_base
    rva_of = {s.number: s.rva for s in pe.sections}
    out = np.zeros(2 + len(raw), SYMBOL_DTYPE)
    out["module"] = -1
    out["section"][:2] = ABS
    where = np.full(len(out), FIXED, np.int32)
    where[0], where[1] = IMAGE_ADDRESS, IMAGE_ADDRESS_PART
    blob = bytearray(b"\0")
    for k, (row, name) in enumerate(zip(raw.tolist(), names, strict=True)):
        _name, value, number, type_, storage, _aux = row
        i = 2 + k
        out["name"][i] = len(blob)
        blob += name.encode("utf-8", "surrogateescape") + b"\0"
        out["bind"][i] = {C_EXT: GLOBAL, C_WEAKEXT: WEAK}.get(storage, LOCAL)
        out["type"][i] = FUNC if (type_ >> 4) & 3 == DT_FCN else NOTYPE
        if storage == C_FILE:
            out["type"][i] = FILE_SYMBOL
        if number > 0:  # in a section: an address
            if number not in rva_of:
                raise pe.error(f"symbol {name!r} names section {number}, but the image has "
                               f"{len(rva_of)}", "COFF symbol table", records[k])
            address = base + rva_of[number] + value
            if address >= 1 << (64 if pe.header.magic == PE32_PLUS else 32):
                raise pe.error(f"symbol {name!r} at {value:#x} in section {number} lies at "
                               f"{address:#x}, past the end of the address space",
                               "COFF symbol table", records[k])
            out["section"][i] = ABS
            out["value"][i] = address
            where[i] = number_to_index.get(number, FIXED)
            if storage == C_STAT and name == _section_name_of(pe, number):
                out["type"][i] = SECTION_SYMBOL
        elif number == -1:  # an absolute value
            out["section"][i] = ABS
            out["value"][i] = value
        else:  # undefined (0) or debugging (-2)
            out["section"][i] = UNDEF
    return out, bytes(blob), where


def _section_name_of(pe: PeFile, number: int) -> str | None:
    return next((s.name for s in pe.sections if s.number == number), None)


def _fixups(pe: PeFile, arch: Arch, loaded: list[PeSection],
            sections: list[Section]) -> list[RelocationRun]:
    """The base relocations as relocation runs, one per patched section (see the module
    docstring)."""
    relocs = pe.base_relocations()
    if not len(relocs.rva):
        return []
    kinds_of_type = KINDS[arch.name]
    known = np.isin(relocs.type, list(kinds_of_type))
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        t = int(relocs.type[i])
        raise UnsupportedError(f"base relocation type {t} ({TYPE_NAMES.get(t, 'unknown')}) at RVA "
                               f"{int(relocs.rva[i]):#x} is not supported in a {arch.name} image",
                               file=pe.file)
    kind = np.zeros(len(relocs.rva), np.int64)
    for t, k in kinds_of_type.items():
        kind[relocs.type == t] = k
    width = arch.tables.width[kind]
    starts = np.array([s.rva for s in loaded], np.int64)
    ends = starts + np.array([s.initialised for s in loaded], np.int64)
    index = np.searchsorted(starts, relocs.rva, side="right") - 1
    inside = (index >= 0) & (relocs.rva + width <= ends[np.maximum(index, 0)]) if len(loaded) \
        else np.zeros(len(index), bool)  # (an image that loads no section)
    if not inside.all():
        i = int(np.flatnonzero(~inside)[0])
        raise pe.error(f"base relocation {TYPE_NAMES[int(relocs.type[i])]} at RVA "
                       f"{int(relocs.rva[i]):#x} does not lie in the bytes of a loaded section",
                       "base relocations")
    runs = []
    order = np.argsort(index, kind="stable")
    bounds = np.flatnonzero(np.diff(index[order])) + 1
    for rows in np.split(order, bounds):
        i = int(index[rows[0]])
        offsets = relocs.rva[rows] - starts[i]
        image = np.frombuffer(sections[i].data, np.uint8)
        addends = stored_addends(arch, image, "<", kind[rows], offsets) + relocs.low[rows]
        half = np.isin(relocs.type[rows], HALF_ADDRESS_TYPES)
        runs.append(RelocationRun(i, offsets.astype(np.uint64), kind[rows].astype(np.uint32),
                                  half.astype(np.uint32), addends))
    return runs


# -- dump ---------------------------------------------------------------------------------------
def dump(data: bytes | bytearray | memoryview, file: str, *, disasm: bool = False,
         plf: Source | None = None) -> Iterator[str]:
    """Lines describing a PE image: header, sections, data directories, base relocations
    (each with the address its field holds), symbols; ``disasm`` adds the code (``plf`` is
    for RELs and not used here)."""
    pe = PeFile(data, file)
    h = pe.header
    machine = MACHINES[h.machine]
    yield (f"{file}: {'PE32+' if h.magic == PE32_PLUS else 'PE32'} {machine} image, base "
           f"{h.image_base:#x}, entry {h.image_base + h.entry_rva:#x}, section alignment "
           f"{h.section_alignment:#x}, subsystem {h.subsystem}")
    yield ""
    yield f"Sections ({len(pe.sections)}):"
    yield f"  {'nr':>3} {'name':<10} {'address':>10} {'size':>8} {'file at':>8} {'in file':>8} flags"
    for s in pe.sections:
        flags = "".join(c for bit, c in ((SCN_MEM_READ, "R"), (SCN_MEM_WRITE, "W"),
                                         (SCN_MEM_EXECUTE, "X"), (SCN_MEM_DISCARDABLE, "D"))
                        if s.flags & bit)
        yield (f"  {s.number:>3} {s.name:<10} {h.image_base + s.rva:#10x} {s.virtual_size:#8x} "
               f"{s.raw_offset:#8x} {s.raw_size:#8x} {flags}")
    yield ""
    yield "Data directories:"
    for i, (rva, size) in enumerate(h.directories):
        if size:
            yield f"  {i:>2} {DIRECTORY_NAMES[i]:<22} RVA {rva:#x} size {size:#x}"
    relocs = pe.base_relocations()
    arch = ARCHES[machine]
    yield ""
    yield f"Base relocations ({len(relocs.rva)} fields):"
    for rva, t, low in zip(relocs.rva.tolist(), relocs.type.tolist(), relocs.low.tolist(),
                           strict=True):
        held = _held(pe, arch, rva, t, low)
        yield f"  {h.image_base + rva:#10x} {TYPE_NAMES.get(t, str(t)):<8} holds {held}"
    raw, names = pe.symbols()
    yield ""
    yield f"Symbols ({len(raw)}):"
    for row, name in zip(raw.tolist(), names, strict=True):
        _n, value, number, _type, storage, _aux = row
        where = {0: "UND", -1: "ABS", -2: "DEBUG"}.get(number, _section_name_of(pe, number) or str(number))
        yield f"  {value:#10x} {where:<10} class {storage:<3} {name}"
    if disasm:
        for s in pe.sections:
            if s.flags & SCN_MEM_EXECUTE and s.initialised:
                yield ""
                yield f"Disassembly of section {s.name}:"
                yield from disassemble(arch, bytes(pe.section_bytes(s)), h.image_base + s.rva)


def _held(pe: PeFile, arch: Arch, rva: int, type_: int, low: int) -> str:
    """What a base relocation's field holds, as text."""
    kind = KINDS[arch.name].get(type_)
    if kind is None:
        return "?"
    field = arch.kinds[kind].field
    try:
        raw = bytes(pe.at_rva(rva, field.size, "field"))
    except FormatError:
        return "(outside the sections)"
    value = int(field.decode(np.frombuffer(raw.ljust(8, b"\0"), "<u8"))[0]) + low
    return f"{value:#x}" if type_ not in HALF_ADDRESS_TYPES else f"{value:#x} (half an address)"
