"""Human-readable views of files (``linkload dump``): a short readelf-like listing."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from . import arch as arch_registry
from .errors import UnsupportedError
from .formats import Source, read_bytes
from .formats import elf as elf_format

_BIND = {0: "LOCAL", 1: "GLOBAL", 2: "WEAK", 10: "UNIQUE"}
_TYPE = {0: "NOTYPE", 1: "OBJECT", 2: "FUNC", 3: "SECTION", 4: "FILE", 5: "COMMON", 6: "TLS",
         10: "IFUNC"}
_ELF_TYPE = {1: "relocatable", 2: "executable", 3: "shared object", 4: "core"}
_SPECIAL_SHNDX = {0: "UND", 0xFFF1: "ABS", 0xFFF2: "COM", 0xFF02: "LCOM"}


def dump(source: Source) -> Iterator[str]:
    """Lines describing the file ``source`` (recognised by its contents)."""
    data, file = read_bytes(source)
    if bytes(data[:4]) == elf_format.MAGIC:
        yield from dump_elf(elf_format.ElfFile(data, file))
        return
    from .errors import FormatError

    raise FormatError("unrecognised file format", file=file, offset=0)


def _kind_namer(machine: str):
    try:
        arch = arch_registry.get(machine)
    except UnsupportedError:
        return lambda k: f"type {k}"
    return arch.kind_name


def dump_elf(elf: elf_format.ElfFile) -> Iterator[str]:
    h = elf.header
    machine = elf_format.MACHINES.get(h.machine, f"machine {h.machine}")
    order = "little" if h.byteorder == "<" else "big"
    yield (f"{elf.file}: ELF{h.bits} {order}-endian {machine} "
           f"{_ELF_TYPE.get(h.type, f'type {h.type}')}")
    if h.type != elf_format.ET_REL:
        yield f"entry point {h.entry:#x}"
    yield ""
    yield from _sections(elf)
    yield ""
    yield from _symbols(elf)
    kind_name = _kind_namer(machine)
    for ri in elf.relocation_sections():
        offset, typ, sym, addend = elf.relocations(ri)
        target = int(elf.sections["info"][ri])
        yield ""
        yield f"Relocations of {elf.names[target]} ({len(offset)} entries, from {elf.names[ri]}):"
        yield f"  {'offset':>10}  {'kind':<26} {'symbol':<32} addend"
        for o, t, s, a in zip(offset.tolist(), typ.tolist(), sym.tolist(), addend.tolist(),
                              strict=True):
            yield f"  {o:#10x}  {kind_name(t):<26} {_symbol_label(elf, s):<32} {a:+#x}"


def _sections(elf: elf_format.ElfFile) -> Iterator[str]:
    yield f"Sections ({len(elf.sections)}):"
    yield f"  {'nr':>3} {'name':<28} {'type':<14} {'flags':<5} {'address':>10} {'size':>8} align"
    for i in range(len(elf.sections)):
        sh = elf.sections[i]
        flags = int(sh["flags"])
        flag_text = "".join(c for bit, c in ((0x2, "A"), (0x4, "X"), (0x1, "W"), (0x200, "G"),
                                              (0x400, "T")) if flags & bit)
        type_name = elf_format.SECTION_TYPE_NAMES.get(int(sh["type"]), f"{int(sh['type']):#x}")
        yield (f"  {i:>3} {elf.names[i][:28]:<28} {type_name:<14} {flag_text:<5} "
               f"{int(sh['addr']):#10x} {int(sh['size']):#8x} {int(sh['addralign'])}")


def _symbols(elf: elf_format.ElfFile) -> Iterator[str]:
    syms = elf.symbols
    yield f"Symbols ({len(syms)}):"
    yield f"  {'nr':>5} {'value':>16} {'size':>6} {'type':<7} {'bind':<6} {'section':<20} name"
    shndx = elf.symbol_shndx
    for i in range(len(syms)):
        info = int(syms["info"][i])
        yield (f"  {i:>5} {int(syms['value'][i]):16x} {int(syms['size'][i]):6} "
               f"{_TYPE.get(info & 0xF, str(info & 0xF)):<7} {_BIND.get(info >> 4, str(info >> 4)):<6} "
               f"{_section_label(elf, int(shndx[i])):<20} {elf.symbol_name(i)}")


def _section_label(elf: elf_format.ElfFile, index: int) -> str:
    if index in _SPECIAL_SHNDX:
        return _SPECIAL_SHNDX[index]
    return elf.names[index][:20] if index < len(elf.names) else str(index)


def _symbol_label(elf: elf_format.ElfFile, index: int) -> str:
    name = elf.symbol_name(index)
    if name:
        return name
    shndx = int(elf.symbol_shndx[index])
    if int(elf.symbols["info"][index]) & 0xF == 3 and shndx < len(elf.names):
        return elf.names[shndx]
    return f"#{index}"


__all__ = ["dump", "dump_elf", "np"]
