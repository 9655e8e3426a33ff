"""A located program as an ELF executable, for flash tools and debuggers.

Every section sits at the address where it runs (``sh_addr``) and has a ``PT_LOAD`` program
header whose ``p_vaddr`` is that run address and whose ``p_paddr`` is where its bytes are
stored at load time (its copy in ROM for a section copied at start-up), as GNU ld writes
``>RAM AT>ROM``: a flash tool or gdb's ``load`` writes each segment at ``p_paddr``, and a
debugger finds code and data at ``sh_addr``. A section whose bytes are stored elsewhere in
another form (a compressed copy) carries none itself (``NOBITS``, ``p_filesz`` 0); the stored
form is a section of its own. The symbols are the program's, at their run addresses.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedError
from .elf import (
    MACHINES,
    PF_R,
    PF_W,
    PF_X,
    PT_LOAD,
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_WRITE,
    SHN_ABS,
    SHT_NOBITS,
    SHT_PROGBITS,
    SHT_STRTAB,
    SHT_SYMTAB,
    table_dtypes,
)

ET_EXEC = 2
STB_LOCAL, STB_GLOBAL = 0, 1


@dataclass(frozen=True)
class ImageSection:
    """A section of the image: ``data`` (None: no bytes in the file) runs at ``address``
    and is stored at ``load`` (None: nothing is loaded for it, as for a bss)."""

    name: str
    address: int
    size: int
    data: bytes | None
    load: int | None
    align: int = 1
    executable: bool = False
    writable: bool = False


@dataclass(frozen=True)
class ImageSymbol:
    """A symbol: ``section`` is an index into the image's sections, or None (absolute)."""

    name: str
    value: int
    section: int | None
    size: int = 0
    bind: int = STB_GLOBAL
    type: int = 0


def write(machine: str, bits: int, byteorder: str, entry: int, sections: Sequence[ImageSection],
          symbols: Sequence[ImageSymbol] = ()) -> bytes:
    """The bytes of the ELF executable (see the module docstring)."""
    numbers = {name: number for number, name in MACHINES.items()}
    if machine not in numbers:
        raise UnsupportedError(f"no ELF machine number for {machine}")
    dt = table_dtypes(bits, byteorder)
    ehdr = 64 if bits == 64 else 52
    loads = [i for i, s in enumerate(sections) if s.load is not None or s.data is None]
    cursor = ehdr + len(loads) * dt["phdr"].itemsize
    offsets = []
    for s in sections:  # section bytes, each at a file offset congruent to its address
        if s.data is None:
            offsets.append(cursor)
            continue
        cursor += (-cursor) % min(max(s.align, 1), 16)  # (segments are not mapped: p_align 1)
        offsets.append(cursor)
        cursor += len(s.data)
    strtab, symtab, first_global = _symbol_table(dt, symbols)
    shstrtab, names = _strings([s.name for s in sections] + [".symtab", ".strtab", ".shstrtab"])
    tables = [(symtab, SHT_SYMTAB, dt["sym"].itemsize), (strtab, SHT_STRTAB, 0),
              (shstrtab, SHT_STRTAB, 0)]
    table_offsets = []
    for blob, _t, _e in tables:
        cursor += (-cursor) % 8
        table_offsets.append(cursor)
        cursor += len(blob)
    cursor += (-cursor) % 8
    shoff = cursor
    count = 1 + len(sections) + len(tables)
    out = bytearray(shoff + count * dt["shdr"].itemsize)
    shdrs = np.zeros(count, dt["shdr"])
    for i, s in enumerate(sections, start=1):
        flags = SHF_ALLOC | (SHF_EXECINSTR if s.executable else 0) | (SHF_WRITE if s.writable else 0)
        kind = SHT_NOBITS if s.data is None else SHT_PROGBITS
        shdrs[i] = (names[i - 1], kind, flags, s.address, offsets[i - 1], s.size, 0, 0,
                    max(s.align, 1), 0)
        if s.data is not None:
            out[offsets[i - 1]:offsets[i - 1] + len(s.data)] = s.data
    base = 1 + len(sections)
    for k, ((blob, kind, entsize), offset) in enumerate(zip(tables, table_offsets, strict=True)):
        link, info = (base + 1, first_global) if kind == SHT_SYMTAB else (0, 0)
        shdrs[base + k] = (names[len(sections) + k], kind, 0, 0, offset, len(blob), link, info,
                           8 if kind == SHT_SYMTAB else 1, entsize)
        out[offset:offset + len(blob)] = blob
    out[shoff:] = shdrs.tobytes()
    phdrs = np.zeros(len(loads), dt["phdr"])
    for k, i in enumerate(loads):
        s = sections[i]
        flags = PF_R | (PF_X if s.executable else 0) | (PF_W if s.writable else 0)
        filesz = len(s.data) if s.data is not None and s.load is not None else 0
        values = {"type": PT_LOAD, "flags": flags, "offset": offsets[i], "vaddr": s.address,
                  "paddr": s.load if s.load is not None else s.address, "filesz": filesz,
                  "memsz": s.size, "align": 1}
        for name, value in values.items():
            phdrs[k][name] = value
    out[ehdr:ehdr + phdrs.nbytes] = phdrs.tobytes()
    out[:ehdr] = _header(bits, byteorder, numbers[machine], entry, ehdr, len(loads), shoff,
                         count, count - 1, dt)
    return bytes(out)


def _header(bits: int, order: str, machine: int, entry: int, ehdr: int, phnum: int, shoff: int,
            shnum: int, shstrndx: int, dt) -> bytes:
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1 if order == "<" else 2, 1, 0]) + bytes(8)
    fmt = order + ("HHIQQQIHHHHHH" if bits == 64 else "HHIIIIIHHHHHH")
    return ident + struct.pack(fmt, ET_EXEC, machine, 1, entry, ehdr if phnum else 0, shoff, 0,
                               ehdr, dt["phdr"].itemsize, phnum, dt["shdr"].itemsize, shnum,
                               shstrndx)


def _strings(names: Sequence[str]) -> tuple[bytes, list[int]]:
    blob, offsets = bytearray(b"\0"), []
    for name in names:
        if not name:
            offsets.append(0)
            continue
        offsets.append(len(blob))
        blob += name.encode("utf-8", "surrogateescape") + b"\0"
    return bytes(blob), offsets


def _symbol_table(dt, symbols: Sequence[ImageSymbol]) -> tuple[bytes, bytes, int]:
    """(.strtab, .symtab, index of the first global): locals first, as ELF wants."""
    ordered = sorted(symbols, key=lambda s: s.bind != STB_LOCAL)
    strtab, offsets = _strings([s.name for s in ordered])
    table = np.zeros(1 + len(ordered), dt["sym"])
    for i, (s, name) in enumerate(zip(ordered, offsets, strict=True), start=1):
        table[i]["name"] = name
        table[i]["value"] = s.value
        table[i]["size"] = s.size
        table[i]["info"] = (s.bind << 4) | (s.type & 0xF)
        table[i]["shndx"] = SHN_ABS if s.section is None else s.section + 1
    first_global = 1 + sum(1 for s in ordered if s.bind == STB_LOCAL)
    return strtab, table.tobytes(), first_global
