"""makerel as the users of the other REL tools use it: pyelf2rel's ``plf lst [out]`` order and
its options, elf2rel's ``-i``/``-s``/``-o``, decomp-toolkit's ``-n``, ``-w`` and response
files; module ids per module; header values from the command line; symbol lists naming other
modules' symbols (``module,section,offset:name``, as pyelf2rel's makelst writes them).

The modules are those of ``test_makerel`` (compiled at test time with the PowerPC cross
compiler) and small ones compiled here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from test_rel_format import parse_rel

from conftest import require_module
from linkload import LinkError, UndefinedSymbolError
from linkload import cli as cli_module
from linkload.cli import main
from linkload.formats import symtab
from linkload.tools import build, makerel
from linkload.tools.makerel import MISSING_MODES, WEAK_MODES
from relmodules import plf_of, without_dol_sections


def _all_symbols(built, tmp_path: Path, ids=(1, 2, 3)) -> Path:
    """The static module's symbols and, by pyelf2rel's makelst, modules a and c's: the LST a
    pyelf2rel user builds module b with."""
    makelst = require_module("pyelf2rel.makelst")
    with open(built.static, "rb") as f:
        static = [f"{s['st_value']:08x}:{s.name}" for s in ELFFile(f).get_section_by_name(
            ".symtab").iter_symbols() if s["st_info"]["bind"] == "STB_GLOBAL"
            and s["st_shndx"] != "SHN_UNDEF"]
    others = makelst.make_lst(elfs=[(ids[0], str(built.plfs[0])), (ids[2], str(built.plfs[2]))])
    path = tmp_path / "game.lst"
    path.write_text("// the static module\n" + "\n".join(static) + "\n" + others)
    return path


# -- symbol lists naming other modules ----------------------------------------------------------
def test_list_lines_of_other_modules():
    entries = symtab.parse("// makelst output\n"
                           "80004000:dol_func\n"
                           "2,1,00000040:other_func\n"
                           "0x10,0x2,10:hex_ids\n"
                           "0,7,80201000:dol_data\n"
                           "3,1,0:pair<int,int>\n"
                           "1,0x20:static_section_offset\n")
    by_name = {e.name: e for e in entries}
    assert (by_name["other_func"].module, by_name["other_func"].section,
            by_name["other_func"].offset) == (2, 1, 0x40)
    assert (by_name["hex_ids"].module, by_name["hex_ids"].section) == (16, 2)
    assert by_name["pair<int,int>"].module == 3
    assert by_name["dol_data"].address == 0x80201000 and not by_name["dol_data"].in_other_module
    assert by_name["static_section_offset"].module is None
    static = symtab.resolve(entries, {1: 0x80004000})
    assert {e.name for e in static} == {"dol_func", "dol_data", "static_section_offset"}
    assert [e.name for e in symtab.other_modules(entries)] == ["other_func", "hex_ids",
                                                               "pair<int,int>"]


def test_a_module_built_alone_against_makelst_symbols(built, tmp_path):
    """Module b built alone, with a and c known only from makelst lines, is the b built with
    the three together (but for the DOL entries' section field, which a list cannot know and
    the loader ignores)."""
    together = build(built.static, built.plfs, name_table=False).rels[1].data
    game = _all_symbols(built, tmp_path)
    alone = build(None, [built.plfs[1]], symbols=game, ids=[2], name_table=False)
    assert without_dol_sections(alone.rels[0].data) == without_dol_sections(together)
    assert parse_rel(alone.rels[0].data).sections == parse_rel(together).sections


# -- the command lines of the peers -------------------------------------------------------------
def test_pyelf2rel_and_elf2rel_command_lines(built, tmp_path):
    game = _all_symbols(built, tmp_path)
    b = str(built.plfs[1])
    assert main(["makerel", b, str(game), str(tmp_path / "one.rel"), "--rel-id", "2",
                 "--no-str", "--no-import-list"]) == 0  # pyelf2rel: plf lst [out]
    assert main(["makerel", "-i", b, "-s", str(game), "-o", str(tmp_path / "two.rel"),
                 "--rel-id", "0x2", "--rel-version", "3", "--no-str",
                 "--no-import-list"]) == 0  # elf2rel
    one, two = (tmp_path / "one.rel").read_bytes(), (tmp_path / "two.rel").read_bytes()
    assert one == two
    assert one == build(None, [built.plfs[1]], symbols=game, ids=[2], name_table=False).rels[0].data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["game.lst", "one.rel", "two.rel"]


def test_output_file_or_folder(built, tmp_path, capsys):
    static, plfs = str(built.static), [str(p) for p in built.plfs]
    assert main(["makerel", static, plfs[0], "-o", str(tmp_path / "named.rel"),
                 "--missing-mode", "ignore"]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"named.rel", "import.lst",
                                                    Path(static).stem + ".str"}
    folder = tmp_path / "existing"
    folder.mkdir()
    assert main(["makerel", static, plfs[0], "-o", str(folder), "--missing-mode", "ignore"]) == 0
    assert (folder / (Path(plfs[0]).stem + ".rel")).is_file()
    assert main(["makerel", static, *plfs, "-o", str(tmp_path / "several")]) == 0
    assert len(list((tmp_path / "several").glob("*.rel"))) == 3
    capsys.readouterr()
    assert main(["makerel", static, *plfs, "-o", str(tmp_path / "x.rel")]) == 2
    assert "names one REL, but 3 plfs" in capsys.readouterr().err


def test_module_names(built, tmp_path):
    """dtk's -n names the modules (here: in the .str table)."""
    out = tmp_path / "out"
    assert main(["makerel", str(built.static), *map(str, built.plfs), "-o", str(out),
                 "-n", "alpha", "--names", "beta", "-n", "gamma", "--str", "m.str"]) == 0
    assert (out / "m.str").read_bytes() == b"alpha\0beta\0gamma\0"
    assert main(["makerel", str(built.static), *map(str, built.plfs), "-o", str(out),
                 "-n", "alpha"]) == 2


