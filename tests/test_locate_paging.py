"""i386 paging in the locator: ``Virtual`` regions, ``Locate Kind Name Virtual->Physical`` and
``Locate PageTable``.

A real program (tests/c/locate/board.c, built with mingw-w64 i686) is located flat and with
sections (data, bss, the stack, the code, an NTSection block) in virtual regions backed by RAM
or ROM, and run in the emulated target with paging on: its output and result equal its run
where it was linked. The page tables written to the HEX file are walked here, with the bits of
the Intel SDM's 32-bit paging written out in this file (not the arch file's walk), and agree
with the layout. Then RTLoc's default size of the page tables, every refused configuration
(each naming its file and line), and page faults: a write to a read-only page, an access to a
region with no access.
"""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest

from conftest import C_DIR
from linkload import ConfigError, LinkError
from linkload.arch import PageAccess
from linkload.arch.i386 import R_386_32, page_entries, page_tables
from linkload.cli import main as cli
from linkload.formats import ihex, read_program
from linkload.locate import BootEntry, EntityKind, Op, locate, locate_program, write_outputs
from linkload.locate.config import parse
from linkload.locate.run import run, run_in_place
from linkload.space.emulated import EmulatedSpace, EmulationError
from locateutil import BSS, DATA, IMAGE, TEXT, config, toy_program

MINGW = "i686-w64-mingw32-gcc"
FLAGS = ("-O2", "-ffreestanding", "-fno-asynchronous-unwind-tables",
         "-fno-tree-loop-distribute-patterns")
LINK = ("-nostdlib", "-Wl,--enable-reloc-section", "-Wl,-e,_start")
CONSOLE = 0xE000_0000
PAGE = 4096

# The Intel SDM's 32-bit paging, written out here for the independent walk.
P, RW, US = 1, 2, 4
FRAME = 0xFFFF_F000

BOARD = """
Region ROM 10000h 64k ROM
Region RAM 100000h 64k RAM
Region Console E0000000h 4k Device
Locate Header Boot ROM
Locate Section .text {text}
Locate Section .rdata ROM
Locate Section .data {data}
Locate Section .bss {data}
Locate Section .idata RAM
Locate Copy .data ROM Deflate
Locate Copy .idata ROM
Locate Stack Stack {data} 4k
Locate Heap Heap RAM
"""
VIRTUAL = """
Virtual VCODE 40000000h 64k
Virtual VDATA 40400000h 1M
Locate PageTable Pages RAM
"""
LAYOUTS = {
    "flat": BOARD.format(text="ROM", data="RAM"),
    "paged one to one": BOARD.format(text="ROM", data="RAM") + "Locate PageTable Pages RAM\n",
    "virtual data": BOARD.format(text="ROM", data="VDATA->RAM") + VIRTUAL,
    "virtual code and data": BOARD.format(text="VCODE->ROM", data="VDATA->RAM") + VIRTUAL,
    "virtual code in RAM": BOARD.format(text="VCODE->RAM", data="RAM") + VIRTUAL,
    "tables in ROM": BOARD.format(text="ROM", data="VDATA->RAM") + VIRTUAL.replace("Pages RAM",
                                                                                   "Pages ROM"),
    "virtual block": """
Region RAM 800000h 1M RAM
Region Console E0000000h 4k Device
Virtual V 10000000h 1M
Locate Header Boot RAM
Locate PageTable Pages RAM
Locate NTSection .text V->RAM
Locate NTSection .idata V->RAM
Locate Stack Stack V->RAM 16k
""",
}


@pytest.fixture(scope="module")
def mingw(toolchain):
    return toolchain(MINGW, None, "i686-w64-mingw32-ld")


@pytest.fixture(scope="module")
def board(mingw):
    obj = mingw.compile(C_DIR / "locate" / "board.c", FLAGS)
    return mingw.executable([obj], ldflags=LINK, stem="board")


def configs(tmp_path, text: str) -> list:
    path = tmp_path / "board.cfg"
    path.write_text(text)
    return [path]


