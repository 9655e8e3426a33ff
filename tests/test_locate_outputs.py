"""What a locate writes: an ELF image (run and load addresses, symbols moved), Intel HEX, a raw
binary per ROM region, the text map, the JSON layout (which Reserve reads back) and the HTML
picture of the memory map."""

from __future__ import annotations

import io
import json
import re
import struct
from html.parser import HTMLParser

import pytest
from elftools.elf.elffile import ELFFile

from linkload import FormatError
from linkload.arch.i386 import R_386_32
from linkload.formats import ihex, read_module
from linkload.locate import EntityKind, locate
from linkload.locate.html import COLOURS
from linkload.locate.output import write_outputs
from locateutil import BSS, DATA, IMAGE, RODATA, TEXT, config, toy_program

BOARD = """
Region ROM 10000h 64k ROM
Region RAM 100000h 16k RAM
Region UART E0000000h 4k Device
Locate Header Boot ROM
Locate Section .text ROM
Locate Section .rdata ROM
Locate Section .data RAM
Locate Section .bss RAM
Locate Copy .data ROM
Locate Copy .rdata RAM Deflate
Locate Stack Stack RAM 1k
Locate Heap Heap RAM 2k
"""


def program():
    text = struct.pack("<4I", 0x402000, 0x403000, 0x404010, 0x90909090)
    return toy_program([(".text", TEXT, 0x401000, 0x40, text.ljust(0x40, b"\xcc"), 16),
                        (".rdata", RODATA, 0x402000, 0x20, b"read only data..".ljust(0x20, b".")),
                        (".data", DATA, 0x403000, 0x10, struct.pack("<I", 0x401000) + b"data"),
                        (".bss", BSS, 0x404000, 0x40)],
                       [(0, 0, R_386_32, IMAGE, 0x402000), (0, 4, R_386_32, IMAGE, 0x403000),
                        (0, 8, R_386_32, IMAGE, 0x404010), (2, 0, R_386_32, IMAGE, 0x401000)],
                       [("start", 0, 0x401000), ("message", 1, 0x402000), ("counter", 3, 0x404010)],
                       entry=0x401004)


@pytest.fixture
def outputs(tmp_path):
    located = locate(program(), config(BOARD))
    return located, write_outputs(located, tmp_path / "out")


def test_every_output_is_written(outputs, tmp_path):
    _located, written = outputs
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "ROM.bin", "layout.json", "map.html", "map.txt", "toy.elf", "toy.hex"]
    assert set(written) == {"elf", "hex", "map", "layout", "html", "bin:ROM"}


def test_intel_hex_holds_every_stored_byte_and_the_entry(outputs):
    located, written = outputs
    memory, entry = ihex.read(written["hex"].read_text())
    expected = {a + i: b for a, data in located.loaded_chunks() for i, b in enumerate(data)}
    assert memory == expected and entry == located.entry
    lines = written["hex"].read_text().splitlines()
    assert lines[0] == ":020000040001F9" and lines[-1] == ":00000001FF"  # upper 16 bits 0x0001
    broken = written["hex"].read_text().replace(lines[1], lines[1][:-2] + "00")
    with pytest.raises(FormatError, match="line 2 is not a valid record"):
        ihex.read(broken)


def test_hex_records_do_not_cross_64k_pages():
    text = ihex.write([(0x1FFF8, bytes(range(16)))])
    memory, _ = ihex.read(text)
    assert memory == {0x1FFF8 + i: i for i in range(16)}
    assert text.count(":02000004") == 2  # a new upper address for 0x20000


def test_the_elf_image_has_run_and_load_addresses_and_moved_symbols(outputs):
    located, written = outputs
    elf = ELFFile(io.BytesIO(written["elf"].read_bytes()))
    assert elf["e_machine"] == "EM_386" and elf["e_entry"] == located.entry
    sections = {s.name: s for s in elf.iter_sections()}
    data = located.section_entity(2)
    assert sections[".data"]["sh_addr"] == data.address == 0x100000
    segment = next(s for s in elf.iter_segments() if s["p_vaddr"] == data.address)
    assert segment["p_paddr"] == data.load != data.address  # stored in ROM, runs in RAM
    assert segment.data() == located.images[2].tobytes().ljust(0x10, b"\0")
    # a compressed copy: the section carries nothing, the zlib stream is a section of its own
    assert sections[".rdata"]["sh_type"] == "SHT_NOBITS"
    copy = next(e for e in located.entities if e.kind is EntityKind.COPY and e.compressed)
    assert sections[".linkload.copy.rdata"]["sh_addr"] == copy.address
    assert sections[".linkload.boot"].data() == located.boot.pack()
    assert sections[".bss"]["sh_type"] == "SHT_NOBITS"
    symbols = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
    assert symbols["start"] == located.symbol("start") == located.section_addresses[0]
    assert symbols["counter"] == located.section_addresses[3] + 0x10
    # linkload's own reader takes it back: sections at their run addresses
    module = read_module(written["elf"])
    assert {s.name: s.address for s in module.sections}[".text"] == located.section_addresses[0]


