#!/usr/bin/env python3
"""Fuzz linkload with mutated real inputs: every format it reads, through every reader, dump,
tool, linker, loader and locator that takes that format.

    python scripts/fuzz.py --count 20000 --seed 1         # 20,000 mutants per format
    python scripts/fuzz.py --formats rel,dol --count 500
    python scripts/fuzz.py --replay rel:123 --seed 1 --save bad.rel   # one mutant, here

The formats (:data:`FORMAT_NAMES`) and their seeds, compiled here or committed:

=================  ============================================================================
``elf-x86_64``     x86-64 objects (C, C++, PIC and not, one referring to a linked provider)
``elf-ppc``        PowerPC objects (the CPU file's kinds, C++) and the golden plfs
``elf-exec``       ELF executables (x86-64, PowerPC) read as static modules
``rel``, ``dol``   the golden RELs (versions 1 to 3) and DOL
``symbols``        symbol lists and a CodeWarrior map
``elf-arm``        ARM objects: the Cortex-M3 CPU file's Thumb-2 and A32 kinds, its GOT kinds,
                   a C module, and NXFLAT programs' objects (NuttX's flags, ABI v1 and v2)
``nxflat``         NXFLAT programs: the NuttX tools' samples and ``linkload nxflat``'s (with
                   its callback table)
``pe``             PE images: mingw-w64 i686 programs and small PE32/PE32+ images made here
                   (every base relocation type, COFF symbols, a long name)
``elf-program``    the locator's ELF programs: ``--emit-relocs`` ones (x86-64, PowerPC,
                   Cortex-M), a static PIE, one without relocations
``locate-config``  RTLoc configuration files (both syntaxes, every command), each for a program
``ld-script``      GNU ld scripts as the locator reads them, each for an ELF program
``layout``         an earlier locate's ``layout.json``, which ``Reserve`` reads
``exports``        NuttX export tables (mksymtab's CSV)
=================  ============================================================================

A *mutant* is a seed with one to three changes: for binary formats, a field of its headers
or tables (ELF header, section and program headers, symbols, relocations, groups; REL header,
section and import tables, relocation entries; the DOL header; the NXFLAT header, relocation
words, import table and callback table; the PE headers, data directories, section table, base
relocation blocks and COFF symbols; see :data:`FIELD_FINDERS`) set to an interesting value
(0, -1, sizes and offsets near the file's, powers of two near 2**31, 2**32, 2**63...), nudged
or copied from another field; random bytes; a truncation. Text formats have words replaced
by awkward values of their own (:data:`TEXT_PROFILES`: numbers past 32 and 64 bits, names,
keywords, separators), lines inserted, doubled or dropped, and the byte changes of binary
files now and then. Mutant ``i`` of a format is made from
``random.Random(f"{seed}/{format}/{i}")``: the same seed gives the same inputs.

Each mutant goes through what its format feeds (see :data:`STEPS`): reading, ``dump``
(sometimes with ``--disasm``), makerel, writing a REL or an NXFLAT file back, loading a static
module, and linking: natively for x86-64 objects (into this process, with mmap, mprotect and
patching; the mutant's code itself is never run: its initialisers would run whatever the
mutation made of them), into an emulated PowerPC for the PowerPC ones, into an emulated
Cortex-M3 for ARM objects, which are also built into NXFLAT programs (`linkload nxflat`).
NXFLAT programs are loaded, run and unloaded on an emulated Cortex-M3 board (each run bounded
by :data:`RUN_INSTRUCTIONS` and :data:`RUN_SECONDS`; flash write-protected). PE images and ELF
programs are located (their sections apart, or as one block) and every output made;
configurations, linker scripts and layouts locate a fixed program, every output made, and now
and then (small regions) it is booted, bounded, in the emulated target. Export tables are
read as ``mksymtab`` and the loaders read them, and used to build and load programs.

The checks besides "only LinkErrors": a native link leaves no mapping behind when it fails or
is unlinked, and no page writable and executable; a failed emulated link or load changes
nothing, an unload gives back every reservation, shared code and callback trampoline; a link
(and makerel) changes a section's bytes only inside its relocation fields (and an NXFLAT
program's callback words), the shared I-space is never written; what ``linkload nxflat``
writes and an NXFLAT file written back read as the same contents; a located program's
entities lie inside their regions, its load image's chunks apart, its ELF image reads back
with its sections where they were located, its HEX file as its load image; the export table
reads the same through every reader.

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
import re
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
from linkload import locate as locate_api  # noqa: E402
from linkload.arch import Arch  # noqa: E402
from linkload.formats import dol, elf, ihex, nxflat, rel, symtab  # noqa: E402
from linkload.link import LoadedModule  # noqa: E402
from linkload.locate import output as locate_output  # noqa: E402
from linkload.locate import report as locate_report  # noqa: E402
from linkload.locate.html import page as locate_page  # noqa: E402
from linkload.model import Module  # noqa: E402
from linkload.space.emulated import EmulatedSpace  # noqa: E402
from linkload.space.native import NativeSpace  # noqa: E402
from linkload.tools import build as makerel_build  # noqa: E402
from linkload.tools import mksymtab  # noqa: E402
from linkload.tools import nxflat as nxflat_tool  # noqa: E402

FORMAT_NAMES = ("elf-x86_64", "elf-ppc", "elf-exec", "rel", "dol", "symbols", "elf-arm", "nxflat",
                "pe", "elf-program", "locate-config", "ld-script", "layout", "exports")

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

# ARM (Cortex-M3, Thumb-2; one A32 file): the CPU file's kinds, a C module, and NXFLAT
# programs' objects (compiled with NuttX's flags, so that `linkload nxflat` builds them).
ARM_C = ROOT / "tests" / "c" / "arm"
NXFLAT_SAMPLES = ROOT / "tests" / "nxflat"
ARM_CPU = ["-mcpu=cortex-m3", "-mthumb"]
NXFLAT_FLAGS = ["-Os", "-fno-common", "-fomit-frame-pointer", "-mfloat-abi=soft", "-fpic",
                "-msingle-pic-base", "-mno-pic-data-is-text-relative"]
ARM_OBJECTS = {  # name -> (source, flags); "nx" names are NXFLAT programs' objects (ABI v1, v2)
    "kinds.o": (ARM_C / "kinds.s", []),
    "kinds_a32.o": (ARM_C / "kinds_a32.s", []),
    "got.o": (ARM_C / "got.s", []),
    "calc.o": (PPC_C / "calc.c", ["-O2"]),
    "nx-hello-v1.o": (NXFLAT_SAMPLES / "hello.c", [*NXFLAT_FLAGS, "-mpic-register=r10"]),
    "nx-fnptr-v2.o": (NXFLAT_SAMPLES / "fnptr.c", [*NXFLAT_FLAGS, "-mpic-register=r9"]),
    "nx-callbacks-v2.o": (ARM_C / "nx" / "callbacks.c", [*NXFLAT_FLAGS, "-mpic-register=r9"]),
}
# The locator's programs: tests/c/locate's board linked by GNU ld with --emit-relocs (sections
# move apart), as a static PIE (moves whole) and without relocations (stays put), and by
# mingw-w64 as PE images (board, and folded, whose fixup points between sections).
LOCATE_C = ROOT / "tests" / "c" / "locate"
LOCATE_FLAGS = ["-O2", "-ffreestanding", "-fno-asynchronous-unwind-tables",
                "-fno-tree-loop-distribute-patterns"]
LINKED_AT = """/* a board: code and read-only data in ROM, data copied to RAM */
MEMORY {
  ROM (rx)  : ORIGIN = 0x100000, LENGTH = 64K
  RAM (rwx) : ORIGIN = 0x200000, LENGTH = 64K
}
ENTRY(start)
SECTIONS {
  .text : { *(.text .text.*) } > ROM
  .rodata : ALIGN(8) { *(.rodata .rodata.*) } > ROM
  .data : { *(.data .data.* .sdata .sdata.*) } > RAM AT> ROM
  .bss : { *(.bss .bss.* .sbss .sbss.* COMMON) } > RAM
  /DISCARD/ : { *(.comment) *(.note*) *(.eh_frame*) *(.gnu*) *(.ARM.attributes) }
}
"""
ELF_PROGRAMS = {  # name -> (compiler, flags, link flags)
    "board-x86_64.elf": ("gcc", ["-fno-pic"], ["-no-pie", "-Wl,--emit-relocs", "-T", "linked.ld"]),
    "board-ppc.elf": ("powerpc-linux-gnu-gcc", ["-mcpu=750", "-msdata=none", "-fno-pic"],
                      ["-Wl,--emit-relocs", "-T", "linked.ld"]),
    "board-arm.elf": ("arm-none-eabi-gcc", ARM_CPU, ["-Wl,--emit-relocs", "-T", "linked.ld"]),
    "board-pie.elf": ("gcc", ["-fPIE"], ["-static-pie", "-Wl,--no-dynamic-linker", "-Wl,-e,start",
                                         "-Wl,-z,norelro"]),
    "board-fixed.elf": ("gcc", ["-fno-pic"], ["-no-pie", "-T", "linked.ld"]),
}
MINGW = "i686-w64-mingw32-gcc"
MINGW_LINK = ["-nostdlib", "-Wl,--enable-reloc-section", "-Wl,-e,_start"]
# The configurations: RTLoc's commands (both syntaxes, every entity; run on a PE image or on
# the x86-64 ELF board) and GNU ld scripts (on the ELF boards). Each seed names its program.
RTLOC_CONFIGS = {  # name -> (program, text)
    "sections.cfg": ("board.exe", """\
