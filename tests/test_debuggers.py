"""Debuggers and profilers see linked modules: GDB's JIT interface and perf's map.

The symbol files handed to the debugger are read back from the descriptor's list and checked
with pyelftools and binutils' ``addr2line`` (independently of linkload's own ELF code); real
gdb, in batch mode, stops at a module's function by name, names its frames with their source
lines, and forgets them once the module is unlinked. perf's map is read back; real ``perf``
is run only where the machine lets it record.
"""

from __future__ import annotations

import ctypes
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

import linkload
from conftest import C_DIR, require_tool
from elfutil import patch_reloc
from linkload import Linker, arch
from linkload.formats.elf import ElfFile
from linkload.formats.elf_write import symbol_file
from linkload.model import FUNC, GLOBAL, SYMBOL_DTYPE, Module, Section, SectionKind
from linkload.space import debuggers
from linkload.space.debuggers import JitInterface, jit_interface, perf_map_path

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64",
    reason="the native space runs on x86-64 Linux",
)

SOURCES = ("debuggee.c", "debuggee_caller.c")
DEBUG_FLAGS = {
    "O0": ("-g", "-O0"),
    "O2": ("-g", "-O2", "-fno-inline"),
    "dwarf4": ("-g", "-gdwarf-4", "-O1", "-fno-inline"),
    "compressed": ("-g", "-gz", "-O0"),  # zlib-compressed debug sections
    "function-sections": ("-g", "-O2", "-fno-inline", "-ffunction-sections"),
}


def source_line(source: str, text: str) -> int:
    """The number of the first line of ``tests/c/source`` that contains ``text``."""
    lines = (C_DIR / source).read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if text in line)


def interface() -> JitInterface:
    return jit_interface(arch.host(), os.sysconf("SC_PAGE_SIZE"))


def symbol_files_since(before: list[tuple[int, int]]) -> list[bytes]:
    """The symbol files registered since the descriptor's list was ``before``."""
    return [ctypes.string_at(address, size) for address, size in interface().entries()
            if (address, size) not in before]


def elf(data: bytes) -> ELFFile:
    return ELFFile(io.BytesIO(data))


def defines(symbol_file: bytes, name: str) -> bool:
    return any(s.name == name and s["st_shndx"] != "SHN_UNDEF"
               for s in elf(symbol_file).get_section_by_name(".symtab").iter_symbols())


@pytest.fixture
def debuggee(host) -> list[Path]:
    return host.compile_all(SOURCES, DEBUG_FLAGS["O0"])


# -- the interface itself ------------------------------------------------------------------------
def test_the_jit_interface_library_defines_what_a_debugger_looks_for():
    jit = interface()
    library = elf(jit.path.read_bytes())
    assert library.header.e_type == "ET_DYN"
    symbols = {s.name: s for s in library.get_section_by_name(".dynsym").iter_symbols()}
    code, descriptor = symbols["__jit_debug_register_code"], symbols["__jit_debug_descriptor"]
    assert code["st_info"]["type"] == "STT_FUNC" and code["st_info"]["bind"] == "STB_GLOBAL"
    assert library.get_section(code["st_shndx"])["sh_flags"] & 0x4  # executable
    assert descriptor["st_info"]["type"] == "STT_OBJECT" and descriptor["st_size"] == 24
    assert library.get_section(descriptor["st_shndx"])["sh_flags"] & 0x1  # writable
    loaded = ctypes.CDLL(str(jit.path))  # the same object: dlopen hands back the one loaded
    version = ctypes.c_uint32.in_dll(loaded, "__jit_debug_descriptor").value
    assert version == 1
    assert not jit.path.parent.stat().st_mode & 0o022  # nobody else may swap the library


def test_a_linked_module_gives_the_debugger_one_symbol_file_per_object(debuggee):
    before = interface().entries()
    ld = Linker.native(debugger=True)
    module = ld.link(debuggee, name="debuggee")
    files = [elf(data) for data in symbol_files_since(before)]
    assert len(files) == 2
    named = {}
    for f in files:
        assert f.header.e_type == "ET_EXEC"
        for sec in f.iter_sections():
            if not sec["sh_flags"] & 0x2:  # (not loaded: debug sections, tables)
                continue
            assert sec["sh_addr"] in [a for a in module.section_addresses if a is not None]
            if sec.name == ".eh_frame":  # the unwind tables, as relocated in memory
                assert sec.data() == ctypes.string_at(sec["sh_addr"], sec["sh_size"])
            else:
                assert sec["sh_type"] == "SHT_NOBITS"
        named.update({s.name: s for s in f.get_section_by_name(".symtab").iter_symbols()
                      if s.name})
    for name in ("ll_debuggee_scale", "ll_debuggee_spin", "ll_debuggee_twice",
                 "ll_debuggee_total"):
        assert named[name]["st_value"] == module.address(name), name
    assert named["ll_debuggee_total"]["st_info"]["type"] == "STT_OBJECT"
    ld.unlink(module)


