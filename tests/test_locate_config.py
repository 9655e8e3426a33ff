"""The locator's configuration language: RTLoc's commands in both syntaxes, numbers, the order
in which files and the command line are read, and errors naming file, line and what was
expected."""

from __future__ import annotations

import pytest

from linkload import ConfigError
from linkload.locate import configuration
from linkload.locate.config import (
    COMMAND_LINE,
    Alloc,
    Config,
    FillRamCommand,
    LocateCommand,
    MemType,
    RegionCommand,
    ReserveCommand,
    command_line,
    number,
    parse,
)


@pytest.mark.parametrize(("text", "value"), [
    ("4096", 4096), ("0x1000", 0x1000), ("1000h", 0x1000), ("F0000h", 0xF0000),
    ("64k", 65536), ("64K", 65536), ("1M", 1 << 20), ("10h", 16), ("0", 0), ("2G", 2 << 30)])
def test_numbers_take_rtloc_forms(text, value):
    assert number(text) == value


@pytest.mark.parametrize("text", ["RAM", "12q", "0x", "h", "-4", "1.5k"])
def test_words_are_not_numbers(text):
    assert number(text) is None


def test_both_syntaxes_mean_the_same():
    spaced = parse("Region MyROM F0000h 64k ROM\nLocate Section .text MyROM 0 16 ReadOnly TopDown\n",
                   "a.cfg")
    commas = parse("Region = MyROM, F0000h, 64k, ROM ; a comment\n"
                   "Locate = Section, .text, MyROM, 0, 16, ReadOnly, TopDown // another\n", "b.cfg")
    strip = [(type(c), {k: v for k, v in vars(c).items() if k != "where"}) for c in spaced]
    assert strip == [(type(c), {k: v for k, v in vars(c).items() if k != "where"}) for c in commas]
    region, locate = spaced
    assert region == RegionCommand("MyROM", 0xF0000, 0x10000, MemType.ROM, "Assign", region.where)
    assert (locate.entity, locate.name, locate.region, locate.size, locate.align, locate.access,
            locate.alloc) == ("Section", ".text", "MyROM", 0, 16, "ReadOnly", Alloc.TOP_DOWN)


def test_keywords_are_case_insensitive_and_names_are_not():
    (region, locate) = parse("region Ram 0 4k ram readwrite\nLOCATE heap Heap Ram\n", "c.cfg")
    assert region.name == "Ram" and region.memtype is MemType.RAM and region.access == "ReadWrite"
    assert locate.entity == "Heap" and locate.name == "Heap"


def test_blank_and_comment_lines_are_skipped_and_lines_are_counted():
    commands = parse("; header\n\n   // note\nFillRAM RAM\nReserve ../boot/out\n", "dir/x.cfg")
    assert [type(c) for c in commands] == [FillRamCommand, ReserveCommand]
    assert commands[0].where.line == 4
    assert commands[1].path == "dir/../boot/out"  # relative to the configuration file


def test_copy_may_be_compressed():
    (copy,) = parse("Locate Copy .data ROM Deflate", "x.cfg")
    assert copy.compress and copy.size == 0
    with pytest.raises(ConfigError, match="only a Copy can be compressed"):
        parse("Locate Section .data RAM Deflate", "x.cfg")


