"""The emulated space (unicorn) and the PowerPC arch, end to end, with cross-compiled code.

Objects are built with ``powerpc-linux-gnu-gcc -mcpu=750 -msdata=none -fno-pic -c`` (and
``powerpc-linux-gnu-as``), linked by the ordinary linker into an :class:`EmulatedSpace`, and
run there. They are checked three ways: against the same C linked into a static program
(``tests/c/ppc/static_main.c``, loaded with ``load_static`` and run in the same space),
against the bytes ``powerpc-linux-gnu-ld`` produces for the same objects at the same addresses,
and against known values. Without the cross compiler the tests skip (fail under ``CI``).
"""

from __future__ import annotations

import functools
import os
import struct

import numpy as np
import pytest

from conftest import C_DIR, run_tool
from linkload import (
    Linker,
    LinkError,
    PlacementError,
    RelocationOverflowError,
    UnsupportedError,
)
from linkload import arch as arch_registry
from linkload.arch import ppc
from linkload.formats import elf
from linkload.model import UNDEF
from linkload.space import Protection, Window
from linkload.space.emulated import EmulatedSpace, EmulationError, StaleCodeError
from linkload.trampoline import TrampolinePool

try:
    import unicorn  # noqa: F401
except ImportError:  # pragma: no cover - skipped locally, a failure under CI
    pytestmark = pytest.mark.skipif(not os.environ.get("CI"), reason="unicorn is not installed")

PPC_DIR = C_DIR / "ppc"
CFLAGS = ("-mcpu=750", "-msdata=none", "-fno-pic")
STATIC_BASE = 0x8000_4000
STATIC_LDFLAGS = ("-static", "-nostdlib", "-e", "_start",
                  f"-Wl,-N,-Ttext={STATIC_BASE:#x},--build-id=none,--no-warn-rwx-segments")
OPTIMISATIONS = ("-O0", "-O2")
ARCH = arch_registry.get("ppc")
MEM1, MEM2 = 0x8000_0000, 0x9000_0000

LI_R3 = 0x3860_0000  # li r3,0
BLR = 0x4E80_0020


def code(*words: int) -> bytes:
    return struct.pack(f">{len(words)}I", *words)


@pytest.fixture(scope="module")
def ppc_tc(toolchain):
    return toolchain("powerpc-linux-gnu-gcc", "powerpc-linux-gnu-g++", "powerpc-linux-gnu-ld",
                     common_flags=CFLAGS)


def build(tc, name: str, opt: str = "-O2"):
    return tc.compile(PPC_DIR / name, [opt])


def static_program(tc, opt: str = "-O2"):
    objects = [build(tc, "static_main.c", opt), build(tc, "calc.c", opt)]
    return tc.executable(objects, ldflags=STATIC_LDFLAGS, libs=["-lgcc"], stem=f"static{opt}")


class World:
    """A space with the static program loaded, an OSReport stand-in and a linker."""

    def __init__(self, tc, opt: str = "-O2", **space_options) -> None:
        self.space = EmulatedSpace("ppc", **space_options)
        self.static = elf.read(static_program(tc, opt))
        self.space.load_static(self.static)
        self.reports: list[str] = []
        self.space.host_function("report", self.report)
        self.linker = Linker(self.space, ARCH)

    def report(self, emu: EmulatedSpace, fmt: int, *args: int) -> int:
        """printf-like: %d takes a signed word, %s a string pointer."""
        text = emu.read_string(fmt)
        values = []
        pieces = text.split("%")
        for piece, arg in zip(pieces[1:], args, strict=False):
            values.append(emu.read_string(arg) if piece.startswith("s") else _signed(arg))
        line = text % tuple(values)
        self.reports.append(line)
        return len(line)


def _signed(word: int) -> int:
    return word - (1 << 32) if word & 0x8000_0000 else word


