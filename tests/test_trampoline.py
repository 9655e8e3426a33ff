"""Trampolines (ffcall's closures) with real C code: comparators that carry their own data."""

from __future__ import annotations

import ctypes
import random
from pathlib import Path

import capstone
import pytest

from conftest import space_ranges, writable_executable_pages
from linkload import Linker, LinkError, trampoline

CODE = r"""
#include <stdlib.h>
struct key { int field; int descending; };
struct key *current_key;   /* the variable a trampoline stores its data into */

int by_key(const void *a, const void *b) {
    int x = ((const int *)a)[current_key->field], y = ((const int *)b)[current_key->field];
    return current_key->descending ? (y > x) - (y < x) : (x > y) - (x < y);
}

/* Sorts pairs of ints with whatever comparator it is given: qsort calls back into it. */
void sort_pairs(int *v, int n, int (*cmp)(const void *, const void *)) {
    qsort(v, n, 2 * sizeof(int), cmp);
}

/* The register form: r10 holds the trampoline's data on entry (ffcall's trampoline_r). */
__attribute__((naked)) long data_plus(long x) {
    __asm__("lea (%rdi,%r10), %rax\n\tret");
}

long call_through(long (*f)(long), long x) { return f(x); }
"""

MAPS = Path("/proc/self/maps")
Pairs = ctypes.c_int * 16
Comparator = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
LongFn = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long)


@pytest.fixture(scope="module")
def module(host):
    ld = Linker.native()
    m = ld.link(host.compile_text(CODE, "closures.c", ["-O2"]))
    yield m
    ld.unlink(m)


def pairs():
    rng = random.Random(7)
    values = [(rng.randrange(100), rng.randrange(100)) for _ in range(8)]
    return values, Pairs(*[v for pair in values for v in pair])


@pytest.mark.parametrize("field,descending", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_qsort_comparator_closures(module, field, descending):
    key = (ctypes.c_int * 2)(field, descending)
    t = trampoline.alloc(module.address("by_key"), module.address("current_key"),
                         ctypes.addressof(key))
    try:
        values, array = pairs()
        sort = module.function("sort_pairs", None, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
        sort(array, 8, t)
        got = [v for v in array[field::2]]
        assert got == sorted((p[field] for p in values), reverse=bool(descending))
        assert trampoline.is_trampoline(t)
        assert trampoline.address(t) == module.address("by_key")
        assert trampoline.variable(t) == module.address("current_key")
        assert trampoline.data(t) == ctypes.addressof(key)
    finally:
        trampoline.free(t)
    assert not trampoline.is_trampoline(t)


def test_two_closures_alive_at_once_keep_their_data(module):
    up, down = (ctypes.c_int * 2)(1, 0), (ctypes.c_int * 2)(1, 1)
    fn, var = module.address("by_key"), module.address("current_key")
    t_up = trampoline.alloc(fn, var, ctypes.addressof(up))
    t_down = trampoline.alloc(fn, var, ctypes.addressof(down))
    sort = module.function("sort_pairs", None, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
    values, a = pairs()
    _, b = pairs()
    sort(a, 8, t_up)
    sort(b, 8, t_down)
    assert list(a[1::2]) == sorted(p[1] for p in values)
    assert list(b[1::2]) == sorted((p[1] for p in values), reverse=True)
    trampoline.free(t_up)
    trampoline.free(t_down)


def test_register_form_passes_data_in_r10(module):
    assert trampoline.REGISTER == "r10"
    t = trampoline.alloc_register(module.address("data_plus"), 1000)
    assert LongFn(t)(5) == 1005
    through = module.function("call_through", ctypes.c_long, ctypes.c_void_p, ctypes.c_long)
    assert through(t, 7) == 1007  # called from C code too
    assert trampoline.variable(t) is None and trampoline.data(t) == 1000
    trampoline.free(t)


def test_thousands_alive_and_slots_reused(module):
    from linkload.arch import get
    from linkload.space.native import NativeSpace

    pool = trampoline.TrampolinePool(NativeSpace(), get("x86_64"))  # a pool of its own
    target = module.address("data_plus")
    many = [pool.alloc_register(target, i * 3) for i in range(5000)]
    assert len(set(many)) == 5000
    assert all(LongFn(t)(1) == i * 3 + 1 for i, t in enumerate(many))
    freed = many[100:200]
    for t in freed:
        pool.free(t)
    assert pool.live() == 4900
    again = [pool.alloc_register(target, -i) for i in range(100)]
    assert set(again) == set(freed)  # freed slots come back before new pages are made
    assert all(LongFn(t)(0) == -i for i, t in enumerate(again))
    for t in many[:100] + many[200:] + again:
        pool.free(t)
    assert pool.live() == 0


def test_code_pages_are_never_writable_nor_rewritten(module):
    pool = trampoline.pool()
    t = trampoline.alloc_register(module.address("data_plus"), 1)
    code = pool.space.read(t, 32)
    others = [trampoline.alloc_register(module.address("data_plus"), i) for i in range(300)]
    assert pool.space.read(t, 32) == code
    page = t - t % 4096
    assert writable_executable_pages(space_ranges(pool.space)) == []
    for line in MAPS.read_text().splitlines():
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if lo <= page < hi:
            assert line.split()[1] == "r-xp"
    insns = [i.mnemonic for i in capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64).disasm(code, t)]
    assert insns[:4] == ["mov", "mov", "mov", "jmp"]
    for x in [t, *others]:
        trampoline.free(x)


def test_bad_uses_are_errors(module):
    with pytest.raises(LinkError):
        trampoline.free(module.address("by_key"))
    with pytest.raises(LinkError):
        trampoline.alloc(module.address("by_key"), 0, 1)
    assert not trampoline.is_trampoline(12345)