def test_response_file(built, tmp_path):
    """dtk and ninja pass long argument lists in a file: one argument per line."""
    rsp = tmp_path / "args.rsp"
    rsp.write_text("\n".join([str(built.static), *map(str, built.plfs), "", "  --base-id  ",
                              "9", "-o", str(tmp_path / "out")]) + "\n")
    assert main(["makerel", f"@{rsp}"]) == 0
    ids = sorted(parse_rel(p.read_bytes()).fields["id"] for p in (tmp_path / "out").glob("*.rel"))
    assert ids == [9, 10, 11]


def test_help_names_the_peers(capsys):
    with pytest.raises(SystemExit):
        main(["makerel", "--help"])
    text = capsys.readouterr().out
    for peer in ("pyelf2rel", "elf2rel", "dtk", "@FILE"):
        assert peer in text
    for option in ("--rel-id", "--rel-version", "--missing-mode", "--missing-weak",
                   "--ignore-sections", "--block-duplicates", "--symbol-file", "--input-file",
                   "--names", "--no-warn", "--align", "--bss-align", "--no-str", "--match",
                   "--match-config"):
        assert option in text
    assert (cli_module.MISSING_MODES, cli_module.WEAK_MODES) == (MISSING_MODES, WEAK_MODES)


# -- module ids and header values ---------------------------------------------------------------
def test_module_ids_per_module(built, tmp_path, capsys):
    r = build(built.static, built.plfs, ids=[0x1000, 0x2000, 5])
    assert [parse_rel(x.data).fields["id"] for x in r.rels] == [0x1000, 0x2000, 5]
    b = parse_rel(r.rels[1].data)
    assert [m for m, _ in b.imports] == [5, 0x1000, 0x2000, 0]  # c, a, itself, the DOL
    with pytest.raises(LinkError, match="2 module ids for 3 plfs"):
        build(built.static, built.plfs, ids=[1, 2])
    with pytest.raises(LinkError, match="module id 4 is given to both"):
        build(built.static, built.plfs, ids=[4, 4, 5])
    with pytest.raises(LinkError, match="out of range"):
        build(built.static, built.plfs, ids=[0, 1, 2])
    out = tmp_path / "out"
    assert main(["makerel", str(built.static), *map(str, built.plfs), "-o", str(out),
                 "--rel-id", "7", "--rel-id", "0x30", "--rel-id", "9"]) == 0
    assert sorted(parse_rel(p.read_bytes()).fields["id"] for p in out.glob("*.rel")) == [7, 9, 48]
    assert main(["makerel", str(built.static), *map(str, built.plfs), "-o", str(out),
                 "--rel-id", "7", "--base-id", "3"]) == 2
    assert "not both" in capsys.readouterr().err


def test_header_values_from_the_command_line(built, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["makerel", str(built.static), *map(str, built.plfs), "-o", str(out), "-v", "2",
                 "--align", "64", "--bss-align", "0x10", "--no-str"]) == 0
    for path in out.glob("*.rel"):
        f = parse_rel(path.read_bytes()).fields
        assert (f["version"], f["align"], f["bssAlign"], f["nameOffset"], f["nameSize"]) == \
            (2, 64, 16, 0, 0)
    assert not list(out.glob("*.str"))
    capsys.readouterr()
    assert main(["makerel", str(built.static), *map(str, built.plfs), "-o", str(out),
                 "--align", "24"]) == 2
    assert "align 24 is not a power of two" in capsys.readouterr().err
    assert main(["makerel", str(built.static), *map(str, built.plfs), "-o", str(out),
                 "-v", "1", "--bss-align", "8"]) == 2
    assert "version 2 or 3" in capsys.readouterr().err


# -- names defined nowhere ----------------------------------------------------------------------
MISSING = r"""
extern void gone_func(void);
extern int gone_var;
extern int gone_weak __attribute__((weak));
int uses(void) { gone_func(); return gone_var + (&gone_weak != 0); }
void _unresolved(void) {}
"""