Region ROM 10000h 64k ROM
Region RAM 100000h 64k RAM
Region Console E0000000h 4k Device
Locate Header Boot ROM
Locate Section .text ROM
Locate Section .rdata ROM
Locate Section .data RAM
Locate Section .bss RAM
Locate Section .idata RAM
Locate Copy .data ROM Deflate
Locate Copy .idata ROM
Locate Stack Stack RAM 4k
Locate Heap Heap RAM
"""),
    "ntsections.cfg": ("board.exe", """\
Region = RAM, 800000h, 1M, RAM      ; the comma syntax
Region = Console, E0000000h, 4k, Device
Locate = Header, Boot, RAM
Locate = NTSection, .text, RAM
Locate = NTSection, .idata, RAM // the block: .text to .idata
Locate = Stack, Stack, RAM, 16k
"""),
    "paging.cfg": ("board.exe", """\
Region ROM 10000h 64k ROM SysRead
Region RAM 100000h 64k RAM
Region Console E0000000h 4k Device ReadWrite
Virtual VCODE 40000000h 64k
Virtual = VDATA, 40400000h       ; one 4 MiB area
Locate PageTable Pages RAM
Locate Header Boot ROM
Locate Section .text VCODE->ROM
Locate Section .rdata ROM
Locate Section .data VDATA->RAM 0 0 ReadWrite
Locate Section .bss VDATA->RAM
Locate Section .idata RAM
Locate Copy .data ROM Deflate
Locate Copy .idata ROM
Locate Stack Stack VDATA->RAM 4k
Locate Heap Heap VDATA->RAM
"""),
    "board.cfg": ("board-x86_64.elf", """\
Region FLASH 10000h 64k ROM ReadOnly
Region SRAM 30000h 64k RAM
Region SPARE 50000h 16k RAM ReadWrite
Region Console E0000000h 4k Device
Align 8
Locate Header Boot FLASH
Locate Section .rodata FLASH 0 256
Locate Section .text FLASH
Locate Section .bss SRAM 0 0 Assign TopDown
Locate Section .data SRAM 0 16 ReadWrite BottomUp
Locate Copy .data FLASH Deflate
Locate Stack Stack SRAM 8k
Locate Heap Heap SRAM
FillRAM SRAM
Reserve earlier.json
"""),
}
LD_SCRIPTS = {  # name -> (program, text)
    "x86_64.ld": ("board-x86_64.elf", LINKED_AT.replace("0x100000", "0x340000")
                  .replace("0x200000", "0x7A0000").replace("LENGTH = 64K\n  RAM",
                                                           "LENGTH = 0x10000 + 64K\n  RAM")),
    "ppc.ld": ("board-ppc.elf", """\
MEMORY
{
  FLASH (rx!w) : ORIGIN = 0x01000000, LENGTH = 1M   /* attributes: no w, so ROM */
  SRAM (rwx) : org = ORIGIN(FLASH) + LENGTH(FLASH), len = 2 * (64K + 0x8000)
  SPARE (w) : o = 0x3000000, l = 4K
}
SECTIONS
{
  . = 0x01000000;
  .text ALIGN(16) : { *(.text*) } > FLASH
  .rodata : ALIGN(0x20) { *(.rodata*) } >FLASH
  .data : { *(.data*) } > SRAM AT > FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > SRAM
  .missing : { *(.missing) } > SPARE
}
"""),
    "arm.ld": ("board-arm.elf", LINKED_AT.replace("0x100000", "0x08000000")
               .replace("0x200000", "0x20000000")),
}
# A NuttX export table's seeds: the firmware's, and one with conditions, comments, blank lines.
EXPORTS_CSV = """\
# the firmware's exports
"__nxflat_abi_v2","nuttx/binfmt/nxflat.h","","FAR void *"
"malloc","stdlib.h","CONFIG_HAVE_MALLOC","FAR void *","size_t"