# -- the module behaves as the static program does ------------------------------------------------
CALLS = [
    ("calc_add", (2, 3)), ("calc_add", (-7, 4)), ("calc_fib", (15,)),
    *[("calc_switch", (i,)) for i in range(-1, 9)],
    ("calc_scaled", (5,)), ("calc_prime", (5,)), ("calc_prime", (12,)),
    *[("calc_word_length", (i,)) for i in range(4)],
    ("calc_perimeter", ()), ("calc_double", (7,)), ("calc_double", (-3,)),
    ("calc_div64", (3, 7)), ("calc_div64", (-1000, 3)),
    ("calc_report", (2,)), ("calc_report", (7,)),
    ("calc_apply", (0, 6, 7)), ("calc_apply", (1, 6, 7)), ("calc_apply", (2, 6, 7)),
    ("calc_calls", ()), ("calc_count", (5,)), ("calc_count", (-2,)),
    ("calc_many", tuple(range(1, 11))),
]


@pytest.mark.parametrize("opt", OPTIMISATIONS)
def test_module_matches_static_program(ppc_tc, opt, chunk_rows):
    world = World(ppc_tc, opt)
    module = world.linker.link(build(ppc_tc, "calc.c", opt))
    space = world.space
    for name, args in CALLS:
        static_result = space.call(space.lookup(name), *args)
        static_reports, world.reports[:] = world.reports[:], []
        assert space.call(module.address(name), *args) == static_result, (name, args)
        assert world.reports == static_reports, (name, args)
        world.reports.clear()
    assert space.call(module.address("calc_fib"), 20) == 6765
    assert space.call(module.address("calc_many"), *range(1, 11)) == sum(i * i for i in range(1, 11))


def test_module_text_is_flushed_and_protected(ppc_tc):
    world = World(ppc_tc)
    module = world.linker.link(build(ppc_tc, "calc.c"))
    space = world.space
    for start, size, protection in module.layout.segments:
        assert space.protection(module.base + start) is protection
        if protection is Protection.READ_EXECUTE:
            assert not space.is_stale(module.base + start, size)
    assert space.flushes > 0


def test_host_function_receives_a_string(ppc_tc):
    world = World(ppc_tc)
    module = world.linker.link(build(ppc_tc, "calc.c"))
    result = world.space.call(module.address("calc_report"), 3)
    assert world.reports == ["calc 3: delta"]
    assert result == len("calc 3: delta")


def test_host_function_stands_in_at_the_static_address(ppc_tc):
    world = World(ppc_tc)
    names = world.static.exports()
    address = int(world.static.symbols["value"][names["report"]])
    assert world.space.lookup("report") == address  # intercepted in place
    assert world.space.call(world.space.lookup("calc_report"), 1) == len("calc 1: beta")
    assert world.reports == ["calc 1: beta"]


# -- bytes: linkload against GNU ld ------------------------------------------------------------------
def link_both_ways(tc, tmp_path, space: EmulatedSpace, obj, **link_options):
    """Link ``obj`` with linkload into ``space`` and with powerpc-linux-gnu-ld at the same
    addresses (externals as --defsym); returns (loaded module, {section: (ours, ld's)})."""
    linker = Linker(space, ARCH)
    module = linker.link(obj, **link_options)
    sections = [(s.name, a, s.size) for s, a in zip(module.module.sections,
                                                       module.section_addresses, strict=True)
                if a is not None]
    script = tmp_path / "same-addresses.ld"
    script.write_text("SECTIONS {\n" + "".join(f"  {n} {a:#x} : {{ *({n}) }}\n"
                                               for n, a, _ in sections) + "}\n")
    symbols = module.module.symbols
    undefined = np.flatnonzero((symbols["section"] == UNDEF) & (symbols["name"] != 0))
    defsyms = [f"--defsym={n}={space.lookup(n):#x}" for n in module.module.symbol_names(undefined)]
    out = tmp_path / "reference.elf"
    run_tool([tc.ld, "-T", script, "-e", "0", "--no-warn-rwx-segments", str(obj), "-o", out,
              *defsyms])
    reference = {s.name: bytes(s.data) for s in elf.read(out).sections if s.data is not None}
    return module, {n: (space.read(a, size), reference[n]) for n, a, size in sections
                    if size and n in reference}


