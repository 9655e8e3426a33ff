"""PE images: the reader (sections, base relocations of every type, COFF symbols), its dump,
malformed images, and mingw-w64 i686 programs located both ways and run in the emulated
target, whose output must equal the program's run where it was linked."""

from __future__ import annotations

import random
import re
import struct
import subprocess

import pytest

from conftest import C_DIR
from linkload import FixupError, FormatError, LinkError, UnsupportedError
from linkload.arch.i386 import R_386_32, R_386_PE_HIGH, R_386_PE_HIGHADJ, R_386_PE_LOW
from linkload.cli import main as cli
from linkload.formats import dump, guess_format, read_module, read_program
from linkload.locate import Program, configuration, locate, locate_program
from linkload.locate.run import run, run_in_place
from linkload.model import IMAGE_ADDRESS, IMAGE_ADDRESS_PART, MOVES_CODE_TOGETHER, SectionKind
from linkload.space.emulated import EmulationError

MINGW = "i686-w64-mingw32-gcc"
FLAGS = ("-O2", "-ffreestanding", "-fno-asynchronous-unwind-tables",
         "-fno-tree-loop-distribute-patterns")
LINK = ("-nostdlib", "-Wl,--enable-reloc-section", "-Wl,-e,_start")
CONSOLE = 0xE000_0000
LOCATE = C_DIR / "locate"

SECTIONS = """
Region ROM 10000h 64k ROM
Region RAM 100000h 64k RAM
Region Console E0000000h 4k Device
Locate Header Boot ROM
Locate Section .text ROM
Locate Section .rdata ROM
Locate Section .data RAM
Locate Section .bss RAM
Locate Section .idata RAM
Locate Copy .data ROM Deflate
Locate Copy .idata ROM
Locate Stack Stack RAM 4k
Locate Heap Heap RAM
"""
NTSECTIONS = """
Region RAM 800000h 1M RAM
Region Console E0000000h 4k Device
Locate Header Boot RAM
Locate NTSection .text RAM
Locate NTSection .idata RAM
Locate Stack Stack RAM 16k
"""


@pytest.fixture(scope="module")
def mingw(toolchain):
    return toolchain(MINGW, None, "i686-w64-mingw32-ld")


def build(mingw, name: str):
    obj = mingw.compile(LOCATE / f"{name}.c", FLAGS)
    return mingw.executable([obj], ldflags=LINK, stem=name)


def configs(tmp_path, text: str, name: str = "board.cfg"):
    path = tmp_path / name
    path.write_text(text)
    return [path]


# -- the reader ----------------------------------------------------------------------------------
def test_a_mingw_image_reads_as_sections_fixups_and_symbols(mingw):
    exe = build(mingw, "board")
    module = read_program(exe)
    assert guess_format(exe.read_bytes(), str(exe)).name == "pe"
    assert (module.machine, module.bits, module.kind) == ("i386", 32, "executable")
    assert module.moves == MOVES_CODE_TOGETHER  # code calls code without a base relocation
    names = [s.name for s in module.sections]
    assert names == [".text", ".data", ".rdata", ".bss", ".idata"]  # .reloc is discardable
    objdump = subprocess.run(["i686-w64-mingw32-objdump", "-h", "-p", str(exe)], check=True,
                             capture_output=True, text=True).stdout
    for s in module.sections:
        line = re.search(rf"{re.escape(s.name)}\s+([0-9a-f]+)\s+([0-9a-f]+)", objdump)
        assert (int(line.group(1), 16), int(line.group(2), 16)) == (s.size, s.address)
    assert module.sections[names.index(".bss")].kind is SectionKind.BSS
    assert module.entry == int(re.search(r"AddressOfEntryPoint\s+([0-9a-f]+)", objdump).group(1), 16) \
        + 0x400000
    # every HIGHLOW objdump lists, at the same place
    listed = sorted(0x400000 + int(rva, 16)
                    for rva in re.findall(r"reloc\s+\d+ offset\s+[0-9a-f]+ \[([0-9a-f]+)\] HIGHLOW", objdump))
    fixups = sorted(module.sections[r.section].address + int(o)
                    for r in module.relocation_runs for o in r.offset.tolist())
    assert fixups == listed and len(fixups) > 10
    # each fixup's addend is the address its field holds; it targets "an address of the image"
    for run_ in module.relocation_runs:
        data = bytes(module.sections[run_.section].data)
        for offset, kind, target, addend in zip(run_.offset.tolist(), run_.kind.tolist(),
                                                run_.target.tolist(), run_.addend.tolist(), strict=True):
            assert kind == R_386_32 and module.symbol_sections[target] == IMAGE_ADDRESS
            assert struct.unpack_from("<I", data, offset)[0] == addend
    start = module.find_symbol("_start")
    assert module.symbols["value"][start] == module.entry
    assert module.symbol_sections[start] == names.index(".text")
    assert read_module(exe).sections[0].name == ".text"  # the ordinary reader reads it too


