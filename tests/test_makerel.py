"""makerel on real PowerPC code compiled at test time (powerpc-linux-gnu-gcc; a missing cross
compiler fails the tests under CI and skips them otherwise).

A freestanding static module (no libc) and three modules referring to each other, to the static
module and to themselves (:mod:`relmodules`) are built into RELs of versions 1, 2 and 3. The bytes are checked
against the layout with the independent :func:`test_rel_format.parse_rel`, and then *linked*
by a small model of the SDK loader written here from the format description: every relocation
of the original plf files (read with pyelftools) must then hold the value the static linker
would have given it. Also: NOP bridging in a 230 KiB section, import order, fixSize, exec
bits, the single bss, alignments, round trips, the command line, the ``.str`` table and
``import.lst``, symbol lists instead of the static ELF, and the build errors.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from test_rel_format import END, NOP, SECTION, parse_rel

from linkload import LinkError, UndefinedSymbolError, UnsupportedError
from linkload.cli import main
from linkload.formats import dol, rel
from linkload.tools import build
from relmodules import Build, plf_of, without_dol_sections


@pytest.fixture(scope="module")
def results(built):
    return {v: build(built.static, built.plfs, version=v, module_names=["a", "b", "c"])
            for v in (1, 2, 3)}


# -- the bytes against the layout --------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2, 3])
def test_sections_match_the_plf(built, results, version):
    for i, out in enumerate(results[version].rels):
        elf = built.elf(i)
        p = parse_rel(out.data)
        f = p.fields
        assert (f["id"], f["version"], f["numSections"]) == (i + 1, version, elf.num_sections())
        assert f["sectionInfoOffset"] == {1: 0x40, 2: 0x48, 3: 0x4C}[version]
        bss = [k for k, (off, size, _) in enumerate(p.sections) if off == 0 and size]
        needs, bss_need = [], 1
        for k, sec in enumerate(elf.iter_sections()):
            off, size, exec_ = p.sections[k]
            flags = sec["sh_flags"]
            assert exec_ == bool(flags & 4), sec.name
            if not flags & 2 or (sec["sh_type"] == "SHT_NOBITS" and not sec["sh_size"]):
                assert (off, size) == (0, 0), sec.name  # absent
            elif sec["sh_type"] == "SHT_NOBITS":
                assert (off, size) == (0, sec["sh_size"]) and bss == [k]
                bss_need = sec["sh_addralign"]
                assert f["bssSize"] == size
            else:
                assert off and size == sec["sh_size"] and off % max(sec["sh_addralign"], 2) == 0
                needs.append(sec["sh_addralign"])
        assert len(bss) <= 1
        if not bss:
            assert f["bssSize"] == 0
        if version >= 2:
            assert f["align"] == max(needs) and f["bssAlign"] == bss_need
        assert f["bssSection"] == 0


@pytest.mark.parametrize("version", [1, 2, 3])
def test_order_imports_fix_size(results, version):
    for out in results[version].rels:
        p = parse_rel(out.data)
        f = p.fields
        own = out.id
        modules = [m for m, _ in p.imports]
        data_end = max(off + size for off, size, _ in p.sections if off)
        if version < 3:
            assert modules == sorted(modules)
            assert data_end <= f["relOffset"] < f["impOffset"]
            assert f["impOffset"] + f["impSize"] == len(out.data)
        else:
            others = [m for m in modules if m not in (0, own)]
            assert modules == sorted(others) + [m for m in (own, 0) if m in modules]
            assert data_end <= f["impOffset"] < f["relOffset"]
            special = [at for m, at in p.imports if m in (own, 0)]
            assert f["fixSize"] == (min(special) if special else len(out.data))
            assert all(at < f["fixSize"] for m, at in p.imports if m not in (own, 0))
        assert f["relOffset"] == min(at for _, at in p.imports)
        for entries in p.lists.values():
            assert entries[0][2] == SECTION and entries[-1][2] == END
            positions: dict[int, list[int]] = {}
            section = None
            for _, offset, kind, target, _ in entries:
                if kind == SECTION:
                    assert target not in positions  # one R_DOLPHIN_SECTION per section
                    section, positions[target] = target, [0]
                elif kind == NOP:
                    assert offset == 0xFFFF
                    positions[section].append(positions[section][-1] + offset)
                elif kind != END:
                    positions[section].append(positions[section][-1] + offset)
            assert all(v == sorted(v) for v in positions.values())


def test_import_targets(results):
    a, b, c = (parse_rel(r.data) for r in results[3].rels)
    assert [m for m, _ in a.imports] == [2, 1, 0]  # b, itself, the DOL
    assert [m for m, _ in b.imports] == [1, 3, 2, 0]
    assert [m for m, _ in c.imports] == [2, 3, 0]
    assert [m for m, _ in parse_rel(results[1].rels[1].data).imports] == [0, 1, 2, 3]


def test_nop_bridging_in_a_large_section(built, results):
    """c_big's pointers are at 0, 0x18004 and 0x38008 of a 0x38010-byte .data."""
    elf = built.elf(2)
    data_index = elf.get_section_index(".data")
    c = parse_rel(results[3].rels[2].data)
    nops = [e for entries in c.lists.values() for e in entries if e[2] == NOP]
    assert len(nops) >= 3 and all(e[1] == 0xFFFF for e in nops)
    places = sorted((m, pos) for m in c.lists for s, pos, *_ in c.patches(m) if s == data_index)
    assert places == [(0, 0), (2, 0x18004), (3, 0x38008), (3, 0x3800C)]


