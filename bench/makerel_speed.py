"""makerel speed: build RELs from a large generated PowerPC module.

Generates assembly for a module of ``--functions`` functions (12 relocations each: its own
data, the static module's data and functions, another module's data and functions, a branch to
itself resolved in the file, a data table of pointers), a small second module and the static
module's symbol list, assembles and partially links them with the PowerPC cross binutils, and
times ``linkload.tools.build`` for REL versions 1, 2 and 3. The relocation count is printed
with the times.

The second part links the built RELs (version 3) into a fresh emulated Wii (unicorn) whose
static module is the symbol list, and times it.

The third part times the commands as processes, as a build system runs them (best and median
wall-clock time, and the CPU time the process used, over ``--process-repeat`` runs each):
``linkload makerel`` (of both modules; of the big one as pyelf2rel is run; of the small one)
and ``linkload dump``, pyelf2rel (``pip install pyelf2rel``, the ``bench`` extra) building
the big and the small module from the same plfs and an LST naming the same static-module and
other-module symbols, and the floor every Python command pays, ``python -c pass`` (and
``python -c "import numpy"``, with numpy's OpenBLAS starting a thread per CPU, and with the
one thread the linkload command asks for). The processes run with bytecode caching on (as
installed packages have it), after one warm-up run each. The C++ ``elf2rel`` of ttyd-tools
is not measured: it cannot be fetched here.

Usage: ``python bench/makerel_speed.py [--functions N] [--repeat R] [--process-repeat P]
[--processes-only] [--profile] [--workdir DIR]``. Needs ``powerpc-linux-gnu-as`` and
``powerpc-linux-gnu-ld``.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import linkload
from linkload.formats import elf
from linkload.tools import MakerelResult, build

AS, LD = "powerpc-linux-gnu-as", "powerpc-linux-gnu-ld"
STATIC_FUNCS, STATIC_VARS, OTHER = 512, 512, 256
RELOCS_PER_FUNCTION = 12


# -- generation ---------------------------------------------------------------------------------
def big_module(functions: int) -> str:
    """Assembly of the large module (``RELOCS_PER_FUNCTION`` relocations per function), with
    the ``_prolog``, ``_epilog`` and ``_unresolved`` every module has (pyelf2rel insists)."""
    out = ["\t.text"]
    for name in ("_prolog", "_epilog", "_unresolved"):
        out += [f"\t.globl {name}", f"{name}:", "\tblr"]
    for i in range(functions):
        k, j = i % STATIC_FUNCS, i % OTHER
        out += [f"\t.globl fn_{i}", f"fn_{i}:",
                f"\tlis 3, table_{i}@ha", f"\taddi 3, 3, table_{i}@l",
                f"\tlis 4, dol_var{i % STATIC_VARS}@ha", f"\tlwz 4, dol_var{i % STATIC_VARS}@l(4)",
                f"\tbl dol_func{k}", f"\tbl other_fn_{j}", f"\tbl fn_{(i + 1) % functions}",
                f"\tlis 5, other_data_{j}@ha", f"\taddi 5, 5, other_data_{j}@l", "\tblr"]
    out += ["\t.data", "\t.align 2"]
    for i in range(functions):
        out += [f"table_{i}:", f"\t.long fn_{i}, dol_var{i % STATIC_VARS}, other_data_{i % OTHER}"]
    return "\n".join(out) + "\n"


def other_module() -> str:
    """Assembly of the second module: the functions and data the big one calls (and the entry
    points: pyelf2rel fails without ``_unresolved``)."""
    out = ["\t.text"]
    for name in ("_prolog", "_epilog", "_unresolved"):
        out += [f"\t.globl {name}", f"{name}:", "\tblr"]
    for j in range(OTHER):
        out += [f"\t.globl other_fn_{j}", f"other_fn_{j}:", "\tblr"]
    out += ["\t.data"]
    for j in range(OTHER):
        out += [f"\t.globl other_data_{j}", f"other_data_{j}:", f"\t.long {j}"]
    out += ["other_table:", "\t.long other_fn_0, dol_func0"]  # pyelf2rel fails without relocations
    return "\n".join(out) + "\n"


def static_symbols() -> str:
    """The static module as an ``address:name`` list."""
    lines = [f"{0x80004000 + 16 * k:08x}:dol_func{k}" for k in range(STATIC_FUNCS)]
    lines += [f"{0x80200000 + 4 * v:08x}:dol_var{v}" for v in range(STATIC_VARS)]
    return "\n".join(lines) + "\n"


def lst_symbols(other_plf: Path, other_id: int) -> str:
    """The static module's symbols and the other module's as an LST (pyelf2rel, makelst):
    ``address:name`` and ``module_id,section,offset:name`` lines."""
    other = elf.read(other_plf)
    rows = [r for r in other.exports().values() if other.symbols["section"][r] >= 0]
    lines = [f"{other_id},{other.sections[int(other.symbols['section'][r])].index},"
             f"{int(other.symbols['value'][r]):08x}:{other.symbol_name(r)}" for r in rows]
    return static_symbols() + "\n".join(lines) + "\n"


def prepare(workdir: Path, functions: int) -> tuple[list[Path], Path, int]:
    """The plfs, the symbol list and the number of ELF relocations in the big plf."""
    for tool in (AS, LD):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    sources = {"big": big_module(functions), "other": other_module()}
    plfs = []
    for name, text in sources.items():
        (workdir / f"{name}.s").write_text(text)
        subprocess.run([AS, f"{name}.s", "-o", f"{name}.o"], cwd=workdir, check=True)
        subprocess.run([LD, "-r", f"{name}.o", "-o", f"{name}.plf"], cwd=workdir, check=True)
        plfs.append(workdir / f"{name}.plf")
    symbols = workdir / "static.sym"
    symbols.write_text(static_symbols())
    (workdir / "all.lst").write_text(lst_symbols(plfs[1], 2))
    count = len(elf.read(plfs[0]).relocations)
    return plfs, symbols, count


# -- the two halves -----------------------------------------------------------------------------
def time_makerel(plfs: list[Path], symbols: Path, version: int, repeat: int
                 ) -> tuple[list[float], MakerelResult]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = build(None, plfs, symbols=symbols, version=version)
        times.append(time.perf_counter() - start)
    return times, result


def link_in_emulated_space(result: MakerelResult, symbols: Path, workdir: Path,
                           repeat: int) -> list[float]:
    """Seconds to link the built RELs (the small module, then the big one that calls into it)
    into a fresh emulated Wii whose static module is ``symbols``, ``repeat`` times."""
    from linkload import Linker
    from linkload.formats import symtab

    paths = []
    for rel in result.rels:
        path = workdir / f"{Path(rel.plf).stem}.rel"
        path.write_bytes(rel.data)
        paths.append(path)
    times = []
    for _ in range(repeat):
        ld = Linker.emulated("ppc")
        ld.space.load_static(symtab.read(symbols))
        start = time.perf_counter()
        for path in reversed(paths):
            ld.link(path)
        times.append(time.perf_counter() - start)
    return times


# -- the commands as processes ------------------------------------------------------------------
@dataclass(frozen=True)
class ProcessTimes:
    """Seconds of one command over several runs: wall-clock and CPU (user + system)."""

    wall: list[float]
    cpu: list[float]

    def line(self, label: str, floor: ProcessTimes | None = None) -> str:
        text = (f"{label:<44} wall best {min(self.wall) * 1e3:6.0f} ms, median "
                f"{statistics.median(self.wall) * 1e3:6.0f} ms; CPU best {min(self.cpu) * 1e3:6.0f} ms")
        if floor is not None:
            text += f" ({min(self.wall) / min(floor.wall):.1f}x python -c pass)"
        return text


def run_process(command: list[str], cwd: Path, env: dict[str, str], repeat: int
                ) -> ProcessTimes | None:
    """Run ``command`` once to warm up (and write bytecode caches), then ``repeat`` times;
    None if it fails (an older linkload without the option, say)."""
    warm_up = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    if warm_up.returncode:
        return None
    wall, cpu = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return ProcessTimes(wall, cpu)


def process_environment() -> dict[str, str]:
    """The environment of the timed processes: this linkload first on the path, bytecode
    caching on."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    source = str(Path(linkload.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([source] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def process_commands(workdir: Path) -> dict[str, list[str]]:
    """Label -> command line of every command timed as a process."""
    python = sys.executable
    linkload_cli = [python, "-m", "linkload.cli"]
    out_dir = workdir / "process-out"
    commands = {
        "python -c pass": [python, "-c", "pass"],
        'python -c "import numpy"': [python, "-c", "import numpy"],
        "... with one BLAS thread (as linkload asks)": [
            python, "-c", "import os; os.environ['OPENBLAS_NUM_THREADS'] = '1'; import numpy"],
        "linkload makerel big.plf other.plf --symbols": [
            *linkload_cli, "makerel", "big.plf", "other.plf", "--symbols", "static.sym",
            "-o", str(out_dir)],
        "linkload makerel big.plf all.lst big.rel": [
            *linkload_cli, "makerel", "big.plf", "all.lst", "big-linkload.rel", "--rel-id", "1",
            "--no-str", "--no-import-list"],
        "linkload makerel other.plf (small)": [
            *linkload_cli, "makerel", "other.plf", "all.lst", "other-linkload.rel", "--rel-id",
            "2", "--no-str", "--no-import-list"],
        "linkload dump other.rel (small)": [*linkload_cli, "dump", str(out_dir / "other.rel")],
        "linkload dump big.rel": [*linkload_cli, "dump", str(out_dir / "big.rel")],
    }
    if importlib.util.find_spec("pyelf2rel") is not None:
        pyelf2rel = [python, "-c", "from pyelf2rel.elf2rel import entry; entry()"]
        commands["pyelf2rel big.plf all.lst big.rel"] = [
            *pyelf2rel, "big.plf", "all.lst", "big-pyelf2rel.rel", "--rel-id", "1"]
        commands["pyelf2rel other.plf (small)"] = [
            *pyelf2rel, "other.plf", "all.lst", "other-pyelf2rel.rel", "--rel-id", "2"]
    return commands


