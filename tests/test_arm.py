"""The ARM CPU (arch/arm.py) end to end on an emulated Cortex-M3, with cross-compiled code.

Objects are built with ``arm-none-eabi-gcc -mcpu=cortex-m3 -mthumb`` (and the assembler),
linked by the ordinary linker into an :class:`EmulatedSpace` and run there. They are checked
three ways, as the PowerPC tests are: against the same C linked into a static firmware
(``tests/c/ppc/static_main.c`` and ``calc.c``, portable C shared with the PowerPC tests) run
in the same space, against the bytes ``arm-none-eabi-ld`` produces for the same objects at
the same addresses, and against known values. Without the cross toolchain the tests skip
(fail under ``CI``).
"""

from __future__ import annotations

import functools
import os
import struct

import numpy as np
import pytest

from conftest import C_DIR, run_tool
from linkload import Linker, LinkError, RelocationOverflowError, UnsupportedError
from linkload import arch as arch_registry
from linkload.arch import arm
from linkload.formats import elf
from linkload.model import UNDEF
from linkload.space import Protection
from linkload.space.emulated import EmulatedSpace, StaleCodeError
from linkload.trampoline import TrampolinePool

try:
    import unicorn  # noqa: F401
except ImportError:  # pragma: no cover - skipped locally, a failure under CI
    pytestmark = pytest.mark.skipif(not os.environ.get("CI"), reason="unicorn is not installed")

ARM_DIR, PORTABLE_DIR = C_DIR / "arm", C_DIR / "ppc"
CPU_FLAGS = ("-mcpu=cortex-m3", "-mthumb")
FLASH, SRAM = 0x0800_0000, 0x2000_0000
FIRMWARE_LDFLAGS = (*CPU_FLAGS, "-static", "-nostdlib", "-e", "_start",
                    f"-Wl,-Ttext={FLASH:#x},-Tdata={SRAM:#x},--build-id=none,--no-warn-rwx-segments")
ARCH = arch_registry.get("cortex-m3")
EXT_DATA = FLASH + 0x8000  # a firmware variable, within reach of modules placed in flash


@pytest.fixture(scope="module")
def arm_tc(toolchain):
    return toolchain("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-ld",
                     common_flags=CPU_FLAGS)


def firmware(tc, opt: str = "-O2"):
    """The static program: static_main.c and calc.c, linked at flash, data in SRAM."""
    objects = [tc.compile(PORTABLE_DIR / "static_main.c", [opt]),
               tc.compile(PORTABLE_DIR / "calc.c", [opt])]
    return tc.executable(objects, ldflags=FIRMWARE_LDFLAGS, libs=["-lgcc"], stem=f"firmware{opt}")


def signed(word: int) -> int:
    return word - (1 << 32) if word & 0x8000_0000 else word


class World:
    """A Cortex-M3 with the firmware loaded, a report() stand-in and a linker."""

    def __init__(self, tc, opt: str = "-O2", **space_options) -> None:
        self.linker = Linker.emulated("cortex-m3", static=firmware(tc, opt), **space_options)
        self.space = self.linker.space
        self.reports: list[str] = []
        self.linker.host_function("report", self.report)

    def report(self, emu: EmulatedSpace, fmt: int, *args: int) -> int:
        """printf-like: %d takes a signed word, %s a string pointer."""
        text = emu.read_string(fmt)
        values = [emu.read_string(arg) if piece.startswith("s") else signed(arg)
                  for piece, arg in zip(text.split("%")[1:], args, strict=False)]
        line = text % tuple(values)
        self.reports.append(line)
        return len(line)


# -- the module behaves as the firmware's own copy does ------------------------------------------
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


@pytest.mark.parametrize("flags", [("-O0",), ("-O2",), ("-O2", "-fpic")], ids=" ".join)
def test_module_matches_the_firmware(arm_tc, flags, chunk_rows):
    world = World(arm_tc, flags[0])
    module = world.linker.link(arm_tc.compile(PORTABLE_DIR / "calc.c", flags))
    space = world.space
    for name, args in CALLS:
        firmware_result = space.call(space.lookup(name), *args)
        firmware_reports, world.reports[:] = world.reports[:], []
        assert space.call(module.address(name), *args) == firmware_result, (name, args)
        assert world.reports == firmware_reports, (name, args)
        world.reports.clear()
    assert module.call("calc_fib", 20) == 6765


