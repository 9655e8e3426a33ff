"""Rebuilding RELs to match originals, as decompilation projects need: RELs built with one set
of header choices are rebuilt from the same plfs with ``match`` (``--match``,
``--match-config``) against the first set, and must come out byte identical; where they
cannot, the first difference is named.

The modules are those of ``test_makerel`` (compiled at test time with the PowerPC cross
compiler).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from test_rel_format import parse_rel

from linkload import FormatError, LinkError
from linkload.cli import main
from linkload.formats import rel
from linkload.tools import build
from linkload.tools.relmatch import read_config
from relmodules import MOD_A, plf_of

#: Header choices of the "original" builds: each is rebuilt with nothing but ``match``.
FIRST_CHOICES = {
    "v2-ids-aligned-nameless": dict(version=2, ids=[10, 11, 12], align=64, bss_align=32,
                                    name_table=False),
    "v3-base-id-named": dict(version=3, base_id=40, module_names=["alpha", "beta", "gamma"]),
    "v1-ids-reversed": dict(version=1, ids=[3, 2, 1]),
}


@pytest.mark.parametrize("choices", FIRST_CHOICES.values(), ids=FIRST_CHOICES.keys())
def test_rebuild_matches_the_originals(built, choices):
    first = build(built.static, built.plfs, **choices)
    again = build(built.static, built.plfs, match=[r.data for r in first.rels])
    for original, rebuilt in zip(first.rels, again.rels, strict=True):
        assert rebuilt.mismatch is None
        assert rebuilt.data == original.data
    plain = build(built.static, built.plfs)
    assert any(p.data != o.data for p, o in zip(plain.rels, first.rels, strict=True))


def test_static_sections_from_the_original(built, tmp_path):
    """Built against a symbol list, a REL cannot know the static module's section of its DOL
    entries (the loader ignores it); matching takes it from the original."""
    first = build(built.static, built.plfs)
    with open(built.static, "rb") as f:
        listing = "".join(f"{s['st_value']:08x}:{s.name}\n" for s in ELFFile(f).get_section_by_name(
            ".symtab").iter_symbols() if s["st_info"]["bind"] == "STB_GLOBAL"
            and s["st_shndx"] != "SHN_UNDEF")
    (tmp_path / "static.sym").write_text(listing)
    plain = build(None, built.plfs, symbols=tmp_path / "static.sym")
    assert plain.rels[0].data != first.rels[0].data
    again = build(None, built.plfs, symbols=tmp_path / "static.sym",
                  match=[r.data for r in first.rels])
    assert [r.data for r in again.rels] == [r.data for r in first.rels]


def _section_attributes_template(result) -> rel.RelTemplate:
    """A layout no plf gives: three more (absent) sections, one of them marked executable,
    and the last section with data 0x40 bytes further on than its alignment puts it."""
    p = parse_rel(result.data)
    offsets = [off for off, _, _ in p.sections]
    last = max(range(len(offsets)), key=lambda i: offsets[i])
    offsets[last] += 0x40
    count = len(offsets) + 3
    execs = [e for _, _, e in p.sections] + [False, True, False]
    return rel.RelTemplate(section_count=count, section_offsets=tuple(offsets + [0, 0, 0]),
                           section_exec=tuple(execs))


def test_section_count_offsets_and_exec_bits_are_matched(built):
    plain = build(built.static, built.plfs).rels[0]
    shaped = build(built.static, built.plfs,
                   match=[_section_attributes_template(plain), None, None]).rels[0]
    p = parse_rel(shaped.data)
    assert len(p.sections) == len(parse_rel(plain.data).sections) + 3
    assert p.sections[-2] == (0, 0, True)
    assert shaped.data != plain.data and shaped.mismatch is None  # no original to compare
    again = build(built.static, built.plfs, match=[shaped.data, None, None]).rels[0]
    assert again.mismatch is None and again.data == shaped.data


def test_first_difference_is_named(built, ppc):
    first = build(built.static, built.plfs, version=2, align=64)
    originals = [r.data for r in first.rels]
    # a header value chosen against the original
    forced = build(built.static, built.plfs, match=originals, align=8).rels[0]
    assert forced.mismatch.startswith("header align (offset 0x40): built 0x8, original 0x40")
    # other code: the section table or the code itself differs
    other = plf_of(ppc, MOD_A.replace("x * 2", "x * 3"), "a_changed")
    changed = build(built.static, [other, *built.plfs[1:]], match=originals).rels[0]
    assert changed.mismatch.startswith("section 1 .text")
    # the same code against another static module: only the DOL's relocation entries
    listing = Path(built.static).with_suffix(".moved.sym")
    with open(built.static, "rb") as f:
        symbols = [s for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols()
                   if s["st_info"]["bind"] == "STB_GLOBAL" and s["st_shndx"] != "SHN_UNDEF"]
    listing.write_text("".join(f"{s['st_value'] + 0x100:08x}:{s.name}\n" for s in symbols))
    moved = build(None, built.plfs, symbols=listing, match=originals).rels[0]
    assert moved.mismatch.startswith("relocation list for module 0, entry 0:")
    assert "(file offset 0x" in moved.mismatch


def test_what_cannot_match_is_refused(built):
    plain = build(built.static, built.plfs).rels[0]
    few = rel.RelTemplate(section_count=2, file="few.rel")
    with pytest.raises(LinkError, match=r"has 2 sections, but section \d+ \(\.rodata\) has contents"):
        build(built.static, built.plfs, match=[few, None, None])
    with pytest.raises(LinkError, match="the original .* has id 1"):
        build(built.static, built.plfs, match=[plain.data, None, None], ids=[5, 6, 7])
    with pytest.raises(LinkError, match="3 originals"):
        build(built.static, built.plfs[:2], match=[plain.data] * 3)
    with pytest.raises(LinkError, match="not a power of two"):
        rel.RelTemplate(align=12)


# -- many modules: the config file --------------------------------------------------------------
def _copies(built, folder: Path) -> list[Path]:
    """The plfs under the names a project gives them (a.plf, b.plf, c.plf)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, plf in zip("abc", built.plfs, strict=True):
        shutil.copy(plf, folder / f"{name}.plf")
        out.append(folder / f"{name}.plf")
    return out


