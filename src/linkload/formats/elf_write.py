"""ELF files linkload writes for debuggers: the symbol file of a linked object, and the tiny
shared object that carries GDB's JIT interface.

A **symbol file** tells a debugger about one object file of a module linked at run time, as
GDB's JIT interface wants it ("JIT Compilation Interface" in the GDB manual): an ELF
executable, never loaded, whose sections carry the addresses where the object's sections were
loaded (their bytes stay in the module: the sections are ``NOBITS``, except those whose bytes
the debugger reads from the file, such as ``.eh_frame`` for unwinding), whose symbol table
holds the object's functions and data at their run-time addresses, and whose ``.debug_*``
sections are the object's DWARF, relocated for where it was loaded (through the one field
writer, :func:`linkload.arch.fields.write_fields`).

The **JIT interface library** defines ``__jit_debug_register_code`` (a function that only
returns: the debugger sets a breakpoint in it) and ``__jit_debug_descriptor`` (version 1, no
action, no entries), which a debugger looks for by name in the objects loaded in a process.
It is written here, without a compiler: a header, three segments (read-only tables, code,
data), a dynamic section with a hash table for ``dlsym``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..arch import EXPR_CODES, Arch, Expr
from ..arch.fields import FieldBatch, evaluate, kind_set, kinds_of, stored_addends, write_fields
from ..errors import UnsupportedError
from ..model import (
    ABS,
    COMMON,
    FUNC,
    GLOBAL,
    GNU_IFUNC,
    LOCAL,
    NOTYPE,
    OBJECT,
    UNDEF,
    DebugSections,
    Module,
    SectionKind,
)
from .elf import (
    MACHINES,
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_WRITE,
    SHN_ABS,
    SHN_LORESERVE,
    SHN_XINDEX,
    SHT_DYNSYM,
    SHT_NOBITS,
    SHT_PROGBITS,
    SHT_STRTAB,
    SHT_SYMTAB,
    SHT_SYMTAB_SHNDX,
    table_dtypes,
)

ET_EXEC, ET_DYN = 2, 3
SHT_HASH, SHT_DYNAMIC = 5, 6
PT_LOAD, PT_DYNAMIC, PT_GNU_STACK = 1, 2, 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
DT_NULL, DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT, DT_SONAME = 0, 4, 5, 6, 10, 11, 14

REGISTER_CODE = "__jit_debug_register_code"
DESCRIPTOR = "__jit_debug_descriptor"
JIT_INTERFACE_SONAME = "liblinkload-jit.so"
# Where a relocation of debug info against code that was not loaded (a dropped COMDAT copy)
# points: 0, or 1 in the range lists where 0 would end the list (as lld does).
_TOMBSTONE_ONE = (".debug_ranges", ".debug_loc")
_SYMBOL_TYPES = (NOTYPE, OBJECT, FUNC, GNU_IFUNC)
# Loaded sections whose bytes a debugger reads from the symbol file, not from memory: the
# unwind tables (the others are NOBITS, with their addresses).
_READ_FROM_FILE = (".eh_frame",)


# -- a small ELF writer ------------------------------------------------------------------------
@dataclass
class _Section:
    name: str
    type: int
    flags: int = 0
    addr: int = 0
    data: bytes = b""
    size: int = 0  # NOBITS only; otherwise len(data)
    align: int = 1
    link: int = 0
    info: int = 0
    entsize: int = 0
    offset: int | None = None  # where in the file (default: after the previous section)


class _ElfWriter:
    """Sections (and program headers) in, the bytes of an ELF file out. Section 0 is the null
    section; ``.shstrtab`` is added last. More than 0xff00 sections use extended numbering."""

    def __init__(self, machine: str, bits: int, byteorder: str, elf_type: int) -> None:
        numbers = {name: number for number, name in MACHINES.items()}
        if machine not in numbers:
            raise UnsupportedError(f"no ELF machine number for {machine}")
        self.machine, self.bits, self.order, self.type = numbers[machine], bits, byteorder, elf_type
        self.dt = table_dtypes(bits, byteorder)
        self.sections: list[_Section] = [_Section("", 0)]
        self.segments: list[tuple[int, int, int, int, int]] = []  # type, flags, offset, size, align

    @property
    def header_size(self) -> int:
        return 64 if self.bits == 64 else 52

    def add(self, section: _Section) -> int:
        """Add a section; its index."""
        self.sections.append(section)
        return len(self.sections) - 1

    def segment(self, kind: int, flags: int, offset: int, size: int, align: int) -> None:
        """A program header whose file offset is its address (``p_offset == p_vaddr``)."""
        self.segments.append((kind, flags, offset, size, align))

    def bytes(self) -> bytes:
        """The file (call once: it adds the section name table)."""
        shstrtab, names = _string_table([s.name for s in self.sections] + [".shstrtab"])
        shstrndx = self.add(_Section(".shstrtab", SHT_STRTAB, data=shstrtab))
        cursor = self.header_size + len(self.segments) * self.dt["phdr"].itemsize
        for s in self.sections[1:]:
            if s.type != SHT_NOBITS:
                s.offset = _align(cursor, s.align) if s.offset is None else s.offset
                cursor = max(cursor, s.offset + len(s.data))
        shoff = _align(cursor, 8)
        count = len(self.sections)
        out = bytearray(shoff + count * self.dt["shdr"].itemsize)
        table = np.zeros(count, self.dt["shdr"])
        for i, s in enumerate(self.sections):
            if i:
                table[i] = (names[i], s.type, s.flags, s.addr, s.offset or 0,
                            s.size if s.type == SHT_NOBITS else len(s.data), s.link, s.info,
                            s.align, s.entsize)
            if s.type != SHT_NOBITS and s.data:
                out[s.offset:s.offset + len(s.data)] = s.data
        extended = count >= SHN_LORESERVE
        if extended:  # the count and the name table's index move to section 0
            table[0]["size"], table[0]["link"] = count, shstrndx
        out[shoff:] = table.tobytes()
        out[:self.header_size] = self._header(shoff, 0 if extended else count,
                                              SHN_XINDEX if extended else shstrndx)
        phdrs = np.zeros(len(self.segments), self.dt["phdr"])
        for i, (kind, flags, offset, size, align) in enumerate(self.segments):
            for field, value in (("type", kind), ("flags", flags), ("offset", offset),
                                 ("vaddr", offset), ("paddr", offset), ("filesz", size),
                                 ("memsz", size), ("align", align)):
                phdrs[i][field] = value
        out[self.header_size:self.header_size + phdrs.nbytes] = phdrs.tobytes()
        return bytes(out)

    def _header(self, shoff: int, shnum: int, shstrndx: int) -> bytes:
        ident = b"\x7fELF" + bytes([2 if self.bits == 64 else 1, 1 if self.order == "<" else 2,
                                    1, 0]) + bytes(8)
        fmt = self.order + ("HHIQQQIHHHHHH" if self.bits == 64 else "HHIIIIIHHHHHH")
        phoff = self.header_size if self.segments else 0
        return ident + struct.pack(fmt, self.type, self.machine, 1, 0, phoff, shoff, 0,
                                   self.header_size, self.dt["phdr"].itemsize,
                                   len(self.segments), self.dt["shdr"].itemsize, shnum, shstrndx)


def _align(value: int, align: int) -> int:
    align = max(align, 1)
    return (value + align - 1) // align * align


def _string_table(names: Sequence[str]) -> tuple[bytes, list[int]]:
    """An ELF string table holding ``names``, and the offset of each (0 for an empty name)."""
    encoded = [n.encode("utf-8", "surrogateescape") for n in names]
    lengths = np.array([len(e) + 1 if e else 0 for e in encoded], np.int64)
    offsets = 1 + np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    offsets[lengths == 0] = 0
    return b"\0" + b"".join(e + b"\0" for e in encoded if e), offsets.tolist()


# -- the symbol file of a linked object ----------------------------------------------------------
def symbol_file(arch: Arch, module: Module, origin: int, section_addresses: Sequence[int | None],
                symbol_addresses: np.ndarray, read: Callable[[int, int], bytes], *,
                debug: bool = True) -> bytes:
    """The symbol file of object ``origin`` of a linked ``module`` (see the module docstring).

    ``section_addresses``: where each of the module's sections was loaded (None: not
    loaded); ``symbol_addresses``: the run-time address of each symbol row; ``read(address,
    size)``: loaded bytes, for the sections a debugger reads from the file (``.eh_frame``).
    ``debug``: with the object's debug sections, if it has any (they are read then, and may
    raise a :class:`~linkload.errors.LinkError` if malformed). Common blocks are named in the
    file of object 0, as absolute symbols."""
    writer = _ElfWriter(module.machine, module.bits, module.byteorder, ET_EXEC)
    out_index = np.zeros(len(module.sections) + 1, np.int64)  # (+1: the last is "none")
    for i, sec in enumerate(module.sections):
        address = section_addresses[i]
        if sec.origin != origin or address is None:
            continue
        flags = SHF_ALLOC | (SHF_EXECINSTR if sec.kind == SectionKind.TEXT else 0)
        flags |= SHF_WRITE if sec.writable else 0
        data = read(address, sec.size) if sec.name in _READ_FROM_FILE and sec.size else None
        out_index[i] = writer.add(_Section(sec.name, SHT_NOBITS if data is None else SHT_PROGBITS,
                                           flags, address, data or b"", sec.size, sec.align))
    for info in module.debug if debug else ():
        if info.origin == origin:
            sections = info.load()
            images = relocated_debug(arch, module, sections, info.first_symbol,
                                     section_addresses, symbol_addresses)
            for sec, image in zip(sections.sections, images, strict=True):
                writer.add(_Section(sec.name, SHT_PROGBITS, data=image.tobytes(), align=sec.align))
    _add_symbols(writer, module, origin, out_index, symbol_addresses)
    return writer.bytes()


def empty_symbol_file(arch: Arch) -> bytes:
    """A symbol file of nothing (a debugger re-sets its breakpoints when it is given one)."""
    return _ElfWriter(arch.name, arch.bits, arch.byteorder, ET_EXEC).bytes()


def _add_symbols(writer: _ElfWriter, module: Module, origin: int, out_index: np.ndarray,
                 symbol_addresses: np.ndarray) -> None:
    """``.symtab`` and ``.strtab``: the object's named functions and data (locals first), at
    their run-time addresses, each in the section it was loaded with."""
    symbols = module.symbols
    section = symbols["section"].astype(np.int64)
    placed = out_index[np.where(section >= 0, section, len(module.sections))] > 0
    if origin == 0:  # each common block once, though several objects may declare it
        commons = np.flatnonzero(section == COMMON)
        placed[commons[np.unique(symbol_addresses[commons], return_index=True)[1]]] = True
    rows = np.flatnonzero(placed & (symbols["name"] != 0) & np.isin(symbols["type"], _SYMBOL_TYPES))
    rows = rows[np.argsort(symbols["bind"][rows] != LOCAL, kind="stable")]
    strtab, names = _names_of(module, rows)
    table = np.zeros(len(rows) + 1, writer.dt["sym"])
    table["name"][1:] = names
    table["value"][1:] = symbol_addresses[rows]
    table["size"][1:] = symbols["size"][rows]
    table["info"][1:] = (symbols["bind"][rows] << 4) | symbols["type"][rows]
    table["other"][1:] = symbols["visibility"][rows]
    shndx = np.where(section[rows] == COMMON, SHN_ABS, out_index[np.maximum(section[rows], 0)])
    large = shndx >= SHN_LORESERVE
    large &= shndx != SHN_ABS
    table["shndx"][1:] = np.where(large, SHN_XINDEX, shndx)
    symtab_index = len(writer.sections)
    strtab_index = symtab_index + 1 + bool(large.any())
    first_global = 1 + int(np.count_nonzero(symbols["bind"][rows] == LOCAL))
    writer.add(_Section(".symtab", SHT_SYMTAB, data=table.tobytes(), align=writer.bits // 8,
                        link=strtab_index, info=first_global, entsize=table.itemsize))
    if large.any():  # section numbers past 0xff00: the real ones go to a table of their own
        extended = np.concatenate([[0], np.where(large, shndx, 0)]).astype(writer.order + "u4")
        writer.add(_Section(".symtab_shndx", SHT_SYMTAB_SHNDX, data=extended.tobytes(), align=4,
                            link=symtab_index, entsize=4))
    writer.add(_Section(".strtab", SHT_STRTAB, data=strtab))


def _names_of(module: Module, rows: np.ndarray) -> tuple[bytes, np.ndarray]:
    """A string table of the names of symbol ``rows`` and their offsets in it: the stretch
    of the module's own table that holds them (one object's names, in a module combined of
    several), decoded never."""
    offsets = module.symbols["name"][rows].astype(np.int64)
    if not len(rows):
        return b"\0", offsets
    low = int(offsets.min())
    high = module.strtab.find(b"\0", int(offsets.max()))
    high = len(module.strtab) if high < 0 else high + 1
    return b"\0" + module.strtab[low:high], offsets - low + 1


def relocated_debug(arch: Arch, module: Module, debug: DebugSections, first_symbol: int,
                    section_addresses: Sequence[int | None],
                    symbol_addresses: np.ndarray) -> list[np.ndarray]:
    """The bytes of each debug section with its relocations applied, as a static linker
    would: a target in a loaded section is its run-time address, a target in a debug section
    its offset there (each debug section starts at 0 in the symbol file), a target that was
    not loaded 0 (1 in ``.debug_ranges``/``.debug_loc``). Only absolute and PC-relative kinds
    are written; fields of other kinds, or past the end of their section, are left alone."""
    loaded = np.array([a is not None for a in section_addresses] + [False])
    images = [np.frombuffer(sec.data, np.uint8).copy() for sec in debug.sections]
    t = arch.tables
    for run in debug.relocation_runs:
        image, name = images[run.section], debug.sections[run.section].name
        kind, offset = run.kind.astype(np.int64), run.offset.astype(np.int64)
        known = np.zeros(len(kind), bool)
        in_table = kind < len(t.known)
        known[in_table] = t.known[kind[in_table]]
        listed = np.where(known, kind, 0)
        writable = known & (t.width[listed] > 0) & (offset + t.width[listed] <= len(image))
        for expr in (Expr.ABS, Expr.PCREL):
            rows = np.flatnonzero(writable & (t.expr[listed] == EXPR_CODES[expr]))
            if not len(rows):
                continue
            S = _debug_targets(module, debug, run.target[rows].astype(np.int64), first_symbol,
                               loaded, symbol_addresses, 1 if name in _TOMBSTONE_ONE else 0)
            A = (stored_addends(arch, image, module.byteorder, kind[rows], offset[rows])
                 if run.implicit else run.addend[rows].astype(np.int64))
            batch = FieldBatch(kind_set(arch, kinds_of(kind[rows])), kind[rows], offset[rows],
                               evaluate(expr, S, A, offset[rows]))
            # (a value that does not fit is written cut to its field, as ld -r would)
            write_fields(arch, image, module.byteorder, batch)
    return images


def _debug_targets(module: Module, debug: DebugSections, target: np.ndarray, first_symbol: int,
                   loaded: np.ndarray, symbol_addresses: np.ndarray, tombstone: int) -> np.ndarray:
    """S for debug relocations against ``target`` (symbol rows of the object)."""
    in_debug = np.full(len(target), -1, np.int64)
    known = target < len(debug.symbol_sections)
    in_debug[known] = debug.symbol_sections[target[known]]
    rows = target + first_symbol
    section = module.symbols["section"][rows].astype(np.int64)
    placed = np.where(section >= 0, loaded[np.where(section >= 0, section, -1)],
                      (section == ABS) | (section == COMMON) | (section == UNDEF))
    S = np.where(placed, symbol_addresses[rows], tombstone).astype(np.int64)
    S[in_debug >= 0] = module.symbols["value"][rows[in_debug >= 0]].astype(np.int64)
    return S


# -- the JIT interface library -------------------------------------------------------------------
def jit_interface_library(machine: str, bits: int, byteorder: str, page_size: int,
                          return_code: bytes) -> bytes:
    """A shared object that defines ``__jit_debug_register_code`` (``return_code``: a function
    that returns at once) and ``__jit_debug_descriptor`` (version 1, no action, no entries:
    two 32-bit words and two pointers), found by ``dlsym``: the read-only tables (hash
    table, dynamic symbols and their names) after the headers, then the code and the data
    (the dynamic section, the descriptor) each on a page of their own."""
    writer = _ElfWriter(machine, bits, byteorder, ET_DYN)
    word, order = bits // 8, byteorder
    dynstr, (soname, register, descriptor) = _string_table(
        [JIT_INTERFACE_SONAME, REGISTER_CODE, DESCRIPTOR])
    # one bucket: the descriptor (symbol 2), chained to the function (1)
    hash_table = struct.pack(order + "6I", 1, 3, 2, 0, 0, 1)
    hash_at = writer.header_size + 5 * writer.dt["phdr"].itemsize  # (five program headers)
    symbols_at = _align(hash_at + len(hash_table), word)
    dynstr_at = symbols_at + 3 * writer.dt["sym"].itemsize
    code_at = _align(dynstr_at + len(dynstr), page_size)
    dynamic_at = code_at + page_size
    dynamic = np.array([DT_HASH, hash_at, DT_STRTAB, dynstr_at, DT_SYMTAB, symbols_at,
                        DT_STRSZ, len(dynstr), DT_SYMENT, writer.dt["sym"].itemsize,
                        DT_SONAME, soname, DT_NULL, 0], f"{order}u{word}")
    descriptor_at = dynamic_at + dynamic.nbytes
    descriptor_bytes = struct.pack(order + "II", 1, 0) + bytes(2 * word)
    symbols = np.zeros(3, writer.dt["sym"])
    symbols["name"] = [0, register, descriptor]
    symbols["value"] = [0, code_at, descriptor_at]
    symbols["size"] = [0, len(return_code), len(descriptor_bytes)]
    symbols["info"] = [0, (GLOBAL << 4) | FUNC, (GLOBAL << 4) | OBJECT]
    symbols["shndx"] = [0, 4, 6]  # .text, .data
    for name, kind, flags, at, data, extra in (
            (".hash", SHT_HASH, SHF_ALLOC, hash_at, hash_table, {"link": 2, "entsize": 4}),
            (".dynsym", SHT_DYNSYM, SHF_ALLOC, symbols_at, symbols.tobytes(),
             {"link": 3, "info": 1, "entsize": symbols.itemsize}),
            (".dynstr", SHT_STRTAB, SHF_ALLOC, dynstr_at, dynstr, {}),
            (".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, code_at, return_code, {}),
            (".dynamic", SHT_DYNAMIC, SHF_ALLOC | SHF_WRITE, dynamic_at, dynamic.tobytes(),
             {"link": 3, "entsize": 2 * word}),
            (".data", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, descriptor_at, descriptor_bytes, {})):
        writer.add(_Section(name, kind, flags, at, data, align=word, offset=at, **extra))
    writer.segment(PT_LOAD, PF_R, 0, dynstr_at + len(dynstr), page_size)
    writer.segment(PT_LOAD, PF_R | PF_X, code_at, len(return_code), page_size)
    writer.segment(PT_LOAD, PF_R | PF_W, dynamic_at,
                   descriptor_at + len(descriptor_bytes) - dynamic_at, page_size)
    writer.segment(PT_DYNAMIC, PF_R | PF_W, dynamic_at, dynamic.nbytes, word)
    writer.segment(PT_GNU_STACK, PF_R | PF_W, 0, 0, 16)  # no executable stack
    return writer.bytes()


__all__ = ["DESCRIPTOR", "REGISTER_CODE", "empty_symbol_file", "jit_interface_library",
           "relocated_debug", "symbol_file"]