def time_processes(workdir: Path, repeat: int) -> None:
    env = process_environment()
    floor = None
    for label, command in process_commands(workdir).items():
        times = run_process(command, workdir, env, repeat)
        if times is None:
            print(f"{label:<44} fails (not supported by this linkload?)")
            continue
        print(times.line(label, floor))
        floor = floor or times
    if importlib.util.find_spec("pyelf2rel") is None:
        print("pyelf2rel is not installed (pip install pyelf2rel, or the bench extra): not timed")


def time_in_process(plfs: list[Path], symbols: Path, count: int, workdir: Path,
                    ns: argparse.Namespace) -> None:
    """The first two parts: ``build`` of each REL version, then the link in unicorn."""
    result = None
    for version in (1, 2, 3):
        times, result = time_makerel(plfs, symbols, version, ns.repeat)
        big = result.rels[0]
        print(f"makerel v{version}: {count:,} relocations -> {big.relocations:,} REL entries "
              f"+ {big.resolved_in_file:,} resolved in the file, {len(big.data):,} bytes; "
              f"best {min(times) * 1e3:.1f} ms, median {statistics.median(times) * 1e3:.1f} "
              f"ms ({min(times) / count * 1e9:.0f} ns per relocation)")
    if ns.profile:
        profile = cProfile.Profile()
        profile.runcall(build, None, plfs, symbols=symbols, version=3)
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(25)
        print(text.getvalue())
    times = link_in_emulated_space(result, symbols, workdir, ns.repeat)
    entries = sum(r.relocations for r in result.rels)
    print(f"link in the emulated space (OSLink of both modules): best {min(times) * 1e3:.1f} "
          f"ms, median {statistics.median(times) * 1e3:.1f} ms for {entries:,} REL entries "
          f"({min(times) / entries * 1e9:.0f} ns per entry)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", type=int, default=5000,
                        help=f"functions in the big module ({RELOCS_PER_FUNCTION} relocations "
                             "each; default 5000, about 60,000 relocations)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--process-repeat", type=int, default=10,
                        help="runs of each command timed as a process (default 10)")
    parser.add_argument("--processes-only", action="store_true",
                        help="time only the commands as processes")
    parser.add_argument("--profile", action="store_true", help="profile one version-3 build")
    parser.add_argument("--workdir", type=Path, help="keep the generated files here")
    ns = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = ns.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        plfs, symbols, count = prepare(workdir, ns.functions)
        print(f"big module: {ns.functions} functions, {count:,} ELF relocations")
        if not ns.processes_only:
            time_in_process(plfs, symbols, count, workdir, ns)
        print("commands as processes (linkload from "
              f"{Path(linkload.__file__).resolve().parent.parent}):")
        time_processes(workdir, ns.process_repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
