"""ELF: bytes to :class:`~linkload.model.Module`.

ELF32 and ELF64, both byte orders. Relocatable objects (``gcc -c``, ``ld -r``) become modules
whose symbol rows are the ELF symbol indices, so a relocation's ``target`` is its ``r_sym``
unchanged. Executables and shared objects become static modules: their defined symbols are
``ABS`` rows, their ``PT_LOAD`` segments :class:`~linkload.model.Segment` objects.

Section headers, symbols and relocation tables are read as numpy structured arrays straight
from the file bytes. Every offset, size and index is checked before it is used; a malformed
file raises :class:`~linkload.errors.FormatError` naming the file, the section and the offset.
The sizes and alignments of the sections an object loads, and the room they take together,
must stay below half the address space of the file's class (:func:`room_limit`: 2**63 bytes
for ELF64, 2**31 for ELF32): nothing larger can be laid out in memory, and a linker computes
its offsets as signed numbers of that width.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .. import arch as arch_registry
from ..arch import Check
from ..arch.disasm import disassemble
from ..arch.fields import gather, stored_addends
from ..columns import distinct
from ..errors import FixupError, FormatError, UnsupportedError
from ..model import (
    ABS,
    COMMON,
    FIXED,
    IMAGE_ADDRESS,
    LOCAL,
    MOVES_APART,
    MOVES_NOT,
    MOVES_WHOLE,
    NOT_LOADED,
    RELOC_DTYPE,
    SYMBOL_DTYPE,
    UNDEF,
    DebugInfo,
    DebugSections,
    Module,
    RelocationRun,
    Section,
    SectionKind,
    Segment,
)
from .base import Source, file_and_bytes, module_name

MAGIC = b"\x7fELF"

ET_REL, ET_EXEC, ET_DYN = 1, 2, 3
MACHINES = {3: "i386", 20: "ppc", 21: "ppc64", 40: "arm", 62: "x86_64", 183: "aarch64"}

SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA = 0, 1, 2, 3, 4
SHT_NOTE, SHT_NOBITS, SHT_REL, SHT_DYNSYM = 7, 8, 9, 11
SHT_INIT_ARRAY, SHT_FINI_ARRAY, SHT_PREINIT_ARRAY, SHT_GROUP, SHT_SYMTAB_SHNDX = 14, 15, 16, 17, 18
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_TLS, SHF_COMPRESSED = 0x1, 0x2, 0x4, 0x400, 0x800
ELFCOMPRESS_ZLIB = 1
DEBUG_PREFIX = ".debug_"
SHN_UNDEF, SHN_LORESERVE, SHN_ABS, SHN_COMMON, SHN_XINDEX = 0, 0xFF00, 0xFFF1, 0xFFF2, 0xFFFF
SHN_X86_64_LCOMMON = 0xFF02
GRP_COMDAT = 1
PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4

SECTION_TYPE_NAMES = {
    0: "NULL", 1: "PROGBITS", 2: "SYMTAB", 3: "STRTAB", 4: "RELA", 5: "HASH", 6: "DYNAMIC",
    7: "NOTE", 8: "NOBITS", 9: "REL", 11: "DYNSYM", 14: "INIT_ARRAY", 15: "FINI_ARRAY",
    16: "PREINIT_ARRAY", 17: "GROUP", 18: "SYMTAB_SHNDX", 0x70000001: "X86_64_UNWIND",
    0x70000003: "ARM_ATTRIBUTES", 0x6FFFFFF6: "GNU_HASH", 0x6FFFFFFF: "VERSYM",
    0x6FFFFFFE: "VERNEED", 0x6FFFFFFD: "VERDEF",
}


@functools.cache
def table_dtypes(bits: int, order: str) -> dict[str, np.dtype]:
    """The structured dtypes of the ELF tables for one class and byte order (built once)."""
    w = "u8" if bits == 64 else "u4"
    sw = "i8" if bits == 64 else "i4"

    def dt(fields):
        return np.dtype([(n, order + t) if t[0] in "ui" and t != "u1" else (n, t) for n, t in fields])

    shdr = dt([("name", "u4"), ("type", "u4"), ("flags", w), ("addr", w), ("offset", w),
               ("size", w), ("link", "u4"), ("info", "u4"), ("addralign", w), ("entsize", w)])
    if bits == 64:
        sym = dt([("name", "u4"), ("info", "u1"), ("other", "u1"), ("shndx", "u2"),
                  ("value", "u8"), ("size", "u8")])
        phdr = dt([("type", "u4"), ("flags", "u4"), ("offset", "u8"), ("vaddr", "u8"),
                   ("paddr", "u8"), ("filesz", "u8"), ("memsz", "u8"), ("align", "u8")])
    else:
        sym = dt([("name", "u4"), ("value", "u4"), ("size", "u4"), ("info", "u1"),
                  ("other", "u1"), ("shndx", "u2")])
        phdr = dt([("type", "u4"), ("offset", "u4"), ("vaddr", "u4"), ("paddr", "u4"),
                   ("filesz", "u4"), ("memsz", "u4"), ("flags", "u4"), ("align", "u4")])
    rel = dt([("offset", w), ("info", w)])
    rela = dt([("offset", w), ("info", w), ("addend", sw)])
    if bits == 64:
        # r_info is (symbol << 32) | type: its two halves, read in place as 32-bit columns
        low, high = (8, 12) if order == "<" else (12, 8)
        rel = np.dtype({"names": ["offset", "type", "sym"],
                        "formats": [order + "u8", order + "u4", order + "u4"],
                        "offsets": [0, low, high], "itemsize": 16})
        rela = np.dtype({"names": ["offset", "type", "sym", "addend"],
                         "formats": [order + "u8", order + "u4", order + "u4", order + "i8"],
                         "offsets": [0, low, high, 16], "itemsize": 24})
    return {"shdr": shdr, "sym": sym, "phdr": phdr, "rel": rel, "rela": rela}


@dataclass
class ElfHeader:
    bits: int
    byteorder: str  # "<" or ">"
    type: int
    machine: int
    entry: int
    phoff: int
    shoff: int
    flags: int
    phentsize: int
    phnum: int
    shentsize: int
    shnum: int
    shstrndx: int


class ElfFile:
    """Raw, checked access to an ELF file's tables. :func:`read` turns it into a Module.

    ``sections`` is the section header table as a numpy structured array; ``symbols`` the
    symbol table (``.symtab``, or ``.dynsym`` when there is none) with names in ``strtab``.
    """

    def __init__(self, data: bytes | bytearray | memoryview, file: str = "<bytes>") -> None:
        self.file = file
        self.data = memoryview(data).cast("B")  # slices of a memoryview are not copies
        self.header = self._read_header()
        self.dt = table_dtypes(self.header.bits, self.header.byteorder)
        self.sections = self._read_section_headers()
        # the table's columns as lists too: a loop over a few dozen sections reads them much
        # faster than numpy scalars
        self.sh = {f: self.sections[f].tolist() for f in self.sections.dtype.names}
        self._check_section_bounds()
        self._shstrtab = self._string_table(self.header.shstrndx) if len(self.sections) else b""
        self.names = [self._name(self._shstrtab, n, "section name", i)
                      for i, n in enumerate(self.sh["name"])]
        self.symtab_index = self._find_symtab()
        self.symbols, self.strtab, self.symbol_shndx, self.symbol_special = self._read_symbols()

    # -- checked primitives ----------------------------------------------------------------
    def error(self, message: str, section: str | None = None, offset: int | None = None):
        return FormatError(message, file=self.file, section=section, offset=offset)

    def header_offset(self, index: int, field: str) -> int:
        """The file offset of ``field`` (``"size"``, ``"addralign"``...) of section header
        ``index``: where a message about that value points."""
        return self.header.shoff + index * self.header.shentsize + self.dt["shdr"].fields[field][1]

    def _slice(self, offset: int, size: int, what: str, section: str | None = None):
        if offset < 0 or size < 0 or offset + size > len(self.data):
            raise self.error(
                f"{what} at {offset:#x} size {size:#x} lies outside the file "
                f"({len(self.data):#x} bytes)", section, offset)
        return self.data[offset:offset + size]

    def _table(self, offset: int, size: int, entsize: int, dtype: np.dtype, what: str,
               section: str | None = None) -> np.ndarray:
        if entsize != dtype.itemsize:
            raise self.error(f"{what}: entry size {entsize} is not {dtype.itemsize}", section)
        if size % dtype.itemsize:
            raise self.error(f"{what}: size {size:#x} is not a multiple of {entsize}", section)
        raw = self._slice(offset, size, what, section)
        return np.frombuffer(raw, dtype=dtype)

    def _read_header(self) -> ElfHeader:
        d = self.data
        if len(d) < 16 or bytes(d[:4]) != MAGIC:
            raise self.error("not an ELF file (bad magic)", offset=0)
        cls, enc = d[4], d[5]
        if cls not in (1, 2):
            raise self.error(f"bad ELF class {cls}", offset=4)
        if enc not in (1, 2):
            raise self.error(f"bad ELF data encoding {enc}", offset=5)
        bits = 64 if cls == 2 else 32
        order = "<" if enc == 1 else ">"
        fmt = order + ("HHIQQQIHHHHHH" if bits == 64 else "HHIIIIIHHHHHH")
        size = struct.calcsize(fmt)
        if len(d) < 16 + size:
            raise self.error("truncated ELF header", offset=16)
        (etype, machine, version, entry, phoff, shoff, flags, ehsize, phentsize, phnum,
         shentsize, shnum, shstrndx) = struct.unpack_from(fmt, d, 16)
        if d[6] != 1 or version != 1:
            raise self.error(f"bad ELF version {d[6]}/{version}", offset=6)
        if ehsize != 16 + size:
            raise self.error(f"ELF header size {ehsize} does not match ELFCLASS{bits} "
                             f"({16 + size})", offset=4)
        return ElfHeader(bits, order, etype, machine, entry, phoff, shoff, flags, phentsize,
                         phnum, shentsize, shnum, shstrndx)

    def _read_section_headers(self) -> np.ndarray:
        h = self.header
        dtype = self.dt["shdr"]
        if h.shoff == 0:
            return np.zeros(0, dtype)
        if h.shentsize != dtype.itemsize:
            raise self.error(f"section header size {h.shentsize} is not {dtype.itemsize}",
                             offset=h.shoff)
        shnum = h.shnum
        if shnum == 0:  # extended numbering: the count is in section 0's sh_size
            first = self._table(h.shoff, dtype.itemsize, dtype.itemsize, dtype, "section header")
            shnum = int(first["size"][0])
        table = self._table(h.shoff, shnum * dtype.itemsize, dtype.itemsize, dtype,
                            "section header table")
        if h.shstrndx == SHN_XINDEX:  # extended numbering: the index is in section 0's sh_link
            if not len(table):
                raise self.error("the section name table index is in section 0, but there are "
                                 "no sections", offset=h.shoff)
            h.shstrndx = int(table["link"][0])
        if h.shstrndx >= shnum:
            raise self.error(f"section name table index {h.shstrndx} out of range", offset=h.shoff)
        return table

    def _check_section_bounds(self) -> None:
        """Every section's bytes lie inside the file. The culprit is named when the section
        name table itself is intact, else numbered."""
        # (a loop over the header's columns as lists: the reader loops over the sections
        # anyway, and for the few dozen of a usual object this is cheaper than numpy)
        end_of_file = len(self.data)
        sh = self.sh
        bad = [i for i, (sh_type, offset, size)
               in enumerate(zip(sh["type"], sh["offset"], sh["size"], strict=True))
               # A NOBITS section takes no room in the file: its offset may lie past the end.
               if sh_type != SHT_NOBITS and offset + size > end_of_file]
        if not bad:
            return
        i = bad[0]
        name = f"section {i}"
        if self.header.shstrndx not in bad:
            self._shstrtab = self._string_table(self.header.shstrndx)
            name = self._name(self._shstrtab, sh["name"][i], "section name", i) or name
        raise self.error(
            f"data at file offset {sh['offset'][i]:#x}, size {sh['size'][i]:#x}, "
            f"lies outside the file ({end_of_file:#x} bytes)", name)

    def _string_table(self, index: int) -> bytes:
        if index <= 0 or index >= len(self.sections):
            raise self.error(f"string table index {index} out of range")
        if self.sh["type"][index] != SHT_STRTAB:
            raise self.error(f"section {index} is not a string table")
        return bytes(self._slice(self.sh["offset"][index], self.sh["size"][index], "string table",
                                 f"section {index}"))

    def _name(self, table: bytes, offset: int, what: str, index: int) -> str:
        if offset >= len(table) and offset:
            raise self.error(f"{what} offset {offset:#x} of entry {index} is outside its string table")
        end = table.find(b"\0", offset)
        if end < 0:
            raise self.error(f"{what} of entry {index} is not NUL-terminated")
        return table[offset:end].decode("utf-8", "replace")

    def _find_symtab(self) -> int:
        types = self.sh["type"]
        for wanted in (SHT_SYMTAB, SHT_DYNSYM):
            if wanted in types:
                return types.index(wanted)
        return -1

    def _read_symbols(self):
        dtype = self.dt["sym"]
        if self.symtab_index < 0:
            return np.zeros(0, dtype), b"\0", np.zeros(0, np.uint32), np.zeros(0, bool)
        i, sh = self.symtab_index, self.sh
        name = self.names[i]
        syms = self._table(sh["offset"][i], sh["size"][i], sh["entsize"][i], dtype,
                           "symbol table", name)
        strtab = self._string_table(sh["link"][i])
        bad = np.flatnonzero(syms["name"] >= max(len(strtab), 1))
        if len(bad):
            i = int(bad[0])
            raise self.error(f"symbol {i} name offset {int(syms['name'][i]):#x} is outside the "
                             f"string table", name, i * dtype.itemsize)
        shndx = syms["shndx"].astype(np.uint32)
        xindex = shndx == SHN_XINDEX
        if xindex.any():
            hits = np.flatnonzero((self.sections["type"] == SHT_SYMTAB_SHNDX)
                                  & (self.sections["link"] == self.symtab_index))
            if not len(hits):
                raise self.error("SHN_XINDEX symbols without a SYMTAB_SHNDX section", name)
            xs = self.sections[int(hits[0])]
            ext = self._table(int(xs["offset"]), int(xs["size"]), 4,
                              np.dtype(self.header.byteorder + "u4"), "extended section indices")
            if len(ext) != len(syms):
                raise self.error("SYMTAB_SHNDX does not match the symbol table", name)
            shndx = np.where(xindex, ext, shndx)
        special = (shndx >= SHN_LORESERVE) & ~xindex
        bad = np.flatnonzero(~special & (shndx >= len(self.sections)))
        if len(bad):
            i = int(bad[0])
            raise self.error(f"symbol {i} section index {int(shndx[i])} out of range",
                             name, i * dtype.itemsize)
        return syms, strtab, shndx, special

    def symbol_name(self, index: int) -> str:
        return self._name(self.strtab, int(self.symbols["name"][index]), "symbol name", index)

    def section_data(self, index: int) -> memoryview | bytes:
        if self.sh["type"][index] == SHT_NOBITS:
            return b""
        return self._slice(self.sh["offset"][index], self.sh["size"][index], "section data",
                           self.names[index])

    def relocation_sections(self) -> list[int]:
        """Indices of the REL and RELA sections."""
        return [i for i, t in enumerate(self.sh["type"]) if t in (SHT_REL, SHT_RELA)]

    def patched_section(self, index: int) -> int:
        """The section that relocation section ``index`` patches (its ``sh_info``), checked."""
        target = self.sh["info"][index]
        if target >= len(self.sections):
            raise self.error(f"relocations apply to section {target}, which does not exist",
                             self.names[index], self.header_offset(index, "info"))
        return target

    def relocations(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(offset, type, symbol, addend) columns of relocation section ``index``, checked;
        for ELF64 they are views of the file's table."""
        sh = self.sh
        name = self.names[index]
        rela = sh["type"][index] == SHT_RELA
        dtype = self.dt["rela" if rela else "rel"]
        table = self._table(sh["offset"][index], sh["size"][index], sh["entsize"][index], dtype,
                            "relocation table", name)
        if self.header.bits == 64:
            sym, typ = table["sym"], table["type"]
        else:
            info = table["info"]
            sym, typ = info >> np.uint32(8), info & np.uint32(0xFF)
        if sh["link"][index] != self.symtab_index and len(table):
            raise self.error(f"relocations refer to section {sh['link'][index]}, not the symbol "
                             f"table", name)
        if len(sym) and int(sym.max()) >= max(len(self.symbols), 1):
            bad = np.flatnonzero(sym >= max(len(self.symbols), 1))
            i = int(bad[0])
            raise self.error(f"relocation {i} refers to symbol {int(sym[i])}, but there are only "
                             f"{len(self.symbols)}", name, i * dtype.itemsize)
        addend = table["addend"] if rela else np.zeros(len(table), np.int64)
        return table["offset"], typ, sym, addend

    def groups(self) -> dict[int, str]:
        """Section index -> COMDAT signature, for every member of a COMDAT group."""
        member_of: dict[int, str] = {}
        sh = self.sh
        for gi in [i for i, t in enumerate(sh["type"]) if t == SHT_GROUP]:
            words = self._table(sh["offset"][gi], sh["size"][gi], 4,
                                np.dtype(self.header.byteorder + "u4"), "group", self.names[gi])
            if not len(words) or not (int(words[0]) & GRP_COMDAT):
                continue
            sig = sh["info"][gi]
            if sig >= len(self.symbols):
                raise self.error(f"group signature symbol {sig} out of range", self.names[gi])
            signature = self.symbol_name(sig)
            for k, member in enumerate(words[1:].tolist(), start=1):
                if member >= len(self.sections):
                    raise self.error(f"group member {member} out of range", self.names[gi], 4 * k)
                member_of[member] = signature
        return member_of

    def segments(self) -> list[Segment]:
        h = self.header
        if not h.phoff or not h.phnum:
            return []
        table = self._table(h.phoff, h.phnum * h.phentsize, h.phentsize, self.dt["phdr"],
                            "program header table")
        out = []
        for i in np.flatnonzero(table["type"] == PT_LOAD).tolist():
            ph = table[i]
            where, at = f"program header {i}", h.phoff + i * h.phentsize
            if int(ph["filesz"]) > int(ph["memsz"]):
                raise self.error(f"segment of {int(ph['memsz']):#x} bytes in memory holds "
                                 f"{int(ph['filesz']):#x} bytes of the file", where, at)
            if int(ph["vaddr"]) + int(ph["memsz"]) > 1 << h.bits:
                raise self.error(f"segment at {int(ph['vaddr']):#x} of {int(ph['memsz']):#x} "
                                 f"bytes passes the end of the address space", where, at)
            data = self._slice(int(ph["offset"]), int(ph["filesz"]), "segment", where)
            flags = int(ph["flags"])
            out.append(Segment(int(ph["vaddr"]), int(ph["memsz"]), data, bool(flags & PF_R),
                               bool(flags & PF_W), bool(flags & PF_X)))
        return out