def test_the_dump_shows_header_sections_fixups_and_code(mingw):
    exe = build(mingw, "board")
    lines = list(dump(exe, disasm=True))
    assert re.match(r".*board.*: PE32 i386 image, base 0x400000, entry 0x40[0-9a-f]+", lines[0])
    text = "\n".join(lines)
    assert re.search(r"\s+1 \.text\s+0x401000\s+0x[0-9a-f]+\s+0x400\s+0x[0-9a-f]+ RX", text)
    assert "base relocations       RVA 0x" in text
    assert re.search(r"0x40[0-9a-f]{4} HIGHLOW  holds 0x40[0-9a-f]{4}", text)
    assert "_start" in text and "Disassembly of section .text:" in text


# -- located both ways, run in the emulated target -------------------------------------------------
@pytest.mark.parametrize("method", ["Section", "NTSection"])
def test_a_located_program_prints_what_it_prints_where_it_was_linked(mingw, tmp_path, method):
    exe = build(mingw, "board")
    expected = run_in_place(read_program(exe), console=CONSOLE)
    assert expected.output.startswith(b"hello from the board\nadd 10\nsub 4\nmul 21\n")
    located = locate_program(exe, configs(tmp_path, SECTIONS if method == "Section" else NTSECTIONS))
    assert located.fixups.whole == (method == "NTSection")
    assert located.fixups.changed.sum() == len(located.program.fixups)
    got = run(located, console=CONSOLE)
    assert got == expected
    if method == "Section":  # the code runs from ROM, its data was inflated into RAM
        assert located.region("ROM").address <= located.entry < located.region("ROM").end
        assert [e.op.name for e in located.boot.entries][:2] == ["INFLATE", "COPY"]


def test_a_fixup_pointing_between_sections_needs_ntsection(mingw, tmp_path):
    exe = build(mingw, "folded")
    expected = run_in_place(read_program(exe), console=CONSOLE)
    cfg = SECTIONS.replace("Locate Section .bss RAM\n", "")
    with pytest.raises(FixupError, match=r"\.text\+0x[0-9a-f]+: R_386_32: fixup at 0x40[0-9a-f]+ "
                                         r"\(holding 0x402fe8\): its value lies in no section"):
        locate_program(exe, configs(tmp_path, cfg))
    assert run(locate_program(exe, configs(tmp_path, NTSECTIONS)), console=CONSOLE) == expected


def test_running_needs_a_header_a_stack_and_a_console_in_a_region(mingw, tmp_path):
    exe = build(mingw, "board")
    located = locate_program(exe, configs(tmp_path, SECTIONS))
    with pytest.raises(LinkError, match="add a Locate Header"):
        run(locate_program(exe, configs(tmp_path, SECTIONS.replace("Locate Header Boot ROM\n", ""))))
    with pytest.raises(LinkError, match="add a Locate Stack"):
        run(locate_program(exe, configs(tmp_path, SECTIONS.replace("Locate Stack Stack RAM 4k\n", ""))))
    with pytest.raises(LinkError, match="console port 0xe0001000 lies in no configured region"):
        run(located, console=CONSOLE + 0x1000)


