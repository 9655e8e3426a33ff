"""pyelf2rel (1.0.9) as a test oracle, where it is right, and where it is not.

Where it is right: RELs of C modules that call each other and the static module. Its file
layout is not linkload's, so the files are not compared; both sets are linked into an
emulated Wii at the same addresses, and every section's linked bytes must be the same.

Where it is wrong, linkload must refuse or handle what pyelf2rel gets wrong:

* a C++ module's ``.ctors`` of type ``SHT_INIT_ARRAY``: pyelf2rel drops the section but keeps
  the relocations against it (linkload's reader refuses its REL), linkload keeps it and the
  module's ``_prolog`` runs the constructor;
* a call to a function defined nowhere: pyelf2rel leaves ``bl .`` (a branch to itself, which
  hangs), linkload points it at the module's ``_unresolved``, or refuses it (``missing``
  ``"error"``);
* a module without ``_unresolved``, or without relocations: pyelf2rel fails (a KeyError, a
  ValueError), linkload builds it.

The modules are compiled at test time with the PowerPC cross compiler; pyelf2rel is a test
dependency (the ``test`` extra).
"""

from __future__ import annotations

import contextlib
import io
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from test_rel_format import parse_rel

from conftest import C_DIR, require_module, run_tool
from linkload import FormatError, Linker, UndefinedSymbolError
from linkload.formats import rel
from linkload.tools import build
from relmodules import STATIC_LDFLAGS, plf_of

REL_DIR = C_DIR / "rel"
ENTRY_POINTS = "void _prolog(void) {}\nvoid _epilog(void) {}\nvoid _unresolved(void) {}\n"
#: Where each module and its bss are linked, by module id.
PLACES = {1: (0x80100000, 0x80180000), 2: (0x80200000, 0x80280000)}


@dataclass
class Modules:
    static: Path
    plfs: list[Path]
    lst: Path  # the static module's and both modules' symbols, as pyelf2rel wants them


def _lst(static: Path, plfs: list[Path], out: Path) -> Path:
    """``address:name`` lines of the static module, then makelst's lines of the modules."""
    makelst = require_module("pyelf2rel.makelst")
    with open(static, "rb") as f:
        lines = [f"{s['st_value']:08x}:{s.name}" for s in ELFFile(f).get_section_by_name(
            ".symtab").iter_symbols() if s["st_info"]["bind"] == "STB_GLOBAL"
            and s["st_shndx"] != "SHN_UNDEF"]
    modules = makelst.make_lst(elfs=[(i + 1, str(p)) for i, p in enumerate(plfs)])
    out.write_text("\n".join(lines) + "\n" + modules)
    return out


@pytest.fixture(scope="module")
def modules(ppc, tmp_path_factory) -> Modules:
    """The static module of tests/c/rel, module A (mod_a.c) and module B (mod_b.c, with the
    entry points pyelf2rel insists on)."""
    static = ppc.executable([ppc.compile(REL_DIR / "static.c")], ldflags=STATIC_LDFLAGS,
                            stem="rel_static")
    a = ppc.combine([ppc.compile(REL_DIR / "mod_a.c")], stem="oracle_a")
    b_source = (REL_DIR / "mod_b.c").read_text() + ENTRY_POINTS
    b = ppc.combine([ppc.compile_text(b_source, "oracle_b.c")], stem="oracle_b")
    out = tmp_path_factory.mktemp("oracle")
    return Modules(static, [a, b], _lst(static, [a, b], out / "game.lst"))


def pyelf2rel(plf: Path, lst: Path, module_id: int, missing: str = "warn") -> tuple[bytes, str]:
    """pyelf2rel's REL of ``plf`` and what it printed."""
    elf2rel = require_module("pyelf2rel.elf2rel")
    printed = io.StringIO()
    with open(plf, "rb") as f, open(lst) as symbols, contextlib.redirect_stdout(printed):
        data = elf2rel.elf_to_rel(module_id, f, symbols,
                                  missing_mode=elf2rel.MissingSymbolMode(missing))
    return data, printed.getvalue()


def linked_sections(static: Path, rels: list[bytes], folder: Path) -> dict[tuple[int, int], bytes]:
    """Link the RELs (ids 1, 2, ...) into an emulated Wii at :data:`PLACES`; every section's
    bytes afterwards, by (module id, section index)."""
    ld = Linker.emulated("ppc", static=static)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for module_id, data in enumerate(rels, start=1):
        path = folder / f"{module_id}.rel"
        path.write_bytes(data)
        base, bss = PLACES[module_id]
        ld.link(path, at=base, bss=bss)
    for module_id, data in enumerate(rels, start=1):
        base, bss = PLACES[module_id]
        for index, (offset, size, _) in enumerate(parse_rel(data).sections):
            if size:
                out[module_id, index] = ld.space.read(base + offset if offset else bss, size)
    return out