def test_thumb_function_addresses_are_odd(arm_tc):
    world = World(arm_tc)
    module = world.linker.link(arm_tc.compile(PORTABLE_DIR / "calc.c", ["-O2"]))
    assert module.address("calc_add") & 1
    table = module.address("words")  # pointers to strings: as they are
    assert all(world.space.read_word(table + 4 * i) % 4 == 0 for i in range(4))
    assert world.space.lookup("scale") & 1  # the firmware's own, from its symbols
    assert world.space.lookup("report") & 1  # a host function: entered in Thumb state


# -- bytes: linkload against GNU ld ------------------------------------------------------------------
def link_both_ways(tc, tmp_path, space: EmulatedSpace, obj):
    """Link ``obj`` with linkload into ``space`` and with arm-none-eabi-ld at the same
    addresses; returns (loaded module, {section: (ours, ld's)}, ld's GOT origin). Outside
    names at odd addresses are Thumb functions for ld too (typed, so that its BL/BLX choice
    sees their state); the others are --defsym. ld's GOT starts with three reserved words, so
    its first entry is placed where linkload's GOT starts."""
    module = Linker(space, ARCH).link(obj)
    sections = [(s.name, a, s.size) for s, a in zip(module.module.sections,
                                                       module.section_addresses, strict=True)
                if a is not None]
    lines = [f"  {n} {a:#x} : {{ *({n}) }}" for n, a, _ in sections]
    lines.append(f"  .got {module.got - 12:#x} : {{ *(.got.plt) *(.got) }}")
    symbols = module.module.symbols
    undefined = np.flatnonzero((symbols["section"] == UNDEF) & (symbols["name"] != 0))
    defsyms, functions = [], [".syntax unified", ".thumb"]
    for name in module.module.symbol_names(undefined):
        if name == "_GLOBAL_OFFSET_TABLE_":
            continue  # each linker defines its own
        address = space.lookup(name)
        if address is None:  # named by markers only (linkload needs no definition, ld does)
            defsyms.append(f"--defsym={name}=0")
        elif address & 1:
            functions += [f'.section .f_{name},"ax",%progbits', f".globl {name}",
                          f".type {name}, %function", ".thumb_func", f"{name}: bx lr"]
            lines.append(f"  .f_{name} {address - 1:#x} : {{ *(.f_{name}) }}")
        else:
            defsyms.append(f"--defsym={name}={address:#x}")
    script = tmp_path / "same-addresses.ld"
    script.write_text("SECTIONS {\n" + "\n".join(lines) + "\n}\n")
    outside_source, outside = tmp_path / "outside.s", tmp_path / "outside.o"
    outside_source.write_text("\n".join(functions) + "\n")
    # assembled for no particular profile, so that ld merges it with M and A objects alike
    run_tool(["arm-none-eabi-as", outside_source, "-o", outside])
    out = tmp_path / "reference.elf"
    run_tool([tc.ld, "-T", script, "-e", "0", "--no-warn-rwx-segments", str(obj), str(outside),
              "-o", out, *defsyms])
    reference = elf.read(out)
    contents = {s.name: bytes(s.data) for s in reference.sections if s.data is not None}
    values = dict(zip(reference.names, reference.symbols["value"].tolist(), strict=True))
    got_origin = values.get("_GLOBAL_OFFSET_TABLE_")  # (a local symbol of the executable)
    return module, {n: (space.read(a, size), contents[n]) for n, a, size in sections
                    if size and n in contents}, got_origin


def kinds_space() -> EmulatedSpace:
    space = EmulatedSpace("cortex-m3", symbols={"ext_data": EXT_DATA})
    space.host_function("ext_fn", lambda emu, x: x + 1)
    return space


@pytest.mark.parametrize("source", ["kinds.s", "kinds_a32.s"])
def test_every_kind_encodes_as_gnu_ld_does(arm_tc, tmp_path, source):
    obj = arm_tc.compile(ARM_DIR / source)
    _module, sections, _got = link_both_ways(arm_tc, tmp_path, kinds_space(), obj)
    assert {".text", ".text.b"} <= set(sections)
    for name, (ours, theirs) in sections.items():
        assert ours.hex() == theirs.hex(), name


