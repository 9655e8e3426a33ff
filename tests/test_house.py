"""The house itself: a CPU is one Arch, a format is one registry entry, and nothing in link/ or
space/ changes for either; the registries refuse what a CPU does not offer; each pass of a
link can be run on its own.

A toy CPU and a toy format are defined here, in the test, and linked into an offline image
space, as a new CPU file and a new format file would be.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

import linkload
from linkload import Linker, RelocationOverflowError, UndefinedSymbolError, UnsupportedError, formats
from linkload import arch as arch_registry
from linkload.arch import Arch, Check, Expr, Field, Kind, Veneer
from linkload.link.context import AUTO, STATIC_MODULE, Definition, LinkContext, LinkRequest
from linkload.link.plan import plan
from linkload.link.resolve import SymbolUses, resolve
from linkload.link.select import select, survey
from linkload.model import (
    FUNC,
    GLOBAL,
    LOCAL,
    SYMBOL_DTYPE,
    UNDEF,
    Module,
    RelocationRun,
    Section,
    SectionKind,
)
from linkload.space import Window
from linkload.space.emulated import EmulatedSpace
from linkload.space.image import ImageSpace
from linkload.space.native import NativeSpace
from linkload.trampoline import TrampolinePool

# -- a toy CPU, as a new arch file would declare it ------------------------------------------------
WORD = Field(4, 0xFFFF_FFFF, 32, Check.BITFIELD)
CALL24 = Field(4, 0x00FF_FFFF, 24, Check.SIGNED, shift=2)  # a word displacement: +-32 MiB
HALF = Field(2, 0xFFFF, 16, Check.UNSIGNED)
R_TOY_NONE, R_TOY_32, R_TOY_CALL, R_TOY_16, R_TOY_SIZE32 = 0, 1, 2, 3, 4
CALL_OPCODE = 0xEB


def toy_veneer(address: int, target: int) -> bytes:
    """``jump absolute target``: an opcode word and the address."""
    return struct.pack("<II", 0xEA00_0000, target)


TOY = Arch(
    name="toy32", bits=32, byteorder="<",
    kinds={R_TOY_NONE: Kind("R_TOY_NONE", Expr.NONE, None),
           R_TOY_32: Kind("R_TOY_32", Expr.ABS, WORD),
           R_TOY_CALL: Kind("R_TOY_CALL", Expr.BRANCH, CALL24),
           R_TOY_16: Kind("R_TOY_16", Expr.ABS, HALF),
           R_TOY_SIZE32: Kind("R_TOY_SIZE32", Expr.SIZE, WORD)},
    pcrel_reach=1 << 25, branch_reach=1 << 25, veneer=Veneer(8, toy_veneer),
    got_entry_size=4, pointer_kind=R_TOY_32)

ROM, RAM = 0x1000_0000, 0x2000_0000
FAR = 0x7000_0000  # over 32 MiB from anything in ROM or RAM


def toy_space(**symbols: int) -> ImageSpace:
    return ImageSpace([(ROM, 1 << 20, "ROM"), (RAM, 1 << 20, "RAM")],
                      symbols={"far_away": FAR, "small": 0x1234, **symbols})


def toy_module(small_target: str = "small", small_kind: int = R_TOY_16) -> Module:
    """Two calls (one far, one to its own code), a pointer and a 16-bit value (or another
    ``small_kind`` of relocation against ``small_target``)."""
    names = ["", "start", "far_away", "table", small_target]
    strtab = b"\0" + b"".join(n.encode() + b"\0" for n in names[1:])
    offsets = np.cumsum([0] + [len(n) + 1 for n in names[:-1]])
    symbols = np.zeros(len(names), SYMBOL_DTYPE)
    symbols["name"] = [0, *offsets[1:]]
    symbols["module"] = -1
    symbols["section"] = [UNDEF, 0, UNDEF, 1, UNDEF]
    symbols["bind"] = [LOCAL, LOCAL, GLOBAL, GLOBAL, GLOBAL]
    symbols["type"] = [0, FUNC, 0, 0, 0]
    text = struct.pack("<4I", CALL_OPCODE << 24, CALL_OPCODE << 24, 0, 0)
    sections = [Section(".text", SectionKind.TEXT, 16, 4, text, 1, file="toy.o"),
                Section(".data", SectionKind.DATA, 8, 4, bytes(8), 2, file="toy.o")]

    def run(section, offsets, kinds, targets, addends):
        return RelocationRun(section, np.array(offsets, np.uint64), np.array(kinds, np.uint32),
                             np.array(targets, np.uint32), np.array(addends, np.int64))

    runs = [run(0, [0, 4], [R_TOY_CALL, R_TOY_CALL], [2, 1], [0, 8]),
            run(1, [0, 4], [R_TOY_32, small_kind], [1, 4], [0, 0])]
    return Module("toy", "toy32", "<", 32, sections, symbols, strtab, runs, "toy.o")


def word(space: ImageSpace, address: int) -> int:
    return struct.unpack("<I", space.read(address, 4))[0]


def test_a_new_cpu_is_one_arch_and_links_with_nothing_else_changed():
    space = toy_space()
    module = Linker(space, TOY, place_near=None).link(toy_module())
    text, data = module.section_address(".text"), module.section_address(".data")
    assert space.memory.region_of(module.base).name == "ROM"
    # the far call goes through the module's veneer, which jumps on to far_away
    (slot,) = module.veneer_slots.values()
    first = word(space, text)
    assert first >> 24 == CALL_OPCODE  # the field's mask kept the opcode
    assert (first & 0xFF_FFFF) == ((slot - text) >> 2)
    assert space.read(slot, 8) == toy_veneer(slot, FAR)
    # the local call: (start + 8 - P) / 4 words
    assert word(space, text + 4) == (CALL_OPCODE << 24) | ((text + 8 - (text + 4)) >> 2)
    assert word(space, data) == text  # the pointer to start
    assert struct.unpack("<H", space.read(data + 4, 2))[0] == 0x1234
    assert space.protection(text).name == "READ_EXECUTE"


def test_a_new_cpu_gets_checked_fields_and_a_failed_link_changes_nothing():
    space = toy_space(wide=0x12345)
    linker = Linker(space, TOY, place_near=None)
    with pytest.raises(RelocationOverflowError) as info:
        linker.link(toy_module(small_target="wide"))
    e = info.value
    assert (e.file, e.section, e.offset, e.kind, e.symbol) == ("toy.o", ".data", 4, "R_TOY_16", "wide")
    assert "16-bit unsigned" in str(e)
    assert space.memory.reservations == {} and linker.modules == []


# -- a toy format, as a new format file would register it ------------------------------------------
TOY_MAGIC = b"TOY\x01"


def read_toy(data, name: str, file: str) -> Module:
    """A header (magic, code size) and the code; the symbol ``entry`` names its start."""
    if len(data) < 8 or bytes(data[:4]) != TOY_MAGIC:
        raise linkload.FormatError("not a toy module", file=file, offset=0)
    (size,) = struct.unpack_from("<I", data, 4)
    code = bytes(data[8:8 + size])
    symbols = np.zeros(2, SYMBOL_DTYPE)
    symbols["module"] = -1
    symbols[0]["section"] = UNDEF
    symbols[1]["name"], symbols[1]["section"], symbols[1]["bind"] = 1, 0, GLOBAL
    return Module(name, "toy32", "<", 32, [Section(".code", SectionKind.TEXT, size, 4, code, 1)],
                  symbols, b"\0entry\0", file=file)


def dump_toy(data, file: str, *, disasm: bool = False, plf=None):
    yield f"{file}: toy module, {len(data) - 8} bytes of code"


def test_a_new_format_is_one_registry_entry(tmp_path, monkeypatch):
    entry = formats.Format("toy", read_toy, dump_toy, magic=TOY_MAGIC, extensions=(".toy",))
    monkeypatch.setattr(formats, "FORMATS", (*formats.FORMATS, entry))
    path = tmp_path / "prog.bin"
    path.write_bytes(TOY_MAGIC + struct.pack("<I", 8) + bytes(range(8)))
    assert formats.guess_format(path.read_bytes(), str(path)) is entry
    assert list(formats.dump(path)) == [f"{path}: toy module, 8 bytes of code"]
    module = Linker(toy_space(), TOY, place_near=None).link(path)
    assert module.space.read(module.address("entry"), 8) == bytes(range(8))


def test_formats_are_recognised_by_magic_then_extension():
    assert formats.guess_format(b"\x7fELF....", "a.o").name == "elf"
    assert formats.guess_format(b"\0" * 8, "x/A.REL").name == "rel"
    assert formats.guess_format(b"\0" * 8, "main.dol").name == "dol"
    assert formats.guess_format(b"MZ\0\0\0\0\0\0", "app.bin").name == "pe"
    assert formats.guess_format(b"\0" * 8, "notes.txt") is None
    with pytest.raises(linkload.FormatError, match="unknown format 'macho'"):
        formats.read_module(b"\0" * 8, format="macho")


# -- the registries refuse what a CPU does not offer ------------------------------------------------
def test_cpus_are_found_by_name_and_the_host_by_its_machine():
    assert arch_registry.get("ppc").name == "ppc"
    with pytest.raises(UnsupportedError, match="no support for the z80 CPU"):
        arch_registry.get("z80")
    assert arch_registry.host().name == "x86_64"  # the machine the tests run on
    assert Linker.native().arch is arch_registry.host()


def test_spaces_and_pools_refuse_a_cpu_without_the_part_they_need(monkeypatch):
    with pytest.raises(UnsupportedError, match="cannot run linked code in this process"):
        NativeSpace(arch=arch_registry.get("ppc"))
    monkeypatch.setitem(arch_registry.ARCHES, TOY.name, TOY)
    with pytest.raises(UnsupportedError, match="no emulation of the toy32 CPU"):
        EmulatedSpace("toy32")
    with pytest.raises(UnsupportedError, match="no trampolines for the toy32 CPU"):
        TrampolinePool(toy_space(), TOY)
    with pytest.raises(UnsupportedError, match="nothing runs in an image space"):
        toy_space().call(ROM)


# -- dump --disasm takes the CPU from the file ------------------------------------------------------
def test_dump_disassembles_an_x86_64_object_with_its_relocations(host):
    obj = host.compile_text("#include <stdio.h>\nint hello(void) { return puts(\"hi\"); }\n",
                            "hello.c", ["-O2", "-fno-pic"])
    text = "\n".join(formats.dump(obj, disasm=True))
    assert "Disassembly of section .text:" in text
    lines = [line for line in text.splitlines() if "R_X86_64_PLT32 puts" in line and ";" in line]
    assert lines and ("jmp" in lines[0] or "call" in lines[0])  # the instruction holding it


# -- the passes, one at a time ------------------------------------------------------------------------
GROUPED = """
inline int twice(int x) { return 2 * x; }
extern "C" int use_twice(int x) { return twice(x) + puts_count(); }
"""


LIBRARY = 0x7F00_1234_0000  # where the static module's puts_count is, for this test


def test_each_pass_runs_on_its_own(host):
    obj = host.compile_text('extern "C" int puts_count(void);\n' + GROUPED, "grouped.cpp",
                            ["-O0", "-fPIC"])
    module = linkload.read_module(obj)
    arch = arch_registry.get("x86_64")
    space = NativeSpace(arch=arch)
    static = {"puts_count": Definition(LIBRARY, STATIC_MODULE)}
    context = LinkContext(space, arch, resolve=static.get,
                          group_linked=lambda signature: signature == "_Z5twicei",
                          unresolved_handler=lambda: 0)
    # select: the COMDAT copy of twice() counts as linked before, so its section is dropped
    selection = select(module, arch, context.group_linked)
    grouped = [i for i, s in enumerate(module.sections) if s.group == "_Z5twicei"]
    assert grouped and not selection.kept[grouped].any()
    twice = module.find_symbol("_Z5twicei")
    assert selection.by_name[twice]  # found by name, in the copy linked before
    # survey: every kind known, kinds noted per chunk
    kinds = survey(selection.relocations)
    assert set(kinds.kinds) <= set(arch.kinds) and kinds.branch_kinds
    # resolve: puts_count is in the static module, twice() is nowhere yet
    resolution = resolve(context, module, selection)
    assert set(resolution.host.values()) == {LIBRARY}
    assert module.symbol_names(resolution.pending) == ["_Z5twicei"]
    # plan: the module must sit within reach of puts_count
    uses = SymbolUses(arch, kinds, resolution.outside)
    layout_plan = plan(context, LinkRequest(module, 1, place_near=AUTO), selection, kinds,
                       resolution, uses)
    size = layout_plan.layout.size
    assert layout_plan.window == Window(LIBRARY - (1 << 31) + size, LIBRARY + (1 << 31), LIBRARY)
    assert len(layout_plan.stub_rows) == 1  # the call to twice() waits behind a stub


def test_survey_names_an_unknown_kind():
    module = toy_module()
    runs = list(module.relocation_runs)
    runs[1] = RelocationRun(1, np.array([0], np.uint64), np.array([99], np.uint32),
                            np.array([1], np.uint32), np.array([0], np.int64))
    module.relocations = runs
    with pytest.raises(UnsupportedError) as info:
        survey(select(module, TOY, lambda _s: False).relocations)
    e = info.value
    assert (e.section, e.offset, e.kind, e.symbol) == (".data", 0, "relocation type 99", "start")


def test_a_pending_name_whose_size_is_asked_is_refused_before_anything_is_reserved():
    space = ImageSpace([(ROM, 1 << 20, "ROM")], symbols={"far_away": FAR})  # no "small"
    linker = Linker(space, TOY, place_near=None)
    with pytest.raises(UndefinedSymbolError, match="undefined symbol: small .*cannot wait") as info:
        linker.link(toy_module(small_kind=R_TOY_SIZE32))
    assert (info.value.section, info.value.offset, info.value.kind) == (".data", 4, "R_TOY_SIZE32")
    assert space.memory.reservations == {}


def test_a_pending_data_reference_points_at_the_guard_area_until_defined():
    space = ImageSpace([(ROM, 1 << 20, "ROM")], symbols={"far_away": FAR})
    linker = Linker(space, TOY, place_near=None)
    module = linker.link(toy_module(small_kind=R_TOY_32))
    assert module.waiting() == {"small": "data"}
    data = module.section_address(".data")
    guard = word(space, data + 4)
    assert any(start <= guard - module.base < start + size and protection.name == "NONE"
               for start, size, protection in module.layout.segments)
    definer = linker.link(toy_module_defining("small", 0x40))
    assert word(space, data + 4) == definer.address("small") and module.pending() == []
    linker.unlink(definer)
    assert word(space, data + 4) == guard and module.waiting() == {"small": "data"}


def toy_module_defining(name: str, value: int) -> Module:
    """A module of one data section whose symbol ``name`` lies at ``value`` in it."""
    symbols = np.zeros(2, SYMBOL_DTYPE)
    symbols["module"] = -1
    symbols[0]["section"] = UNDEF
    symbols[1]["name"], symbols[1]["section"], symbols[1]["bind"] = 1, 0, GLOBAL
    symbols[1]["value"] = value
    data = Section(".data", SectionKind.DATA, 0x100, 4, bytes(0x100), 1)
    return Module("definer", "toy32", "<", 32, [data], symbols, b"\0" + name.encode() + b"\0",
                  file="definer.o")
