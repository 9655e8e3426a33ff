"""The native x86-64 runtime linker, end to end.

Every C and C++ program under ``tests/c`` is built twice from the same object files: as a normal
executable whose driver (``*_main.c``) prints each call and its result, and as a module that
``Linker.native()`` links into this process. The tests replay the executable's calls on the
module through ctypes and require the same output, byte for byte, including everything the
program prints itself (constructors at link time, destructors at unlink time).
"""

from __future__ import annotations

import ctypes
import platform
import re
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from linkload import (
    FormatError,
    Linker,
    LinkError,
    ModuleStateError,
    RelocationOverflowError,
    UndefinedSymbolError,
    UnsupportedError,
)
from linkload.formats import read_module
from linkload.link import linker as linker_module
from linkload.link import select as select_module

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64",
    reason="the native space runs on x86-64 Linux",
)

CXX_LIBRARIES = ("libstdc++.so.6",)

FLAGS = {
    "O0": ("-O0",),
    "O2": ("-O2",),
    "O2-sections": ("-O2", "-ffunction-sections", "-fdata-sections"),
    "fPIC": ("-O2", "-fPIC"),
    "fPIC-noplt": ("-O2", "-fPIC", "-fno-plt"),
    "fno-pic": ("-O2", "-fno-pic"),
    "large-fPIC": ("-O2", "-mcmodel=large", "-fPIC"),
    "large": ("-O2", "-mcmodel=large"),
    "large-fno-pic": ("-O2", "-mcmodel=large", "-fno-pic"),
}

# "objects": the object files' paths (a list when there are several); "ld-r": one object made by
# ld -r; "bytes": the object files' contents.
MODES = ("objects", "ld-r", "bytes")


@dataclass(frozen=True)
class Program:
    sources: tuple[str, ...]
    driver: str
    flags: tuple[str, ...] = ()
    cxx: bool = False


PROGRAMS = {
    "strings": Program(("strings.c",), "strings_main.c"),
    "dispatch": Program(("dispatch.c",), "dispatch_main.c"),
    "geometry": Program(("geometry.c",), "geometry_main.c"),
    "pair": Program(("pair_a.c", "pair_b.c"), "pair_main.c", ("-fcommon",)),
    "lifecycle": Program(("lifecycle.c",), "lifecycle_main.c"),
    "cxx_objects": Program(("cxx_objects.cpp", "cxx_more.cpp"), "cxx_objects_main.c", cxx=True),
    "cxx_except": Program(("cxx_except.cpp",), "cxx_except_main.c", cxx=True),
}



# -- C stdio ----------------------------------------------------------------------------------

_libc = ctypes.CDLL(None)
_fflush = _libc.fflush
_fflush.argtypes = [ctypes.c_void_p]
_fflush.restype = ctypes.c_int


def flush_stdio() -> None:
    """Flush the C library's buffers, so that what a module printed reaches fd 1 (capfd)."""
    _fflush(None)


# -- building ---------------------------------------------------------------------------------


class Build:
    """One program compiled with one set of flags: its objects, ld -r object, executable."""

    def __init__(self, tc, program: Program, variant: str) -> None:
        self.tc, self.program, self.variant = tc, program, variant
        self.flags = FLAGS[variant] + program.flags
        self.objects = tc.compile_all(program.sources, self.flags)

    @property
    def libraries(self) -> tuple[str, ...]:
        return CXX_LIBRARIES if self.program.cxx else ()

    def linker(self, **kw) -> Linker:
        return Linker.native(libraries=self.libraries, **kw)

    def combined(self) -> Path:
        return self.tc.combine(self.objects)

    def link_input(self, mode: str):
        if mode == "ld-r":
            return self.combined()
        if mode == "bytes":
            data = [p.read_bytes() for p in self.objects]
            return data if len(data) > 1 else data[0]
        return list(self.objects) if len(self.objects) > 1 else self.objects[0]

    def expected(self) -> str:
        """What the executable built from the same objects prints."""
        driver = self.tc.compile(self.program.driver, self.flags)
        ldflags = ("-no-pie",) if "-fno-pic" in self.flags else ()
        exe = self.tc.executable([*self.objects, driver], cxx=self.program.cxx, ldflags=ldflags,
                                 libs=("-lm",))
        return self.tc.run(exe)


@pytest.fixture(scope="session")
def build(host):
    """``build("strings", "O2")``: a :class:`Build`, made once per session."""
    made: dict[tuple[str, str], Build] = {}

    def get(name: str, variant: str) -> Build:
        if (name, variant) not in made:
            made[name, variant] = Build(host, PROGRAMS[name], variant)
        return made[name, variant]

    return get


# -- replaying a driver's calls -------------------------------------------------------------