def test_got_kinds_encode_as_gnu_ld_does(arm_tc, tmp_path):
    """GOT entries and GOT_PREL fields are ld's bytes; the fields counted from the GOT
    differ by exactly where each linker puts the GOT's origin (ld: three reserved words
    before the first entry; linkload: the first entry, which -msingle-pic-base code wants in
    its PIC register)."""
    module, sections, ld_origin = link_both_ways(arm_tc, tmp_path, kinds_space(),
                                                 arm_tc.compile(ARM_DIR / "got.s"))
    assert ld_origin == module.got - 12
    ours, theirs = (np.frombuffer(b, "<u4").astype(np.int64) for b in sections[".text"])
    text = module.section_address(".text")
    fields = {name: (module.address(name) & ~1) - text for name in
              ("got_base", "through_got", "through_got_pc", "local_offset")}
    # the literal of each function, after its code
    base_prel, got_brel = (fields["got_base"] + 8) // 4, (fields["through_got"] + 12) // 4
    got_prel, gotoff = (fields["through_got_pc"] + 8) // 4, (fields["local_offset"] + 12) // 4
    origin_shift = 12
    assert ours[base_prel] == theirs[base_prel] + origin_shift  # GOT - P
    assert ours[got_brel] == theirs[got_brel] - origin_shift  # G - GOT
    assert ours[gotoff] == theirs[gotoff] - origin_shift  # S - GOT
    assert ours[got_prel] == theirs[got_prel]  # G - P
    others = np.ones(len(ours), bool)
    others[[base_prel, got_brel, gotoff]] = False
    assert (ours[others] == theirs[others]).all()
    assert module.space.read_word(module.got) == EXT_DATA
    run = functools.partial(_unsigned_call, module.space, module)
    assert run("got_base") == module.got
    assert run("through_got") == run("through_got_pc") == EXT_DATA
    assert run("local_offset") == module.section_address(".data")


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_c_module_encodes_as_gnu_ld_does(arm_tc, tmp_path, opt):
    world = World(arm_tc, opt)
    _module, sections, _got = link_both_ways(arm_tc, tmp_path, world.space,
                                             arm_tc.compile(PORTABLE_DIR / "calc.c", [opt]))
    assert ".text" in sections
    for name, (ours, theirs) in sections.items():
        assert ours.hex() == theirs.hex(), name


def _unsigned_call(space, module, name, *args):
    return space.call(module.address(name), *args) & 0xFFFF_FFFF


def test_kinds_run(arm_tc, chunk_rows):
    space = kinds_space()
    module = Linker(space, ARCH).link(arm_tc.compile(ARM_DIR / "kinds.s"))
    word = module.address("data_word")
    run = functools.partial(_unsigned_call, space, module)
    assert run("data_address") == run("data_address_pc") == word
    assert run("function_address") == module.address("forty_one")
    assert module.address("forty_one") & 1  # a Thumb function
    assert run("call_ext", 41) == 42 and run("tail_ext", 9) == 10
    assert run("call_local") == 42
    assert (run("is_zero", 0), run("is_zero", 1), run("is_zero", 7)) == (1, 0, 0)
    assert run("literal_word") == 0xC0FF_EE42
    assert run("literal_byte") == 0x99  # an odd address, from the word-aligned PC
    assert run("literal_short") == 0x5EED_1234
    words = struct.unpack("<7I", space.read(word, 28))
    assert words[0] == word and words[3] == word
    assert words[1] == module.address("forty_one")
    assert words[2] == (space.lookup("ext_fn") - (word + 8)) & 0xFFFF_FFFF
    assert words[4] == EXT_DATA - (word + 16)
    assert words[5] == 0x8000_0000 | ((module.address("forty_one") - (word + 20)) & 0x7FFF_FFFF)
    assert words[6] == 0x0102_0304  # markers patch nothing, even naming nobody's symbol


def test_every_supported_kind_is_exercised(arm_tc):
    used = set()
    for obj in [*(arm_tc.compile(ARM_DIR / s) for s in ("kinds.s", "kinds_a32.s", "got.s")),
                arm_tc.compile(PORTABLE_DIR / "calc.c", ["-O2"])]:
        used |= set(elf.read(obj).relocations["kind"].tolist())
    assert used == set(arm.KINDS)