def kinds_space() -> EmulatedSpace:
    space = EmulatedSpace("ppc", symbols={"abs_low": 0x1000, "small_abs": 0x1234})
    space.host_function("ext_fn", lambda emu, x: x + 1)
    return space


def test_every_kind_encodes_as_gnu_ld_does(ppc_tc, tmp_path):
    obj = ppc_tc.compile(PPC_DIR / "kinds.s")
    _module, sections = link_both_ways(ppc_tc, tmp_path, kinds_space(), obj)
    assert {".text", ".text.b", ".data"} <= set(sections)
    for name, (ours, theirs) in sections.items():
        assert ours.hex() == theirs.hex(), name


@pytest.mark.parametrize("opt", OPTIMISATIONS)
def test_c_module_encodes_as_gnu_ld_does(ppc_tc, tmp_path, opt):
    world = World(ppc_tc, opt)
    _module, sections = link_both_ways(ppc_tc, tmp_path, world.space, build(ppc_tc, "calc.c", opt))
    assert ".text" in sections
    for name, (ours, theirs) in sections.items():
        if name != ".eh_frame":  # ld rewrites .eh_frame (merges CIEs)
            assert ours.hex() == theirs.hex(), name


def test_kinds_run(ppc_tc, chunk_rows):
    space = kinds_space()
    module = Linker(space, ARCH).link(ppc_tc.compile(PPC_DIR / "kinds.s"))
    word = module.address("data_word")
    run = functools.partial(_unsigned_call, space, module)
    assert run("data_address") == word
    assert run("data_address_hi") == word
    assert run("pc_relative") == word
    assert run("small_constant") == 0x1234
    assert run("call_ext", 41) == 42
    assert run("call_local") == 42
    assert (run("is_zero", 0), run("is_zero", 9)) == (1, 0)
    assert space.read_word(word + 4) == word + 4
    assert space.read_word(word + 8) == (space.lookup("ext_fn") - (word + 8)) & 0xFFFF_FFFF
    assert space.read(word + 17, 4) == (word + 8).to_bytes(4, "big")  # unaligned
    assert space.read(word + 21, 2) == b"\x12\x34"
    assert space.read(word + 24, 8) == bytes(range(1, 9))  # markers patch nothing


def _unsigned_call(space, module, name, *args):
    return space.call(module.address(name), *args) & 0xFFFF_FFFF


def test_every_supported_kind_is_exercised(ppc_tc):
    used = set()
    for obj in [ppc_tc.compile(PPC_DIR / "kinds.s"), build(ppc_tc, "calc.c")]:
        used |= set(elf.read(obj).relocations["kind"].tolist())
    assert used == set(ppc.KINDS)


@pytest.mark.parametrize("taken", [True, False])
@pytest.mark.parametrize("displacement", [-8, 0, 8])
def test_branch_prediction_bit(taken, displacement):
    field = ppc.KINDS[ppc.R_PPC_REL14_BRTAKEN if taken else ppc.R_PPC_REL14_BRNTAKEN].field
    for old in (0x4182_0000, 0x41A2_0000):  # beq, with y clear and set
        new = int(field.encode(np.array([old], np.uint64), np.array([displacement]))[0])
        assert new & 0xFFFC == displacement & 0xFFFC
        assert bool(new & ppc.BRANCH_PREDICT_BIT) == (taken != (displacement < 0))


# -- reach, veneers and overflow ---------------------------------------------------------------------
def test_far_calls_go_through_veneers(ppc_tc, chunk_rows):
    world = World(ppc_tc)
    near = world.linker.link(build(ppc_tc, "calc.c"))
    far = world.linker.link(build(ppc_tc, "calc.c"), place_near=MEM2 + 0x200_0000)
    space = world.space
    assert world.space.region_of(near.base).name == "MEM1"
    assert world.space.region_of(far.base).name == "MEM2"
    assert far.veneer_slots  # scale, report and __divdi3 live in MEM1, over 32 MiB away
    for name, args in [("calc_scaled", (4,)), ("calc_div64", (9, 4)), ("calc_report", (0,))]:
        assert space.call(far.address(name), *args) == space.call(near.address(name), *args)
    assert world.reports == ["calc 0: alpha"] * 2
    for slot in far.veneer_slots.values():
        assert space.region_of(slot).name == "MEM2"
        assert not space.is_stale(slot, ARCH.veneer.size)


