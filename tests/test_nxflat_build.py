"""``linkload nxflat`` and ``linkload mksymtab`` (tools/nxflat.py, tools/mksymtab.py): the
samples' sources, compiled with NuttX's flags by arm-none-eabi-gcc, build into the very files
the NuttX tools made (``tests/nxflat``), with no assembler or ld; what the format cannot
express is an error naming it; the two bugs of the published ldnxflat are not repeated.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from linkload import FormatError, Linker, LinkError, UndefinedSymbolError, UnsupportedError
from linkload.cli import main as cli
from linkload.formats import nxflat as nxflat_format
from linkload.formats.symtab import parse_exports_csv
from linkload.tools import nxflat
from linkload.tools.mksymtab import symtab_c

SAMPLES = Path(__file__).parent / "nxflat"
CPU = ("-mcpu=cortex-m3", "-mthumb", "-Os", "-fno-common", "-fomit-frame-pointer",
       "-mfloat-abi=soft")


def nuttx_flags(abi: str) -> tuple[str, ...]:
    """NuttX's flags for NXFLAT modules (Cortex-M3, PIC base r10 or r9)."""
    register = nxflat_format.PIC_REGISTERS[abi]
    return ("-fpic", "-msingle-pic-base", f"-mpic-register={register}",
            "-mno-pic-data-is-text-relative")


@pytest.fixture(scope="module")
def arm_tc(toolchain):
    return toolchain("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-ld",
                     common_flags=CPU)


def compiled(tc, name: str, abi: str = "v1", extra: tuple[str, ...] = ()):
    source = SAMPLES / name if (SAMPLES / name).exists() else name
    return tc.compile(source, [*nuttx_flags(abi), *extra])


@pytest.mark.parametrize("abi", ["v1", "v2"])
@pytest.mark.parametrize("name", ["hello", "fnptr"])
def test_the_samples_are_built_byte_for_byte(arm_tc, abi, name):
    result = nxflat.build([compiled(arm_tc, f"{name}.c", abi)], entry="main", stack_size=2048,
                          abi=abi, callbacks=False)
    expected = (SAMPLES / abi / f"{name}.nxf").read_bytes()
    assert result.data.hex() == expected.hex()