# -- fields, encoded and decoded -----------------------------------------------------------------
@pytest.mark.parametrize("field,containers,name", [
    (arm.THUMB_CALL, (0xF800_F000, 0xE800_F000), "bl/blx"),
    (arm.THUMB_JUMP24, (0xB800_F000,), "b.w"),
    (arm.THUMB_JUMP19, (0x8000_F000 | (3 << 6),), "bcc.w"),
    (arm.THUMB_MOVW, (0x0000_F240 | (5 << 24),), "movw"),
    (arm.ARM_MOVW, (0xE300_0000 | (5 << 12),), "a32 movw"),
    (arm.ARM_CALL, (0xEB00_0000,), "a32 bl"),
    (arm.THUMB_PC12, (0x0000_F85F | (3 << 28),), "ldr.w pc"),
])
def test_scattered_fields_round_trip(field, containers, name):
    """Every value a field takes decodes back from its encoding, and the instruction's own
    bits (opcode, registers, condition) are kept."""
    low, high = field.bounds
    step = 2 if isinstance(field, (arm.ThumbBranch24, arm.ThumbBranch20)) else 1
    values = np.unique(np.concatenate([np.arange(low, low + 64, step), np.arange(-64, 64, step),
                                       np.arange(high - 64, high, step)]))
    if field is arm.THUMB_CALL or field is arm.ARM_CALL:
        values = values | 1  # Thumb targets: BL (and A32 BLX) keep the value as it is
    if isinstance(field, (arm.ThumbMove16, arm.ArmMove16)):
        values = np.arange(-0x8000, 0x8000, 37)
    for container in containers:
        c = np.full(len(values), container, np.uint64)
        encoded = field.encode(c, values)
        decoded = field.decode(encoded)
        expect = values & ~1 if field in (arm.THUMB_CALL, arm.THUMB_JUMP24, arm.THUMB_JUMP19,
                                          arm.ARM_CALL) else values
        if field is arm.ARM_CALL:
            expect = values & ~1  # BLX: bit 1 in H, bit 0 the Thumb bit
        assert (decoded == expect).all(), name
        kept = np.uint64(~field.mask & 0xFFFF_FFFF)
        if field is not arm.ARM_CALL:  # (A32 BL becomes BLX: its condition changes)
            assert ((encoded & kept) == (np.uint64(container) & kept)).all(), name


def test_thumb_call_to_a32_code_becomes_blx_rounded_up():
    bl = np.array([0xF800_F000], np.uint64)
    # A32 target (even), place at 2 mod 4: the offset counts from the word-aligned PC
    blx = int(arm.THUMB_CALL.encode(bl, np.array([0x102]))[0])
    assert blx >> 16 & 0x1000 == 0  # BLX
    assert int(arm.THUMB_CALL.decode(np.array([blx], np.uint64))[0]) == 0x104
    thumb = int(arm.THUMB_CALL.encode(np.array([blx], np.uint64), np.array([0x103]))[0])
    assert thumb >> 16 & 0x1000  # back to BL for a Thumb target


# -- the values of a linked program's fields (the locator) ------------------------------------------
def _moves(rows):
    """(kind, place, symbol, target, containers) of linked movw/movt fields: rows of (kind,
    place, symbol row, symbol value, register, the value S+A or S+A-P ld wrote)."""
    kind, place, symbol, target, register, value = (np.array(c, np.int64) for c in zip(*rows, strict=True))
    thumb = np.isin(kind, (arm.R_ARM_THM_MOVW_ABS_NC, arm.R_ARM_THM_MOVT_ABS,
                           arm.R_ARM_THM_MOVW_PREL_NC, arm.R_ARM_THM_MOVT_PREL))
    blank = np.where(thumb, 0xF240 | (register << 24), 0xE300_0000 | (register << 12)).astype(np.uint64)
    containers = np.zeros(len(kind), np.uint64)
    for k in set(kind.tolist()):
        sel = kind == k
        field = arm.KINDS[k].field
        containers[sel] = field.encode(blank[sel], value[sel] >> field.shift)
    return kind, place, symbol, target, containers


