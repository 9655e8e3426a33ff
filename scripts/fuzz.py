#!/usr/bin/env python3
"""Fuzz linkload with mutated real inputs: every format it reads, through every reader, dump,
tool and linker that takes that format.

    python scripts/fuzz.py --count 20000 --seed 1         # 20,000 mutants per format
    python scripts/fuzz.py --formats rel,dol --count 500
    python scripts/fuzz.py --replay rel:123 --seed 1 --save bad.rel   # one mutant, here

A *mutant* is a real input (a seed: objects and executables compiled here, the committed
golden REL, DOL, plf and symbol-list files of ``tests/golden``) with one to three changes:
a field of its headers or tables (ELF header, section and program headers, symbols,
relocations, groups; REL header, section and import tables, relocation entries; the DOL
header) set to an interesting value (0, -1, sizes and offsets near the file's, powers of two
near 2**31, 2**32, 2**63...), nudged or copied from another field; random bytes; a truncation;
for symbol lists, lines rewritten, duplicated or dropped. Mutant ``i`` of a format is made
from ``random.Random(f"{seed}/{format}/{i}")``: the same seed gives the same inputs.

Each mutant goes through what its format feeds (see :data:`STEPS`): reading, ``dump``
(sometimes with ``--disasm``), makerel, writing a REL back, loading a static module, and
linking, natively for x86-64 objects (into this process, with mmap, mprotect and patching;
the mutant's code itself is never run: its initialisers would run whatever the mutation made
of them) and into an emulated PowerPC for the PowerPC ones. A native link must leave no
mapping behind when it fails or is unlinked, and no page writable and executable; a link (and
makerel) may change a section's bytes only inside its relocation fields.

Anything but a :class:`~linkload.errors.LinkError` is a bug, and so is a broken check above,
a crash (each worker is a child process: a signal ends it, the parent notes the mutant and
starts a new worker after it) and a hang (``--timeout`` seconds without progress). The run
prints how many mutants got through each step, and the bugs grouped by where they were
raised, with a mutant to replay each.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import ctypes
import json
import mmap
import os
import random
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
PPC_C = ROOT / "tests" / "c" / "ppc"
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

from linkload import Linker, LinkError, arch, formats  # noqa: E402
from linkload.arch import Arch  # noqa: E402
from linkload.formats import dol, elf, rel, symtab  # noqa: E402
from linkload.link import LoadedModule  # noqa: E402
from linkload.model import Module  # noqa: E402
from linkload.space.native import NativeSpace  # noqa: E402
from linkload.tools import build as makerel_build  # noqa: E402

FORMAT_NAMES = ("elf-x86_64", "elf-ppc", "elf-exec", "rel", "dol", "symbols")

# -- seeds ----------------------------------------------------------------------------------------
X86_SOURCES = {  # name -> (source, suffix, flags)
    "c.o": (r"""
int puts(const char *);
extern int optional_hook(int) __attribute__((weak));
int data_word = 5, common_word __attribute__((common));
static const char text[] = "fuzz";
static int counter;
int table[4] = {1, 2, 3, 4};
int *pointers[] = {&data_word, &table[2], &counter};
int add(int a, int b) { return a + b + data_word + counter; }
int call(int x) { return puts(text) + add(x, 1) + (optional_hook ? optional_hook(x) : 0); }
int (*functions[])(int, int) = {add, 0};
""", ".c", ["-O1", "-fcommon"]),
    "nopic.o": (r"""
int puts(const char *);
static int local_table[8];
int global_value = 3;
int *absolute(void) { return &local_table[global_value]; }
int text_call(void) { return puts("nopic") + global_value; }
""", ".c", ["-O2", "-fno-pic", "-mcmodel=small", "-fno-asynchronous-unwind-tables"]),
    "sections.o": (r"""
int first(int x) { return x + 1; }
int second(int x) { return first(x) * 2; }
const int constant = 9;
int zeroes[16];
""", ".c", ["-O1", "-ffunction-sections", "-fdata-sections"]),
    "user.o": (r"""
extern int provider_value;
int provider_add(int, int);
int waiting_function(int);  /* nobody defines it: the call waits */
int *value_pointer = &provider_value;
int use(int x) { return provider_add(x, provider_value) + (x ? 0 : waiting_function(x)); }
""", ".c", ["-O1", "-fPIC"]),
    "cxx.o": (r"""
#include <cstdio>
struct Shape { virtual ~Shape() {} virtual int sides() const { return 0; } };
struct Square : Shape { int sides() const override { return 4; } };
template <typename T> T twice(T x) { return x + x; }
inline int &shared_counter() { static int n; return n; }
struct Tracker { int id; explicit Tracker(int i) : id(i) {} ~Tracker() { std::puts("bye"); } };
static Tracker tracker(1);
extern "C" int cxx_entry(int x)
{
    Square s;
    try { if (x < 0) throw x; } catch (int e) { return e; }
    return twice(x) + s.sides() + ++shared_counter() + tracker.id;
}
""", ".cc", ["-O1", "-fPIC"]),
}
# Linked once, unmutated, before the mutants of user.o, which refer to it (and reloaded now and
# then under them, which re-patches their references).
X86_PROVIDER = r"""
int provider_value = 11;
int provider_add(int a, int b) { return a + b + provider_value; }
"""
X86_EXECUTABLE = "int start(void) { return 0; }\nint data_value = 4;\n"
PPC_FLAGS = ["-mcpu=750", "-msdata=none", "-fno-pic", "-O1"]
MAP_TEXT = """\
Link map of __start

.text section layout
  Starting        Virtual  File
  address  Size   address  offset
  ---------------------------------
  00000000 000014 80004000 00000100  4 .text \tstatic.o
  00000000 000008 80004000 00000100  4 _start \tstatic.o
  00000008 00000c 80004008 00000108  4 dol_func \tstatic.o

.data section layout
  00000000 000014 80014018 00010118  4 .data \tstatic.o
  00000000 000004 80014018 00010118  4 dol_value \tstatic.o
  00000004 000010 8001401c 0001011c  4 dol_table \tstatic.o