@pytest.mark.parametrize("flags", DEBUG_FLAGS, ids=list(DEBUG_FLAGS))
def test_symbol_files_carry_the_dwarf_line_tables_relocated_for_where_the_module_is(host, flags):
    """addr2line reads the same function and source line at a run-time address in the symbol
    file as at the same place in the object file (where binutils relocates the DWARF)."""
    objects = host.compile_all(SOURCES, DEBUG_FLAGS[flags])
    before = interface().entries()
    ld = Linker.native(debugger=True, place_near=None)
    module = ld.link(objects, name="debuggee")
    files = symbol_files_since(before)
    for function, origin in (("ll_debuggee_scale", 0), ("ll_debuggee_spin", 0),
                             ("ll_debuggee_twice", 1)):
        (data,) = [f for f in files if defines(f, function)]
        path = Path(host.workdir) / f"{function}.{flags}.symbols"
        path.write_bytes(data)
        row = module.module.find_symbol(function)
        symbol = module.module.symbols[row]
        section = module.module.sections[int(symbol["section"])].name
        offsets = [int(symbol["value"]) + k for k in (0, int(symbol["size"]) // 2,
                                                      int(symbol["size"]) - 1)]
        in_object = addr2line(objects[origin], offsets, section)
        assert "??" not in in_object
        assert in_object[0] == function
        shift = module.address(function) - int(symbol["value"])
        assert addr2line(path, [shift + o for o in offsets]) == in_object
    ld.unlink(module)


def addr2line(path: Path, addresses: list[int], section: str | None = None) -> list[str]:
    """Function and file:line of each address (in ``section`` of an object file)."""
    command = [require_tool("addr2line"), "-f", "-e", str(path)]
    command += ["-j", section] if section else []
    done = subprocess.run(command + [hex(a) for a in addresses], capture_output=True, text=True,
                          check=True)
    return done.stdout.split()


def test_a_common_block_is_named_once_at_its_address(host):
    objects = host.compile_all(["pair_a.c", "pair_b.c"], ["-g", "-O2", "-fcommon"])
    before = interface().entries()
    ld = Linker.native(debugger=True)
    module = ld.link(objects, name="pair")
    named = [s for data in symbol_files_since(before)
             for s in elf(data).get_section_by_name(".symtab").iter_symbols()
             if s.name == "shared_counter"]
    assert len(named) == 1  # (both objects declare it)
    assert named[0]["st_value"] == module.address("shared_counter")
    assert named[0]["st_shndx"] == "SHN_ABS"
    ld.unlink(module)


def test_unlink_and_reload_take_the_symbol_files_back(debuggee):
    before = interface().entries()
    ld = Linker.native(debugger=True)
    old = ld.link(debuggee, name="debuggee")
    new = ld.reload(old, debuggee)
    files = symbol_files_since(before)
    assert len(files) == 2  # the new module's two objects; the old one's are gone
    addresses = {s["st_value"] for data in files
                 for s in elf(data).get_section_by_name(".symtab").iter_symbols()
                 if s.name == "ll_debuggee_scale"}
    assert addresses == {new.address("ll_debuggee_scale")} != {old.address("ll_debuggee_scale")}
    ld.unlink(new)
    assert symbol_files_since(before) == []


def test_by_default_modules_go_to_the_debugger_once_one_watches(debuggee, monkeypatch):
    before = interface().entries()
    ld = Linker.native()  # debugger="auto"
    first = ld.link(debuggee[0], name="first")
    assert symbol_files_since(before) == []  # nobody watches: nothing is built
    monkeypatch.setattr(JitInterface, "watched", lambda self: True)  # as gdb's breakpoint says
    second = ld.link(debuggee[1], name="second")
    assert len(symbol_files_since(before)) == 2  # the first module too, once somebody watches
    ld.unlink(first)
    ld.unlink(second)
    assert symbol_files_since(before) == []