def test_movw_movt_halves_of_a_linked_program_give_their_value_back_together():
    lo, hi = arm.R_ARM_THM_MOVW_ABS_NC, arm.R_ARM_THM_MOVT_ABS
    sym = 0x2000_7FF8  # + 0x10: the low half carries into the high half
    rows = [(lo, 0x100, 5, sym, 4, sym + 0x10),      # movw r4 (shared by the two movts of r4)
            (lo, 0x104, 5, sym, 3, sym + 0x20),      # movw r3, interleaved
            (hi, 0x108, 5, sym, 3, sym + 0x20),      # movt r3
            (hi, 0x10C, 5, sym, 4, sym + 0x10),      # movt r4
            (hi, 0x180, 5, sym, 4, sym + 0x10),      # movt r4 again, on another path
            (lo, 0x190, 6, 0x0800_0000, 4, 0x0800_0000 - 8),  # another symbol into r4, alone
            ]
    values, found = arm.linked_values(*_moves(rows))
    assert found.all()
    assert values.tolist() == [sym + 0x10, sym + 0x20, sym + 0x20, sym + 0x10, sym + 0x10,
                               0x0800_0000 - 8]  # (a low half alone: the addend nearest 0)
    # a movt whose movw is not there does not give its value back
    _values, found = arm.linked_values(*_moves(rows[2:3] + rows[:1]))
    assert found.tolist() == [False, True]


def test_pc_relative_and_a32_halves_count_each_from_its_own_place():
    sym = 0x0801_2340
    rows = [(arm.R_ARM_THM_MOVW_PREL_NC, 0x0800_FFF0, 1, sym, 2, sym + 4 - 0x0800_FFF0),
            (arm.R_ARM_THM_MOVT_PREL, 0x0801_0010, 1, sym, 2, sym + 4 - 0x0801_0010),
            (arm.R_ARM_MOVW_ABS_NC, 0x200, 1, sym, 7, sym + 4),
            (arm.R_ARM_MOVT_ABS, 0x204, 1, sym, 7, sym + 4)]
    values, found = arm.linked_values(*_moves(rows))
    assert found.all() and values.tolist() == [sym + 4] * 4


def test_a_linked_call_tells_its_targets_state():
    bl, place = np.array([0xF800_F000], np.uint64), 0x1000
    to_thumb = arm.THUMB_CALL.encode(bl, np.array([0x2001 - 4 - place]))  # BL: Thumb (odd)
    to_a32 = arm.THUMB_CALL.encode(bl, np.array([0x3000 - 4 - place]))  # BLX: A32 (even)
    a32_blx = arm.ARM_CALL.encode(np.array([0xEB00_0000], np.uint64), np.array([0x2001 - 8 - place]))
    kind = np.array([arm.R_ARM_THM_CALL, arm.R_ARM_THM_CALL, arm.R_ARM_CALL])
    values, found = arm.linked_values(kind, np.full(3, place), np.zeros(3), np.zeros(3),
                                      np.concatenate([to_thumb, to_a32, a32_blx]))
    assert found.all() and values.tolist() == [0x2001 - 4, 0x3000 - 4, 0x2001 - 8]


# -- reach, veneers and overflow ---------------------------------------------------------------------
def test_far_branches_go_through_veneers(arm_tc, chunk_rows):
    space = kinds_space()  # ext_fn: a host stub at the top of flash
    module = Linker(space, ARCH, place_near=SRAM).link(arm_tc.compile(ARM_DIR / "far.s"))
    assert space.region_of(module.base).name == "SRAM"
    (slot,) = module.veneer_slots.values()  # one veneer, shared by the three branches
    assert space.region_of(slot).name == "SRAM"
    assert space.read(slot, ARCH.veneer.size) == arm.veneer(slot, space.lookup("ext_fn"))
    assert not space.is_stale(slot, ARCH.veneer.size)
    run = functools.partial(_unsigned_call, space, module)
    assert run("far_call", 1) == 2 and run("far_tail", 5) == 6
    assert run("far_if_zero", 7, 0) == 8 and run("far_if_zero", 7, 1) == 0


