"""DOL: the executable format of the GameCube and Wii (the static module), bytes ⇄ Module.

A DOL is a 0x100-byte header of 7 text and 11 data slots (file offset, load address, size
each), a bss range and an entry point, followed by the slots' bytes. It has no symbols: they
come from the static ELF, a map or an ``address:name`` list (:mod:`.symtab`).

:func:`read` gives a Module of kind ``"executable"`` with a :class:`~linkload.model.Segment`
and a section (``text0``..``text6``, ``data0``..``data10``) per used slot, a bss segment and
section, the entry point and ``format_info`` (a :class:`DolHeader`). :func:`write` lays a DOL
out from segments; :func:`from_elf` from an ELF executable's ``PT_LOAD`` segments.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..arch import ppc
from ..arch.disasm import disassemble
from ..errors import FormatError, LinkError
from ..model import SYMBOL_DTYPE, Module, Section, SectionKind, Segment
from . import elf
from .base import Source, file_and_bytes, module_name

MACHINE = "ppc"  # GameCube and Wii programs are PowerPC code

HEADER_SIZE = 0x100
TEXT_SLOTS, DATA_SLOTS = 7, 11
SLOTS = TEXT_SLOTS + DATA_SLOTS
PAD = 32  # writers pad every slot's bytes to 32
_HEADER_DTYPE = np.dtype([("offset", ">u4", SLOTS), ("address", ">u4", SLOTS), ("size", ">u4", SLOTS),
                          ("bss_address", ">u4"), ("bss_size", ">u4"), ("entry", ">u4")])
FIELD_OFFSETS = {"offset": 0x00, "address": 0x48, "size": 0x90, "bss_address": 0xD8,
                 "bss_size": 0xDC, "entry": 0xE0}


def slot_name(slot: int) -> str:
    """``text0``..``text6`` for slots 0..6, ``data0``..``data10`` for 7..17."""
    return f"text{slot}" if slot < TEXT_SLOTS else f"data{slot - TEXT_SLOTS}"


@dataclass(frozen=True)
class DolHeader:
    """The DOL header: per slot (7 text, then 11 data) file offset, address and size."""

    offsets: tuple[int, ...]
    addresses: tuple[int, ...]
    sizes: tuple[int, ...]
    bss_address: int
    bss_size: int
    entry: int

    def used(self) -> list[int]:
        """The slots in use (size > 0)."""
        return [i for i in range(SLOTS) if self.sizes[i]]

    def pack(self) -> bytes:
        h = np.zeros(1, _HEADER_DTYPE)
        h["offset"], h["address"], h["size"] = self.offsets, self.addresses, self.sizes
        h["bss_address"], h["bss_size"], h["entry"] = self.bss_address, self.bss_size, self.entry
        return h.tobytes().ljust(HEADER_SIZE, b"\0")


def parse_header(data: bytes | memoryview, file: str = "<bytes>") -> DolHeader:
    """The checked header of a DOL: every used slot inside the file and the address space,
    the slots disjoint in memory, the entry point inside a text slot."""
    if len(data) < HEADER_SIZE:
        raise FormatError(f"file of {len(data):#x} bytes is shorter than a DOL header (0x100)",
                          file=file, section="header", offset=0)
    h = np.frombuffer(data, _HEADER_DTYPE, 1)[0]
    header = DolHeader(tuple(h["offset"].tolist()), tuple(h["address"].tolist()),
                       tuple(h["size"].tolist()), int(h["bss_address"]), int(h["bss_size"]),
                       int(h["entry"]))
    _check(header, len(data), file)
    return header


def _check(h: DolHeader, size: int, file: str) -> None:
    def fail(message: str, slot: int, field: str):
        where = FIELD_OFFSETS[field] + (4 * slot if slot >= 0 else 0)
        return FormatError(message, file=file, section=slot_name(slot) if slot >= 0 else "bss",
                           offset=where)

    for i in h.used():
        if h.offsets[i] < HEADER_SIZE or h.offsets[i] + h.sizes[i] > size:
            raise fail(f"data at {h.offsets[i]:#x}, size {h.sizes[i]:#x}, lies outside "
                       f"{HEADER_SIZE:#x}..{size:#x}", i, "offset")
        if h.addresses[i] + h.sizes[i] > 1 << 32:
            raise fail(f"address {h.addresses[i]:#x} + size {h.sizes[i]:#x} passes 4 GiB",
                       i, "address")
    if h.bss_address + h.bss_size > 1 << 32:
        raise fail(f"bss {h.bss_address:#x} + {h.bss_size:#x} passes 4 GiB", -1, "bss_address")
    used = sorted(h.used(), key=lambda i: h.addresses[i])
    for a, b in zip(used, used[1:], strict=False):
        if h.addresses[b] < h.addresses[a] + h.sizes[a]:
            raise fail(f"loads at {h.addresses[b]:#x}, inside {slot_name(a)} "
                       f"({h.addresses[a]:#x}..{h.addresses[a] + h.sizes[a]:#x})", b, "address")
    if not any(h.addresses[i] <= h.entry < h.addresses[i] + h.sizes[i]
               for i in h.used() if i < TEXT_SLOTS):
        raise FormatError(f"entry point {h.entry:#x} lies in no text section", file=file,
                          section="header", offset=FIELD_OFFSETS["entry"])


def read(source: Source, name: str | None = None,
         file: str | None = None, symbols: Module | None = None) -> Module:
    """Read a DOL into a static Module (kind ``"executable"``).

    ``symbols``, a static Module from :func:`linkload.formats.symtab.read` (or an ELF), gives
    the symbol table; without it the module has none. The bss segment is the header's bss
    range as is (DOLs written by CodeWarrior let it span the small-data slots too).
    """
    data, file = file_and_bytes(source, file)
    header = parse_header(data, file)
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    segments, sections = [], []
    for i in header.used():
        text = i < TEXT_SLOTS
        at, size, address = header.offsets[i], header.sizes[i], header.addresses[i]
        segments.append(Segment(address, size, view[at:at + size], True, not text, text))
        sections.append(Section(slot_name(i), SectionKind.TEXT if text else SectionKind.DATA,
                                size, PAD, view[at:at + size], i, file=file, address=address,
                                image_offset=at))
    if header.bss_size:
        segments.append(Segment(header.bss_address, header.bss_size, b"", True, True, False))
        sections.append(Section("bss", SectionKind.BSS, header.bss_size, PAD, None, SLOTS,
                                file=file, address=header.bss_address))
    table, strtab = (symbols.symbols, symbols.strtab) if symbols is not None \
        else (np.zeros(1, SYMBOL_DTYPE), b"\0")
    return Module(module_name(file, name), MACHINE, ">", 32, sections,
                  table, strtab, file=file, kind="executable", segments=segments,
                  entry=header.entry, format_info=header)


def write(segments: Sequence[Segment], entry: int, bss: tuple[int, int] = (0, 0)) -> bytes:
    """A DOL of ``segments`` (executable ones into text slots, the others into data slots, in
    the order given), with ``bss`` as (address, size) and the entry point ``entry``. Data
    starts at 0x100 and every slot is padded to 32 bytes."""
    text = [s for s in segments if s.executable and s.size]
    data = [s for s in segments if not s.executable and s.size]
    if len(text) > TEXT_SLOTS or len(data) > DATA_SLOTS:
        raise LinkError(f"{len(text)} text and {len(data)} data segments do not fit a DOL "
                        f"({TEXT_SLOTS} and {DATA_SLOTS} slots)")
    offsets, addresses, sizes = [0] * SLOTS, [0] * SLOTS, [0] * SLOTS
    body = bytearray()
    for slot, seg in [(i, s) for i, s in enumerate(text)] + \
                     [(TEXT_SLOTS + i, s) for i, s in enumerate(data)]:
        blob = bytes(seg.data)
        if len(blob) > seg.size:
            raise LinkError(f"segment at {seg.address:#x}: {len(blob):#x} bytes of data for "
                            f"size {seg.size:#x}")
        padded = -(-len(blob) // PAD) * PAD
        offsets[slot] = HEADER_SIZE + len(body)
        addresses[slot], sizes[slot] = seg.address, padded
        body += blob.ljust(padded, b"\0")
    header = DolHeader(tuple(offsets), tuple(addresses), tuple(sizes), bss[0], bss[1], entry)
    return header.pack() + bytes(body)


def from_elf(source: str | os.PathLike | bytes | Module) -> bytes:
    """A DOL from an ELF executable: its ``PT_LOAD`` segments' file bytes become slots, the
    part of each segment beyond its file bytes the bss (one range covering them all)."""
    module = source if isinstance(source, Module) else elf.read(source)
    if module.kind != "executable":
        raise LinkError("a DOL is made from an executable", file=module.file)
    loaded, tails = [], []
    for seg in module.segments:
        filesz = len(seg.data)
        start, end = _contents(module, seg.address, seg.address + filesz)
        if end > start:
            data = seg.data[start - seg.address:end - seg.address]
            loaded.append(Segment(start, end - start, data, True, seg.writable, seg.executable))
        if seg.size > filesz:
            tails.append((seg.address + filesz, seg.address + seg.size))
    bss = (0, 0)
    if tails:
        start, end = min(t[0] for t in tails), max(t[1] for t in tails)
        bss = (start, end - start)
    return write(loaded, module.entry, bss)


def _contents(module: Module, low: int, high: int) -> tuple[int, int]:
    """The range of [low, high) that the module's loaded sections with data cover (a segment
    also maps the ELF and program headers, which a DOL must not load); (0, 0) if none."""
    spans = [(s.address, s.address + s.size) for s in module.sections
             if s.address is not None and s.data is not None and s.size
             and low <= s.address < high]
    if not spans:
        return 0, 0
    return min(a for a, _ in spans), min(high, max(b for _, b in spans))


# -- dump --------------------------------------------------------------------------------------
def dump(data: bytes | bytearray | memoryview, file: str, *, disasm: bool = False,
         plf: Source | None = None) -> Iterator[str]:
    """The 7 text and 11 data slots, the bss, the entry point; ``disasm`` adds the text slots'
    code (``plf`` is for RELs and not used here)."""
    h = parse_header(data, file)
    yield f"{file}: DOL, entry point {h.entry:#010x}"
    yield ""
    yield f"  {'slot':<7} {'offset':>10} {'address':>10} {'size':>10}"
    for i in range(SLOTS):
        if h.sizes[i]:
            yield (f"  {slot_name(i):<7} {h.offsets[i]:#10x} {h.addresses[i]:#10x} "
                   f"{h.sizes[i]:#10x}")
        else:
            yield f"  {slot_name(i):<7} {'-':>10} {'-':>10} {'unused':>10}"
    yield f"  {'bss':<7} {'-':>10} {h.bss_address:#10x} {h.bss_size:#10x}"
    if disasm:
        for i in h.used():
            if i < TEXT_SLOTS:
                yield ""
                yield f"Disassembly of {slot_name(i)}:"
                yield from disassemble(ppc.ARCH, bytes(data[h.offsets[i]:h.offsets[i] + h.sizes[i]]),
                                       h.addresses[i])


__all__ = ["MACHINE", "DolHeader", "dump", "from_elf", "parse_header", "read", "slot_name", "write"]