# -- base relocation types, in a PE image made here ----------------------------------------------
def pe_image(code: bytes, relocations: bytes, *, machine=0x14C, magic=0x10B, sections=None) -> bytes:
    """A small PE32 image: .text (``code``) at RVA 0x1000 and .reloc at 0x2000, base
    0x400000, entry at .text's start."""
    text = code.ljust(0x200, b"\0")
    reloc = relocations.ljust(0x200, b"\0")
    sections = sections or [(b".text", len(code), 0x1000, 0x200, 0x400, 0x60000020),
                            (b".reloc", len(relocations), 0x2000, 0x200, 0x600, 0x42000040)]
    plus = magic == 0x20B
    directories = 112 if plus else 96  # PE32+ has a 64-bit image base and stack sizes
    optional = bytearray(directories + 128)
    struct.pack_into("<HBBIII", optional, 0, magic, 2, 40, 0x200, 0, 0)
    struct.pack_into("<III", optional, 16, 0x1000, 0x1000, 0x2000)  # entry, code, data
    if plus:
        struct.pack_into("<Q", optional, 24, 0x400000)
    else:
        struct.pack_into("<I", optional, 28, 0x400000)
    struct.pack_into("<II", optional, 32, 0x1000, 0x200)  # section and file alignment
    struct.pack_into("<II", optional, 56, 0x3000, 0x400)  # image size, headers
    struct.pack_into("<HH", optional, 68, 3, 0)
    struct.pack_into("<I", optional, directories - 4, 16)
    struct.pack_into("<II", optional, directories + 8 * 5, 0x2000, len(relocations))
    header = bytearray(0x400)
    header[:2] = b"MZ"
    struct.pack_into("<I", header, 0x3C, 0x80)
    header[0x80:0x84] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", header, 0x84, machine, len(sections), 0, 0, 0, len(optional), 0x102)
    header[0x98:0x98 + len(optional)] = optional
    table = 0x98 + len(optional)
    for i, (name, vsize, rva, raw, at, flags) in enumerate(sections):
        struct.pack_into("<8sIIIIIIHHI", header, table + 40 * i, name, vsize, rva, raw, at, 0, 0,
                         0, 0, flags)
    return bytes(header) + text + reloc


def block(page: int, *entries: int) -> bytes:
    words = list(entries) + ([0] if len(entries) % 2 else [])
    return struct.pack(f"<II{len(words)}H", page, 8 + 2 * len(words), *words)


HALVES = struct.pack("<IHHH", 0x401008, 0x0040, 0x1008, 0x0040)  # HIGHLOW, HIGH, LOW, HIGHADJ
HALF_RELOCS = block(0x1000, 3 << 12 | 0, 1 << 12 | 4, 2 << 12 | 6, 4 << 12 | 8, 0x1008)


def test_every_base_relocation_type_reads_as_a_kind_and_the_address_it_holds():
    module = read_program(pe_image(HALVES, HALF_RELOCS))
    (run_,) = module.relocation_runs
    assert run_.offset.tolist() == [0, 4, 6, 8]  # HIGHADJ's low half is no field of its own
    assert run_.kind.tolist() == [R_386_32, R_386_PE_HIGH, R_386_PE_LOW, R_386_PE_HIGHADJ]
    assert [module.symbol_sections[t] for t in run_.target.tolist()] == \
        [IMAGE_ADDRESS, IMAGE_ADDRESS_PART, IMAGE_ADDRESS_PART, IMAGE_ADDRESS]
    assert run_.addend.tolist() == [0x401008, 0x400000, 0x1008, 0x401008]
    assert "HIGHADJ  holds 0x401008" in "\n".join(dump(pe_image(HALVES, HALF_RELOCS)))