def test_debug_sections_that_cannot_be_read_leave_the_symbols(host, tmp_path):
    good = host.compile(C_DIR / "debuggee.c", DEBUG_FLAGS["O0"]).read_bytes()
    broken = patch_reloc(good, ".rela.debug_info", 0, r_offset=1 << 20)
    before = interface().entries()
    ld = Linker.native(debugger=True)
    with pytest.warns(UserWarning, match="debug information is left out.*beyond the section"):
        module = ld.link(broken, name="broken")
    (data,) = symbol_files_since(before)
    names = [s.name for s in elf(data).iter_sections()]
    assert ".symtab" in names and ".debug_info" not in names
    ld.unlink(module)


def test_a_symbol_file_of_more_sections_than_section_numbers_hold():
    """Past 0xff00 sections, ELF's extended numbering: the count and the symbols' section
    numbers move to tables of their own."""
    count = 0xFF10
    sections = [Section(f".text.f{i}", SectionKind.TEXT, 16, 16) for i in range(count)]
    symbols = np.zeros(2, SYMBOL_DTYPE)
    symbols["name"], symbols["section"], symbols["bind"], symbols["type"] = [0, 1], [-1, count - 1], \
        [0, GLOBAL], [0, FUNC]
    module = Module("many", "x86_64", sections=sections, symbols=symbols, strtab=b"\0last\0")
    addresses = [0x10000 + 16 * i for i in range(count)]
    data = symbol_file(arch.host(), module, 0, addresses,
                       np.array([0, addresses[-1]], np.int64), lambda a, n: bytes(n))
    reread = ElfFile(data)
    assert len(reread.sections) == 1 + count + 4  # and .symtab, .symtab_shndx, .strtab, .shstrtab
    last = int(np.flatnonzero(reread.symbols["value"] == addresses[-1])[0])
    assert reread.names[int(reread.symbol_shndx[last])] == f".text.f{count - 1}"
    assert int(reread.sections["addr"][int(reread.symbol_shndx[last])]) == addresses[-1]


# -- perf ------------------------------------------------------------------------------------------
@pytest.fixture
def perf_map() -> Iterator[Path]:
    """This process's perf map, removed afterwards unless it was there before."""
    path = Path(perf_map_path())
    existed = path.exists()
    yield path
    if not existed:
        path.unlink(missing_ok=True)


def test_perf_map_names_every_function_of_every_module(debuggee, perf_map):
    path = perf_map
    ld = Linker.native(perf_map=True, debugger=False)
    module = ld.link(debuggee, name="debuggee")
    lines = [line.split(" ", 2) for line in path.read_text().splitlines()]
    mine = {name: (int(start, 16), int(size, 16)) for start, size, name in lines
            if module.base <= int(start, 16) < module.base + module.size}
    assert set(mine) == {"ll_debuggee_scale", "ll_debuggee_spin", "ll_debuggee_twice"}
    for name, (start, size) in mine.items():
        row = module.module.find_symbol(name)
        assert (start, size) == (module.address(name), int(module.module.symbols["size"][row]))
    ld.unlink(module)
    assert path.read_text().count("ll_debuggee_scale") >= 1  # perf reads it after the process


PERF_SCRIPT = """
import os, sys
from linkload import Linker
ld = Linker.native(perf_map=True)
module = ld.link(sys.argv[1:], name="debuggee")
module.call("ll_debuggee_spin", 300_000_000)
print(os.getpid())
"""


def test_perf_names_the_functions_of_linked_modules(debuggee, tmp_path):
    """Real perf, where it is installed and may record this user's processes (it needs no
    set-up script; a machine whose kernel forbids recording skips this test, CI or not)."""
    perf = require_perf()
    script, data = tmp_path / "spin.py", tmp_path / "perf.data"
    script.write_text(PERF_SCRIPT)
    record = subprocess.run([perf, "record", "-q", "-o", str(data), "--", sys.executable,
                             str(script), *map(str, debuggee)], capture_output=True, text=True,
                            env=python_environment(), timeout=300)
    if record.returncode or not data.exists():
        pytest.skip(f"perf record is not permitted here: {record.stderr.strip()[:200]}")
    report = subprocess.run([perf, "report", "-i", str(data), "--stdio", "--sort", "symbol"],
                            capture_output=True, text=True, timeout=300).stdout
    Path(f"/tmp/perf-{record.stdout.split()[-1]}.map").unlink()  # (the child's map: read)
    hottest = next(line for line in report.splitlines() if line.strip() and line[0] != "#")
    assert "ll_debuggee_spin" in hottest


def require_perf() -> str:
    perf = shutil.which("perf")
    if perf is None or subprocess.run([perf, "--version"], capture_output=True).returncode:
        pytest.skip("perf is not installed (it is optional)")
    return perf