NO_UNRESOLVED = r"""
extern void gone_func(void);
void calls_nothing(void) { gone_func(); }
"""


@pytest.fixture(scope="module")
def missing_plfs(ppc):
    return {"missing": plf_of(ppc, MISSING, "missing"),
            "no_unresolved": plf_of(ppc, NO_UNRESOLVED, "no_unresolved")}


def test_missing_modes(built, missing_plfs):
    plf = missing_plfs["missing"]
    with pytest.raises(UndefinedSymbolError, match="only branches can go to _unresolved") as e:
        build(built.static, [plf])  # the SDK's makerel: calls wait, data cannot
    assert e.value.symbol == "gone_var"
    with pytest.raises(UndefinedSymbolError, match="missing mode 'error'") as e:
        build(built.static, [plf], missing="error")
    assert e.value.symbol == "gone_func"
    warned = build(built.static, [plf], missing="warn")
    assert warned.warnings == [
        f"{plf}: gone_func is defined nowhere: calls go to _unresolved",
        f"{plf}: gone_var is defined nowhere: references are 0",
        f"{plf}: gone_weak is defined nowhere: references are 0"]
    assert {addend for *_, addend in parse_rel(warned.rels[0].data).patches(0)} == {0}
    assert build(built.static, [plf], missing="ignore").warnings == []
    assert build(built.static, [plf], missing="ignore").rels[0].data == warned.rels[0].data
    with pytest.raises(UndefinedSymbolError, match="weak") as e:
        build(built.static, [plf], missing="warn", missing_weak="error")
    assert e.value.symbol == "gone_weak"
    assert len(build(built.static, [plf], missing="warn", missing_weak="ignore").warnings) == 2
    with pytest.raises(LinkError, match="not one of"):
        build(built.static, [plf], missing="null")


def test_a_call_that_would_branch_to_itself_is_said(built, missing_plfs, tmp_path, capsys):
    plf = missing_plfs["no_unresolved"]
    r = build(built.static, [plf])
    assert r.warnings == [f"{plf}: calls to gone_func (defined nowhere) branch to themselves: "
                          "the module defines no _unresolved"]
    assert build(built.static, [plf], missing="ignore").warnings == []
    args = ["makerel", str(built.static), str(plf), "-o", str(tmp_path / "x.rel")]
    assert main(args) == 0
    assert "linkload: warning:" in capsys.readouterr().err
    assert main([*args, "-w"]) == 0
    assert capsys.readouterr().err == ""


# -- sections left out, names defined twice -----------------------------------------------------
EXTRA_SECTION = r"""
int extra[4] __attribute__((section(".extra"))) = {1, 2, 3, 4};
int kept = 1;
int get_kept(void) { return kept; }
"""

USES_EXTRA = r"""
int extra[4] __attribute__((section(".extra"))) = {1, 2, 3, 4};
int get_extra(void) { return extra[1]; }
"""


def test_ignore_sections(ppc, built):
    plf = plf_of(ppc, EXTRA_SECTION, "extra_section")
    whole = build(built.static, [plf]).rels[0]
    index = whole.section_names.index(".extra")
    assert parse_rel(whole.data).sections[index][1] == 16
    left_out = build(built.static, [plf], ignore_sections=[".extra", ".nothing"])
    assert parse_rel(left_out.rels[0].data).sections[index] == (0, 0, False)
    assert left_out.warnings == ["ignore_sections: no plf has a section named .nothing"]
    user = plf_of(ppc, USES_EXTRA, "uses_extra")
    with pytest.raises(LinkError, match="ignore_sections leaves out") as e:
        build(built.static, [user], ignore_sections=[".extra"])
    assert e.value.section == ".text"


def test_block_duplicates(ppc, built, tmp_path):
    one = plf_of(ppc, "int defined_twice = 1;\n", "twice1")
    two = plf_of(ppc, "int defined_twice = 2;\n", "twice2")
    build(built.static, [one, two])  # nobody uses it: fine, unless duplicates are blocked
    with pytest.raises(LinkError, match="defined twice") as e:
        build(built.static, [one, two], block_duplicates=True)
    assert e.value.symbol == "defined_twice"
    shadow = plf_of(ppc, "int dol_value = 3;\n", "shadow")
    build(built.static, [shadow])
    with pytest.raises(LinkError, match="static module") as e:
        build(built.static, [shadow], block_duplicates=True)
    assert e.value.symbol == "dol_value"
    listing = tmp_path / "twice.lst"
    listing.write_text("80004000:same\n80004000:same\n80004010:differs\n80004020:differs\n")
    build(None, [one], symbols=listing)
    with pytest.raises(LinkError, match="lines 3 and 4") as e:
        build(None, [one], symbols=listing, block_duplicates=True)
    assert e.value.symbol == "differs"


def test_makerel_writes_one_file_only_for_one_plf(built, tmp_path):
    with pytest.raises(LinkError, match="names one REL"):
        makerel(built.static, built.plfs, output=tmp_path / "a.rel")
