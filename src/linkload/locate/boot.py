"""The boot table: what start-up code does before it enters a located program (RTLoc's
application header), placed with ``Locate Header``.

Every field is in the target's byte order; ``W`` is the target's word size (4 or 8)::

    offset     size  field
    0          4     magic "LLBT"
    4          2     version (1): read in the wrong byte order it is 0x100, which tells
                     a reader the byte order
    6          2     W, the word size
    8          4     N, the number of entries
    12         4     the size of the table in bytes (16 + 4 W + 4 W N)
    16         W     entry point
    16 + W     W     initial stack pointer (the top of the stack; 0: none located)
    16 + 2W    W     heap start (0: none)
    16 + 3W    W     heap size
    16 + 4W    4W×N  the entries, in the order they are to be processed:
                     op, destination, source, size (a word each)

    op 1 COPY     copy ``size`` bytes from ``source`` (where they are stored, ROM) to
                  ``destination`` (where they run, RAM)
    op 2 ZERO     fill ``size`` bytes at ``destination`` with zeros (bss; source 0)
    op 3 INFLATE  ``source`` holds a zlib stream (RFC 1950: a DEFLATE stream, RFC 1951, with
                  a 2-byte header and an Adler-32 check) that inflates to the ``size`` bytes
                  to store at ``destination``
    op 4 FREE     ``size`` bytes at ``destination`` are unused RAM given to the heap
                  (``FillRAM``; without paging they cannot be made contiguous with it)
    op 5 PAGING   the page tables (``Locate PageTable``) are at ``destination`` (a physical
                  address), ``size`` bytes: turn the CPU's paging on with them (i386: load
                  ``CR3`` with ``destination``, then set ``CR0.PG`` and ``CR0.WP``). It comes
                  first: the destinations of the entries after it are run addresses, which
                  may be virtual; their sources are physical memory, which the tables map
                  one to one, as they map the start-up code itself.

Start-up code processes the entries in order, sets the stack pointer and jumps to the entry
point. zlib was chosen for compressed copies because it is the best kept compression format
there is (Python's standard library writes it; small inflaters for boot code, such as tinf or
uzlib, read it).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ..errors import FormatError

MAGIC = b"LLBT"
VERSION = 1
HEADER_SIZE = 16  # before the word-sized fields


class Op(enum.IntEnum):
    """What a boot table entry asks start-up code to do."""

    COPY = 1
    ZERO = 2
    INFLATE = 3
    FREE = 4
    PAGING = 5


@dataclass(frozen=True)
class BootEntry:
    op: Op
    destination: int
    source: int
    size: int


@dataclass(frozen=True)
class BootTable:
    """A boot table (see the module docstring)."""

    entry: int
    stack_top: int
    heap: int
    heap_size: int
    entries: tuple[BootEntry, ...]
    word: int = 4
    byteorder: str = "<"

    @staticmethod
    def size_for(entries: int, word: int) -> int:
        """The size in bytes of a table of ``entries`` entries."""
        return HEADER_SIZE + 4 * word * (1 + entries)

    @property
    def size(self) -> int:
        return self.size_for(len(self.entries), self.word)

    def pack(self) -> bytes:
        """The table's bytes."""
        w = "Q" if self.word == 8 else "I"
        o = self.byteorder
        mask = (1 << (8 * self.word)) - 1
        head = MAGIC + struct.pack(f"{o}HHII", VERSION, self.word, len(self.entries), self.size)
        words = [self.entry, self.stack_top, self.heap, self.heap_size]
        for e in self.entries:
            words += [int(e.op), e.destination, e.source, e.size]
        return head + struct.pack(f"{o}{len(words)}{w}", *(v & mask for v in words))

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview, where: str = "<bytes>") -> BootTable:
        """The table at the start of ``data`` (its byte order found from its version)."""
        data = bytes(data)
        if len(data) < HEADER_SIZE or data[:4] != MAGIC:
            raise FormatError("no boot table (magic LLBT) here", file=where, offset=0)
        order = "<" if struct.unpack_from("<H", data, 4)[0] == VERSION else ">"
        version, word, count, size = struct.unpack_from(f"{order}HHII", data, 4)
        if version != VERSION or word not in (4, 8):
            raise FormatError(f"boot table version {version}, word size {word} unknown",
                              file=where, offset=4)
        if size != cls.size_for(count, word) or size > len(data):
            raise FormatError(f"boot table of {count} entries says it takes {size:#x} bytes",
                              file=where, offset=12)
        w = "Q" if word == 8 else "I"
        words = struct.unpack_from(f"{order}{4 * (1 + count)}{w}", data, HEADER_SIZE)
        entries = []
        for i in range(count):
            op, destination, source, length = words[4 + 4 * i:8 + 4 * i]
            if op not in Op._value2member_map_:
                raise FormatError(f"boot table entry {i} has an unknown op {op}", file=where,
                                  offset=HEADER_SIZE + 4 * word * (1 + i))
            entries.append(BootEntry(Op(op), destination, source, length))
        return cls(*words[:4], tuple(entries), word, order)
