"""ELF programs located: relocations kept with ``--emit-relocs`` move sections apart, a PIE's
RELATIVE relocations move it whole, an executable without either stays where it was linked;
and a GNU ld linker script as the configuration. The check is GNU ld itself: a program linked
at one layout and located into a second equals, byte for byte, the program ld links at the
second, and runs in the emulated target with the output it has where it was linked. x86-64,
PowerPC and Cortex-M (a Cortex-M3 with literal pools, a Cortex-M4 with execute-only code whose
addresses are movw/movt pairs), the Cortex-M booted from its vector table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

from conftest import C_DIR
from linkload import ConfigError, FixupError, LinkError, RelocationOverflowError
from linkload.arch import arm
from linkload.cli import main as cli
from linkload.formats import read_module, read_program
from linkload.locate import ldscript, locate_program, run, run_in_place
from linkload.model import MOVES_APART, MOVES_NOT, MOVES_WHOLE

CONSOLE = 0xE000_0000
SOURCE = C_DIR / "locate" / "board.c"
CORTEX_M = C_DIR / "locate" / "cortex_m.s"
COMMON = ("-O2", "-ffreestanding", "-fno-asynchronous-unwind-tables",
          "-fno-tree-loop-distribute-patterns")


@dataclass(frozen=True)
class Cpu:
    cc: str
    ld: str
    flags: tuple[str, ...]
    link: tuple[str, ...] = ()
    startup: tuple = ()  # sources linked before board.c
    entry: str = "start"


CPUS = {
    "x86_64": Cpu("gcc", "ld", ("-fno-pic",), ("-no-pie",)),
    "ppc": Cpu("powerpc-linux-gnu-gcc", "powerpc-linux-gnu-ld", ("-mcpu=750", "-msdata=none", "-fno-pic")),
    # addresses loaded from literal pools in .text (R_ARM_ABS32)
    "cortex-m3": Cpu("arm-none-eabi-gcc", "arm-none-eabi-ld", ("-mcpu=cortex-m3", "-mthumb"),
                     startup=(CORTEX_M,), entry="reset"),
    # execute-only code: no literal pools, every address made by a movw/movt pair (for the
    # Cortex-M7, gcc shares a movw between two movts)
    "cortex-m4": Cpu("arm-none-eabi-gcc", "arm-none-eabi-ld", ("-mcpu=cortex-m4", "-mthumb", "-mpure-code"),
                     startup=(CORTEX_M,), entry="reset"),
    "cortex-m7": Cpu("arm-none-eabi-gcc", "arm-none-eabi-ld", ("-mcpu=cortex-m7", "-mthumb", "-mpure-code"),
                     startup=(CORTEX_M,), entry="reset"),
}
ARM = sorted(c for c in CPUS if c.startswith("cortex-m"))
SCRIPT = """/* a board: code and read-only data in ROM, data copied to RAM */
MEMORY {
  ROM (rx)  : ORIGIN = %(rom)s, LENGTH = %(rom_size)s
  RAM (rwx) : ORIGIN = %(ram)s, LENGTH = 64K
}
ENTRY(%(entry)s)
SECTIONS {
  .vectors : { KEEP(*(.vectors)) } > ROM
  .boot : { *(.boot) } > ROM
  .text : ALIGN(%(text_align)s) { *(.text .text.*) } > ROM
  .rodata : ALIGN(8) { *(.rodata .rodata.*) } > ROM
  .data : { *(.data .data.* .sdata .sdata.*) } > RAM AT> ROM
  .bss : { *(.bss .bss.* .sbss .sbss.* COMMON) } > RAM
  /DISCARD/ : { *(.comment) *(.note*) *(.eh_frame*) *(.gnu*) }
}
"""
# (.vectors and .boot: the Cortex-M start-up's; ld drops them, empty, for the others)
FIRST = {"rom": "0x100000", "rom_size": "64K", "ram": "0x200000", "text_align": "4"}
SECOND = {"rom": "0x340000", "rom_size": "0x10000 + 64K", "ram": "0x7A0000", "text_align": "64"}
RUNNABLE = ("Region Console E0000000h 4k Device", "Locate Header Boot ROM",
            "Locate Stack Stack RAM 4k")


def linked(toolchain, tmp_path, cpu: str, layout: dict, extra=("-Wl,--emit-relocs",)):
    c = CPUS[cpu]
    tc = toolchain(c.cc, None, c.ld, COMMON + c.flags)
    script = tmp_path / f"{cpu}-{layout['rom']}.ld"
    script.write_text(SCRIPT % {**layout, "entry": c.entry})
    objects = [tc.compile(source) for source in (*c.startup, SOURCE)]
    exe = tc.executable(objects, ldflags=(*c.link, "-nostdlib", "-static", "-Wl,--build-id=none",
                                          *extra, "-T", str(script)), stem=f"board-{cpu}")
    return exe, script


def runnable(cpu: str) -> tuple[str, ...]:
    """The commands that make a located program runnable: a console and the boot table, and
    a stack unless the CPU takes its stack pointer from the program's vector table."""
    return RUNNABLE[:2] if cpu in ARM else RUNNABLE