@pytest.mark.parametrize(("line", "expected"), [
    ("Regoin RAM 0 4k RAM", "expected a command"),
    ("Region RAM zero 4k RAM", "expected the region's address"),
    ("Region RAM 0 lots RAM", "expected the region's size"),
    ("Region RAM 0 4k Flash", r"expected a memory type \(RAM, ROM, Device\)"),
    ("Region RAM 0 4k RAM Sometimes", "expected an access"),
    ("Region RAM 0 4k", r"expected Region Name Address Size MemType \[Access\]"),
    ("Region RAM 0 0 RAM", "has size 0"),
    ("Locate Segment .text RAM", "expected an entity"),
    ("Locate Section .text", "expected Locate Entity Name Region"),
    ("Locate Section .text RAM 0 3", "not a power of two"),
    ("Locate Section .text RAM 0 16 ReadOnly Sideways", "expected an allocation"),
    ("Locate Section .text VRAM->", r"expected VirtualRegion->PhysicalRegion, not 'VRAM->'"),
    ("Locate Section .text A->B->C", r"expected VirtualRegion->PhysicalRegion"),
    ("Virtual V", r"expected Virtual Name Address \[Size\]"),
    ("Virtual V nowhere", "expected the virtual region's address"),
    ("Virtual V 400000h 0", "virtual region V has size 0"),
    ("Region V 400000h 4k Virtual", r"expected a memory type \(RAM, ROM, Device\)"),
    ("FillRAM", "expected FillRAM Region"),
    ("Align 3", "not a power of two"),
])
def test_errors_name_the_file_the_line_and_what_was_expected(line, expected):
    with pytest.raises(ConfigError, match=expected) as caught:
        parse(f"; first line\n{line}\n", "board.cfg")
    assert caught.value.file == "board.cfg" and caught.value.line == 2
    assert str(caught.value).startswith("board.cfg:2: ")


def test_the_command_line_is_one_command_per_argument():
    commands = command_line(["Region RAM 0 4k RAM", "Locate Stack S RAM 1k"])
    assert [c.where.line for c in commands] == [1, 2]
    assert commands[0].where.file == COMMAND_LINE
    with pytest.raises(ConfigError, match=r"<command line>:2: expected a command"):
        command_line(["Region RAM 0 4k RAM", "Nonsense"])


def test_a_configuration_is_checked_as_a_whole():
    with pytest.raises(ConfigError, match=r"x.cfg:2: a second region RAM \(the first is at x.cfg:1\)"):
        Config.of(parse("Region RAM 0 4k RAM\nRegion RAM 8k 4k RAM\n", "x.cfg"))
    with pytest.raises(ConfigError, match=r"x.cfg:2: region B \[0x800, 0x1800\) overlaps region A"):
        Config.of(parse("Region A 0 4k RAM\nRegion B 800h 4k RAM\n", "x.cfg"))
    with pytest.raises(ConfigError, match=r"x.cfg:2: no region 'ROM' \(defined: RAM\)"):
        Config.of(parse("Region RAM 0 4k RAM\nLocate Section .text ROM\n", "x.cfg"))
    with pytest.raises(ConfigError, match="x.cfg:3: a second FillRAM"):
        Config.of(parse("Region RAM 0 4k RAM\nFillRAM RAM\nFillRAM RAM\n", "x.cfg"))


def test_files_come_first_then_the_command_line_and_the_default_file_last(tmp_path):
    program = tmp_path / "app.exe"
    program.write_bytes(b"")
    (tmp_path / "app.cfg").write_text("Region RAM 0 64k RAM\nLocate Stack Default RAM 1k\n")
    board = tmp_path / "board.cfg"
    board.write_text("Region ROM 100000h 64k ROM\nLocate Stack FromFile RAM 1k\n")
    # without a configuration file: the command line, then app.cfg
    config = configuration(program, [], ["Locate Heap Heap RAM"])
    assert [c.name for c in config.locates] == ["Heap", "Default"]
    assert [r.name for r in config.regions] == ["RAM"]
    # with one: it comes first, and app.cfg is not read
    config = configuration(program, [board], ["Region RAM 0 64k RAM", "Locate Heap Heap RAM"])
    assert [c.name for c in config.locates] == ["FromFile", "Heap"]
    assert isinstance(config.locates[0], LocateCommand)


def test_an_unreadable_configuration_is_named(tmp_path):
    with pytest.raises(ConfigError, match="missing.cfg: cannot read the configuration"):
        configuration(None, [tmp_path / "missing.cfg"])