"report","firmware.h","","void","FAR const char *","int"
"strlen","string.h","defined(CONFIG_LIBC_STRING)","size_t","FAR const char *"
"call_twice" , "firmware.h" , "" , "int" , "int (*)(int)" , "int"
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

    arm = "arm-none-eabi-"
    for name, (source, flags) in ARM_OBJECTS.items():
        tool = [arm + "as", str(source)] if source.suffix == ".s" else \
            [arm + "gcc", *ARM_CPU, *flags, f"-I{ARM_C / 'nx' / 'include'}", f"-I{ARM_C / 'nx'}",
             "-c", str(source)]
        job("elf-arm", name, [*tool, "-o", name])
    (work / "linked.ld").write_text(LINKED_AT)
    for name, (compiler, flags, link) in ELF_PROGRAMS.items():
        cpu = ARM_CPU if compiler.startswith(arm) else []
        job("elf-program", name, [compiler, *cpu, *LOCATE_FLAGS, *flags, "-nostdlib", "-static",
                                  "-Wl,--build-id=none", *link, str(LOCATE_C / "board.c"),
                                  "-o", name])
    for name in ("board", "folded"):
        job("pe", f"{name}.exe", [MINGW, *LOCATE_FLAGS, *MINGW_LINK, str(LOCATE_C / f"{name}.c"),
                                  "-o", f"{name}.exe"])

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
    _new_seeds(seeds, skipped)
    static_dol, static_symbols, plfs = _fixed_inputs()
    seeds["elf-ppc"] += [(f"mod_{n}.plf", p) for n, p in zip(("one", "two"), plfs, strict=True)]
    seeds["rel"] = [(p, (GOLDEN / p).read_bytes()) for p in ("mod_one.rel", "mod_two.rel",
                                                            "v1/mod_one.rel")]
    seeds["dol"] = [("static.dol", static_dol)]
    seeds["symbols"] = [("static.sym", (GOLDEN / "static.sym").read_bytes()),
                        ("forms.txt", LIST_TEXT.encode()), ("static.map", MAP_TEXT.encode())]
    return Corpus(seeds, static_dol, static_symbols, plfs, skipped, provider)


def _new_seeds(seeds: dict[str, list[tuple[str, bytes]]], skipped: list[str]) -> None:
    """The seeds made from others or from text: NXFLAT programs (the NuttX tools' samples, and
    `linkload nxflat`'s with their callback table), PE images made here (every base relocation
    type), the configurations, the export tables, and an earlier locate's layout.json."""
    seeds["nxflat"] = [(f"{abi}/{n}.nxf", (NXFLAT_SAMPLES / abi / f"{n}.nxf").read_bytes())
                       for abi in ("v1", "v2") for n in ("hello", "fnptr")]
    for name, data in seeds["elf-arm"]:
        if name.startswith("nx-"):
            abi = name.rsplit("-", 1)[1][:2]
            built = nxflat_tool.build([data], abi=abi, stack_size=2048, exports=EXPORT_NAMES)
            seeds["nxflat"].append((name.replace(".o", ".nxf"), built.data))
    seeds["pe"] += [("halves.exe", pe_image(PE_HALVES, PE_HALF_RELOCS)),
                    ("dir64.exe", pe_image(struct.pack("<QI", 0x401004, 0x401000),
                                           _block(0x1000, 10 << 12, 3 << 12 | 8),
                                           machine=0x8664, magic=0x20B))]
    programs = dict(seeds["elf-program"] + seeds["pe"])
    for fmt, table in (("locate-config", RTLOC_CONFIGS), ("ld-script", LD_SCRIPTS)):
        for name, (program, text) in table.items():
            if program in programs:
                seeds[fmt].append((f"{program}:{name}", text.encode()))
            else:
                skipped.append(f"{fmt}/{name}: needs {program}")
    seeds["exports"] = [("firmware.csv", (ARM_C / "nx" / "exports.csv").read_bytes()),
                        ("samples.csv", (NXFLAT_SAMPLES / "exports.csv").read_bytes()),
                        ("forms.csv", EXPORTS_CSV.encode())]
    if "board-x86_64.elf" in programs:
        earlier = locate_api.locate(
            locate_api.Program.of(formats.read_program(programs["board-x86_64.elf"], "boot")),
            locate_api.Config.of(locate_api.parse(EARLIER_LOCATE, "boot.cfg")))
        seeds["layout"] = [("earlier.json",
                            json.dumps(locate_report.layout(earlier), indent=1).encode())]


# A locate whose layout.json the RTLoc configuration seed reserves (a boot loader low in FLASH
# and SRAM), and the seed of the layout format.
EARLIER_LOCATE = """\
Region FLASH 10000h 16k ROM
Region SRAM 30000h 4k RAM
Locate Header Boot FLASH
Locate Section .text FLASH
Locate Section .rodata FLASH
Locate Section .data SRAM
Locate Section .bss SRAM
Locate Copy .data FLASH
Locate Stack Stack SRAM 1k
"""
# The export table the NXFLAT seeds are built against (the names every seed imports).
EXPORT_NAMES = ["__nxflat_abi_v2", "call_twice", "malloc", "report", "sort_ints", "strlen"]


