"""Fixups recomputed for where sections landed: the whole image by one delta (NTSection),
sections one by one (Section) with every target found, PC-relative fields, the halves of PE's
HIGH/LOW/HIGHADJ, and the fixups that cannot be recomputed."""

from __future__ import annotations

import struct

import pytest

from linkload import (
    FixupError,
    LinkError,
    RelocationOverflowError,
    UnsupportedError,
    UnsupportedFixupError,
)
from linkload.arch.i386 import (
    R_386_32,
    R_386_PC32,
    R_386_PE_HIGH,
    R_386_PE_HIGHADJ,
    R_386_PE_LOW,
)
from linkload.locate import locate
from linkload.model import FIXED, MOVES_CODE_TOGETHER
from locateutil import BSS, DATA, IMAGE, IMAGE_PART, RODATA, TEXT, config, toy_program, word

R_386_16, R_386_GOTOFF = 20, 9
TEXT_AT, RDATA_AT, DATA_AT, BSS_AT = 0x401000, 0x402000, 0x403000, 0x404000


def le(*words: int) -> bytes:
    return struct.pack(f"<{len(words)}I", *words)


def program(extra_fixups=(), text=None, symbols=()):
    """.text holds four absolute words, .data two pointers, as a PE image's fixups see them."""
    code = text if text is not None else le(RDATA_AT + 8, DATA_AT, BSS_AT + 0x10, 0x401ff0)
    fixups = [(0, 0, R_386_32, IMAGE, RDATA_AT + 8), (0, 4, R_386_32, IMAGE, DATA_AT),
              (0, 8, R_386_32, IMAGE, BSS_AT + 0x10), (2, 0, R_386_32, IMAGE, TEXT_AT + 4),
              (2, 4, R_386_32, IMAGE, BSS_AT + 0x80), *extra_fixups]
    return toy_program([(".text", TEXT, TEXT_AT, 0x20, code.ljust(0x20, b"\0")),
                        (".rdata", RODATA, RDATA_AT, 0x10),
                        (".data", DATA, DATA_AT, 8, le(TEXT_AT + 4, BSS_AT + 0x80)),
                        (".bss", BSS, BSS_AT, 0x80)], fixups, symbols)


WHOLE = """
Region RAM 100000h 64k RAM
Locate NTSection .text RAM
Locate NTSection .bss RAM
"""
APART = """
Region ROM 10000h 64k ROM
Region RAM 200000h 64k RAM
Locate Section .text ROM
Locate Section .rdata ROM
Locate Section .data RAM
Locate Section .bss RAM 0 100h
"""


def test_the_whole_image_moves_by_one_delta_even_where_a_fixup_points_outside_the_sections():
    fixups = [(0, 12, R_386_32, IMAGE, 0x401FF0)]  # in the gap after .text (folded index)
    located = locate(program(fixups), config(WHOLE))
    delta = 0x100000 - TEXT_AT
    assert located.fixups.whole and located.fixups.delta == delta
    text, data = located.images[0], located.images[2]
    assert [word(text, o) for o in (0, 4, 8, 12)] == [a + delta for a in (
        RDATA_AT + 8, DATA_AT, BSS_AT + 0x10, 0x401FF0)]
    assert [word(data, o) for o in (0, 4)] == [TEXT_AT + 4 + delta, BSS_AT + 0x80 + delta]


def test_sections_moved_apart_get_each_fixup_recomputed_for_its_target():
    located = locate(program(), config(APART))
    new = dict(zip((".text", ".rdata", ".data", ".bss"), located.section_addresses.tolist(),
                   strict=True))
    assert not located.fixups.whole
    text, data = located.images[0], located.images[2]
    assert word(text, 0) == new[".rdata"] + 8
    assert word(text, 4) == new[".data"]
    assert word(text, 8) == new[".bss"] + 0x10
    assert word(data, 0) == new[".text"] + 4
    # a pointer to the end of a section belongs to it (no other section starts there)
    assert word(data, 4) == new[".bss"] + 0x80
    assert located.fixups.per_section(located.program) == [(3, 3), (0, 0), (2, 2), (0, 0)]