@pytest.mark.parametrize("cpu", sorted(CPUS))
def test_a_located_program_equals_gnu_lds_link_at_the_new_layout(toolchain, tmp_path, cpu):
    first, _ = linked(toolchain, tmp_path, cpu, FIRST)
    second, second_script = linked(toolchain, tmp_path, cpu, SECOND)
    assert read_program(first).moves == MOVES_APART
    located = locate_program(first, [second_script])
    assert not located.fixups.whole
    reference = read_module(second)
    assert [s.name for s in reference.sections] == [s.name for s in located.program.sections]
    for s in reference.sections:
        i = located.program.section(s.name).index
        assert int(located.section_addresses[i]) == s.address, s.name
        assert located.images[i].tobytes() == bytes(s.data or b""), s.name
    # .data's load address: where ld put its bytes in ROM (its PT_LOAD's p_paddr)
    data = located.program.section(".data").index
    (segment,) = [g for g in reference.segments if g.address == reference.section_named(".data").address]
    assert located.section_entity(data).load == _paddr(second, segment.address)
    # every symbol in a section at ld's address for it (the two links list the same symbols)
    assert reference.names == located.program.symbol_names
    inside = np.flatnonzero(located.program.symbol_sections >= 0)
    assert len(inside) > 10
    assert (located.symbol_values[inside] == reference.symbols["value"][inside].astype(np.int64)).all()
    assert located.entry == reference.entry


def _paddr(path, vaddr: int) -> int:
    with open(path, "rb") as f:
        return next(s["p_paddr"] for s in ELFFile(f).iter_segments() if s["p_vaddr"] == vaddr)


@pytest.mark.parametrize("cpu", sorted(CPUS))
def test_the_located_program_runs_as_it_ran_where_it_was_linked(toolchain, tmp_path, cpu):
    first, _ = linked(toolchain, tmp_path, cpu, FIRST)
    _, second_script = linked(toolchain, tmp_path, cpu, SECOND)
    expected = run_in_place(read_program(first), console=CONSOLE)
    assert expected.result == 119
    assert run(locate_program(first, [second_script], runnable(cpu)), console=CONSOLE) == expected


# -- Cortex-M ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cpu", ARM)
def test_every_arm_kind_moved_is_rewritten_as_gnu_ld_writes_it(toolchain, tmp_path, cpu):
    """The kinds the start-up and gcc leave (readelf -r), each with fields rewritten (equal to
    ld's second link, as above): branches between .boot and .text, movw/movt, words."""
    first, _ = linked(toolchain, tmp_path, cpu, FIRST)
    _, second_script = linked(toolchain, tmp_path, cpu, SECOND)
    located = locate_program(first, [second_script])
    kinds = located.program.fixups.kind
    names = {arm.ARCH.kind_name(k) for k in kinds.tolist()}
    rewritten = {arm.ARCH.kind_name(k) for k in kinds[located.fixups.changed].tolist()}
    moves = {"R_ARM_THM_MOVW_ABS_NC", "R_ARM_THM_MOVT_ABS"}
    startup = {"R_ARM_ABS32", "R_ARM_THM_CALL", "R_ARM_THM_JUMP24", "R_ARM_THM_JUMP19",
               "R_ARM_THM_JUMP11", "R_ARM_THM_JUMP8"} | moves
    assert names == rewritten == startup
    counts = {n: int((kinds == k).sum()) for k in set(kinds.tolist()) for n in [arm.ARCH.kind_name(k)]}
    if cpu != "cortex-m3":  # gcc's own movw/movt pairs
        assert counts["R_ARM_THM_MOVT_ABS"] >= counts["R_ARM_THM_MOVW_ABS_NC"] > 5
        assert counts["R_ARM_ABS32"] < 20  # (the tables of pointers and the vector table only)
        if cpu == "cortex-m7":  # movws shared by two movts each
            assert counts["R_ARM_THM_MOVT_ABS"] == counts["R_ARM_THM_MOVW_ABS_NC"] + 2
    else:  # literal pools: one word per address
        assert counts["R_ARM_THM_MOVW_ABS_NC"] == counts["R_ARM_THM_MOVT_ABS"] == 1
        assert counts["R_ARM_ABS32"] > 20


