"""The ELF reader against pyelftools, on objects compiled here and now in many ways.

Every object is read twice: by ``linkload.formats.elf`` (``read`` for the Module, ``ElfFile``
for the raw tables) and by pyelftools, and the two must agree on the loaded sections, every
symbol row, the relocations of the loaded sections, COMDAT groups, and for executables and
shared objects on the PT_LOAD segments and the symbol addresses.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from elftools.elf import enums
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from elfutil import (
    EM_PPC,
    EM_PPC64,
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_TLS,
    SHF_WRITE,
    SHT_FINI_ARRAY,
    SHT_GROUP,
    SHT_INIT_ARRAY,
    SHT_NOBITS,
    SHT_NOTE,
    SHT_PREINIT_ARRAY,
    SHT_REL,
    compile_c,
    compiles,
    need_tool,
    run,
    to_big_endian,
)
from linkload.formats import elf
from linkload.model import ABS, COMMON, NOT_LOADED, UNDEF, Module, SectionKind

# -- sources -----------------------------------------------------------------------------------
C_SOURCE = r"""
int printf(const char *, ...);        /* no headers: gcc -m32 may lack the 32-bit libc headers */
static int counter;
int table[4] = {1, 2, 3, 4};
const char *message = "hello, linkload";
static const char rodata_text[] = "constant text";
int zeroed[64];
__attribute__((aligned(64))) int aligned_data[16] = {1};
int common_var;                       /* COMMON with -fcommon, .bss without */
extern int external_function(int);
extern int external_data;
int add(int a, int b) { return a + b + counter; }
static int helper(int x) { return x * 3 + rodata_text[x & 7]; }
int use(int x) {
    counter++;
    switch (x) {
    case 0: return helper(1);
    case 1: return 7;
    case 2: return add(x, 2);
    case 3: return 11;
    case 4: return external_data;
    case 5: return 19;
    case 6: return common_var;
    default: return external_function(x) + table[x & 3];
    }
}
int (*function_pointer)(int, int) = add;
int *data_pointer = &table[2];
__attribute__((constructor(101))) static void early(void) { counter = 1; }
__attribute__((constructor)) static void late(void) { counter += 2; }
__attribute__((destructor(102))) static void bye(void) { counter = 0; }
static void (*preinit)(void) __attribute__((section(".preinit_array"), used)) = late;
__attribute__((weak)) int weak_function(void) { return 7; }
__attribute__((visibility("hidden"))) int hidden_function(void) { return 8; }
__attribute__((section(".custom_rodata"))) const int custom[2] = {5, 6};
int print_it(void) { return printf("%s %d\n", message, counter); }
"""

C_SECOND = r"""
extern int add(int, int);
static long second_data[3] = {1, 2, 3};
long *second_pointer = &second_data[1];
int second(int x) { return add(x, 1) + (int)second_data[x & 1]; }
"""

CXX_SOURCE = r"""
template <typename T> T twice(T x) { return x + x; }
inline int inline_square(int x) { return x * x; }
struct Counter { int n; Counter() : n(3) {} ~Counter() { n = 0; } };
static Counter global_counter;
int cpp_entry(int x) { return twice(x) + inline_square(x) + global_counter.n; }
double cpp_double(double d) { return twice(d); }
int cpp_throw(int x) { try { if (x) throw x; } catch (int e) { return e; } return 0; }
inline int &shared_counter() { static int c = 0; return c; }  // STB_GNU_UNIQUE
int bump() { return ++shared_counter(); }
"""

LARGE_COMMON = ("int big_common[100000];\nint small_common;\n"
                "int f(void) { return big_common[5] + small_common; }\n")

TLS_SOURCE = "__thread int tls_var = 3;\n__thread int tls_zero;\nint g(void) { return tls_var + tls_zero; }\n"

MAIN_SOURCE = r"""
#include <stdio.h>
int exe_data = 42;
int exe_bss;
const char exe_text[] = "static module";
int exe_function(int x) { return x + exe_data; }
int main(void) { printf("%s\n", exe_text); return exe_function(exe_bss); }
"""

LIB_SOURCE = r"""
int lib_data = 7;
static int lib_counter;
int lib_function(int x) { lib_counter += x; return lib_counter + lib_data; }
"""

ASM32 = r"""
    .text
    .globl f32
    .type f32, @function
