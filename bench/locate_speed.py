"""How fast the locator places a program, per fixup, as the program grows.

A PE32 image for i386 is generated here (no compiler needed): code whose instructions hold
absolute addresses of data, read-only tables of pointers to code, data holding pointers to
data and read-only data, and bss, with a ``.reloc`` section listing every one of them as a
``HIGHLOW`` base relocation. Each size is read (``formats.read_program``: the PE reader and its
checks) and located twice: with ``Locate Section`` (sections moved apart into ROM and RAM,
every fixup's target found by address and recomputed) and with ``Locate NTSection`` (the whole
image moved by one delta). The time per fixup should stay flat as the program grows: every
step works on numpy columns, none per fixup in Python.

    python bench/locate_speed.py [--sizes 25000,100000,400000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time

import numpy as np

from linkload.formats import read_program
from linkload.locate import Program, configuration, locate

BASE = 0x400000
PAGE = 0x1000
HIGHLOW = 3


def _align(value: int, to: int = PAGE) -> int:
    return -(-value // to) * to


def image(fixups: int, seed: int = 1) -> bytes:
    """A PE32 image with about ``fixups`` base relocations (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_text, n_rdata = int(fixups * 0.4), int(fixups * 0.3)
    n_data = fixups - n_text - n_rdata
    text_size = _align(n_text * 6, 4)
    rdata_size, data_size, bss_size = 4 * n_rdata, 4 * n_data, _align(fixups, 4)
    rva = {}
    at = PAGE
    for name, size in ((".text", text_size), (".rdata", rdata_size), (".data", data_size),
                       (".bss", bss_size)):
        rva[name] = at
        at = _align(at + max(size, 1))
    reloc_rva = at
    # code: "mov eax, [address]" (a1 + imm32) and a nop, the address in .data or .bss
    text = bytearray(b"\x90" * text_size)
    targets = np.where(rng.random(n_text) < 0.5, BASE + rva[".data"] + 4 * rng.integers(0, n_data, n_text),
                       BASE + rva[".bss"] + 4 * rng.integers(0, bss_size // 4, n_text))
    text_fields = 6 * np.arange(n_text) + 1
    text[0::6][:n_text] = b"\xa1" * n_text
    view = np.ndarray((n_text,), "<u4", text, 1, (6,))
    view[:] = targets
    rdata = (BASE + rva[".text"] + 6 * rng.integers(0, n_text, n_rdata)).astype("<u4").tobytes()
    data = np.where(rng.random(n_data) < 0.5, BASE + rva[".rdata"] + 4 * rng.integers(0, n_rdata, n_data),
                    BASE + rva[".data"] + 4 * rng.integers(0, n_data, n_data)).astype("<u4").tobytes()
    fields = np.concatenate([rva[".text"] + text_fields, rva[".rdata"] + 4 * np.arange(n_rdata),
                             rva[".data"] + 4 * np.arange(n_data)])
    reloc = _base_relocations(fields)
    sections = [(".text", text_size, rva[".text"], bytes(text), 0x60000020),
                (".rdata", rdata_size, rva[".rdata"], rdata, 0x40000040),
                (".data", data_size, rva[".data"], data, 0xC0000040),
                (".bss", bss_size, rva[".bss"], b"", 0xC0000080),
                (".reloc", len(reloc), reloc_rva, reloc, 0x42000040)]
    return _pe(sections, _align(reloc_rva + len(reloc)), reloc_rva, len(reloc))


def _base_relocations(fields: np.ndarray) -> bytes:
    out = bytearray()
    fields = np.sort(fields)
    pages = fields // PAGE * PAGE
    for page in np.unique(pages).tolist():
        offsets = (fields[pages == page] - page).astype(np.uint16)
        entries = (HIGHLOW << 12) | offsets
        if len(entries) % 2:
            entries = np.append(entries, 0)  # ABSOLUTE padding
        out += struct.pack("<II", page, 8 + 2 * len(entries)) + entries.astype("<u2").tobytes()
    return bytes(out)


def _pe(sections, size_of_image: int, reloc_rva: int, reloc_size: int) -> bytes:
    headers = 0x400
    optional = bytearray(224)
    struct.pack_into("<HBBIII", optional, 0, 0x10B, 2, 40, 0, 0, 0)
    struct.pack_into("<III", optional, 16, PAGE, PAGE, PAGE)
    struct.pack_into("<III", optional, 28, BASE, PAGE, 0x200)
    struct.pack_into("<II", optional, 56, size_of_image, headers)
    struct.pack_into("<I", optional, 92, 16)
    struct.pack_into("<II", optional, 96 + 8 * 5, reloc_rva, reloc_size)
    out = bytearray(headers)
    out[:2] = b"MZ"
    struct.pack_into("<I", out, 0x3C, 0x80)
    out[0x80:0x84] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", out, 0x84, 0x14C, len(sections), 0, 0, 0, 224, 0x102)
    out[0x98:0x98 + 224] = optional
    for i, (name, vsize, rva, data, flags) in enumerate(sections):
        raw = _align(len(data), 0x200) if data else 0
        at = len(out) if data else 0
        struct.pack_into("<8sIIIIIIHHI", out, 0x178 + 40 * i, name.encode(), vsize, rva, raw, at,
                         0, 0, 0, 0, flags)
        out += data.ljust(raw, b"\0")
    return bytes(out)


APART = """
Region ROM 10000000h 256M ROM
Region RAM 20000000h 256M RAM
Locate Section .text ROM
Locate Section .rdata ROM
Locate Section .data RAM
Locate Section .bss RAM
"""
WHOLE = """
Region RAM 20000000h 256M RAM
Locate NTSection .text RAM
Locate NTSection .bss RAM
"""


def timed(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="25000,50000,100000,200000,400000")
    parser.add_argument("--repeat", type=int, default=5)
    ns = parser.parse_args()
    configs = {"Section": configuration(None, commands=APART.strip().splitlines()),
               "NTSection": configuration(None, commands=WHOLE.strip().splitlines())}
    print(f"{'fixups':>8} {'read':>9} {'Section':>9} {'NTSection':>9}   per fixup: "
          f"{'read':>7} {'Section':>8} {'NTSection':>9}")
    per_fixup: dict[str, list[float]] = {"Section": [], "NTSection": []}
    for size in [int(s) for s in ns.sizes.split(",")]:
        data = image(size)
        program = Program.of(read_program(data))
        count = len(program.fixups)
        read = timed(lambda d=data: Program.of(read_program(d)), ns.repeat)
        results = {}
        for method, config in configs.items():
            located = locate(program, config)
            assert located.fixups.changed.all() and located.fixups.whole == (method == "NTSection")
            results[method] = timed(lambda c=config, p=program: locate(p, c), ns.repeat)
            per_fixup[method].append(results[method] / count * 1e9)
        print(f"{count:>8} {read * 1e3:>7.1f}ms {results['Section'] * 1e3:>7.1f}ms "
              f"{results['NTSection'] * 1e3:>7.1f}ms   {read / count * 1e9:>5.0f}ns "
              f"{per_fixup['Section'][-1]:>6.0f}ns {per_fixup['NTSection'][-1]:>7.0f}ns")
    for method, values in per_fixup.items():
        print(f"{method}: time per fixup at the largest size / at the smallest: "
              f"{values[-1] / values[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