def object_type(head: bytes | bytearray | memoryview) -> int | None:
    """The ``e_type`` (:data:`ET_REL`, :data:`ET_EXEC`, ...) of an ELF file from its first 18
    bytes, without reading the rest; None when they are not the start of an ELF file."""
    if len(head) < 18 or bytes(head[:4]) != MAGIC or head[5] not in (1, 2):
        return None
    return int.from_bytes(bytes(head[16:18]), "little" if head[5] == 1 else "big")


def _section_kind(name: str, sh_type: int, flags: int) -> SectionKind:
    if sh_type in (SHT_INIT_ARRAY, SHT_PREINIT_ARRAY) or name.startswith(".ctors"):
        return SectionKind.INIT
    if sh_type == SHT_FINI_ARRAY or name.startswith(".dtors"):
        return SectionKind.FINI
    if sh_type == SHT_NOBITS:
        return SectionKind.BSS
    if flags & SHF_EXECINSTR:
        return SectionKind.TEXT
    if flags & SHF_WRITE:
        return SectionKind.DATA
    return SectionKind.RODATA


def _init_order(name: str, sh_type: int) -> tuple[int, bool]:
    """(priority, reverse) of an initialiser or finaliser array, as crtstuff and ld order them."""
    if sh_type == SHT_PREINIT_ARRAY:
        return -1, False
    base, _, suffix = name.partition(".")[2].partition(".")
    priority = int(suffix) if suffix.isdigit() else 65536
    if base in ("ctors", "dtors") and suffix.isdigit():
        priority = 65535 - priority  # .ctors.N counts down where .init_array.N counts up
    return priority, base in ("ctors", "fini_array")