def test_far_call_to_a_host_stub(ppc_tc):
    space = kinds_space()  # ext_fn is a host stub at the top of MEM1
    module = Linker(space, ARCH).link(ppc_tc.compile(PPC_DIR / "kinds.s"), place_near=MEM2 + 0x100_0000)
    assert space.region_of(module.base).name == "MEM2"
    assert space.call(module.address("call_ext"), 1) == 2
    (slot,) = module.veneer_slots.values()
    assert space.read(slot, ARCH.veneer.size) == ppc.veneer(slot, space.lookup("ext_fn"))


def test_veneer_code():
    lis, addi, mtctr, bctr = struct.unpack(">4I", ppc.veneer(MEM2, 0x8000_8000))
    assert (lis, addi) == (0x3D80_8001, 0x398C_8000)  # 0x80008000 = 0x8001 << 16 - 0x8000
    assert (mtctr, bctr) == (0x7D89_03A6, 0x4E80_0420)


OVERFLOWS = {
    "R_PPC_ADDR16": "li 3, target",
    "R_PPC_ADDR14": "cmpwi 3, 0\n\tbnea 0, target",
    "R_PPC_REL14": "cmpwi 3, 0\n\tbne 0, target",
}


@pytest.mark.parametrize("kind", sorted(OVERFLOWS))
def test_narrow_fields_overflow(ppc_tc, kind):
    source = f"\t.text\n\t.globl f\nf:\t{OVERFLOWS[kind]}\n\tblr\n"
    obj = ppc_tc.compile_text(source, f"overflow_{kind.lower()}.s")
    space = EmulatedSpace("ppc", symbols={"target": MEM1 + 0x100_0000})  # 16 MiB up
    with pytest.raises(RelocationOverflowError) as error:
        Linker(space, ARCH).link(obj)
    assert error.value.kind == kind
    assert error.value.symbol == "target"
    assert not space.reservations()  # a failed link leaves nothing behind


@pytest.mark.parametrize("kind", ["R_PPC_ADDR16", "R_PPC_ADDR14"])
def test_narrow_absolute_fields_fit_low_targets(ppc_tc, kind):
    source = f"\t.text\n\t.globl f\nf:\t{OVERFLOWS[kind]}\n\tblr\n"
    obj = ppc_tc.compile_text(source, f"overflow_{kind.lower()}.s")
    space = EmulatedSpace("ppc", symbols={"target": 0x1234 & ~3})
    module = Linker(space, ARCH).link(obj)
    if kind == "R_PPC_ADDR16":
        assert space.call(module.address("f")) == 0x1234 & ~3
    else:
        assert space.call(module.address("f"), 0) == 0  # not taken


# -- host functions, callbacks, unresolved calls -----------------------------------------------------
def test_host_function_calls_back_into_emulated_code(ppc_tc):
    world = World(ppc_tc)
    space = world.space
    seen = []

    def qsort(emu: EmulatedSpace, base: int, n: int, size: int, cmp: int) -> None:
        for i in range(1, n):  # insertion sort, comparing in emulated code
            j = i
            while j > 0 and emu.call(cmp, base + (j - 1) * size, base + j * size) > 0:
                a, b = emu.read(base + (j - 1) * size, size), emu.read(base + j * size, size)
                emu.write(base + (j - 1) * size, b)
                emu.write(base + j * size, a)
                j -= 1
            seen.append(i)

    space.host_function("qsort", qsort)
    module = world.linker.link(build(ppc_tc, "sorter.c"))
    values = [5, -3, 12, 0, 7, 7, -20, 4]
    array = space.reserve(4 * len(values), 4)
    space.write(array, struct.pack(f">{len(values)}i", *values))
    comparisons = space.call(module.address("sort_descending"), array, len(values))
    assert list(struct.unpack(f">{len(values)}i", space.read(array, 4 * len(values)))) == \
        sorted(values, reverse=True)
    assert comparisons > 0
    assert world.reports == [f"sorted {len(values)} values with {comparisons} comparisons"]
    assert seen == list(range(1, len(values)))


