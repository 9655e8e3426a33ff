"""Malformed and unlinkable input: every failure is a LinkError subclass that says where, and a
failed link leaves the linker (its modules, its groups, this process's mappings) as it was.

Each corruption of a real object is its own case. Reading the corrupt bytes must raise the
expected class with ``file``, ``section``, ``offset``, ``kind`` and ``symbol`` set where they
apply; linking the corrupt file with ``Linker.native()`` must raise too, and change nothing.
A light fuzzer then flips bytes of real objects: reading (and linking into a recording space)
either works or raises a LinkError, never anything else.
"""

from __future__ import annotations

import gc
import io
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

from elfutil import (
    EM_PPC64,
    SHT_GROUP,
    SHT_RELA,
    SHT_STRTAB,
    SHT_SYMTAB,
    Layout,
    anonymous_mappings,
    compile_c,
    compiles,
    headers_first,
    layout,
    need_tool,
    patch_bytes,
    patch_header,
    patch_reloc,
    patch_section,
    patch_symbol,
    read_reloc,
    reloc_offset,
    symbol_offset,
    to_big_endian,
)
from linkload import (
    FormatError,
    Linker,
    LinkError,
    RelocationOverflowError,
    UnsupportedError,
    arch,
)
from linkload.formats import elf
from linkload.space import Space

BASE_SOURCE = r"""
int puts(const char *);  /* no headers: gcc -m32 may lack the 32-bit libc headers */
int data_word = 5;
static const char text[] = "base object";
int bss_word;
int base_add(int a, int b) { return a + b + data_word + bss_word; }
int base_call(int x) { return puts(text) + base_add(x, 1); }
int *pointer = &data_word;
long (*function_pointer)(void) = 0;
"""

GOOD_SOURCE = "int good_function(void) { return 42; }\nint good_data = 1;\n"

CXX_SOURCE = r"""
inline int inline_square(int x) { return x * x; }
template <typename T> T twice(T x) { return x + x; }
int cpp_entry(int x) { return twice(x) + inline_square(x); }
"""

TLS_SOURCE = "__thread int x;\nint f(void) { return x; }\n"
UNDEFINED_SOURCE = r"""
extern int linkload_no_such_function(int);
extern int linkload_no_such_data;
int calls_missing(int x) { return linkload_no_such_function(x) + 1; }
int reads_missing(void) { return linkload_no_such_data; }
"""
ABS32_SOURCE = "#include <stdio.h>\nFILE **address_of_stdout(void) { return &stdout; }\n"
PCREL_SOURCE = "#include <stdio.h>\nFILE *read_stdout(void) { return stdout; }\n"

SOURCES = {  # name -> (source, flags, C++)
    "base": (BASE_SOURCE, ["-O1"], False),
    "good": (GOOD_SOURCE, ["-O1", "-fno-asynchronous-unwind-tables"], False),
    # no .eh_frame: nothing of it reaches the host's unwinder if a bad link succeeds
    "base_nounwind": (BASE_SOURCE, ["-O1", "-fno-asynchronous-unwind-tables"], False),
    "cxx": (CXX_SOURCE, ["-O0"], True),
    "tls": (TLS_SOURCE, ["-O2"], False),
    "tls_pic": (TLS_SOURCE, ["-O2", "-fPIC"], False),
    "undefined": (UNDEFINED_SOURCE, ["-O2", "-fno-pic"], False),
    "abs32": (ABS32_SOURCE, ["-O2", "-fno-pic"], False),
    "pcrel": (PCREL_SOURCE, ["-O2", "-fno-pic", "-mcmodel=small"], False),
}


@pytest.fixture(scope="module")
def objs(tmp_path_factory) -> dict[str, Path]:
    need_tool("gcc", "g++")
    build = tmp_path_factory.mktemp("malformed")
    from concurrent.futures import ThreadPoolExecutor

    def one(item):
        name, (source, flags, cxx) = item
        return name, compile_c(source, build / f"{name}.o", flags, cxx=cxx)

    with ThreadPoolExecutor(8) as pool:
        out = dict(pool.map(one, SOURCES.items()))
    if compiles(["gcc", "-m32"], BASE_SOURCE, ".c", build):
        out["m32"] = compile_c(BASE_SOURCE, build / "m32.o", ["-m32", "-O1"])
    return out


ANY = object()  # an expectation that is not checked


@dataclass
class Expect:
    cls: type[LinkError] = FormatError
    section: object = ANY  # the exception's `section`, or ANY
    offsets: object = ANY  # a set of acceptable `offset` values, or ANY
    places: list | None = None  # alternatively: acceptable (section, offsets) pairs
    kind: object = ANY
    symbol: object = ANY
    message: str | None = None  # a fragment the message must contain
    read_ok: bool = False  # well formed: reading works, linking fails
    read_may_pass: bool = False  # the reader may let it through; the linker must not