f32:
    movl data32, %eax
    addl $data32, %eax
    call ext32
    ret
    .size f32, .-f32
    .data
    .globl data32
    .type data32, @object
data32:
    .long f32
    .long 7
    .size data32, 8
    .section .rodata
    .long data32 + 4
    .bss
    .lcomm buf32, 32
"""

# -- building ----------------------------------------------------------------------------------
OBJECTS = {  # name -> (source, compiler flags, C++)
    "O0": (C_SOURCE, ["-O0"], False),
    "O2": (C_SOURCE, ["-O2"], False),
    "sections": (C_SOURCE, ["-O2", "-ffunction-sections", "-fdata-sections"], False),
    "pic": (C_SOURCE, ["-O2", "-fPIC"], False),
    "nopic": (C_SOURCE, ["-O1", "-fno-pic"], False),
    "common": (C_SOURCE, ["-O0", "-fcommon"], False),
    "debug": (C_SOURCE, ["-O1", "-g"], False),
    "second": (C_SECOND, ["-O2", "-g"], False),
    "large_common": (LARGE_COMMON, ["-O2", "-fcommon", "-mcmodel=medium"], False),
    "tls": (TLS_SOURCE, ["-O2"], False),
    "cxx": (CXX_SOURCE, ["-O0", "-g"], True),
    "cxx_pic": (CXX_SOURCE, ["-O1", "-fPIC", "-ffunction-sections"], True),
}


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    need_tool("gcc", "g++")
    return tmp_path_factory.mktemp("reader")


@pytest.fixture(scope="module")
def objects(build) -> dict[str, Path]:
    """Every object of OBJECTS, compiled in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    def one(item):
        name, (source, flags, cxx) = item
        return name, compile_c(source, build / f"{name}.o", flags, cxx=cxx)

    with ThreadPoolExecutor(8) as pool:
        out = dict(pool.map(one, OBJECTS.items()))
    out["ld_r"] = build / "ld_r.o"
    run(["ld", "-r", str(out["debug"]), str(out["second"]), "-o", str(out["ld_r"])])
    return out


@pytest.fixture(scope="module")
def object32(build, request) -> Path:
    """A 32-bit x86 object: from gcc -m32 when the multilib is there, else from as --32."""
    if compiles(["gcc", "-m32", "-O2", "-g"], C_SOURCE, ".c", build):
        return compile_c(C_SOURCE, build / "m32.o", ["-m32", "-O2", "-g"])
    if os.environ.get("CI"):
        pytest.fail("gcc -m32 does not work here")
    return request.getfixturevalue("object32_asm")


@pytest.fixture(scope="module")
def object32_asm(build) -> Path:
    need_tool("as")
    src = build / "asm32.s"
    src.write_text(ASM32)
    run(["as", "--32", str(src), "-o", str(build / "asm32.o")])
    return build / "asm32.o"


@pytest.fixture(scope="module")
def object32_pic(build, object32) -> Path:
    if compiles(["gcc", "-m32", "-fPIC"], C_SOURCE, ".c", build):
        return compile_c(C_SOURCE, build / "m32pic.o", ["-m32", "-O0", "-fPIC", "-fcommon"])
    return object32


def _big_endian(src: Path, machine: int) -> Path:
    out = src.with_name(src.stem + "_be.o")
    out.write_bytes(to_big_endian(src.read_bytes(), machine))
    return out


