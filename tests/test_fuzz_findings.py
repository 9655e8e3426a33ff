"""What fuzzing found (issue 10, section 4, and ``scripts/fuzz.py`` since), one regression test
each: every malformed input is one clear LinkError naming the file, the section and the offset,
never another exception and never a silent write where the input did not ask for one;
initialisers are called only where they may point; and a module whose COMDAT copies another
module uses is not freed under it.

The PowerPC inputs are the committed golden files (``tests/golden``), so that these tests need
no cross compiler; x86-64 objects and programs are compiled at test time, and so are the ARM
objects of the NXFLAT findings (arm-none-eabi-gcc: without it those tests skip, or fail under
``CI``); PE images are made here.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import pytest

from elfutil import (
    PHDR,
    anonymous_mappings,
    compile_c,
    in_child,
    layout,
    need_tool,
    patch_header,
    patch_reloc,
    patch_section,
    patch_symbol,
    read_reloc,
    run,
)
from linkload import (
    ConfigError,
    FixupError,
    FormatError,
    Linker,
    LinkError,
    ModuleStateError,
    PlacementError,
    UndefinedSymbolError,
    UnsupportedError,
    formats,
)
from linkload.arch import ppc
from linkload.cli import main as cli
from linkload.formats import dol, elf, read_program, symtab
from linkload.formats import nxflat as nxflat_format
from linkload.locate import ldscript, locate, locate_program
from linkload.locate.output import elf_bytes
from linkload.model import MOVES_NOT, Segment
from linkload.tools import build
from linkload.tools import nxflat as nxflat_tool
from linkload.tools.mksymtab import mksymtab
from locateutil import TEXT, toy_program
from locateutil import config as locate_config

GOLDEN = Path(__file__).parent / "golden"
R_PPC_REL32 = 26


@pytest.fixture(scope="module")
def golden() -> dict[str, bytes]:
    return {name: (GOLDEN / name).read_bytes() for name in ("mod_one.plf", "mod_two.plf")}


def _makerel(plf: bytes, golden: dict[str, bytes]):
    return build(None, [plf, golden["mod_two.plf"]], symbols=GOLDEN / "static.sym",
                 module_names=["one", "two"])


# -- makerel: in-file fields that overrun their section ------------------------------------------
@pytest.mark.parametrize(("section", "row", "kind", "symbol"), [
    (".text", 2, R_PPC_REL32, 9),  # into the next section's bytes (.rodata follows .text)
    (".data", 0, R_PPC_REL32, 9),  # the last section with data: past the end of the image
    (".text", 4, ppc.R_PPC_REL24, None),  # a branch to _unresolved, resolved in the file
])
def test_makerel_refuses_a_field_past_its_section(golden, section, row, kind, symbol):
    """makerel writes PC-relative fields to the module's own code into the file: a field whose
    last bytes lie past its section must be refused, not written into the next section (or an
    IndexError at the end of the image)."""
    plf = golden["mod_one.plf"]
    size = {".text": 0x60, ".data": 0x10}[section]
    at = size - 2
    bad = patch_reloc(plf, f".rela{section}", row, r_offset=at, type=kind, sym=symbol)
    target = read_reloc(bad, f".rela{section}", row)["sym"]
    with pytest.raises(FormatError) as info:
        _makerel(bad, golden)
    err = info.value
    assert (err.file, err.section, err.offset) == ("<bytes>", section, at), err
    assert err.kind == ppc.ARCH.kind_name(kind)
    assert err.symbol == {9: "one_func", 8: "nowhere"}[target]
    assert "runs past the end of the section" in str(err)


def test_makerel_field_ending_at_its_section_end_is_fine(golden):
    """The boundary: a 4-byte field whose last byte is the section's last is built."""
    bad = patch_reloc(golden["mod_one.plf"], ".rela.text", 2, r_offset=0x5C, type=R_PPC_REL32,
                      sym=9)
    out = _makerel(bad, golden).rels[0].read()
    text = bytes(out.sections[1].data)
    assert int.from_bytes(text[0x5C:0x60], "big") == (-0x5C) & 0xFFFF_FFFF  # one_func - P
    assert bytes(out.sections[3].data) == bytes.fromhex("12345678") + bytes(4)  # .rodata intact


# -- GOTPCRELX relaxation stays inside the field's section ----------------------------------------
RELAX_SOURCE = r"""
    .section .text.a,"ax",@progbits
    .globl mov_bytes
mov_bytes:                      # what `mov disp32(%rip), %eax` starts with
    .byte 0x8b, 0x05
    .section .text.b,"ax",@progbits
    .globl field_first          # a relaxable field at offset 0 of its section
field_first:
    .reloc ., R_X86_64_REX_GOTPCRELX, value-4
    .long 0
    .section .text.c,"ax",@progbits
    .globl call_byte
call_byte:                      # the first byte of `call *disp32(%rip)`
    .byte 0xff
    .section .text.d,"ax",@progbits
    .globl field_second         # a field at offset 1: one opcode byte is the section's
field_second:
    .byte 0x15
    .reloc ., R_X86_64_GOTPCRELX, value-4
    .long 0
    .section .text.e,"ax",@progbits
    .globl load_value           # an ordinary GOT load: relaxed to lea
load_value:
    movq value@GOTPCREL(%rip), %rax
    movl (%rax), %eax
    ret
    .data
    .globl value
value:
    .long 7
"""