Linker generated symbols:
     _stack_addr 80400000
       _db_stack_addr 80401000
"""
LIST_TEXT = """\
# every line form of a symbol list
80004000:_start
0x80004008 dol_func
text0,0x8:dol_func_again
.data,0x4:dol_table_again
dol_value = .data:0x80014018; // type:object size:0x4
dol_table = .data:0x8001401C; // type:object size:0x10 scope:global
"""


@dataclass
class Corpus:
    """The seeds of each format, and the fixed inputs the tools are given with a mutant."""

    seeds: dict[str, list[tuple[str, bytes]]]
    static_dol: bytes
    static_symbols: str  # a symbol list naming the static module's symbols, and kinds.s's
    plfs: list[bytes]  # the golden plfs: a mutant plf is built with the other one
    skipped: list[str] = field(default_factory=list)  # seeds whose tools are missing
    provider: bytes = b""  # the x86-64 module user.o refers to

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "provider.o").write_bytes(self.provider)
        index = {"skipped": self.skipped, "seeds": {}}
        for fmt, seeds in self.seeds.items():
            index["seeds"][fmt] = []
            for name, data in seeds:
                path = folder / f"{fmt}-{name.replace('/', '_')}"
                path.write_bytes(data)
                index["seeds"][fmt].append([name, path.name])
        (folder / "corpus.json").write_text(json.dumps(index))

    @classmethod
    def load(cls, folder: Path) -> Corpus:
        index = json.loads((folder / "corpus.json").read_text())
        seeds = {fmt: [(name, (folder / file).read_bytes()) for name, file in entries]
                 for fmt, entries in index["seeds"].items()}
        return cls(seeds, *_fixed_inputs(), skipped=index["skipped"],
                   provider=(folder / "provider.o").read_bytes())


def _fixed_inputs() -> tuple[bytes, str, list[bytes]]:
    symbols = (GOLDEN / "static.sym").read_text() + "00001000:abs_low\n00000042:small_abs\n"
    plfs = [(GOLDEN / f"mod_{n}.plf").read_bytes() for n in ("one", "two")]
    return (GOLDEN / "static.dol").read_bytes(), symbols, plfs


def _run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")


def build_corpus(work: Path) -> Corpus:
    """Compile the seeds into ``work`` (in parallel); seeds whose tools are missing are
    listed in ``skipped``."""
    work.mkdir(parents=True, exist_ok=True)
    seeds: dict[str, list[tuple[str, bytes]]] = {name: [] for name in FORMAT_NAMES}
    skipped: list[str] = []
    jobs: list[tuple[str, str, list[str], list[list[str]]]] = []  # format, output, tools, cmds

    def job(fmt: str, out: str, *cmds: list[str]) -> None:
        jobs.append((fmt, out, [c[0] for c in cmds], list(cmds)))

    for name, (source, suffix, flags) in X86_SOURCES.items():
        (work / f"{name}{suffix}").write_text(source)
        compiler = "g++" if suffix == ".cc" else "gcc"
        job("elf-x86_64", name, [compiler, *flags, "-c", f"{name}{suffix}", "-o", name])
    (work / "provider.c").write_text(X86_PROVIDER)
    job("provider", "provider.o", ["gcc", "-O1", "-fPIC", "-c", "provider.c", "-o", "provider.o"])
    (work / "exe.c").write_text(X86_EXECUTABLE)
    job("elf-exec", "x86_64.elf", ["gcc", "-O1", "-nostdlib", "-static", "-Wl,-e,start",
                                   "exe.c", "-o", "x86_64.elf"])
    cross = "powerpc-linux-gnu-"
    job("elf-ppc", "kinds.o", [cross + "as", "-mregnames", "-many", str(PPC_C / "kinds.s"),
                               "-o", "kinds.o"])
    job("elf-ppc", "counters.o", [cross + "g++", *PPC_FLAGS, "-fno-exceptions", "-fno-rtti",
                                  "-c", str(PPC_C / "counters.cpp"), "-o", "counters.o"])
    job("elf-exec", "ppc.elf",
        [cross + "as", "-mregnames", str(GOLDEN / "static.s"), "-o", "static.o"],
        [cross + "ld", "-Ttext=0x80004000", "--build-id=none", "-e", "_start", "static.o",
         "-o", "ppc.elf"])

    def run_job(item):
        fmt, out, tools, cmds = item
        missing = [t for t in tools if shutil.which(t) is None]
        if missing:
            return fmt, out, None, f"{fmt}/{out}: needs {', '.join(missing)}"
        for cmd in cmds:
            _run(cmd, work)
        return fmt, out, (work / out).read_bytes(), None

    provider = b""
    with concurrent.futures.ThreadPoolExecutor(max(os.cpu_count() or 1, 2)) as pool:
        for fmt, out, data, why in pool.map(run_job, jobs):
            if data is None:
                skipped.append(why)
            elif fmt == "provider":
                provider = data
            else:
                seeds[fmt].append((out, data))
    static_dol, static_symbols, plfs = _fixed_inputs()
    seeds["elf-ppc"] += [(f"mod_{n}.plf", p) for n, p in zip(("one", "two"), plfs, strict=True)]
    seeds["rel"] = [(p, (GOLDEN / p).read_bytes()) for p in ("mod_one.rel", "mod_two.rel",
                                                            "v1/mod_one.rel")]
    seeds["dol"] = [("static.dol", static_dol)]
    seeds["symbols"] = [("static.sym", (GOLDEN / "static.sym").read_bytes()),
                        ("forms.txt", LIST_TEXT.encode()), ("static.map", MAP_TEXT.encode())]
    return Corpus(seeds, static_dol, static_symbols, plfs, skipped, provider)


# -- where the fields are -------------------------------------------------------------------------
Field = tuple[int, int, str]  # (offset, size, byte order "<"/">")


def _struct_fields(base: int, layout: str, order: str) -> list[Field]:
    out, at = [], base
    for code in layout:
        size = struct.calcsize(code)
        out.append((at, size, order))
        at += size
    return out


def elf_fields(data: bytes) -> list[list[Field]]:
    """Groups of fields of an ELF file, found with :mod:`struct` alone: the header, the
    section headers, the program headers, and the symbols, relocations and group words of
    the tables the section headers describe."""
    if len(data) < 64 or data[:4] != b"\x7fELF":
        return []
    bits, order = (64 if data[4] == 2 else 32), ("<" if data[5] == 1 else ">")
    ehdr = "HHIQQQIHHHHHH" if bits == 64 else "HHIIIIIHHHHHH"
    header = struct.unpack_from(order + ehdr, data, 16)
    phoff, shoff, phnum, shentsize, shnum = header[4], header[5], header[9], header[10], header[11]
    shdr, phdr = ("IIQQQQIIQQ", "IIQQQQQQ") if bits == 64 else ("IIIIIIIIII", "IIIIIIII")
    groups: list[list[Field]] = [[(4, 1, order), (5, 1, order), (6, 1, order)]
                                 + _struct_fields(16, ehdr, order), [], [], [], [], []]
    ph_size = struct.calcsize(phdr)
    for i in range(phnum if phoff + phnum * ph_size <= len(data) else 0):
        groups[2] += _struct_fields(phoff + i * ph_size, phdr, order)
    sections = []
    for i in range(shnum if shoff + shnum * shentsize <= len(data) else 0):
        groups[1] += _struct_fields(shoff + i * shentsize, shdr, order)
        sections.append(struct.unpack_from(order + shdr, data, shoff + i * shentsize))
    for sh in sections:
        kind, offset, size = sh[1], sh[4], sh[5]
        if offset + size > len(data):
            continue
        if kind in (2, 11):  # SYMTAB, DYNSYM
            layout = "IBBHQQ" if bits == 64 else "IIIBBH"
            step = struct.calcsize(layout)
            for at in range(offset, offset + size - step + 1, step):
                groups[3] += _struct_fields(at, layout, order)
        elif kind in (4, 9):  # RELA, REL
            word = "Q" if bits == 64 else "I"
            layout = word * 2 + (("q" if bits == 64 else "i") if kind == 4 else "")
            step = struct.calcsize(layout)
            for at in range(offset, offset + size - step + 1, step):
                groups[4] += _struct_fields(at, layout, order)
                if bits == 64:  # r_info's halves: the type, the symbol
                    groups[4] += [(at + 8, 4, order), (at + 12, 4, order)]
                else:
                    groups[4].append((at + (4 if order == "<" else 7), 1, order))  # the type
        elif kind == 17:  # GROUP
            groups[5] += [(at, 4, order) for at in range(offset, offset + size - 3, 4)]
    return [g for g in groups if g]


def rel_fields(data: bytes) -> list[list[Field]]:
    """Groups of fields of a REL: its header, section table, import table, relocation
    entries (offset, type, section, addend)."""
    if len(data) < 0x40:
        return []
    version = struct.unpack_from(">I", data, 0x1C)[0]
    header = [(at, 4, ">") for at in range(0, {2: 0x48, 3: 0x4C}.get(version, 0x40), 4)
              if at + 4 <= len(data)]
    header[12:13] = [(0x30, 1, ">"), (0x31, 1, ">"), (0x32, 1, ">"), (0x33, 1, ">")]
    count, table = struct.unpack_from(">II", data, 0x0C)
    sections = [(at, 4, ">") for at in range(table, min(table + 8 * count, len(data) - 3), 4)]
    imp_offset, imp_size = struct.unpack_from(">II", data, 0x28)
    imports, entries = [], []
    for at in range(imp_offset, min(imp_offset + imp_size, len(data) - 7), 8):
        imports += [(at, 4, ">"), (at + 4, 4, ">")]
        start = struct.unpack_from(">I", data, at + 4)[0]
        for entry in range(start, min(start + 8 * 256, len(data) - 7), 8):
            entries += [(entry, 2, ">"), (entry + 2, 1, ">"), (entry + 3, 1, ">"),
                        (entry + 4, 4, ">")]
            if data[entry + 2] == 203:  # R_DOLPHIN_END
                break
    return [g for g in (header, sections, imports, entries) if g]


def dol_fields(data: bytes) -> list[list[Field]]:
    """The DOL header's words: per slot its file offset, address and size; the bss; the
    entry point."""
    words = [(at, 4, ">") for at in range(0, min(0xE4, len(data) - 3), 4)]
    return [words[:18], words[18:36], words[36:54], words[54:]] if len(words) == 57 else [words]


FIELD_FINDERS: dict[str, Callable[[bytes], list[list[Field]]]] = {
    "elf-x86_64": elf_fields, "elf-ppc": elf_fields, "elf-exec": elf_fields,
    "rel": rel_fields, "dol": dol_fields,
}


# -- mutations -------------------------------------------------------------------------------------
def interesting(size: int, data: bytes, old: int) -> list[int]:
    """Values worth trying in a field of ``size`` bytes that held ``old``."""
    bits = 8 * size
    values = [0, 1, 2, 3, 4, 7, 8, 16, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF,
              0x10000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 32, (1 << 63) - 1, 1 << 63,
              (1 << 64) - 1, len(data), len(data) - 1, len(data) + 1, old + 1, old - 1,
              old + 4, old - 4, old + 0x100, old * 2, old ^ (1 << (bits - 1))]
    return [v & ((1 << bits) - 1) for v in values]


def _set_field(out: bytearray, spot: Field, value: int) -> None:
    offset, size, order = spot
    out[offset:offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(
        size, "little" if order == "<" else "big")


def _get_field(data: bytes | bytearray, spot: Field) -> int:
    offset, size, order = spot
    return int.from_bytes(data[offset:offset + size], "little" if order == "<" else "big")


def mutate_binary(data: bytes, fields: list[list[Field]], rng: random.Random
                  ) -> tuple[bytes, list[str]]:
    """One to three changes to ``data``: fields set to interesting values (mostly), nudged
    or copied from another field; random bytes; a truncation; a copied chunk."""
    out = bytearray(data)
    notes = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        roll = rng.random()
        if fields and roll < 0.7:
            spot = rng.choice(rng.choice(fields))
            old = _get_field(out, spot)
            if rng.random() < 0.2:  # another field's value, or near it (a size minus 2...)
                other = rng.choice(rng.choice(fields))
                new = _get_field(out, other) + rng.choice((0, 0, -1, -2, -3, -4, 1, 4, -8))
            elif rng.random() < 0.15:  # a small number: a type, an index, a flag
                new = rng.randrange(256)
            elif rng.random() < 0.8:
                new = rng.choice(interesting(spot[1], data, old))
            else:
                new = rng.getrandbits(8 * spot[1])
            _set_field(out, spot, new)
            notes.append(f"{spot[1]}-byte field at {spot[0]:#x}: {old:#x} -> "
                         f"{new & ((1 << (8 * spot[1])) - 1):#x}")
        elif roll < 0.9 and out:
            at = rng.randrange(len(out))
            new = rng.choice((0, 0xFF, rng.randrange(256), out[at] ^ (1 << rng.randrange(8))))
            notes.append(f"byte at {at:#x}: {out[at]:#x} -> {new:#x}")
            out[at] = new
        elif roll < 0.95 and len(out) > 1:
            cut = rng.randrange(1, len(out))
            notes.append(f"truncated to {cut:#x} bytes")
            del out[cut:]
        elif out:
            a, b = rng.randrange(len(out)), rng.randrange(len(out))
            n = rng.randrange(1, 64)
            notes.append(f"{n} bytes from {a:#x} copied to {b:#x}")
            out[b:b + n] = out[a:a + n]
    return bytes(out), notes


TEXT_VALUES = ("0", "1", "ffffffff", "100000000", "ffffffffffffffffffff", "7fffffff",
               "80000000", "-1", "0x", "x", "", "18446744073709551616")
TEXT_LINES = ("{hex}:{name}", "0x{hex} {name}", "{section},0x{hex}:{name}",
              "{name} = {section}:0x{hex}; // type:function size:0x{hex}",
              "  00000000 {hex6} {hex} 00000100  4 {name} \tx.o", "{name} {hex}", ":",
              ",:", "{section},{hex}", "{name} = :0x; //", ".text section layout",
              "Linker generated symbols:", "  {name} {hex}")


def mutate_text(data: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    """Symbol lists: numbers replaced by awkward ones, lines added, duplicated or dropped,
    and now and then the byte changes of binary files."""
    if rng.random() < 0.2:
        return mutate_binary(data, [], rng)
    lines = data.decode("utf-8", "surrogateescape").splitlines()
    notes = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        roll = rng.random()
        if roll < 0.4 and lines:
            i = rng.randrange(len(lines))
            words = lines[i].replace(":", " : ").replace(",", " , ").split(" ")
            j = rng.randrange(len(words))
            words[j] = rng.choice(TEXT_VALUES) if rng.random() < 0.7 else words[j][::-1]
            lines[i] = " ".join(words).replace(" : ", ":").replace(" , ", ",")
            notes.append(f"line {i + 1} rewritten: {lines[i]!r}")
        elif roll < 0.75:
            line = rng.choice(TEXT_LINES).format(
                hex=rng.choice(("80004000", "0", "ffffffff", "123456789abcdef0", "8")),
                hex6="000010", name=rng.choice(("dol_func", "x", "_start", "", "a:b")),
                section=rng.choice(("text0", "data3", ".text", "17", "99", "bss", "")))
            at = rng.randrange(len(lines) + 1)
            lines.insert(at, line)
            notes.append(f"line {at + 1} inserted: {line!r}")
        elif lines:
            i = rng.randrange(len(lines))
            if rng.random() < 0.5:
                lines.insert(i, lines[i])
                notes.append(f"line {i + 1} doubled")
            else:
                notes.append(f"line {i + 1} dropped")
                del lines[i]
    return "\n".join(lines).encode("utf-8", "surrogateescape") + b"\n", notes


def mutant(corpus: Corpus, fmt: str, index: int, seed: int) -> tuple[str, bytes, list[str]]:
    """Mutant ``index`` of format ``fmt``: (the seed it was made from, its bytes, what was
    changed)."""
    rng = random.Random(f"{seed}/{fmt}/{index}")
    name, data = rng.choice(corpus.seeds[fmt])
    if fmt == "symbols":
        out, notes = mutate_text(data, rng)
    else:
        out, notes = mutate_binary(data, _fields_of(fmt, name, data), rng)
    return name, out, notes


_FIELDS_CACHE: dict[tuple[str, str], list[list[Field]]] = {}


def _fields_of(fmt: str, name: str, data: bytes) -> list[list[Field]]:
    key = (fmt, name)
    if key not in _FIELDS_CACHE:
        _FIELDS_CACHE[key] = FIELD_FINDERS[fmt](data)
    return _FIELDS_CACHE[key]


# -- what a mutant goes through ---------------------------------------------------------------------
NOT_FOR_IT = object()  # what a step returns for a module it does not take (not counted)


class Broken(Exception):
    """A check of the harness failed: a mapping left behind, a writable and executable page,
    a byte changed outside every relocation field."""


class WatchedSpace(NativeSpace):
    """This process as the native linker sees it, with two differences: no code of a mutant
    runs (``runs_code``: initialisers and finalisers would run whatever the mutation made of
    them, which says nothing of linkload), and every reservation is noted, so that none may
    outlive its link."""

    runs_code = False

    def __init__(self) -> None:
        super().__init__()
        self.noted: list[tuple[int, int]] = []

    def reserve(self, size, align, window=None):
        address = super().reserve(size, align, window)
        self.noted.append((address, self._mappings[address].size))
        return address


_libc = ctypes.CDLL(None, use_errno=True)
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
PAGE = mmap.PAGESIZE


def _mapped_pages(ranges: list[tuple[int, int]]) -> list[int]:
    """The pages of ``ranges`` that are mapped (madvise(MADV_NORMAL) fails with ENOMEM on a
    page that is not): far cheaper than reading /proc/self/maps."""
    return [page for start, size in ranges for page in range(start, start + size, PAGE)
            if _libc.madvise(page, PAGE, 0) == 0]


def _changed_bytes(module: Module, index: int, now: np.ndarray, cpu: Arch) -> int | None:
    """The first byte of section ``index`` whose value ``now`` differs from the module's own
    outside every relocation field of the section (and the two opcode bytes before a field the
    CPU may relax), or None."""
    sec = module.sections[index]
    original = np.frombuffer(sec.data, np.uint8, sec.size)
    allowed = np.zeros(sec.size + 8, bool)  # (fields may reach a little past the end)
    width = cpu.tables.width
    for run in module.relocation_runs:
        if run.section != index:
            continue
        offset = run.offset.astype(np.int64)
        kind = np.minimum(run.kind.astype(np.int64), len(width) - 1)
        for k in np.unique(kind).tolist():
            at = offset[kind == k]
            at = at[at < sec.size]
            first = -2 if k in cpu.kinds and cpu.kinds[k].relaxable else 0
            for step in range(first, int(width[k])):
                allowed[np.maximum(at + step, 0)] = True
    changed = np.flatnonzero((original != now) & ~allowed[:sec.size])
    return int(changed[0]) if len(changed) else None


def _changed_outside_fields(module: Module, loaded: LoadedModule, ld: Linker) -> str | None:
    """Linking changes a section's bytes only in its relocation fields: a byte changed
    elsewhere (in the section before a field, say) is a wrong write."""
    for i, sec in enumerate(module.sections):
        address = loaded.section_addresses[i]
        if sec.data is None or not sec.size or address is None:
            continue
        now = np.frombuffer(ld.space.read(address, sec.size), np.uint8)
        where = _changed_bytes(module, i, now, ld.arch)
        if where is not None:
            return f"{sec.name}+{where:#x} changed outside every relocation field of the section"
    return None


def _maps() -> list[tuple[int, int, str]]:
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            span, perms = line.split(" ", 2)[:2]
            lo, hi = span.split("-")
            out.append((int(lo, 16), int(hi, 16), perms))
    return out


def _overlapping(ranges: list[tuple[int, int]]) -> list[str]:
    return [f"{lo:#x}-{hi:#x} {perms}" for lo, hi, perms in _maps()
            if any(lo < start + size and start < hi for start, size in ranges)]


class Checks:
    """The steps of each format, with the linkers and inputs they share (made once per
    worker)."""

    def __init__(self, corpus: Corpus, workdir: Path) -> None:
        self.corpus = corpus
        self.workdir = workdir
        self.sym_path, self.dol_path = workdir / "static.sym", workdir / "static.dol"
        self.sym_path.write_text(corpus.static_symbols)
        self.dol_path.write_bytes(corpus.static_dol)
        self.static = dol.read(corpus.static_dol, "static", "static.dol")
        self.symbols = symtab.read(self.sym_path, sections=symtab.dol_sections(self.static))
        self._native: Linker | None = None
        self._emulated: Linker | None = None
        self.provider: LoadedModule | None = None
        self.passed: collections.Counter[str] = collections.Counter()  # "format step" -> mutants

    # -- the linkers ---------------------------------------------------------------------------
    @property
    def native(self) -> Linker:
        """This process, with the provider linked (mutants of user.o refer to it)."""
        if self._native is None:
            ld = Linker(WatchedSpace(), arch.host(), on_unresolved=lambda module, name: 0)
            ld._unresolved_handler()  # its page lives as long as the linker
            self.provider = ld.link(self.corpus.provider, name="provider")
            self._native = ld
        return self._native

    @property
    def emulated(self) -> Linker:
        """An emulated Wii with the golden module two linked: a mutant of module one binds
        its waiting references, and unlinking it points them back at nothing (OSUnlink)."""
        if self._emulated is None:
            ld = Linker.emulated("ppc", static=self.dol_path, symbols=self.sym_path)
            ld.host_function("ext_fn", lambda emu, *args: 0)
            ld.space.runs_code = False  # the mutants' constructors would run in unicorn
            ld.link(GOLDEN / "mod_two.rel")
            self._emulated = ld
        return self._emulated

    # -- steps -----------------------------------------------------------------------------------
    def run(self, fmt: str, data: bytes, index: int) -> None:
        """Every step of ``fmt`` on ``data``: a LinkError ends a step (the input was refused),
        anything else propagates."""
        steps = STEPS[fmt]
        with contextlib.suppress(LinkError):
            steps.dump(self, data, index)
            self.passed[f"{fmt} {steps.dump.__name__}"] += 1
        try:
            module = steps.read(self, data, index)
        except LinkError:
            return  # the other steps read it the same way: refused again
        self.passed[f"{fmt} {steps.read.__name__}"] += 1
        for use in steps.uses:
            with contextlib.suppress(LinkError):
                if use(self, data, index, module) is not NOT_FOR_IT:
                    self.passed[f"{fmt} {use.__name__}"] += 1

    # -- reading and dumping ---------------------------------------------------------------------
    def read_elf(self, data: bytes, index: int) -> Module:
        return elf.read(data, "mutant", "mutant.o")

    def read_rel(self, data: bytes, index: int) -> Module:
        return rel.read(data, "mutant", "mutant.rel")

    def read_dol(self, data: bytes, index: int) -> Module:
        return dol.read(data, "static", "static.dol")

    def read_symbols(self, data: bytes, index: int) -> Module:
        text = data.decode("utf-8", "surrogateescape")
        entries = symtab.parse(text, "mutant.sym")
        symtab.section_names(entries)
        placed = symtab.resolve(entries, symtab.dol_sections(self.static), "mutant.sym")
        return symtab.to_module(placed, "static", "mutant.sym")

    def dump_elf(self, data: bytes, index: int, fmt: str = "elf") -> None:
        for _ in formats.dump(data, disasm=index % 8 == 0, format=fmt):
            pass

    def dump_rel(self, data: bytes, index: int) -> None:
        self.dump_elf(data, index, "rel")

    def dump_dol(self, data: bytes, index: int) -> None:
        self.dump_elf(data, index, "dol")

    def no_dump(self, data: bytes, index: int) -> None:
        """(Symbol lists have no dump of their own.)"""

    # -- what takes a module that reads ----------------------------------------------------------
    def link_native(self, data: bytes, index: int, module: Module) -> None:
        """Link into this process (and unlink): no reservation may outlive the link, no page
        be writable and executable."""
        ld = self.native
        space = ld.space
        space.noted.clear()
        try:
            loaded = ld.link(module)
        except LinkError:
            self._check_released(space, "a failed link")
            raise
        try:
            ranges = [(loaded.base, loaded.size)]
            wx = [m for m in _overlapping(ranges) if "w" in m.split()[1] and "x" in m.split()[1]]
            changed = _changed_outside_fields(module, loaded, ld)
            if index % 3 == 0:  # the provider comes again: the mutant's references re-patched
                self.provider = ld.reload(self.provider, self.corpus.provider)
                space.noted = [r for r in space.noted if r[0] != self.provider.base]
        finally:
            ld.unlink(loaded)
        if wx:
            raise Broken(f"writable and executable pages: {wx}")
        if changed:
            raise Broken(changed)
        self._check_released(space, "an unlink")

    def _check_released(self, space: WatchedSpace, after: str) -> None:
        kept = [(a, s) for a, s in space.noted if a in space._mappings]
        mapped = _mapped_pages(space.noted)
        if kept or mapped or self.native.modules != [self.provider]:
            raise Broken(f"{after} left reservations {kept}, mapped pages "
                         f"{[hex(p) for p in mapped[:4]]}, modules {self.native.modules}")

    def link_emulated(self, data: bytes, index: int, module: Module) -> None:
        """Link into the emulated Wii (and unlink); a failed link changes nothing. A REL is
        linked fixed (OSLinkFixed) now and then."""
        ld = self.emulated
        before, resident = ld.space.reservations(), list(ld.modules)
        try:
            loaded = ld.link(module, fixed=module.kind == "rel" and index % 4 == 1)
        except LinkError:
            if ld.modules != resident or ld.space.reservations() != before:
                raise Broken("a failed link changed the emulated linker") from None
            raise
        changed = _changed_outside_fields(module, loaded, ld) if module.kind != "rel" else None
        ld.unlink(loaded)
        if changed:
            raise Broken(changed)

    def makerel(self, data: bytes, index: int, module: Module) -> None:
        """The mutant as a plf, with a golden one: each REL section holds the plf section's
        bytes, but in its relocation fields."""
        result = makerel_build(self.static, [data, self.corpus.plfs[index % 2]],
                               symbols=self.symbols, version=1 + index % 3)
        table = rel.RelFile(result.rels[0].data, "mutant.rel").sections
        for i, sec in enumerate(module.sections):
            if sec.data is None or not sec.size:
                continue
            start = int(table["offset"][sec.index])
            now = np.frombuffer(result.rels[0].data, np.uint8, sec.size, start)
            where = _changed_bytes(module, i, now, arch.get("ppc"))
            if where is not None:
                raise Broken(f"makerel changed {sec.name}+{where:#x}, outside every relocation "
                             "field of the section")

    def rel_round_trip(self, data: bytes, index: int, module: Module) -> None:
        rel.read(rel.write_module(module), "again", "again.rel")

    def load_static(self, data: bytes, index: int, module: Module) -> object:
        """A PowerPC static module: loaded into an emulated Wii, made a DOL."""
        if module.machine != "ppc":
            return NOT_FOR_IT
        Linker.emulated("ppc").space.load_static(module)
        if module.kind == "executable" and module.segments and module.format_info is None:
            dol.from_elf(module)

    def makerel_static(self, data: bytes, index: int, module: Module) -> object:
        """The mutant as the static module (or as its symbols) of makerel."""
        if module.machine != "ppc":
            return NOT_FOR_IT
        # both golden plfs now and then; else the second alone (half the time: it refers to
        # the static module and to the first, with a branch makerel points at nothing)
        plfs = self.corpus.plfs if index % 4 == 0 else self.corpus.plfs[1:]
        if module.sections:  # an executable: its own symbols, or the golden list's
            symbols = self.symbols if module.format_info is not None else None
            makerel_build(module, plfs, symbols=symbols, version=1 + index % 3)
        else:  # a symbol list
            makerel_build(self.static, plfs, symbols=module)


@dataclass(frozen=True)
class Steps:
    """What a format's mutants go through: ``dump``; ``read``; and when it reads, each of
    ``uses`` with the module read (they would read it the same way, and only be refused
    again, otherwise)."""

    read: Callable[[Checks, bytes, int], Module]
    dump: Callable[[Checks, bytes, int], None]
    uses: tuple[Callable[[Checks, bytes, int, Module], object], ...]


STEPS: dict[str, Steps] = {
    "elf-x86_64": Steps(Checks.read_elf, Checks.dump_elf, (Checks.link_native,)),
    "elf-ppc": Steps(Checks.read_elf, Checks.dump_elf, (Checks.makerel, Checks.link_emulated)),
    "elf-exec": Steps(Checks.read_elf, Checks.dump_elf, (Checks.load_static,
                                                         Checks.makerel_static)),
    "rel": Steps(Checks.read_rel, Checks.dump_rel, (Checks.rel_round_trip,
                                                    Checks.link_emulated)),
    "dol": Steps(Checks.read_dol, Checks.dump_dol, (Checks.load_static, Checks.makerel_static)),
    "symbols": Steps(Checks.read_symbols, Checks.no_dump, (Checks.makerel_static,)),
}


# -- the worker: a child process running a slice of mutants ----------------------------------------
def _describe(error: BaseException) -> dict:
    frames = traceback.extract_tb(error.__traceback__)
    inside = [f for f in frames if "linkload" in f.filename] or frames
    where = f"{Path(inside[-1].filename).name}:{inside[-1].lineno}" if inside else "?"
    return {"error": type(error).__name__, "where": where, "message": str(error)[:300]}


def work(corpus_dir: Path, seed: int, jobs: list[tuple[str, int, int]]) -> None:
    """Run mutants ``[start, stop)`` of each job's format, reporting on stdout: ``B fmt i``
    before each mutant (so that the parent knows which one a crash ended), ``X fmt i JSON``
    for a bug, and at the end ``S JSON``: how many mutants each step took."""
    corpus = Corpus.load(corpus_dir)
    with tempfile.TemporaryDirectory(prefix="linkload-fuzz-") as tmp:
        checks = Checks(corpus, Path(tmp))
        out = sys.stdout
        for fmt, start, stop in jobs:
            for i in range(start, stop):
                out.write(f"B {fmt} {i}\n")
                out.flush()
                _seed, data, _notes = mutant(corpus, fmt, i, seed)
                try:
                    checks.run(fmt, data, i)
                except Exception as e:  # noqa: BLE001 - every other exception is a finding
                    out.write(f"X {fmt} {i} {json.dumps(_describe(e))}\n")
        out.write(f"S {json.dumps(checks.passed)}\n")
    sys.stdout.flush()


# -- the parent: workers, crashes, the report ----------------------------------------------------------
@dataclass
class Bug:
    fmt: str
    index: int
    kind: str  # the exception's class, "signal N" (a crash), "exit N" or "hang"
    where: str
    message: str


@dataclass
class Report:
    counts: dict[str, int]
    bugs: list[Bug]
    seconds: float
    skipped: list[str]
    passed: dict[str, int] = field(default_factory=dict)  # "format step" -> mutants it took

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def groups(self) -> dict[tuple[str, str, str], list[Bug]]:
        out: dict[tuple[str, str, str], list[Bug]] = {}
        for bug in self.bugs:
            out.setdefault((bug.fmt, bug.kind, bug.where), []).append(bug)
        return out

    def lines(self, seed: int) -> Iterator[str]:
        per = ", ".join(f"{fmt} {n}" for fmt, n in self.counts.items())
        yield f"{self.total} mutants ({per}) in {self.seconds:.1f} s, seed {seed}"
        for why in self.skipped:
            yield f"  seeds skipped: {why}"
        for fmt in self.counts:
            taken = [(key.split()[1], n) for key, n in self.passed.items() if key.split()[0] == fmt]
            yield f"  {fmt}: " + ", ".join(f"{step} {n}" for step, n in taken)
        groups = self.groups()
        yield f"{len(self.bugs)} bugs in {len(groups)} places" if self.bugs else "no bugs"
        for (fmt, kind, where), bugs in sorted(groups.items()):
            first = bugs[0]
            yield (f"  {kind} at {where}: {len(bugs)} mutants of {fmt}, e.g. --replay "
                   f"{fmt}:{first.index} --seed {seed}: {first.message}")


def _slices(formats_: list[str], count: int, workers: int) -> list[list[tuple[str, int, int]]]:
    """Each worker's jobs: an equal share of every format."""
    out: list[list[tuple[str, int, int]]] = [[] for _ in range(workers)]
    for fmt in formats_:
        step = -(-count // workers)
        for w in range(workers):
            start, stop = w * step, min((w + 1) * step, count)
            if start < stop:
                out[w].append((fmt, start, stop))
    return [jobs for jobs in out if jobs]


class _Worker:
    """One child process and the jobs it has left."""

    def __init__(self, corpus_dir: Path, seed: int, jobs: list[tuple[str, int, int]]) -> None:
        self.jobs = jobs
        self.current: tuple[str, int] | None = None
        self.hung = False
        self.done = False  # it reported its counts: every mutant was run
        self.buffer = b""
        self.last_progress = time.monotonic()
        # its stderr (Python's report of a crash), closed when the worker is finished with
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115
        jobs_text = ",".join(f"{f}:{a}:{b}" for f, a, b in jobs)
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(corpus_dir), "--seed", str(seed),
             "--jobs", jobs_text], stdout=subprocess.PIPE, stderr=self.errors,
            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONFAULTHANDLER": "1"})

    def crash_site(self) -> str:
        """Where the worker was when it crashed: the innermost frame in linkload of the
        traceback the fault handler printed (innermost first), else the last line it wrote."""
        self.errors.seek(0)
        lines = self.errors.read().decode("utf-8", "replace").splitlines()
        frames = [line.strip() for line in lines if line.strip().startswith("File ")]
        ours = [f for f in frames if "/linkload/" in f]
        if frames:  # 'File "/.../relocate.py", line 123 in relocate_chunk'
            path, _, rest = (ours or frames)[0][len('File "'):].partition('", line ')
            return f"{Path(path).name}:{rest.split()[0]}"
        return lines[-1][:200] if lines else "?"

    def remaining_after(self, fmt: str, index: int) -> list[tuple[str, int, int]]:
        """The jobs after mutant ``index`` of ``fmt``."""
        out, seen = [], False
        for f, start, stop in self.jobs:
            if f == fmt:
                seen = True
                if index + 1 < stop:
                    out.append((f, max(start, index + 1), stop))
            elif seen:
                out.append((f, start, stop))
        return out


