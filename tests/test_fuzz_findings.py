"""What the fuzzer found (issue 10, section 4), one regression test each: every malformed input
is one clear LinkError naming the file, the section and the offset, never another exception,
and never a silent write where the input did not ask for one.

The PowerPC inputs are the committed golden files (``tests/golden``), so that these tests need
no cross compiler; x86-64 objects are compiled at test time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from elfutil import anonymous_mappings, in_child, need_tool, patch_reloc, read_reloc, run
from linkload import FormatError, Linker, LinkError
from linkload.arch import ppc
from linkload.tools import build

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
