"""The module graph: calls waiting for modules linked later, back-patching, unlink policies,
reload, veneers; checked by running the code and by disassembling the patched call sites."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import capstone
import pytest

from conftest import space_ranges, writable_executable_pages
from linkload import Linker, LinkError, ModuleStateError, RelocationOverflowError

A = """
int b_twice(int);
int b_missing(int);
extern int b_counter __attribute__((weak));
int a_calls_b(int x) { return b_twice(x) + 1; }
int a_calls_b_again(int x) { return b_twice(x + 1); }
int a_calls_missing(int x) { return b_missing(x); }
int a_weak_counter(void) { return &b_counter ? b_counter : -1; }
"""
B = """
int b_counter = 7;
int b_twice(int x) { b_counter++; return 2 * x; }
"""
B2 = """
int b_counter = 100;
int b_twice(int x) { return 3 * x; }
"""
WITH_OWN_UNRESOLVED = """
int later(int);
int _unresolved(void) { return -42; }
int calls_later(int x) { return later(x); }
"""
LATER = "int later(int x) { return x * 10; }\n"
FAR_A = 0x2000_0000_0000
FAR_B = 0x1000_0000_0000

MAPS = Path("/proc/self/maps")
DISASM = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)


@pytest.fixture(scope="module")
def objects(host, tmp_path_factory):
    """The objects under plain names (a module is named after its file)."""
    out = tmp_path_factory.mktemp("graph")
    sources = {"a": A, "b": B, "b2": B2, "own": WITH_OWN_UNRESOLVED, "later": LATER}
    paths = {}
    for name, code in sources.items():
        paths[name] = out / f"{name.rstrip('2')}.o"
        if name == "b2":
            paths[name] = out / "v2" / "b.o"
            paths[name].parent.mkdir(exist_ok=True)
        shutil.copy(host.compile_text(code, f"{name}.c", ["-O2"]), paths[name])
    return paths


def calls_in(ld: Linker, address: int, size: int = 32) -> list[int]:
    """Targets of the direct calls and tail calls (``call``/``jmp rel32``) at ``address``."""
    code = ld.space.read(address, size)
    return [int(i.op_str, 16) for i in DISASM.disasm(code, address)
            if i.mnemonic in ("call", "jmp") and i.op_str.startswith("0x") and i.size == 5]


def is_veneer_to(ld: Linker, address: int, target: int) -> bool:
    insn = next(DISASM.disasm(ld.space.read(address, 6), address))
    pointer = int.from_bytes(ld.space.read(address + 6, 8), "little")
    return insn.mnemonic == "jmp" and insn.op_str == "qword ptr [rip]" and pointer == target


def intfn(module, name):
    return module.function(name, ctypes.c_int, ctypes.c_int)


def test_pending_call_reaches_handler_then_is_patched_direct(objects):
    seen = []
    ld = Linker.native(on_unresolved=lambda m, s: seen.append((m, s)) or 1234)
    a = ld.link(objects["a"])
    assert sorted(a.pending()) == ["b_counter", "b_missing", "b_twice"]
    assert intfn(a, "a_calls_b")(5) == 1235
    assert seen == [("a", "b_twice")]
    stub = calls_in(ld, a.address("a_calls_b"))[0]
    assert a.base <= stub < a.base + a.size  # the call goes to a stub inside A

    b = ld.link(objects["b"])
    assert intfn(a, "a_calls_b")(5) == 11
    assert calls_in(ld, a.address("a_calls_b")) == [b.address("b_twice")]
    assert b.address("b_twice") in calls_in(ld, a.address("a_calls_b_again"), 48)
    assert ld.dependents(b) == [a] and ld.dependencies(a) == [b]
    assert intfn(a, "a_calls_missing")(1) == 1234
    assert seen[-1] == ("a", "b_missing")

    ld.unlink(b)  # REL semantics: A's call falls back to its stub
    assert calls_in(ld, a.address("a_calls_b")) == [stub]
    assert intfn(a, "a_calls_b")(5) == 1235
    assert ld.dependents(a) == [] and ld.dependencies(a) == []
    ld.unlink(a)


def test_weak_data_reference_follows_the_module(objects):
    ld = Linker.native(on_unresolved=lambda m, s: 0)
    a = ld.link(objects["a"])
    weak = a.function("a_weak_counter", ctypes.c_int)
    assert weak() == -1
    b = ld.link(objects["b"])
    assert weak() == 7
    intfn(a, "a_calls_b")(1)
    assert weak() == 8  # A reads B's variable itself
    ld.unlink(b)
    assert weak() == -1
    ld.unlink(a)


@pytest.mark.parametrize("order", ["a-first", "b-first"])
def test_link_order_does_not_matter(objects, order):
    ld = Linker.native(on_unresolved=lambda m, s: 0)
    first, second = ("a", "b") if order == "a-first" else ("b", "a")
    mods = {first: ld.link(objects[first])}
    mods[second] = ld.link(objects[second])
    a, b = mods["a"], mods["b"]
    assert intfn(a, "a_calls_b")(20) == 41
    assert calls_in(ld, a.address("a_calls_b")) == [b.address("b_twice")]


def test_own_unresolved_function_is_called_directly(objects):
    ld = Linker.native()
    m = ld.link(objects["own"])
    assert intfn(m, "calls_later")(3) == -42
    assert calls_in(ld, m.address("calls_later")) == [m.address("_unresolved")]
    later = ld.link(objects["later"])
    assert intfn(m, "calls_later")(3) == 30
    ld.unlink(later)
    assert intfn(m, "calls_later")(3) == -42


def test_default_handler_reports_and_aborts(objects, tmp_path):
    script = textwrap.dedent(f"""
        import ctypes
        from linkload import Linker
        ld = Linker.native()
        a = ld.link({str(objects['a'])!r})
        a.function("a_calls_b", ctypes.c_int, ctypes.c_int)(1)
        print("not reached")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == -6  # SIGABRT
    assert "module 'a' called 'b_twice'" in done.stderr
    assert "not reached" not in done.stdout


