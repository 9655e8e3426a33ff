"""REL modules end to end on emulated PowerPC: makerel builds them from real partially linked
objects, the linker links them with OSLink/OSLinkFixed/OSUnlink semantics, and the results
match the same C linked as one program and run in the same emulator."""

from __future__ import annotations

import shutil
from pathlib import Path

import capstone
import pytest

from conftest import C_DIR, run_tool
from linkload import Linker, LinkError
from linkload.cli import main as cli

REL_DIR = C_DIR / "rel"
CROSS = "powerpc-linux-gnu-"
FLAGS = ["-mcpu=750", "-msdata=none", "-fno-pic", "-O2"]
STATIC_TEXT = "0x80004000"
MEM2 = 0x9000_0000


def gcc(*args: str | Path) -> None:
    run_tool([CROSS + "gcc", *FLAGS, *map(str, args)])


def partial_link(out: Path, *sources: Path, script: Path | None = None, cxx: bool = False) -> Path:
    """Compile ``sources`` and ``ld -r`` them into ``out`` (a .plf)."""
    objects = []
    for source in sources:
        obj = out.with_name(source.stem + ".o")
        compiler = CROSS + ("g++" if cxx else "gcc")
        extra = ["-fno-exceptions", "-fno-rtti"] if cxx else []
        run_tool([compiler, *FLAGS, *extra, "-c", str(source), "-o", str(obj)])
        objects.append(obj)
    run_tool([CROSS + "ld", "-r", *(["-T", str(script)] if script else []), *map(str, objects),
              "-o", str(out)])
    return out


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """The static module and the partially linked modules, built once."""
    out = tmp_path_factory.mktemp("rel")
    static = out / "main.elf"
    gcc("-nostdlib", "-static", f"-Wl,-Ttext={STATIC_TEXT}", "-Wl,-e,_start",
        REL_DIR / "static.c", "-o", static)
    plfs = {
        "a": partial_link(out / "a.plf", REL_DIR / "mod_a.c"),
        "b": partial_link(out / "b.plf", REL_DIR / "mod_b.c"),
        "cpp": partial_link(out / "cpp.plf", REL_DIR / "mod_cpp.cpp", script=REL_DIR / "ctors.ld",
                            cxx=True),
    }
    # The same C as one program, for the expected results.
    whole = out / "whole.elf"
    gcc("-nostdlib", "-static", f"-Wl,-Ttext={STATIC_TEXT}", "-Wl,-e,_start",
        REL_DIR / "static.c", REL_DIR / "mod_a.c", REL_DIR / "mod_b.c", "-o", whole)
    return {"dir": out, "static": static, "whole": whole, **plfs}


def makerel(build, version: int, *names: str) -> dict[str, Path]:
    """Run ``linkload makerel`` and return the .rel of each module."""
    out = build["dir"] / f"v{version}"
    out.mkdir(exist_ok=True)
    plfs = [build[n] for n in names]
    status = cli(["makerel", str(build["static"]), *map(str, plfs), "--version", str(version),
                  "-o", str(out), "--str", str(out / "modules.str"),
                  "--import-list", str(out / "import.lst")])
    assert status == 0
    return {n: out / (build[n].stem + ".rel") for n in names}


def reports(ld: Linker) -> list[tuple[str, int]]:
    """Route OSReport to Python; returns the list it appends (message, value) to."""
    seen: list[tuple[str, int]] = []

    def os_report(emu, message, value):
        seen.append((emu.read_string(message), value))
        return 0

    ld.host_function("OSReport", os_report)
    return seen


SCRIPT = [("a_compute", 5), ("a_compute", 6), ("a_calls_b", 7), ("a_reads_b",),
          ("a_through_table", 0, 6, 7), ("a_through_table", 1, 6, 7), ("a_static_state",),
          ("a_bss_value",), ("b_calls_a", 3), ("b_count",)]


def run_script(call) -> list[int]:
    return [call(name, *args) for name, *args in SCRIPT]


@pytest.fixture(scope="module")
def expected(build):
    """The script's results from the same C linked as one program, in the same emulator."""
    ld = Linker.emulated("ppc", static=build["whole"])
    reports(ld)
    space = ld.space
    prolog_state = space.lookup("a_bss_counter")
    space.write(prolog_state, (1000).to_bytes(4, "big"))  # what A's _prolog does
    return run_script(lambda name, *args: space.call(space.lookup(name), *args))


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("order", ["a-then-b", "b-then-a"])
def test_modules_match_one_program(build, expected, version, order, chunk_rows):
    rels = makerel(build, version, "a", "b")
    ld = Linker.emulated("ppc", static=build["static"])
    reports(ld)
    first, second = ("a", "b") if order == "a-then-b" else ("b", "a")
    mods = {first: ld.link(rels[first], symbols=build[first])}
    mods[second] = ld.link(rels[second], symbols=build[second])
    mods["a"].call("_prolog")
    owner = {name: ("a" if name.startswith("a_") else "b") for name, *_ in SCRIPT}
    got = run_script(lambda name, *args: mods[owner[name]].call(name, *args))
    assert got == expected


def test_unlink_points_calls_back_at_unresolved(build, chunk_rows):
    rels = makerel(build, 3, "a", "b")
    ld = Linker.emulated("ppc", static=build["static"])
    reports(ld)
    a = ld.link(rels["a"], symbols=build["a"])
    assert a.call("a_calls_b", 4) == -99 + 1  # B not linked: A's _unresolved answers
    assert a.call("a_reads_b") == -1  # ADDR32 to B's data is 0 until B is linked
    b = ld.link(rels["b"], symbols=build["b"])
    assert a.call("a_calls_b", 4) == 17
    assert a.call("a_reads_b") == 7
    ld.unlink(b)  # OSUnlink: REL24 back to _unresolved, ADDR32 to 0
    assert a.call("a_calls_b", 4) == -98
    assert a.call("a_reads_b") == -1