def _is_loaded(sh_type: int, flags: int) -> bool:
    return bool(flags & SHF_ALLOC) and not (flags & SHF_TLS) and sh_type not in (SHT_NOTE, SHT_GROUP)


def read(source: Source, name: str | None = None,
         file: str | None = None) -> Module:
    """Read an ELF object, executable or shared object into a Module.

    ``source`` is a path or the file's bytes; ``name`` names the module (default: the file's
    base name without extension); ``file`` names the bytes in messages.
    """
    data, file = file_and_bytes(source, file)
    elf = ElfFile(data, file)
    machine = MACHINES.get(elf.header.machine)
    if machine is None:
        raise UnsupportedError(f"unsupported ELF machine {elf.header.machine}", file=file)
    if elf.header.type == ET_REL:
        return _read_relocatable(elf, machine, module_name(file, name))
    if elf.header.type in (ET_EXEC, ET_DYN):
        return _read_static(elf, machine, module_name(file, name))
    raise UnsupportedError(f"unsupported ELF type {elf.header.type}", file=file)


def _read_relocatable(elf: ElfFile, machine: str, name: str) -> Module:
    sh = elf.sh
    groups = elf.groups()
    debug: list[int] = []  # the debug sections, read only when asked for
    section_map = np.full(len(elf.sections), NOT_LOADED, np.int32)
    sections: list[Section] = []
    room = 0  # bytes the loaded sections take, padding for their alignment included
    for i, (sh_type, flags) in enumerate(zip(sh["type"], sh["flags"], strict=True)):
        if not _is_loaded(sh_type, flags):
            if sh_type == SHT_PROGBITS and elf.names[i].startswith(DEBUG_PREFIX):
                debug.append(i)
            continue
        sec_name = elf.names[i]
        align = max(sh["addralign"][i], 1)
        if align & (align - 1):
            raise elf.error(f"alignment {align} is not a power of two", sec_name,
                            elf.header_offset(i, "addralign"))
        size = sh["size"][i]
        room = _check_room(elf, i, size, align, room)
        kind = _section_kind(sec_name, sh_type, flags)
        priority, reverse = (_init_order(sec_name, sh_type)
                             if kind in (SectionKind.INIT, SectionKind.FINI) else (65536, False))
        data = None if sh_type == SHT_NOBITS else elf.section_data(i)
        section_map[i] = len(sections)
        sections.append(Section(sec_name, kind, size, align, data, i, groups.get(i), priority,
                                reverse, elf.file))
    symbols = _symbols(elf, section_map)
    relocations = _relocations(elf, section_map, sections)
    # kept aside unread: only a debugger's symbol file needs them
    debug_info = (DebugInfo(functools.partial(_debug_sections, elf, debug)),) if debug else ()
    return Module(name, machine, elf.header.byteorder, elf.header.bits, sections, symbols,
                  elf.strtab, relocations, elf.file, debug=debug_info)