def test_a_cortex_m_boots_from_its_vector_table(toolchain, tmp_path):
    first, _ = linked(toolchain, tmp_path, "cortex-m3", FIRST)
    _, second_script = linked(toolchain, tmp_path, "cortex-m3", SECOND)
    expected = run_in_place(read_program(first), console=CONSOLE)
    located = locate_program(first, [second_script], runnable("cortex-m3"))
    assert not located.boot.stack_top  # no Locate Stack: word 0 of the vector table
    vectors = located.symbol("vectors")
    assert vectors == located.region("ROM").address
    assert run(located, console=CONSOLE, vectors=vectors) == expected
    # the words there must be a stack pointer in RAM and an address of Thumb code
    with pytest.raises(LinkError, match=r"vector table at 0x340008 gives 0x\w+ for the initial "
                                         r"stack pointer \(word 0\), which is not in a RAM region"):
        run(located, console=CONSOLE, vectors=vectors + 8)
    with pytest.raises(LinkError, match="vector table at 0xe0000000 lies in no configured ROM or "
                                        "RAM region"):
        run(located, console=CONSOLE, vectors=CONSOLE)
    reset = located.symbol("reset")
    assert reset & 1 and run(located, console=CONSOLE).result == 119  # (at the start of ROM)
    located.image.write(vectors + 4, (reset & ~1).to_bytes(4, "little"))
    with pytest.raises(LinkError, match=f"gives {reset & ~1:#x} for the reset handler \\(word 1\\), "
                                        "and the bit 0x1 every address of arm code carries is clear"):
        run(located, console=CONSOLE)


def test_the_locate_command_boots_a_cortex_m_from_the_vector_table_it_is_given(toolchain, tmp_path,
                                                                               capsys):
    first, _ = linked(toolchain, tmp_path, "cortex-m4", FIRST)
    _, second_script = linked(toolchain, tmp_path, "cortex-m4", SECOND)
    expected = run_in_place(read_program(first), console=CONSOLE)
    assert cli(["locate", str(first), str(second_script), *runnable("cortex-m4"), "--run",
                "--console", "0xE0000000", "--vectors", "0x340000"]) == 0
    printed = capsys.readouterr().out
    assert expected.output.decode() in printed and printed.endswith(" returned 119\n")
    assert cli(["locate", str(first), str(second_script), *runnable("cortex-m4"), "--run",
                "--vectors", "0x340004"]) == 2
    assert "the vector table at 0x340004 gives" in capsys.readouterr().err


def test_moving_a_cortex_m_section_out_of_a_short_branchs_reach_is_an_error(toolchain, tmp_path):
    first, _ = linked(toolchain, tmp_path, "cortex-m3", FIRST)
    commands = ["Region ROM 0h 64k ROM", "Region RAM 20000000h 64k RAM",
                "Locate Section .vectors ROM", "Locate Section .boot ROM",
                "Locate Section .rodata ROM", "Locate Section .text ROM 0 4096",
                "Locate Section .data RAM", "Locate Section .bss RAM", "Locate Copy .data ROM"]
    with pytest.raises(RelocationOverflowError, match=r"\.boot\+0xc: R_ARM_THM_JUMP8 against "
                                                      r"'in_text': value .* does not fit"):
        locate_program(first, [], commands)


THUMB = "    .syntax unified\n    .thumb\n"
FUNCTION = "    .global {0}\n    .type {0}, %function\n    .thumb_func\n{0}:\n"


def arm_program(toolchain, tmp_path, name: str, code: str, layout: dict):
    tc = toolchain("arm-none-eabi-gcc", None, "arm-none-eabi-ld", COMMON + CPUS["cortex-m3"].flags)
    obj = tc.compile_text(THUMB + code, f"{name}.s")
    script = tmp_path / f"{name}-{layout['rom']}.ld"
    script.write_text(SCRIPT % {**layout, "entry": "start"})
    return tc.executable([obj], ldflags=("-nostdlib", "-static", "-Wl,--emit-relocs", "-T",
                                         str(script)), stem=name), script


def test_a_movt_without_its_movw_is_refused(toolchain, tmp_path):
    code = ("    .text\n" + FUNCTION.format("start") + "    movt r0, #:upper16:value\n    bx lr\n"
            "    .data\n    .global value\nvalue: .word 1\n")
    exe, _ = arm_program(toolchain, tmp_path, "lone", code, FIRST)
    with pytest.raises(FixupError, match=r"\.text\+0x0: R_ARM_THM_MOVT_ABS against 'value': the "
                                         r"field at 0x100000 holds part of an address"):
        read_program(exe)


