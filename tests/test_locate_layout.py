"""Placing a program as RTLoc does: regions filled from their high-water marks in the order
entities are named, alignment the larger of the one asked for and the section's own,
Reserve, copies, stack and heap, FillRAM, the boot table, the load image, and the errors."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from linkload import ConfigError, LinkError, PlacementError
from linkload.locate import BootEntry, BootTable, EntityKind, Op, locate
from linkload.locate.config import Alloc
from locateutil import BSS, DATA, RODATA, TEXT, config, toy_program

BOARD = """
Region ROM 10000h 64k ROM
Region RAM 100000h 16k RAM
"""


def program():
    return toy_program([(".text", TEXT, 0x401000, 0x100, bytes(range(256)), 16),
                        (".rdata", RODATA, 0x402000, 0x40),
                        (".data", DATA, 0x403000, 0x20, b"\x11" * 0x10),
                        (".bss", BSS, 0x404000, 0x80)], entry=0x401010)


EVERYTHING = BOARD + """
Locate Header Boot ROM
Locate Section .text ROM
Locate Section .rdata ROM 0 256
Locate Section .data RAM
Locate Section .bss RAM
"""


def placed(located, name):
    return next(e for e in located.entities if e.name == name)


def test_entities_fill_their_regions_in_the_order_named_from_the_high_water_mark():
    located = locate(program(), config(EVERYTHING + "Locate Stack Stack RAM 1k\n"))
    header = placed(located, "Boot")
    assert header.address == 0x10000  # first named, first placed
    text = placed(located, ".text")
    assert text.address == (0x10000 + header.size + 15) // 16 * 16
    rdata = placed(located, ".rdata")
    assert rdata.address == (text.end + 255) // 256 * 256  # max(256 asked, 4 its own)
    assert placed(located, ".data").address == 0x100000
    assert placed(located, ".bss").address == 0x100020
    assert placed(located, "Stack").address == 0x100000 + 0x20 + 0x80  # 16-aligned already
    rom = located.region("ROM")
    assert rom.bottom == rdata.end and rom.top == rom.end
    assert list(located.section_addresses) == [text.address, rdata.address, 0x100000, 0x100020]
    assert located.entry == text.address + 0x10


def test_top_down_entities_go_below_the_top_mark():
    located = locate(program(), config(EVERYTHING + "Locate Stack Stack RAM 1k 0 Assign TopDown\n"
                                       "Locate Stack Second RAM 1k 0 Assign TopDown\n"))
    assert placed(located, "Stack").address == 0x104000 - 0x400
    assert placed(located, "Second").address == 0x104000 - 0x800
    assert placed(located, "Stack").alloc is Alloc.TOP_DOWN
    assert located.region("RAM").top == 0x104000 - 0x800


def test_an_entity_that_does_not_fit_names_the_region_the_sizes_and_what_is_there():
    with pytest.raises(PlacementError) as caught:
        locate(program(), config(EVERYTHING + "Locate Stack Stack RAM 16k\n"))
    message = str(caught.value)
    assert ("stack Stack (0x4000 bytes, aligned to 0x10) does not fit region RAM "
            "[0x100000, 0x104000)") in message
    assert "0x3f60 of its 0x4000 bytes are free" in message
    assert "section .data [0x100000, 0x100020), section .bss [0x100020, 0x1000a0)" in message


def test_reserve_moves_the_bottom_mark_past_what_an_earlier_image_occupies(tmp_path):
    earlier = {"program": "boot", "entities": [
        {"kind": "section", "name": ".text", "address": 0x10000, "size": 0x1234},
        {"kind": "stack", "name": "S", "address": 0x103000, "size": 0x100},  # above our data
        {"kind": "free", "name": "ignored", "address": 0x100000, "size": 0x4000}]}
    (tmp_path / "layout.json").write_text(json.dumps(earlier))
    located = locate(program(), config(f"Reserve {tmp_path}\n" + EVERYTHING))
    assert placed(located, "Boot").address == 0x11234  # (4-aligned)
    reserved = [e for e in located.entities if e.kind is EntityKind.RESERVED]
    assert [(e.region, e.address, e.size) for e in reserved] == [("ROM", 0x10000, 0x1234),
                                                                ("RAM", 0x103000, 0x100)]
    # RTLoc does not fragment a region: nothing goes below the stack that was reserved
    assert located.region("RAM").bottom >= 0x103100


def test_reserve_of_something_else_is_refused(tmp_path):
    (tmp_path / "layout.json").write_text("{}")
    with pytest.raises(ConfigError, match="test.cfg:1: Reserve: .* is not a layout"):
        locate(program(), config(f"Reserve {tmp_path}\n" + EVERYTHING))


def test_copies_store_a_section_in_rom_after_the_fixed_entities():
    located = locate(program(), config(EVERYTHING + "Locate Copy .data ROM\nLocate Copy .rdata RAM\n"))
    copy = next(e for e in located.entities if e.kind is EntityKind.COPY and e.name == ".data")
    assert copy.address == placed(located, ".rdata").end  # after every fixed entity
    data = located.section_entity(2)
    assert data.address == 0x100000 and data.load == copy.address
    assert located.image.read(copy.address, 0x10) == b"\x11" * 0x10
    entries = located.boot.entries
    assert entries[0] == BootEntry(Op.COPY, 0x100000, copy.address, 0x10)
    # only the initialised bytes are copied; the tail and the bss are zeroed
    assert BootEntry(Op.ZERO, 0x100010, 0, 0x10) in entries
    assert BootEntry(Op.ZERO, 0x100020, 0, 0x80) in entries


def test_a_compressed_copy_is_a_zlib_stream_that_inflates_to_the_section():
    located = locate(program(), config(EVERYTHING + "Locate Copy .text ROM Deflate\n"))
    copy = next(e for e in located.entities if e.kind is EntityKind.COPY)
    assert copy.compressed
    stored = located.image.read(copy.address, copy.stored)
    assert zlib.decompress(stored) == bytes(range(256))
    assert located.boot.entries[0] == BootEntry(Op.INFLATE, placed(located, ".text").address,
                                                copy.address, 0x100)


def test_stack_and_heap_without_a_size_take_the_rest_of_their_region():
    located = locate(program(), config(EVERYTHING + "Locate Heap Heap RAM\nLocate Stack Stack RAM 2k\n"))
    stack, heap = placed(located, "Stack"), placed(located, "Heap")
    assert stack.address == 0x1000a0 and stack.size == 0x800  # of fixed size: placed first
    assert heap.address == stack.end and heap.end == 0x104000
    assert (located.boot.heap, located.boot.heap_size) == (heap.address, heap.size)
    assert located.boot.stack_top == stack.end


def test_fill_ram_gives_the_unused_ram_of_other_regions_to_the_named_one():
    text = BOARD + """