def run(corpus_dir: Path, formats_: list[str], count: int, seed: int, workers: int,
        timeout: float, progress: Callable[[str], None] | None = None) -> Report:
    """Run ``count`` mutants of each of ``formats_`` in ``workers`` child processes."""
    started = time.monotonic()
    corpus = Corpus.load(corpus_dir)
    usable = [f for f in formats_ if corpus.seeds.get(f)]
    counts = {f: 0 for f in usable}
    bugs: list[Bug] = []
    passed: collections.Counter[str] = collections.Counter()
    live = [_Worker(corpus_dir, seed, jobs) for jobs in _slices(usable, count, workers)]
    shown = started
    while live:
        ready = select.select([w.process.stdout for w in live], [], [], 1.0)[0]
        for w in list(live):
            if w.process.stdout in ready:
                chunk = os.read(w.process.stdout.fileno(), 1 << 16)
                if chunk:
                    w.last_progress = time.monotonic()
                    _take_lines(w, chunk, counts, bugs, passed)
                    continue
                live.remove(w)
                live += _finish(w, corpus_dir, seed, bugs)
            elif time.monotonic() - w.last_progress > timeout:
                w.process.kill()  # then its end is read as above, as a hang
                w.hung = True
        if progress and time.monotonic() - shown > 1:
            shown = time.monotonic()
            progress(f"{sum(counts.values())} mutants, {len(bugs)} bugs")
    return Report(counts, bugs, time.monotonic() - started, corpus.skipped, dict(passed))


