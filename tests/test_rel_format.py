"""REL and DOL formats without a compiler: layouts written by ``formats.rel.write`` checked
against an independent :mod:`struct` parser, the REL -> Module mapping, round trips, malformed
files (each header field, truncated tables, offsets outside the file, unknown types, lists
without an end), a byte-flipping fuzzer, DOL read/write and the symbol list parsers.

:func:`parse_rel` here reads a REL with :mod:`struct` only; ``test_makerel`` uses it too.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

import numpy as np
import pytest

from linkload import FormatError, LinkError, SectionKind, read_module
from linkload.formats import dol, dump, rel, symtab
from linkload.formats.rel import alignment_problems
from linkload.model import ABS, GLOBAL, UNDEF, Segment

HEADER_SIZE = {1: 0x40, 2: 0x48, 3: 0x4C}
NOP, SECTION, END = 201, 202, 203


# -- an independent reader ---------------------------------------------------------------------
@dataclass
class Parsed:
    """A REL as read by :func:`parse_rel`: raw header fields, the section table as
    (offset, size, exec), the import table, and per import the list's entries as
    (file offset, offset, type, section, addend) tuples, END included."""

    fields: dict
    sections: list[tuple[int, int, bool]]
    imports: list[tuple[int, int]]
    lists: dict[int, list[tuple[int, int, int, int, int]]] = field(default_factory=dict)

    def patches(self, module: int) -> list[tuple[int, int, int, int, int]]:
        """(patched section, position, type, target section, addend) of a module's list."""
        out, section, position = [], None, 0
        for _, offset, kind, target, addend in self.lists[module]:
            if kind == SECTION:
                section, position = target, 0
            elif kind == NOP:
                position += offset
            elif kind != END:
                position += offset
                out.append((section, position, kind, target, addend))
        return out


