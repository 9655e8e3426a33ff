"""Helpers for the locator's tests: small i386 programs made in the test, as a reader of a
linked program would give them (sections at their linked addresses, fixups as relocations
with explicit addends, each symbol's section), and configurations as text."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from linkload.locate import Config, parse
from linkload.locate.program import Program
from linkload.model import (
    ABS,
    FIXED,
    IMAGE_ADDRESS,
    IMAGE_ADDRESS_PART,
    MOVES_APART,
    SYMBOL_DTYPE,
    Module,
    RelocationRun,
    Section,
    SectionKind,
)

TEXT, RODATA, DATA, BSS = SectionKind.TEXT, SectionKind.RODATA, SectionKind.DATA, SectionKind.BSS
#: symbol rows every toy program has: 0 targets an address of the image, 1 half of one
IMAGE, IMAGE_PART = 0, 1


def toy_program(sections: Sequence[tuple], fixups: Sequence[tuple] = (),
                symbols: Sequence[tuple[str, int, int]] = (), entry: int | None = None,
                machine: str = "i386", moves: str = MOVES_APART) -> Program:
    """A linked program: ``sections`` are (name, kind, address, size[, data[, align]]);
    ``fixups`` (section index, offset, kind, symbol row, addend); ``symbols`` (name,
    section index or FIXED, address), rows 2 onwards."""
    made = []
    for i, spec in enumerate(sections):
        name, kind, address, size = spec[:4]
        data = spec[4] if len(spec) > 4 else (None if kind is BSS else bytes(size))
        align = spec[5] if len(spec) > 5 else 4
        made.append(Section(name, kind, size, align, data, i + 1, address=address, file="toy.exe"))
    rows = np.zeros(2 + len(symbols), SYMBOL_DTYPE)
    rows["section"] = ABS
    rows["module"] = -1
    blob = bytearray(b"\0")
    where = np.full(len(rows), FIXED, np.int32)
    where[IMAGE], where[IMAGE_PART] = IMAGE_ADDRESS, IMAGE_ADDRESS_PART
    for k, (name, section, value) in enumerate(symbols):
        rows["name"][2 + k] = len(blob)
        blob += name.encode() + b"\0"
        rows["value"][2 + k] = value
        where[2 + k] = section
    runs = []
    for s in sorted({f[0] for f in fixups}):
        mine = [f for f in fixups if f[0] == s]
        runs.append(RelocationRun(s, np.array([f[1] for f in mine], np.uint64),
                                  np.array([f[2] for f in mine], np.uint32),
                                  np.array([f[3] for f in mine], np.uint32),
                                  np.array([f[4] for f in mine], np.int64)))
    bits = 64 if machine == "x86_64" else 32
    order = ">" if machine == "ppc" else "<"
    module = Module("toy", machine, order, bits, made, rows, bytes(blob), runs, "toy.exe",
                    "executable", entry=made[0].address if entry is None else entry,
                    symbol_sections=where, moves=moves)
    return Program.of(module)


def config(text: str) -> Config:
    return Config.of(parse(text, "test.cfg"))


def word(data: np.ndarray | bytes, offset: int, order: str = "<") -> int:
    return int.from_bytes(bytes(data[offset:offset + 4]), "little" if order == "<" else "big")