def test_nested_host_calls(ppc_tc):
    world = World(ppc_tc)
    space = world.space
    module = world.linker.link(build(ppc_tc, "calc.c"))

    def outer(emu: EmulatedSpace, x: int) -> int:
        # emulated -> Python -> emulated -> Python (report) -> back out
        return emu.call(module.address("calc_report"), x) * 10 + emu.call(module.address("calc_fib"), x)

    space.host_function("outer", outer)
    caller = world.linker.link(ppc_tc.compile_text(
        "extern int outer(int);\nint twice_outer(int x) { return outer(x) + outer(x + 1); }\n",
        "nested.c", ["-O2"]))
    expected = (len("calc 5: beta") * 10 + 5) + (len("calc 6: gamma") * 10 + 8)
    assert space.call(caller.address("twice_outer"), 5) == expected
    assert world.reports == ["calc 5: beta", "calc 6: gamma"]


def test_unresolved_calls_reach_the_handler_until_linked(ppc_tc, chunk_rows):
    world = World(ppc_tc)
    asked = []

    def on_unresolved(module: str, symbol: str) -> int:
        asked.append((module, symbol))
        return 7

    linker = Linker(world.space, ARCH, on_unresolved=on_unresolved)
    waiting = linker.link(build(ppc_tc, "waiting.c"))
    ask = functools.partial(world.space.call, waiting.address("ask_later"))
    assert ask(3) == 8
    assert asked == [(waiting.name, "later")]
    provider = linker.link(build(ppc_tc, "provider.c"))  # back-patches (and flushes) the call
    assert ask(3) == 301
    linker.unlink(provider)
    assert ask(4) == 8
    assert len(asked) == 2


def test_a_waiting_call_rebound_out_of_reach_goes_through_a_flushed_veneer(ppc_tc, chunk_rows):
    """The module defining a waited-for name lands over 32 MiB from the caller: re-patching
    the call routes it through the caller's veneer, written and flushed like the call."""
    world = World(ppc_tc)
    linker = Linker(world.space, ARCH, on_unresolved=lambda module, symbol: 7)
    waiting = linker.link(build(ppc_tc, "waiting.c"), place_near=MEM2 + 0x100_0000)
    assert world.space.region_of(waiting.base).name == "MEM2"
    ask = functools.partial(world.space.call, waiting.address("ask_later"))
    assert ask(3) == 8
    linker.link(build(ppc_tc, "provider.c"), at=MEM1 + 0x40_0000)
    (slot,) = waiting.veneer_slots.values()
    assert world.space.read(slot, ARCH.veneer.size) == ppc.veneer(slot, linker.lookup("later"))
    assert not world.space.is_stale(slot, ARCH.veneer.size)
    assert ask(3) == 301  # through the veneer (stale code would stop the call)


def test_cxx_objects_live_as_long_as_the_module(ppc_tc):
    world = World(ppc_tc)
    space = world.space
    exits: list[tuple[int, int, int]] = []

    def cxa_atexit(emu: EmulatedSpace, function: int, argument: int, dso: int) -> int:
        exits.append((function, argument, dso))
        return 0

    def cxa_finalize(emu: EmulatedSpace, dso: int) -> None:
        for entry in reversed([e for e in exits if e[2] == dso]):
            exits.remove(entry)
            emu.call(entry[0], entry[1])  # a destructor, run from inside a host function

    space.host_function("__cxa_atexit", cxa_atexit)
    space.host_function("__cxa_finalize", cxa_finalize)
    obj = ppc_tc.compile(PPC_DIR / "counters.cpp", ["-O2", "-fno-exceptions", "-fno-rtti"])
    module = world.linker.link(obj)
    assert world.reports == ["construct 10", "construct 1"]
    step = functools.partial(space.call, module.address("cxx_step"))
    assert (step(0, 5), step(1, 5), step(1, 1)) == (6, 20, 22)
    world.reports.clear()
    world.linker.unlink(module)
    assert world.reports == ["destruct 6", "destruct 22"]
    assert not exits