def parse_rel(data: bytes) -> Parsed:
    names = ("id", "next", "prev", "numSections", "sectionInfoOffset", "nameOffset", "nameSize",
             "version", "bssSize", "relOffset", "impOffset", "impSize", "prologSection",
             "epilogSection", "unresolvedSection", "bssSection", "prolog", "epilog", "unresolved")
    f = dict(zip(names, struct.unpack_from(">12I4B3I", data, 0), strict=True))
    if f["version"] >= 2:
        f["align"], f["bssAlign"] = struct.unpack_from(">II", data, 0x40)
    if f["version"] >= 3:
        f["fixSize"] = struct.unpack_from(">I", data, 0x48)[0]
    sections = []
    for i in range(f["numSections"]):
        off, size = struct.unpack_from(">II", data, f["sectionInfoOffset"] + 8 * i)
        sections.append((off & ~1, size, bool(off & 1)))
    imports = [struct.unpack_from(">II", data, f["impOffset"] + 8 * k)
               for k in range(f["impSize"] // 8)]
    out = Parsed(f, sections, imports)
    for module, at in imports:
        entries = []
        while True:
            offset, kind, section, addend = struct.unpack_from(">HBBI", data, at)
            entries.append((at, offset, kind, section, addend))
            at += 8
            if kind == END:
                break
        out.lists.setdefault(module, entries)
    return out


# -- a synthetic module ------------------------------------------------------------------------
OWN = 7


def synthetic_sections() -> list[rel.RelSection]:
    rng = random.Random(1)
    text = bytes(rng.randrange(256) for _ in range(0x40))
    return [
        rel.RelSection(absent=True),
        rel.RelSection(0x40, text, 4, exec=True),
        rel.RelSection(0x30000, bytes(0x30000), 8),
        rel.RelSection(0x12, bytes(range(0x12)), 32),
        rel.RelSection(0x40, align=16, bss=True),
        rel.RelSection(absent=True),
    ]


def synthetic_entries() -> np.ndarray:
    rows = [  # module, section, offset, type, target, addend
        (0, 1, 0x10, 10, 1, 0x80004000),
        (3, 1, 0x08, 6, 2, 0x100),
        (OWN, 2, 0x2FFF0, 1, 3, 0x4),
        (9, 1, 0x20, 10, 1, 0x0),
        (OWN, 2, 0x10000, 1, 1, 0x8),
        (3, 1, 0x0A, 4, 2, 0x100),
        (OWN, 1, 0x30, 4, 4, 0x20),
        (0, 2, 0x8, 1, 4, 0x80123456),
        (OWN, 2, 0x0, 1, 4, 0x0),
        (OWN, 2, 0x1FFFE, 1, 3, 0x0),
    ]
    out = np.zeros(len(rows), rel.ENTRY_DTYPE)
    for i, (m, s, o, t, g, a) in enumerate(rows):
        out[i]["module"], out[i]["section"], out[i]["offset"] = m, s, o
        out[i]["type"], out[i]["target"], out[i]["addend"] = t, g, a
    return out


def synthetic(version: int = 3, **kw) -> bytes:
    return rel.write(OWN, synthetic_sections(), synthetic_entries(), version=version,
                     name_offset=4, name_size=6, prolog=(1, 0x4), epilog=(1, 0x8),
                     unresolved=(1, 0xC), **kw)


VERSIONS = [1, 2, 3]


# -- layout ------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_header_and_section_table(version):
    data = synthetic(version)
    p = parse_rel(data)
    f = p.fields
    assert (f["id"], f["next"], f["prev"], f["version"]) == (OWN, 0, 0, version)
    assert f["sectionInfoOffset"] == HEADER_SIZE[version]
    assert f["numSections"] == 6
    assert (f["nameOffset"], f["nameSize"]) == (4, 6)
    assert (f["prologSection"], f["prolog"], f["epilogSection"], f["epilog"]) == (1, 4, 1, 8)
    assert (f["unresolvedSection"], f["unresolved"], f["bssSection"]) == (1, 0xC, 0)
    assert f["bssSize"] == 0x40
    if version >= 2:
        assert (f["align"], f["bssAlign"]) == (32, 16)
    else:
        assert "align" not in f
    assert p.sections[0] == (0, 0, False) and p.sections[5] == (0, 0, False)
    assert p.sections[4] == (0, 0x40, False)  # the bss
    assert p.sections[1][2] and not p.sections[2][2] and not p.sections[3][2]
    table_end = HEADER_SIZE[version] + 8 * 6
    assert p.sections[1][0] == table_end  # 4-aligned already
    assert p.sections[2][0] == (table_end + 0x40 + 7) // 8 * 8
    assert p.sections[3][0] % 32 == 0 and p.sections[3][0] >= p.sections[2][0] + 0x30000
    for (off, size, _), spec in zip(p.sections, synthetic_sections(), strict=True):
        if spec.has_data:
            assert data[off:off + size] == bytes(spec.data)


@pytest.mark.parametrize("version", VERSIONS)
def test_file_order_imports_and_fix_size(version):
    data = synthetic(version)
    p = parse_rel(data)
    f = p.fields
    data_end = p.sections[3][0] + 0x12
    list_starts = [at for _, at in p.imports]
    imports_end = f["impOffset"] + f["impSize"]
    lists_end = max(entries[-1][0] + 8 for entries in p.lists.values())
    assert f["impSize"] == 8 * 4
    if version < 3:
        assert [m for m, _ in p.imports] == [0, 3, OWN, 9]  # ascending: the DOL first
        assert data_end <= f["relOffset"] == min(list_starts)
        assert lists_end == f["impOffset"] and imports_end == len(data)
    else:
        assert [m for m, _ in p.imports] == [3, 9, OWN, 0]  # others, self, the DOL
        assert data_end <= f["impOffset"] and imports_end == f["relOffset"] == min(list_starts)
        assert lists_end == len(data)
        assert f["fixSize"] == dict(p.imports)[OWN]
    assert f["relOffset"] % 4 == 0
    assert list_starts == sorted(list_starts)  # lists in the import table's order


@pytest.mark.parametrize("version", VERSIONS)
def test_lists_sections_sorted_and_bridged(version):
    p = parse_rel(synthetic(version))
    for entries in p.lists.values():
        kinds = [e[2] for e in entries]
        assert kinds[0] == SECTION and kinds[-1] == END and kinds.count(END) == 1
        sections = [e[3] for e in entries if e[2] == SECTION]
        assert sections == sorted(set(sections))  # one SECTION per patched section, ascending
        for _, offset, kind, _, _ in entries:
            if kind == NOP:
                assert offset == 0xFFFF
    own = p.lists[OWN]
    # section 2 of the module itself: positions 0, 0x10000 (gap 0x10000: one NOP),
    # 0x1FFFE (gap 0xFFFE: none), 0x2FFF0 (gap 0xFFF2: none)
    section2 = [e for e in own if e[2] != SECTION and e[2] != END][1:]
    assert [(e[1], e[2]) for e in section2] == [(0, 1), (0xFFFF, NOP), (1, 1), (0xFFFE, 1),
                                               (0xFFF2, 1)]
    expected = sorted((int(e["section"]), int(e["offset"]), int(e["type"]), int(e["target"]),
                       int(e["addend"])) for e in synthetic_entries() if e["module"] == OWN)
    assert p.patches(OWN) == expected


def test_nop_bridging_exact_multiples():
    """Gaps of exactly 0xFFFF, 0x10000, 0x1FFFE, 0x1FFFF: the NOP count of Nintendo's tool."""
    sections = [rel.RelSection(absent=True), rel.RelSection(0x80000, bytes(0x80000), 4)]
    for gap, nops in [(0xFFFF, 0), (0x10000, 1), (0x1FFFE, 1), (0x1FFFF, 2), (0x2FFFD, 2)]:
        entries = np.zeros(2, rel.ENTRY_DTYPE)
        entries["module"], entries["section"], entries["type"] = OWN, 1, 1
        entries["target"] = 1
        entries["offset"] = [0x100, 0x100 + gap]
        p = parse_rel(rel.write(OWN, sections, entries))
        kinds = [e[2] for e in p.lists[OWN]]
        assert kinds.count(NOP) == nops, hex(gap)
        assert [pos for _, pos, *_ in p.patches(OWN)] == [0x100, 0x100 + gap]


def test_no_relocations():
    sections = [rel.RelSection(absent=True), rel.RelSection(8, bytes(8), 4, exec=True)]
    empty = np.zeros(0, rel.ENTRY_DTYPE)
    for version in VERSIONS:
        data = rel.write(OWN, sections, empty, version=version)
        p = parse_rel(data)
        assert p.imports == [] and p.fields["impSize"] == 0
        if version == 3:
            assert p.fields["fixSize"] == len(data)
        m = rel.read(data, file="empty.rel")
        assert len(m.relocations) == 0 and rel.write_module(m) == data


def test_write_rejects_bad_input():
    sections = synthetic_sections()
    with pytest.raises(LinkError, match="static module"):
        rel.write(0, sections, synthetic_entries())
    bad = synthetic_entries()
    bad["offset"][0] = 0x3E  # a REL24 at 0x3e of a 0x40-byte section
    with pytest.raises(LinkError, match="no data there"):
        rel.write(OWN, sections, bad)
    with pytest.raises(LinkError, match="at most one bss"):
        rel.write(OWN, sections + [rel.RelSection(4, bss=True)], synthetic_entries())
    with pytest.raises(LinkError, match="version"):
        rel.write(OWN, sections, synthetic_entries(), version=4)


# -- the REL -> Module mapping -----------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_read_mapping(version):
    data = synthetic(version)
    m = rel.read(data, file="synthetic.rel")
    assert (m.machine, m.byteorder, m.bits, m.kind, m.lazy_data) == ("ppc", ">", 32, "rel", True)
    assert bytes(m.loading.image) == data
    h = m.format_info.header
    assert isinstance(h, rel.RelHeader) and h.id == OWN and h.version == version
    assert m.format_info.imports == [tuple(x) for x in parse_rel(data).imports]
    kinds = [s.kind for s in m.sections]
    assert kinds == [SectionKind.DATA, SectionKind.TEXT, SectionKind.DATA, SectionKind.DATA,
                     SectionKind.BSS, SectionKind.DATA]
    assert [s.name for s in m.sections] == [f"section{i}" for i in range(6)]
    assert [s.index for s in m.sections] == list(range(6))
    p = parse_rel(data)
    for i, s in enumerate(m.sections):
        off, size, _ = p.sections[i]
        if s.kind == SectionKind.BSS:
            assert (s.data, s.image_offset, s.size) == (None, None, 0x40)
            assert s.align == (16 if version >= 2 else 4)
        elif off == 0:
            assert (s.data, s.image_offset, s.size) == (b"", None, 0)
        else:
            assert s.image_offset == off and bytes(s.data) == data[off:off + size]
            assert s.align == (32 if version >= 2 else 4)
    names = m.names
    assert names[0] == ""
    own_rows = {names.index(f"@rel/{OWN}/{s}"): s for s in (1, 2, 3, 4)}
    for row, s in own_rows.items():
        sym = m.symbols[row]
        assert (int(sym["section"]), int(sym["value"]), int(sym["bind"])) == (s, 0, GLOBAL)
    for what, value in (("_prolog", 4), ("_epilog", 8), ("_unresolved", 0xC)):
        sym = m.symbols[names.index(what)]
        assert (int(sym["section"]), int(sym["value"]), int(sym["type"])) == (1, value, 2)
    for foreign in ("@rel/3/2", "@rel/9/1"):
        assert int(m.symbols[names.index(foreign)]["section"]) == UNDEF
    dol_row = names.index("@dol")
    assert (int(m.symbols[dol_row]["section"]), int(m.symbols[dol_row]["value"])) == (ABS, 0)
    assert len(names) == 1 + 4 + 3 + 2 + 1
    # one relocation row per patching entry, in file order, with its target row
    expected = []
    for module, _ in p.imports:
        for section, position, kind, target, addend in p.patches(module):
            row = (dol_row if module == 0 else names.index(f"@rel/{module}/{target}"))
            expected.append((section, position, kind, row, addend))
    got = [(int(r["section"]), int(r["offset"]), int(r["kind"]), int(r["target"]),
            int(r["addend"])) for r in m.relocations]
    assert got == expected
    assert not m.relocations["implicit"].any()


def test_read_names_and_read_module():
    data = synthetic()
    names = ["", ".text", ".data", ".rodata", ".bss", ".comment"]
    m = rel.read(data, names=names)
    assert [s.name for s in m.sections] == ["section0"] + names[1:]  # empty: the default
    with pytest.raises(FormatError, match="unrecognised"):
        read_module(data)
    assert read_module(data, format="rel").kind == "rel"
    with pytest.raises(FormatError, match="unknown format"):
        read_module(data, format="xcoff")


def test_read_module_by_extension(tmp_path):
    path = tmp_path / "mod.rel"
    path.write_bytes(synthetic())
    m = read_module(path)
    assert (m.kind, m.name, m.file) == ("rel", "mod", str(path))


@pytest.mark.parametrize("version", VERSIONS)
def test_round_trip(version):
    data = synthetic(version)
    again = rel.write_module(rel.read(data))
    assert again == data
    assert rel.write_module(rel.read(again)) == data


def test_round_trip_changes_version():
    m = rel.read(synthetic(3))
    v1 = rel.write_module(m, version=1)
    assert parse_rel(v1).fields["version"] == 1
    columns = ["module", "section", "offset", "type", "target", "addend"]
    assert sorted(rel.read(v1).format_info.entries[columns].tolist()) == \
        sorted(m.format_info.entries[columns].tolist())


def test_unknown_types_and_mrkref_are_kept():
    entries = synthetic_entries()
    entries["type"][6] = 99
    entries["type"][3] = 204
    m = rel.read(rel.write(OWN, synthetic_sections(), entries))
    assert sorted(set(m.relocations["kind"].tolist()) & {99, 204}) == [99, 204]


def test_repeated_import_ids_use_the_first():
    data = bytearray(synthetic(3))
    f = parse_rel(bytes(data)).fields
    # make the second import (module 9) claim module 3: the loader only uses the first
    struct.pack_into(">I", data, f["impOffset"] + 8, 3)
    m = rel.read(bytes(data))
    assert [i for i, _ in m.format_info.imports] == [3, 3, OWN, 0]
    assert 9 not in set(m.format_info.entries["module"].tolist())
    assert any("ignored" in line for line in dump(bytes(data), format="rel"))


# -- malformed files ---------------------------------------------------------------------------
HEADER_FIELD = {"id": 0x00, "next": 0x04, "prev": 0x08, "numSections": 0x0C,
                "sectionInfoOffset": 0x10, "version": 0x1C, "bssSize": 0x20, "relOffset": 0x24,
                "impOffset": 0x28, "impSize": 0x2C, "prologSection": 0x30,
                "epilogSection": 0x31, "unresolvedSection": 0x32, "bssSection": 0x33,
                "prolog": 0x34, "epilog": 0x38, "unresolved": 0x3C, "align": 0x40,
                "bssAlign": 0x44, "fixSize": 0x48}


def patch_field(data: bytes, name: str, value: int) -> bytes:
    out = bytearray(data)
    at = HEADER_FIELD[name]
    if 0x30 <= at < 0x34:
        out[at] = value
    else:
        struct.pack_into(">I", out, at, value)
    return bytes(out)


def patch_entry(data: bytes, at: int, *, offset=None, kind=None, section=None) -> bytes:
    out = bytearray(data)
    old = struct.unpack_from(">HBBI", out, at)
    struct.pack_into(">HBBI", out, at, old[0] if offset is None else offset,
                     old[1] if kind is None else kind, old[2] if section is None else section,
                     old[3])
    return bytes(out)


def entry_at(data: bytes, module: int, index: int) -> int:
    return parse_rel(data).lists[module][index][0]


def section_entry(data: bytes, i: int, offset: int, size: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(">II", out, parse_rel(data).fields["sectionInfoOffset"] + 8 * i, offset, size)
    return bytes(out)


GOOD = synthetic(3)
LAYOUT = parse_rel(GOOD)
F = LAYOUT.fields
TABLE = F["sectionInfoOffset"]

# name -> (corrupt bytes, expected section, expected offsets, message fragment)
MALFORMED = {
    "truncated-header": (GOOD[:0x20], "header", {0}, "shorter"),
    "truncated-v3-header": (GOOD[:0x44], "header", {0x40}, "shorter"),
    "empty-file": (b"", "header", {0}, "shorter"),
    "version-0": (patch_field(GOOD, "version", 0), "header", {0x1C}, "version"),
    "version-4": (patch_field(GOOD, "version", 4), "header", {0x1C}, "version"),
    "version-huge": (patch_field(GOOD, "version", 0xFFFFFFFF), "header", {0x1C}, "version"),
    "id-0": (patch_field(GOOD, "id", 0), "header", {0x00}, "static module"),
    "next-set": (patch_field(GOOD, "next", 0x80001000), "header", {0x04}, "0 in a file"),
    "prev-set": (patch_field(GOOD, "prev", 4), "header", {0x08}, "0 in a file"),
    "numSections-0": (patch_field(GOOD, "numSections", 0), "header", {0x0C}, "null section"),
    "numSections-huge": (patch_field(GOOD, "numSections", 0x20000000), "header", {0x0C, 0x10},
                         "section table"),
    "sectionInfoOffset-past-end": (patch_field(GOOD, "sectionInfoOffset", len(GOOD)), "header",
                                   {0x10}, "section table"),
    "sectionInfoOffset-in-header": (patch_field(GOOD, "sectionInfoOffset", 0x20), "header",
                                    {0x10}, "section table"),
    "sectionInfoOffset-wraps": (patch_field(GOOD, "sectionInfoOffset", 0xFFFFFFF8), "header",
                                {0x10}, "section table"),
    "impSize-odd": (patch_field(GOOD, "impSize", 12), "header", {0x2C}, "multiple of 8"),
    "impOffset-past-end": (patch_field(GOOD, "impOffset", len(GOOD) - 8), "header", {0x28},
                           "import table"),
    "impOffset-in-header": (patch_field(GOOD, "impOffset", 0x10), "header", {0x28},
                            "import table"),
    "impSize-past-end": (patch_field(GOOD, "impSize", 0x7FFFFFF8), "header", {0x28},
                         "import table"),
    "relOffset-past-end": (patch_field(GOOD, "relOffset", len(GOOD) + 4), "header", {0x24},
                           "relOffset"),
    "relOffset-in-header": (patch_field(GOOD, "relOffset", 0x8), "header", {0x24}, "relOffset"),
    "bssSection-set": (patch_field(GOOD, "bssSection", 4), "header", {0x33}, "set when linked"),
    "bssSize-too-small": (patch_field(GOOD, "bssSize", 0x3C), "header", {0x20}, "smaller"),
    "align-not-power-of-two": (patch_field(GOOD, "align", 24), "header", {0x40}, "power of two"),
    "bssAlign-not-power-of-two": (patch_field(GOOD, "bssAlign", 3), "header", {0x44},
                                  "power of two"),
    "fixSize-past-end": (patch_field(GOOD, "fixSize", len(GOOD) + 8), "header", {0x48},
                         "fixSize"),
    "fixSize-in-header": (patch_field(GOOD, "fixSize", 0x10), "header", {0x48}, "fixSize"),
    "prologSection-absent": (patch_field(GOOD, "prologSection", 5), "header", {0x30},
                             "not a section with code"),
    "prologSection-missing": (patch_field(GOOD, "prologSection", 40), "header", {0x30},
                              "not a section with code"),
    "epilogSection-bss": (patch_field(GOOD, "epilogSection", 4), "header", {0x31},
                          "not a section with code"),
    "epilog-beyond-section": (patch_field(GOOD, "epilog", 0x40), "header", {0x38}, "beyond"),
    "prolog-beyond-section": (patch_field(GOOD, "prolog", 0x40), "header", {0x34}, "beyond"),
    "unresolved-beyond-section": (patch_field(GOOD, "unresolved", 0x1000), "header", {0x3C},
                                  "beyond"),
    # the section table
    "null-section-not-null": (section_entry(GOOD, 0, 0, 4), "section 0", {TABLE}, "null"),
    "section-past-end": (section_entry(GOOD, 3, len(GOOD) + 0x20, 0x12), "section 3",
                         {len(GOOD) + 0x20}, "outside the file"),
    "section-size-past-end": (section_entry(GOOD, 2, LAYOUT.sections[2][0], len(GOOD)),
                              "section 2", {LAYOUT.sections[2][0]}, "outside the file"),
    "section-wraps": (section_entry(GOOD, 2, 0xFFFFFFF0, 0x20), "section 2", {0xFFFFFFF0},
                      "outside the file"),
    "section-over-header": (section_entry(GOOD, 1, 0x10, 0x10), "section 1", {0x10},
                            "header"),
    "section-over-table": (section_entry(GOOD, 1, TABLE + 8, 0x10), "section 1", {TABLE + 8},
                           "section table"),
    "sections-overlap": (section_entry(GOOD, 3, LAYOUT.sections[2][0] + 0x100, 0x12),
                         "section 3", {LAYOUT.sections[2][0] + 0x100}, "overlaps section 2"),
    "two-bss": (section_entry(GOOD, 5, 0, 0x10), "section 5", {TABLE + 40}, "two bss"),
    "bss-executable": (section_entry(GOOD, 4, 1, 0x40), "section 4", {TABLE + 32},
                       "executable"),
    # imports and lists
    "import-past-end": (None, "import 1", {F["impOffset"] + 8}, "outside"),
    "import-in-header": (None, "import 0", {F["impOffset"]}, "outside"),
    "list-without-end": (None, "relocation list for module 0", {LAYOUT.imports[3][1]},
                         "R_DOLPHIN_END"),
    "list-truncated": (GOOD[:-12], "relocation list for module 0", {LAYOUT.imports[3][1]},
                       "R_DOLPHIN_END"),
    "section-entry-to-missing": (patch_entry(GOOD, entry_at(GOOD, 3, 0), section=200),
                                 "relocation list for module 3", {entry_at(GOOD, 3, 0)},
                                 "does not exist"),
    "section-entry-to-absent": (patch_entry(GOOD, entry_at(GOOD, 3, 0), section=5),
                                "relocation list for module 3", {entry_at(GOOD, 3, 0)},
                                "absent"),
    "section-entry-to-bss": (patch_entry(GOOD, entry_at(GOOD, 9, 0), section=4),
                             "relocation list for module 9", {entry_at(GOOD, 9, 0)}, "bss"),
    "entry-before-section": (patch_entry(GOOD, entry_at(GOOD, 3, 0), kind=1),
                             "relocation list for module 3", {entry_at(GOOD, 3, 0)},
                             "before the first R_DOLPHIN_SECTION"),
    "offset-beyond-section": (patch_entry(GOOD, entry_at(GOOD, 3, 2), offset=0x40),
                              "relocation list for module 3", {entry_at(GOOD, 3, 2)},
                              "beyond"),
    "nop-runs-past-section": (patch_entry(GOOD, entry_at(GOOD, 3, 1), kind=NOP, offset=0xFFFF),
                              "relocation list for module 3", {entry_at(GOOD, 3, 2)}, "beyond"),
    "self-entry-to-absent-section": (patch_entry(GOOD, entry_at(GOOD, OWN, 1), section=5),
                                     f"relocation list for module {OWN}",
                                     {entry_at(GOOD, OWN, 1)}, "absent"),
}


def _import_case(name: str) -> bytes:
    out = bytearray(GOOD)
    if name == "import-past-end":
        struct.pack_into(">I", out, F["impOffset"] + 12, len(GOOD) - 4)
    elif name == "import-in-header":
        struct.pack_into(">I", out, F["impOffset"] + 4, 0x20)
    elif name == "list-without-end":
        last = LAYOUT.lists[0][-1][0]  # the DOL's list is the last one in a v3 file
        out[last + 2] = NOP
    return bytes(out)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed(name):
    data, section, offsets, fragment = MALFORMED[name]
    if data is None:
        data = _import_case(name)
    with pytest.raises(FormatError) as info:
        rel.read(data, file="bad.rel")
    e = info.value
    assert e.file == "bad.rel"
    assert e.section == section, str(e)
    assert e.offset in offsets, str(e)
    assert fragment in str(e), str(e)
    assert str(e).startswith("bad.rel: ")
    with pytest.raises(FormatError):  # the dump checks the same things
        list(dump(data, format="rel"))


def test_malformed_v1_header_fields():
    v1 = synthetic(1)
    assert rel.read(v1).format_info.header.align == 0
    with pytest.raises(FormatError) as info:
        rel.read(v1[:0x3C])
    assert info.value.offset == 0


def test_fuzz_never_crashes():
    """Random byte flips of good files: reading works or raises FormatError, nothing else."""
    rng = random.Random(20240601)
    small_sections = [rel.RelSection(absent=True),
                      rel.RelSection(0x40, bytes(range(0x40)), 4, exec=True),
                      rel.RelSection(0x40, bytes(0x40), 8), rel.RelSection(0x12, bytes(0x12), 8),
                      rel.RelSection(0x20, bss=True), rel.RelSection(absent=True)]
    entries = synthetic_entries()
    entries = entries[entries["offset"] < 0x3C]
    bases = [rel.write(OWN, small_sections, entries, version=v) for v in VERSIONS]
    for base in bases:
        rel.read(base)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(1500):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data)) if rng.random() < 0.7 else rng.randrange(0x4C)
            data[at] = rng.randrange(256)
        if rng.random() < 0.1:
            data = data[:rng.randrange(len(data))]
        try:
            m = rel.read(bytes(data))
            list(dump(bytes(data), format="rel", disasm=True))
            assert len(m.relocations) == len(m.format_info.entries)
            outcomes["ok"] += 1
        except FormatError:
            outcomes["error"] += 1
    assert outcomes["ok"] > 50 and outcomes["error"] > 50, outcomes


# -- dump --------------------------------------------------------------------------------------
def test_dump_lists_everything():
    lines = list(dump(synthetic(3), format="rel", disasm=True))
    text = "\n".join(lines)
    assert lines[0] == "<bytes>: REL version 3, module id 7"
    assert "    1        0x7c        0x40  exec" in text
    assert "    4           -        0x40  bss" in text
    assert "module 0 (DOL): list at" in text and f"module {OWN} (self): list at" in text
    assert "R_PPC_REL24            DOL 0x80004000" in text
    assert "R_PPC_ADDR16_HA        module 3 section 2 + 0x100" in text
    assert "alignment: module 32, bss 16 (code needs 4 bytes): ok" in text
    assert "fixSize" in text and "VIOLATION" not in text
    assert "Disassembly of section 1:" in text


def test_alignment_violations_reported():
    # module alignment 4 but a section needs 32 (its offset is only 4-aligned in the file)
    data = synthetic(2, align=4, bss_align=4)
    r = rel.RelFile(data)
    needs = [1, 4, 8, 32, 16, 1]
    problems = alignment_problems(r, needs)
    assert any("module align 4 is below the 32" in p for p in problems)
    assert any(p.startswith("section 2 ") and "needs 8-byte" in p for p in problems)
    assert any("bss section 4 needs 16-byte alignment, but bssAlign is 4" in p
               for p in problems)
    assert alignment_problems(rel.RelFile(synthetic(2)), needs) == []
    text = "\n".join(dump(data, format="rel"))
    assert "VIOLATION" not in text  # without the plf only code (4 bytes) is checked
    text = "\n".join(dump(synthetic(2, align=2), format="rel"))
    assert "alignment: module 2, bss 16 (code needs 4 bytes): VIOLATION" in text
    assert "VIOLATION: section 1 at file offset 0x78 needs 4-byte alignment" in text


def test_fix_size_problem_reported():
    data = bytearray(synthetic(3))
    f = parse_rel(bytes(data)).fields
    struct.pack_into(">I", data, 0x48, f["impOffset"])  # frees the import table too
    text = "\n".join(dump(bytes(data), format="rel"))
    assert "VIOLATION: the import table lies past fixSize" in text
    assert "VIOLATION: the list for module 3 lies past fixSize" in text


# -- DOL ---------------------------------------------------------------------------------------
def sample_dol() -> bytes:
    segments = [Segment(0x80003100, 0x24, bytes(range(0x24)), executable=True),
                Segment(0x80005000, 0x40, b"\x60\x00\x00\x00" * 16, executable=True),
                Segment(0x80100000, 0x10, b"data" * 4, writable=True)]
    return dol.write(segments, 0x80005000, (0x80100020, 0x200))


def test_dol_write_layout():
    data = sample_dol()
    offsets = struct.unpack_from(">18I", data, 0x00)
    addresses = struct.unpack_from(">18I", data, 0x48)
    sizes = struct.unpack_from(">18I", data, 0x90)
    bss_address, bss_size, entry = struct.unpack_from(">3I", data, 0xD8)
    assert offsets[:2] == (0x100, 0x140) and offsets[7] == 0x180
    assert sizes[:2] == (0x40, 0x40) and sizes[7] == 0x20  # padded to 32
    assert addresses[0] == 0x80003100 and addresses[7] == 0x80100000
    assert set(sizes[2:7]) == {0} and set(sizes[8:]) == {0}
    assert (bss_address, bss_size, entry) == (0x80100020, 0x200, 0x80005000)
    assert data[0x100:0x124] == bytes(range(0x24)) and data[0x124:0x140] == bytes(0x1C)
    assert len(data) == 0x1A0


def test_dol_read():
    m = dol.read(sample_dol(), file="main.dol")
    assert (m.kind, m.entry, m.machine) == ("executable", 0x80005000, "ppc")
    assert [(s.address, s.size, s.executable, s.writable) for s in m.segments] == [
        (0x80003100, 0x40, True, False), (0x80005000, 0x40, True, False),
        (0x80100000, 0x20, False, True), (0x80100020, 0x200, False, True)]
    assert [s.name for s in m.sections] == ["text0", "text1", "data0", "bss"]
    assert bytes(m.segments[1].data) == b"\x60\x00\x00\x00" * 16
    assert len(m.symbols) == 1
    names = symtab.to_module([symtab.SymbolEntry("main", 0x80005000)])
    assert dol.read(sample_dol(), symbols=names).find_symbol("main") == 1
    text = "\n".join(dump(sample_dol(), format="dol", disasm=True))
    assert "text1        0x140 0x80005000       0x40" in text
    assert "80005000:  60000000  nop" in text
    assert "data10" in text and "bss" in text


DOL_MALFORMED = {
    "short": (lambda d: d[:0x80], "header", 0),
    "slot-past-end": (lambda d: _put(d, 0x04, 0x1000), "text1", 0x04),
    "slot-in-header": (lambda d: _put(d, 0x00, 0x80), "text0", 0x00),
    "slot-wraps-memory": (lambda d: _put(d, 0x48 + 4 * 7, 0xFFFFFFF0), "data0", 0x48 + 28),
    "slots-overlap": (lambda d: _put(d, 0x48 + 4, 0x80003110), "text1", 0x4C),
    "bss-wraps": (lambda d: _put(d, 0xDC, 0xFFFFFFF0), "bss", 0xD8),
    "entry-outside-text": (lambda d: _put(d, 0xE0, 0x80100000), "header", 0xE0),
}


def _put(data: bytes, at: int, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(">I", out, at, value)
    return bytes(out)


@pytest.mark.parametrize("name", sorted(DOL_MALFORMED))
def test_dol_malformed(name):
    corrupt, section, offset = DOL_MALFORMED[name]
    with pytest.raises(FormatError) as info:
        dol.read(corrupt(sample_dol()), file="bad.dol")
    assert (info.value.file, info.value.section, info.value.offset) == ("bad.dol", section, offset)


def test_dol_too_many_slots():
    segments = [Segment(0x80000000 + 0x100 * i, 4, b"abcd", executable=True) for i in range(8)]
    with pytest.raises(LinkError, match="do not fit"):
        dol.write(segments, 0x80000000)


# -- symbol lists ------------------------------------------------------------------------------
SYMBOL_LIST = """\
# a comment
80004000:_start
0x80004100 dol_func   // trailing comment
80010000:dol_value
.text,0x20:text_label
text1,0x10:slot_label
1,0x8:by_index
OSReport = .text:0x80004200; // type:function size:0x44 scope:global
gData = .data:0x80010010; // type:object size:0x8
"""

CW_MAP = """\
Link map of __start
 1] __start (func,global) found in os.a __start.c
  2] __init_registers (func,local) found in os.a __start.c

.init section layout
  Starting        Virtual
  address  Size   address
  -----------------------
  00000000 000300 80003100  1 .init \tos.a __start.c
  00000000 000240 80003100  4 __start \tos.a __start.c
  UNUSED   000028 ........ __unused_fn os.a __start.c

.text section layout
  Starting        Virtual  File
  address  Size   address  offset
  ---------------------------------
  00000000 0000a4 80005640 00002540  4 .text \tmain.o
  00000000 0000a4 80005640 00002540  4 main \tmain.o
  000000a4 000020 800056e4 000025e4  4 OSReport \tos.a OSError.c


.data section layout
  Starting        Virtual
  address  Size   address
  -----------------------
  00000000 000008 80200000  8 gData \tmain.o

Memory map:
                   Starting Size     File
       .init       80003100 00000300 00000100
       .text       80005640 00000144 00002540

Linker generated symbols:
        _stack_addr 80400000
    _db_stack_addr 80401000
"""


def test_symbol_list_formats():
    entries = symtab.parse(SYMBOL_LIST)
    by_name = {e.name: e for e in entries}
    assert by_name["_start"].address == 0x80004000
    assert by_name["dol_func"].address == 0x80004100
    assert (by_name["text_label"].section, by_name["text_label"].offset) == (".text", 0x20)
    assert (by_name["by_index"].section, by_name["by_index"].offset) == (1, 8)
    assert (by_name["OSReport"].address, by_name["OSReport"].size, by_name["OSReport"].type) == \
        (0x80004200, 0x44, 2)
    placed = symtab.resolve(entries, {".text": 0x80004000, "text1": 0x80005000, 1: 0x80004000})
    assert {e.name: e.address for e in placed}["slot_label"] == 0x80005010
    with pytest.raises(FormatError, match="unknown here"):
        symtab.resolve(entries)
    m = symtab.to_module(placed, "static", "syms.txt")
    assert m.kind == "executable"
    assert {n: int(m.symbols["value"][r]) for n, r in m.exports().items()}["gData"] == 0x80010010
    assert (m.symbols["section"][1:] == ABS).all()


def test_symbol_list_bad_line():
    with pytest.raises(FormatError) as info:
        symtab.parse("80004000:ok\nthis is not a symbol\n", "syms.txt")
    assert info.value.file == "syms.txt" and "line 2" in str(info.value)


def test_codewarrior_map():
    entries = symtab.parse(CW_MAP)
    got = {e.name: e.address for e in entries}
    assert got == {"__start": 0x80003100, "main": 0x80005640, "OSReport": 0x800056E4,
                   "gData": 0x80200000, "_stack_addr": 0x80400000,
                   "_db_stack_addr": 0x80401000}
    assert {e.name: e.size for e in entries}["OSReport"] == 0x20


# -- golden dumps ------------------------------------------------------------------------------
def _golden():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent / "golden" / "regen.py"
    spec = importlib.util.spec_from_file_location("golden_regen", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GOLDEN = _golden()


@pytest.mark.parametrize("args,expected", GOLDEN.CASES, ids=[c[1] for c in GOLDEN.CASES])
def test_golden_dump(args, expected):
    """``linkload dump`` of the committed RELs and DOL against tests/golden/*.txt.
    Regenerate with ``python tests/golden/regen.py`` (and review the diff)."""
    want = (GOLDEN.HERE / expected).read_text()
    got = GOLDEN.dump_case(args)
    assert got == want, f"run python tests/golden/regen.py to update {expected}"