def test_far_calls_into_the_firmware(arm_tc):
    world = World(arm_tc)
    near = world.linker.link(arm_tc.compile(PORTABLE_DIR / "calc.c", ["-O2"]))
    far = world.linker.link(arm_tc.compile(PORTABLE_DIR / "calc.c", ["-O2"]), place_near=SRAM)
    assert world.space.region_of(far.base).name == "SRAM" and far.veneer_slots
    for name, args in [("calc_scaled", (4,)), ("calc_div64", (9, 4)), ("calc_report", (0,)),
                       ("calc_double", (5,))]:
        assert far.call(name, *args) == near.call(name, *args)
    assert world.reports == ["calc 0: alpha"] * 2


def test_a_short_branch_out_of_reach_is_an_error_naming_it(arm_tc):
    obj = arm_tc.compile_text(".syntax unified\n.thumb\n.globl f\n.type f, %function\n"
                              "f: b.n target\n", "short.s", ["-mcpu=cortex-m3"])
    space = EmulatedSpace("cortex-m3", symbols={"target": FLASH + 0x10_0001})
    with pytest.raises(RelocationOverflowError) as error:
        Linker(space, ARCH).link(obj)
    assert (error.value.kind, error.value.symbol) == ("R_ARM_THM_JUMP11", "target")
    assert not space.reservations()


def test_thread_locals_are_refused_with_a_reason(arm_tc):
    obj = arm_tc.compile_text("__thread int t; int get(void) { return t; }\n", "tls.c", ["-O2"])
    with pytest.raises(UnsupportedError, match="thread-local"):
        Linker(EmulatedSpace("cortex-m3"), ARCH).link(obj)


# -- host functions, callbacks, unresolved calls, C++ --------------------------------------------
def test_host_function_calls_back_into_a_thumb_comparator(arm_tc):
    world = World(arm_tc)
    space = world.space

    def qsort(emu: EmulatedSpace, base: int, n: int, size: int, cmp: int) -> None:
        assert cmp & 1  # a pointer to a Thumb function
        for i in range(1, n):
            j = i
            while j > 0 and emu.call(cmp, base + (j - 1) * size, base + j * size) > 0:
                a, b = emu.read(base + (j - 1) * size, size), emu.read(base + j * size, size)
                emu.write(base + (j - 1) * size, b)
                emu.write(base + j * size, a)
                j -= 1

    space.host_function("qsort", qsort)
    module = world.linker.link(arm_tc.compile(PORTABLE_DIR / "sorter.c", ["-O2"]))
    values = [5, -3, 12, 0, 7, 7, -20, 4]
    array = space.reserve(4 * len(values), 4)
    space.write(array, struct.pack(f"<{len(values)}i", *values))
    comparisons = module.call("sort_descending", array, len(values))
    assert list(struct.unpack(f"<{len(values)}i", space.read(array, 4 * len(values)))) == \
        sorted(values, reverse=True)
    assert world.reports == [f"sorted {len(values)} values with {comparisons} comparisons"]


def test_unresolved_calls_wait_unlink_and_reload(arm_tc, chunk_rows):
    world = World(arm_tc)
    asked = []
    linker = Linker(world.space, ARCH, on_unresolved=lambda m, s: asked.append(s) or 7)
    waiting = linker.link(arm_tc.compile(PORTABLE_DIR / "waiting.c", ["-O2"]))
    assert waiting.call("ask_later", 3) == 8 and asked == ["later"]
    provider = linker.link(arm_tc.compile(PORTABLE_DIR / "provider.c", ["-O2"]))
    assert waiting.call("ask_later", 3) == 301
    provider = linker.reload(provider, arm_tc.compile_text(
        "int later(int x) { return x * 1000; }\n", "provider2.c", ["-O2"]))
    assert waiting.call("ask_later", 3) == 3001
    linker.unlink(provider)
    assert waiting.call("ask_later", 4) == 8 and asked == ["later", "later"]