# -- the instruction cache ---------------------------------------------------------------------------
def test_running_unflushed_code_fails():
    space = EmulatedSpace("ppc")
    block = space.reserve(0x100, 32)
    space.write(block, code(LI_R3 | 7, BLR))
    assert space.is_stale(block, 8)
    with pytest.raises(StaleCodeError) as error:
        space.call(block)
    assert error.value.address == block
    space.flush(block, 4)  # whole cache lines: the blr is covered too
    assert space.call(block) == 7
    space.write(block, code(LI_R3 | 8))  # rewritten but not flushed
    with pytest.raises(StaleCodeError):
        space.call(block)
    space.flush(block, 8)
    assert space.call(block) == 8  # the new code, not unicorn's old translation
    space.write(block + 0x40, code(LI_R3 | 9, BLR))  # another line: the first stays clean
    assert space.call(block) == 8


def test_patch_without_flush_fails(ppc_tc):
    world = World(ppc_tc)
    module = world.linker.link(build(ppc_tc, "calc.c"))
    fib = module.address("calc_fib")
    space = world.space
    assert space.call(fib, 10) == 55
    before = space.read(fib + 4, 0x100)
    space.write_fields(np.array([fib + 0x100, fib]), 4, ">",
                       np.array([LI_R3 | 98, LI_R3 | 99], np.uint64))
    assert space.read(fib + 4, 0xFC) == before[:0xFC]
    assert space.is_stale(fib, 4) and space.is_stale(fib + 0x100, 4)
    assert not space.is_stale(fib + 4, 0xFC)  # only the fields are new
    with pytest.raises(StaleCodeError):
        space.call(fib, 10)
    space.flush(fib, 4)
    assert space.call(fib, 10) == 99


def test_cache_checks_can_be_turned_off():
    space = EmulatedSpace("ppc", check_cache=False)
    block = space.reserve(0x100, 32)
    space.write(block, code(LI_R3 | 5, BLR))
    assert space.call(block) == 5


def test_cache_maintenance_sequence():
    steps = ppc.cache_maintenance(0x8000_0010, 0x40)
    lines = [0x8000_0000, 0x8000_0020, 0x8000_0040]
    assert steps == ([("dcbst", a) for a in lines] + [("sync", 0)] + [("icbi", a) for a in lines]
                     + [("sync", 0), ("isync", 0)])


def test_relinking_at_the_same_address_runs_the_new_code(ppc_tc):
    space = EmulatedSpace("ppc")
    linker = Linker(space, ARCH)
    first = linker.link(ppc_tc.compile_text("int value(void) { return 1; }\n", "one.c"))
    assert space.call(first.address("value")) == 1
    base = first.base
    linker.unlink(first)
    second = linker.link(ppc_tc.compile_text("int value(void) { return 2; }\n", "two.c"))
    assert second.base == base
    assert space.call(second.address("value")) == 2


