"""NXFLAT (NuttX's flat binaries): bytes to :class:`~linkload.model.Module` and back, and the
dump (``linkload dump prog.nxf``, readnxflat without its bugs).

File layout (every header field big-endian, every word after the header in the target's
order, little-endian on Cortex-M; nothing is padded)::

    header (36 bytes) | I-space: text + rodata | D-space image: GOT | .data | relocations

I-space is ``[0, h_datastart)`` of the file, header included: the loader maps it in place
(from a ROMFS in flash) and every instance of the program shares it. D-space is ``GOT |
.data | .bss``, one per instance, with the PIC base register (r10 in ABI v1, r9 in ABI v2)
pointing at GOT[0]. Each relocation is one word, ``type << 30 | offset``: type 0 (REL32I)
adds the address of I-space just past the header, type 1 (REL32D) the D-space base, to the
word at that D-space offset. Imports are ``{i_funcname, i_funcaddress}`` pairs in .data,
bound to the firmware's exports before relocation. ABI v2 modules import
``__nxflat_abi_v2`` first.

A module read from a file describes the loader's work for the linker: a shared, executed in
place :class:`~linkload.model.SharedImage` (the I-space section), a per-instance D-space
section and bss, the imports as undefined names bound at load (``binds_now``: NuttX's
ENOENT), the relocations as ``R_ARM_ABS32`` fields of the D-space section (against the
I-space past its header, or the D-space base), and a :class:`~linkload.model.Startup` (the
entry, the stack size, the PIC register and its base). Every check of NuttX's loader is made
here, as a :class:`~linkload.errors.FormatError` naming the offset (bad magic, sizes, a
relocation outside D-space, an import name outside I-space, a v2 module without its marker
when ``abi="v2"`` is asked for).

linkload's own addition, the callback table: a module built by ``linkload nxflat`` may end
its I-space with ``u32 offsets[n]; u32 n; "LLCB"``, the D-space offsets of the words that
hold pointers to the program's functions (GOT entries, tables in .data). NuttX maps it with
the rest of I-space and ignores it; linkload's loader gives each instance trampolines that
set the PIC register before entering those functions, so that callbacks from the firmware
work (see docs/nxflat.md). Each word the table names must be one a REL32I relocation makes a
pointer to code, else a FormatError: the loader rewrites those words.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .. import arch as arch_registry
from ..arch.disasm import disassemble
from ..errors import FormatError
from ..model import (
    FUNC,
    GLOBAL,
    LOCAL,
    OBJECT,
    SECTION_SYMBOL,
    SYMBOL_DTYPE,
    UNDEF,
    Module,
    RelocationRun,
    Section,
    SectionKind,
    SharedImage,
    Startup,
)
from .base import Source, file_and_bytes, module_name

MAGIC = b"NxFT"
HEADER = struct.Struct(">4sIIIIIIIHH")
HEADER_SIZE = HEADER.size  # 36
RELOC_REL32I, RELOC_REL32D = 0, 1
RELOC_TYPES = {RELOC_REL32I: "REL32I", RELOC_REL32D: "REL32D"}
OFFSET_MASK = (1 << 30) - 1
IMPORT = struct.Struct("<II")  # i_funcname, i_funcaddress
ABI_V2_MARKER = "__nxflat_abi_v2"
PIC_REGISTERS = {"v1": "r10", "v2": "r9"}
CALLBACK_MAGIC = b"LLCB"
DEFAULT_STACK = 4096
R_ARM_ABS32 = 2  # (the ARM CPU's number; NXFLAT is an ARM format)
THUMB_BIT = 1

# Names of the symbols a read module defines for the loader.
ISPACE_SYMBOL = "__nxflat_ispace"  # I-space just past the header: what REL32I adds
DSPACE_SYMBOL = "__nxflat_dspace"  # the D-space base: what REL32D adds, the PIC base
ENTRY_SYMBOL = "__nxflat_entry"


@dataclass(frozen=True)
class NxflatHeader:
    """The 36-byte header, field by field (NuttX's ``struct nxflat_hdr_s``)."""

    entry: int
    datastart: int
    dataend: int
    bssend: int
    stacksize: int
    relocstart: int
    importsymbols: int
    reloccount: int
    importcount: int

    def pack(self) -> bytes:
        return HEADER.pack(MAGIC, self.entry, self.datastart, self.dataend, self.bssend,
                           self.stacksize, self.relocstart, self.importsymbols, self.reloccount,
                           self.importcount)

    @property
    def datasize(self) -> int:
        return self.dataend - self.datastart

    @property
    def bsssize(self) -> int:
        return self.bssend - self.dataend

    @property
    def dspace_size(self) -> int:
        """What the loader allocates: data, then the larger of bss and the relocations."""
        return self.datasize + max(self.bsssize, 4 * self.reloccount)


@dataclass(frozen=True)
class NxflatFile:
    """An NXFLAT file's contents: what the writer lays out and the reader finds.

    ``ispace``: I-space past the header (text, rodata, and the callback table if any);
    ``data``: the D-space image (GOT then .data); ``relocations``: the raw relocation words;
    ``imports``: D-space offset of the import table and its names, in order; ``entry``:
    offset of the entry point in ``ispace``; ``callbacks``: D-space offsets of words holding
    pointers to the program's functions (linkload's callback table)."""

    ispace: bytes
    data: bytes
    bss_size: int
    relocations: np.ndarray  # uint32 words, type << 30 | offset
    entry: int
    stack_size: int = DEFAULT_STACK
    import_offset: int = 0
    import_names: tuple[str, ...] = ()
    callbacks: tuple[int, ...] = ()
    got_size: int | None = field(default=None, compare=False)  # known to the builder only

    @property
    def abi(self) -> str:
        """``"v2"`` if the module imports the v2 marker, else ``"v1"``."""
        return "v2" if ABI_V2_MARKER in self.import_names else "v1"

    def header(self) -> NxflatHeader:
        datastart = HEADER_SIZE + len(self.ispace)
        dataend = datastart + len(self.data)
        count = len(self.import_names)
        return NxflatHeader(
            entry=HEADER_SIZE + self.entry, datastart=datastart, dataend=dataend,
            bssend=dataend + self.bss_size, stacksize=self.stack_size, relocstart=dataend,
            importsymbols=datastart + self.import_offset if count else 0,
            reloccount=len(self.relocations), importcount=count)

    def to_bytes(self) -> bytes:
        """The file: header, I-space, D-space image, relocations (in the target's order)."""
        if len(self.relocations) > 0xFFFF or len(self.import_names) > 0xFFFF:
            raise FormatError(f"an NXFLAT file holds at most 65535 relocations and imports "
                              f"({len(self.relocations)} and {len(self.import_names)})")
        header = self.header()
        fields = {"entry point": header.entry, "data end": header.dataend,
                  "bss end": header.bssend, "stack size": header.stacksize}
        for what, value in fields.items():
            if not 0 <= value <= 0xFFFF_FFFF:
                raise FormatError(f"the header's {what} {value:#x} does not fit its 32-bit field "
                                  f"(I-space {len(self.ispace):#x} bytes, D-space data "
                                  f"{len(self.data):#x}, bss {self.bss_size:#x})")
        words = np.asarray(self.relocations, np.uint32).astype("<u4").tobytes()
        return header.pack() + bytes(self.ispace) + bytes(self.data) + words


def callback_table(offsets: tuple[int, ...] | list[int]) -> bytes:
    """linkload's callback table, to end I-space with (see the module docstring)."""
    return struct.pack(f"<{len(offsets)}II4s", *offsets, len(offsets), CALLBACK_MAGIC)


# -- reading ------------------------------------------------------------------------------------
class _Reader:
    """The loader's checks, each a FormatError naming the file offset it is about."""

    def __init__(self, data: bytes | memoryview, file: str) -> None:
        self.data = bytes(data)
        self.file = file

    def error(self, message: str, offset: int | None = None) -> FormatError:
        return FormatError(message, file=self.file, offset=offset)

    def header(self) -> NxflatHeader:
        d = self.data
        if len(d) < 4 or d[:4] != MAGIC:
            raise self.error("not an NXFLAT file (bad magic; NuttX: ENOEXEC)", 0)
        if len(d) < HEADER_SIZE:
            raise self.error(f"truncated header ({len(d)} bytes of {HEADER_SIZE})", 0)
        h = NxflatHeader(*HEADER.unpack_from(d)[1:])
        if not HEADER_SIZE <= h.datastart <= h.dataend <= h.bssend:
            raise self.error(f"the header's spaces are out of order (data start {h.datastart:#x}, "
                             f"data end {h.dataend:#x}, bss end {h.bssend:#x})", 8)
        if not HEADER_SIZE <= h.entry < h.datastart:
            raise self.error(f"entry point {h.entry:#x} is not in I-space "
                             f"[{HEADER_SIZE:#x}, {h.datastart:#x})", 4)
        if h.relocstart != h.dataend:
            raise self.error(f"relocations start at {h.relocstart:#x}, not at the end of the "
                             f"data ({h.dataend:#x})", 24)
        end = h.relocstart + 4 * h.reloccount
        if end > len(d):
            raise self.error(f"{h.reloccount} relocations at {h.relocstart:#x} run past the end "
                             f"of the file ({len(d):#x} bytes)", 32)
        if h.importcount and not (h.datastart <= h.importsymbols
                                  and h.importsymbols + IMPORT.size * h.importcount <= h.dataend):
            raise self.error(f"{h.importcount} imports at {h.importsymbols:#x} are not in the "
                             f"D-space data [{h.datastart:#x}, {h.dataend:#x})", 28)
        return h

    def relocations(self, h: NxflatHeader) -> np.ndarray:
        words = np.frombuffer(self.data, "<u4", h.reloccount, h.relocstart).astype(np.uint32)
        types = words >> np.uint32(30)
        bad = np.flatnonzero(types > RELOC_REL32D)
        if len(bad):
            i = int(bad[0])
            raise self.error(f"relocation {i} has type {int(types[i])} (only REL32I and REL32D "
                             f"exist)", h.relocstart + 4 * i)
        offsets = (words & np.uint32(OFFSET_MASK)).astype(np.int64)
        outside = np.flatnonzero(offsets + 4 > h.datasize)
        if len(outside):
            i = int(outside[0])
            raise self.error(f"relocation {i} patches D-space offset {int(offsets[i]):#x}, out "
                             f"of D-space's data ({h.datasize:#x} bytes)", h.relocstart + 4 * i)
        if len(np.unique(offsets)) != len(offsets):
            i = int(np.flatnonzero(np.diff(np.sort(offsets)) == 0)[0])
            raise self.error(f"two relocations patch D-space offset {int(np.sort(offsets)[i]):#x}",
                             h.relocstart)
        return words

    def imports(self, h: NxflatHeader) -> tuple[int, tuple[str, ...]]:
        """The import table's D-space offset and the names (read raw, before relocation, as
        NuttX binds them)."""
        if not h.importcount:
            return 0, ()
        names = []
        for i in range(h.importcount):
            at = h.importsymbols + IMPORT.size * i
            name_offset, _address = IMPORT.unpack_from(self.data, at)
            start = HEADER_SIZE + name_offset
            end = self.data.find(b"\0", start, h.datastart) if start < h.datastart else -1
            if end < 0:
                raise self.error(f"import {i}'s name at I-space offset {name_offset:#x} is not a "
                                 f"NUL-terminated string in I-space", at)
            # (bytes that are not UTF-8 kept as they are: the firmware binds the bytes)
            names.append(self.data[start:end].decode("utf-8", "surrogateescape"))
        return h.importsymbols - h.datastart, tuple(names)

    def callbacks(self, h: NxflatHeader, relocations: np.ndarray) -> tuple[int, ...]:
        """linkload's callback table at the end of I-space, if there is one: every word it
        names must be one the loader relocates against I-space (``relocations``), as a
        pointer to the program's code is; the loader rewrites those words."""
        end = h.datastart
        if end - HEADER_SIZE < 8 or self.data[end - 4:end] != CALLBACK_MAGIC:
            return ()
        (count,) = struct.unpack_from("<I", self.data, end - 8)
        start = end - 8 - 4 * count
        if start < HEADER_SIZE:
            raise self.error(f"the callback table's {count} entries do not fit in I-space", end - 8)
        offsets = struct.unpack_from(f"<{count}I", self.data, start)
        bad = [o for o in offsets if o % 4 or o + 4 > h.datasize]
        if bad:
            raise self.error(f"the callback table names D-space offset {bad[0]:#x}, not a word "
                             f"of D-space's data", start)
        code_words = relocations[(relocations >> np.uint32(30)) == RELOC_REL32I]
        pointers = set((code_words & np.uint32(OFFSET_MASK)).tolist())
        bad = [o for o in offsets if o not in pointers]
        if bad:
            raise self.error(f"the callback table names D-space offset {bad[0]:#x}, a word no "
                             f"REL32I relocation makes a pointer to code", start)
        return tuple(offsets)


def parse(data: bytes | memoryview, file: str = "<bytes>") -> tuple[NxflatHeader, NxflatFile]:
    """The header and contents of an NXFLAT file, checked as NuttX's loader checks them."""
    reader = _Reader(data, file)
    h = reader.header()
    relocations = reader.relocations(h)
    import_offset, names = reader.imports(h)
    d = reader.data
    contents = NxflatFile(d[HEADER_SIZE:h.datastart], d[h.datastart:h.dataend], h.bsssize,
                          relocations, h.entry - HEADER_SIZE, h.stacksize, import_offset, names,
                          reader.callbacks(h, relocations))
    return h, contents


def read(source: Source, name: str | None = None, file: str | None = None, *,
         abi: str | None = None) -> Module:
    """Read an NXFLAT file into a Module describing how it loads (see the module docstring).
    ``abi``: ``"v1"`` or ``"v2"`` refuses a module of the other ABI (a v2 loader refuses a
    module without the ``__nxflat_abi_v2`` marker); None takes the module's own."""
    data, file = file_and_bytes(source, file)
    h, contents = parse(data, file)
    if abi is not None and abi not in PIC_REGISTERS:
        raise FormatError(f"unknown NXFLAT ABI {abi!r} (v1 or v2)", file=file)
    if abi == "v2" and contents.abi != "v2":
        raise FormatError(f"an ABI v2 loader refuses a module without the {ABI_V2_MARKER} "
                          "import (NuttX: ENOEXEC); rebuild it with --abi v2", file=file)
    if abi == "v1" and contents.abi == "v2":
        raise FormatError(f"an ABI v1 loader cannot run a module built for ABI v2 (it imports "
                          f"{ABI_V2_MARKER}, and wants r9 as its PIC register)", file=file)
    return _module(data, file, module_name(file, name), h, contents)


def _module(data: bytes | memoryview, file: str, name: str, h: NxflatHeader,
            contents: NxflatFile) -> Module:
    ispace = bytes(data[:h.datastart])
    sections = [
        Section(".ispace", SectionKind.TEXT, h.datastart, 4, ispace, 0, file=file, image_offset=0),
        Section(".dspace", SectionKind.DATA, h.datasize, 8, contents.data, 1, file=file),
        Section(".bss", SectionKind.BSS, h.bsssize, 1, None, 2, file=file),  # right after it
    ]
    names = ["", ISPACE_SYMBOL, DSPACE_SYMBOL, ENTRY_SYMBOL, *contents.import_names]
    symbols = np.zeros(len(names), SYMBOL_DTYPE)
    encoded = [n.encode("utf-8", "surrogateescape") + b"\0" for n in names]
    blob = b"".join(encoded)  # ("" first: the empty name at offset 0)
    symbols["name"] = np.cumsum([0] + [len(e) for e in encoded[:-1]])
    symbols["module"] = -1
    symbols["section"] = [UNDEF, 0, 1, 0] + [UNDEF] * len(contents.import_names)
    symbols["value"] = [0, HEADER_SIZE, 0, h.entry | THUMB_BIT] + [0] * len(contents.import_names)
    symbols["bind"] = [LOCAL, LOCAL, LOCAL, LOCAL] + [GLOBAL] * len(contents.import_names)
    symbols["type"] = [0, SECTION_SYMBOL, SECTION_SYMBOL, FUNC] + [
        OBJECT if n == ABI_V2_MARKER else FUNC for n in contents.import_names]
    words = contents.relocations
    offsets = (words & np.uint32(OFFSET_MASK)).astype(np.uint64)
    targets = np.where((words >> np.uint32(30)) == RELOC_REL32I, 1, 2).astype(np.uint32)
    count = len(contents.import_names)
    runs = []
    if count:  # i_funcaddress of each import: the name's address, bound at load
        runs.append(RelocationRun(
            1, (contents.import_offset + IMPORT.size * np.arange(count) + 4).astype(np.uint64),
            np.full(count, R_ARM_ABS32, np.uint32), np.arange(4, 4 + count, dtype=np.uint32),
            np.zeros(count, np.int64)))
    if len(words):  # the word holds an offset: the addend, in the field (as in ELF REL)
        runs.append(RelocationRun(1, offsets, np.full(len(words), R_ARM_ABS32, np.uint32),
                                  targets, np.zeros(len(words), np.int64), implicit=True))
    key = hashlib.sha256(bytes(data[:h.datastart])).hexdigest()
    startup = Startup(entry=3, stack_size=h.stacksize, base_register=PIC_REGISTERS[contents.abi],
                      base=2, callbacks=contents.callbacks)
    return Module(name, "arm", "<", 32, sections, symbols, blob, runs, file,
                  loading=SharedImage(ispace, key, 4), format_info=(h, contents),
                  startup=startup, binds_now=True)


def write_module(module: Module) -> bytes:
    """The NXFLAT file a Module read from one came from."""
    info = module.format_info
    if not (isinstance(info, tuple) and len(info) == 2 and isinstance(info[1], NxflatFile)):
        raise FormatError("only a module read from an NXFLAT file can be written as one "
                          "(build one with `linkload nxflat`)", file=module.file)
    return info[1].to_bytes()


# -- dump ----------------------------------------------------------------------------------------
def got_size(contents: NxflatFile) -> int:
    """The GOT's size: the builder knows it; in a file it is the run of relocated words at
    D-space offsets 0, 4, 8, ... that ends the relocation list (the tools relocate .data's
    words first, then every GOT word)."""
    if contents.got_size is not None:
        return contents.got_size
    offsets = (contents.relocations & np.uint32(OFFSET_MASK)).astype(np.int64)
    n = 0
    for k in range(len(offsets), 0, -1):
        tail = offsets[k - 1:]
        if tail[0] == 0 and (np.diff(tail) == 4).all():
            n = len(tail)
    return 4 * n


def dump(data: bytes | memoryview, file: str, *, disasm: bool = False,
         plf: Source | None = None) -> Iterator[str]:
    """Lines describing an NXFLAT file: header, memory map, relocations, imports, the GOT
    with each word's target, the data (``disasm``: I-space disassembled as Thumb)."""
    h, contents = parse(data, file)
    got = got_size(contents)
    yield f"{file}: NXFLAT program, ABI {contents.abi} (PIC register {PIC_REGISTERS[contents.abi]})"
    yield ""
    yield "Header:"
    yield f"  entry point        {h.entry:#010x}  (I-space +{h.entry - HEADER_SIZE:#x}, Thumb)"
    yield f"  stack size         {h.stacksize:#010x}  ({h.stacksize} bytes)"
    yield f"  relocations        {h.reloccount} at {h.relocstart:#010x}"
    yield f"  imports            {h.importcount} at {h.importsymbols:#010x}"
    yield ""
    yield "Memory map (file offsets):"
    yield f"  I-space  {0:#010x}-{h.datastart:#010x}  {h.datastart:#8x} bytes: header, text, rodata"
    yield f"  D-space  {h.datastart:#010x}-{h.dataend:#010x}  {h.datasize:#8x} bytes: GOT "\
          f"({got:#x}), .data ({h.datasize - got:#x})"
    yield f"  bss      {h.dataend:#010x}-{h.bssend:#010x}  {h.bsssize:#8x} bytes"
    yield f"  D-space allocated per instance: {h.dspace_size:#x} bytes"
    if contents.callbacks:
        count = len(contents.callbacks)
        yield f"  callback table: {count} word{'s' * (count != 1)} of D-space point at functions"
    words = np.frombuffer(contents.data[:len(contents.data) // 4 * 4], "<u4")
    reloc_type = {int(w & OFFSET_MASK): int(w >> 30) for w in contents.relocations.tolist()}
    yield ""
    yield f"GOT ({got // 4} entries, D-space offset 0):"
    for i in range(got // 4):
        target = _target(int(words[i]), reloc_type.get(4 * i), h, got, contents.ispace)
        yield f"  [{i:3}] {4 * i:#06x}  {int(words[i]):#010x}  {target}"
    yield ""
    yield f"Relocations ({h.reloccount}):"
    yield f"  {'nr':>4}  {'D-offset':>10}  type    word        target"
    for i, w in enumerate(contents.relocations.tolist()):
        offset, kind = w & OFFSET_MASK, w >> 30
        value = int(words[offset // 4]) if offset % 4 == 0 else int.from_bytes(
            contents.data[offset:offset + 4], "little")
        yield (f"  {i:>4}  {offset:#10x}  {RELOC_TYPES[kind]:<6}  {value:#010x}  "
               f"{_target(value, kind, h, got, contents.ispace)}")
    yield ""
    yield f"Imports ({h.importcount}):"
    for i, name in enumerate(contents.import_names):
        offset = contents.import_offset + IMPORT.size * i
        name_at, _ = IMPORT.unpack_from(contents.data, offset)
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        yield f"  {i:>4}  D-space {offset:#06x}  name at I-space +{name_at:#x}  {shown}"
    yield ""
    yield "D-space data (GOT and .data, without the relocations that follow it in the file):"
    for at in range(0, len(contents.data), 16):
        chunk = contents.data[at:at + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        yield f"  {at:06x}: {chunk.hex(' '):<47}  {text}"
    if disasm:
        yield ""
        yield "Disassembly of I-space (Thumb):"
        yield from _disassemble(h, contents, got)


def _target(value: int, kind: int | None, h: NxflatHeader, got: int, ispace: bytes) -> str:
    """What a relocated word points at: in I-space a string (printable, NUL-terminated) is
    shown, other odd offsets are Thumb code (a function's address); the file has no symbols
    to tell more."""
    if kind == RELOC_REL32I:
        end = ispace.find(b"\0", value, value + 64)
        text = ispace[value:end] if end > value + 1 else b""
        if text and all(32 <= b < 127 for b in text):
            return f"I-space +{value:#x} {text.decode()!r}"
        if value & 1:
            return f"I-space +{value & ~1:#x} (Thumb code)"
        return f"I-space +{value:#x}"
    if kind == RELOC_REL32D:
        if value < got:
            return f"GOT +{value:#x}"
        if value < h.datasize:
            return f".data +{value - got:#x}"
        return f".bss +{value - h.datasize:#x}"
    return "(not relocated)"


def _disassemble(h: NxflatHeader, contents: NxflatFile, got: int) -> Iterator[str]:
    """I-space as Thumb code, with the entry point and each import's thunk named."""
    notes: dict[int, list[str]] = {h.entry: ["entry point"]}
    thunks = {contents.import_offset + IMPORT.size * i: name  # (the literal: D-space offset)
              for i, name in enumerate(contents.import_names)}
    ispace = contents.ispace
    for at in range(0, len(ispace) - 15, 2):  # ldr.w ip, [pc, #8]; add ip, rN; ...; literal
        if ispace[at:at + 4] == b"\xdf\xf8\x08\xc0" and ispace[at + 6:at + 12] == \
                b"\xdc\xf8\x04\xc0\x60\x47":
            literal = int.from_bytes(ispace[at + 12:at + 16], "little")
            if literal in thunks:
                notes.setdefault(HEADER_SIZE + at, []).append(f"thunk of {thunks[literal]}")
    yield from disassemble(arch_registry.get("arm"), ispace, HEADER_SIZE, notes)


__all__ = ["ABI_V2_MARKER", "CALLBACK_MAGIC", "HEADER_SIZE", "MAGIC", "PIC_REGISTERS",
           "NxflatFile", "NxflatHeader", "callback_table", "dump", "got_size", "parse", "read",
           "write_module"]