@dataclass
class Ctx:
    objs: dict[str, Path]
    cache: dict = field(default_factory=dict)

    def data(self, name: str) -> bytes:
        if name not in self.cache:
            self.cache[name] = self.objs[name].read_bytes()
        return self.cache[name]

    @property
    def base(self) -> bytes:
        return self.data("base")

    @property
    def lay(self):
        return layout(self.base)

    def symbol_row(self, name: str, which: str = "base") -> int:
        ef = ELFFile(io.BytesIO(self.data(which)))
        symtab = ef.get_section_by_name(".symtab")
        return next(i for i, s in enumerate(symtab.iter_symbols()) if s.name == name)

    def reloc_target_name(self, which: str, section: str, row: int) -> str:
        ef = ELFFile(io.BytesIO(self.data(which)))
        sym = ef.get_section_by_name(".symtab").get_symbol(read_reloc(self.data(which), section,
                                                                      row)["sym"])
        return sym.name


Case = Callable[[Ctx], tuple[bytes, Expect]]
CASES: dict[str, Case] = {}


def case(name: str):
    def register(fn: Case) -> Case:
        CASES[name] = fn
        return fn
    return register


# -- the ELF header ---------------------------------------------------------------------------------
for _name, _at, _value in [("bad-magic", 0, b"\x7fELG"), ("bad-magic-zero", 0, b"\0\0\0\0"),
                           ("bad-class-0", 4, b"\0"), ("bad-class-3", 4, b"\3"),
                           ("bad-data-encoding-0", 5, b"\0"), ("bad-data-encoding-3", 5, b"\3")]:
    def _make(ctx, at=_at, value=_value):
        return patch_bytes(ctx.base, at, value), Expect(FormatError, offsets={at})
    case(_name)(_make)


@case("class-32-on-a-64-bit-file")
def _(ctx):
    return patch_bytes(ctx.base, 4, b"\1"), Expect(FormatError)


@case("big-endian-on-a-little-endian-file")
def _(ctx):
    return patch_bytes(ctx.base, 5, b"\2"), Expect(FormatError)


@case("e_shoff-past-the-end")
def _(ctx):
    at = len(ctx.base) + 64
    return patch_header(ctx.base, e_shoff=at), Expect(FormatError, offsets={at})


@case("e_shoff-wraps-around")
def _(ctx):
    at = (1 << 64) - 64
    return patch_header(ctx.base, e_shoff=at), Expect(FormatError, offsets={at})


@case("e_shoff-misaligned")
def _(ctx):
    return patch_header(ctx.base, e_shoff=ctx.lay.header["e_shoff"] + 8), Expect(FormatError)


for _value in (0, 40, 65, 128):
    def _make(ctx, value=_value):
        shoff = ctx.lay.header["e_shoff"]
        return patch_header(ctx.base, e_shentsize=value), Expect(FormatError, offsets={shoff, 58})
    case(f"e_shentsize-{_value}")(_make)


@case("e_shnum-huge")
def _(ctx):
    shoff = ctx.lay.header["e_shoff"]
    return patch_header(ctx.base, e_shnum=0xFFF0), Expect(FormatError, offsets={shoff})


@case("e_shnum-zero")
def _(ctx):
    return patch_header(ctx.base, e_shnum=0), Expect(FormatError)


@case("e_shstrndx-out-of-range")
def _(ctx):
    return patch_header(ctx.base, e_shstrndx=len(ctx.lay.sections) + 3), Expect(FormatError)


@case("e_shstrndx-zero")
def _(ctx):
    return patch_header(ctx.base, e_shstrndx=0), Expect(FormatError)


@case("e_shstrndx-not-a-string-table")
def _(ctx):
    return patch_header(ctx.base, e_shstrndx=ctx.lay.index(".text")), Expect(FormatError)


@case("e_machine-unknown")
def _(ctx):
    return patch_header(ctx.base, e_machine=0x1234), Expect(UnsupportedError, message="machine")


@case("e_type-core")
def _(ctx):
    return patch_header(ctx.base, e_type=4), Expect(UnsupportedError, message="type")


# -- section headers -------------------------------------------------------------------------------
@case("text-offset-outside-the-file")
def _(ctx):
    at = len(ctx.base) + 0x100
    return patch_section(ctx.base, ".text", sh_offset=at), Expect(FormatError, ".text", {at})


@case("text-size-outside-the-file")
def _(ctx):
    sec = ctx.lay.section(".text")
    return (patch_section(ctx.base, ".text", sh_size=len(ctx.base)),
            Expect(FormatError, ".text", {sec["sh_offset"]}))