# -- a real program, run with paging ------------------------------------------------------------
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_program_with_virtual_sections_prints_what_it_prints_where_it_was_linked(board, tmp_path,
                                                                                   layout):
    expected = run_in_place(read_program(board), console=CONSOLE)
    assert expected.output.startswith(b"hello from the board\nadd 10\nsub 4\nmul 21\n")
    located = locate_program(board, configs(tmp_path, LAYOUTS[layout]))
    assert run(located, console=CONSOLE) == expected
    if layout == "flat":
        assert located.paging is None and Op.PAGING not in [e.op for e in located.boot.entries]
        return
    # paging first: the copies and zero fills after it may write virtual addresses
    assert located.boot.entries[0] == BootEntry(Op.PAGING, located.paging.address, 0,
                                                located.paging.size)
    virtual = {r.name for r in located.regions if r.memtype.value == "Virtual"}
    for e in located.entities:
        if e.backing is not None:  # starts a page; its pages are physical memory
            assert e.region in virtual and e.address % PAGE == 0 and e.backing.address % PAGE == 0
            assert e.backing.region not in virtual and e.backing.size >= e.size
        elif e.region in virtual:  # a section of an NTSection block: its block has the pages
            assert e.kind is EntityKind.SECTION and layout == "virtual block"
    for s in located.program.sections:
        e = located.section_entity(s.index)
        if e.region in virtual and s.name != ".data" and s.data:  # (.data's are in its copy)
            assert located.load_address(s.index) == located.paging.translate(e.address)[0]
            assert located.region(e.region).address <= e.address < located.region(e.region).end


def test_virtual_addresses_are_the_run_addresses_and_the_pages_hold_the_bytes(board, tmp_path):
    located = locate_program(board, configs(tmp_path, LAYOUTS["virtual code and data"]))
    text = located.program.section(".text")
    assert located.entry >= 0x4000_0000 and located.symbol("_start") == located.entry
    assert located.symbol("_counter") // PAGE * PAGE == located.section_entity(
        located.program.section(".bss").index).address
    entity = located.section_entity(text.index)
    assert entity.address == 0x4000_0000 and entity.load == entity.backing.address
    assert located.region("ROM").address <= entity.load < located.region("ROM").end
    stored = located.image.read(entity.load, text.size)
    assert stored == located.images[text.index].tobytes()  # fixups use virtual addresses...
    favourite = located.symbol("_favourite")  # (data: a pointer into .data, itself virtual)
    data = located.images[located.program.section(".data").index]
    offset = favourite - located.section_entity(located.program.section(".data").index).address
    assert 0x4040_0000 <= struct.unpack_from("<I", data, offset)[0] < 0x4050_0000


def _walk(memory: dict[int, int], root: int, virtual: int) -> tuple[int, int] | None:
    """The SDM's two-level walk: (physical address, PTE & PDE rights) or None."""
    def word(address: int) -> int:
        return int.from_bytes(bytes(memory[address + i] for i in range(4)), "little")

    pde = word(root + 4 * (virtual >> 22))
    if not pde & P:
        return None
    assert not pde & 0x80  # a page table follows, not a 4 MiB page
    pte = word((pde & FRAME) + 4 * ((virtual >> 12) & 0x3FF))
    if not pte & P:
        return None
    return (pte & FRAME) | (virtual & 0xFFF), pde & pte & (RW | US)


def test_the_page_tables_in_the_hex_file_translate_as_the_layout_says(board, tmp_path):
    text = LAYOUTS["virtual code and data"].replace(
        "Region Console E0000000h 4k Device", "Region Console E0000000h 4k Device\n"
        "Region Locked 200000h 8k RAM NoAccess\nRegion Table 300000h 4k ROM SysRead")
    located = locate_program(board, configs(tmp_path, text))
    written = write_outputs(located, tmp_path / "out")
    memory, _entry = ihex.read(written["hex"].read_text())
    root = located.paging.address
    assert root % PAGE == 0 and root == located.page_table.address
    # every physical region one to one, with its access
    for address, rights in ((0x10000, RW | US), (0x1_0FFF, RW | US), (0x10_8000, RW | US),
                            (CONSOLE, RW | US), (0x30_0000, 0)):
        assert _walk(memory, root, address) == (address, rights)
    assert _walk(memory, root, 0x20_0000) is None and _walk(memory, root, 0x20_1000) is None
    # each entity of a virtual region to its pages, every page of it
    virtual = [e for e in located.entities if e.backing is not None]
    assert {e.name for e in virtual} == {".text", ".data", ".bss", "Stack"}
    for e in virtual:
        for offset in range(0, e.size, 0x7F3):
            assert _walk(memory, root, e.address + offset) == (e.backing.address + offset, RW | US)
    # the rest of a virtual region is not present, nor is anything no region holds
    for address in (0x4000_1000, 0x4040_F000, 0x404F_F000, 0x8000_0000, 0x0):
        assert _walk(memory, root, address) is None
    # the tables agree with the map the locator kept
    for v, ph, size, access in located.paging.runs():
        found = _walk(memory, root, v + size - 1)
        assert found is None if access == PageAccess.NONE else found[0] == ph + size - 1