def test_names_string_table(results):
    r = results[3]
    assert r.string_table == b"a\0b\0c\0"
    for out in r.rels:
        f = parse_rel(out.data).fields
        name = r.string_table[f["nameOffset"]:f["nameOffset"] + f["nameSize"]]
        assert name == out.name.encode() + b"\0"


def test_entry_points(built, results):
    a = parse_rel(results[3].rels[0].data).fields
    symbols = {s.name: s for s in built.elf(0).get_section_by_name(".symtab").iter_symbols()}
    for what in ("prolog", "epilog", "unresolved"):
        sym = symbols["_" + what]
        assert (a[what + "Section"], a[what]) == (sym["st_shndx"], sym["st_value"])
    b = parse_rel(results[3].rels[1].data).fields
    assert (b["prologSection"], b["epilogSection"], b["unresolvedSection"]) == (0, 0, 0)


def test_import_list(results):
    assert results[3].imports == ["OSReport", "dol_counter", "dol_func", "dol_table",
                                  "dol_twice", "dol_value"]


def test_first_pass_without_static_module(built):
    r = build(None, built.plfs)
    assert r.rels == [] and r.imports == ["OSReport", "b_missing", "dol_counter", "dol_func",
                                          "dol_table", "dol_twice", "dol_value",
                                          "not_loaded_anywhere"]


# -- linking the RELs with a model of the loader -----------------------------------------------
MEMORY_BASE = 0x80000000
PLACES = {1: (0x80100000, 0x80180000), 2: (0x80200000, 0x80280000), 3: (0x80300000, 0x80380000)}


class Loader:
    """The SDK's OSLink, reduced to what the relocation lists do: modules at fixed addresses,
    every list whose target module is loaded (or the DOL) applied."""

    def __init__(self, rels: list[bytes]):
        self.memory = bytearray(0x800000)
        self.parsed = {}
        for data in rels:
            p = parse_rel(data)
            self.parsed[p.fields["id"]] = p
            base = PLACES[p.fields["id"]][0] - MEMORY_BASE
            self.memory[base:base + len(data)] = data
        for module, p in self.parsed.items():
            for target in p.lists:
                if target == 0 or target in self.parsed:
                    self.apply(module, target)

    def address(self, module: int, section: int) -> int:
        offset, size, _ = self.parsed[module].sections[section]
        base, bss = PLACES[module]
        return bss if offset == 0 and size else base + offset

    def word(self, at: int) -> int:
        return struct.unpack_from(">I", self.memory, at - MEMORY_BASE)[0]

    def half(self, at: int) -> int:
        return struct.unpack_from(">H", self.memory, at - MEMORY_BASE)[0]

    def apply(self, module: int, target: int) -> None:
        p = 0
        for _, offset, kind, section, addend in self.parsed[module].lists[target]:
            p += offset
            if kind == SECTION:
                p = self.address(module, section)
                continue
            if kind in (NOP, END):
                continue
            s = addend if target == 0 else self.address(target, section) + addend
            self.write(p, kind, s & 0xFFFFFFFF)

    def write(self, p: int, kind: int, s: int) -> None:
        at = p - MEMORY_BASE
        word = lambda value: struct.pack_into(">I", self.memory, at, value & 0xFFFFFFFF)  # noqa
        half = lambda value: struct.pack_into(">H", self.memory, at, value & 0xFFFF)  # noqa
        if kind == 1:
            word(s)
        elif kind in (3, 4):
            half(s)
        elif kind == 5:
            half(s >> 16)
        elif kind == 6:
            half((s + 0x8000) >> 16)
        elif kind == 2:
            word((self.word(p) & ~0x3FFFFFC) | (s & 0x3FFFFFC))
        elif kind in (7, 8, 9):
            word((self.word(p) & ~0xFFFC) | (s & 0xFFFC))
        elif kind == 10:
            word((self.word(p) & ~0x3FFFFFC) | ((s - p) & 0x3FFFFFC))
        elif kind in (11, 12, 13):
            word((self.word(p) & ~0xFFFC) | ((s - p) & 0xFFFC))
        else:
            raise AssertionError(f"type {kind} in a list")


