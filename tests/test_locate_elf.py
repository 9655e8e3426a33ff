"""ELF programs located: relocations kept with ``--emit-relocs`` move sections apart, a PIE's
RELATIVE relocations move it whole, an executable without either stays where it was linked;
and a GNU ld linker script as the configuration. The check is GNU ld itself: a program linked
at one layout and located into a second equals, byte for byte, the program ld links at the
second (x86-64 and PowerPC today; Cortex-M once the ARM CPU file is merged), and runs.
"""

from __future__ import annotations

import pytest
from elftools.elf.elffile import ELFFile

from conftest import C_DIR
from linkload import ConfigError, FixupError
from linkload.formats import read_module, read_program
from linkload.locate import ldscript, locate_program, run, run_in_place
from linkload.model import MOVES_APART, MOVES_NOT, MOVES_WHOLE

CONSOLE = 0xE000_0000
SOURCE = C_DIR / "locate" / "board.c"
COMMON = ("-O2", "-ffreestanding", "-fno-asynchronous-unwind-tables",
          "-fno-tree-loop-distribute-patterns")
CPUS = {
    "x86_64": ("gcc", "ld", ("-fno-pic",), ("-no-pie",)),
    "ppc": ("powerpc-linux-gnu-gcc", "powerpc-linux-gnu-ld", ("-mcpu=750", "-msdata=none", "-fno-pic"),
            ()),
}
SCRIPT = """/* a board: code and read-only data in ROM, data copied to RAM */
MEMORY {
  ROM (rx)  : ORIGIN = %(rom)s, LENGTH = %(rom_size)s
  RAM (rwx) : ORIGIN = %(ram)s, LENGTH = 64K
}
ENTRY(start)
SECTIONS {
  .text : { *(.text .text.*) } > ROM
  .rodata : ALIGN(8) { *(.rodata .rodata.*) } > ROM
  .data : { *(.data .data.* .sdata .sdata.*) } > RAM AT> ROM
  .bss : { *(.bss .bss.* .sbss .sbss.* COMMON) } > RAM
  /DISCARD/ : { *(.comment) *(.note*) *(.eh_frame*) *(.gnu*) }
}
"""
FIRST = {"rom": "0x100000", "rom_size": "64K", "ram": "0x200000"}
SECOND = {"rom": "0x340000", "rom_size": "0x10000 + 64K", "ram": "0x7A0000"}
RUNNABLE = ("Region Console E0000000h 4k Device", "Locate Header Boot ROM",
            "Locate Stack Stack RAM 4k")


def linked(toolchain, tmp_path, cpu: str, layout: dict, extra=("-Wl,--emit-relocs",)):
    cc, ld, flags, link = CPUS[cpu]
    tc = toolchain(cc, None, ld, COMMON + flags)
    script = tmp_path / f"{cpu}-{layout['rom']}.ld"
    script.write_text(SCRIPT % layout)
    exe = tc.executable([tc.compile(SOURCE)], ldflags=(*link, "-nostdlib", "-static",
                                                       "-Wl,--build-id=none", *extra, "-T", str(script)),
                        stem=f"board-{cpu}")
    return exe, script


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
    # every symbol in a section at ld's address for it
    expected = {n: int(v) for n, v in zip(reference.names, reference.symbols["value"], strict=True)}
    for name in ("start", "shapes", "favourite", "counter", "operations"):
        if name in expected:
            assert located.symbol(name) == expected[name], name


def _paddr(path, vaddr: int) -> int:
    with open(path, "rb") as f:
        return next(s["p_paddr"] for s in ELFFile(f).iter_segments() if s["p_vaddr"] == vaddr)


@pytest.mark.parametrize("cpu", sorted(CPUS))
def test_the_located_program_runs_as_it_ran_where_it_was_linked(toolchain, tmp_path, cpu):
    first, _ = linked(toolchain, tmp_path, cpu, FIRST)
    _, second_script = linked(toolchain, tmp_path, cpu, SECOND)
    expected = run_in_place(read_program(first), console=CONSOLE)
    assert expected.result == 119
    assert run(locate_program(first, [second_script], RUNNABLE), console=CONSOLE) == expected


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
    commands = ldscript.parse(SCRIPT % SECOND, "board.ld")
    regions = [(c.name, c.address, c.size, c.memtype.value) for c in commands[:2]]
    assert regions == [("ROM", 0x340000, 0x20000, "ROM"), ("RAM", 0x7A0000, 0x10000, "RAM")]
    locates = [(c.entity, c.name, c.region, c.align, c.where.line) for c in commands[2:]]
    assert locates == [("Section", ".text", "ROM", 0, 8), ("Section", ".rodata", "ROM", 8, 9),
                       ("Section", ".data", "RAM", 0, 10), ("Section", ".bss", "RAM", 0, 11),
                       ("Copy", ".data", "ROM", 0, 10)]
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