def test_a_whole_image_move_patches_every_type_as_a_pe_loader_would(tmp_path):
    exe = tmp_path / "halves.exe"
    exe.write_bytes(pe_image(HALVES, HALF_RELOCS))
    located = locate_program(exe, configs(tmp_path, "Region RAM 1237000h 64k RAM\n"
                                                     "Locate NTSection .text RAM\n"))
    delta = 0x1237000 - 0x401000
    highlow, high, low, adjusted = struct.unpack_from("<IHHH", located.images[0].tobytes())
    assert highlow == 0x401008 + delta
    assert high == (0x40 + (delta >> 16)) & 0xFFFF  # the high half of the difference, no carry
    assert low == (0x1008 + delta) & 0xFFFF
    assert adjusted == ((0x401008 + delta + 0x8000) >> 16) & 0xFFFF  # rounded, from both halves
    assert exe.read_bytes() == pe_image(HALVES, HALF_RELOCS)  # the input is never changed


def test_rom_cannot_be_written_by_the_located_program(tmp_path):
    # mov [0x401000], eax; ret: a store into its own code, which is in ROM
    exe = tmp_path / "writer.exe"
    exe.write_bytes(pe_image(b"\xa3\x00\x10\x40\x00\xc3", block(0x1000, 3 << 12 | 1)))
    located = locate_program(exe, configs(tmp_path, """
Region ROM 10000h 8k ROM
Region RAM 20000h 4k RAM
Locate Header Boot ROM
Locate Section .text ROM
Locate Stack Stack RAM 1k
"""))
    with pytest.raises(EmulationError, match=r"protected write of 0x11000"):
        run(located)


def test_dir64_belongs_to_pe32_plus_images():
    with pytest.raises(UnsupportedError, match=r"base relocation type 10 \(DIR64\) at RVA 0x1000 is "
                                                "not supported in a i386 image"):
        read_program(pe_image(bytes(8), block(0x1000, 10 << 12)))
    image = pe_image(struct.pack("<Q", 0x401004), block(0x1000, 10 << 12), machine=0x8664,
                     magic=0x20B)
    (run_,) = read_program(image).relocation_runs
    assert run_.kind.tolist() == [1] and run_.addend.tolist() == [0x401004]  # R_X86_64_64


@pytest.mark.parametrize(("mutate", "error", "message"), [
    (lambda b: b[:0x30], FormatError, "not a PE image"),
    (lambda b: b"MX" + b[2:], FormatError, "no MZ header"),
    (lambda b: b[:0x3C] + struct.pack("<I", 0xFFFF0) + b[0x40:], FormatError,
     "PE signature at 0xffff0"),
    (lambda b: b[:0x84] + struct.pack("<H", 0x1C0) + b[0x86:], UnsupportedError,
     "PE machine 0x1c0 is not supported"),
    (lambda b: b[:0x98] + b"\x07\x01" + b[0x9A:], FormatError, "magic 0x107"),
    (lambda b: b[:0x600], FormatError, "bytes of section .reloc at 0x600 size 0x200 lies outside"),
])
def test_malformed_headers_are_named(mutate, error, message):
    with pytest.raises(error, match=message):
        read_program(mutate(pe_image(HALVES, HALF_RELOCS)), format="pe")


@pytest.mark.parametrize(("relocations", "message"), [
    (struct.pack("<II", 0x1000, 4), "block size 0x4 at directory offset 0x0"),
    (struct.pack("<II", 0x1000, 0x40), "block size 0x40"),
    (block(0x1000, 3 << 12 | 0x1FE), r"HIGHLOW at RVA 0x11fe does not lie in the bytes"),
    (block(0x5000, 3 << 12), "does not lie in the bytes of a loaded section"),
    (block(0x1000, 3 << 12, 4 << 12 | 8), "HIGHADJ base relocation without its low half"),
    (struct.pack("<I", 0x1000), "cut short"),
])
def test_malformed_base_relocations_are_named(relocations, message):
    with pytest.raises(LinkError, match=message):
        read_program(pe_image(HALVES, relocations))