def pe_image(code: bytes, relocations: bytes, *, machine: int = 0x14C, magic: int = 0x10B
             ) -> bytes:
    """A small PE image (tests/test_pe.py's): .text (``code``) at RVA 0x1000, .reloc (the base
    relocation blocks) at 0x2000, base 0x400000, the entry at .text's start, a symbol table of
    two symbols."""
    text, reloc = code.ljust(0x200, b"\0"), relocations.ljust(0x200, b"\0")
    sections = [(b".text", len(code), 0x1000, 0x200, 0x400, 0x60000020),
                (b".reloc", len(relocations), 0x2000, 0x200, 0x600, 0x42000040)]
    plus = magic == 0x20B
    directories = 112 if plus else 96
    optional = bytearray(directories + 128)
    struct.pack_into("<HBBIII", optional, 0, magic, 2, 40, 0x200, 0, 0)
    struct.pack_into("<III", optional, 16, 0x1000, 0x1000, 0x2000)
    struct.pack_into("<Q" if plus else "<I", optional, 24 if plus else 28, 0x400000)
    struct.pack_into("<II", optional, 32, 0x1000, 0x200)
    struct.pack_into("<II", optional, 56, 0x3000, 0x400)
    struct.pack_into("<HH", optional, 68, 3, 0)
    struct.pack_into("<I", optional, directories - 4, 16)
    struct.pack_into("<II", optional, directories + 8 * 5, 0x2000, len(relocations))
    header = bytearray(0x400)
    header[:2] = b"MZ"
    struct.pack_into("<I", header, 0x3C, 0x80)
    header[0x80:0x84] = b"PE\0\0"
    symbols = 0x800  # after the sections' bytes: two symbols, then the string table
    struct.pack_into("<HHIIIHH", header, 0x84, machine, len(sections), 0, symbols, 2,
                     len(optional), 0x102)
    header[0x98:0x98 + len(optional)] = optional
    table = 0x98 + len(optional)
    for i, (name, vsize, rva, raw, at, flags) in enumerate(sections):
        struct.pack_into("<8sIIIIIIHHI", header, table + 40 * i, name, vsize, rva, raw, at, 0, 0,
                         0, 0, flags)
    coff = struct.pack("<8sIhHBB", b"_start", 0, 1, 0x20, 2, 0)
    coff += struct.pack("<4sIIhHBB", b"\0\0\0\0", 4, 4, 1, 0, 3, 0)  # named in the strings
    strings = b"a_long_symbol_name\0"
    return bytes(header) + text + reloc + coff + struct.pack("<I", 4 + len(strings)) + strings


def _block(page: int, *entries: int) -> bytes:
    words = list(entries) + ([0] if len(entries) % 2 else [])
    return struct.pack(f"<II{len(words)}H", page, 8 + 2 * len(words), *words)


PE_HALVES = struct.pack("<IHHH", 0x401008, 0x0040, 0x1008, 0x0040)  # HIGHLOW, HIGH, LOW, HIGHADJ
PE_HALF_RELOCS = _block(0x1000, 3 << 12 | 0, 1 << 12 | 4, 2 << 12 | 6, 4 << 12 | 8, 0x1008)


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


def nxflat_fields(data: bytes) -> list[list[Field]]:
    """Groups of fields of an NXFLAT file: the header (big-endian; the two counts are
    half-words), the relocation words (and each one's type byte), the import table's
    name offsets and addresses, and linkload's callback table (its count and offsets)."""
    if len(data) < nxflat.HEADER_SIZE or data[:4] != nxflat.MAGIC:
        return []
    header = _struct_fields(4, "IIIIIIIHH", ">")
    (_entry, datastart, _dataend, _bssend, _stack, relocstart, imports, reloccount,
     importcount) = struct.unpack_from(">IIIIIIIHH", data, 4)
    relocs = []
    for at in range(relocstart, min(relocstart + 4 * reloccount, len(data) - 3), 4):
        relocs += [(at, 4, "<"), (at + 3, 1, "<")]
    table = [(at, 4, "<") for at in range(imports, min(imports + 8 * importcount, len(data) - 3), 4)]
    callbacks = []
    if data[datastart - 4:datastart] == nxflat.CALLBACK_MAGIC:
        count = struct.unpack_from("<I", data, datastart - 8)[0]
        callbacks = [(at, 4, "<") for at in range(max(datastart - 8 - 4 * count, 0), datastart - 4, 4)]
    return [g for g in (header, relocs, table, callbacks) if g]


def pe_fields(data: bytes) -> list[list[Field]]:
    """Groups of fields of a PE image: the MZ header's pointer, the COFF header, the optional
    header (entry, image base, alignments, sizes, the directory count) and its data
    directories, the section table, the base relocation blocks (page, size, each entry) and
    the COFF symbols."""
    if len(data) < 0x40 or data[:2] != b"MZ":
        return []
    pe_at = struct.unpack_from("<I", data, 0x3C)[0]
    if pe_at + 24 > len(data):
        return [[(0x3C, 4, "<")]]
    coff = _struct_fields(pe_at + 4, "HHIIIHH", "<")
    _machine, count, _time, symtab_at, symbols, optional_size, _flags = struct.unpack_from(
        "<HHIIIHH", data, pe_at + 4)
    opt = pe_at + 24
    plus = data[opt:opt + 2] == b"\x0b\x02"
    fixed = 112 if plus else 96
    header = [(0x3C, 4, "<"), *coff, (opt, 2, "<"), (opt + 16, 4, "<"),
              (opt + 24, 8, "<") if plus else (opt + 28, 4, "<"), (opt + 32, 4, "<"),
              (opt + 36, 4, "<"), (opt + 56, 4, "<"), (opt + 60, 4, "<"), (opt + fixed - 4, 4, "<")]
    header = [f for f in header if f[0] + f[1] <= len(data)]
    directories = [(at, 4, "<") for at in range(opt + fixed, min(opt + optional_size, len(data) - 3), 4)]
    table_at = opt + optional_size
    sections, blocks = [], []
    spans = []
    for i in range(count):
        at = table_at + 40 * i
        if at + 40 > len(data):
            break
        sections += _struct_fields(at + 8, "IIIIIIHHI", "<")
        vsize, rva, raw_size, raw_at = struct.unpack_from("<IIII", data, at + 8)
        spans.append((rva, raw_size, raw_at))
    if opt + fixed + 48 <= len(data):
        rva, size = struct.unpack_from("<II", data, opt + fixed + 40)
        start = next((raw_at + rva - s_rva for s_rva, s_size, raw_at in spans
                      if s_rva <= rva < s_rva + s_size), None)
        at = start
        while start is not None and at + 8 <= min(start + size, len(data)):
            blocks += [(at, 4, "<"), (at + 4, 4, "<")]
            block = struct.unpack_from("<I", data, at + 4)[0]
            if block < 8:
                break
            blocks += [(e, 2, "<") for e in range(at + 8, min(at + block, len(data) - 1), 2)][:64]
            at += block
    coff_symbols = []
    for at in range(symtab_at, min(symtab_at + 18 * min(symbols, 64), len(data) - 17), 18):
        coff_symbols += _struct_fields(at + 4, "IhHBB", "<")
    return [g for g in (header, directories, sections, blocks, coff_symbols) if g]