Region RAM2 200000h 8k RAM
Region RAM3 300000h 4k RAM ReadOnly
Locate Header Boot ROM
Locate Section .text ROM
Locate Section .rdata ROM
Locate Section .data RAM2
Locate Section .bss RAM2
Locate Heap Heap RAM
Locate Stack Stack RAM2
FillRAM RAM
"""
    located = locate(program(), config(text))
    free = [e for e in located.entities if e.kind is EntityKind.FREE]
    # RAM2's stack has no size and is not in the FillRAM region: it took RAM2's rest first
    assert placed(located, "Stack").end == 0x202000 and not free
    text = text.replace("Locate Stack Stack RAM2", "Locate Stack Stack RAM 1k")
    located = locate(program(), config(text))
    (block,) = [e for e in located.entities if e.kind is EntityKind.FREE]  # RAM3 is not Assign
    assert (block.region, block.address, block.end) == ("RAM2", 0x2000a0, 0x202000)
    assert BootEntry(Op.FREE, 0x2000a0, 0, 0x2000 - 0xa0) in located.boot.entries
    heap = placed(located, "Heap")
    assert heap.address == placed(located, "Stack").end and heap.end == 0x104000


def test_the_boot_table_is_stored_where_locate_header_put_it():
    located = locate(program(), config(EVERYTHING + "Locate Stack Stack RAM 1k\nLocate Copy .data ROM\n"))
    header = located.header
    table = BootTable.unpack(located.image.read(header.address, header.size))
    assert table == located.boot
    assert table.entry == located.entry and table.stack_top == placed(located, "Stack").end
    raw = located.image.read(header.address, 16)
    assert raw[:4] == b"LLBT" and raw[4:8] == b"\x01\x00\x04\x00"  # version 1, 4-byte words


def test_the_boot_table_format_round_trips_in_both_byte_orders():
    entries = (BootEntry(Op.COPY, 0x100, 0x200, 0x10), BootEntry(Op.INFLATE, 1, 2, 3),
               BootEntry(Op.ZERO, 0x300, 0, 0x40), BootEntry(Op.FREE, 0x400, 0, 0x1000))
    for order, word in (("<", 4), (">", 4), ("<", 8)):
        table = BootTable(0x1234, 0x8000, 0x9000, 0x100, entries, word, order)
        packed = table.pack()
        assert len(packed) == table.size == 16 + 4 * word * 5
        assert BootTable.unpack(packed + b"junk") == table
    with pytest.raises(LinkError, match="no boot table"):
        BootTable.unpack(b"LLBX" + bytes(60))
    bad = bytearray(BootTable(1, 2, 3, 4, entries[:1]).pack())
    bad[32] = 9  # the first entry's op
    with pytest.raises(LinkError, match="unknown op 9"):
        BootTable.unpack(bytes(bad))


def test_the_load_image_holds_what_is_stored_at_load_time():
    located = locate(program(), config(EVERYTHING))
    text = placed(located, ".text")
    assert located.image.read(text.address, 0x100) == bytes(range(256))
    # a section in ROM keeps its zeros in the image; one in RAM only its initialised bytes,
    # and the rest of it is zeroed by the boot table
    data = placed(located, ".data")
    assert (data.load, data.stored) == (data.address, 0x10)
    assert BootEntry(Op.ZERO, data.address + 0x10, 0, 0x10) in located.boot.entries
    assert placed(located, ".bss").stored == 0
    chunks = located.loaded_chunks()
    assert [a for a, _ in chunks] == sorted(a for a, _ in chunks)
    assert (data.address, b"\x11" * 0x10) in chunks


def test_ntsections_keep_their_offsets_as_one_block():
    located = locate(program(), config(BOARD.replace("16k", "32k") + """