def test_gotpcrelx_relaxation_never_rewrites_the_previous_section(tmp_path):
    """A relaxable field at the start of its section: the two bytes before it are the end of
    the section laid out before, which must not be taken for (and rewritten as) an opcode."""
    need_tool("as")
    (tmp_path / "relax.s").write_text(RELAX_SOURCE)
    run(["as", str(tmp_path / "relax.s"), "-o", str(tmp_path / "relax.o")])
    ld = Linker.native()
    m = ld.link(tmp_path / "relax.o")
    try:
        read = ld.space.read
        assert m.address("field_first") == m.address("mov_bytes") + 2  # laid out back to back
        assert m.address("field_second") == m.address("call_byte") + 1
        assert read(m.address("mov_bytes"), 2) == b"\x8b\x05"
        assert read(m.address("call_byte"), 1) == b"\xff"
        assert read(m.address("field_second"), 1) == b"\x15"
        assert read(m.address("load_value"), 3) == b"\x48\x8d\x05"  # the control: relaxed
        assert m.call("load_value") == 7
    finally:
        ld.unlink(m)


# -- initialiser and finaliser entries point into code ---------------------------------------------
ENTRIES_PRELUDE = """
    .text
    .globl own_init
own_init:
    ret
    .data
value:
    .long 1
"""
SECTION_DIRECTIVES = {".init_array": '.section .init_array,"aw",@init_array',
                      ".fini_array": '.section .fini_array,"aw",@fini_array',
                      ".ctors": '.section .ctors,"aw",@progbits'}


def _assemble(tmp_path: Path, name: str, source: str) -> Path:
    need_tool("as")
    (tmp_path / f"{name}.s").write_text(source)
    run(["as", str(tmp_path / f"{name}.s"), "-o", str(tmp_path / f"{name}.o")])
    return tmp_path / f"{name}.o"


def _link_must_fail(path: Path) -> tuple:
    """Link ``path`` natively in a forked child (a regression would crash the process); the
    link must fail changing nothing (no module, no mapping left). The error's class, file,
    section, offset and text."""
    def attempt():
        ld = Linker.native()
        with pytest.raises(LinkError):
            ld.link(path)  # warms the allocators up, so that the mappings compare
        before = anonymous_mappings()
        with pytest.raises(LinkError) as info:
            ld.link(path)
        assert ld.modules == [] and anonymous_mappings() == before
        err = info.value
        return type(err), err.file, err.section, err.offset, str(err)
    return in_child(attempt)


@pytest.mark.parametrize(("section", "entries", "offset"), [
    (".init_array", ".quad own_init\n.quad value", 8),  # into data
    (".init_array", ".quad own_init+0x1000", 0),  # past the end of the code
    (".fini_array", ".quad 0x1234", 0),  # a bare number: nothing relocates it
    (".ctors", ".quad -1\n.quad own_init\n.quad value+4\n.quad 0", 16),  # sentinels are skipped
], ids=["data", "past-the-code", "bare-number", "ctors"])
def test_initialiser_entries_must_point_into_code(tmp_path, section, entries, offset):
    """Initialisers are called wherever they point (finalisers at unlink): an entry that
    points neither into the module's code nor at a function defined elsewhere is a
    FormatError naming the array and the entry's offset, before anything is written or run."""
    source = f"{ENTRIES_PRELUDE}\n{SECTION_DIRECTIVES[section]}\n{entries}\n"
    path = _assemble(tmp_path, "entries", source)
    cls, file, where, at, text = _link_must_fail(path)
    assert (cls, file, where, at) == (FormatError, str(path), section, offset), text
    assert "outside the module's code" in text


def test_initialisers_may_be_functions_of_other_modules(tmp_path):
    """An entry relocated against a function defined outside the module (the static module's,
    another module's) is what the object asks for: it links and is called."""
    provider = _assemble(tmp_path, "provider", """
    .text
    .globl count_init
count_init:
    incl calls(%rip)
    ret
    .data
    .globl calls
calls:
    .long 0
""")
    user = _assemble(tmp_path, "user", f"""{ENTRIES_PRELUDE}
    {SECTION_DIRECTIVES[".init_array"]}
    .quad getpid
    .quad count_init
    .quad own_init
""")
    def link_both():
        ld = Linker.native()
        a = ld.link(provider)
        b = ld.link(user)
        calls = ld.space.read(a.address("calls"), 4)
        ld.unlink(b)
        ld.unlink(a)
        return int.from_bytes(calls, "little")
    assert in_child(link_both) == 1