@case("symtab-offset-wraps-around")
def _(ctx):
    at = (1 << 64) - 8
    return patch_section(ctx.base, ".symtab", sh_offset=at), Expect(FormatError, ".symtab", {at})


@case("strtab-size-outside-the-file")
def _(ctx):
    sec = ctx.lay.section(".strtab")
    return (patch_section(ctx.base, ".strtab", sh_size=sec["sh_size"] + len(ctx.base)),
            Expect(FormatError, ".strtab", {sec["sh_offset"]}))


@case("text-alignment-3")
def _(ctx):
    return (patch_section(ctx.base, ".text", sh_addralign=3),
            Expect(FormatError, ".text", message="power of two"))


@case("data-alignment-24")
def _(ctx):
    return (patch_section(ctx.base, ".data", sh_addralign=24),
            Expect(FormatError, ".data", message="power of two"))


for _entsize in (0, 16, 25):
    def _make(ctx, entsize=_entsize):
        return patch_section(ctx.base, ".symtab", sh_entsize=entsize), Expect(FormatError, ".symtab")
    case(f"symtab-entsize-{_entsize}")(_make)


@case("symtab-size-not-a-multiple")
def _(ctx):
    size = ctx.lay.section(".symtab")["sh_size"]
    return patch_section(ctx.base, ".symtab", sh_size=size - 1), Expect(FormatError, ".symtab")


@case("symtab-link-zero")
def _(ctx):
    return patch_section(ctx.base, ".symtab", sh_link=0), Expect(FormatError)


@case("symtab-link-not-a-string-table")
def _(ctx):
    return patch_section(ctx.base, ".symtab", sh_link=ctx.lay.index(".text")), Expect(FormatError)


@case("symtab-link-out-of-range")
def _(ctx):
    return patch_section(ctx.base, ".symtab", sh_link=0xFFFF), Expect(FormatError)


@case("rela-entsize-16")
def _(ctx):
    return patch_section(ctx.base, ".rela.text", sh_entsize=16), Expect(FormatError, ".rela.text")


@case("rela-size-not-a-multiple")
def _(ctx):
    size = ctx.lay.section(".rela.text")["sh_size"]
    return (patch_section(ctx.base, ".rela.text", sh_size=size - 5),
            Expect(FormatError, ".rela.text"))


@case("rela-applies-to-a-missing-section")
def _(ctx):
    return (patch_section(ctx.base, ".rela.text", sh_info=len(ctx.lay.sections) + 5),
            Expect(FormatError, ".rela.text"))


@case("rela-link-not-the-symbol-table")
def _(ctx):
    return patch_section(ctx.base, ".rela.text", sh_link=0), Expect(FormatError, ".rela.text")


@case("section-name-outside-shstrtab")
def _(ctx):
    return patch_section(ctx.base, ".text", sh_name=0xFFFF), Expect(FormatError)


@case("shstrtab-not-nul-terminated")
def _(ctx):
    sec = ctx.lay.section(".shstrtab")
    return (patch_bytes(ctx.base, sec["sh_offset"] + sec["sh_size"] - 1, b"x"),
            Expect(FormatError))


@case("shstrtab-is-not-a-string-table")
def _(ctx):
    return patch_section(ctx.base, ".shstrtab", sh_type=1), Expect(FormatError)


# -- symbols ---------------------------------------------------------------------------------------
def _symbol_case(row_name: str, expect_message: str | None = None, **fields):
    def make(ctx):
        row = ctx.symbol_row(row_name)
        at = symbol_offset(ctx.base, row)
        rel = at - ctx.lay.section(".symtab")["sh_offset"]
        return (patch_symbol(ctx.base, row, **fields),
                Expect(FormatError, ".symtab", {at, rel}, message=expect_message))
    return make


case("symbol-name-outside-strtab")(_symbol_case("base_add", st_name=0x10000))
case("symbol-name-huge")(_symbol_case("base_add", st_name=0xFFFFFFFF))
case("symbol-section-index-out-of-range")(_symbol_case("base_add", st_shndx=200))


@case("symbol-section-index-just-past-the-end")
def _(ctx):
    row = ctx.symbol_row("data_word")
    at = symbol_offset(ctx.base, row)
    rel = at - ctx.lay.section(".symtab")["sh_offset"]
    return (patch_symbol(ctx.base, row, st_shndx=len(ctx.lay.sections)),
            Expect(FormatError, ".symtab", {at, rel}))


@case("symbol-xindex-without-symtab-shndx")
def _(ctx):
    return (patch_symbol(ctx.base, ctx.symbol_row("base_add"), st_shndx=0xFFFF),
            Expect(FormatError, ".symtab"))


# -- relocations -----------------------------------------------------------------------------------
DATA_RELA = ".rela.data.rel.local"  # `int *pointer = &data_word` in a PIE object