def test_a_module_with_its_own_unresolved_gets_the_calls(arm_tc):
    world = World(arm_tc)
    module = world.linker.link(arm_tc.compile_text(
        "extern int later(int);\nint _unresolved(void) { return -5; }\n"
        "int ask(int x) { return later(x) * 2; }\n", "own_unresolved.c", ["-O2"]))
    assert module.call("ask", 3) == -10  # later() reaches _unresolved, a Thumb function
    provider = world.linker.link(arm_tc.compile(PORTABLE_DIR / "provider.c", ["-O2"]))
    assert module.call("ask", 3) == 600
    world.linker.unlink(provider)
    assert module.call("ask", 3) == -10


def test_a_waiting_call_rebound_out_of_reach_goes_through_a_veneer(arm_tc):
    world = World(arm_tc)
    linker = Linker(world.space, ARCH, on_unresolved=lambda module, symbol: 7)
    waiting = linker.link(arm_tc.compile(PORTABLE_DIR / "waiting.c", ["-O2"]), place_near=SRAM)
    assert waiting.call("ask_later", 3) == 8
    linker.link(arm_tc.compile(PORTABLE_DIR / "provider.c", ["-O2"]), place_near=FLASH)
    (slot,) = waiting.veneer_slots.values()
    assert world.space.read(slot, ARCH.veneer.size) == arm.veneer(slot, linker.lookup("later"))
    assert waiting.call("ask_later", 3) == 301


def test_cxx_objects_live_as_long_as_the_module(arm_tc):
    world = World(arm_tc)
    exits: list[tuple[int, int, int]] = []

    def aeabi_atexit(emu, obj: int, destructor: int, dso: int) -> int:
        exits.append((destructor, obj, dso))
        return 0

    def cxa_finalize(emu, dso: int) -> None:
        for entry in reversed([e for e in exits if e[2] == dso]):
            exits.remove(entry)
            emu.call(entry[0], entry[1])

    world.linker.host_function("__aeabi_atexit", aeabi_atexit)
    world.linker.host_function("__cxa_finalize", cxa_finalize)
    obj = arm_tc.compile(PORTABLE_DIR / "counters.cpp", ["-O2", "-fno-exceptions", "-fno-rtti"])
    module = world.linker.link(obj)
    assert world.reports == ["construct 10", "construct 1"]
    step = functools.partial(module.call, "cxx_step")
    assert (step(0, 5), step(1, 5), step(1, 1)) == (6, 20, 22)
    world.reports.clear()
    world.linker.unlink(module)
    assert world.reports == ["destruct 6", "destruct 22"] and not exits


# -- trampolines, generated code, the instruction cache -------------------------------------------
def test_trampolines_carry_their_data(arm_tc):
    space = EmulatedSpace("cortex-m3")
    module = Linker(space, ARCH).link([arm_tc.compile(PORTABLE_DIR / "closures.c", ["-O2"]),
                                       arm_tc.compile(ARM_DIR / "data_plus.s")])
    pool = TrampolinePool(space, ARCH)
    values = [(5, 1), (3, 9), (8, 2), (1, 7), (9, 9), (2, 0), (7, 4), (4, 3)]
    array, keys = space.reserve(64, 4), space.reserve(16, 4)
    for field, descending in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        space.write(keys, struct.pack("<ii", field, descending))
        t = pool.alloc(module.address("by_key"), module.address("current_key"), keys)
        assert t & 1  # Thumb code
        space.write(array, struct.pack("<16i", *[v for pair in values for v in pair]))
        module.call("sort_pairs", array, len(values), t)
        got = struct.unpack("<16i", space.read(array, 64))[field::2]
        assert list(got) == sorted((p[field] for p in values), reverse=bool(descending))
        assert space.read_word(module.address("current_key")) == keys
        assert pool.address(t) == module.address("by_key")
        pool.free(t)
    t = pool.alloc_register(module.address("data_plus"), 1000)
    assert pool.register == "ip"
    assert module.call("call_through", t, 5) == 1006  # lr survives the trampoline
    assert space.call(t, 5) == 1005 and space.reg("ip") == 1000
    slot = t & ~1
    assert space.read(slot - slot % arm.TRAMPOLINE_SLOT, arm.TRAMPOLINE_SLOT) == \
        arm.trampoline_code(space.page_size)
    assert space.protection(t) is Protection.READ_EXECUTE
    assert not pool.is_trampoline(slot)  # without its Thumb bit: not a code address