def test_a_fixup_pointing_between_sections_is_refused_when_sections_move_apart():
    fixups = [(0, 12, R_386_32, IMAGE, 0x401FF0)]
    with pytest.raises(FixupError) as caught:
        locate(program(fixups), config(APART))
    message = str(caught.value)
    assert "toy.exe: .text+0xc: R_386_32: fixup at 0x40100c (holding 0x401ff0)" in message
    assert "lies in no section" in message and "NTSection" in message


def test_a_symbol_decides_its_target_section_not_its_address():
    # _edata: the end of .rdata, which is where .data would start if they touched
    touching = toy_program([(".rdata", RODATA, 0x402000, 0x10), (".data", DATA, 0x402010, 8)],
                           [(1, 0, R_386_32, 2, 0), (1, 4, R_386_32, 3, 0)],
                           [("_erodata", 0, 0x402010), ("start_of_data", 1, 0x402010)])
    located = locate(touching, config("""
Region ROM 10000h 4k ROM
Region RAM 20000h 4k RAM
Locate Section .rdata ROM
Locate Section .data RAM
"""))
    data = located.images[1]
    assert word(data, 0) == 0x10000 + 0x10  # follows .rdata
    assert word(data, 4) == 0x20000  # follows .data
    assert located.symbol("_erodata") == 0x10010 and located.symbol("start_of_data") == 0x20000


def test_pc_relative_fields_change_only_when_field_and_target_move_apart():
    code = b"\xe8" + le(0x10 - 5) + b"\xe8" + le(DATA_AT - (TEXT_AT + 6) - 4)
    fixups = [(0, 1, R_386_PC32, 2, -4), (0, 6, R_386_PC32, 3, -4)]
    symbols = [("helper", 0, TEXT_AT + 0x10), ("table", 1, DATA_AT)]
    prog = toy_program([(".text", TEXT, TEXT_AT, 0x20, code.ljust(0x20, b"\xcc")),
                        (".data", DATA, DATA_AT, 8)], fixups, symbols)
    located = locate(prog, config("""
Region ROM 10000h 4k ROM
Region RAM 20000h 4k RAM
Locate Section .text ROM
Locate Section .data RAM
"""))
    text = located.images[0]
    assert word(text, 1) == 0x10 - 5  # same section: the same displacement (not rewritten)
    assert word(text, 6) == (0x20000 - (0x10000 + 6) - 4) & 0xFFFF_FFFF
    assert located.fixups.changed.tolist() == [False, True]


def test_pe_half_address_fixups_move_with_the_whole_image():
    high, low, adjusted = 0x0040, 0x3008, 0x0040  # of 0x403008 (HIGHADJ: +0x8000 rounded)
    code = le(0, 0, 0, 0) + struct.pack("<HHH", high, low, adjusted)
    fixups = [(0, 16, R_386_PE_HIGH, IMAGE_PART, high << 16),
              (0, 18, R_386_PE_LOW, IMAGE_PART, low), (0, 20, R_386_PE_HIGHADJ, IMAGE, 0x403008)]
    located = locate(program(fixups, code), config(WHOLE.replace("100000h", "1A000h")))
    delta = 0x1A000 - TEXT_AT
    halves = struct.unpack_from("<HHH", located.images[0].tobytes(), 16)
    assert halves[0] == (high + (delta >> 16)) & 0xFFFF  # PE's HIGH: no carry from the low half
    assert halves[1] == (low + delta) & 0xFFFF
    assert halves[2] == ((0x403008 + delta + 0x8000) >> 16) & 0xFFFF


def test_highadj_holds_a_whole_address_and_moves_with_its_section():
    fixups = [(0, 0x10, R_386_PE_HIGHADJ, IMAGE, 0x403004)]
    code = le(RDATA_AT + 8, DATA_AT, BSS_AT + 0x10, 0) + struct.pack("<H", 0x0040)
    located = locate(program(fixups, code), config(APART.replace("200000h", "2F8000h")))
    new_target = located.section_addresses[2] + 4
    assert struct.unpack_from("<H", located.images[0].tobytes(), 0x10)[0] == \
        ((new_target + 0x8000) >> 16) & 0xFFFF