def test_the_callback_table_lists_every_word_pointing_at_a_function(arm_tc):
    obj = compiled(arm_tc, "fnptr.c")
    plain = nxflat.build([obj], stack_size=2048, callbacks=False)
    result = nxflat.build([obj], stack_size=2048)
    h, contents = nxflat_format.parse(result.data)
    assert contents.ispace[:len(plain.file.ispace)] == plain.file.ispace  # a tail, no more
    assert contents.data == plain.file.data
    assert (contents.relocations == plain.file.relocations).all()
    words = np.frombuffer(contents.data, "<u4")
    pointed = sorted(int(words[o // 4]) for o in contents.callbacks)
    # op_add, op_sub, op_mul (op_table), op_sub, op_add (const_ops), op_sub and op_mul (GOT)
    assert pointed == sorted([1, 5, 9, 5, 1, 5, 9])
    assert all(w & 1 for w in pointed)
    strings = {int(words[o // 4]) for o in range(0, 0x2C, 4)} - set(pointed)
    assert 0xF9 in strings  # "const_ops", at an odd address: a string, not a function


def test_a_callback_table_naming_a_word_that_holds_no_code_pointer_is_refused(arm_tc):
    """The loader rewrites the words the table names: one that is not a pointer to code (a
    relocated REL32I word) would be overwritten with a trampoline to whatever it holds."""
    result = nxflat.build([compiled(arm_tc, "fnptr.c")], stack_size=2048)
    h, contents = nxflat_format.parse(result.data)
    code_words = {int(w) & nxflat_format.OFFSET_MASK for w in contents.relocations.tolist()
                  if int(w) >> 30 == nxflat_format.RELOC_REL32I}
    other = next(o for o in range(0, h.datasize, 4) if o not in code_words)
    count = len(contents.callbacks)
    table = h.datastart - 8 - 4 * count  # the first entry
    corrupt = bytearray(result.data)
    struct.pack_into("<I", corrupt, table, other)
    with pytest.raises(FormatError, match=f"offset {other:#x}, a word no REL32I") as error:
        nxflat_format.read(bytes(corrupt))
    assert error.value.offset == table


def test_function_addresses_keep_their_thumb_bit_and_bss_words_point_into_bss(arm_tc):
    """The two bugs of the published ldnxflat (binutils >= 2.22): function pointers lost
    their Thumb bit, and GOT words of .bss objects pointed into .data."""
    result = nxflat.build([compiled(arm_tc, "hello.c")], callbacks=False)
    h, contents = nxflat_format.parse(result.data)
    words = np.frombuffer(contents.data, "<u4")
    ncalls = result.got.index(".LANCHOR0")  # static int ncalls, in .bss
    assert words[ncalls] == h.datasize  # the first byte of the bss, after GOT and .data
    shout = result.got.index("shout")
    assert words[shout] == h.datasize + 4
    fnptr = nxflat.build([compiled(arm_tc, "fnptr.c")], callbacks=False)
    table = fnptr.file.data[0x40 - 0:0x4C]  # op_table: op_add, op_sub, op_mul
    assert struct.unpack("<3I", table) == (1, 5, 9)


def test_several_objects_build_one_program(arm_tc, tmp_path):
    a = arm_tc.compile_text("extern int helper(int); extern void report(const char *, int);\n"
                            "int shared = 5;\n"
                            "int main(int argc, char **argv) { report(\"a\", helper(argc)); "
                            "return helper(shared); }\n", "multi_a.c", nuttx_flags("v1"))
    b = arm_tc.compile_text("extern int shared; extern void *malloc(unsigned);\n"
                            "int helper(int x) { return x + shared + (malloc(4) != 0); }\n",
                            "multi_b.c", nuttx_flags("v1"))
    result = nxflat.build([a, b])
    assert result.imports == ("malloc", "report")  # ld -r's order: BFD's hash buckets
    assert "shared" in result.got and "helper" not in result.imports
    assert [row[0] for row in result.ispace_layout][:2] == [str(a), str(b)]
    # and it runs: helper(1) = 1 + 5 + 1 reported, helper(5) = 11 returned
    ld = Linker.emulated("cortex-m3")
    reports = []
    ld.host_function("report", lambda emu, m, v: reports.append((emu.read_string(m), v)))
    ld.host_function("malloc", lambda emu, n: emu.reserve(n, 8))
    path = tmp_path / "multi.nxf"
    path.write_bytes(result.data)
    assert ld.exec(ld.load(path), ["multi"]) == 11 and reports == [("a", 7)]


def test_ld_orders_globals_by_bfd_hash():
    assert nxflat.ld_global_order(["zeta", "alpha", "mid", "beta"]) == ["beta", "mid", "alpha",
                                                                         "zeta"]


def test_an_import_the_firmware_does_not_export_is_a_build_error(arm_tc):
    obj = compiled(arm_tc, "hello.c")
    with pytest.raises(UndefinedSymbolError) as error:
        nxflat.build([obj], exports=["report", "strlen"])
    assert error.value.symbol == "malloc" and error.value.kind == "R_ARM_THM_CALL"
    assert "ENOENT" in str(error.value)
    assert nxflat.build([obj], exports=SAMPLES / "exports.csv").imports == ("malloc", "report",
                                                                          "strlen")
    # the names in any iterable, not only a list
    names = ("malloc", "report", "strlen")
    assert nxflat.build([obj], exports=iter(names)).imports == names
    with pytest.raises(UndefinedSymbolError):
        nxflat.build([obj], exports=("report", "strlen"))


def test_code_built_without_nuttx_flags_is_refused_naming_the_field(arm_tc):
    no_pic = arm_tc.compile(SAMPLES / "hello.c", ["-O2"])
    with pytest.raises(UnsupportedError) as error:
        nxflat.build([no_pic])
    assert error.value.file == str(no_pic) and error.value.kind == "R_ARM_ABS32"
    assert error.value.section is not None and error.value.offset is not None
    assert "I-space is shared and never relocated" in str(error.value)
    text_relative = arm_tc.compile(SAMPLES / "hello.c", ["-fpic", "-msingle-pic-base",
                                                         "-mpic-register=r10"])
    with pytest.raises(UnsupportedError, match="NXFLAT cannot express"):
        nxflat.build([text_relative])


def test_the_entry_point_must_exist(arm_tc):
    with pytest.raises(UndefinedSymbolError, match="entry point"):
        nxflat.build([compiled(arm_tc, "hello.c")], entry="_start")
    with pytest.raises(LinkError, match="ABI"):
        nxflat.build([compiled(arm_tc, "hello.c")], abi="v3")


def test_the_command_builds_and_dumps(arm_tc, tmp_path, capsys):
    out = tmp_path / "fnptr.nxf"
    assert cli(["nxflat", str(compiled(arm_tc, "fnptr.c", "v2")), "-o", str(out), "--abi", "v2",
                "--stack", "2048", "--symbols", str(SAMPLES / "exports.csv"),
                "--no-callbacks"]) == 0
    assert out.read_bytes() == (SAMPLES / "v2" / "fnptr.nxf").read_bytes()
    assert "2 imports: __nxflat_abi_v2, report" in capsys.readouterr().out
    assert cli(["dump", str(out)]) == 0
    assert "ABI v2 (PIC register r9)" in capsys.readouterr().out
    assert cli(["nxflat", str(compiled(arm_tc, "hello.c")), "-o", str(out), "--symbols",
                str(SAMPLES / "exports.csv"), "--entry", "nothing"]) == 2
    assert "entry point" in capsys.readouterr().err


# -- mksymtab ---------------------------------------------------------------------------------------
def test_mksymtab_writes_what_nuttx_writes(tmp_path, capsys):
    out = tmp_path / "symtab.c"
    assert cli(["mksymtab", str(SAMPLES / "exports.csv"), "-o", str(out)]) == 0
    assert out.read_text() == (SAMPLES / "symtab.c").read_text()
    assert "5 exports" in capsys.readouterr().out


def test_mksymtab_sorts_and_keeps_conditions():
    rows = parse_exports_csv('"zz","b.h","CONFIG_Z","int","void"\n'
                             '"aa","a.h","","int"\n'
                             '"mm","b.h","","int","int (*)(int, int)","int"\n')
    text = symtab_c(rows, "g_t", "g_n")
    assert text.index('"aa"') < text.index('"mm"') < text.index('"zz"')
    assert '{ "aa", (FAR const void *)&aa },' in text  # a variable: its address
    assert '#if CONFIG_Z\n  { "zz", (FAR const void *)zz }\n#endif' in text
    assert rows[2].params == ("int (*)(int, int)", "int")
    assert text.index("#include <b.h>") < text.index("#include <a.h>")  # first mention