def _definitions(built: Build, loader: Loader) -> dict[str, int]:
    """Every global symbol's run-time address: the static ELF's, then the modules'."""
    out = {}
    static = ELFFile(io.BytesIO(built.static.read_bytes()))
    for sym in static.get_section_by_name(".symtab").iter_symbols():
        if sym["st_info"]["bind"] == "STB_GLOBAL" and sym["st_shndx"] != "SHN_UNDEF":
            out[sym.name] = sym["st_value"]
    for i in range(len(built.plfs)):
        for sym in built.elf(i).get_section_by_name(".symtab").iter_symbols():
            if sym["st_info"]["bind"] == "STB_GLOBAL" and isinstance(sym["st_shndx"], int):
                out[sym.name] = loader.address(i + 1, sym["st_shndx"]) + sym["st_value"]
    return out


@pytest.mark.parametrize("version", [1, 2, 3])
def test_linked_values_match_the_static_linker(built, results, version):
    loader = Loader([r.data for r in results[version].rels])
    defined = _definitions(built, loader)
    checked = 0
    for i in range(len(built.plfs)):
        module = i + 1
        elf = built.elf(i)
        symtab_ = elf.get_section_by_name(".symtab")
        unresolved = defined.get("_unresolved") if module == 1 else None
        for section in elf.iter_sections():
            if not isinstance(section, RelocationSection):
                continue
            patched = elf.get_section(section["sh_info"])
            if not patched["sh_flags"] & 2:
                continue
            for r in section.iter_relocations():
                checked += _check_one(loader, module, section["sh_info"], r, symtab_, defined,
                                      unresolved)
    assert checked > 60


def _check_one(loader, module, patched, r, symtab_, defined, unresolved) -> int:
    kind = r["r_info_type"]
    sym = symtab_.get_symbol(r["r_info_sym"])
    p = loader.address(module, patched) + r["r_offset"]
    if isinstance(sym["st_shndx"], int) and sym["st_shndx"]:
        s = loader.address(module, sym["st_shndx"]) + sym["st_value"] + r["r_addend"]
    elif sym.name in defined:
        s = defined[sym.name] + r["r_addend"]
    else:
        assert kind == 10, sym.name  # only branches may stay unresolved
        displacement = loader.word(p) & 0x3FFFFFC
        expected = (unresolved - p) & 0x3FFFFFC if unresolved else 0
        assert displacement == expected, f"{sym.name}: branch not pointed at _unresolved"
        return 1
    s &= 0xFFFFFFFF
    where = f"module {module} section {patched} +{r['r_offset']:#x} -> {sym.name or 'section'}"
    if kind == 1:
        assert loader.word(p) == s, where
    elif kind == 4:
        assert loader.half(p) == s & 0xFFFF, where
    elif kind == 6:
        assert loader.half(p) == ((s + 0x8000) >> 16) & 0xFFFF, where
    elif kind == 5:
        assert loader.half(p) == s >> 16, where
    elif kind == 10:
        assert loader.word(p) & 0x3FFFFFC == (s - p) & 0x3FFFFFC, where
    elif kind == 26:  # R_PPC_REL32 (.eh_frame), resolved in the file
        assert loader.word(p) == (s - p) & 0xFFFFFFFF, where
    else:
        raise AssertionError(f"unexpected kind {kind} at {where}")
    return 1