CALL = re.compile(r"^@([ild]) (\w+)\((.*)\) = (.*)$")
RESTYPES = {"i": ctypes.c_int, "l": ctypes.c_long, "d": ctypes.c_double}


def _argument(text: str):
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return float(text)


def _result(tag: str, value) -> str:
    return f"{value:.17g}" if tag == "d" else str(value)


def replay(module, expected: str, capfd) -> str:
    """Make on ``module`` every call the executable made; the output, formatted as the driver
    formats it, with whatever the module printed during each call in front of its line."""
    out = []
    for line in expected.splitlines():
        match = CALL.match(line)
        if not match:
            continue  # printed by the program itself: the module must print it too
        tag, name, args, _ = match.groups()
        values = [_argument(a) for a in args.split(",")] if args.strip() else []
        argtypes = [ctypes.c_double if isinstance(v, float) else ctypes.c_long for v in values]
        result = module.function(name, RESTYPES[tag], *argtypes)(*values)
        flush_stdio()
        out.append(capfd.readouterr().out)
        out.append(f"@{tag} {name}({args}) = {_result(tag, result)}\n")
    return "".join(out)


def executable_result(b: Build, call: str) -> int | float:
    """The result the executable printed for ``call`` (as written in its driver)."""
    for line in b.expected().splitlines():
        match = CALL.match(line)
        if match and f"{match[2]}({match[3]})" == call:
            return float(match[4]) if match[1] == "d" else int(match[4])
    raise AssertionError(f"the driver does not call {call}")


def link_quietly(ld: Linker, objects, capfd, **kw):
    """``ld.link`` and what the module printed while it was initialised."""
    flush_stdio()
    capfd.readouterr()
    module = ld.link(objects, **kw)
    flush_stdio()
    return module, capfd.readouterr().out


def unlink_quietly(ld: Linker, module, capfd) -> str:
    flush_stdio()
    capfd.readouterr()
    ld.unlink(module)
    flush_stdio()
    return capfd.readouterr().out


def _matrix():
    for name, program in PROGRAMS.items():
        for variant in FLAGS:
            if program.cxx and variant == "fno-pic":
                continue  # see test_cxx_fno_pic_is_refused_cleanly
            for mode in MODES:
                yield pytest.param(name, variant, mode, id=f"{name}-{variant}-{mode}")


# -- the module behaves as the executable -----------------------------------------------------


@pytest.mark.parametrize("name, variant, mode", list(_matrix()))
def test_module_matches_executable(build, capfd, name, variant, mode):
    b = build(name, variant)
    expected = b.expected()
    assert sum(1 for line in expected.splitlines() if CALL.match(line)) >= 2
    ld = b.linker()
    module, printed = link_quietly(ld, b.link_input(mode), capfd, name=name)
    assert module.name == name
    assert ld.modules == [module]
    if variant == "fno-pic":
        # 32-bit absolute fields: the module must sit where its addresses fit them
        assert module.base + module.size <= 1 << 32
    transcript = printed + replay(module, expected, capfd)
    transcript += unlink_quietly(ld, module, capfd)
    assert ld.modules == []
    assert not module.linked
    assert transcript == expected


# -- the relocation pass in small chunks, and addends stored in the fields ------------------------


def as_implicit(module, arch):
    """``module`` as an ELF REL table would give it: each addend stored in its field (where the
    kind has one) and its table addend 0."""
    relocs = module.relocations.copy()
    images = {}
    for i, (sec, offset, kind, addend) in enumerate(
            zip(relocs["section"].tolist(), relocs["offset"].tolist(), relocs["kind"].tolist(),
                relocs["addend"].tolist(), strict=True)):
        field = arch.kinds[kind].field
        if field is None or field.shift or field.round_ha:
            continue
        image = images.setdefault(sec, bytearray(module.sections[sec].data))
        code = "<" + {1: "B", 2: "H", 4: "I", 8: "Q"}[field.size]
        (old,) = struct.unpack_from(code, image, offset)
        new = field.encode(np.array([old], np.uint64), np.array([addend], np.int64))
        struct.pack_into(code, image, offset, int(new[0]))
        relocs["addend"][i], relocs["implicit"][i] = 0, 1
    for sec, image in images.items():
        module.sections[sec].data = bytes(image)
    module.relocations = relocs
    return module


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("name, variant", [("strings", "O2"), ("dispatch", "fno-pic"),
                                           ("geometry", "large"), ("pair", "fPIC-noplt"),
                                           ("cxx_objects", "fPIC"), ("cxx_except", "O0")])