V6M_STARTUP = ('    .section .vectors, "a", %progbits\n    .balign 4\n'
               "    .word stack_top\n    .word reset\n"
               "    .bss\n    .balign 8\n    .space 1024\nstack_top:\n"
               "    .text\n" + FUNCTION.format("reset")
               + "    push {r4, lr}\n    bl start\n    pop {r4, pc}\n")


def test_a_kind_the_locator_cannot_rewrite_is_refused_when_it_would_change(toolchain, tmp_path):
    """A Cortex-M0 has no movw/movt: with -mpure-code gcc builds each address a byte at a time
    (R_ARM_THM_ALU_ABS_G0_NC to G3_NC), which linkload does not encode. Moving the program is
    refused, naming the fixup; locating it where it was linked changes none, and it runs
    (libgcc divides, which a Cortex-M0 cannot; cortex_m.s is Armv7-M code, so a smaller
    start-up stands in)."""
    m0 = ("-mcpu=cortex-m0", "-mthumb")
    tc = toolchain("arm-none-eabi-gcc", None, "arm-none-eabi-ld", COMMON + m0 + ("-mpure-code",))
    startup = tc.compile_text(THUMB + V6M_STARTUP, "v6m.s")
    exes = {}
    for name, layout in (("first", FIRST), ("second", SECOND)):
        script = tmp_path / f"m0-{name}.ld"
        script.write_text(SCRIPT % {**layout, "entry": "reset"})
        exes[name] = tc.executable([startup, tc.compile(SOURCE)], ldflags=(
            *m0, "-nostdlib", "-static", "-Wl,--emit-relocs", "-T", str(script)), libs=("-lgcc",),
            stem="board-m0"), script
    first, first_script = exes["first"]
    with pytest.raises(FixupError, match=r"\.text\+0x\w+: R_ARM_THM_ALU_ABS_G\d_NC against "
                                         r"'\.LANCHOR\d': cannot move this fixup: -mpure-code"):
        locate_program(first, [exes["second"][1]])
    located = locate_program(first, [first_script], runnable("cortex-m3"))
    assert not located.fixups.changed.any()
    assert run(located, console=CONSOLE) == run_in_place(read_program(first), console=CONSOLE)


def test_gnu_lds_veneer_from_flash_to_a_ram_function_forbids_moving_sections_apart(toolchain,
                                                                                  tmp_path):
    """Flash calls a function in RAM 384 MiB away through a veneer ld made, which has no
    relocation of its own (the call's names the RAM function, not the veneer)."""
    code = ("    .text\n" + FUNCTION.format("start") + "    push {r3, lr}\n    movs r0, #21\n"
            "    bl twice\n    pop {r3, pc}\n    .section .data.ramfunc, \"awx\", %progbits\n"
            + FUNCTION.format("twice") + "    adds r0, r0, r0\n    bx lr\n")
    stm32 = {"rom": "0x08000000", "rom_size": "64K", "ram": "0x20000000", "text_align": "4"}
    exe, _ = arm_program(toolchain, tmp_path, "far", code, stm32)
    assert run_in_place(read_program(exe)).result == 42
    _, moved = arm_program(toolchain, tmp_path, "far", code, {**stm32, "rom": "0x08010000"})
    with pytest.raises(LinkError, match="__twice_veneer is a linker-made veneer"):
        locate_program(exe, [moved])


def test_kept_relocations_let_rtloc_commands_place_sections_anywhere(toolchain, tmp_path):
    first, _ = linked(toolchain, tmp_path, "x86_64", FIRST)
    expected = run_in_place(read_program(first), console=CONSOLE)
    commands = ["Region FLASH 10000h 64k ROM", "Region SRAM 30000h 64k RAM", *RUNNABLE[:1],
                "Locate Header Boot FLASH", "Locate Section .rodata FLASH 0 256",
                "Locate Section .text FLASH", "Locate Section .bss SRAM 0 0 Assign TopDown",
                "Locate Section .data SRAM", "Locate Copy .data FLASH Deflate",
                "Locate Stack Stack SRAM 8k"]
    located = locate_program(first, [], commands)
    assert located.section_addresses.tolist()[:2] != sorted(located.section_addresses.tolist()[:2])
    assert run(located, console=CONSOLE) == expected