def test_a_write_to_a_read_only_page_or_no_access_region_is_a_page_fault(board, tmp_path):
    base = LAYOUTS["virtual data"]
    read_only = base.replace("Region RAM 100000h 64k RAM", "Region RAM 100000h 64k RAM\n"
                             "Region Locked 200000h 64k RAM ReadOnly") \
        .replace("Locate Section .bss VDATA->RAM", "Locate Section .bss Locked")
    with pytest.raises(LinkError, match=r"page fault at 0x[0-9a-f]+: access to 0x2000[0-9a-f]{2}, and "
                                        r"its page is read-only \(a write\)") as caught:
        run(locate_program(board, configs(tmp_path, read_only)), console=CONSOLE)
    assert isinstance(caught.value, EmulationError) and caught.value.fault == "page fault"
    virtual_read_only = base.replace("Locate Section .bss VDATA->RAM",
                                     "Locate Section .bss VDATA->RAM 0 0 ReadOnly")
    with pytest.raises(LinkError, match=r"access to 0x404010[0-9a-f]{2}, and its page is read-only"):
        run(locate_program(board, configs(tmp_path, virtual_read_only)), console=CONSOLE)
    no_access = base.replace("Console E0000000h 4k Device", "Console E0000000h 4k Device NoAccess")
    with pytest.raises(LinkError, match=r"access to 0xe0000000, and its page is not present"):
        run(locate_program(board, configs(tmp_path, no_access)))
    # without paging the same program writes the same page
    assert run(locate_program(board, configs(tmp_path, LAYOUTS["flat"])), console=CONSOLE).result == 119


