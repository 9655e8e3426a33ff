"""The PowerPC modules the makerel tests build (compiled at test time with the cross compiler
by the ``ppc`` and ``built`` fixtures of ``conftest.py``): a freestanding static module (no
libc) and three modules referring to each other, to the static module and to themselves;
and helpers the REL tests share.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile
from test_rel_format import parse_rel

CC, CXX, LD = "powerpc-linux-gnu-gcc", "powerpc-linux-gnu-g++", "powerpc-linux-gnu-ld"
FLAGS = ["-mcpu=750", "-msdata=none", "-fno-pic", "-O1"]
STATIC_LDFLAGS = ["-nostdlib", "-static", "-Wl,-Ttext=0x80004000", "-Wl,--build-id=none",
                  "-Wl,-e,_start"]

STATIC = r"""
int dol_value = 7;
int dol_table[8] = {1, 2, 3, 4, 5, 6, 7, 8};
int dol_counter;
int dol_func(int x) { return x + dol_value; }
int dol_twice(int x) { return 2 * x; }
void OSReport(const char *message) { (void)message; dol_counter++; }
void _start(void) { for (;;) dol_func(1); }
"""

MOD_A = r"""
extern int dol_value, dol_table[8];
extern int dol_func(int);
extern void OSReport(const char *);
extern int b_func(int);
extern int b_data[4];
extern void not_loaded_anywhere(void);
int a_func(int x);
static int a_counter;
static int a_block[64] __attribute__((aligned(32)));
int a_data = 3;
int *a_pointers[] = {&a_data, &dol_value, &b_data[1], &a_counter, &a_block[5]};
int (*a_functions[])(int) = {dol_func, b_func, a_func};
const char a_message[] = "hello from a";
static int helper(int x) { return x * 2 + a_counter + a_block[3]; }
int a_func(int x) {
    a_counter++;
    not_loaded_anywhere();
    OSReport(a_message);
    return helper(x) + dol_func(x) + dol_value + dol_table[3] + b_func(x) + b_data[2];
}
void _prolog(void) { a_data = 1; }
void _epilog(void) { a_data = 0; }
void _unresolved(void) { OSReport("unresolved"); }
"""

MOD_B = r"""
extern int a_func(int);
extern int a_data;
extern int *a_pointers[];
extern int dol_twice(int);
extern int dol_counter;
extern int c_func(int);
extern void b_missing(void);
int b_data[4] = {1, 2, 3, 4};
static const int b_table[4] = {10, 20, 30, 40};
int b_func(int x) { return x + a_data + b_data[1] + b_table[x & 3] + *a_pointers[0]; }
int b_calls(int x) { b_missing(); return a_func(x) + dol_twice(x) + dol_counter + c_func(x); }
"""

MOD_C = r"""
extern int dol_value;
extern int b_data[4];
static int c_local;
int c_func(int x);
struct big { int *p1; char pad1[0x18000]; int *p2; char pad2[0x20000]; int *p3; int (*f)(int); };
struct big c_big = {&dol_value, {0}, &b_data[0], {0}, &c_local, c_func};
int c_func(int x) { return x + c_local + *c_big.p1 + *c_big.p3; }
"""

MODULES = {"a": MOD_A, "b": MOD_B, "c": MOD_C}


@dataclass
class Build:
    """The static module and the plfs of modules a, b and c."""

    static: Path
    plfs: list[Path]

    def elf(self, i: int) -> ELFFile:
        return ELFFile(io.BytesIO(self.plfs[i].read_bytes()))


def plf_of(ppc, source: str, name: str, flags=()) -> Path:
    """A plf of C ``source``, compiled and partially linked by the toolchain ``ppc``."""
    return ppc.combine([ppc.compile_text(source, f"{name}.c", flags)], stem=name)


def without_dol_sections(data: bytes) -> list:
    """A REL's relocation entries with the DOL entries' section field (which the loader
    ignores, and which only the static ELF can give) left out."""
    p = parse_rel(data)
    return [(m, [(s, pos, kind, 0 if m == 0 else t, a) for s, pos, kind, t, a in p.patches(m)])
            for m, _ in p.imports]