def test_a_raw_binary_per_rom_region_starts_at_the_region(outputs):
    located, written = outputs
    rom = written["bin:ROM"].read_bytes()
    for address, data in located.loaded_chunks():
        if 0x10000 <= address < 0x20000:
            assert rom[address - 0x10000:address - 0x10000 + len(data)] == data
    text = located.section_entity(0)
    gap = rom[located.header.end - 0x10000:text.address - 0x10000]
    assert gap == b"\xff" * len(gap)  # unused flash reads as erased
    assert len(rom) == max(a + len(d) for a, d in located.loaded_chunks() if a < 0x20000) - 0x10000


def test_the_text_map_shows_regions_entities_sections_fixups_and_the_boot_table(outputs):
    located, written = outputs
    text = written["map"].read_text()
    rom = located.region("ROM")
    assert re.search(rf"ROM\s+ROM\s+Assign\s+0x00010000 0x00020000\s+0x10000\s+{rom.used:#x}\s+"
                     rf"{rom.free:#x} {rom.bottom:#010x} {rom.top:#010x}", text)
    assert re.search(r"section\s+\.data\s+RAM\s+0x00100000 0x000100[0-9a-f]{2}\s+0x10\s+0x0", text)
    assert re.search(r"\.text\s+0x00401000 0x00010[0-9a-f]{3} 0x00010[0-9a-f]{3}\s+0x40\s+-0x3f[0-9a-f]{4}"
                     r"\s+3\s+3", text)
    assert "sections moved one by one" in text and "fixups: 4, 4 rewritten" in text
    assert re.search(r"Boot table at 0x10000: entry 0x10[0-9a-f]{3}", text)
    assert re.search(r"COPY\s+0x00100000 <- 0x000100[0-9a-f]{2}\s+0x8 bytes", text)
    assert re.search(r"0x00404010 0x001000[0-9a-f]{2} \.bss\s+counter", text)


def test_the_layout_is_json_and_reserve_reads_it_back(outputs, tmp_path):
    located, written = outputs
    layout = json.loads(written["layout"].read_text())
    assert layout["program"] == "toy" and layout["entry"] == located.entry
    assert [r["name"] for r in layout["regions"]] == ["ROM", "RAM", "UART"]
    assert {e["kind"] for e in layout["entities"]} >= {"header", "section", "copy", "stack", "heap"}
    assert layout["sections"][2]["load"] == located.section_entity(2).load
    assert layout["boot"]["entries"][0]["op"] == "COPY"
    # a second program kept out of the first one's memory
    second = locate(program(), config(f"Reserve {tmp_path / 'out'}\n" + BOARD))
    assert second.header.address >= located.region("ROM").bottom
    assert second.section_entity(2).address >= located.region("RAM").bottom


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.titles: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_data(self, data):
        if self._in_title:
            self.titles.append(data)

    def handle_endtag(self, tag):
        self._in_title = False


def test_the_html_page_draws_every_entity_and_copy_without_a_server(outputs):
    located, written = outputs
    text = written["html"].read_text()
    page = _Html()
    page.feed(text)
    tags = [t for t, _ in page.tags]
    assert "svg" in tags and "script" not in tags and "link" not in tags
    assert not re.search(r"(src|href)=", text)  # nothing fetched
    blocks = [a for t, a in page.tags if t == "rect" and "entity" in a.get("class", "")]
    placed = [e for e in located.entities if e.placed]
    assert len(blocks) >= len(placed)  # (in the zoomed bars too)
    kinds = {a["class"].split()[1] for a in blocks}
    assert kinds >= {"code", "rodata", "data", "bss", "copy", "stack", "heap", "header"}
    assert all(a["fill"] == COLOURS[a["class"].split()[1]] for a in blocks)
    copies = [a for t, a in page.tags if t == "path" and a.get("class") == "copy"]
    assert len(copies) == 2
    assert any(t.startswith(".data: copied from ") for t in page.titles)
    assert any("section .data\nregion RAM\nruns at 0x100000-0x100010" in t for t in page.titles)
    assert any(t.startswith("UART: 0x1000 bytes") for t in page.titles)  # a bar per region