def test_unknown_base_relocation_types_are_refused_by_name():
    with pytest.raises(UnsupportedError, match=r"type 7 \(THUMB_MOV32\) at RVA 0x1000"):
        read_program(pe_image(HALVES, block(0x1000, 7 << 12)))


def test_a_symbol_naming_a_section_the_image_lacks_is_refused(mingw):
    """A COFF symbol's section number past the image's sections has no address (it read as
    RVA 0 before): a FormatError naming the symbol and the record."""
    data = bytearray(build(mingw, "board").read_bytes())
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    sections, = struct.unpack_from("<H", data, pe + 6)
    table, count = struct.unpack_from("<II", data, pe + 12)
    k = 0
    while k < count:  # the first symbol in a section
        number, = struct.unpack_from("<h", data, table + 18 * k + 12)
        if number > 0:
            break
        k += 1 + data[table + 18 * k + 17]  # (and its auxiliary records)
    struct.pack_into("<h", data, table + 18 * k + 12, sections + 3)
    with pytest.raises(FormatError, match=f"names section {sections + 3}, but the image has "
                                          f"{sections}") as error:
        read_program(bytes(data))
    assert error.value.section == "COFF symbol table"


def test_mutated_images_fail_only_with_link_errors(mingw):
    """A small fuzz of its own (scripts/fuzz.py's pe format goes further: tests/test_fuzz.py):
    bytes of a real image changed at random are read, dumped and located, or refused with a
    LinkError; nothing else escapes."""
    original = build(mingw, "board").read_bytes()
    rng = random.Random(12)
    cfg_text = "Region RAM 800000h 1M RAM\nLocate NTSection .text RAM\nLocate NTSection .idata RAM\n"
    for _ in range(300):
        data = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(0, 0x1000) if rng.random() < 0.8 else rng.randrange(len(data))
            data[at] = rng.randrange(256)
        try:
            module = read_program(bytes(data))
            list(dump(bytes(data)))
            locate(Program.of(module), configuration(None, commands=cfg_text.splitlines()))
        except LinkError:
            pass


# -- the command line ------------------------------------------------------------------------------
def test_the_locate_command_writes_the_outputs_and_runs_the_program(mingw, tmp_path, capsys):
    exe = build(mingw, "board")
    (cfg,) = configs(tmp_path, SECTIONS.replace("Locate Heap Heap RAM\n", ""))
    out = tmp_path / "out"
    code = cli(["locate", str(exe), str(cfg), "Locate Heap Heap RAM", "-o", str(out), "--run",
                "--console", "0xE0000000"])
    printed = capsys.readouterr().out
    assert code == 0
    expected = run_in_place(read_program(exe), console=CONSOLE)
    assert expected.output.decode() in printed and printed.endswith("board returned 119\n")
    assert "41 fixups (sections moved apart)" in printed.replace(str(exe) + ": 5 sections, ", "")
    assert {p.name for p in out.iterdir()} == {"board.elf", "board.hex", "ROM.bin", "map.txt",
                                               "layout.json", "map.html"}


def test_without_a_configuration_file_the_programs_own_is_read(mingw, tmp_path, capsys):
    exe = tmp_path / "app.exe"
    exe.write_bytes(build(mingw, "board").read_bytes())
    (tmp_path / "app.cfg").write_text(NTSECTIONS)
    assert cli(["locate", str(exe), "--run", "--console", "0xE0000000"]) == 0
    assert "moved as a whole by +0x400000" in capsys.readouterr().out


@pytest.mark.parametrize(("arguments", "message"), [
    (["missing.cfg", "-o", "out"], "missing.cfg: no such configuration file"),
    (["Locate Stak S RAM", "-o", "out"], "<command line>:1: expected an entity"),
    ([], "nothing to do: give -o OUTDIR, --run or both"),
])
def test_locate_errors_are_one_line(mingw, tmp_path, capsys, arguments, message):
    exe = build(mingw, "board")
    assert cli(["locate", str(exe), *arguments]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