def _reloc_place(ctx, row: int, name: str = ".rela.text") -> set[int]:
    at = reloc_offset(ctx.base, name, row)
    return {at, at - ctx.lay.section(name)["sh_offset"]}


@case("reloc-symbol-out-of-range")
def _(ctx):
    nsyms = ctx.lay.section(".symtab")["sh_size"] // 24
    return (patch_reloc(ctx.base, ".rela.text", 0, sym=nsyms + 10),
            Expect(FormatError, ".rela.text", _reloc_place(ctx, 0)))


@case("reloc-symbol-just-past-the-end")
def _(ctx):
    nsyms = ctx.lay.section(".symtab")["sh_size"] // 24
    return (patch_reloc(ctx.base, ".rela.text", 1, sym=nsyms),
            Expect(FormatError, ".rela.text", _reloc_place(ctx, 1)))


@case("reloc-symbol-huge")
def _(ctx):
    name = DATA_RELA
    return (patch_reloc(ctx.base, name, 0, sym=0xFFFFFFFF),
            Expect(FormatError, name, _reloc_place(ctx, 0, name)))


@case("reloc-offset-at-the-end-of-its-section")
def _(ctx):
    size = ctx.lay.section(".text")["sh_size"]
    return (patch_reloc(ctx.base, ".rela.text", 0, r_offset=size),
            Expect(FormatError, places=[(".text", {size}), (".rela.text", _reloc_place(ctx, 0))]))


@case("reloc-offset-huge")
def _(ctx):
    at = (1 << 63) + 1
    return (patch_reloc(ctx.base, ".rela.text", 0, r_offset=at),
            Expect(FormatError, places=[(".text", {at}), (".rela.text", _reloc_place(ctx, 0))]))


@case("reloc-offset-beyond-data")
def _(ctx):
    name = DATA_RELA
    target = name[len(".rela"):]
    size = ctx.lay.section(target)["sh_size"]
    return (patch_reloc(ctx.base, name, 0, r_offset=size + 0x40),
            Expect(FormatError, places=[(target, {size + 0x40}), (name, _reloc_place(ctx, 0, name))]))


@case("reloc-field-overhangs-its-section")
def _(ctx):
    """A 4-byte field whose first byte is the section's last: the reader may not know field
    widths, but the linker does, and the file is malformed."""
    size = ctx.lay.section(".text")["sh_size"]
    rel = read_reloc(ctx.base, ".rela.text", 0)
    assert rel["type"] in (2, 4, 9, 41, 42)  # a 4-byte field
    return (patch_reloc(ctx.base, ".rela.text", 0, r_offset=size - 1),
            Expect(FormatError, places=[(".text", {size - 1}),
                                        (".rela.text", _reloc_place(ctx, 0))],
                   read_may_pass=True))


@case("reloc-unknown-type-200")
def _(ctx):
    rel = read_reloc(ctx.base, ".rela.text", 0)
    return (patch_reloc(ctx.base, ".rela.text", 0, type=200),
            Expect(UnsupportedError, ".text", {rel["r_offset"]}, kind="relocation type 200",
                   symbol=ctx.reloc_target_name("base", ".rela.text", 0), read_ok=True))


@case("reloc-dynamic-type-relative")
def _(ctx):
    rel = read_reloc(ctx.base, ".rela.text", 1)
    return (patch_reloc(ctx.base, ".rela.text", 1, type=8),
            Expect(UnsupportedError, ".text", {rel["r_offset"]}, kind="R_X86_64_RELATIVE",
                   symbol=ctx.reloc_target_name("base", ".rela.text", 1), read_ok=True))


TLS_KINDS = {"R_X86_64_TPOFF32", "R_X86_64_GOTTPOFF", "R_X86_64_TLSGD", "R_X86_64_TLSLD",
             "R_X86_64_DTPOFF32", "R_X86_64_GOTPC32_TLSDESC", "R_X86_64_TLSDESC_CALL"}

for _which in ("tls", "tls_pic"):
    def _make(ctx, which=_which):
        rel = read_reloc(ctx.data(which), ".rela.text", 0)
        return (ctx.data(which),
                Expect(UnsupportedError, ".text", {rel["r_offset"]}, kind=TLS_KINDS, symbol="x",
                       message="thread-local", read_ok=True))
    case(f"thread-local-storage-{_which}")(_make)


# -- groups ----------------------------------------------------------------------------------------
def _group(ctx) -> dict:
    lay = layout(ctx.data("cxx"))
    return next(s for s in lay.sections if s["sh_type"] == SHT_GROUP and s["sh_size"] >= 8)


@case("group-member-out-of-range")
def _(ctx):
    g = _group(ctx)
    data = patch_bytes(ctx.data("cxx"), g["sh_offset"] + 4,
                       (len(layout(ctx.data("cxx")).sections) + 7).to_bytes(4, "little"))
    return data, Expect(FormatError, ".group", {g["sh_offset"] + 4, 4})