def _debug_sections(elf: ElfFile, indices: list[int]) -> DebugSections:
    """The debug sections ``indices`` of a relocatable object (decompressed), their
    relocations (checked), and which debug section each symbol is defined in."""
    debug_map = np.full(len(elf.sections), -1, np.int32)
    debug_map[indices] = np.arange(len(indices), dtype=np.int32)
    sections = []
    for i in indices:
        data = _uncompressed(elf, i)
        sections.append(Section(elf.names[i], SectionKind.DEBUG, len(data),
                                max(elf.sh["addralign"][i], 1), data, i, file=elf.file))
    runs = _relocations(elf, debug_map, sections)
    shndx = elf.symbol_shndx
    regular = ~elf.symbol_special & (shndx < len(debug_map))
    symbol_sections = np.where(regular, debug_map[np.where(regular, shndx, 0)], -1)
    return DebugSections(sections, runs, symbol_sections.astype(np.int32))


def _uncompressed(elf: ElfFile, index: int) -> bytes | memoryview:
    """The bytes of section ``index``, inflated if it is compressed (``SHF_COMPRESSED``,
    zlib: ``gcc -gz``)."""
    data = elf.section_data(index)
    if not elf.sh["flags"][index] & SHF_COMPRESSED:
        return data
    name, order = elf.names[index], elf.header.byteorder
    header = order + ("IIQQ" if elf.header.bits == 64 else "III")
    if len(data) < struct.calcsize(header):
        raise elf.error("compressed section too short for its header", name)
    fields = struct.unpack_from(header, data)
    kind, size = fields[0], fields[-2]
    if kind != ELFCOMPRESS_ZLIB:
        raise UnsupportedError(f"section {name}: compression type {kind} is not supported "
                               f"(zlib is)", file=elf.file)
    try:  # (never more than the header says: a bad header is no reason to fill the memory)
        inflated = zlib.decompressobj().decompress(data[struct.calcsize(header):], size + 1)
    except zlib.error as e:
        raise elf.error(f"compressed section does not inflate: {e}", name) from None
    if len(inflated) != size:
        raise elf.error(f"compressed section inflates to {len(inflated):#x} bytes, not "
                        f"{size:#x}", name)
    return inflated