MUTUAL_A = """
#include <stdlib.h>
extern const char *b_names[];
int counter;
int b_scale(int);
int (*const table[])(int) = {b_scale, abs};
const char *a_name(int i) { return b_names[i]; }
int a_apply(int i, int x) { return table[i](x); }
int a_counter(void) { return counter; }
"""
MUTUAL_B = """
extern int counter;
const char *b_names[] = {"zero", "one", "two"};
int b_scale(int x) { counter++; return 3 * x; }
"""
VARIANTS = {"pie": ["-O2"], "fno-pic": ["-O2", "-fno-pic"], "fPIC": ["-O2", "-fPIC"]}


@pytest.mark.parametrize("variant, order", [(v, o) for v in VARIANTS for o in ("a-first", "b-first")
                                            if (v, o) != ("fno-pic", "b-first")])
def test_modules_reading_each_others_data_link_in_either_order(host, variant, order):
    """a reads b's table of names and calls b through a table of pointers; b increments a's
    counter: whichever links first waits for the other's data. (-fno-pic a after b: see
    test_a_fno_pic_module_names_the_module_whose_data_it_cannot_hold.)"""
    objs = {n: host.compile_text(code, f"{n}.c", VARIANTS[variant])
            for n, code in (("mutual_a", MUTUAL_A), ("mutual_b", MUTUAL_B))}
    ld = Linker.native()
    first, second = ("mutual_a", "mutual_b") if order == "a-first" else ("mutual_b", "mutual_a")
    early = ld.link(objs[first], name=first)
    assert set(early.waiting().values()) == {"data"}  # names it only reads or points at
    ld.link(objs[second], name=second)
    a = next(m for m in ld.modules if m.name == "mutual_a")
    name = a.function("a_name", ctypes.c_char_p, ctypes.c_int)
    assert [name(i) for i in range(3)] == [b"zero", b"one", b"two"]
    assert intfn2(a, "a_apply")(0, 5) == 15 and intfn2(a, "a_apply")(1, -4) == 4
    assert a.function("a_counter", ctypes.c_int)() == 1
    assert all(m.pending() == [] for m in ld.modules)


def test_a_fno_pic_module_names_the_module_whose_data_it_cannot_hold(host):
    """b has no 32-bit absolute fields of its own, so nothing keeps it low; a (-fno-pic)
    holds b_names' address in a 32-bit field: an error naming both, and the remedy works."""
    objs = {n: host.compile_text(code, f"{n}.c", VARIANTS["fno-pic"])
            for n, code in (("mutual_a", MUTUAL_A), ("mutual_b", MUTUAL_B))}
    ld = Linker.native()
    b = ld.link(objs["mutual_b"], name="mutual_b", place_near=FAR_B)
    with pytest.raises(RelocationOverflowError) as info:
        ld.link(objs["mutual_a"], name="mutual_a")
    e = info.value
    assert (e.symbol, e.kind) == ("b_names", "R_X86_64_32S") and "mutual_a" in e.file
    assert "module 'mutual_b'" in str(e) and "link 'mutual_b' after this module" in str(e)
    ld.unlink(b)
    ld.link(objs["mutual_a"], name="mutual_a")
    b = ld.link(objs["mutual_b"], name="mutual_b")  # the remedy: placed where a's fields reach
    assert b.base + b.size <= 1 << 31