@case("group-member-huge")
def _(ctx):
    g = _group(ctx)
    data = patch_bytes(ctx.data("cxx"), g["sh_offset"] + g["sh_size"] - 4, b"\xff\xff\xff\xff")
    return data, Expect(FormatError, ".group", {g["sh_offset"] + g["sh_size"] - 4, g["sh_size"] - 4})


@case("group-signature-out-of-range")
def _(ctx):
    g = _group(ctx)
    return (patch_section(ctx.data("cxx"), g["index"], sh_info=0xFFFFFF),
            Expect(FormatError, ".group"))


@case("group-size-not-a-multiple-of-4")
def _(ctx):
    g = _group(ctx)
    return (patch_section(ctx.data("cxx"), g["index"], sh_size=g["sh_size"] - 2),
            Expect(FormatError, ".group"))


# -- truncation -----------------------------------------------------------------------------------
def _truncated(length_of: Callable[[Layout], int]):
    def make(ctx):
        length = length_of(ctx.lay)
        if length < 16:
            expect = Expect(FormatError, offsets={0})
        elif length < 64:
            expect = Expect(FormatError, offsets={16})
        else:
            expect = Expect(FormatError, offsets={ctx.lay.header["e_shoff"]})
        return ctx.base[:length], expect
    return make


for _label, _length in [
    ("0", lambda lay: 0), ("3", lambda lay: 3), ("4", lambda lay: 4), ("15", lambda lay: 15),
    ("16", lambda lay: 16), ("17", lambda lay: 17), ("40", lambda lay: 40), ("63", lambda lay: 63),
    ("64", lambda lay: 64), ("half", lambda lay: lay.header["e_shoff"] // 2),
    ("at-shoff", lambda lay: lay.header["e_shoff"]),
    ("shoff+1", lambda lay: lay.header["e_shoff"] + 1),
    ("inside-the-section-table", lambda lay: lay.header["e_shoff"] + 3 * 64 + 5),
    ("last-byte", lambda lay: lay.header["e_shoff"] + 64 * len(lay.sections) - 1),
]:
    case(f"truncated-{_label}")(_truncated(_length))

TRUNCATED_SECTIONS = [".text", ".data", ".rodata", ".eh_frame", ".rela.text", DATA_RELA, ".symtab",
                      ".strtab", ".shstrtab"]


def _truncated_inside(name: str, where: str):
    def make(ctx):
        data = headers_first(ctx.base)
        lay = layout(data)
        sec = lay.section(name)
        length = sec["sh_offset"] + (1 if where == "first-byte" else sec["sh_size"] // 2)
        names = lay.section(".shstrtab")
        if names["sh_offset"] + names["sh_size"] > length:  # the section names are cut off too:
            return data[:length], Expect(FormatError, f"section {lay.index(name)}")  # numbered
        return data[:length], Expect(FormatError, name)
    return make


for _sec in TRUNCATED_SECTIONS:
    for _where in ("first-byte", "middle"):
        case(f"truncated-inside-{_sec}-{_where}")(_truncated_inside(_sec, _where))


# -- the checks ------------------------------------------------------------------------------------
@pytest.fixture
def ctx(objs) -> Ctx:
    return Ctx(objs)


def check_error(err: LinkError, expect: Expect, file: str) -> None:
    assert isinstance(err, expect.cls), f"{type(err).__name__}: {err}"
    text = str(err)
    assert err.file == file, text
    assert file in text
    if expect.message:
        assert expect.message in text
    if expect.places is not None:
        assert any(err.section == s and err.offset in offs for s, offs in expect.places), (
            f"section={err.section!r} offset={err.offset!r}, expected one of {expect.places}: {text}")
    if expect.section is not ANY:
        assert err.section == expect.section, f"section={err.section!r}: {text}"
        assert expect.section in text
    if expect.offsets is not ANY and err.offset is None and err.section is not None:
        # a section whose bytes lie outside the file: the message gives the file offset
        assert any(hex(o) in text for o in expect.offsets), text
    elif expect.offsets is not ANY:
        shown = None if err.offset is None else hex(err.offset)
        assert err.offset in expect.offsets, (
            f"offset={shown}, expected one of {sorted(hex(o) for o in expect.offsets)}: {text}")
        assert hex(err.offset) in text
    if expect.kind is not ANY:
        kinds = expect.kind if isinstance(expect.kind, set) else {expect.kind}
        assert err.kind in kinds, f"kind={err.kind!r}: {text}"
        assert err.kind in text
    if expect.symbol is not ANY:
        assert err.symbol == expect.symbol, f"symbol={err.symbol!r}: {text}"
        assert repr(expect.symbol) in text


def link_must_fail(ld: Linker, source, warm_up: bool = True) -> LinkError:
    """Link ``source``, which must fail, and check that nothing changed: the linked modules, the
    groups, and this process's anonymous mappings (snapshotted right around the failing call,
    after a first failing call has warmed up the allocators)."""
    modules, groups = list(ld.modules), dict(ld.graph.groups)
    if warm_up:
        with pytest.raises(LinkError):
            ld.link(source)
    gc.collect()
    before = anonymous_mappings()
    error = None
    try:
        ld.link(source)
    except LinkError as e:
        error = e
    after = anonymous_mappings()
    if error is None:
        raise AssertionError(f"linking {source} succeeded")
    error.__traceback__ = None
    assert ld.modules == modules
    assert all(m.linked for m in ld.modules)
    assert ld.graph.groups == groups
    assert after == before, (f"mappings appeared: {sorted(after - before)}, "
                             f"disappeared: {sorted(before - after)}")
    return error


@pytest.fixture
def native(objs):
    """A native linker with one module linked already."""
    ld = Linker.native()
    good = ld.link(objs["good"])
    assert good.call("good_function") == 42
    yield ld
    for m in list(ld.modules):
        ld.unlink(m)


@pytest.mark.parametrize("name", list(CASES))
def test_malformed(name, ctx, native, tmp_path):
    data, expect = CASES[name](ctx)
    path = tmp_path / f"{name}.o"
    path.write_bytes(data)
    file = str(path)
    if expect.read_ok or expect.read_may_pass:
        try:
            elf.read(path)
        except LinkError as err:
            if expect.read_ok:
                raise AssertionError(f"reading a well-formed file failed: {err}") from err
            check_error(err, expect, file)
    else:
        with pytest.raises(LinkError) as info:
            elf.read(path)
        check_error(info.value, expect, file)
        # bytes name themselves by the `file` argument
        with pytest.raises(LinkError) as info:
            elf.read(data, "x", "memory.o")
        assert info.value.file == "memory.o" and type(info.value) is expect.cls
    error = link_must_fail(native, path)
    check_error(error, expect, file)


def test_headers_first_rewrite_reads_the_same(ctx):
    """The rewrite the truncation cases use changes no content."""
    a, b = elf.read(ctx.base), elf.read(headers_first(ctx.base))
    assert a.symbols.tolist() == b.symbols.tolist()
    assert a.relocations.tolist() == b.relocations.tolist()
    assert [(s.name, s.size, bytes(s.data or b"")) for s in a.sections] == [
        (s.name, s.size, bytes(s.data or b"")) for s in b.sections]


def test_missing_file(tmp_path, native):
    missing = tmp_path / "missing.o"
    with pytest.raises(FormatError) as info:
        native.link(missing)
    assert info.value.file == str(missing)
    with pytest.raises(LinkError) as info:
        elf.read(missing)
    assert info.value.file == str(missing)


def test_not_an_elf_file(tmp_path, native):
    path = tmp_path / "text.o"
    path.write_text("this is not an object file\n")
    error = link_must_fail(native, path)
    assert isinstance(error, FormatError) and error.file == str(path) and error.offset == 0


def test_bytes_given_a_name_are_named_in_messages(tmp_path, native):
    """Bytes linked with ``name=`` are ``<bytes of 'name'>`` in messages, not just
    ``<bytes>`` (which of a plugin host's many buffers was it?)."""
    data = b"this is not an object file\n"
    with pytest.raises(FormatError) as info:
        native.link(data, name="plugin")
    assert info.value.file == "<bytes of 'plugin'>" and str(info.value).startswith("<bytes of")
    assert link_must_fail(native, data).file == "<bytes>"


# -- well-formed objects that do not link ---------------------------------------------------------
def test_wrong_machine(objs, native):
    if "m32" not in objs:
        pytest.skip("no gcc -m32 here")
    error = link_must_fail(native, objs["m32"])
    assert isinstance(error, UnsupportedError) and error.file == str(objs["m32"])
    assert "i386" in str(error)


def test_big_endian_x86_64_object_is_refused(ctx, native, tmp_path):
    """An x86-64 object whose ELF data encoding says big-endian is either malformed or meant
    for another CPU: linking it must fail, not write its fields byte-swapped."""
    path = tmp_path / "big_endian.o"
    path.write_bytes(to_big_endian(ctx.data("base_nounwind")))  # e_machine stays EM_X86_64
    module = elf.read(path)
    assert (module.machine, module.byteorder) == ("x86_64", ">")
    error = link_must_fail(native, path)
    assert isinstance(error, (UnsupportedError, FormatError)) and error.file == str(path)


def test_x32_object_is_refused(native, tmp_path):
    """An x32 object (ELFCLASS32, EM_X86_64: 4-byte pointers, 4-byte .init_array entries) does
    not belong in a 64-bit process; the linker must not treat it as x86-64 code."""
    source = "int x32_value = 5;\nint *x32_pointer = &x32_value;\nint x32_get(void) { return 1; }\n"
    if not compiles(["gcc", "-mx32"], source, ".c", tmp_path):
        pytest.skip("gcc -mx32 does not work here")
    path = compile_c(source, tmp_path / "x32.o", ["-mx32", "-O2", "-fno-asynchronous-unwind-tables"])
    module = elf.read(path)
    assert (module.machine, module.bits) == ("x86_64", 32)
    error = link_must_fail(native, path)
    assert isinstance(error, UnsupportedError) and error.file == str(path)


def test_object_without_symbol_table_links(native, tmp_path):
    """`as` writes no .symtab for a file without symbols; such an object is well formed."""
    need_tool("as")
    src = tmp_path / "nosym.s"
    src.write_text(".data\n.byte 1, 2, 3\n.text\nret\n")
    path = tmp_path / "nosym.o"
    import subprocess
    subprocess.run(["as", str(src), "-o", str(path)], check=True)
    module = elf.read(path)
    assert len(module.symbols) == 0 and module.section_named(".data") is not None
    loaded = native.link(path)
    try:
        address = loaded.section_address(".data")
        assert native.space.read(address, 3) == b"\1\2\3"
    finally:
        native.unlink(loaded)


def test_object_without_section_headers(ctx, native, tmp_path):
    """e_shoff 0: no sections at all. Reading gives an empty module; linking it either works
    or raises a LinkError."""
    path = tmp_path / "empty.o"
    path.write_bytes(patch_header(ctx.data("good"), e_shoff=0, e_shnum=0, e_shstrndx=0))
    module = elf.read(path)
    assert module.sections == [] and len(module.symbols) == 0
    try:
        loaded = native.link(path)
    except LinkError:
        return
    native.unlink(loaded)

def _reloc_against(path: Path, symbol: str) -> tuple[int, int]:
    """(offset, type) of the first .rela.text entry against ``symbol``."""
    ef = ELFFile(io.BytesIO(path.read_bytes()))
    symtab = ef.get_section_by_name(".symtab")
    for r in ef.get_section_by_name(".rela.text").iter_relocations():
        if symtab.get_symbol(r["r_info_sym"]).name == symbol:
            return r["r_offset"], r["r_info_type"]
    raise AssertionError(f"no relocation against {symbol}")


def test_undefined_symbols_wait_for_their_module(objs, native):
    """A call to a missing function and a read of missing data both wait for a module that
    defines them (issue 10: data references wait too); the module says which is which."""
    path = objs["undefined"]
    elf.read(path)
    module = native.link(path)
    assert module.waiting() == {"linkload_no_such_function": "function",
                                "linkload_no_such_data": "data"}
    native.unlink(module)


def test_overflow_absolute_32_bit_address_of_a_libc_object(objs, native):
    """-fno-pic code takes &stdout with a 32-bit absolute field: libc is far above 4 GiB."""
    path = objs["abs32"]
    offset, kind = _reloc_against(path, "stdout")
    name = arch.get("x86_64").kind_name(kind)
    assert name in ("R_X86_64_32", "R_X86_64_32S")
    error = link_must_fail(native, path)
    assert isinstance(error, RelocationOverflowError), error
    assert (error.file, error.section, error.offset, error.kind, error.symbol) == (
        str(path), ".text", offset, name, "stdout")


def test_overflow_pc_relative_from_a_far_placement(objs):
    """-mcmodel=small -fno-pic code reads stdout PC-relatively; placed near 1 TiB, it cannot
    reach libc."""
    path = objs["pcrel"]
    offset, kind = _reloc_against(path, "stdout")
    assert kind == 2  # R_X86_64_PC32
    ld = Linker.native(place_near=1 << 40)
    good = ld.link(objs["good"])
    try:
        error = link_must_fail(ld, path)
    finally:
        ld.unlink(good)
    assert isinstance(error, RelocationOverflowError), error
    assert (error.file, error.section, error.offset, error.kind, error.symbol) == (
        str(path), ".text", offset, "R_X86_64_PC32", "stdout")
    # placed automatically, the same object links
    ld = Linker.native()
    m = ld.link(path)
    import ctypes
    stdout = ctypes.c_void_p.in_dll(ctypes.CDLL(None), "stdout").value
    assert m.call("read_stdout", restype=ctypes.c_long) == stdout
    ld.unlink(m)


# -- fuzzing ---------------------------------------------------------------------------------------
class RecordingSpace(Space):
    """A space in plain Python memory: nothing runs, calls are recorded. Fuzzed modules can be
    linked into it without risk."""

    page_size = 4096

    def __init__(self, symbols: dict[str, int]) -> None:
        self.symbols = symbols
        self.blocks: dict[int, bytearray] = {}
        self.calls: list[int] = []
        self.cursor = 0x4000_0000

    def reserve(self, size, align, window=None):
        align = max(align, self.page_size)
        low = self.cursor if window is None else max(window.low, self.cursor)
        start = (low + align - 1) // align * align
        if window is not None and start + size > window.high:
            start = (max(window.low, 1 << 16) + align - 1) // align * align
            if start + size > window.high or any(
                    s < start + size and start < s + len(b) for s, b in self.blocks.items()):
                from linkload import PlacementError
                raise PlacementError("no room in the recording space")
        if size > 1 << 32:
            from linkload import PlacementError
            raise PlacementError("too big for the recording space")
        self.blocks[start] = bytearray(size)
        self.cursor = max(self.cursor, start + size + self.page_size)
        return start

    def _block(self, address, size):
        for start, block in self.blocks.items():
            if start <= address and address + size <= start + len(block):
                return start, block
        raise LinkError(f"{address:#x} is not in the recording space")

    def host_callback(self, function):
        return 0x7F00_0000_3000  # never called: nothing runs in this space

    def release(self, address, size):
        if address not in self.blocks:
            raise LinkError(f"{address:#x} is not a reservation")
        del self.blocks[address]

    def write(self, address, data):
        raw = np.asarray(data, np.uint8).tobytes() if isinstance(data, np.ndarray) else bytes(data)
        start, block = self._block(address, len(raw))
        block[address - start:address - start + len(raw)] = raw

    def read(self, address, size):
        start, block = self._block(address, size)
        return bytes(block[address - start:address - start + size])

    def protect(self, address, size, protection):
        if size:
            self._block(address, size)

    def lookup(self, name):
        return self.symbols.get(name)

    def call(self, address, *args):
        self.calls.append(address)
        return 0


def _regions(data: bytes) -> list[tuple[int, int]]:
    """The ELF header, the section header table and the tables the reader parses."""
    lay = layout(data)
    out = [(0, lay.header["e_ehsize"]),
           (lay.header["e_shoff"], lay.header["e_shoff"] + lay.shdr_size * len(lay.sections))]
    for s in lay.sections:
        if s["sh_type"] in (SHT_SYMTAB, SHT_RELA, 9, SHT_GROUP, SHT_STRTAB) and s["sh_size"]:
            out.append((s["sh_offset"], s["sh_offset"] + s["sh_size"]))
    return out


def _mutants(data: bytes, count: int, seed: int):
    rng = random.Random(seed)
    regions = _regions(data)
    for _ in range(count):
        out = bytearray(data)
        changes = []
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.8:
                lo, hi = rng.choice(regions)
                at = rng.randrange(lo, hi)
            else:
                at = rng.randrange(len(out))
            out[at] = rng.choice([0, 0xFF, rng.randrange(256), out[at] ^ (1 << rng.randrange(8))])
            changes.append(at)
        yield bytes(out), changes


FUZZ_TARGETS = [("base", 300), ("cxx", 150), ("good", 100), ("m32", 100), ("base_be", 100)]


@pytest.mark.parametrize(("target", "count"), FUZZ_TARGETS)
def test_fuzz_read_and_link(ctx, target, count):
    if target == "m32" and "m32" not in ctx.objs:
        pytest.skip("no gcc -m32 here")
    data = to_big_endian(ctx.base, EM_PPC64) if target == "base_be" else ctx.data(target)
    x86 = arch.get("x86_64")
    symbols = {"puts": 0x7F00_0000_1000, "__gxx_personality_v0": 0x7F00_0000_2000}
    failures = []
    read_ok = linked = 0
    for i, (mutant, changes) in enumerate(_mutants(data, count, seed=1234 + len(target))):
        stage = "read"
        try:
            module = elf.read(mutant, "fuzz", f"mutant-{i}")
            read_ok += 1
            if module.machine != "x86_64":
                continue
            stage = "link"
            space = RecordingSpace(symbols)
            ld = Linker(space, x86)
            try:
                ld.link(mutant)
                linked += 1
            except LinkError:
                assert not space.blocks, "a failed link kept its reservation"
                assert not ld.modules
        except LinkError:
            pass
        except Exception as e:  # anything but a LinkError is a failure of the test
            where = traceback.extract_tb(e.__traceback__)[-1]
            failures.append(f"mutant {i} ({stage}), bytes {[hex(c) for c in changes]}: "
                            f"{type(e).__name__}: {e} at {where.filename}:{where.lineno}")
    assert not failures, f"{len(failures)} of {count} mutants:\n" + "\n".join(failures[:15])
    assert read_ok > 0  # the mutations were not all fatal