@pytest.mark.parametrize("version", [1, 2, 3])
def test_only_relocated_bytes_differ_from_the_plf(built, results, version):
    loader = Loader([r.data for r in results[version].rels])
    for i in range(len(built.plfs)):
        elf = built.elf(i)
        touched: dict[int, set[int]] = {}
        for section in elf.iter_sections():
            if isinstance(section, RelocationSection):
                spots = touched.setdefault(section["sh_info"], set())
                for r in section.iter_relocations():
                    spots.update(range(r["r_offset"], r["r_offset"] + 4))
        for k, section in enumerate(elf.iter_sections()):
            if section["sh_flags"] & 2 and section["sh_type"] == "SHT_PROGBITS":
                start = loader.address(i + 1, k) - MEMORY_BASE
                now = loader.memory[start:start + section["sh_size"]]
                diff = {j for j, (x, y) in enumerate(zip(now, section.data(), strict=True))
                        if x != y}
                assert diff <= touched.get(k, set()), section.name


def test_branches_resolved_in_the_file(built, results):
    a = results[3].rels[0]
    p = parse_rel(a.data)
    # no REL24 entry of module a's list for itself: all its own branches are in the file
    assert all(kind != 10 for *_, kind, _, _ in p.patches(1))
    assert a.resolved_in_file >= 3
    # b has no _unresolved: its call to b_missing keeps displacement 0 and has no entry
    b = parse_rel(results[3].rels[1].data)
    assert all(kind != 10 for _, _, kind, _, _ in b.patches(2))


# -- round trips and names ---------------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2, 3])
def test_round_trip(results, version):
    for out in results[version].rels:
        module = rel.read(out.data)
        assert rel.write_module(module) == out.data
        named = out.read()
        assert [s.name for s in named.sections[1:]] == out.section_names[1:]
        assert named.sections[1].name == ".text" and named.sections[1].kind.name == "TEXT"


def test_module_view(built, results):
    a = results[3].rels[0].read()
    assert a.kind == "rel" and a.format_info.header.id == 1
    names = a.names
    assert "@dol" in names and "@rel/2/1" in names and "_prolog" in names
    bss = a.section_named(".bss")
    elf_bss = built.elf(0).get_section_by_name(".bss")
    assert (bss.kind.name, bss.data, bss.size) == ("BSS", None, elf_bss["sh_size"])
    dol_row = names.index("@dol")
    dol_refs = a.relocations[a.relocations["target"] == dol_row]
    static = ELFFile(io.BytesIO(built.static.read_bytes()))
    values = {s.name: s["st_value"] for s in static.get_section_by_name(".symtab").iter_symbols()}
    assert values["dol_func"] in set(dol_refs["addend"].tolist())