def test_link_fixed_puts_bss_in_the_freed_tail(build):
    rels = makerel(build, 3, "a", "b")
    data = rels["a"].read_bytes()
    fix_size = int.from_bytes(data[0x48:0x4C], "big")
    ld = Linker.emulated("ppc", static=build["static"])
    reports(ld)
    a = ld.link(rels["a"], fixed=True, symbols=build["a"])
    bss = a.bss_range
    assert bss is not None and bss[0] == a.base + (fix_size + 31) // 32 * 32
    a.call("_prolog")
    assert a.call("a_bss_value") == 1000
    assert a.call("a_compute", 5) == 2 * 5 + 1 + 5 + 0  # static_add(10, table[1]) + scratch
    with pytest.raises(LinkError):
        ld.link(makerel(build, 2, "b")["b"], fixed=True)  # OSLinkFixed needs version 3


def test_module_in_mem2_reaches_mem1_through_veneers(build, expected, chunk_rows):
    rels = makerel(build, 3, "a", "b")
    ld = Linker.emulated("ppc", static=build["static"])
    reports(ld)
    b = ld.link(rels["b"], symbols=build["b"])
    a = ld.link(rels["a"], symbols=build["a"], at=MEM2 + 0x10_0000)
    assert a.base >= MEM2
    a.call("_prolog")
    assert a.call("a_compute", 5) == expected[0]  # calls static_add in MEM1, 256 MiB away
    site = a.address("a_compute")
    code = ld.space.read(site, 0x80)
    disasm = capstone.Cs(capstone.CS_ARCH_PPC, capstone.CS_MODE_32 | capstone.CS_MODE_BIG_ENDIAN)
    targets = [int(i.op_str, 16) for i in disasm.disasm(code, site) if i.mnemonic == "bl"]
    assert targets and all(a.base <= t < a.base + a.size for t in targets)  # via veneers
    veneer = [i.mnemonic for i in disasm.disasm(ld.space.read(targets[0], 16), targets[0])]
    assert veneer == ["lis", "addi", "mtctr", "bctr"]
    assert b.base < MEM2


def test_cpp_module_prolog_runs_constructors(build):
    rels = makerel(build, 3, "cpp")
    ld = Linker.emulated("ppc", static=build["static"])
    seen = reports(ld)
    m = ld.link(rels["cpp"], symbols=build["cpp"])
    assert m.call("cpp_value") == 0  # bss zeroed, constructor not run yet
    m.call("_prolog")
    assert seen == [("constructor ran", 42)]
    assert m.call("cpp_value") == 42


def test_misaligned_module_is_refused(build):
    rels = makerel(build, 2, "b")
    align = int.from_bytes(rels["b"].read_bytes()[0x40:0x44], "big")
    assert align >= 4
    ld = Linker.emulated("ppc", static=build["static"])
    with pytest.raises(LinkError, match="aligned"):
        ld.link(rels["b"], at=MEM2 + align // 2)
    with pytest.raises(LinkError, match="aligned"):
        ld.link(rels["b"], bss=MEM2 + 0x1000 + 1)
    assert ld.modules == []
    ld.link(rels["b"], at=MEM2 + align)  # the same module, aligned, links


def test_rel_needs_no_symbols_to_run_its_entry_points(build):
    rels = makerel(build, 3, "a", "b")
    ld = Linker.emulated("ppc", static=build["static"])
    reports(ld)
    a = ld.link(rels["a"])  # no .plf: only _prolog, _epilog and _unresolved have names
    a.call("_prolog")
    assert a.call("_unresolved") == -99
    with pytest.raises(LinkError):
        a.address("a_compute")


@pytest.fixture(autouse=True)
def _cross_compiler():
    if shutil.which(CROSS + "gcc") is None:
        from conftest import missing

        missing(f"{CROSS}gcc is not installed")


def test_str_table_leads_to_the_partial_link(build):
    rels = makerel(build, 3, "a", "b")
    strings = rels["a"].parent / "modules.str"
    ld = Linker.emulated("ppc", static=build["static"], strings=strings)
    reports(ld)
    a = ld.link(rels["a"])  # names come from a.plf, found through modules.str
    a.call("_prolog")
    assert a.call("a_bss_value") == 1000


def test_dol_static_module_with_a_symbol_list(build, expected):
    """The static module as a game ships it: a DOL, whose names come from a symbol list."""
    from linkload.formats import dol, elf

    out = build["dir"]
    dol_path = out / "main.dol"
    dol_path.write_bytes(dol.from_elf(build["static"]))
    static = elf.read(build["static"])
    defined = static.symbols["section"] != -1
    listing = [f"{int(v):08x}:{n}" for n, v, d in
               zip(static.names, static.symbols["value"], defined, strict=True) if d and n]
    symbol_list = out / "main.sym"
    symbol_list.write_text("\n".join(listing) + "\n")
    rels = makerel(build, 3, "a", "b")
    ld = Linker.emulated("ppc", static=dol_path, symbols=symbol_list)
    reports(ld)
    assert ld.lookup("static_add") == static.symbols["value"][static.find_symbol("static_add")]
    a = ld.link(rels["a"], symbols=build["a"])
    ld.link(rels["b"], symbols=build["b"])
    a.call("_prolog")
    assert a.call("a_compute", 5) == expected[0]