def test_small_chunks_and_implicit_addends(build, capfd, monkeypatch, name, variant, implicit):
    """Chunk boundaries fall everywhere (a few rows a chunk), and REL-style addends are decoded
    from the fields: the module still behaves as the executable."""
    monkeypatch.setattr(select_module, "CHUNK_ROWS", 3)
    b = build(name, variant)
    ld = b.linker()
    if implicit:
        monkeypatch.setattr(linker_module, "read_module",
                            lambda source, name=None: as_implicit(read_module(source, name), ld.arch))
    expected = b.expected()
    module, printed = link_quietly(ld, b.link_input("objects"), capfd, name=name)
    if implicit:
        assert module.module.relocations["implicit"].any()
    transcript = printed + replay(module, expected, capfd) + unlink_quietly(ld, module, capfd)
    assert transcript == expected


# -- several modules --------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["O0", "O2", "fPIC", "fno-pic", "large-fPIC"])
def test_second_module_calls_first(host, variant, chunk_rows):
    flags = FLAGS[variant]
    library, client = host.compile("dispatch.c", flags), host.compile("client.c", flags)
    ld = Linker.native(unlink_policy="refuse")  # REL semantics are tested in test_graph.py
    lib = ld.link(library)
    user = ld.link(client)
    assert ld.modules == [lib, user]
    assert ld.dependencies(user) == [lib]
    assert ld.dependents(lib) == [user]
    assert ld.dependents(user) == []

    fib = lib.function("fib", ctypes.c_long, ctypes.c_int)
    apply_op = lib.function("apply_op", ctypes.c_long, ctypes.c_int, ctypes.c_long, ctypes.c_long)
    counters = (ctypes.c_int * 8).from_address(lib.address("counters"))
    for n in (0, 1, 9, 15):
        expected = fib(n) * 1000 + apply_op(2, n, 3) * 10 + counters[n & 7]
        assert user.call("client_compute", n) == expected
    assert user.call("client_indirect", 15) == 610
    # the client's data refers to the library's function
    table = ctypes.c_void_p.from_address(user.address("client_table")).value
    assert table == lib.address("fib") == ld.lookup("fib")
    # a change to the library's data is seen by the client
    counters[5] = 1000
    assert user.call("client_compute", 5) == fib(5) * 1000 + 150 + 1000

    with pytest.raises(ModuleStateError):
        ld.unlink(lib)
    assert lib.linked and ld.modules == [lib, user]
    ld.unlink(user)
    assert ld.dependents(lib) == []
    ld.unlink(lib)
    assert ld.modules == []


def test_link_order_does_not_matter_for_data_either(host):
    """client reads dispatch's data and calls its functions: linked first, it waits for all
    of them, and works once dispatch is linked."""
    ld = Linker.native()
    client = host.compile("client.c", ["-O2"])
    user = ld.link(client)
    assert {"fib", "apply_op", "counters"} <= set(user.pending())
    lib = ld.link(host.compile("dispatch.c", ["-O2"]))
    assert user.pending() == []
    assert user.call("client_indirect", 10) == 55
    ld.unlink(user)
    ld.unlink(lib)


def test_lookup_across_modules(host):
    ld = Linker.native()
    lib = ld.link(host.compile("dispatch.c", ["-O2"]))
    user = ld.link(host.compile("client.c", ["-O2"]))
    assert ld.lookup("fib") == lib.address("fib")
    assert ld.lookup("counters") == lib.address("counters")
    assert ld.lookup("client_compute") == user.address("client_compute")
    assert lib.base <= ld.lookup("apply_op") < lib.base + lib.size
    printf = ctypes.cast(_libc.printf, ctypes.c_void_p).value
    assert ld.lookup("printf") == printf
    assert ld.lookup("no_such_symbol_in_any_module") is None
    # static functions are not exported, but a module can still name them
    assert ld.lookup("op_add") is None
    assert lib.base <= lib.address("op_add") < lib.base + lib.size
    with pytest.raises(UndefinedSymbolError):
        lib.address("client_compute")
    ld.unlink(user)
    assert ld.lookup("client_compute") is None
    assert ld.lookup("fib") == lib.address("fib")
    ld.unlink(lib)
    assert ld.lookup("fib") is None


def test_unlink_then_relink_same_object(host):
    obj = host.compile("dispatch.c", ["-O2"])
    ld = Linker.native()
    first = ld.link(obj)
    assert first.call("bump", 3) == 304
    assert first.call("bump", 5) == 817
    base = first.base
    ld.unlink(first)
    assert not first.linked
    assert not ld.space.owns(base)
    with pytest.raises(ModuleStateError):
        ld.unlink(first)
    again = ld.link(obj)
    assert again is not first and ld.modules == [again]
    assert again.call("bump", 3) == 304  # fresh data, not the old module's
    assert again.call("fib", 25) == 75025
    ld.unlink(again)