@pytest.mark.parametrize("kind", [R_386_PE_HIGH, R_386_PE_LOW])
def test_half_an_address_cannot_follow_sections_moved_apart(kind):
    fixups = [(0, 12, kind, IMAGE_PART, 0)]
    with pytest.raises(FixupError, match="half an address.*NTSection"):
        locate(program(fixups), config(APART))


def test_absolute_targets_stay_where_they_are():
    fixups = [(0, 12, R_386_32, 2, 0)]
    code = le(RDATA_AT + 8, DATA_AT, BSS_AT + 0x10, 0xE0000000)
    located = locate(program(fixups, code, [("UART", FIXED, 0xE0000000)]), config(APART))
    assert word(located.images[0], 12) == 0xE0000000 and not located.fixups.changed[3]


def test_a_kind_the_locator_cannot_recompute_is_refused_only_if_it_must_change():
    fixups = [(0, 12, R_386_GOTOFF, 2, 0)]
    symbols = [("local", 0, TEXT_AT)]
    with pytest.raises(UnsupportedFixupError, match=r"\.text\+0xc: R_386_GOTOFF against 'local': "
                                                    "cannot move this fixup: S\\+A-GOT") as caught:
        locate(program(fixups, symbols=symbols), config(APART))
    assert isinstance(caught.value, FixupError) and isinstance(caught.value, UnsupportedError)
    # at its own place nothing changes, so nothing is refused
    located = locate(program(fixups, symbols=symbols), config(WHOLE.replace("100000h", "401000h")))
    assert located.fixups.delta == 0 and not located.fixups.changed.any()


def test_a_value_that_no_longer_fits_its_field_is_an_overflow():
    fixups = [(0, 12, R_386_16, 2, 0)]
    with pytest.raises(RelocationOverflowError, match=r"R_386_16 against 'small'.*does not fit a "
                                                        "16-bit signed or unsigned field"):
        locate(program(fixups, symbols=[("small", 2, DATA_AT)]), config(APART))


def test_linker_made_veneers_forbid_moving_sections_apart():
    prog = program(symbols=[("__far_function_veneer", 0, TEXT_AT + 0x18)])
    with pytest.raises(LinkError, match="__far_function_veneer is a linker-made veneer"):
        locate(prog, config(APART))
    assert locate(prog, config(WHOLE)).fixups.whole  # as a whole it moves with its section


def test_every_symbol_moves_with_its_section():
    symbols = [("start", 0, TEXT_AT), ("buffer", 3, BSS_AT + 0x40), ("PORT", FIXED, 0x3F8)]
    located = locate(program(symbols=symbols), config(APART))
    assert located.symbol("start") == located.section_addresses[0]
    assert located.symbol("buffer") == located.section_addresses[3] + 0x40
    assert int(located.symbol_values[-1]) == 0x3F8


def test_code_sections_that_call_each_other_without_fixups_keep_their_offsets():
    # a PE32 image for i386: its code sections may call one another PC-relatively
    sections = [(".text", TEXT, 0x401000, 0x20), (".text2", TEXT, 0x402000, 0x20),
                (".data", DATA, 0x403000, 8)]
    prog = toy_program(sections, moves=MOVES_CODE_TOGETHER)
    board = "Region ROM 10000h 64k ROM\nRegion RAM 20000h 4k RAM\nLocate Section .data RAM\n"
    located = locate(prog, config(board + "Locate NTSection .text ROM\nLocate NTSection .text2 ROM\n"))
    assert not located.fixups.whole  # code together, data apart
    with pytest.raises(FixupError, match="code sections .text and .text2 may call each other"):
        locate(prog, config(board + "Locate Section .text2 ROM\nLocate Section .text ROM\n"))