def test_a_pie_moves_only_as_a_whole(toolchain, tmp_path):
    tc = toolchain("gcc", None, "ld", COMMON + ("-fPIE",))
    exe = tc.executable([tc.compile(SOURCE)], ldflags=(
        "-static-pie", "-nostdlib", "-Wl,--no-dynamic-linker", "-Wl,-e,start",
        "-Wl,--build-id=none", "-Wl,-z,norelro"), stem="board-pie")
    module = read_program(exe)
    assert module.moves == MOVES_WHOLE and sum(len(r) for r in module.relocation_runs) >= 10
    expected = run_in_place(module, console=CONSOLE)
    first, last = module.sections[0].name, module.sections[-1].name
    whole = ["Region RAM 800000h 64k RAM", *RUNNABLE[:1], "Locate Header Boot RAM",
             f"Locate NTSection {first} RAM", f"Locate NTSection {last} RAM",
             "Locate Stack Stack RAM 8k"]
    located = locate_program(exe, [], whole)
    assert located.fixups.whole and located.fixups.delta
    assert run(located, console=CONSOLE) == expected
    apart = ["Region RAM 800000h 64k RAM", "Region ROM 900000h 64k ROM",
             *(f"Locate Section {s.name} {'ROM' if s.name == '.text' else 'RAM'}" for s in module.sections)]
    with pytest.raises(FixupError, match="moves only as a whole"):
        locate_program(exe, [], apart)


def test_an_executable_without_relocations_stays_where_it_was_linked(toolchain, tmp_path):
    exe, script = linked(toolchain, tmp_path, "x86_64", FIRST, extra=())
    module = read_program(exe)
    assert module.moves == MOVES_NOT and not module.relocation_runs
    assert locate_program(exe, [script]).fixups.delta == 0  # its own layout: nothing moves
    _, elsewhere = linked(toolchain, tmp_path, "x86_64", SECOND)
    with pytest.raises(FixupError, match=r"lists no fixups \(link it with -Wl,--emit-relocs"):
        locate_program(exe, [elsewhere])


# -- the linker script front end --------------------------------------------------------------------
def test_a_linker_script_becomes_regions_sections_and_copies(tmp_path):
    commands = ldscript.parse(SCRIPT % {**SECOND, "entry": "start"}, "board.ld")
    regions = [(c.name, c.address, c.size, c.memtype.value) for c in commands[:2]]
    assert regions == [("ROM", 0x340000, 0x20000, "ROM"), ("RAM", 0x7A0000, 0x10000, "RAM")]
    locates = [(c.entity, c.name, c.region, c.align, c.where.line) for c in commands[2:]]
    assert locates == [("Section", ".vectors", "ROM", 0, 8), ("Section", ".boot", "ROM", 0, 9),
                       ("Section", ".text", "ROM", 64, 10), ("Section", ".rodata", "ROM", 8, 11),
                       ("Section", ".data", "RAM", 0, 12), ("Section", ".bss", "RAM", 0, 13),
                       ("Copy", ".data", "ROM", 0, 12)]
    assert all(c.optional for c in commands[2:])  # ld drops empty output sections


@pytest.mark.parametrize(("text", "message"), [
    ("MEMORY { ROM (rx) : ORIGIN = 0x100, LENGTH = lots }", "board.ld:1: expected a number"),
    ("MEMORY {\n ROM (rx) : ORIGIN = 0, LENGTH = 1K\n}\nSECTIONS {\n .text : { *(.text) }\n}",
     "board.ld:5: output section .text has no >REGION"),
    ("MEMORY {\n ROM (rx) : ORIGIN = 0, LENGTH = 1K\n}\nSECTIONS {\n .text : { *(.text) } > FLASH\n}",
     r"board.ld:5: no memory region 'FLASH' \(MEMORY has ROM\)"),
    ("INCLUDE other.ld\nMEMORY { }", "board.ld:1: INCLUDE is not supported"),
    ("MEMORY {\n ROM (rx) ORIGIN 0\n}", "board.ld:2: expected NAME"),
    ("MEMORY { ROM (rx) : ORIGIN = 0, LENGTH = 1K", "MEMORY { is never closed"),
])
def test_linker_script_errors_name_the_line(text, message):
    with pytest.raises(ConfigError, match=message):
        ldscript.parse(text, "board.ld")


def test_memory_expressions_may_refer_to_earlier_regions():
    text = ("MEMORY {\n A (rx) : ORIGIN = 0x1000, LENGTH = 4K\n"
            " B (rw) : ORIGIN = ORIGIN(A) + LENGTH(A), LENGTH = 2 * (1K + 1K)\n}")
    _a, b = ldscript.parse(text, "x.ld")
    assert (b.address, b.size) == (0x2000, 0x1000)