# -- gdb -------------------------------------------------------------------------------------------
GDB_SCRIPT = """
import os, signal, sys
from linkload import Linker

objects = sys.argv[1:]
ld = Linker.native()  # debugger="auto": gdb watches from the start
module = ld.link(objects, name="debuggee")
print("first", module.call("ll_debuggee_twice", 2), flush=True)
module = ld.reload(module, objects)
print("second", module.call("ll_debuggee_twice", 2), flush=True)
ld.unlink(module)
os.kill(os.getpid(), signal.SIGTRAP)  # gdb looks around once the module is gone
print("done", flush=True)
"""


def python_environment() -> dict[str, str]:
    """The environment of a child Python that imports this linkload."""
    src = str(Path(linkload.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (src, os.environ.get("PYTHONPATH")) if p)}


def run_gdb(script: Path, args: list[str], *steps: str) -> list[str]:
    """Run ``python script args`` under gdb in batch mode; the output of each of ``steps``
    (gdb commands), in order."""
    gdb = require_tool("gdb")
    command = [gdb, "-nx", "-batch", "-iex", "set auto-load no",
               "-iex", "set debuginfod enabled off", "-ex", "set breakpoint pending on",
               "-ex", "set pagination off", "-ex", "set width 0"]
    for i, step in enumerate(steps):
        command += ["-ex", f"echo \\n@@step {i}\\n", "-ex", step]
    command += ["-ex", "echo \\n@@end\\n", "--args", sys.executable, str(script), *args]
    out = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=python_environment(), timeout=300).stdout
    parts = re.split(r"^@@step \d+$", out.split("@@end")[0], flags=re.M)[1:]
    assert len(parts) == len(steps), out
    return parts


def test_gdb_stops_at_module_functions_by_name_and_names_their_frames(debuggee, tmp_path):
    script = tmp_path / "debuggee_run.py"
    script.write_text(GDB_SCRIPT)
    scale_line = source_line("debuggee.c", "scale: first line")
    call_line = source_line("debuggee_caller.c", "twice: the call")
    outputs = run_gdb(script, [str(p) for p in debuggee],
                      "break ll_debuggee_scale", "run", "bt", "continue", "bt", "continue",
                      "info breakpoints", "info line ll_debuggee_scale", "bt", "continue")
    (_, first_stop, first_bt, _, second_bt, after_unlink, breakpoints, line, last_bt,
     end) = outputs
    assert re.search(rf"Breakpoint 1, ll_debuggee_scale \(x=2\) at .*debuggee\.c:{scale_line}",
                     first_stop), first_stop
    frames = []
    for bt in (first_bt, second_bt):
        assert re.search(rf"#0 +ll_debuggee_scale \(x=2\) at \S*debuggee\.c:{scale_line}", bt), bt
        caller = re.search(rf"#1 +(0x[0-9a-f]+) in ll_debuggee_twice \(x=2\) at "
                           rf"\S*debuggee_caller\.c:{call_line}", bt)
        assert caller, bt
        frames.append(caller.group(1))
    assert frames[0] != frames[1]  # the reloaded module, where it now is
    # unlinked: the breakpoint waits for a module that defines the function again
    assert "SIGTRAP" in after_unlink
    assert "Cannot remove breakpoints" not in after_unlink
    assert "Error removing breakpoint" not in after_unlink
    assert re.search(r"<PENDING> +ll_debuggee_scale", breakpoints), breakpoints
    assert 'Function "ll_debuggee_scale" not defined' in line, line
    assert "ll_debuggee" not in last_bt
    assert "exited normally" in end, end


def test_no_warnings_when_nothing_goes_wrong(debuggee, perf_map):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ld = Linker.native(debugger=True, perf_map=True)
        ld.unlink(ld.link(debuggee, name="debuggee"))


def test_debugger_must_be_a_known_mode():
    with pytest.raises(linkload.LinkError, match="debugger must be"):
        Linker.native(debugger="sometimes")


def test_without_a_place_for_the_library_debuggers_are_an_error_or_a_warning(
        debuggee, tmp_path, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(debuggers, "_INTERFACES", {})  # as in a fresh process
    monkeypatch.setattr(debuggers, "_library_folders", lambda: [blocked / "linkload"])
    with pytest.raises(linkload.DebuggerError, match="cannot provide GDB's JIT interface"):
        Linker.native(debugger=True)
    with pytest.warns(UserWarning, match="debuggers will not see linked modules"):
        ld = Linker.native()
    module = ld.link(debuggee, name="debuggee")
    assert module.call("ll_debuggee_twice", 2) == 14
    ld.unlink(module)


def test_the_library_folder_must_be_private(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(PermissionError):
        debuggers._private_folder(shared)