# -- trampolines -------------------------------------------------------------------------------------
def test_trampolines_carry_their_data(ppc_tc):
    space = EmulatedSpace("ppc")
    module = Linker(space, ARCH).link([build(ppc_tc, "closures.c"),
                                       ppc_tc.compile(PPC_DIR / "data_plus.s")])
    pool = TrampolinePool(space, ARCH)
    values = [(5, 1), (3, 9), (8, 2), (1, 7), (9, 9), (2, 0), (7, 4), (4, 3)]
    array = space.reserve(64, 4)
    keys = space.reserve(16, 4)
    for field, descending in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        space.write(keys, struct.pack(">ii", field, descending))
        t = pool.alloc(module.address("by_key"), module.address("current_key"), keys)
        space.write(array, struct.pack(">16i", *[v for pair in values for v in pair]))
        space.call(module.address("sort_pairs"), array, len(values), t)
        got = struct.unpack(">16i", space.read(array, 64))[field::2]
        assert list(got) == sorted((p[field] for p in values), reverse=bool(descending))
        assert space.read_word(module.address("current_key")) == keys
        assert pool.address(t) == module.address("by_key")
        pool.free(t)
    t = pool.alloc_register(module.address("data_plus"), 1000)
    assert space.call(module.address("call_through"), t, 5) == 1006  # LR survives the trampoline
    assert space.call(t, 5) == 1005
    assert space.reg("r11") == 1000
    slot = t - t % ppc.TRAMPOLINE_SLOT
    assert space.read(slot, ppc.TRAMPOLINE_SLOT) == ppc.trampoline_code(space.page_size)
    assert space.protection(t) is Protection.READ_EXECUTE
    assert not space.is_stale(t, ppc.TRAMPOLINE_SLOT)


def test_trampoline_accessors_on_a_32_bit_cpu():
    pool = TrampolinePool(EmulatedSpace("ppc"), ARCH)
    t = pool.alloc(MEM1 + 0x1000, MEM1 + 0x2000, 0x1234)
    assert (pool.address(t), pool.variable(t), pool.data(t)) == (MEM1 + 0x1000, MEM1 + 0x2000, 0x1234)


def test_generated_code_matches_the_assembler(ppc_tc):
    source = """
        .text
        lis 12, 0x80123456@ha
        addi 12, 12, 0x80123456@l
        mtctr 12
        bctr
        lis 3, 0x1234
        ori 3, 3, 0x5678
        lis 4, 0x9abc
        ori 4, 4, 0xdef0
        lis 12, 0x817fff00@ha
        addi 12, 12, 0x817fff00@l
        mtctr 12
        bctr
        mflr 0
        bcl 20, 31, $+4
        mflr 12
        mtlr 0
        lwz 0, 4088(12)
        lwz 11, 4096(12)
        lwz 12, 4092(12)
        mtctr 0
        stw 11, 0(12)
        bctr
        trap
        trap
        li 4, 0
        lis 5, 0x80001234@ha
        addi 5, 5, 0x80001234@l
        lis 12, 0x80008888@ha
        addi 12, 12, 0x80008888@l
        mtctr 12
        bctr
        trap
    """
    obj = elf.read(ppc_tc.compile_text(source, "generated.s"))
    assembled = bytes(next(s for s in obj.sections if s.name == ".text").data)
    ours = (ppc.veneer(0, 0x8012_3456) + ppc.unresolved_stub(0x1234_5678_9ABC_DEF0, 0x817F_FF00)
            + ppc.trampoline_code(4096) + ppc.atexit_stub(0, 0x8000_1234, 0x8000_8888))
    assert ours.hex() == assembled.hex()


# -- errors ------------------------------------------------------------------------------------------
def test_calling_unmapped_memory_raises():
    space = EmulatedSpace("ppc")
    with pytest.raises(LinkError) as error:
        space.call(0x1000)
    assert isinstance(error.value, EmulationError)
    assert error.value.address == 0x1000
    assert "0x1000" in str(error.value)


def test_bad_data_access_names_the_address():
    space = EmulatedSpace("ppc")
    block = space.reserve(0x100, 32)
    space.write(block, code(0x8063_0000, BLR))  # lwz r3,0(r3)
    space.flush(block, 8)
    with pytest.raises(EmulationError, match="read of 0x4000"):
        space.call(block, 0x4000)


def test_endless_loop_times_out(ppc_tc):
    world = World(ppc_tc, timeout=0.2)
    with pytest.raises(EmulationError, match="did not return"):
        world.space.call(world.space.entry)  # _start spins forever
    limited = World(ppc_tc, max_instructions=10_000)
    with pytest.raises(EmulationError, match="10000 instructions"):
        limited.space.call(limited.space.entry)
    assert limited.space.call(limited.space.lookup("calc_add"), 1, 2) == 3  # still usable