def test_weak_undefined_resolved_by_earlier_module(host, chunk_rows):
    flags = ["-O2", "-fPIC", "-fcommon"]
    pair = host.combine(host.compile_all(["pair_a.c", "pair_b.c"], flags))
    ld = Linker.native(unlink_policy="refuse")
    alone = ld.link(pair)
    assert alone.function("probe_maybe", ctypes.c_int)() == -1
    assert alone.function("probe_maybe_value", ctypes.c_int)() == -2
    assert ld.dependencies(alone) == []
    ld.unlink(alone)

    provider = ld.link(host.compile("provider.c", flags))
    paired = ld.link(pair)
    assert paired.call("probe_maybe") == 42
    assert paired.call("probe_maybe_value") == 77
    assert ld.dependencies(paired) == [provider]
    with pytest.raises(ModuleStateError):
        ld.unlink(provider)
    ld.unlink(paired)
    ld.unlink(provider)


@pytest.mark.parametrize("variant", ["O2", "fPIC", "fno-pic"])
def test_common_symbols_of_combined_objects(host, variant):
    objects = host.compile_all(["pair_a.c", "pair_b.c"], FLAGS[variant] + ("-fcommon",))
    ld = Linker.native()
    m = ld.link(host.combine(objects))
    # is_even and is_odd live in different objects and both count in shared_counter
    assert m.call("counter_bumps", 6) == 12
    counter = ctypes.c_int.from_address(m.address("shared_counter"))
    assert counter.value == 12
    ld.unlink(m)


@pytest.mark.parametrize("variant", ["O2", "fPIC"])
def test_common_symbols_of_listed_objects(host, variant):
    """Two objects passed as a list, each with the common symbol ``int shared_counter;``: one
    variable, as a static linker makes it."""
    objects = host.compile_all(["pair_a.c", "pair_b.c"], FLAGS[variant] + ("-fcommon",))
    ld = Linker.native()
    m = ld.link(objects, name="pair")
    try:
        assert m.call("counter_bumps", 6) == 12
    finally:
        ld.unlink(m)


WEAK_DEFINITION = """
__attribute__((weak)) int level(void) { return 1; }
int via_weak_object(void) { return level(); }
"""
STRONG_DEFINITION = """
int level(void) { return 2; }
int via_strong_object(void) { return level(); }
"""


def test_strong_definition_beats_weak_in_combined_object(host):
    flags = ["-O2", "-fPIC"]
    objects = [host.compile_text(WEAK_DEFINITION, "weak_level.c", flags),
               host.compile_text(STRONG_DEFINITION, "strong_level.c", flags)]
    ld = Linker.native()
    m = ld.link(host.combine(objects))
    assert m.call("via_weak_object") == 2
    assert m.call("via_strong_object") == 2
    ld.unlink(m)


def test_strong_definition_beats_weak_in_listed_objects(host):
    flags = ["-O2", "-fPIC"]
    objects = [host.compile_text(WEAK_DEFINITION, "weak_level.c", flags),
               host.compile_text(STRONG_DEFINITION, "strong_level.c", flags)]
    ld = Linker.native()
    m = ld.link(objects, name="levels")
    try:
        assert m.call("level") == 2  # the export is right ...
        assert m.call("via_strong_object") == 2
        assert m.call("via_weak_object") == 2  # ... but the weak object calls its own copy
    finally:
        ld.unlink(m)


def test_multiple_definition_in_listed_objects_is_an_error(host):
    flags = ["-O2", "-fPIC"]
    objects = [host.compile_text("int twice = 1; int get_first(void) { return twice; }\n",
                                 "twice_a.c", flags),
               host.compile_text("int twice = 2; int get_second(void) { return twice; }\n",
                                 "twice_b.c", flags)]
    ld = Linker.native()
    try:
        with pytest.raises(LinkError) as info:
            ld.link(objects, name="twice")
        assert info.value.symbol == "twice"
    finally:
        for m in list(ld.modules):
            ld.unlink(m)


INLINE_COUNTER = """
inline int next_ticket() { static int ticket = 0; return ++ticket; }
extern "C" int %s(void) { return next_ticket(); }
"""


@pytest.mark.parametrize("as_bytes", [
    False, pytest.param(True, id="bytes")], ids=lambda b: str(b))
def test_comdat_group_linked_once_per_module(host, as_bytes):
    """Two objects with the same inline function (a COMDAT group) in one module: one copy, so
    one static local."""
    flags = ["-O2", "-fPIC"]
    objects = [host.compile_text(INLINE_COUNTER % "ticket_a", "ticket_a.cpp", flags),
               host.compile_text(INLINE_COUNTER % "ticket_b", "ticket_b.cpp", flags)]
    ld = Linker.native(libraries=CXX_LIBRARIES)
    m = ld.link([p.read_bytes() for p in objects] if as_bytes else objects, name="tickets")
    try:
        assert [m.call("ticket_a"), m.call("ticket_b"), m.call("ticket_a")] == [1, 2, 3]
    finally:
        ld.unlink(m)