# -- sizes, alignments and headers no address space can hold ---------------------------------------
GOOD_SOURCE = "int good_function(void) { return 42; }\nint good_data = 1;\nint good_bss[4];\n"
OTHER_SOURCE = "int other_function(void) { return 7; }\nint other_bss[4];\n"


@pytest.fixture(scope="module")
def small_objects(tmp_path_factory) -> dict[str, bytes]:
    """Objects with no outside reference (placed anywhere: the reservation is then made with
    mmap's own choice of address, where ctypes cut an over-long length to 64 bits)."""
    out = tmp_path_factory.mktemp("small")
    flags = ["-O1", "-fno-asynchronous-unwind-tables"]
    return {name: compile_c(source, out / f"{name}.o", flags).read_bytes()
            for name, source in (("good", GOOD_SOURCE), ("other", OTHER_SOURCE))}


def _read_and_link(data: bytes) -> tuple:
    """Read ``data`` and link it natively, in a forked child: the exception class, section,
    offset and text of each (None when it worked)."""
    def attempt():
        outcome = []
        for step in (lambda: elf.read(data, "bad", "bad.o"), lambda: Linker.native().link(data)):
            try:
                step()
                outcome.append(None)
            except LinkError as e:
                outcome.append((type(e), e.section, e.offset, str(e)))
        return outcome
    return in_child(attempt)


@pytest.mark.parametrize(("section", "field", "value"), [
    (".bss", "sh_size", (1 << 64) - 1),  # NOBITS: no file bytes to check the size against
    (".text", "sh_addralign", 1 << 63),
    (".data", "sh_size", 1 << 63),
])
def test_section_sizes_and_alignments_beyond_half_the_address_space(small_objects, section,
                                                                     field, value):
    data = patch_section(small_objects["good"], section, **{field: value})
    at = layout(data).shdr_offset(layout(data).index(section)) + {
        "sh_size": 32, "sh_addralign": 48}[field]
    if field == "sh_size" and section == ".data":
        expected = (FormatError, section, None)  # bytes outside the file: the usual check
    else:
        expected = (FormatError, section, at)
    for outcome in _read_and_link(data):
        assert outcome is not None and outcome[0] is expected[0], outcome
        assert outcome[1] == expected[1], outcome
        if expected[2] is not None:
            assert outcome[2] == expected[2], outcome


def test_sections_that_fit_alone_but_not_together(small_objects):
    """Two objects linked as one module, each within the reader's limits, whose sections do
    not fit one address space together: a PlacementError, not an OverflowError."""
    huge = (1 << 62) + (1 << 61)
    parts = [patch_section(small_objects["good"], ".bss", sh_size=huge),
             patch_section(small_objects["other"], ".bss", sh_size=huge)]
    aligned = [patch_section(small_objects["good"], ".data", sh_addralign=1 << 62),
               patch_section(small_objects["other"], ".bss", sh_addralign=1 << 62)]

    def attempt():
        out = []
        for objects in (parts, aligned):
            try:
                Linker.native().link(objects)
            except LinkError as e:
                out.append((type(e), e.section))
        return out
    assert in_child(attempt) == [(PlacementError, ".bss"), (PlacementError, ".bss")]


def test_native_reservation_larger_than_the_address_space():
    """ctypes would cut a length of 2**64 or more to its low 64 bits (and map that)."""
    space = Linker.native().space
    for size, align in ((1 << 64, 4096), (4096, 1 << 64), ((1 << 47) + 4096, 4096)):
        with pytest.raises(PlacementError):
            space.reserve(size, align)


def test_static_executable_whose_segment_holds_more_file_than_memory(tmp_path):
    """p_filesz > p_memsz: a FormatError naming the program header (a ValueError when the
    static module was loaded)."""
    exe = compile_c("int start(void) { return 0; }\n", tmp_path / "static",
                    ["-nostdlib", "-static", "-Wl,-e,start"], link=True).read_bytes()
    lay = layout(exe)
    phoff, count = lay.header["e_phoff"], lay.header["e_phnum"]
    fmt = lay.order + PHDR[64]
    size = struct.calcsize(fmt)
    data = bytearray(exe)
    index = next(i for i in range(count)
                 if struct.unpack_from(fmt, exe, phoff + i * size)[0] == 1  # PT_LOAD
                 and struct.unpack_from(fmt, exe, phoff + i * size)[5] > 0)
    fields = list(struct.unpack_from(fmt, exe, phoff + index * size))
    fields[6] = fields[5] - 1  # p_memsz one less than p_filesz
    struct.pack_into(fmt, data, phoff + index * size, *fields)
    with pytest.raises(FormatError) as info:
        elf.read(bytes(data), "static", "static")
    assert (info.value.section, info.value.offset) == (f"program header {index}",
                                                       phoff + index * size)