FIELD_FINDERS: dict[str, Callable[[bytes], list[list[Field]]]] = {
    "elf-x86_64": elf_fields, "elf-ppc": elf_fields, "elf-exec": elf_fields,
    "rel": rel_fields, "dol": dol_fields, "elf-arm": elf_fields, "nxflat": nxflat_fields,
    "pe": pe_fields, "elf-program": elf_fields,
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


@dataclass(frozen=True)
class TextProfile:
    """How a text format's lines are mutated: ``values`` replace a word; ``lines`` are
    inserted, their ``{fields}`` filled from ``fill``; ``words``, a regular expression
    splitting a line into words and separators (None: the symbol lists' own split, at spaces,
    colons and commas)."""

    values: tuple[str, ...]
    lines: tuple[str, ...]
    fill: dict[str, tuple[str, ...]]
    words: str | None = None


TEXT_PROFILES = {
    "symbols": TextProfile(TEXT_VALUES, TEXT_LINES, {
        "hex": ("80004000", "0", "ffffffff", "123456789abcdef0", "8"), "hex6": ("000010",),
        "name": ("dol_func", "x", "_start", "", "a:b"),
        "section": ("text0", "data3", ".text", "17", "99", "bss", "")}),
    "locate-config": TextProfile(
        ("0", "0h", "1", "3", "16", "4096", "1M", "4G", "0x", "k", "-1", "FFFFFFFFh",
         "100000000h", "FFFFFFFFFFFFFFFFh", "80000000h", "RAM", "ROM", "Device", "Deflate",
         "TopDown", "BottomUp", "NoAccess", "ReadOnly", "Stack", "Heap", "Section", "NTSection",
         "Copy", "Header", ".text", ".data", ".bss", "", "->", "earlier.json", ".", "/"),
        ("Region {name} {address}h {size} {mem}", "Region {name} {address}h {size} {mem} {access}",
         "Region = {name}, {address}h, {size}, {mem}", "Locate {entity} {section} {name}",
         "Locate {entity} {section} {name} {size} {align}",
         "Locate {entity} {section} {name} {size} {align} {access} {alloc}",
         "Locate Copy {section} {name} Deflate", "FillRAM {name}", "Align {align}",
         "Reserve {path}", "Virtual V 400000h", "Locate PageTable P {name}", "; {name}"),
        {"name": ("ROM", "RAM", "FLASH", "SRAM", "SPARE", "Console", "X"),
         "address": ("0", "10000", "30000", "800000", "E0000000", "FFFFF000", "FFFFFFFF",
                     "100000000", "FFFFFFFFFFFFF000"),
         "size": ("0", "1", "4k", "64k", "1M", "16M", "4G", "FFFFFFFFh"),
         "mem": ("RAM", "ROM", "Device"),
         "access": ("NoAccess", "SysRead", "System", "ReadOnly", "ReadWrite", "Assign"),
         "entity": ("Section", "NTSection", "Copy", "Stack", "Heap", "Header", "File"),
         "section": (".text", ".data", ".bss", ".rdata", ".rodata", ".idata", "Stack", "Boot",
                     ".nothing"),
         "align": ("0", "1", "3", "16", "4096", "80000000h", "100000000h"),
         "alloc": ("TopDown", "BottomUp", "AllocDefault"),
         "path": ("earlier.json", ".", "nowhere.json", "/", "mutant.cfg")},
        r"(\s+|[,=;])"),
    "ld-script": TextProfile(
        ("0", "0x0", "8", "3", "0xFFFFFFFF", "0x100000000", "0x7FFFFFFFFFFFFFFF", "4096M", "0K",
         "-1", "99999999999999999999", "ORIGIN", "LENGTH", "ORIGIN(ROM)", "LENGTH(RAM)", "(", ")",
         "{", "}", "*", "+", "-", ">", "AT>", "ROM", "RAM", "x", "", "ALIGN(0)", "ALIGN(3)",
         "ALIGN(x)", "ALIGN(08)", "/DISCARD/", ".text", "MEMORY", "SECTIONS", "/*", "*/", "(rx)",
         "(w)", "(!w)"),
        ("  {name} ({attr}) : ORIGIN = {num}, LENGTH = {num}",
         "  {name} : ORIGIN = ORIGIN({name}) + LENGTH({name}), LENGTH = {num} * 2",
         "  .{sec} : {{ *(.{sec}) }} > {name}", "  .{sec} : ALIGN({num}) {{ *(.{sec}) }} > {name} AT> {name}",
         "  .{sec} {num} : {{ *(.{sec}) }} >{name}", "MEMORY {{", "SECTIONS {{", "}}", "/*", "*/",
         "  . = {num};", "ENTRY(start)", "INCLUDE x.ld", 'REGION_ALIAS("A", {name})'),
        {"name": ("ROM", "RAM", "FLASH", "SRAM", "X", ""), "attr": ("rx", "rwx", "w", "!w", ""),
         "num": ("0", "0x100000", "64K", "0xFFFFFFFF", "0x100000000", "1M", "-4", "0x", "8", "3"),
         "sec": ("text", "data", "bss", "rodata", "new", "")},
        r"(\s+|[(),:;={}<>*+-])"),
    "layout": TextProfile(
        ("0", "-1", "1", "1e400", "-1e400", "Infinity", "NaN", "null", "true", '"x"', "[]", "{}",
         "18446744073709551616", "1.5", '"section"', '"free"', '"reserved"', "", "[", "{"),
        ('"entities": [],', "{{", "}}", "[", "]", '{{"kind": {kind}, "address": {num}, "size": {num}}},',
         '"entities": [{{"kind": {kind}, "address": {num}, "size": {num}, "name": "x"}}],',
         '"program": {num},'),
        {"num": ("0", "65536", "-1", "1e400", "null", '"1"', "4294967296", "18446744073709551615"),
         "kind": ('"section"', '"reserved"', '"free"', '"heap"', "1")},
        r'(\s+|[,:\[\]{}"])'),
    "exports": TextProfile(
        ("", "x", "int (*)(int)", "FAR void *", "#", "\\", "malloc", "a,b", "\udcff", " "),
        ('"{name}","{header}","{condition}","{type}"', '"{name}","{header}","","{type}","{type}","{type}"',
         '"{name}"', '""', '"{name}",', "# {name}", '"{name}" "x"', '"{name}","unterminated'),
        {"name": ("report", "nowhere", "malloc", "a b", "", "__nxflat_abi_v2", "\udcfe"),
         "header": ("stdio.h", "", "a b"), "condition": ("", "CONFIG_X", "defined(A) && B"),
         "type": ("int", "void", "FAR void *", "int (*)(int)", "...", "")},
        r'(\s+|[,"])'),
}


def mutate_text(data: bytes, rng: random.Random, profile: TextProfile = TEXT_PROFILES["symbols"]
                ) -> tuple[bytes, list[str]]:
    """Text formats: words replaced by awkward values (or reversed), lines added, duplicated
    or dropped, and now and then the byte changes of binary files."""
    if rng.random() < 0.2:
        return mutate_binary(data, [], rng)
    lines = data.decode("utf-8", "surrogateescape").splitlines()
    notes = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        roll = rng.random()
        if roll < 0.4 and lines:
            i = rng.randrange(len(lines))
            if profile.words is None:
                words = lines[i].replace(":", " : ").replace(",", " , ").split(" ")
            else:
                words = re.split(profile.words, lines[i])
            j = rng.randrange(len(words))
            words[j] = rng.choice(profile.values) if rng.random() < 0.7 else words[j][::-1]
            if profile.words is None:
                lines[i] = " ".join(words).replace(" : ", ":").replace(" , ", ",")
            else:
                lines[i] = "".join(words)
            notes.append(f"line {i + 1} rewritten: {lines[i]!r}")
        elif roll < 0.75:
            line = rng.choice(profile.lines).format(
                **{key: choices[0] if len(choices) == 1 else rng.choice(choices)
                   for key, choices in profile.fill.items()})
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
    if fmt in TEXT_PROFILES:
        out, notes = mutate_text(data, rng, TEXT_PROFILES[fmt])
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


def _changed_bytes(module: Module, index: int, now: np.ndarray, cpu: Arch,
                   words: tuple[int, ...] = ()) -> int | None:
    """The first byte of section ``index`` whose value ``now`` differs from the module's own
    outside every relocation field of the section (and the two opcode bytes before a field the
    CPU may relax, and the ``words`` the loader rewrites), or None."""
    sec = module.sections[index]
    original = np.frombuffer(sec.data, np.uint8, sec.size)
    allowed = np.zeros(sec.size + 8, bool)  # (fields may reach a little past the end)
    for at in words:
        allowed[at:at + cpu.word_size] = True
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


def _changed_outside_fields(module: Module, loaded: LoadedModule, ld: Linker,
                            words: dict[int, tuple[int, ...]] | None = None) -> str | None:
    """Linking changes a section's bytes only in its relocation fields (and in the ``words``
    of each section the loader rewrites: an NXFLAT program's callback words): a byte changed
    elsewhere (in the section before a field, say) is a wrong write."""
    for i, sec in enumerate(module.sections):
        address = loaded.section_addresses[i]
        if sec.data is None or not sec.size or address is None:
            continue
        now = np.frombuffer(ld.space.read(address, sec.size), np.uint8)
        where = _changed_bytes(module, i, now, ld.arch, (words or {}).get(i, ()))
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
        self.seed_name = ""  # the seed the current mutant was made from
        self._arm: Linker | None = None
        self._board: Linker | None = None
        self._board_baseline: dict[int, int] = {}
        self.heap: list[tuple[int, int]] = []  # the board's malloc blocks, freed after each run
        self.programs = dict(corpus.seeds.get("elf-program", []) + corpus.seeds.get("pe", []))
        self._program_modules: dict[str, Module] = {}
        for name, data in corpus.seeds.get("layout", [])[:1]:
            (workdir / name).write_bytes(data)
        self.nx_objects = {n: d for n, d in corpus.seeds.get("elf-arm", []) if n.startswith("nx-")}

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

    @property
    def arm(self) -> Linker:
        """An emulated Cortex-M3 for ARM objects: the names kinds.s and the NXFLAT programs'
        objects use defined (data words, host functions); others are left to
        ``on_unresolved``. Nothing of a mutant runs (its initialisers would)."""
        if self._arm is None:
            space = EmulatedSpace("cortex-m3", symbols={"ext_data": 0x0800_8000})
            ld = Linker(space, arch.get("cortex-m3"), on_unresolved=lambda module, name: 0)
            for name in ("ext_fn", *EXPORT_NAMES[1:]):
                ld.host_function(name, lambda emu, *args: 0)
            space.runs_code = False
            self._arm = ld
        return self._arm

    @property
    def board(self) -> Linker:
        """An emulated Cortex-M3 that loads and runs NXFLAT programs, with the exports of the
        seeds' firmware as host functions; every run is bounded (instructions, seconds)."""
        if self._board is None:
            ld = Linker.emulated("cortex-m3", max_instructions=RUN_INSTRUCTIONS,
                                 timeout=RUN_SECONDS, enforce_protection=True)

            def malloc(emu, size):
                address = emu.reserve(size, 8)
                self.heap.append((address, size))
                return address

            ld.host_function("malloc", malloc)
            for name in ("report", "strlen", "call_twice", "sort_ints"):
                ld.host_function(name, lambda emu, *args: 0)
            ld.space.define(nxflat.ABI_V2_MARKER, ld.space.reserve(4, 4))
            # a first program run: the space's own stack and stubs are made once, now
            loaded = ld.load(NXFLAT_SAMPLES / "v1" / "hello.nxf")
            ld.exec(loaded, ["warm-up"])
            ld.unload(loaded)
            self._free_heap(ld)
            self._board = ld
            self._board_baseline = ld.space.reservations()
        return self._board

    def _free_heap(self, ld: Linker) -> None:
        for address, size in self.heap:
            ld.space.release(address, size)
        self.heap.clear()

    def _board_is_clean(self, after: str) -> None:
        """After a program's unload (or a failed load): nothing of it is left."""
        ld = self._board
        self._free_heap(ld)
        pool = ld._callback_pool  # (its blocks are kept for the next program's callbacks)
        blocks = {b.base for b in pool._blocks} if pool is not None else set()
        live = {a: n for a, n in ld.space.reservations().items() if a not in blocks}
        used = [b.base for b in pool._blocks if b.used] if pool is not None else []
        if live != self._board_baseline or ld.shared or ld.modules or ld._callbacks or used:
            raise Broken(f"{after} left reservations {live} (before: {self._board_baseline}), "
                         f"shared code {list(ld.shared)}, modules {ld.modules}, callback "
                         f"trampolines {ld._callbacks} in blocks {used}")

    # -- steps -----------------------------------------------------------------------------------
    def run(self, fmt: str, data: bytes, index: int, seed_name: str = "") -> None:
        """Every step of ``fmt`` on ``data`` (made from the seed ``seed_name``): a LinkError
        ends a step (the input was refused), anything else propagates."""
        self.seed_name = seed_name
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

    # -- ARM objects and NXFLAT programs -------------------------------------------------------
    def link_arm(self, data: bytes, index: int, module: Module) -> object:
        """Link into the emulated Cortex-M3 (and unlink): a failed link changes nothing, a
        link changes bytes only in relocation fields, the unlink gives everything back."""
        if module.machine != "arm":
            return NOT_FOR_IT
        ld = self.arm
        before, resident = ld.space.reservations(), list(ld.modules)
        try:
            loaded = ld.link(module)
        except LinkError:
            if ld.modules != resident or ld.space.reservations() != before:
                raise Broken("a failed link changed the emulated Cortex-M3") from None
            raise
        changed = _changed_outside_fields(module, loaded, ld)
        ld.unlink(loaded)
        if changed:
            raise Broken(changed)
        if ld.modules != resident or ld.space.reservations() != before:
            raise Broken(f"an unlink left reservations {ld.space.reservations()} (before: {before})")
        return None

    def build_nxflat(self, data: bytes, index: int, module: Module) -> object:
        """`linkload nxflat` of the mutant (against the seeds' export table now and then):
        what the builder writes, the reader must read as the builder made it; now and then the
        program is loaded and unloaded (not run: its code is the mutant's)."""
        if module.machine != "arm":
            return NOT_FOR_IT
        abi = "v2" if self.seed_name.endswith("-v2.o") else "v1"
        built = nxflat_tool.build([data], abi=abi, stack_size=1024 + index % 4096,
                                  exports=EXPORT_NAMES if index % 2 else None,
                                  callbacks=index % 4 != 3)
        try:
            _header, contents = nxflat.parse(built.data, "built.nxf")
        except LinkError as e:
            raise Broken(f"linkload nxflat wrote a file its reader refuses: {e}") from None
        different = _nxflat_difference(built.file, contents)
        if different:
            raise Broken(f"linkload nxflat's file reads back with another {different}")
        if index % 4 == 0:
            ld = self.board
            try:
                ld.unload(ld.link(nxflat.read(built.data, "built", "built.nxf")))
            finally:
                self._board_is_clean("loading a built program")
        return None

    def read_nxflat(self, data: bytes, index: int) -> Module:
        return nxflat.read(data, "mutant", "mutant.nxf", abi={3: "v1", 7: "v2"}.get(index % 8))

    def dump_nxflat(self, data: bytes, index: int) -> None:
        self.dump_elf(data, index, "nxflat")

    def nxflat_round_trip(self, data: bytes, index: int, module: Module) -> None:
        """Written back, the file reads as the same contents."""
        _header, contents = module.format_info
        again = nxflat.write_module(module)
        try:
            _header2, contents2 = nxflat.parse(again, "again.nxf")
        except LinkError as e:
            raise Broken(f"an NXFLAT file written back is refused: {e}") from None
        different = _nxflat_difference(contents, contents2)
        if different:
            raise Broken(f"an NXFLAT file written back reads with another {different}")

    def run_nxflat(self, data: bytes, index: int, module: Module) -> None:
        """Load into the emulated board (a failed load changes nothing), check that only the
        relocated words of D-space differ from the file, run it (bounded) and unload it: all
        its memory is given back."""
        ld = self.board
        try:
            loaded = ld.link(module)
        except LinkError:
            self._board_is_clean("a failed load")
            raise
        try:
            dspace = next(i for i, s in enumerate(loaded.module.sections) if s.name == ".dspace")
            changed = _changed_outside_fields(loaded.module, loaded, ld,
                                              {dspace: module.startup.callbacks})
            if changed:
                raise Broken(changed)
            (shared,) = ld.shared.values()
            ispace = module.loading.image
            if ld.space.read(shared.address, len(ispace)) != ispace:
                raise Broken("the shared I-space is not the file's")
            with contextlib.suppress(LinkError):  # a fault, or the bound reached
                ld.exec(loaded, ["mutant", "x"][:1 + index % 2])
            if ld.space.read(shared.address, len(ispace)) != ispace:
                raise Broken("the shared I-space was written (it lies in read-only flash)")
        finally:
            ld.unload(loaded)
            self._board_is_clean("an unload")

    # -- the locator -------------------------------------------------------------------------------
    def read_program(self, data: bytes, index: int) -> Module:
        return formats.read_program(data, "mutant", format="elf")

    def read_pe(self, data: bytes, index: int) -> Module:
        return formats.read_program(data, "mutant", format="pe")

    def dump_pe(self, data: bytes, index: int) -> None:
        self.dump_elf(data, index, "pe")

    def locate_mutant(self, data: bytes, index: int, module: Module) -> None:
        """Locate the mutant program: its sections apart (code and read-only data in ROM,
        the rest in RAM with its bytes copied from ROM, compressed now and then), or all as
        one NTSection block; then every output."""
        names = [s.name for s in module.sections]
        if index % 2:
            commands = ["Region RAM 800000h 16M RAM", "Locate Header Boot RAM",
                        f"Locate NTSection {names[0] if names else '.text'} RAM",
                        f"Locate NTSection {names[-1] if names else '.text'} RAM",
                        "Locate Stack Stack RAM 4k"]
        else:
            commands = ["Region ROM 1000000h 16M ROM", "Region RAM 2000000h 16M RAM",
                        "Locate Header Boot ROM"]
            for s in module.sections:
                writable = s.kind.name in ("DATA", "BSS")
                commands.append(f"Locate Section {s.name} {'RAM' if writable else 'ROM'}")
                if writable and s.data is not None and s.size:
                    commands.append(f"Locate Copy {s.name} ROM{' Deflate' * (index % 4 == 0)}")
            commands += ["Locate Stack Stack RAM 4k", "Locate Heap Heap RAM"]
        config = locate_api.Config.of(locate_api.command_line(commands))
        located = locate_api.locate(locate_api.Program.of(module), config)
        self._check_located(located, index, run=False)

    def _program(self) -> Module:
        """The (unmutated) program the current configuration seed is for."""
        name = self.seed_name.split(":")[0] if ":" in self.seed_name else "board-x86_64.elf"
        if name not in self._program_modules:
            self._program_modules[name] = formats.read_program(self.programs[name], name)
        return self._program_modules[name]

    def read_config(self, data: bytes, index: int) -> locate_api.Config:
        """A configuration file (RTLoc's commands or a GNU ld script: told apart by what they
        hold, as `linkload locate` tells them), read from a file as the command reads it."""
        suffix = ".ld" if self.seed_name.endswith(".ld") else ".cfg"
        path = self.workdir / f"mutant{suffix}"
        path.write_bytes(data)
        return locate_api.configuration(None, [path])

    def locate_config(self, data: bytes, index: int, config: locate_api.Config) -> None:
        """Locate the configuration's program with it; every output; now and then (when the
        regions are small) boot it, bounded, in the emulated target."""
        located = locate_api.locate(locate_api.Program.of(self._program()), config)
        self._check_located(located, index, run=index % 8 == 0)

    def read_layout(self, data: bytes, index: int) -> object:
        """An earlier locate's layout.json, reserved by the RTLoc configuration seed."""
        (self.workdir / "mutant.json").write_bytes(data)
        text = RTLOC_CONFIGS["board.cfg"][1].replace("Reserve earlier.json", "Reserve mutant.json")
        config = locate_api.Config.of(locate_api.parse(text, str(self.workdir / "layout.cfg")))
        return locate_api.locate(locate_api.Program.of(self._program()), config)

    def layout_outputs(self, data: bytes, index: int, located: object) -> None:
        self._check_located(located, index, run=index % 8 == 0)

    def _check_located(self, located, index: int, run: bool) -> None:
        """What every locate must give: each entity inside its region, the load image's
        chunks apart and inside regions; the outputs made (the ELF image read back with its
        sections where they were located, the HEX file read back as the chunks, the map, the
        layout, the picture, the ROM images); and, if ``run``, the boot."""
        regions = {r.name: r for r in located.regions}
        for e in located.entities:
            region = regions[e.region]
            if e.placed and e.size and not region.address <= e.address <= e.end <= region.end:
                raise Broken(f"{e.describe()} [{e.address:#x}, {e.end:#x}) is not inside region "
                             f"{region.name} [{region.address:#x}, {region.end:#x})")
        chunks = located.loaded_chunks()
        for (a, d), (b, _e) in zip(chunks, chunks[1:], strict=False):
            if a + len(d) > b:
                raise Broken(f"load image chunks at {a:#x} ({len(d):#x} bytes) and {b:#x} overlap")
        stored = sum(len(d) for _a, d in chunks)
        image = locate_output.elf_bytes(located)
        try:
            read_back = elf.read(image, "image", "image.elf")
        except LinkError as e:
            raise Broken(f"the located program's ELF image is refused: {e}") from None
        written = read_back.sections[:len(located.program.sections)]  # (first, in order)
        for s, out in zip(located.program.sections, written, strict=False):
            address = int(located.section_addresses[s.index])
            if (out.name, out.address, out.size) != (s.name, address, s.size):
                raise Broken(f"the ELF image has section {out.name} at {out.address:#x} "
                             f"({out.size:#x} bytes) for {s.name} at {address:#x} ({s.size:#x})")
        if len(written) != len(located.program.sections):
            raise Broken(f"the ELF image has {len(read_back.sections)} sections")
        text = ihex.write(chunks, located.entry)
        if stored <= HEX_LIMIT:
            memory, entry = ihex.read(text, "image.hex")
            expected = {a + i: b for a, d in chunks for i, b in enumerate(d)}
            if memory != expected or entry != located.entry & 0xFFFF_FFFF:
                raise Broken("the HEX file does not read back as the load image")
        for _line in locate_report.map_lines(located):
            pass
        json.dumps(locate_report.layout(located))
        locate_page(located)
        spans = [max((a + len(d) for a, d in chunks if r.address <= a < r.end), default=r.address)
                 - r.address for r in located.regions]
        if max(spans, default=0) <= OUTPUT_LIMIT:
            locate_output.rom_images(located)
        if run and sum(r.size for r in located.regions if r.memtype.name != "DEVICE") <= OUTPUT_LIMIT:
            with contextlib.suppress(LinkError):
                locate_api.run(located, console=0xE000_0000, timeout=RUN_SECONDS,
                               max_instructions=RUN_INSTRUCTIONS)

    # -- NuttX export tables -------------------------------------------------------------------------
    def read_exports(self, data: bytes, index: int) -> list[str]:
        """The export CSV as `linkload mksymtab` and the loaders read it (from a file)."""
        path = self.workdir / "mutant.csv"
        path.write_bytes(data)
        rows = mksymtab.mksymtab(path, self.workdir / "symtab.c")
        names = symtab.export_names(path)
        if names != [r.name for r in rows]:
            raise Broken(f"export_names gives {names[:4]}..., mksymtab's rows "
                         f"{[r.name for r in rows][:4]}...")
        return names

    def exports_build(self, data: bytes, index: int, names: list[str]) -> None:
        """`linkload nxflat --symbols`: an import the table lacks is an error now."""
        name, obj = sorted(self.nx_objects.items())[index % len(self.nx_objects)]
        nxflat_tool.build([obj], abi="v2" if name.endswith("-v2.o") else "v1",
                          exports=self.workdir / "mutant.csv" if index % 2 else names)

    def exports_load(self, data: bytes, index: int, names: list[str]) -> None:
        """The board, given the table, loads a program whose every import is in it."""
        ld = self.board
        ld.exports = frozenset(names)
        try:
            ld.unload(ld.load(NXFLAT_SAMPLES / ("v1", "v2")[index % 2] / "hello.nxf"))
        finally:
            ld.exports = None
            self._board_is_clean("an unload")


def _nxflat_difference(a: nxflat.NxflatFile, b: nxflat.NxflatFile) -> str | None:
    """The first field in which two NXFLAT files' contents differ, or None."""
    for name in ("ispace", "data", "bss_size", "entry", "stack_size", "import_offset",
                 "import_names", "callbacks"):
        if getattr(a, name) != getattr(b, name):
            return name
    if not np.array_equal(a.relocations, b.relocations):
        return "relocations"
    return None


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
    "elf-arm": Steps(Checks.read_elf, Checks.dump_elf, (Checks.link_arm, Checks.build_nxflat)),
    "nxflat": Steps(Checks.read_nxflat, Checks.dump_nxflat, (Checks.nxflat_round_trip,
                                                             Checks.run_nxflat)),
    "pe": Steps(Checks.read_pe, Checks.dump_pe, (Checks.locate_mutant,)),
    "elf-program": Steps(Checks.read_program, Checks.dump_elf, (Checks.locate_mutant,)),
    "locate-config": Steps(Checks.read_config, Checks.no_dump, (Checks.locate_config,)),
    "ld-script": Steps(Checks.read_config, Checks.no_dump, (Checks.locate_config,)),
    "layout": Steps(Checks.read_layout, Checks.no_dump, (Checks.layout_outputs,)),
    "exports": Steps(Checks.read_exports, Checks.no_dump, (Checks.exports_build,
                                                           Checks.exports_load)),
}
# Bounds of what the locator's and the NXFLAT board's steps do with a mutant: emulated runs
# stop after RUN_INSTRUCTIONS or RUN_SECONDS; outputs whose size grows with a region (ROM
# images) and boots are made only for images and regions up to OUTPUT_LIMIT bytes, and the
# HEX file is read back (a dictionary of bytes) for load images up to HEX_LIMIT bytes.
RUN_INSTRUCTIONS = 200_000
RUN_SECONDS = 2.0
OUTPUT_LIMIT = 16 << 20
HEX_LIMIT = 1 << 18


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
                seed_name, data, _notes = mutant(corpus, fmt, i, seed)
                try:
                    checks.run(fmt, data, i, seed_name)
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
        checks.seed_name = name
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