# -- large modules ----------------------------------------------------------------------------

BIG_TABLE = """
const unsigned char table[3 << 19] = {1, 2, 3};
int entry(int i) { return table[i] + (int)sizeof table / 1024; }
"""


def _vm_flags(address: int) -> list[str]:
    """The VmFlags of the mapping of this process that holds ``address``."""
    current = None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(" ", 1)[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                current = lo <= address < hi
            elif head == "VmFlags:" and current:
                return line.split()[1:]
    raise AssertionError(f"{address:#x} is not mapped")


def test_large_module_sits_in_huge_pages(host):
    """A module of 1 MiB or more is reserved in whole, aligned 2 MiB pages marked for
    transparent huge pages (filled with one page fault each), and works as any other."""
    obj = host.compile_text(BIG_TABLE, "big_table.c", ["-O2", "-fPIC"])
    ld = Linker.native()
    m = ld.link(obj)
    assert m.size >= 1 << 20
    assert m.base % (2 << 20) == 0
    if Path("/sys/kernel/mm/transparent_hugepage/enabled").exists():
        assert "hg" in _vm_flags(m.base)
    assert m.call("entry", 2) == 3 + 1536
    assert ld.space.protection(m.address("entry")).value == "r-x"
    assert ld.space.protection(m.address("table")).value == "r--"
    ld.unlink(m)


# -- initialisers and finalisers --------------------------------------------------------------


def test_c_finalisers_run_at_unlink(host, capfd):
    ld = Linker.native()
    m, printed = link_quietly(ld, host.compile("lifecycle.c", ["-O2"]), capfd)
    assert printed == "constructor 200\nconstructor default\n"
    assert m.call("get_init_calls") == 12
    seen = []
    observer = ctypes.CFUNCTYPE(None, ctypes.c_int)(seen.append)
    m.function("set_fini_observer", None, ctypes.c_void_p)(ctypes.cast(observer, ctypes.c_void_p))
    assert seen == []
    assert unlink_quietly(ld, m, capfd) == "destructor default\ndestructor 200\n"
    assert seen == [1, 2]


def test_cxx_static_destructors_run_at_unlink(build, capfd):
    b = build("cxx_objects", "O2")
    ld = b.linker()
    m, printed = link_quietly(ld, b.combined(), capfd)
    assert printed == "construct tracker 1 (live 1)\nconstruct tracker 2 (live 2)\n"
    assert m.call("live_trackers") == 2002
    seen = []
    observer = ctypes.CFUNCTYPE(None, ctypes.c_int)(seen.append)
    m.function("set_observer", None, ctypes.c_void_p)(ctypes.cast(observer, ctypes.c_void_p))
    assert m.call("local_static", 1) == 304
    flush_stdio()
    capfd.readouterr()
    out = unlink_quietly(ld, m, capfd)
    # __cxa_finalize for the module's __dso_handle: reverse order of construction
    assert seen == [3, 2, 1]
    assert out.splitlines() == ["destroy tracker 3 (live 2)", "destroy tracker 2 (live 1)",
                                "destroy tracker 1 (live 0)"]


ATEXIT_USER = """
#include <stdio.h>
#include <stdlib.h>
static void goodbye(void) { printf("atexit handler\\n"); fflush(NULL); }
int register_goodbye(void) { return atexit(goodbye); }
"""


ATEXIT_CHECK = """
import sys
from linkload import Linker
ld = Linker.native()
m = ld.link(sys.argv[1])
assert m.call("register_goodbye") == 0
ld.unlink(m)
print("unlinked", flush=True)
"""


def test_atexit_handler_runs_at_unlink(host):
    """Run in a child process: a handler left registered after unlink would crash at exit."""
    obj = host.compile_text(ATEXIT_USER, "atexit_user.c", ["-O2", "-fPIC"])
    done = subprocess.run([sys.executable, "-c", ATEXIT_CHECK, str(obj)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "atexit handler\nunlinked\n"


# -- C++ --------------------------------------------------------------------------------------


def test_cxx_exceptions_after_relink(build, capfd):
    """Exceptions keep working after a module with frames was unlinked and linked again (its
    .eh_frame is deregistered and registered again), and in two C++ modules at once."""
    b = build("cxx_except", "O2")
    ld = b.linker()
    for _ in range(2):
        m, _ = link_quietly(ld, b.objects[0], capfd)
        assert m.call("parse_or_code", 1) == -102  # returns a long
        flush_stdio()
        assert capfd.readouterr().out == "parse error at 2: bad digit 'a'\n"
        assert m.function("vector_at", ctypes.c_int, ctypes.c_int)(99) == -1
        assert m.call("nested_rethrow", 5) == 60  # thrown 0 at the top, 6 cleanups of 10
        unlink_quietly(ld, m, capfd)

    other = build("cxx_objects", "fPIC")
    m1, _ = link_quietly(ld, b.objects[0], capfd)
    m2, _ = link_quietly(ld, other.combined(), capfd)
    assert m1.call("catch_all", 1) == 33
    assert m1.call("catch_all", 3) == 508
    assert m2.function("shapes_total", ctypes.c_double, ctypes.c_int)(4) > 0
    assert m1.call("vector_at", 3) == 9
    unlink_quietly(ld, m2, capfd)
    assert m1.call("catch_all", 0) == 8
    unlink_quietly(ld, m1, capfd)


def test_cxx_comdat_groups_shared_across_modules(build, host, capfd):
    """A module whose COMDAT groups were linked before by another module uses the earlier copy:
    inline functions share their static locals, and the later module depends on the earlier."""
    flags = FLAGS["O2"]
    ld = Linker.native(libraries=CXX_LIBRARIES)
    first, _ = link_quietly(ld, host.compile("cxx_objects.cpp", flags), capfd)
    second, _ = link_quietly(ld, host.compile("cxx_more.cpp", flags), capfd)
    assert ld.dependencies(second) == [first]
    assert first.call("serial_now") == 1
    assert second.call("more_serial") == 2
    assert first.call("serial_now") == 3
    assert second.call("more_weighted", 12) == executable_result(build("cxx_objects", "O2"),
                                                                 "more_weighted(12)")
    with pytest.raises(ModuleStateError):
        ld.unlink(first)
    unlink_quietly(ld, second, capfd)
    unlink_quietly(ld, first, capfd)


THROWER = """
#include <stdexcept>
#include <string>
extern "C" int thrower(int n)
{
    if (n > 2)
        throw std::runtime_error("too big: " + std::to_string(n));
    return n * 2;
}
"""
CATCHER = """
#include <cstring>
#include <stdexcept>
extern "C" int thrower(int n);
extern "C" int catcher(int n)
{
    try {
        return thrower(n);
    } catch (const std::runtime_error &e) {
        return -static_cast<int>(std::strlen(e.what()));
    }
}
"""


@pytest.mark.parametrize("variant", ["O0", "O2", "large-fPIC"])
def test_cxx_exception_crosses_modules(host, variant, chunk_rows):
    """Thrown in one module, caught in another: the unwinder needs both modules' frames."""
    flags = FLAGS[variant]
    ld = Linker.native(libraries=CXX_LIBRARIES)
    first = ld.link(host.compile_text(THROWER, "thrower.cpp", flags))
    second = ld.link(host.compile_text(CATCHER, "catcher.cpp", flags))
    assert ld.dependencies(second) == [first]
    catcher = second.function("catcher", ctypes.c_int, ctypes.c_int)
    assert catcher(1) == 2
    assert catcher(5) == -len("too big: 5")
    assert catcher(12345) == -len("too big: 12345")
    ld.unlink(second)
    ld.unlink(first)


def test_cxx_fno_pic_is_refused_cleanly(host, capfd):
    """-fno-pic C++ takes the 32-bit absolute address of libstdc++'s type_info objects, which no
    placement can satisfy: a RelocationOverflowError naming it, and the linker unchanged."""
    ld = Linker.native(libraries=CXX_LIBRARIES)
    with pytest.raises(RelocationOverflowError) as info:
        ld.link(host.compile("cxx_except.cpp", FLAGS["fno-pic"]))
    err = info.value
    assert err.kind in {"R_X86_64_32", "R_X86_64_32S", "R_X86_64_PC32"}
    assert err.symbol
    assert ld.modules == []
    # the same linker links the -fPIC build, with all its COMDAT groups
    m, _ = link_quietly(ld, host.compile("cxx_except.cpp", FLAGS["fPIC"]), capfd)
    assert m.call("nested_rethrow", 4) == 50
    unlink_quietly(ld, m, capfd)


# -- callbacks into Python --------------------------------------------------------------------


def _sort_checksum(n: int, reverse: bool) -> int:
    seed, data = 12345, []
    for _ in range(min(n, 64)):
        seed = (seed * 1103515245 + 12345) & 0xFFFFFFFF
        data.append((seed >> 16) % 1000)
    total = 0
    for v in sorted(data, reverse=reverse):
        total = (total * 7 + v) & 0xFFFFFFFF
    return total & 0x7FFFFFFF


@pytest.mark.parametrize("variant", ["O0", "fPIC", "fno-pic"])
def test_python_callbacks(host, variant):
    ld = Linker.native()
    m = ld.link(host.compile("callback.c", FLAGS[variant]))
    int_fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
    apply_sum = m.function("apply_sum", ctypes.c_int, int_fn, ctypes.c_int)
    assert apply_sum(int_fn(lambda i: i * i), 10) == sum(i * i for i in range(10))
    calls = []

    def record(i):
        calls.append(i)
        return -i

    assert apply_sum(int_fn(record), 5) == -10
    assert calls == [0, 1, 2, 3, 4]

    cmp_fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
    sort_checksum = m.function("sort_checksum", ctypes.c_int, cmp_fn, ctypes.c_int)
    descending = cmp_fn(lambda a, b: (a[0] < b[0]) - (a[0] > b[0]))
    ascending = cmp_fn(lambda a, b: (a[0] > b[0]) - (a[0] < b[0]))
    assert sort_checksum(descending, 40) == _sort_checksum(40, reverse=True)
    assert sort_checksum(ascending, 64) == _sort_checksum(64, reverse=False)
    ld.unlink(m)


# -- the code itself --------------------------------------------------------------------------

VENEER_HEAD = b"\xff\x25\x00\x00\x00\x00"  # jmp qword ptr [rip + 0]


def _calls(code: bytes, address: int):
    from capstone import CS_ARCH_X86, CS_MODE_64, Cs

    md = Cs(CS_ARCH_X86, CS_MODE_64)
    for insn in md.disasm(code, address):
        if insn.mnemonic == "call":
            yield insn
        if insn.mnemonic in ("ret", "int3"):
            break


@pytest.mark.parametrize("variant", ["fPIC", "O2", "fno-pic"])
def test_libc_call_is_direct_or_through_veneer(host, variant, chunk_rows):
    pytest.importorskip("capstone")
    ld = Linker.native()
    m = ld.link(host.compile("strings.c", FLAGS[variant]))
    strlen = ld.lookup("strlen")
    start = m.address("text_length")
    code = ld.space.read(start, 64)
    calls = list(_calls(code, start))
    assert calls, "text_length calls strlen"
    call = calls[0]
    assert call.bytes[0] == 0xE8 and call.size == 5, "a direct call rel32"
    target = int(call.op_str, 16)
    assert target == call.address + 5 + struct.unpack("<i", bytes(call.bytes[1:5]))[0]
    if target != strlen:
        assert m.base <= target < m.base + m.size, "a veneer is part of the module"
        veneer = ld.space.read(target, 14)
        assert veneer[:6] == VENEER_HEAD
        assert struct.unpack("<Q", veneer[6:])[0] == strlen
        assert ld.space.protection(target).value == "r-x"
    if "-fno-pic" in FLAGS[variant]:
        assert m.base + m.size <= 1 << 32
        assert target != strlen, "libc is out of reach of the low 4 GiB"
    assert m.call("text_length", 3) == 7
    ld.unlink(m)


def test_relocated_pointer_tables_are_read_only(host):
    ld = Linker.native()
    m = ld.link(host.compile("dispatch.c", ["-O2", "-fno-pic"]))
    assert ld.space.protection(m.address("fib")).value == "r-x"
    assert ld.space.protection(m.address("ops")).value == "r--"
    assert ld.space.protection(m.address("counters")).value == "rw-"
    assert ld.space.protection(m.address("user_ops")).value == "rw-"
    ld.unlink(m)


# -- errors -----------------------------------------------------------------------------------

LOW_TABLE_AND_STDOUT = """
#include <stdio.h>
static int table[4] = {1, 2, 3, 4};
int *table_address(void) { return table; }
int flush_stdout(void) { return fflush(stdout); }
"""


def test_fno_pic_reference_to_libc_data_is_reported(host):
    """-fno-pic code refers to libc's ``stdout`` PC-relatively (an executable would copy it)
    and to its own data by 32-bit absolute address: no place satisfies both."""
    obj = host.compile_text(LOW_TABLE_AND_STDOUT, "uses_stdout.c", ["-O2", "-fno-pic"])
    ld = Linker.native()
    with pytest.raises(RelocationOverflowError) as info:
        ld.link(obj)
    err = info.value
    assert err.symbol == "stdout"
    assert err.kind == "R_X86_64_PC32"
    assert err.file == str(obj)
    assert err.section.startswith(".text")
    assert "-fPIC" in str(err)
    assert ld.modules == []
    m = ld.link(host.compile_text(LOW_TABLE_AND_STDOUT, "uses_stdout.c", ["-O2", "-fPIC"]))
    assert m.call("flush_stdout") == 0
    ld.unlink(m)


def test_overflow_counts_every_field_like_it(host, chunk_rows):
    """The error names the first field that overflows and counts the others, wherever they lie
    among the relocations (the table's 32-bit absolute address puts the module low, far from
    libc's ``stdout``)."""
    source = LOW_TABLE_AND_STDOUT + "".join(
        f"int flush{i}(void) {{ return fflush(stdout) + {i}; }}\n" for i in range(6))
    obj = host.compile_text(source, "many_stdout.c", ["-O2", "-fno-pic"])
    module = read_module(obj)
    targets = [module.symbol_name(t) for t in module.relocations["target"].tolist()]
    assert targets.count("stdout") == 7  # flush_stdout's too
    with pytest.raises(RelocationOverflowError) as info:
        Linker.native().link(obj)
    assert info.value.symbol == "stdout"
    assert "(6 more fields like it)" in str(info.value)


def test_thread_local_storage_is_unsupported(host):
    obj = host.compile_text("__thread int per_thread;\nint get(void) { return per_thread; }\n",
                            "tls.c", ["-O2", "-fPIC"])
    ld = Linker.native()
    with pytest.raises(UnsupportedError) as info:
        ld.link(obj)
    assert info.value.symbol == "per_thread"
    assert info.value.kind.startswith("R_X86_64_")
    assert "thread-local" in str(info.value)
    assert ld.modules == []


def test_missing_library():
    with pytest.raises(LinkError) as info:
        Linker.native(libraries=["libdoes-not-exist.so.9"])
    assert info.value.file == "libdoes-not-exist.so.9"


def test_not_an_object_file():
    ld = Linker.native()
    with pytest.raises(FormatError):
        ld.link(b"this is not an ELF file")
    with pytest.raises(LinkError):
        ld.link([])
    assert ld.modules == []


# -- .eh_frame of dropped COMDAT copies -------------------------------------------------------


def _uleb(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _pointer_size(encoding: int) -> int:
    return {0x00: 8, 0x02: 2, 0x03: 4, 0x04: 8, 0x0A: 2, 0x0B: 4, 0x0C: 8}[encoding & 0x0F]


def _fde_ranges(data: bytes, address: int) -> list[tuple[int, int]]:
    """(pc_begin, pc_range) of every FDE of an .eh_frame image loaded at ``address``."""
    encodings: dict[int, int] = {}
    ranges = []
    i = 0
    while i + 4 <= len(data):
        length = struct.unpack_from("<I", data, i)[0]
        if length == 0:
            break
        body = i + 4
        cie_id = struct.unpack_from("<I", data, body)[0]
        if cie_id == 0:
            j = body + 5  # id, version
            end = data.index(b"\0", j)
            augmentation = data[j:end].decode()
            j = end + 1
            _, j = _uleb(data, j)  # code alignment
            _, j = _uleb(data, j)  # data alignment (the value does not matter here)
            _, j = _uleb(data, j)  # return address register
            encoding = 0
            if augmentation.startswith("z"):
                _, j = _uleb(data, j)
                for c in augmentation[1:]:
                    if c == "R":
                        encoding = data[j]
                        j += 1
                    elif c == "L":
                        j += 1
                    elif c == "P":
                        j += 1 + _pointer_size(data[j])
            encodings[i] = encoding
        else:
            cie = body - cie_id
            encoding = encodings[cie]
            size = _pointer_size(encoding)
            fmt = {2: "<h", 4: "<i", 8: "<q"}[size]
            field = body + 4
            begin = struct.unpack_from(fmt, data, field)[0]
            # as libgcc reads it: a zero field is a null pointer (an FDE of discarded code);
            # only a non-zero one gets the pc-relative base added
            if begin and encoding & 0x70 == 0x10:
                begin = (begin + address + field) & ((1 << 64) - 1)
            span = struct.unpack_from(fmt, data, field + size)[0]
            ranges.append((begin, span))
        i = body + length
    return ranges


def test_eh_frame_of_dropped_comdat_copies(host, capfd):
    """The FDEs of a module's dropped COMDAT copies must not describe code at a made-up
    address: each covers either this module's code or nothing (a zero pc_begin field, which
    the unwinder skips), as the linker's docstring promises."""
    flags = FLAGS["O2"]
    ld = Linker.native(libraries=CXX_LIBRARIES)
    first, _ = link_quietly(ld, host.compile("cxx_objects.cpp", flags), capfd)
    second, _ = link_quietly(ld, host.compile("cxx_more.cpp", flags), capfd)
    try:
        for m in (first, second):
            eh = m.section_address(".eh_frame")
            size = next(s.size for s in m.module.sections if s.name == ".eh_frame")
            ranges = _fde_ranges(ld.space.read(eh, size + 4), eh)
            assert ranges
            text = [(a, a + s.size) for s, a in zip(m.module.sections, m.section_addresses,
                                                    strict=True)
                    if a is not None and s.kind.name == "TEXT"]
            stray = [(hex(b), n) for b, n in ranges
                     if b != 0 and not any(lo <= b and b + n <= hi for lo, hi in text)]
            assert stray == [], f"{m.name}: FDEs outside the module's code"
    finally:
        unlink_quietly(ld, second, capfd)
        unlink_quietly(ld, first, capfd)