def room_limit(bits: int) -> int:
    """Half the address space of an ELF class: what no loaded section's size or alignment,
    nor the room they take together, may reach."""
    return 1 << (bits - 1)


def _check_room(elf: ElfFile, index: int, size: int, align: int, before: int) -> int:
    """The room the loaded sections take once section ``index`` (``size`` bytes aligned to
    ``align``) is added to the ``before`` bytes of those before it; a size, an alignment or
    a total that no address space of the file's class can hold is a FormatError."""
    limit = room_limit(elf.header.bits)
    name = elf.names[index]
    why = f"half the address space of an ELF{elf.header.bits} file ({limit:#x} bytes)"
    if align >= limit:
        raise elf.error(f"alignment {align:#x} is not below {why}", name,
                        elf.header_offset(index, "addralign"))
    if size >= limit:
        raise elf.error(f"size {size:#x} is not below {why}", name, elf.header_offset(index, "size"))
    room = before + size + align - 1
    if room >= limit:
        raise elf.error(f"the loaded sections up to this one take up to {room:#x} bytes, not "
                        f"below {why}", name, elf.header_offset(index, "size"))
    return room


def _symbol_rows(elf: ElfFile) -> np.ndarray:
    """The ELF symbol table as model rows, all but the ``section`` column."""
    raw = elf.symbols
    out = np.zeros(len(raw), SYMBOL_DTYPE)
    out["name"] = raw["name"]
    out["value"] = raw["value"]
    out["size"] = raw["size"]
    out["module"] = -1
    out["bind"] = raw["info"] >> 4
    out["type"] = raw["info"] & 0xF
    out["visibility"] = raw["other"] & 0x3
    return out


def _symbols(elf: ElfFile, section_map: np.ndarray) -> np.ndarray:
    raw, shndx = elf.symbols, elf.symbol_shndx
    out = _symbol_rows(elf)
    special = elf.symbol_special
    section = np.full(len(raw), NOT_LOADED, np.int32)
    regular = ~special & (shndx != SHN_UNDEF)
    if len(section_map):
        section[regular] = section_map[shndx[regular]]
    section[shndx == SHN_UNDEF] = UNDEF
    section[special & (shndx == SHN_ABS)] = ABS
    large_common = (shndx == SHN_X86_64_LCOMMON) & (elf.header.machine == 62)
    section[special & ((shndx == SHN_COMMON) | large_common)] = COMMON
    out["section"] = section
    if len(out):
        out[0]["bind"] = LOCAL
        out["section"][0] = UNDEF
    return out


def _relocations(elf: ElfFile, section_map: np.ndarray, sections: list[Section]) -> list[RelocationRun]:
    """The relocations of the sections ``section_map`` maps to ``sections`` (the loaded ones,
    or the debug ones), one run per relocation section (views of the file's tables where the
    layout allows)."""
    runs = []
    for ri in elf.relocation_sections():
        target = elf.patched_section(ri)
        if section_map[target] < 0:
            continue  # relocations of debug info and other unloaded sections
        offset, typ, sym, addend = elf.relocations(ri)
        sec = sections[section_map[target]]
        if len(offset) and int(offset.max()) >= sec.size:
            i = int(np.flatnonzero(offset >= sec.size)[0])
            raise elf.error(f"relocation {i} patches offset {int(offset[i]):#x}, beyond the "
                            f"section's {sec.size:#x} bytes", sec.name, int(offset[i]))
        if len(offset):
            runs.append(RelocationRun(int(section_map[target]), offset, typ, sym, addend,
                                      elf.sh["type"][ri] == SHT_REL))
    return runs


def _read_static(elf: ElfFile, machine: str, name: str) -> Module:
    """An executable or shared object as a static module: its defined symbols, as addresses."""
    shndx = elf.symbol_shndx
    out = _symbol_rows(elf)
    out["section"] = np.where((shndx == SHN_UNDEF) & ~elf.symbol_special, UNDEF, ABS)
    sections = []
    for i in range(len(elf.sections)):
        sh = elf.sections[i]
        if not _is_loaded(int(sh["type"]), int(sh["flags"])):
            continue
        kind = _section_kind(elf.names[i], int(sh["type"]), int(sh["flags"]))
        data = None if kind == SectionKind.BSS else elf.section_data(i)
        sections.append(Section(elf.names[i], kind, int(sh["size"]), max(int(sh["addralign"]), 1),
                                data, i, None, file=elf.file, address=int(sh["addr"])))
    kind = "executable" if elf.header.type == ET_EXEC else "shared"
    return Module(name, machine, elf.header.byteorder, elf.header.bits, sections, out, elf.strtab,
                  np.zeros(0, RELOC_DTYPE), elf.file, kind, elf.segments(), elf.header.entry)