def test_generated_code_matches_the_assembler(arm_tc):
    source = """
        .syntax unified
        .thumb
        .text
        ldr.w   pc, [pc, #0]
        .word   0x20012345
        ldr.w   r0, [pc, #8]
        ldr.w   r1, [pc, #8]
        ldr.w   pc, [pc, #8]
        .word   0x9abcdef0, 0x12345678, 0x083ffc81
        mov.w   r1, #0
        ldr.w   r2, [pc, #4]
        ldr.w   pc, [pc, #4]
        .word   0x20001234, 0x08008889
        push    {r0, r1}
        ldr.w   ip, [pc, #28]
        add     ip, pc
        ldr.w   r0, [ip, #4]
        ldr.w   r1, [ip, #8]
        str     r1, [r0]
        ldr.w   r0, [ip]
        mov     ip, r1
        ldr     r1, [sp, #4]
        str     r0, [sp, #4]
        pop     {r0, pc}
        nop
        .word   1024 - 10
        udf     #0
        udf     #0
        push.w  {r9, lr}
        ldr.w   ip, [pc, #16]
        add     ip, pc
        ldr.w   r9, [ip, #8]
        ldr.w   ip, [ip]
        blx     ip
        pop.w   {r9, pc}
        .word   2048 - 12
        udf     #0
        udf     #0
        udf     #0
        udf     #0
        udf     #0
        udf     #0
        ldr.w   ip, [pc, #8]
        add     ip, sl
        ldr.w   ip, [ip, #4]
        bx      ip
        .word   0x34
    """
    obj = elf.read(arm_tc.compile_text(source, "generated.s"))
    assembled = bytes(next(s for s in obj.sections if s.name == ".text").data)
    ours = (arm.veneer(0, 0x2001_2345) + arm.unresolved_stub(0x1234_5678_9ABC_DEF0, 0x083F_FC80)
            + arm.atexit_stub(0, 0x2000_1234, 0x0800_8888) + arm.trampoline_code(1024)
            + arm.calling_trampoline_code(2048, "r9") + arm.import_thunk("r10", 0x34))
    assert ours.hex() == assembled.hex()


def test_a_calling_trampoline_sets_the_base_register_and_gives_it_back(arm_tc):
    """The callbacks of NXFLAT programs: the function runs with r10 = the data, and its
    caller gets its own r10 back (the register is callee-saved for it)."""
    space = EmulatedSpace("cortex-m3")
    module = Linker(space, ARCH).link(arm_tc.compile_text(
        ".syntax unified\n.thumb\n.globl base_plus\n.type base_plus, %function\n"
        "base_plus: add r0, r0, r10\n mov r10, #7\n bx lr\n"
        ".globl keeps\n.type keeps, %function\n"
        "keeps: push {r10, lr}\n mov r10, #99\n blx r1\n add r0, r0, r10\n pop {r10, pc}\n",
        "base_plus.s"))
    pool = TrampolinePool(space, ARCH)
    t = pool.alloc_call(module.address("base_plus"), "r10", 1000)
    assert t & 1 and space.call(t, 5) == 1005
    assert module.call("keeps", 5, t) == 1005 + 99  # r10 was 99 before, and is again after
    with pytest.raises(LinkError, match="cannot be a base register"):
        arm.calling_trampoline_code(1024, "r0")


def test_running_unflushed_thumb_code_fails():
    space = EmulatedSpace("cortex-m3")
    block = space.reserve(0x100, 32)
    space.write(block, arm.thumb(0x2007, 0x4770))  # movs r0, #7; bx lr
    with pytest.raises(StaleCodeError):
        space.call(block | 1)
    space.flush(block, 4)
    assert space.call(block | 1) == 7
    assert space.call(block) == 7  # entered in Thumb state either way
    assert arm.cache_maintenance(0x2000_0010, 0x30) == [
        ("dccmvau", 0x2000_0000), ("dccmvau", 0x2000_0020), ("dsb", 0),
        ("icimvau", 0x2000_0000), ("icimvau", 0x2000_0020), ("dsb", 0), ("isb", 0)]


def test_the_cpu_is_known_by_its_aliases():
    assert arch_registry.get("cortex-m3") is arch_registry.get("arm") is arm.ARCH
    assert EmulatedSpace("cortex-m3").regions[0].name == "FLASH"