Locate Header Boot RAM
Locate NTSection .text RAM
Locate NTSection .bss RAM
"""))
    block = next(e for e in located.entities if e.kind is EntityKind.IMAGE)
    assert block.members == (0, 1, 2, 3)  # the sections between the named ones come along
    header = located.header
    assert block.address == header.end + 15 - (header.end + 15) % 16  # the largest own alignment
    delta = block.address - 0x401000
    assert list(located.section_addresses) == [a + delta for a in (0x401000, 0x402000, 0x403000, 0x404000)]
    assert located.fixups.whole and located.fixups.delta == delta
    # the block's sections are in the load image, each at its place in the block
    assert located.image.read(block.address, 0x100) == bytes(range(256))
    assert located.image.read(block.address + 0x2000, 0x10) == b"\x11" * 0x10


@pytest.mark.parametrize(("commands", "error", "message"), [
    ("Locate Section .text ROM\nLocate Section .nope ROM\n", ConfigError,
     r"test.cfg:\d+: the program has no section '.nope' \(it has .text, .rdata, .data, .bss\)"),
    ("Locate Section .text ROM\nLocate Section .data ROM\n", ConfigError,
     "section .data is written by the program: region ROM is ROM"),
    ("Locate Section .text ROM\n", ConfigError, "sections .rdata, .data, .bss are not located"),
    ("Locate Section .text ROM\nLocate Section .text RAM\n", ConfigError, "located twice"),
    # a section of the NTSection block (named, or lying between NTSections) located on its own
    # too: the block's copy was placed and its own entity kept, unplaced (found by fuzzing)
    ("Locate NTSection .data RAM\nLocate Section .data RAM\n", ConfigError,
     r"test.cfg:\d+: section .data is located twice: by a Locate Section of its own and in "
     "the NTSection block"),
    ("Locate NTSection .text RAM\nLocate Section .rdata ROM\nLocate NTSection .data RAM\n",
     ConfigError, "section .rdata is located twice"),
    ("Locate NTSection .text ROM\nLocate NTSection .rdata RAM\n", ConfigError,
     "must share one region"),
    ("Locate Stack S ROM 1k\n", ConfigError, "a stack must be in RAM"),
    ("Locate Copy .comment ROM\nLocate Section .text ROM\nLocate Section .rdata ROM\n"
     "Locate Section .data RAM\nLocate Section .bss RAM\n", ConfigError,
     "Locate Copy .comment: no section of that name is located"),
    ("Locate Section .text DEV\n", ConfigError, "region DEV is a device"),
    ("Locate Section .text ROM 10h\n", ConfigError, "smaller than section .text"),
])
def test_configuration_errors(commands, error, message):
    with pytest.raises(error, match=message):
        locate(program(), config(BOARD + "Region DEV E0000000h 4k Device\n" + commands))


def test_the_input_program_is_not_changed():
    prog = program()
    before = [s.data for s in prog.sections]
    located = locate(prog, config(EVERYTHING))
    located.images[0][:] = 0
    assert [s.data for s in prog.sections] == before
    assert isinstance(located.images[0], np.ndarray)