def test_dump_of_relocations_for_a_section_that_does_not_exist(small_objects, tmp_path, capsys):
    """``linkload dump`` of a relocation section whose sh_info names no section: one error
    line and status 2 (an IndexError before)."""
    base = compile_c("int f(int);\nint g(int x) { return f(x); }\n", tmp_path / "call.o",
                     ["-O1"]).read_bytes()
    index = layout(base).index(".rela.text")
    path = tmp_path / "bad.o"
    path.write_bytes(patch_section(base, index, sh_info=200))
    with pytest.raises(FormatError) as info:
        list(formats.dump(path))
    assert (info.value.section, info.value.offset) == (".rela.text",
                                                       layout(base).shdr_offset(index) + 44)
    assert cli(["dump", str(path)]) == 2
    assert "relocations apply to section 200" in capsys.readouterr().err


@pytest.mark.parametrize(("section", "field", "value"), [
    (".data", "sh_addralign", 0x8000_0000),  # the ELF reader: half of a 32-bit address space
    (".data", "sh_addralign", 0x800_0000),  # makerel: larger than any REL
    (".bss", "sh_size", 0x800_0000),
    (".rodata", "sh_addralign", 0x200_0000),  # fits alone, but not with the bss
])
def test_makerel_refuses_what_no_rel_can_hold(golden, section, field, value):
    """makerel of an 888-byte object with sh_addralign 0x80000000 wrote a 2 GiB REL with 4 GB
    of memory; a REL holds at most 64 MiB (the largest memory of a Wii)."""
    plf = golden["mod_one.plf"]
    lay = layout(plf)
    if section == ".rodata":
        plf = patch_section(plf, ".bss", sh_size=0x3000_000 - 0x40)  # 48 MiB of bss
    bad = patch_section(plf, section, **{field: value})
    at = lay.shdr_offset(lay.index(section)) + {"sh_size": 20, "sh_addralign": 32}[field]
    with pytest.raises(FormatError) as info:
        _makerel(bad, golden)
    err = info.value
    assert (err.file, err.section) == ("<bytes>", section), err
    assert err.offset in (at, lay.shdr_offset(lay.index(section)) + 20), err


# -- COMDAT copies are not freed under the modules that use them -----------------------------------
SHARED_DESTRUCTOR = r"""
struct Counter {
    int id;
    explicit Counter(int i) : id(i) {}
    ~Counter() { id = -1; }  // inline: a COMDAT group, which a second copy of the object shares
};
Counter counter(1);
extern "C" int counter_id() { return counter.id; }
"""


def test_module_whose_comdat_copies_others_use_is_not_freed_under_them(tmp_path):
    """The same C++ object linked twice: the second module drops its copy of the inline
    destructor and registers its own static object's destruction with the first module's
    copy. Freeing the first module then made unlinking the second a SIGSEGV in
    __cxa_finalize. Unlinking (or reloading) the first is refused while the second is linked,
    with nothing changed; in the other order both go."""
    obj = compile_c(SHARED_DESTRUCTOR, tmp_path / "shared.o",
                    ["-O2", "-fPIC", "-fno-exceptions", "-fno-asynchronous-unwind-tables"],
                    cxx=True)

    def scenario():
        ld = Linker.native(libraries=["libstdc++.so.6"])
        first = ld.link(obj, name="first")
        second = ld.link(obj, name="second")
        refused = []
        for attempt in (lambda: ld.unlink(first), lambda: ld.reload(first, obj)):
            try:
                attempt()
            except ModuleStateError as e:
                refused.append(str(e))
        alive = (first.linked, ld.modules == [first, second])
        if first.linked:
            alive += (first.call("counter_id"),)
        ld.unlink(second)  # (a SIGSEGV when the first module was freed)
        ld.unlink(first)
        left = list(ld.modules)
        first, second = ld.link(obj, name="first"), ld.link(obj, name="second")
        users = [m.name for m in ld.comdat_users(first)], ld.comdat_users(second)
        ld.unlink(second)
        ld.unlink(first)
        return users, refused, alive, left
    users, refused, alive, left = in_child(scenario)
    assert users == (["second"], [])
    assert len(refused) == 2 and all("'second' uses its copies of COMDAT groups" in r
                                     for r in refused), refused
    assert alive == (True, True, 1)  # still linked, not finalised
    assert left == []