def test_c_modules_link_to_the_same_image(modules, tmp_path):
    ours = build(modules.static, modules.plfs).rels
    theirs = []
    for module_id, plf in enumerate(modules.plfs, start=1):
        data, printed = pyelf2rel(plf, modules.lst, module_id)
        missing = {line.split()[-3] for line in printed.splitlines()}
        assert missing <= {"_prolog", "_epilog", "_unresolved"}  # only module B's absent ones
        theirs.append(data)
    assert [r.data for r in ours] != theirs  # the files differ; what they load to must not
    mine = linked_sections(modules.static, [r.data for r in ours], tmp_path / "linkload")
    other = linked_sections(modules.static, theirs, tmp_path / "pyelf2rel")
    assert mine.keys() == other.keys()
    assert len(mine) >= 6
    for key in mine:
        assert mine[key] == other[key], f"module {key[0]} section {key[1]}"


# -- where pyelf2rel is wrong -------------------------------------------------------------------
CXX_UNRESOLVED = 'extern "C" void _unresolved(void) {}\n'


@pytest.fixture(scope="module")
def cpp_plf(ppc, tmp_path_factory) -> Path:
    """tests/c/rel/mod_cpp.cpp partially linked with its script: a ``.ctors`` section of type
    SHT_INIT_ARRAY, gathered into the ``_ctors`` list its ``_prolog`` walks."""
    source = (REL_DIR / "mod_cpp.cpp").read_text() + CXX_UNRESOLVED
    obj = ppc.compile_text(source, "oracle_cpp.cpp", ["-fno-exceptions", "-fno-rtti"])
    out = tmp_path_factory.mktemp("oracle_cpp") / "cpp.plf"
    run_tool([ppc.ld, "-r", "-T", str(REL_DIR / "ctors.ld"), str(obj), "-o", str(out)])
    return out


def test_cpp_constructors_kept_where_pyelf2rel_drops_them(modules, cpp_plf, tmp_path):
    theirs, _ = pyelf2rel(cpp_plf, modules.lst, 1)
    ours = build(modules.static, [cpp_plf]).rels[0]
    ctors = ours.section_names.index(".ctors")
    assert parse_rel(theirs).sections[ctors][:2] == (0, 0)  # dropped ...
    with pytest.raises(FormatError, match=f"refers to section {ctors} of this module, which "
                                          "is absent"):
        rel.read(theirs)  # ... while relocations still point into it
    assert parse_rel(ours.data).sections[ctors][1] == 8  # the constructor and the 0 ending it
    path = tmp_path / "cpp.rel"
    path.write_bytes(ours.data)
    ld = Linker.emulated("ppc", static=modules.static)
    seen = []
    ld.host_function("OSReport", lambda emu, message, value: seen.append(value) or 0)
    m = ld.link(path, symbols=cpp_plf)
    m.call("_prolog")
    assert seen == [42] and m.call("cpp_value") == 42


CALLS_NOTHING = r"""
extern void defined_nowhere(void);
int unresolved_calls;
int calls_missing(void) { defined_nowhere(); return 5; }
void _prolog(void) {}
void _epilog(void) {}
void _unresolved(void) { unresolved_calls++; }
"""

BL_TO_ITSELF = 0x48000001


def test_call_to_a_missing_function(ppc, modules, tmp_path):
    plf = ppc.combine([ppc.compile_text(CALLS_NOTHING, "calls_nothing.c")], stem="calls_nothing")
    theirs, printed = pyelf2rel(plf, modules.lst, 1, missing="ignore")
    ours = build(modules.static, [plf]).rels[0]
    with pytest.raises(UndefinedSymbolError) as e:
        build(modules.static, [plf], missing="error")
    assert e.value.symbol == "defined_nowhere"
    text = ours.section_names.index(".text")

    def words(data: bytes) -> list[int]:
        offset, size, _ = parse_rel(data).sections[text]
        return list(struct.unpack_from(f">{size // 4}I", data, offset))

    assert BL_TO_ITSELF in words(theirs)  # pyelf2rel: the call hangs
    assert BL_TO_ITSELF not in words(ours.data)
    path = tmp_path / "calls_nothing.rel"
    path.write_bytes(ours.data)
    ld = Linker.emulated("ppc", static=modules.static)
    m = ld.link(path, symbols=plf)
    assert m.call("calls_missing") == 5  # linkload: the call reaches _unresolved, and returns
    assert ld.space.read(m.address("unresolved_calls"), 4) == (1).to_bytes(4, "big")


def test_module_without_unresolved(ppc, modules):
    plf = plf_of(ppc, "int lonely_data = 3;\nint lonely(void) { return lonely_data; }\n",
                 "lonely")
    with pytest.raises(KeyError, match="_unresolved"):
        pyelf2rel(plf, modules.lst, 1, missing="ignore")
    r = build(modules.static, [plf])
    assert r.warnings == [] and parse_rel(r.rels[0].data).fields["unresolvedSection"] == 0


def test_module_without_relocations(ppc, modules):
    plf = plf_of(ppc, "int quiet_data = 3;\n" + ENTRY_POINTS, "quiet")
    with pytest.raises(ValueError, match="empty"):
        pyelf2rel(plf, modules.lst, 1)
    r = build(modules.static, [plf]).rels[0]
    assert r.relocations == 0 and parse_rel(r.data).imports == []