def test_match_config(built, tmp_path):
    first = build(built.static, built.plfs, **FIRST_CHOICES["v2-ids-aligned-nameless"])
    originals = tmp_path / "orig"
    originals.mkdir()
    for name, r in zip("abc", first.rels, strict=True):
        (originals / f"{name}.rel").write_bytes(r.data)
    c = parse_rel(first.rels[2].data)
    config = tmp_path / "match.json"
    config.write_text(json.dumps({"modules": {
        "a": {"original": "orig/a.rel"},  # by the plf's name
        "second": {"original": "orig/b.rel"},  # by the module name (-n)
        "c": {"id": 12, "version": 2, "align": 64, "bss_align": 32, "name_offset": 0,
              "name_size": 0, "section_offsets": [s[0] for s in c.sections]},  # no original
        "unused": {"original": "orig/a.rel"},
    }}))
    plfs = _copies(built, tmp_path / "plf")
    templates = read_config(config)
    again = build(built.static, plfs, match=templates, module_names=["a", "second", "c"])
    assert [r.data for r in again.rels] == [r.data for r in first.rels]
    assert [r.original for r in again.rels] == [str(originals / "a.rel"),
                                                str(originals / "b.rel"), None]


@pytest.mark.parametrize("text,message", [
    ("{", "not JSON"),
    ('{"rels": {}}', '"modules"'),
    ('{"modules": {"a": {"align": "32"}}}', "align must be an integer"),
    ('{"modules": {"a": {"aligns": 32}}}', "unknown key 'aligns'"),
    ('{"modules": {"a": {"section_exec": [1, 0]}}}', "list of bools"),
    ('{"modules": {"a": {"align": 24}}}', "not a power of two"),
    ('{"modules": {"a": {"original": "nowhere.rel"}}}', "cannot read"),
])
def test_match_config_errors(tmp_path, text, message):
    config = tmp_path / "match.json"
    config.write_text(text)
    with pytest.raises(FormatError, match=message) as e:
        read_config(config)
    assert str(config) in str(e.value)


# -- the command line ---------------------------------------------------------------------------
def test_cli_match(built, tmp_path, capsys):
    plfs = [str(p) for p in _copies(built, tmp_path / "plf")]
    first = tmp_path / "first"
    assert main(["makerel", str(built.static), *plfs, "-o", str(first), "-v", "2",
                 "--align", "32", "--rel-id", "20", "--rel-id", "21", "--rel-id", "22"]) == 0
    originals = [str(first / f"{n}.rel") for n in "abc"]
    capsys.readouterr()
    again = tmp_path / "again"
    args = ["makerel", str(built.static), *plfs, "-o", str(again), "-w"]
    assert main([*args, *sum((["--match", o] for o in originals), [])]) == 0
    assert capsys.readouterr().out.count("identical to") == 3
    assert [(again / f"{n}.rel").read_bytes() for n in "abc"] == \
        [Path(o).read_bytes() for o in originals]
    # the originals in another order: every module differs, one line each, status 1
    assert main([*args, *sum((["--match", o] for o in reversed(originals)), [])]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(" differs from " in line for line in err)
    config = tmp_path / "match.json"
    config.write_text(json.dumps({"modules": {n: {"original": f"first/{n}.rel"} for n in "abc"}}))
    assert main([*args, "--match-config", str(config)]) == 0
    assert main([*args, "--match-config", str(config), "--match", originals[0]]) == 2