# -- the static module from a symbol list or a DOL ---------------------------------------------
def _symbol_list(built: Build, path: Path) -> Path:
    static = ELFFile(io.BytesIO(built.static.read_bytes()))
    lines = [f"{s['st_value']:08x}:{s.name}" for s in static.get_section_by_name(".symtab")
             .iter_symbols() if s["st_info"]["bind"] == "STB_GLOBAL"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_symbol_list_instead_of_elf(built, results, tmp_path):
    listing = _symbol_list(built, tmp_path / "static.sym")
    by_list = build(None, built.plfs, symbols=listing, module_names=["a", "b", "c"])
    for mine, reference in zip(by_list.rels, results[3].rels, strict=True):
        assert without_dol_sections(mine.data) == without_dol_sections(reference.data)
        assert parse_rel(mine.data).sections == parse_rel(reference.data).sections
    assert by_list.imports == results[3].imports


def test_dol_and_symbol_list(built, results, tmp_path):
    image = tmp_path / "static.dol"
    image.write_bytes(dol.from_elf(built.static))
    static_dol = dol.read(image)
    elf = ELFFile(io.BytesIO(built.static.read_bytes()))
    for section in elf.iter_sections():  # every loaded section's bytes, at its address
        if section["sh_flags"] & 2 and section["sh_type"] == "SHT_PROGBITS" and \
                section["sh_size"]:
            seg = next(g for g in static_dol.segments
                       if g.address <= section["sh_addr"] < g.address + g.size)
            at = section["sh_addr"] - seg.address
            assert bytes(seg.data[at:at + section["sh_size"]]) == section.data(), section.name
            assert seg.executable or not section["sh_flags"] & 4
    assert all(seg.address >= 0x80000000 for seg in static_dol.segments)  # no ELF headers
    assert static_dol.entry == elf.header["e_entry"]
    listing = _symbol_list(built, tmp_path / "static.sym")
    r = build(image, built.plfs, symbols=listing, module_names=["a", "b", "c"])
    for mine, reference in zip(r.rels, results[3].rels, strict=True):
        assert without_dol_sections(mine.data) == without_dol_sections(reference.data)
    dol_sections = {t for _, _, _, t, _ in parse_rel(r.rels[0].data).patches(0)}
    assert dol_sections <= {0, 7}  # text0 and data0: the DOL's slot numbers


# -- the command line --------------------------------------------------------------------------
def test_cli_makerel_and_dump(built, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["makerel", str(built.static), *map(str, built.plfs), "-o", "out",
                 "--version", "2", "--base-id", "5", "--str", "game.str"])
    assert code == 0
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir())
    stems = [p.stem for p in built.plfs]
    assert names == sorted([f"{s}.rel" for s in stems] + ["game.str", "import.lst"])
    assert (out / "import.lst").read_text().split() == [
        "OSReport", "dol_counter", "dol_func", "dol_table", "dol_twice", "dol_value"]
    assert (out / "game.str").read_bytes() == b"".join(str(p).encode() + b"\0"
                                                       for p in built.plfs)
    first = parse_rel((out / f"{stems[0]}.rel").read_bytes()).fields
    assert (first["id"], first["version"]) == (5, 2)
    capsys.readouterr()
    assert main(["dump", str(out / f"{stems[0]}.rel"), "--disasm", "--plf",
                 str(built.plfs[0])]) == 0
    text = capsys.readouterr().out
    assert "REL version 2, module id 5" in text and "exec     .text" in text
    assert "alignment: module 4, bss 32 (the plf's section alignments): ok" in text
    assert "Disassembly of section 1 .text:" in text and "R_PPC_REL24            DOL" in text