# -- a linked program, for the locator -------------------------------------------------------------
def read_program(source: Source, name: str | None = None, file: str | None = None) -> Module:
    """An ELF executable to be located: the static module :func:`read` gives, with each
    symbol's section (``Module.symbol_sections``) and the program's fixups as relocations:
    those ``ld --emit-relocs`` (``-q``) kept, against the symbols they name (``r_offset`` made
    an offset in its section; a ``REL`` table's addend recovered from the linked field), or
    else a position-independent executable's dynamic ``RELATIVE`` relocations, against row 0
    (an ``IMAGE_ADDRESS``), which move the program as a whole only (``Module.moves``; an
    executable with neither cannot move). Other dynamic relocations are kept with their own
    kinds, which the locator refuses (the program needs a dynamic linker)."""
    data, file = file_and_bytes(source, file)
    elf = ElfFile(data, file)
    machine = MACHINES.get(elf.header.machine)
    if machine is None:
        raise UnsupportedError(f"unsupported ELF machine {elf.header.machine}", file=file)
    if elf.header.type not in (ET_EXEC, ET_DYN):
        raise UnsupportedError("not a linked program (an executable or a position-independent "
                               "executable)", file=file)
    module = _read_static(elf, machine, module_name(file, name))
    section_map = np.full(len(elf.sections), NOT_LOADED, np.int32)
    loaded = [i for i, (t, f) in enumerate(zip(elf.sh["type"], elf.sh["flags"], strict=True))
              if _is_loaded(t, f)]
    for i in loaded:
        sec = module.sections[loaded.index(i)]
        end = sec.address + sec.size
        if end > 1 << elf.header.bits:
            raise elf.error(f"the section [{sec.address:#x}, {end:#x}) passes the end of the "
                            f"{elf.header.bits}-bit address space", elf.names[i])
        if end > 1 << 63:
            raise UnsupportedError(f"the section [{sec.address:#x}, {end:#x}) reaches past "
                                   "2**63: the locator places nothing in the top half of the "
                                   "64-bit address space", file=file, section=elf.names[i])
    section_map[loaded] = np.arange(len(loaded), dtype=np.int32)
    where = _symbol_sections(elf, section_map)
    if not len(module.symbols):  # a stripped program: row 0 still stands for "no symbol"
        module.symbols = np.zeros(1, SYMBOL_DTYPE)
        module.symbols["module"] = -1
        module.symbols["section"] = UNDEF
        module.strtab = b"\0"
        where = np.full(1, FIXED, np.int32)
    cpu = arch_registry.ARCHES.get(machine)
    runs = _kept_relocations(elf, cpu, section_map, module) if cpu is not None else []
    module.moves = MOVES_APART
    if not runs:
        runs = _dynamic_relocations(elf, cpu, module)
        where[0] = IMAGE_ADDRESS
        # a PIE reaches its data PC-relatively, which no dynamic relocation lists
        module.moves = MOVES_WHOLE if elf.header.type == ET_DYN else MOVES_NOT
    module.relocations = runs
    module.symbol_sections = where
    return module


def _symbol_sections(elf: ElfFile, section_map: np.ndarray) -> np.ndarray:
    """Per symbol: the index of its loaded section, or FIXED (absolute, undefined, or in a
    section that is not loaded)."""
    shndx, special = elf.symbol_shndx, elf.symbol_special
    where = np.full(len(shndx), FIXED, np.int32)
    regular = ~special & (shndx != SHN_UNDEF)
    if len(section_map):
        where[regular] = section_map[shndx[regular]]
    where[where < 0] = FIXED
    return where


def _kept_relocations(elf: ElfFile, cpu, section_map: np.ndarray,
                      module: Module) -> list[RelocationRun]:
    """The relocations of loaded sections that ``--emit-relocs`` kept, with explicit addends."""
    runs = []
    values = elf.symbols["value"].astype(np.int64) if len(elf.symbols) else np.zeros(0, np.int64)
    for ri in elf.relocation_sections():
        if elf.sh["link"][ri] != elf.symtab_index or elf.sh["type"][elf.symtab_index] != SHT_SYMTAB:
            continue  # dynamic relocations: see _dynamic_relocations
        target = elf.patched_section(ri)
        if section_map[target] < 0:
            continue  # relocations of debug information
        sec = module.sections[section_map[target]]
        address, typ, sym, addend = elf.relocations(ri)
        offset = address.astype(np.int64) - sec.address
        outside = np.flatnonzero((offset < 0) | (offset >= max(sec.size, 1)))
        if len(outside):
            i = int(outside[0])
            raise elf.error(f"kept relocation {i} patches address {int(address[i]):#x}, outside "
                            f"the section [{sec.address:#x}, {sec.address + sec.size:#x})",
                            elf.names[ri], i)
        kind = typ.astype(np.int64)
        if elf.sh["type"][ri] == SHT_REL and len(kind):
            addend = _linked_addends(elf, cpu, sec, kind, offset, sym.astype(np.int64), values)
        runs.append(RelocationRun(int(section_map[target]), offset.astype(np.uint64),
                                  kind.astype(np.uint32), sym.astype(np.uint32),
                                  np.asarray(addend, np.int64)))
    return runs