def _take_lines(w: _Worker, chunk: bytes, counts: dict[str, int], bugs: list[Bug],
                passed: collections.Counter[str]) -> None:
    w.buffer += chunk
    *lines, w.buffer = w.buffer.split(b"\n")
    for line in lines:
        tag, _, rest = line.decode("utf-8", "replace").partition(" ")
        if tag == "B":
            fmt, index = rest.split()
            w.current = (fmt, int(index))
            counts[fmt] += 1
        elif tag == "S":
            passed.update(json.loads(rest))
            w.done = True
        elif tag == "X":
            fmt, index, payload = rest.split(" ", 2)
            info = json.loads(payload)
            bugs.append(Bug(fmt, int(index), info["error"], info["where"], info["message"]))


def _finish(w: _Worker, corpus_dir: Path, seed: int, bugs: list[Bug]) -> list[_Worker]:
    """A worker's output ended: done, or ended by a signal (a crash, or killed for hanging)
    at its current mutant; a new worker takes the rest."""
    status = w.process.wait()
    w.process.stdout.close()
    with w.errors:
        return _outcome(w, status, corpus_dir, seed, bugs)


def _outcome(w: _Worker, status: int, corpus_dir: Path, seed: int,
             bugs: list[Bug]) -> list[_Worker]:
    """Note how a worker ended, if badly; the worker that takes the rest of its jobs."""
    if status == 0:
        return []
    if w.current is None:
        raise RuntimeError(f"a fuzz worker failed to start (status {status}): {w.crash_site()}")
    fmt, index = w.current
    if w.hung:
        bugs.append(Bug(fmt, index, "hang", "-", "no progress: the worker was stopped"))
    else:
        kind = f"signal {-status}" if status < 0 else f"exit {status}"
        when = " after its last mutant" if w.done else ""
        bugs.append(Bug(fmt, index, kind, w.crash_site(), f"the worker ended{when}"))
    rest = [] if w.done else w.remaining_after(fmt, index)
    return [_Worker(corpus_dir, seed, rest)] if rest else []