# -- found by scripts/fuzz.py ------------------------------------------------------------------------
@pytest.mark.parametrize("line", [
    "18446744073709551616:_end",  # an address of 65 bits (an OverflowError in to_module)
    "100000000 too_far",  # 2**32
    "text0,0xffffffff:past_the_end",  # fits alone; its section's address makes it pass 2**32
    "big = .data:0x80000000; // type:object size:0x1ffffffff",
    "-1:negative",  # int(..., 16) takes a sign (an OverflowError for the uint64 column)
])
def test_symbol_list_numbers_beyond_32_bits(tmp_path, line):
    """Symbol lists name the symbols of a 32-bit program: a number that does not fit is a
    FormatError naming the line, wherever the list is read."""
    path = tmp_path / "static.sym"
    path.write_text(f"80004000:_start\n{line}\n")
    static = dol.read(GOLDEN / "static.dol")
    with pytest.raises(FormatError) as info:
        symtab.read(path, sections=symtab.dol_sections(static))
    assert info.value.file == str(path) and "line 2:" in str(info.value)
    with pytest.raises(FormatError):
        Linker.emulated("ppc", static=GOLDEN / "static.dol", symbols=path)


def test_symbols_txt_size_with_leading_zeros(tmp_path):
    """decomp-toolkit writes decimal sizes; ``size:010`` is ten (int(text, 0) refused it with a
    ValueError)."""
    entries = symtab.parse("table = .data:0x80014018; // type:object size:010\n")
    assert [(e.name, e.address, e.size) for e in entries] == [("table", 0x80014018, 10)]


def test_static_module_with_an_empty_segment():
    """A PT_LOAD of no bytes loads nothing (unicorn refused to flush an empty range with a
    UcError)."""
    static = dol.read(GOLDEN / "static.dol")
    static.segments = [Segment(0x80000000, 0, b""), *static.segments]
    ld = Linker.emulated("ppc")
    ld.space.load_static(static)
    assert ld.space.read(0x80004000, 4) == static.segments[1].data[:4]  # the code is there


def test_extended_section_name_index_without_sections(small_objects):
    """e_shnum 0 with section 0's sh_size 0 (no sections) and e_shstrndx SHN_XINDEX: the index
    would be in section 0, which is not there (an IndexError in reading and dump)."""
    data = patch_header(small_objects["good"], e_shnum=0, e_shstrndx=0xFFFF)
    assert layout(small_objects["good"]).sections[0]["sh_size"] == 0
    for attempt in (lambda: elf.read(data, "bad", "bad.o"), lambda: list(formats.dump(data))):
        with pytest.raises(FormatError) as info:
            attempt()
        assert info.value.offset == layout(small_objects["good"]).header["e_shoff"]


# -- found by scripts/fuzz.py: linkload nxflat and the NXFLAT reader -------------------------------
NXFLAT_SAMPLES = Path(__file__).parent / "nxflat"
NXFLAT_FLAGS = ("-mcpu=cortex-m3", "-mthumb", "-Os", "-fno-common", "-fomit-frame-pointer",
                "-mfloat-abi=soft", "-fpic", "-msingle-pic-base", "-mpic-register=r10",
                "-mno-pic-data-is-text-relative")


@pytest.fixture(scope="module")
def nx_objects(toolchain) -> dict[str, bytes]:
    """hello.c and fnptr.c of the NXFLAT samples, compiled with NuttX's flags (ABI v1)."""
    tc = toolchain("arm-none-eabi-gcc", None, "arm-none-eabi-ld", NXFLAT_FLAGS)
    return {name: tc.compile(NXFLAT_SAMPLES / f"{name}.c").read_bytes() for name in ("hello", "fnptr")}


def _symbol_row(data: bytes, name: str) -> int:
    from io import BytesIO

    from elftools.elf.elffile import ELFFile
    table = ELFFile(BytesIO(data)).get_section_by_name(".symtab")
    return next(i for i, s in enumerate(table.iter_symbols()) if s.name == name)


def test_nxflat_entry_point_past_the_end_of_ispace(nx_objects):
    """main's value made 0xffffffff: the header's entry field cannot hold it (a struct.error
    when the file was written); the loader would refuse it anyway."""
    bad = patch_symbol(nx_objects["hello"], _symbol_row(nx_objects["hello"], "main"),
                       st_value=0xFFFF_FFFF)
    with pytest.raises(FormatError, match="past the end of I-space") as info:
        nxflat_tool.build([bad])
    err = info.value
    assert (err.section, err.offset, err.symbol) == (".text.startup", 0xFFFF_FFFF, "main")


def test_nxflat_spaces_past_the_header_fields(nx_objects):
    """A common block of 4 GiB: the header's bss end does not fit its 32-bit field (the
    builder names the block; writing the header is refused too)."""
    obj = nx_objects["hello"]
    bad = patch_symbol(obj, _symbol_row(obj, "shout"), st_shndx=0xFFF2, st_value=4,
                       st_size=0xFFFF_FFF0)  # SHN_COMMON
    with pytest.raises(UnsupportedError, match="past the NXFLAT header's 32-bit fields") as info:
        nxflat_tool.build([bad])
    assert info.value.symbol == "shout"
    contents = nxflat_tool.build([nx_objects["hello"]]).file
    with pytest.raises(FormatError, match="stack size 0x100000000 does not fit"):
        dataclasses.replace(contents, stack_size=1 << 32).to_bytes()