def test_cli_beside_the_plfs_and_first_pass(built, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    copies = []
    for p in built.plfs:
        copy = tmp_path / (p.stem.split(".")[0] + ".plf")
        copy.write_bytes(p.read_bytes())
        copies.append(copy.name)
    static = tmp_path / "main.elf"
    static.write_bytes(built.static.read_bytes())
    assert main(["makerel", "main.elf", *copies]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        copies + [c.replace(".plf", ".rel") for c in copies] + ["main.elf", "main.str",
                                                              "import.lst"])
    assert (tmp_path / "main.str").read_bytes() == b"".join(c.encode() + b"\0" for c in copies)
    (tmp_path / "import.lst").unlink()
    assert main(["makerel", *copies, "--import-list", "first.lst"]) == 0
    assert "not_loaded_anywhere" in (tmp_path / "first.lst").read_text().split()
    assert main(["makerel", "main.elf", "--version", "3"]) == 2
    assert "at least one plf" in capsys.readouterr().err


# -- errors ------------------------------------------------------------------------------------
def test_error_small_data(ppc, built):
    plf = plf_of(ppc, "int small_var = 3;\nint use_small(void) { return small_var; }\n", "sda",
               ["-msdata=sysv", "-G", "8"])
    with pytest.raises(UnsupportedError) as info:
        build(built.static, [plf])
    e = info.value
    assert "-msdata=none" in str(e) and e.kind == "R_PPC_SDAREL16"
    assert e.symbol == "small_var" and e.section == ".text" and e.file == str(plf)


def test_error_thread_local(ppc, built):
    plf = plf_of(ppc, "__thread int tv;\nint get_tv(void) { return tv; }\n", "tls")
    with pytest.raises(UnsupportedError, match="-msdata=none"):
        build(built.static, [plf])


def test_error_pic(ppc, built):
    plf = plf_of(ppc, "extern int ext;\nint get(void) { return ext; }\n", "pic", ["-fPIC"])
    with pytest.raises(UnsupportedError, match="-fno-pic"):
        build(built.static, [plf])


def test_error_two_bss_sections(ppc, built):
    plf = plf_of(ppc, 'int x1[4];\nint x2[4] __attribute__((section(".bss.extra")));\n'
               "int f(void) { return x1[0] + x2[1]; }\n", "twobss")
    with pytest.raises(UnsupportedError) as info:
        build(built.static, [plf])
    assert ".bss, .bss.extra" in str(info.value) and "-fno-common" in str(info.value)
    assert "linker script" in str(info.value)


def test_error_common(ppc, built):
    plf = plf_of(ppc, "int cm;\nint g(void) { return cm; }\n", "common", ["-fcommon"])
    with pytest.raises(UnsupportedError, match="-fno-common") as info:
        build(built.static, [plf])
    assert info.value.symbol == "cm"


def test_error_undefined_data(ppc, built):
    plf = plf_of(ppc, "extern int nowhere;\nint f(void) { return nowhere; }\n", "undef")
    with pytest.raises(UndefinedSymbolError) as info:
        build(built.static, [plf])
    assert info.value.symbol == "nowhere" and info.value.section == ".text"


def test_weak_undefined_data_is_zero(ppc, built):
    plf = plf_of(ppc, "extern int maybe __attribute__((weak));\n"
               "int *f(void) { return &maybe; }\n", "weak")
    out = build(built.static, [plf]).rels[0]
    patches = parse_rel(out.data).patches(0)
    assert patches and {addend for *_, addend in patches} == {0}


def test_duplicate_definitions(ppc, built):
    """Two modules may define the same name (each has its own _prolog & co.); referring to it
    from a third is ambiguous."""
    one = plf_of(ppc, "int twice_defined = 1;\nvoid _prolog(void) {}\n", "dup1")
    two = plf_of(ppc, "int twice_defined = 2;\nvoid _prolog(void) {}\n", "dup2")
    user = plf_of(ppc, "extern int twice_defined;\nint get(void) { return twice_defined; }\n",
                "dupuser")
    r = build(built.static, [one, two])
    assert [parse_rel(x.data).fields["prologSection"] for x in r.rels] == [1, 1]
    with pytest.raises(LinkError, match="defined in both") as info:
        build(built.static, [one, two, user])
    assert info.value.symbol == "twice_defined"


def test_error_not_a_plf(built):
    with pytest.raises(LinkError, match="relocatable"):
        build(built.static, [built.static])


# -- golden files --------------------------------------------------------------------------------
def test_golden_files_rebuild(tmp_path):
    """tests/golden/*.s still assemble, link and makerel into the committed bytes."""
    from test_rel_format import GOLDEN

    from conftest import require_tool

    require_tool(GOLDEN.AS)
    require_tool(GOLDEN.LD)
    for name, data in GOLDEN.build_inputs(tmp_path).items():
        if name.endswith(".plf"):
            continue  # the plfs' bytes depend on the binutils version; the RELs must not
        assert (GOLDEN.HERE / name).read_bytes() == data, \
            f"{name} changed: run python tests/golden/regen.py and review the diff"


def test_cli_paths_and_unwritable_outputs(built, tmp_path, capsys):
    """A bare --str/--import-list name goes into -o DIR, a path is taken as given, and an
    output that cannot be written is one error line and status 2."""
    static, plfs = built.static, built.plfs
    out = tmp_path / "out"
    assert main(["makerel", str(static), *map(str, plfs), "-o", str(out), "--str", "m.str",
                 "--import-list", str(tmp_path / "import.lst")]) == 0
    assert (out / "m.str").is_file() and (tmp_path / "import.lst").is_file()
    capsys.readouterr()
    assert main(["makerel", str(static), *map(str, plfs), "-o", str(out),
                 "--str", str(tmp_path / "missing" / "m.str")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("linkload: error:") and len(err.strip().splitlines()) == 1