FNO_PIC_TAKER = """
#include <stdlib.h>
int b_scale(int);
typedef int (*fn)(int);
fn a_pointer_to_b(void) { return b_scale; }
fn a_pointer_to_abs(void) { return abs; }
int a_call_through(fn f, int x) { return f(x); }
"""
SCALE = "int b_scale(int x) { return 3 * x; }\n"


@pytest.mark.parametrize("order", ["b-first", "a-first"])
def test_a_fno_pic_module_takes_far_functions_addresses_through_low_veneers(host, order):
    """32-bit absolute fields holding the address of a function far away (another module,
    libc) hold the address of a veneer in the module's own (low) code instead."""
    taker = host.compile_text(FNO_PIC_TAKER, "taker.c", ["-O2", "-fno-pic"])
    ld = Linker.native(on_unresolved=lambda m, s: -1)
    scale = host.compile_text(SCALE, "scale.c", ["-O2"])
    if order == "b-first":
        b = ld.link(scale, place_near=FAR_B)
    a = ld.link(taker, name="a")
    if order == "a-first":
        assert a.waiting() == {"b_scale": "data"}  # only its address is taken: data, for now
        b = ld.link(scale, place_near=FAR_B)
    pointer = a.function("a_pointer_to_b", ctypes.c_void_p)
    through = a.function("a_call_through", ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
    assert b.base > 1 << 32 and a.base + a.size <= 1 << 32
    p = pointer()
    assert a.base <= p < a.base + a.size and is_veneer_to(ld, p, b.address("b_scale"))
    assert p != b.address("b_scale")  # the cost: this module's &b_scale is its own veneer
    assert through(p, 5) == 15
    q = a.function("a_pointer_to_abs", ctypes.c_void_p)()
    assert a.base <= q < a.base + a.size and through(q, -3) == 3


def intfn2(module, name):
    return module.function(name, ctypes.c_int, ctypes.c_int, ctypes.c_int)


WAITING_DATA = """
extern int nowhere;
extern int also_missing[];
int f(void) { return nowhere; }
int *g(void) { return also_missing; }
"""
PROBE = """
import ctypes, sys
from linkload import Linker
ld = Linker.native()
m = ld.link(sys.argv[1])
print(m.waiting(), flush=True)
m.function("f", ctypes.c_int)()
print("not reached", flush=True)
"""


def test_a_data_reference_waits_at_a_guard_area_that_faults(host, tmp_path):
    obj = host.compile_text(WAITING_DATA, "dataref.c", ["-O2"])
    ld = Linker.native()
    m = ld.link(obj)
    assert m.waiting() == {"nowhere": "data", "also_missing": "data"}
    guard = m.function("g", ctypes.c_void_p)()
    assert any(start <= guard - m.base < start + size and protection.name == "NONE"
               for start, size, protection in m.layout.segments)
    done = subprocess.run([sys.executable, "-c", PROBE, str(obj)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == -11, done.stderr  # SIGSEGV: reading it faults, no silent zero
    assert "'nowhere': 'data'" in done.stdout and "not reached" not in done.stdout
    definer = ld.link(host.compile_text("int nowhere = 42; int also_missing[4] = {1, 2};\n",
                                        "definer.c", ["-O2"]))
    assert m.function("f", ctypes.c_int)() == 42
    assert m.function("g", ctypes.c_void_p)() == definer.address("also_missing")
    ld.unlink(definer)  # "rel" policy: back to the guard area
    assert m.function("g", ctypes.c_void_p)() == guard and m.pending() == ["nowhere", "also_missing"]


def test_refuse_policy(objects):
    ld = Linker.native(unlink_policy="refuse", on_unresolved=lambda m, s: 0)
    b = ld.link(objects["b"])
    a = ld.link(objects["a"])
    with pytest.raises(ModuleStateError, match="'a'"):
        ld.unlink(b)
    assert intfn(a, "a_calls_b")(2) == 5  # nothing changed
    ld.unlink(a)
    ld.unlink(b)
    assert ld.modules == []


def test_rel_policy_points_pc_relative_data_references_at_the_guard(host):
    user = host.compile_text("extern int shared_value; int read_it(void) { return shared_value; }\n",
                             "pcdata.c", ["-O2", "-fno-pic"])
    owner = host.compile_text("int shared_value = 5;\n", "owner.c", ["-O2"])
    ld = Linker.native()
    o = ld.link(owner)
    u = ld.link(user)
    assert u.call("read_it") == 5
    ld.unlink(o)
    assert u.waiting() == {"shared_value": "data"}
    o = ld.link(owner)
    assert u.call("read_it") == 5


def test_reload_repatches_callers(objects):
    ld = Linker.native(on_unresolved=lambda m, s: -1)
    b = ld.link(objects["b"])
    a = ld.link(objects["a"])
    assert intfn(a, "a_calls_b")(5) == 11
    b2 = ld.reload(b, objects["b2"])
    assert not b.linked and b2.linked and b2.name == "b"
    assert intfn(a, "a_calls_b")(5) == 16
    assert calls_in(ld, a.address("a_calls_b")) == [b2.address("b_twice")]
    assert a.function("a_weak_counter", ctypes.c_int)() == 100  # data refs rebound too
    assert ld.modules == [b2, a]
    ld.unlink(a)
    ld.unlink(b2)


def test_failed_reload_changes_nothing(objects, host):
    bad = host.compile_text("__thread int per_thread; int b_twice(int x) { return per_thread * x; }\n",
                            "badb.c", ["-O2"])  # thread-local storage: refused
    ld = Linker.native(on_unresolved=lambda m, s: -1)
    b = ld.link(objects["b"])
    a = ld.link(objects["a"])
    before = MAPS.read_text()
    with pytest.raises(LinkError):
        ld.reload(b, bad)
    assert MAPS.read_text() == before
    assert b.linked and ld.modules == [b, a]
    assert intfn(a, "a_calls_b")(5) == 11


def test_far_modules_call_through_one_veneer_per_target(objects):
    ld = Linker.native(on_unresolved=lambda m, s: 0)
    a = ld.link(objects["a"], place_near=FAR_A)
    b = ld.link(objects["b"], place_near=FAR_B)
    assert abs(a.base - b.base) > 1 << 32
    assert intfn(a, "a_calls_b")(5) == 11
    target = b.address("b_twice")
    first = calls_in(ld, a.address("a_calls_b"))[0]
    second = [t for t in calls_in(ld, a.address("a_calls_b_again"), 48)]
    assert a.base <= first < a.base + a.size and is_veneer_to(ld, first, target)
    assert first in second  # the second call site reuses the same veneer
    ld.unlink(b)
    assert intfn(a, "a_calls_b")(5) == 1  # back to the unresolved stub (0), plus one


def test_far_module_reaches_libc_through_veneers(host):
    obj = host.compile_text("#include <string.h>\nint len(const char *s) { return (int)strlen(s); }\n",
                            "len.c", ["-O2", "-fno-optimize-strlen"])
    ld = Linker.native(place_near=FAR_A)
    m = ld.link(obj)
    assert m.function("len", ctypes.c_int, ctypes.c_char_p)(b"hello") == 5
    code = ld.space.read(m.address("len"), 16)
    jumps = [int(i.op_str, 16) for i in DISASM.disasm(code, m.address("len"))
             if i.mnemonic in ("jmp", "call") and i.op_str.startswith("0x")]
    assert jumps and is_veneer_to(ld, jumps[0], ld.lookup("strlen"))


def test_auto_placement_keeps_waiting_callers_in_reach(objects):
    ld = Linker.native(on_unresolved=lambda m, s: 0)
    a = ld.link(objects["a"])
    b = ld.link(objects["b"])
    assert calls_in(ld, a.address("a_calls_b")) == [b.address("b_twice")]  # direct, no veneer


def test_no_page_is_writable_and_executable(objects):
    ld = Linker.native(on_unresolved=lambda m, s: 0)
    a = ld.link(objects["a"])
    b = ld.link(objects["b"])
    ld.reload(b, objects["b2"])
    assert writable_executable_pages(space_ranges(ld.space)) == []
    text = a.section_address(".text")
    page = text - text % os.sysconf("SC_PAGE_SIZE")
    perms = [line.split()[1] for line in MAPS.read_text().splitlines()
             if int(line.split("-")[0], 16) <= page < int(line.split()[0].split("-")[1], 16)]
    assert perms == ["r-xp"]


def test_placement_reuses_freed_places_without_scanning(host, monkeypatch):
    """Placement near libc tries the places of modules released lately (and those beside the
    linked ones) before scanning /proc/self/maps: relinking lands where the module was."""
    from linkload.space import native

    obj = host.compile_text("#include <string.h>\nint len(const char *s) { return (int)strlen(s); }\n",
                            "len2.c", ["-O2", "-fno-optimize-strlen"])
    ld = Linker.native()
    m = ld.link(obj)
    base = m.base
    ld.unlink(m)
    scans = []
    real = native.mapped_ranges
    monkeypatch.setattr(native, "mapped_ranges", lambda: scans.append(1) or real())
    m = ld.link(obj)
    assert m.base == base and not scans
    assert m.function("len", ctypes.c_int, ctypes.c_char_p)(b"four") == 4