def test_nxflat_word_patched_by_two_relocations(nx_objects):
    """Two pointer relocations at one word of .data: two NXFLAT relocations of one D-space
    word, which the builder wrote and its own reader refused."""
    obj = nx_objects["fnptr"]
    section = next(s["name"] for s in layout(obj).sections if s["name"].startswith(".rel.data"))
    at = read_reloc(obj, section, 1)["r_offset"]
    bad = patch_reloc(obj, section, 0, r_offset=at)
    with pytest.raises(FormatError, match="two relocations patch this word") as info:
        nxflat_tool.build([bad])
    assert (info.value.section, info.value.offset) == (section[4:], at)


def test_nxflat_field_past_the_end_of_its_section(nx_objects):
    """A REL table's field whose last bytes lie past its section: its addend was read out of
    bounds (an IndexError)."""
    obj = nx_objects["fnptr"]
    section = next(s for s in layout(obj).sections if s["name"].startswith(".rel.data"))
    size = layout(obj).section(section["name"][4:])["sh_size"]
    bad = patch_reloc(obj, section["name"], 0, r_offset=size - 2)
    with pytest.raises(FormatError, match="the field runs past the end of the section") as info:
        nxflat_tool.build([bad])
    assert (info.value.section, info.value.offset, info.value.kind) == (
        section["name"][4:], size - 2, "R_ARM_ABS32")


def test_nxflat_object_without_symbols(nx_objects):
    """No section table at all: no entry point (an IndexError before)."""
    bad = patch_header(nx_objects["hello"], e_shoff=0, e_shnum=0, e_shstrndx=0)
    with pytest.raises(UndefinedSymbolError, match="the entry point is not defined"):
        nxflat_tool.build([bad])


def test_nxflat_import_names_that_are_not_utf8(nx_objects):
    """An import's name with a byte that is not UTF-8 (a UnicodeEncodeError when the thunks
    were laid out): written as it is, and read back the same."""
    obj = nx_objects["hello"]
    bad = obj.replace(b"\0report\0", b"\0r\xffport\0", 1)
    built = nxflat_tool.build([bad])
    assert b"r\xffport\0" in built.data
    _header, contents = nxflat_format.parse(built.data)
    assert contents.import_names == built.file.import_names
    assert "r\udcffport" in contents.import_names
    assert any("r\ufffdport" in line for line in nxflat_format.dump(built.data, "x.nxf"))


# -- found by scripts/fuzz.py: NuttX export tables -------------------------------------------------
def test_export_table_that_is_not_utf8(tmp_path):
    """A byte that is not UTF-8 in an export CSV: a FormatError naming the file, the line and
    the offset, from every reader of the table (a UnicodeDecodeError before)."""
    csv = tmp_path / "exports.csv"
    csv.write_bytes(b'"malloc","stdlib.h","","FAR void *","size_t"\n"rep\xa4ort","x.h","","void"\n')
    for read in (lambda: symtab.export_names(csv), lambda: mksymtab(csv, tmp_path / "symtab.c"),
                 lambda: Linker.emulated("cortex-m3", exports=csv)):
        with pytest.raises(FormatError, match="line 2: byte 0xa4 is not UTF-8") as info:
            read()
        assert (info.value.file, info.value.offset) == (str(csv), 49)


# -- found by scripts/fuzz.py: ELF programs for the locator ----------------------------------------
BOARD = Path(__file__).parent / "c" / "locate" / "board.c"
BOARD_FLAGS = ["-O2", "-ffreestanding", "-fno-asynchronous-unwind-tables", "-nostdlib", "-static",
               "-Wl,-e,start", "-Wl,--build-id=none"]


def test_stripped_program(tmp_path):
    """An executable without a symbol table (an IndexError before): read, it stays where it
    was linked."""
    exe = compile_c(BOARD.read_text(), tmp_path / "stripped", [*BOARD_FLAGS, "-no-pie", "-s"],
                    link=True)
    module = read_program(exe)
    assert module.moves == MOVES_NOT and len(module.symbols) == 1
    first = min(s.address for s in module.sections)
    commands = [f"Region RAM {first:#x} 1M RAM", *(f"Locate NTSection {s.name} RAM"
                                                   for s in module.sections)]
    assert locate_program(exe, [], commands).fixups.delta == 0  # where it was linked
    with pytest.raises(FixupError, match="the program lists no fixups"):
        locate_program(exe, [], [f"Region RAM {first + 0x10000:#x} 1M RAM",
                                 *commands[1:]])