UNSUPPORTED = [
    ("-msdata=sysv", "int small; int get(void) { return small; }", "-msdata=none"),
    ("-fno-pic", "__thread int t; int get(void) { return t; }", "thread-local"),
    ("-fPIC", "extern int g(void); int get(void) { return g() + 1; }", "-fno-pic"),
    ("-mlongcall", "extern int g(void); int get(void) { return g() + 1; }", "-mlongcall"),
]


@pytest.mark.parametrize("flag,source,hint", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_code_is_refused_with_a_hint(ppc_tc, flag, source, hint):
    obj = ppc_tc.compile_text(source, f"unsupported{flag}.c", ["-O2", flag])
    space = EmulatedSpace("ppc", symbols={"g": MEM1 + 0x100})
    with pytest.raises(UnsupportedError, match=hint):
        Linker(space, ARCH).link(obj)


# -- memory and protection ---------------------------------------------------------------------------
def test_reservations_honour_windows_regions_and_addresses():
    space = EmulatedSpace("ppc")
    assert [(r.name, r.base, r.size) for r in space.regions] == [
        ("MEM1", MEM1, 24 << 20), ("MEM2", MEM2, 64 << 20)]
    a = space.reserve(0x1000, 0x1000)
    assert a == MEM1
    b = space.reserve(0x100, 0x1000, region="MEM2")
    assert b == MEM2
    c = space.reserve(0x100, 16, Window(MEM1 + 0x10_0000, MEM1 + 0x20_0000, MEM1 + 0x18_0000))
    assert MEM1 + 0x10_0000 <= c < MEM1 + 0x20_0000
    d = space.reserve(0x20, 1, address=MEM2 + 0x1234)
    assert d == MEM2 + 0x1234
    with pytest.raises(PlacementError):
        space.reserve(0x20, 1, address=MEM2 + 0x1240)  # taken
    with pytest.raises(PlacementError):
        space.reserve(100 << 20, 16)  # bigger than any region
    space.write(a, b"\xff" * 16)
    space.release(a, 0x1000)
    assert space.reserve(0x800, 16) == a
    assert space.read(a, 16) == bytes(16)  # fresh memory reads as zeros
    with pytest.raises(LinkError):
        space.release(a + 4, 16)
    with pytest.raises(LinkError):
        space.write(0x1000, b"x")  # not memory of this space


def test_static_module_outside_memory_is_refused(ppc_tc, tmp_path):
    exe = ppc_tc.executable([build(ppc_tc, "static_main.c")],
                            ldflags=("-static", "-nostdlib", "-e", "_start",
                                     "-Wl,-N,-Ttext=0x10000000,--no-warn-rwx-segments"),
                            stem="static-low")
    with pytest.raises(LinkError, match="outside"):
        EmulatedSpace("ppc").load_static(elf.read(exe))


def test_protection_is_recorded_and_optionally_enforced():
    for enforce in (False, True):
        space = EmulatedSpace("ppc", enforce_protection=enforce)
        page = space.reserve(0x2000, 0x1000)
        space.write(page, code(0x9083_0000, BLR))  # stw r4,0(r3)
        space.flush(page, 8)
        space.protect(page, 0x1000, Protection.READ_EXECUTE)
        space.protect(page + 0x1000, 0x1000, Protection.READ)
        assert space.protection(page) is Protection.READ_EXECUTE
        space.write(page + 0x1000, b"\0\0\0\1")  # the linker may always write
        if enforce:
            with pytest.raises(EmulationError, match="protected write"):
                space.call(page, page + 0x1000, 5)
        else:
            space.call(page, page + 0x1000, 5)
            assert space.read_word(page + 0x1000) == 5


def test_linker_emulated_uses_this_space(ppc_tc):
    linker = Linker.emulated("ppc", static=static_program(ppc_tc))
    assert isinstance(linker.space, EmulatedSpace)
    module = linker.link(build(ppc_tc, "calc.c"))
    assert module.call("calc_scaled", 2) == 1006