def _linked_addends(elf: ElfFile, cpu, sec: Section, kind: np.ndarray, offset: np.ndarray,
                    sym: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The addends of a REL table kept in a linked program: its fields hold S+A (S+A-P when
    PC-relative), so A is what the field decodes to less S (plus P). Where a field does not
    give its value back on its own (a half of it, or without the bit that tells a Thumb
    target), the CPU's ``linked_values`` recovers it (ARM's movw/movt pairs); a field holding
    part of its value that the CPU cannot recover is refused."""
    t = cpu.tables
    known = (kind < len(t.known)) & t.known[np.minimum(kind, len(t.known) - 1)]
    if not known.all():
        return np.zeros(len(kind), np.int64)  # (unknown kinds are refused by the locator)
    recovered = cpu.linked_values.kinds if cpu.linked_values is not None else frozenset()
    for k in np.unique(kind).tolist():
        f = cpu.kinds[k].field
        # (a checked field holds its whole value: its shift drops only bits an aligned
        # target has clear)
        if k not in recovered and f is not None and (
                f.round_ha or (f.check is Check.NONE and (f.shift or f.bits < cpu.bits))):
            i = int(np.flatnonzero(kind == k)[0])
            raise UnsupportedError(f"the addend of a {cpu.kinds[k].name} kept in a REL table cannot "
                                   "be recovered from the linked field, which holds part of its "
                                   "value", file=elf.file, section=sec.name, offset=int(offset[i]))
    image = np.frombuffer(sec.data if sec.data is not None else b"", np.uint8)
    writes = t.width[kind] > 0
    if (offset[writes] + t.width[kind[writes]] > len(image)).any():
        raise elf.error("a kept relocation patches a field beyond the section's bytes", sec.name)
    symbol = values[sym]
    held = stored_addends(cpu, image, elf.header.byteorder, kind, offset)
    place = sec.address + offset
    value = held + np.where(t.pcrel[kind], place, 0)
    rows = np.flatnonzero(np.isin(kind, list(recovered))) if recovered else np.zeros(0, np.int64)
    if len(rows):
        width = t.width[kind[rows]]
        containers = np.zeros(len(rows), np.uint64)
        for w in distinct(width).tolist():
            containers[width == w] = gather(image, offset[rows][width == w], w, elf.header.byteorder)
        value[rows], found = cpu.linked_values.values(kind[rows], place[rows], sym[rows],
                                                      symbol[rows], containers)
        if not found.all():
            i = int(rows[np.flatnonzero(~found)[0]])
            raise FixupError(f"the field at {int(place[i]):#x} holds part of an address, and the "
                             "rest of it (in the instruction that pairs with it) is not found: the "
                             "address cannot be recovered, so the program cannot be located",
                             file=elf.file, section=sec.name, offset=int(offset[i]),
                             kind=cpu.kinds[int(kind[i])].name,
                             symbol=elf.symbol_name(int(sym[i])) or None)
    return np.where(writes, value - symbol, 0)


def _dynamic_relocations(elf: ElfFile, cpu, module: Module) -> list[RelocationRun]:
    """A PIE's dynamic relocations: RELATIVE ones as the CPU's pointer kind against row 0
    (the addend is the address, as linked), the others with their own kinds."""
    dynsym = [i for i, t in enumerate(elf.sh["type"]) if t == SHT_DYNSYM]
    tables = [ri for ri in elf.relocation_sections() if dynsym and elf.sh["link"][ri] in dynsym]
    if not tables or cpu is None:
        return []
    starts = np.array([s.address for s in module.sections], np.int64)
    sizes = np.array([s.size for s in module.sections], np.int64)
    by_section: dict[int, list[tuple[np.ndarray, ...]]] = {}
    relative = _RELATIVE.get(cpu.name)
    for ri in tables:
        rela = elf.sh["type"][ri] == SHT_RELA
        dtype = elf.dt["rela" if rela else "rel"]
        table = elf._table(elf.sh["offset"][ri], elf.sh["size"][ri], elf.sh["entsize"][ri], dtype,
                           "dynamic relocation table", elf.names[ri])
        if elf.header.bits == 64:
            typ = table["type"].astype(np.int64)
        else:
            typ = (table["info"] & 0xFF).astype(np.int64)
        address = table["offset"].astype(np.int64)
        index = np.searchsorted(starts, address, side="right") - 1
        ok = (index >= 0) & (address < starts[np.maximum(index, 0)] + sizes[np.maximum(index, 0)])
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise elf.error(f"dynamic relocation {i} patches {int(address[i]):#x}, outside every "
                            "loaded section", elf.names[ri], i)
        is_relative = typ == relative
        kind = np.where(is_relative, cpu.pointer_kind, typ)
        # (other kinds are refused by the locator: their row is moot, and it would index
        # .dynsym, not the symbols the module has)
        target = np.zeros(len(kind), np.int64)
        addend = table["addend"].astype(np.int64) if rela else None
        for i in np.unique(index).tolist():
            rows = np.flatnonzero(index == i)
            offset = address[rows] - starts[i]
            if addend is None:
                sec = module.sections[i]
                image = np.frombuffer(sec.data if sec.data is not None else b"", np.uint8)
                if (offset + cpu.word_size > len(image)).any():
                    raise elf.error("a dynamic relocation patches beyond its section's bytes",
                                    sec.name)
                found = stored_addends(cpu, image, elf.header.byteorder, kind[rows], offset)
            else:
                found = addend[rows]
            by_section.setdefault(i, []).append((offset, kind[rows], target[rows], found))
    runs = []
    for i, parts in sorted(by_section.items()):
        offset, kind, target, addend = (np.concatenate(c) for c in zip(*parts, strict=True))
        runs.append(RelocationRun(i, offset.astype(np.uint64), kind.astype(np.uint32),
                                  target.astype(np.uint32), addend.astype(np.int64)))
    return runs


# The RELATIVE kind of each CPU (B+A: the load base plus the addend).
_RELATIVE = {"x86_64": 8, "i386": 8, "ppc": 22, "arm": 23, "aarch64": 1027}


# -- dump (readelf-like) ---------------------------------------------------------------------------
_BIND = {0: "LOCAL", 1: "GLOBAL", 2: "WEAK", 10: "UNIQUE"}
_TYPE = {0: "NOTYPE", 1: "OBJECT", 2: "FUNC", 3: "SECTION", 4: "FILE", 5: "COMMON", 6: "TLS",
         10: "IFUNC"}
_ELF_TYPE = {1: "relocatable", 2: "executable", 3: "shared object", 4: "core"}
_SPECIAL_SHNDX = {0: "UND", 0xFFF1: "ABS", 0xFFF2: "COM", 0xFF02: "LCOM"}


def dump(data: bytes | bytearray | memoryview, file: str, *, disasm: bool = False,
         plf: Source | None = None) -> Iterator[str]:
    """Lines describing an ELF file: header, sections, symbols, relocations; ``disasm`` adds
    the executable sections' code, disassembled for the file's own CPU (``plf`` is for RELs
    and not used here)."""
    elf = ElfFile(data, file)
    h = elf.header
    machine = MACHINES.get(h.machine, f"machine {h.machine}")
    order = "little" if h.byteorder == "<" else "big"
    yield (f"{elf.file}: ELF{h.bits} {order}-endian {machine} "
           f"{_ELF_TYPE.get(h.type, f'type {h.type}')}")
    if h.type != ET_REL:
        yield f"entry point {h.entry:#x}"
    yield ""
    yield from _dump_sections(elf)
    yield ""
    yield from _dump_symbols(elf)
    cpu = arch_registry.ARCHES.get(machine)
    kind_name = cpu.kind_name if cpu is not None else (lambda k: f"type {k}")
    for ri in elf.relocation_sections():
        if elf.sh["link"][ri] != elf.symtab_index:
            yield from _dump_dynamic_relocations(elf, ri, kind_name)
            continue
        offset, typ, sym, addend = elf.relocations(ri)
        target = elf.patched_section(ri)
        yield ""
        yield f"Relocations of {elf.names[target]} ({len(offset)} entries, from {elf.names[ri]}):"
        yield f"  {'offset':>10}  {'kind':<26} {'symbol':<32} addend"
        for o, t, s, a in zip(offset.tolist(), typ.tolist(), sym.tolist(), addend.tolist(),
                              strict=True):
            yield f"  {o:#10x}  {kind_name(t):<26} {_symbol_label(elf, s):<32} {a:+#x}"
    if disasm:
        yield from _dump_code(elf, machine)


def _dump_dynamic_relocations(elf: ElfFile, ri: int, kind_name) -> Iterator[str]:
    """A table of dynamic relocations (a PIE's or a shared object's, against another symbol
    table than the one read, .dynsym): addresses, kinds, symbol numbers, addends."""
    rela = elf.sh["type"][ri] == SHT_RELA
    dtype = elf.dt["rela" if rela else "rel"]
    table = elf._table(elf.sh["offset"][ri], elf.sh["size"][ri], elf.sh["entsize"][ri], dtype,
                       "dynamic relocation table", elf.names[ri])
    if elf.header.bits == 64:
        typ, sym = table["type"], table["sym"]
    else:
        typ, sym = table["info"] & np.uint32(0xFF), table["info"] >> np.uint32(8)
    addend = table["addend"].tolist() if rela else [None] * len(table)
    yield ""
    yield (f"Dynamic relocations ({len(table)} entries, from {elf.names[ri]}, against section "
           f"{int(elf.sh['link'][ri])}'s symbols):")
    yield f"  {'address':>10}  {'kind':<26} {'symbol':<32} addend"
    for o, t, k, a in zip(table["offset"].tolist(), typ.tolist(), sym.tolist(), addend,
                          strict=True):
        yield f"  {o:#10x}  {kind_name(t):<26} {f'#{k}' if k else '':<32} " + \
            ("(in the field)" if a is None else f"{a:+#x}")


def _dump_code(elf: ElfFile, machine: str) -> Iterator[str]:
    """The executable sections disassembled, each at its address (0 in an object file), with
    the relocations that patch each instruction."""
    cpu = arch_registry.ARCHES.get(machine)
    notes = _relocation_notes(elf, cpu)
    for i in range(len(elf.sections)):
        sh = elf.sections[i]
        flags = int(sh["flags"])
        if not flags & SHF_EXECINSTR or int(sh["type"]) == SHT_NOBITS or not int(sh["size"]):
            continue
        yield ""
        yield f"Disassembly of section {elf.names[i]}:"
        if cpu is None:
            yield f"  (no disassembler for {machine})"
            continue
        yield from disassemble(cpu, bytes(elf.section_data(i)), int(sh["addr"]), notes.get(i))


def _relocation_notes(elf: ElfFile, cpu) -> dict[int, dict[int, list[str]]]:
    """Per patched section: field address -> the relocations of that field, as text."""
    out: dict[int, dict[int, list[str]]] = {}
    if cpu is None:
        return out
    for ri in elf.relocation_sections():
        if elf.sh["link"][ri] != elf.symtab_index:
            continue  # dynamic relocations: addresses, not offsets of one section
        target = elf.patched_section(ri)
        offset, typ, sym, addend = elf.relocations(ri)
        notes = out.setdefault(target, {})
        base = int(elf.sections["addr"][target])
        for o, t, s, a in zip(offset.tolist(), typ.tolist(), sym.tolist(), addend.tolist(),
                              strict=True):
            notes.setdefault(base + o, []).append(f"{cpu.kind_name(t)} {_symbol_label(elf, s)}{a:+#x}")
    return out


def _dump_sections(elf: ElfFile) -> Iterator[str]:
    yield f"Sections ({len(elf.sections)}):"
    yield f"  {'nr':>3} {'name':<28} {'type':<14} {'flags':<5} {'address':>10} {'size':>8} align"
    for i in range(len(elf.sections)):
        sh = elf.sections[i]
        flags = int(sh["flags"])
        flag_text = "".join(c for bit, c in ((0x2, "A"), (0x4, "X"), (0x1, "W"), (0x200, "G"),
                                              (0x400, "T")) if flags & bit)
        type_name = SECTION_TYPE_NAMES.get(int(sh["type"]), f"{int(sh['type']):#x}")
        yield (f"  {i:>3} {elf.names[i][:28]:<28} {type_name:<14} {flag_text:<5} "
               f"{int(sh['addr']):#10x} {int(sh['size']):#8x} {int(sh['addralign'])}")


def _dump_symbols(elf: ElfFile) -> Iterator[str]:
    syms = elf.symbols
    yield f"Symbols ({len(syms)}):"
    yield f"  {'nr':>5} {'value':>16} {'size':>6} {'type':<7} {'bind':<6} {'section':<20} name"
    shndx = elf.symbol_shndx
    for i in range(len(syms)):
        info = int(syms["info"][i])
        yield (f"  {i:>5} {int(syms['value'][i]):16x} {int(syms['size'][i]):6} "
               f"{_TYPE.get(info & 0xF, str(info & 0xF)):<7} {_BIND.get(info >> 4, str(info >> 4)):<6} "
               f"{_section_label(elf, int(shndx[i])):<20} {elf.symbol_name(i)}")


def _section_label(elf: ElfFile, index: int) -> str:
    if index in _SPECIAL_SHNDX:
        return _SPECIAL_SHNDX[index]
    return elf.names[index][:20] if index < len(elf.names) else str(index)


def _symbol_label(elf: ElfFile, index: int) -> str:
    name = elf.symbol_name(index)
    if name:
        return name
    shndx = int(elf.symbol_shndx[index])
    if int(elf.symbols["info"][index]) & 0xF == 3 and shndx < len(elf.names):
        return elf.names[shndx]
    return f"#{index}"