def test_program_sections_in_the_top_half_of_the_address_space(tmp_path):
    """sh_addr 0xa3cd8813a158ec3a (an OverflowError before): the locator's addresses stay
    below 2**63."""
    exe = compile_c(BOARD.read_text(), tmp_path / "board", [*BOARD_FLAGS, "-no-pie",
                                                           "-Wl,--emit-relocs"], link=True)
    bad = patch_section(exe.read_bytes(), ".text", sh_addr=0xA3CD8813A158EC3A)
    with pytest.raises(UnsupportedError, match="reaches past 2[*][*]63") as info:
        read_program(bad)
    assert info.value.section == ".text"


def test_pie_dynamic_relocation_naming_a_symbol_past_the_table(tmp_path):
    """A PIE's GLOB_DAT relocation naming symbol 0xafa7e8ba (an IndexError when the program
    was made ready for the locator): refused by kind, as every non-RELATIVE one; the dump lists
    a PIE's dynamic relocations (it refused them: not against the symbol table)."""
    exe = compile_c(BOARD.read_text(), tmp_path / "pie", [*BOARD_FLAGS, "-fPIE", "-static-pie",
                                                         "-Wl,--no-dynamic-linker",
                                                         "-Wl,-z,norelro"], link=True)
    data = exe.read_bytes()
    assert "Dynamic relocations (" in "\n".join(formats.dump(data))
    bad = patch_reloc(data, ".rela.dyn", 0, sym=0xAFA7E8BA, type=6)  # R_X86_64_GLOB_DAT
    module = read_program(bad)
    sections = [s.name for s in module.sections]
    with pytest.raises(UnsupportedError, match="R_X86_64_GLOB_DAT: cannot move this fixup"):
        locate_program(module, [], ["Region RAM 800000h 1M RAM", f"Locate NTSection {sections[0]} RAM",
                                    f"Locate NTSection {sections[-1]} RAM"])


# -- found by scripts/fuzz.py: PE images -----------------------------------------------------------
def _pe(*, base=0x400000, magic=0x10B, machine=0x14C, text_flags=0x60000020, text_name=b".text",
        symbol_value=0) -> bytes:
    """A PE image (scripts/fuzz.py's seed): .text holding a HIGHLOW field, .reloc, and a COFF
    symbol in .text."""
    plus = magic == 0x20B
    directories = 112 if plus else 96
    optional = bytearray(directories + 128)
    struct.pack_into("<HBBIII", optional, 0, magic, 2, 40, 0x200, 0, 0)
    struct.pack_into("<III", optional, 16, 0x1000, 0x1000, 0x2000)
    struct.pack_into("<Q" if plus else "<I", optional, 24 if plus else 28, base)
    struct.pack_into("<II", optional, 32, 0x1000, 0x200)
    struct.pack_into("<II", optional, 56, 0x3000, 0x400)
    struct.pack_into("<I", optional, directories - 4, 16)
    relocations = struct.pack("<IIHH", 0x1000, 12, 3 << 12, 0)
    struct.pack_into("<II", optional, directories + 8 * 5, 0x2000, len(relocations))
    header = bytearray(0x400)
    header[:2] = b"MZ"
    struct.pack_into("<I", header, 0x3C, 0x80)
    header[0x80:0x84] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", header, 0x84, machine, 2, 0, 0x800, 1, len(optional), 0x102)
    header[0x98:0x98 + len(optional)] = optional
    table = 0x98 + len(optional)
    for i, (name, rva, at, flags) in enumerate([(text_name, 0x1000, 0x400, text_flags),
                                                (b".reloc", 0x2000, 0x600, 0x42000040)]):
        struct.pack_into("<8sIIIIIIHHI", header, table + 40 * i, name, 0x200, rva, 0x200, at,
                         0, 0, 0, 0, flags)
    text = struct.pack("<I", (base + 0x1000) & 0xFFFF_FFFF).ljust(0x200, b"\0")
    symbol = struct.pack("<8sIhHBB", b"_start", symbol_value, 1, 0x20, 2, 0)
    return bytes(header) + text + relocations.ljust(0x200, b"\0") + symbol + struct.pack("<I", 4)


def test_pe_fixups_of_an_image_that_loads_no_section():
    """Every section discardable, base relocations present (an IndexError before)."""
    assert len(read_program(_pe()).relocation_runs) == 1
    with pytest.raises(FormatError, match="HIGHLOW at RVA 0x1000 does not lie in the bytes of a "
                                          "loaded section") as info:
        read_program(_pe(text_flags=0x62000020))
    assert info.value.section == "base relocations"