def test_the_locate_command_runs_a_paged_program_and_reports_a_page_fault(board, tmp_path, capsys):
    (cfg,) = configs(tmp_path, LAYOUTS["virtual code and data"])
    assert cli(["locate", str(board), str(cfg), "-o", str(tmp_path / "out"), "--run", "--console",
                "0xE0000000"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"\n  paging: page tables at 0x10[0-9a-f]{4} \(0x5000 bytes\)\n", printed)
    assert "hello from the board\n" in printed and printed.endswith("board returned 119\n")
    read_only_console = LAYOUTS["virtual code and data"].replace(
        "Region Console E0000000h 4k Device", "Region Console E0000000h 4k Device ReadOnly")
    (cfg,) = configs(tmp_path, read_only_console)
    assert cli(["locate", str(board), str(cfg), "--run", "--console", "0xE0000000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(r"page fault at 0x4000[0-9a-f]{4}: access to "
                                               r"0xe0000000, and its page is read-only", err)


# -- the page tables' size and the configuration ------------------------------------------------
def toy(machine: str = "i386"):
    code = struct.pack("<2I", 0x402000, 0x403000)
    return toy_program([(".text", TEXT, 0x401000, 0x20, code.ljust(0x20, b"\x90"), 16),
                        (".data", DATA, 0x402000, 0x2400, bytes(0x2400)),
                        (".bss", BSS, 0x405000, 0x100)],
                       [(0, 0, R_386_32, IMAGE, 0x402000), (0, 4, R_386_32, IMAGE, 0x403000)],
                       [("start", 0, 0x401000)], machine=machine)


REGIONS = """
Region ROM 10000h 64k ROM
Region RAM 3F0000h 128k RAM
Region UART E0000000h 4k Device
Virtual V 40000000h
Virtual W 40400000h 8M
Locate Section .text ROM
Locate Section .data V->RAM
Locate Section .bss RAM
"""


def test_the_page_tables_take_a_page_and_one_per_4mib_area_the_regions_touch():
    # areas: 0 (ROM, RAM's start), 1 (RAM's end), 0x380 (UART), 0x100 (V: 4 MiB by default),
    # 0x101 and 0x102 (W)
    located = locate(toy(), config(REGIONS + "Locate PageTable Pages RAM\n"))
    assert located.page_table.size == PAGE * (1 + 6) and located.page_table.address % PAGE == 0
    assert located.region("V").size == 4 << 20
    # what they need: the areas with a present page (W is unused)
    assert located.paging.needed == PAGE * (1 + 4)
    bigger = locate(toy(), config(REGIONS + "Locate PageTable Pages RAM 40k\n"))
    assert bigger.page_table.size == 40 << 10
    data = bigger.image.read(bigger.page_table.address, 40 << 10)
    assert data[PAGE * 5:] == bytes(len(data) - PAGE * 5)  # the rest is zeros
    # .data (0x2400 bytes) runs in V, its three pages are RAM's, placed after it
    data_entity = bigger.section_entity(1)
    assert (data_entity.address, data_entity.backing.size) == (0x4000_0000, 3 * PAGE)
    assert bigger.load_address(1) == data_entity.backing.address


def test_a_stack_or_heap_without_a_size_in_a_virtual_region_takes_what_its_pages_can_back():
    located = locate(toy(), config(REGIONS + "Locate PageTable Pages ROM\n"
                                   "Locate Heap Heap W->RAM\nLocate Stack Stack V->RAM 8k\n"))
    heap = next(e for e in located.entities if e.kind is EntityKind.HEAP)
    ram = located.region("RAM")
    assert heap.address == 0x4040_0000 and heap.size % PAGE == 0
    assert heap.backing.end == ram.end and ram.free == 0  # every page of RAM left
    assert located.boot.heap == heap.address and located.boot.heap_size == heap.size


def test_the_layout_of_a_paged_locate_is_reserved_by_its_pages(tmp_path):
    first = locate(toy(), config(REGIONS + "Locate PageTable Pages RAM\n"))
    write_outputs(first, tmp_path / "first")
    layout = (tmp_path / "first" / "layout.json").read_text()
    assert '"paging": {' in layout and '"pages": ' in layout
    second = locate(toy(), config(REGIONS.replace("Virtual V 40000000h", "Virtual V 50000000h")
                                  .replace("Virtual W 40400000h 8M", "")
                                  + f"Locate PageTable Pages RAM\nReserve {tmp_path / 'first'}\n"))
    taken = [e for e in second.entities if e.kind is EntityKind.RESERVED]
    assert taken and all(e.region in ("ROM", "RAM") for e in taken)  # (not V's addresses)
    assert second.section_entity(1).backing.address >= first.section_entity(1).backing.end


def test_the_map_and_the_picture_show_what_backs_a_virtual_region(tmp_path):
    located = locate(toy(), config(REGIONS + "Locate PageTable Pages RAM\n"))
    written = write_outputs(located, tmp_path / "out")
    text = written["map"].read_text()
    assert re.search(r"V\s+Virtual -\s+0x40000000 0x40400000", text)
    # (named after .data and .bss, the tables follow their pages)
    assert re.search(r"Page tables at 0x3f4000: 0x7000 bytes \(0x5000 used\)", text)
    assert re.search(r"0x40000000-0x40003000 -> 0x003f0000-0x003f3000 read/write, user\s+section "
                     r"\.data in V, its pages in RAM", text)
    assert re.search(r"0xe0000000-0xe0001000 -> 0xe0000000-0xe0001000 read/write, user\s+region UART",
                     text)
    page = written["html"].read_text()
    assert 'class="paged"' in page and "its pages at 0x3f0000-0x3f3000 in RAM" in page
    assert "paging, page tables at 0x3f4000" in page


@pytest.mark.parametrize(("text", "line", "message"), [
    ("Virtual V 40000800h 4k\nLocate PageTable P RAM", 4, r"virtual region V \[0x40000800, "
     r"0x40001800\) is not page aligned: its address and size must be multiples of 0x1000"),
    ("Virtual V 40000000h 6k\nLocate PageTable P RAM", 4, "is not page aligned"),
    ("Virtual V 40000000h 64k", 4, "virtual region V needs paging: add a Locate PageTable"),
    ("Virtual V 40000000h\nLocate PageTable P RAM\nLocate PageTable Q RAM", 6,
     r"a second Locate PageTable \(the first is at test.cfg:5\)"),
    ("Virtual V 40000000h\nLocate PageTable P RAM 4k", 5, r"page table P: 0x1000 bytes are too "
     r"small; the root table and the page tables of the 2 areas of 0x400000 bytes mapped take 0x3000"),
    ("Virtual V 40000000h\nLocate PageTable P RAM\nLocate Stack S V->RAM 48k", 6,
     r"the physical pages of stack S do not fit: pages pages of S \(0xc000 bytes, aligned to "
     r"0x1000\) does not fit region RAM \[0x0, 0x10000\)"),
    ("Virtual V 40000000h\nLocate PageTable P RAM\nLocate Stack S V", 6,
     r"region V is virtual: name the physical region whose pages hold the stack \(V->RAM\)"),
    ("Virtual V 40000000h\nLocate PageTable P RAM\nLocate Stack S RAM->RAM", 6,
     "RAM->RAM: region RAM is not virtual"),
    ("Virtual V 40000000h\nVirtual W 50000000h\nLocate PageTable P RAM\nLocate Stack S V->W", 7,
     "the pages behind a virtual region are physical memory, and W is virtual too"),
    ("Virtual V 40000000h\nLocate PageTable P RAM\nLocate Header H V->RAM", 6,
     "a Header is read at its physical address before paging is on"),
    ("Virtual V 40000000h\nLocate PageTable P V->RAM", 5, "a PageTable is read at its physical"),
    ("Virtual V 40000000h\nLocate PageTable P RAM\nLocate Stack S V->UART", 6,
     "region UART is a device or has no access"),
    ("Virtual V 0h 4k\nLocate PageTable P RAM", 4, r"region V \[0x0, 0x1000\) overlaps region RAM"),
    ("Virtual V 40000000h\nLocate PageTable P RAM\nFillRAM V", 6,
     "FillRAM V: unused RAM is not remapped into a virtual region"),
])
def test_bad_paging_configurations_name_their_file_and_line(text, line, message):
    base = "Region RAM 0h 64k RAM\nRegion UART E0000000h 4k Device\nLocate Section .text RAM\n"
    with pytest.raises(ConfigError, match=message) as caught:
        program = toy_program([(".text", TEXT, 0x401000, 0x20)])
        locate(program, config(base + text + "\n"))
    assert (caught.value.file, caught.value.line) == ("test.cfg", line)
    assert str(caught.value).startswith(f"test.cfg:{line}: ")


@pytest.mark.parametrize(("command", "line", "message"), [
    ("Virtual V 40000000h 64k", 4, r"virtual region V needs paging, and the arm CPU of toy has none "
     r"linkload knows \(virtual regions are for i386 programs\)"),
    ("", 3, r"Locate PageTable: the arm CPU has no paging linkload knows \(programs for i386 have\)"),
])
def test_paging_is_for_a_cpu_whose_paging_linkload_knows(command, line, message):
    program = toy_program([(".text", TEXT, 0x0800_0000, 0x20)], machine="arm")
    text = f"Region RAM 20000000h 64k RAM\nLocate Section .text RAM\nLocate PageTable P RAM\n{command}"
    with pytest.raises(ConfigError, match=message) as caught:
        locate(program, config(text))
    assert (caught.value.file, caught.value.line) == ("test.cfg", line)


def test_virtual_commands_parse_in_both_syntaxes():
    spaced = parse("Virtual V 40000000h 1M\nLocate Section .data V->RAM 0 16 ReadOnly", "x.cfg")
    commas = parse("Virtual = V, 40000000h, 1M\nLocate = Section, .data, V->RAM, 0, 16, ReadOnly",
                   "x.cfg")
    for a, b in zip(spaced, commas, strict=True):
        assert {k: v for k, v in vars(a).items() if k != "where"} == \
            {k: v for k, v in vars(b).items() if k != "where"}
    virtual, locate_ = spaced
    assert (virtual.name, virtual.address, virtual.size, virtual.virtual) == ("V", 0x4000_0000, 1 << 20,
                                                                              True)
    assert (locate_.region, locate_.physical, locate_.access) == ("V", "RAM", "ReadOnly")
    (default,) = parse("Virtual V 40000000h", "x.cfg")
    assert default.size == 0  # (the locator gives it one area of the CPU's page tables)


# -- the i386 encoding and the emulated CPU's paging --------------------------------------------
def test_i386_entries_have_the_sdm_bits():
    rw_user = PageAccess.READ | PageAccess.WRITE | PageAccess.USER
    entries = page_entries(np.array([0x1234_5000, 0x6000, 0x7000, 0x8000]),
                           np.array([rw_user, PageAccess.READ, PageAccess.READ | PageAccess.WRITE,
                                     PageAccess.NONE]))
    # present 1, writable 2, user 4, accessed 0x20, dirty 0x40 (set: the CPU never writes them)
    assert entries.tolist() == [0x1234_5067, 0x6021, 0x7063, 0]
    tables = page_tables(0x10_0000, np.array([0x4000_0000, 0x4000_1000, 0]),
                         np.array([0x20_0000, 0x20_1000, 0]),
                         np.array([rw_user, PageAccess.READ, PageAccess.READ]))
    directory = np.frombuffer(tables[:PAGE], "<u4")
    assert len(tables) == 3 * PAGE and np.flatnonzero(directory).tolist() == [0, 0x100]
    assert directory[0] == 0x10_1027 and directory[0x100] == 0x10_2027  # tables in area order
    second = np.frombuffer(tables[2 * PAGE:], "<u4")
    assert second[:3].tolist() == [0x20_0067, 0x20_1021, 0]


def test_an_emulated_cpu_runs_code_at_virtual_addresses_and_reports_page_faults():
    space = EmulatedSpace("i386", memory=[(0, 1 << 20, "ram"), (0x7FF0_0000, 0x20000, "linkload")],
                          runtime_region="linkload", stack_size=0x10000)
    code = bytes.fromhex("a100000040" "c70500100040" "01000000" "c3")  # mov eax,[V]; mov [V+4k],1
    space.write(0x3000, code)
    space.write(0x2000, struct.pack("<I", 1234))
    pages = np.array([0x4000_0000, 0x4000_1000, 0x5000_0000])
    rw = int(PageAccess.READ | PageAccess.WRITE)
    space.write(0x10_000, page_tables(0x10_000, pages, np.array([0x2000, 0x4000, 0x3000]),
                                      np.array([rw, int(PageAccess.READ), rw])))
    space.flush(0, 1 << 20)
    space.enable_paging(0x10_000)
    assert space.paging_root == 0x10_000 and space.reg("cr3") == 0x10_000
    assert space.reg("cr0") & 0x8001_0000 == 0x8001_0000
    assert space.translate(0x4000_0004) == (0x2004, PageAccess.READ | PageAccess.WRITE)
    assert space.read_virtual(0x4000_0000, 4) == struct.pack("<I", 1234)
    with pytest.raises(EmulationError, match=r"page fault at 0x50000005: access to 0x40001000, and "
                                             r"its page is read-only \(a write\)"):
        space.call(0x5000_0000)
    with pytest.raises(EmulationError, match="0x60000000 is not mapped by the page tables"):
        space.write_virtual(0x6000_0000, b"x")


def test_the_emulators_own_pages_need_an_area_the_program_leaves_free():
    space = EmulatedSpace("i386", memory=[(0, 1 << 20, "ram"), (0x7FF0_0000, 0x20000, "linkload")],
                          runtime_region="linkload", stack_size=0x10000)
    rw = int(PageAccess.READ | PageAccess.WRITE)
    space.write(0x10_000, page_tables(0x10_000, np.array([0x7FC0_0000]), np.array([0]),
                                      np.array([rw])))
    with pytest.raises(EmulationError, match=r"map the area \[0x7fc00000, 0x80000000\), where the "
                                             r"emulator keeps its own pages"):
        space.enable_paging(0x10_000)