# -- the command line ------------------------------------------------------------------------------
def replay(corpus: Corpus, spec: str, seed: int, save: Path | None) -> int:
    """Run one mutant here, printing what was changed and the full traceback."""
    fmt, index = spec.split(":")
    name, data, notes = mutant(corpus, fmt, int(index), seed)
    print(f"{fmt} mutant {index} of {name} ({len(data)} bytes): {'; '.join(notes)}")
    if save:
        save.write_bytes(data)
        print(f"saved to {save}")
    steps = STEPS[fmt]
    with tempfile.TemporaryDirectory(prefix="linkload-fuzz-") as tmp:
        checks = Checks(corpus, Path(tmp))
        module = None
        for step in (steps.dump, steps.read, *steps.uses):
            args = (checks, data, int(index)) + ((module,) if step in steps.uses else ())
            try:
                value = step(*args)
                print(f"  {step.__name__}: ok")
            except LinkError as e:
                print(f"  {step.__name__}: {type(e).__name__}: {e}")
                if step is steps.read:
                    break
            except Exception:  # noqa: BLE001 - shown in full
                print(f"  {step.__name__}: BUG")
                traceback.print_exc()
                return 1
            else:
                if step is steps.read:
                    module = value
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="mutants per format (2000)")
    parser.add_argument("--seed", type=int, default=1, help="the run's seed (1)")
    parser.add_argument("--formats", default=",".join(FORMAT_NAMES),
                        help=f"comma-separated, of {', '.join(FORMAT_NAMES)} (all)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="child processes (one per CPU)")
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="seconds without progress that make a hang (20)")
    parser.add_argument("--workdir", type=Path, help="where the seeds are built (a temporary "
                                                     "folder)")
    parser.add_argument("--replay", metavar="FORMAT:INDEX", help="run one mutant here")
    parser.add_argument("--save", type=Path, help="with --replay: write the mutant there")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.worker:
        jobs = [(f, int(a), int(b)) for f, a, b in (j.split(":") for j in ns.jobs.split(","))]
        work(ns.worker, ns.seed, jobs)
        return 0
    with tempfile.TemporaryDirectory(prefix="linkload-fuzz-") as tmp:
        workdir = ns.workdir or Path(tmp)
        corpus = build_corpus(workdir / "build")
        if ns.replay:
            return replay(corpus, ns.replay, ns.seed, ns.save)
        corpus.save(workdir / "corpus")
        wanted = [f.strip() for f in ns.formats.split(",") if f.strip()]
        unknown = sorted(set(wanted) - set(FORMAT_NAMES))
        if unknown:
            parser.error(f"unknown formats: {', '.join(unknown)}")
        tty = sys.stderr.isatty()
        report = run(workdir / "corpus", wanted, ns.count, ns.seed, ns.workers, ns.timeout,
                     progress=(lambda text: print(f"\r{text}", end="", file=sys.stderr))
                     if tty else None)
        if tty:
            print(file=sys.stderr)
        for line in report.lines(ns.seed):
            print(line)
        return 1 if report.bugs else 0


if __name__ == "__main__":
    sys.exit(main())