def test_pe_addresses_past_the_address_space():
    """An image base that puts the image past 2**64 (an OverflowError before), a COFF symbol
    past 2**32 in a PE32 image, a PE32+ image in the top half, which the locator refuses."""
    with pytest.raises(FormatError, match="pass the end of the 64-bit address space") as info:
        read_program(_pe(base=0xFFFF_FFFF_FFFF_FFFC, magic=0x20B, machine=0x8664))
    assert info.value.offset == 0x98 + 24
    with pytest.raises(FormatError, match="symbol '_start' at 0xfffff000 in section 1") as info:
        read_program(_pe(symbol_value=0xFFFF_F000))
    assert (info.value.section, info.value.offset) == ("COFF symbol table", 0x800)
    high = read_program(_pe(base=1 << 63, magic=0x20B, machine=0x8664))
    with pytest.raises(UnsupportedError, match="below 2[*][*]63") as info:
        locate_program(high, [], ["Region RAM 800000h 1M RAM", "Locate NTSection .text RAM"])
    assert info.value.section == ".text"


def test_pe_names_are_c_strings():
    """A section name with a NUL inside ends there, as in the loader (the name's later bytes
    went into the located ELF image, whose string table cut them off)."""
    module = read_program(_pe(text_name=b"ab\0cd"))
    assert module.sections[0].name == "ab"
    located = locate_program(module, [], ["Region RAM 800000h 1M RAM", "Locate NTSection ab RAM"])
    assert elf.read(elf_bytes(located)).sections[0].name == "ab"


# -- found by scripts/fuzz.py: the locator, its configurations and layouts -------------------------
def test_symbol_moved_out_of_the_address_space():
    """A symbol of .text far past its section's end: moving .text up made it pass 2**32 (an
    OverflowError when the ELF image was written)."""
    program = toy_program([(".text", TEXT, 0x401000, 0x100)],
                          symbols=[("start", 0, 0x401000), ("far", 0, 0xFF401000)])
    with pytest.raises(FixupError, match=r"moves with its section to 0x100000000, outside the "
                                         "32-bit address space") as info:
        locate(program, locate_config("Region ROM 1000000h 64k ROM\nLocate Section .text ROM\n"))
    assert (info.value.section, info.value.symbol) == (".text", "far")


def test_region_outside_the_address_space():
    """A region past 2**32 for an i386 program (a UcError when the program was booted)."""
    program = toy_program([(".text", TEXT, 0x401000, 0x100)])
    with pytest.raises(ConfigError, match=r"test.cfg:2: region X \[0xfffffffffffff000, "
                                          r"0x10000000000000000\) does not lie in the 32-bit"):
        locate(program, locate_config("Region ROM 1000000h 64k ROM\nRegion X FFFFFFFFFFFFF000h 4k "
                                      "ROM\nLocate Section .text ROM\n"))


@pytest.mark.parametrize("number", ["1e400", "1.5", '"65536"', "true", "-4"])
def test_reserved_layout_with_numbers_that_are_not_sizes(tmp_path, number):
    """An earlier layout.json whose address or size is not a whole number of bytes (1e400 is
    an infinity: an OverflowError before; the others were taken as numbers)."""
    (tmp_path / "layout.json").write_text(
        '{"program": "boot", "entities": [{"kind": "section", "name": ".text", '
        f'"address": 65536, "size": {number}}}]}}')
    program = toy_program([(".text", TEXT, 0x401000, 0x100)])
    with pytest.raises(ConfigError, match=r"test.cfg:1: Reserve: .* is not a layout .*entity "
                                          r"0's size is"):
        locate(program, locate_config(f"Reserve {tmp_path}\nRegion ROM 10000h 64k ROM\n"
                                      "Locate Section .text ROM\n"))


@pytest.mark.parametrize(("align", "message"), [
    ("0x", "unexpected 'x'"),  # a ValueError before
    ("3", r"ALIGN\(3\) of output section .text: 0x3 is not a power of two")])
def test_linker_script_alignment_that_is_not_one(align, message):
    text = ("MEMORY {\n ROM (rx) : ORIGIN = 0, LENGTH = 1K\n}\n"
            f"SECTIONS {{\n .text : ALIGN({align}) {{ *(.text) }} > ROM\n}}\n")
    with pytest.raises(ConfigError, match=f"board.ld:5: .*{message}"):
        ldscript.parse(text, "board.ld")


def test_a_region_larger_than_the_machines_memory():
    """A region of a petabyte (a mutated linker script's ``LENGTH``): the load image was
    held as one array per region, and allocating it raised MemoryError. Only what is placed
    takes memory now, and the program locates."""
    program = toy_program([(".text", TEXT, 0x401000, 0x100, bytes(range(256)))],
                          machine="x86_64")
    located = locate(program, locate_config("Region ROM 340000h 64k ROM\n"
                                            "Region RAM 7A0000h 1000000000000h RAM\n"
                                            "Locate Section .text RAM\n"))
    assert located.image.read(0x7A0000, 0x100) == bytes(range(256))
    assert located.image.read(0x7A0000 + (1 << 40), 4) == bytes(4)  # nothing there: zeros