# -- pyelftools, as numbers ----------------------------------------------------------------------
def _enum_numbers(prefix: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in dir(enums):
        if name.startswith(prefix):
            out.update({k: v for k, v in getattr(enums, name).items() if isinstance(v, int)})
    return out


SH_TYPES = _enum_numbers("ENUM_SH_TYPE")
BIND = enums.ENUM_ST_INFO_BIND
TYPE = enums.ENUM_ST_INFO_TYPE
VISIBILITY = enums.ENUM_ST_VISIBILITY
SHNDX = {"SHN_UNDEF": 0, "SHN_ABS": 0xFFF1, "SHN_COMMON": 0xFFF2}
MACHINES = {"EM_386": 3, "EM_PPC": 20, "EM_PPC64": 21, "EM_ARM": 40, "EM_X86_64": 62,
            "EM_AARCH64": 183}
E_TYPES = {"ET_REL": 1, "ET_EXEC": 2, "ET_DYN": 3}


def num(value, table: dict[str, int]) -> int:
    return value if isinstance(value, int) else table[value]


def expected_loaded(header) -> bool:
    flags, sh_type = header["sh_flags"], num(header["sh_type"], SH_TYPES)
    return bool(flags & SHF_ALLOC) and not flags & SHF_TLS and sh_type not in (SHT_NOTE, SHT_GROUP)


def expected_kind(name: str, header) -> SectionKind:
    sh_type, flags = num(header["sh_type"], SH_TYPES), header["sh_flags"]
    if sh_type in (SHT_INIT_ARRAY, SHT_PREINIT_ARRAY) or name.startswith(".ctors"):
        return SectionKind.INIT
    if sh_type == SHT_FINI_ARRAY or name.startswith(".dtors"):
        return SectionKind.FINI
    if sh_type == SHT_NOBITS:
        return SectionKind.BSS
    if flags & SHF_EXECINSTR:
        return SectionKind.TEXT
    if flags & SHF_WRITE:
        return SectionKind.DATA
    return SectionKind.RODATA


def symbol_table(ef: ELFFile) -> SymbolTableSection | None:
    return ef.get_section_by_name(".symtab") or next(
        (s for s in ef.iter_sections() if isinstance(s, SymbolTableSection)), None)


def shndx_number(sym) -> int:
    return num(sym["st_shndx"], SHNDX)


def open_elf(path: Path) -> ELFFile:
    return ELFFile(io.BytesIO(path.read_bytes()))


# -- the cross-checks ----------------------------------------------------------------------------
def check_sections(module: Module, ef: ELFFile) -> None:
    expected = [(i, s) for i, s in enumerate(ef.iter_sections()) if expected_loaded(s.header)]
    assert [s.index for s in module.sections] == [i for i, _ in expected]
    for sec, (i, ref) in zip(module.sections, expected, strict=True):
        h = ref.header
        assert sec.name == ref.name, i
        assert sec.size == h["sh_size"], sec.name
        assert sec.align == max(h["sh_addralign"], 1), sec.name
        assert sec.kind == expected_kind(ref.name, h), sec.name
        assert sec.file == module.file
        if num(h["sh_type"], SH_TYPES) == SHT_NOBITS:
            assert sec.data is None, sec.name
        else:
            assert bytes(sec.data) == ref.data(), sec.name


def check_symbols(module: Module, ef: ELFFile, static: bool = False) -> None:
    symtab = symbol_table(ef)
    refs = list(symtab.iter_symbols()) if symtab else []
    syms = module.symbols
    assert len(syms) == len(refs)
    module_of_elf = {s.index: i for i, s in enumerate(module.sections)}
    sh_count = ef.num_sections()
    for row, ref in enumerate(refs):
        got = syms[row]
        where = f"symbol {row} {ref.name!r}"
        assert module.symbol_name(row) == ref.name, where
        assert int(got["value"]) == ref["st_value"], where
        assert int(got["size"]) == ref["st_size"], where
        assert int(got["type"]) == num(ref["st_info"]["type"], TYPE), where
        assert int(got["visibility"]) == num(ref["st_other"]["visibility"], VISIBILITY), where
        assert int(got["module"]) == -1, where
        bind = num(ref["st_info"]["bind"], BIND)
        assert int(got["bind"]) == (0 if row == 0 else bind), where
        shndx = shndx_number(ref)
        section = int(got["section"])
        if row == 0 or shndx == 0:
            assert section == UNDEF, where
        elif static or shndx == 0xFFF1:
            assert section == ABS, where
        elif shndx == 0xFFF2 or (shndx == 0xFF02 and ef["e_machine"] == "EM_X86_64"):
            assert section == COMMON, where
        elif shndx < sh_count:
            if shndx in module_of_elf:
                assert section == module_of_elf[shndx], where
                assert module.sections[section].index == shndx, where
            else:
                assert section == NOT_LOADED, where
        else:
            raise AssertionError(f"{where}: unexpected st_shndx {shndx:#x}")


def reloc_rows(ef: ELFFile, loaded_only: bool = True):
    """(applied ELF index, applied name, offset, type, symbol, addend) of every relocation."""
    sections = list(ef.iter_sections())
    for rs in sections:
        if not isinstance(rs, RelocationSection):
            continue
        target = sections[rs["sh_info"]]
        if loaded_only and not expected_loaded(target.header):
            continue
        for r in rs.iter_relocations():
            addend = r["r_addend"] if rs.is_RELA() else 0
            yield (rs["sh_info"], target.name, r["r_offset"], r["r_info_type"], r["r_info_sym"],
                   addend, num(rs["sh_type"], SH_TYPES) == SHT_REL)


def check_relocations(module: Module, ef: ELFFile) -> None:
    expected = collections.Counter(reloc_rows(ef))
    got = collections.Counter(
        (module.sections[int(r["section"])].index, module.sections[int(r["section"])].name,
         int(r["offset"]), int(r["kind"]), int(r["target"]), int(r["addend"]), bool(r["implicit"]))
        for r in module.relocations)
    assert got == expected
    assert (module.relocations["target"] < len(module.symbols)).all()


def check_groups(module: Module, ef: ELFFile) -> dict[int, str]:
    symtab = symbol_table(ef)
    expected: dict[int, str] = {}
    for sec in ef.iter_sections():
        if num(sec["sh_type"], SH_TYPES) != SHT_GROUP:
            continue
        words = np.frombuffer(sec.data(), ef.little_endian and "<u4" or ">u4")
        if not words[0] & 1:
            continue
        signature = symtab.get_symbol(sec["sh_info"]).name
        for member in words[1:]:
            expected[int(member)] = signature
    for sec in module.sections:
        assert sec.group == expected.get(sec.index), sec.name
    return expected


def check_elffile(path: Path, ef: ELFFile) -> elf.ElfFile:
    """The raw tables of ElfFile against pyelftools."""
    raw = elf.ElfFile(path.read_bytes(), str(path))
    h = raw.header
    assert h.bits == ef.elfclass
    assert h.byteorder == ("<" if ef.little_endian else ">")
    for field in ("entry", "phoff", "shoff", "flags", "phentsize", "phnum", "shentsize", "shnum",
                  "shstrndx"):
        assert getattr(h, field) == ef[f"e_{field}"], field
    assert h.type == E_TYPES[ef["e_type"]]
    assert h.machine == num(ef["e_machine"], MACHINES)
    sections = list(ef.iter_sections())
    assert len(raw.sections) == len(sections)
    assert raw.names == [s.name for s in sections]
    for i, sec in enumerate(sections):
        for field in ("flags", "addr", "offset", "size", "link", "info", "addralign", "entsize"):
            assert int(raw.sections[field][i]) == sec[f"sh_{field}"], (sec.name, field)
        assert int(raw.sections["type"][i]) == num(sec["sh_type"], SH_TYPES), sec.name
        if num(sec["sh_type"], SH_TYPES) != SHT_NOBITS:
            assert bytes(raw.section_data(i)) == sec.data(), sec.name
    symtab = symbol_table(ef)
    if symtab is not None:
        assert raw.symtab_index == sections.index(
            next(s for s in sections if s.name == symtab.name and s.header == symtab.header))
        assert raw.strtab == sections[symtab["sh_link"]].data()
        refs = list(symtab.iter_symbols())
        assert len(raw.symbols) == len(refs)
        for row, ref in enumerate(refs):
            assert raw.symbol_name(row) == ref.name
            assert int(raw.symbol_shndx[row]) == shndx_number(ref)
            assert int(raw.symbols["value"][row]) == ref["st_value"]
    reloc_sections = [i for i, s in enumerate(sections) if isinstance(s, RelocationSection)]
    assert raw.relocation_sections() == reloc_sections
    for i in reloc_sections:
        if sections[i]["sh_link"] != raw.symtab_index:
            continue  # .rela.dyn and .rela.plt of an executable go with .dynsym, not .symtab
        offset, typ, sym, addend = raw.relocations(i)
        refs = list(sections[i].iter_relocations())
        assert offset.tolist() == [r["r_offset"] for r in refs]
        assert typ.tolist() == [r["r_info_type"] for r in refs]
        assert sym.tolist() == [r["r_info_sym"] for r in refs]
        assert addend.tolist() == [r["r_addend"] if sections[i].is_RELA() else 0 for r in refs]
    return raw


def check_relocatable(path: Path, machine: str, bits: int, byteorder: str = "<") -> Module:
    ef = open_elf(path)
    module = elf.read(path)
    assert module.kind == "relocatable"
    assert (module.machine, module.bits, module.byteorder) == (machine, bits, byteorder)
    assert module.file == str(path)
    assert module.name == path.stem
    check_sections(module, ef)
    check_symbols(module, ef)
    check_relocations(module, ef)
    expected_groups = check_groups(module, ef)
    raw = check_elffile(path, ef)
    assert raw.groups() == expected_groups
    # the same bytes, read from memory
    again = elf.read(path.read_bytes(), "again", "memory.o")
    assert again.name == "again" and again.file == "memory.o"
    assert np.array_equal(again.symbols, module.symbols)
    assert np.array_equal(again.relocations, module.relocations)
    assert [s.name for s in again.sections] == [s.name for s in module.sections]
    for other in (bytearray(path.read_bytes()), memoryview(path.read_bytes())):
        copy = elf.read(other, "copy")
        assert copy.file == "<bytes>"
        assert np.array_equal(copy.symbols, module.symbols)
        assert [bytes(s.data or b"") for s in copy.sections] == [
            bytes(s.data or b"") for s in module.sections]
    return module


# -- relocatable objects -------------------------------------------------------------------------
@pytest.mark.parametrize("name", [*OBJECTS, "ld_r"])
def test_relocatable_x86_64(objects, name):
    module = check_relocatable(objects[name], "x86_64", 64)
    assert len(module.sections) > 0
    if name not in ("tls", "large_common"):
        assert len(module.relocations) > 0


def test_function_and_data_sections_are_split(objects):
    module = elf.read(objects["sections"])
    names = {s.name for s in module.sections}
    assert {".text.add", ".text.use", ".data.table", ".bss.zeroed"} <= names
    use = module.symbols[module.find_symbol("use")]
    assert module.sections[int(use["section"])].name == ".text.use"


def test_common_symbols(objects):
    module = elf.read(objects["common"])
    row = module.find_symbol("common_var")
    assert int(module.symbols["section"][row]) == COMMON
    assert int(module.symbols["size"][row]) == 4
    assert int(module.symbols["value"][row]) == 4  # the alignment
    # without -fcommon, the same definition is a .bss object
    module = elf.read(objects["O0"])
    row = module.find_symbol("common_var")
    assert module.sections[int(module.symbols["section"][row])].kind == SectionKind.BSS


def test_large_common_is_common(objects):
    """x86-64 SHN_X86_64_LCOMMON (a common block of the medium model) is a common block too."""
    module = elf.read(objects["large_common"])
    for name, size in (("big_common", 400000), ("small_common", 4)):
        row = module.find_symbol(name)
        assert int(module.symbols["section"][row]) == COMMON, name
        assert int(module.symbols["size"][row]) == size


def test_debug_sections_are_not_loaded(objects):
    ef = open_elf(objects["debug"])
    debug = [s for s in ef.iter_sections() if s.name.startswith(".debug_")]
    assert debug, "gcc -g made no debug sections"
    debug_relocs = [r for r in reloc_rows(ef, loaded_only=False)
                    if r[1].startswith(".debug_")]
    assert debug_relocs, "no relocations of debug sections"
    module = elf.read(objects["debug"])
    assert not any(s.name.startswith(".debug") for s in module.sections)
    indices = {s.index for s in module.sections}
    assert not any(int(r["section"]) < 0 for r in module.relocations)
    assert all(module.sections[int(r["section"])].index in indices for r in module.relocations)
    # section symbols of the debug sections are NOT_LOADED rows
    symtab = symbol_table(ef)
    debug_indices = {ef.get_section_index(s.name) for s in debug}
    rows = [i for i, s in enumerate(symtab.iter_symbols())
            if isinstance(s["st_shndx"], int) and s["st_shndx"] in debug_indices]
    assert all(int(module.symbols["section"][r]) == NOT_LOADED for r in rows)


def test_init_and_fini_arrays(objects):
    module = elf.read(objects["O2"])
    by_name = {s.name: s for s in module.sections}
    early = by_name[".init_array.00101"]
    assert (early.kind, early.priority, early.reverse) == (SectionKind.INIT, 101, False)
    late = by_name[".init_array"]
    assert (late.kind, late.priority, late.reverse) == (SectionKind.INIT, 65536, False)
    bye = by_name[".fini_array.00102"]
    assert (bye.kind, bye.priority, bye.reverse) == (SectionKind.FINI, 102, True)
    pre = by_name[".preinit_array"]
    assert (pre.kind, pre.priority, pre.reverse) == (SectionKind.INIT, -1, False)


def test_tls_sections_are_not_loaded(objects):
    module = elf.read(objects["tls"])
    assert not any(s.name.startswith((".tdata", ".tbss")) for s in module.sections)
    for name in ("tls_var", "tls_zero"):
        assert int(module.symbols["section"][module.find_symbol(name)]) == NOT_LOADED


def test_cxx_comdat_groups(objects):
    module = elf.read(objects["cxx"])
    groups = {s.group for s in module.sections if s.group}
    assert {"_Z13inline_squarei", "_Z5twiceIiET_S0_", "_Z5twiceIdET_S0_"} <= groups
    member = next(s for s in module.sections if s.group == "_Z13inline_squarei"
                  and s.kind == SectionKind.TEXT)
    assert member.name == ".text._Z13inline_squarei"
    row = module.find_symbol("_Z13inline_squarei")
    assert module.sections[int(module.symbols["section"][row])] is member
    assert int(module.symbols["bind"][row]) == 2  # weak
    row = module.find_symbol("_ZZ14shared_countervE1c")
    assert int(module.symbols["bind"][row]) == 10  # STB_GNU_UNIQUE, kept as it is
    assert module.sections[int(module.symbols["section"][row])].kind == SectionKind.BSS
    # -fPIC -O1: the personality routine's DW.ref word is a COMDAT data group
    module = elf.read(objects["cxx_pic"])
    groups = {s.group: s for s in module.sections if s.group}
    assert groups["DW.ref.__gxx_personality_v0"].kind == SectionKind.DATA


def test_relocation_runs_are_views_of_the_file(objects):
    """ELF64 relocations are kept per patched section as views of the file's own table; the
    flat table is built from them on demand, read-only, and equals their concatenation."""
    data = Path(objects["ld_r"]).read_bytes()
    module = elf.read(data)
    runs = module.relocation_runs
    assert len(runs) >= 2 and sum(len(r) for r in runs) == len(module.relocations)
    buffer = np.frombuffer(data, np.uint8)
    for part_run in runs:
        for column in (part_run.offset, part_run.kind, part_run.target, part_run.addend):
            assert np.shares_memory(column, buffer)  # read in place, never copied
    flat = module.relocations
    assert not flat.flags.writeable  # change relocations by setting the attribute
    start = 0
    for part_run in runs:
        part = flat[start:start + len(part_run)]
        assert (part["section"] == part_run.section).all()
        assert part["kind"].tolist() == part_run.kind.tolist()
        assert part["target"].tolist() == part_run.target.tolist()
        assert part["addend"].tolist() == part_run.addend.tolist()
        start += len(part_run)
    table = flat.copy()
    table["addend"][0] += 1
    module.relocations = table  # a flat table set by hand is cut into runs again
    assert int(module.relocation_runs[0].addend[0]) == int(flat["addend"][0]) + 1
    assert [r.section for r in module.relocation_runs] == [r.section for r in runs]


def test_ld_r_combines_two_objects(objects):
    module = elf.read(objects["ld_r"])
    for name in ("add", "use", "second", "second_pointer"):
        row = module.find_symbol(name)
        assert row is not None and int(module.symbols["section"][row]) >= 0, name
    # second's call to add is still a relocation (ld -r resolves nothing)
    assert len(module.relocations) > len(elf.read(objects["debug"]).relocations)


# -- 32-bit and big-endian -------------------------------------------------------------------------
def test_relocatable_i386(object32):
    module = check_relocatable(object32, "i386", 32)
    assert len(module.relocations) and module.relocations["implicit"].all()  # REL tables


def test_relocatable_i386_pic(object32_pic):
    check_relocatable(object32_pic, "i386", 32)


def test_relocatable_i386_assembled(object32_asm):
    module = check_relocatable(object32_asm, "i386", 32)
    assert module.relocations["implicit"].all()
    names = {module.symbol_name(int(t)) for t in module.relocations["target"]}
    assert {"data32", "ext32", "f32"} <= names


def test_relocatable_big_endian_32_assembled(object32_asm):
    path = _big_endian(object32_asm, EM_PPC)
    module = check_relocatable(path, "ppc", 32, ">")
    assert module.relocations.tolist() == elf.read(object32_asm).relocations.tolist()


@pytest.mark.parametrize("name", ["debug", "cxx", "common", "sections"])
def test_relocatable_big_endian_64(objects, name):
    path = _big_endian(objects[name], EM_PPC64)
    module = check_relocatable(path, "ppc64", 64, ">")
    little = elf.read(objects[name])
    assert module.symbols.tolist() == little.symbols.tolist()
    assert module.relocations.tolist() == little.relocations.tolist()
    assert [s.group for s in module.sections] == [s.group for s in little.sections]


def test_relocatable_big_endian_32(object32):
    path = _big_endian(object32, EM_PPC)
    module = check_relocatable(path, "ppc", 32, ">")
    little = elf.read(object32)
    assert module.symbols.tolist() == little.symbols.tolist()
    assert module.relocations.tolist() == little.relocations.tolist()


# -- many sections: extended section numbering -------------------------------------------------------
def test_extended_section_numbering(build):
    """More than 0xff00 sections: e_shnum is 0, e_shstrndx SHN_XINDEX, and symbols of the sections
    numbered 0xff00 and up carry SHN_XINDEX with the real index in .symtab_shndx."""
    need_tool("as")
    count = 0xFF00 + 40
    lines = [f'.section .t{i},"ax",@progbits\n.byte {i % 256}\n' for i in range(count)]
    lines[0] += ".globl zeroth\nzeroth: .byte 0\n"
    lines.append(".globl last\nlast: .byte 1\n")
    lines.append('.section .s1,"ax",@progbits\n.globl first\nfirst: .byte 2\n')
    lines.append(".section .data\n.quad last\n.quad first\n")
    src = build / "many.s"
    src.write_text("".join(lines))
    out = build / "many.o"
    run(["as", str(src), "-o", str(out)])
    module = elf.read(out)
    raw = elf.ElfFile(out.read_bytes(), str(out))
    assert raw.header.shnum == 0 and len(raw.sections) > 0xFF00
    for name, section in (("zeroth", ".t0"), ("first", ".s1"), ("last", f".t{count - 1}")):
        row = module.find_symbol(name)
        sec = int(module.symbols["section"][row])
        assert sec >= 0, f"{name}: section {sec}, expected the module index of {section}"
        assert module.sections[sec].name == section
        assert raw.names[module.sections[sec].index] == section
    data = module.section_named(".data")
    relocs = module.relocations[module.relocations["section"] == module.sections.index(data)]
    assert sorted(module.symbol_name(int(t)) for t in relocs["target"]) == ["first", "last"]


# -- executables and shared objects ------------------------------------------------------------------
def check_static(path: Path) -> Module:
    ef = open_elf(path)
    module = elf.read(path)
    assert module.kind == ("executable" if ef["e_type"] == "ET_EXEC" else "shared")
    assert module.machine == "x86_64" and module.bits == 64
    assert module.entry == ef["e_entry"]
    assert len(module.relocations) == 0
    check_symbols(module, ef, static=True)
    loads = [seg for seg in ef.iter_segments() if seg["p_type"] == "PT_LOAD"]
    assert len(module.segments) == len(loads) > 0
    for seg, ref in zip(module.segments, loads, strict=True):
        assert seg.address == ref["p_vaddr"]
        assert seg.size == ref["p_memsz"]
        assert bytes(seg.data) == ref.data()
        flags = ref["p_flags"]
        assert (seg.readable, seg.writable, seg.executable) == (
            bool(flags & 4), bool(flags & 2), bool(flags & 1))
    expected = [(i, s) for i, s in enumerate(ef.iter_sections()) if expected_loaded(s.header)]
    assert [s.index for s in module.sections] == [i for i, _ in expected]
    for sec, (_, ref) in zip(module.sections, expected, strict=True):
        assert (sec.name, sec.size, sec.address) == (ref.name, ref["sh_size"], ref["sh_addr"])
        assert sec.kind == expected_kind(ref.name, ref.header)
        if sec.kind != SectionKind.BSS:
            assert bytes(sec.data) == ref.data()
    check_elffile(path, ef)
    return module


@pytest.fixture(scope="module")
def static_files(build) -> dict[str, Path]:
    out = {
        "pie": compile_c(MAIN_SOURCE, build / "exe_pie", ["-O1"], link=True),
        "shared": compile_c(LIB_SOURCE, build / "lib.so", ["-O1", "-shared", "-fPIC"], link=True),
    }
    with contextlib.suppress(RuntimeError):  # a toolchain that cannot link -no-pie
        out["nopie"] = compile_c(MAIN_SOURCE, build / "exe_nopie", ["-O1", "-no-pie"], link=True)
    return out


@pytest.mark.parametrize("name", ["pie", "nopie", "shared"])
def test_static_modules(static_files, name):
    if name not in static_files:
        pytest.skip("gcc cannot link -no-pie executables here")
    module = check_static(static_files[name])
    ef = open_elf(static_files[name])
    symtab = symbol_table(ef)
    wanted = ("exe_function", "exe_data", "main") if name != "shared" else ("lib_function", "lib_data")
    for sym in wanted:
        ref = symtab.get_symbol_by_name(sym)[0]
        row = module.find_symbol(sym)
        assert int(module.symbols["section"][row]) == ABS
        assert int(module.symbols["value"][row]) == ref["st_value"] != 0
    if name == "nopie":
        assert module.kind == "executable"


def test_stripped_shared_object_uses_dynsym(static_files, build):
    need_tool("strip")
    out = build / "lib_stripped.so"
    subprocess.run(["strip", "-o", str(out), str(static_files["shared"])], check=True)
    module = check_static(out)
    row = module.find_symbol("lib_function")
    assert row is not None and int(module.symbols["section"][row]) == ABS
    assert module.find_symbol("lib_counter") is None  # a local: only in .symtab


def test_nobits_section_may_start_past_the_end_of_the_file(objects):
    """A NOBITS section takes no room in the file; linkers often give it an offset beyond
    the end (a static executable whose .bss follows its data in memory, not in the file)."""
    from elfutil import patch_section

    data = Path(objects["O2"]).read_bytes()
    moved = patch_section(data, ".bss", sh_offset=len(data) + 0x1000)
    module = elf.read(moved, "moved")
    assert module.section_named(".bss").size == elf.read(data, "orig").section_named(".bss").size
