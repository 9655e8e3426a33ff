"""Link-speed benchmark: linkload against LLVM RuntimeDyld (llvmlite MCJIT) and dlopen.

Generates C sources that compile to large x86-64 objects (thousands of functions and globals
that call and point at each other and libc), then measures in one run:

1. the main case (a mid-sized object): linkload's ``Linker.native().link``, RuntimeDyld's
   ``add_object_file`` + ``finalize_object``, and ``dlopen(RTLD_NOW)`` of the same sources
   built as a shared library; each link is checked by calling a generated checksum function
   and comparing with the same object linked into an ordinary executable;
2. linkload's time per relocation at three sizes (about 10k, 100k and 1M relocations);
3. the workloads of real code of ``bench/real_code.py`` (a real C library of 31 objects, the
   smallest module, the graph as it grows), unless ``--quick``.

Usage: ``python bench/link_speed.py [--quick] [--profile] [--workdir DIR]``. Generated files go
to a temporary directory, or to ``--workdir`` (``bench/.cache`` is ignored by git). Needs gcc,
binutils (ld, nm, objcopy, readelf) and llvmlite.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import io
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import real_code  # (bench/real_code.py: the workloads of real code)

import linkload
from linkload.formats import elf, read_module

CC = os.environ.get("CC", "gcc")
OPT = "-O1"
SEED = 20240601
JOBS = max(os.cpu_count() or 2, 2)
CHECKSUM = "ll_checksum"
# Relocations per generated file with the default Shape (measured with gcc 12, -O1, PIE);
# only used to pick the number of files for a target count; the real count is printed.
RELOCS_PER_FILE = 2200

FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (2_000, 10_000, 50_000)


# -- generation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """What each generated C file holds; ``files`` of them make one object."""

    files: int
    funcs: int = 50  # functions (and as many int[4] globals) per file
    ftab: int = 50  # entries of the file's function-pointer table (each called by the checksum)
    dtab: int = 100  # entries of the file's int-pointer table (used by the functions)
    ptab: int = 1000  # entries of the file's big int-pointer table (summed by the checksum)
    seed: int = SEED

    @classmethod
    def for_relocations(cls, target: int) -> Shape:
        """A shape of about ``target`` relocations (the per-file content stays the same)."""
        return cls(files=max(1, round(target / RELOCS_PER_FILE)))


def fname(i: int, j: int) -> str:
    return f"ll_f{i}_{j}"


def gname(i: int, j: int) -> str:
    return f"ll_g{i}_{j}"


def lname(i: int, j: int) -> str:
    return f"ll_s{i}_{j}"


class FileWriter:
    """Writes one generated C file (index ``i`` of ``shape.files``)."""

    def __init__(self, shape: Shape, i: int) -> None:
        self.shape, self.i = shape, i
        self.rng = random.Random(shape.seed * 1_000_003 + i)
        self.funcs: set[str] = set()
        self.globals: set[str] = set()
        self.ftab: list[str] = []

    def pick(self) -> tuple[int, int]:
        return self.rng.randrange(self.shape.files), self.rng.randrange(self.shape.funcs)

    def func_ref(self) -> str:
        name = fname(*self.pick())
        self.funcs.add(name)
        return name

    def global_ref(self) -> str:
        """``&ll_gA_B[k]``: the address of one element of a random global."""
        name = gname(*self.pick())
        self.globals.add(name)
        return f"&{name}[{self.rng.randrange(4)}]"

    def text(self) -> str:
        body = [self.globals_text(), self.tables_text()]
        body += [self.function_text(j) for j in range(self.shape.funcs)]
        body.append(self.sum_text())
        if self.i == 0:
            body.append(self.checksum_text())
        head = ["#include <stdio.h>", "#include <stdlib.h>", "#include <string.h>", ""]
        head += [f"int {f}(int);" for f in sorted(self.funcs)]
        head += [f"extern int {g}[4];" for g in sorted(self.globals)]
        return "\n".join(head + [""] + body) + "\n"

    def globals_text(self) -> str:
        lines = []
        for j in range(self.shape.funcs):
            values = ", ".join(str(self.rng.randrange(1, 1 << 20)) for _ in range(4))
            lines.append(f"int {gname(self.i, j)}[4] = {{{values}}};")
            lines.append(f'const char *{lname(self.i, j)} = "string {self.i}.{j} {"x" * (j % 13)}";')
        return "\n".join(lines)

    def tables_text(self) -> str:
        i, shape = self.i, self.shape
        self.ftab = [self.func_ref() for _ in range(shape.ftab)]
        ftab = ", ".join(self.ftab)
        dtab = ", ".join(self.global_ref() for _ in range(shape.dtab))
        ptab = ",\n  ".join(self.global_ref() for _ in range(shape.ptab))
        return (f"int (*ll_ftab{i}[])(int) = {{{ftab}}};\n"
                f"int *ll_dtab{i}[] = {{{dtab}}};\n"
                f"int *ll_ptab{i}[] = {{\n  {ptab}}};")

    def function_text(self, j: int) -> str:
        i, shape, rng = self.i, self.shape, self.rng
        other = self.global_ref()
        callee1, callee2 = self.func_ref(), self.func_ref()
        fk, dk = rng.randrange(shape.ftab), rng.randrange(shape.dtab)
        return f"""
int {fname(i, j)}(int depth)
{{
  char *p = malloc(64);
  size_t (*volatile len)(const char *) = strlen;
  int s = {gname(i, j)}[depth & 3] + *({other});
  s += snprintf(p, 64, "f{i}.{j} %d %s", depth, {lname(i, j)});
  s += (int)strlen(p) + (int)len({lname(i, j)});
  s += ll_ftab{i}[{fk}] == {self.ftab[fk]};
  memcpy(p, {lname(i, j)}, (size_t)(depth + 5));
  s += p[depth + 3];
  free(p);
  if (depth > 0) {{
    s += {callee1}(depth - 1) ^ {callee2}(depth - 1);
    s += ll_ftab{i}[(depth + {fk}) % {shape.ftab}](depth - 1);
    s += *ll_dtab{i}[(depth + {dk}) % {shape.dtab}];
  }}
  return s;
}}"""

    def sum_text(self) -> str:
        i, shape = self.i, self.shape
        calls = "\n".join(f"  s = s * 31u + (unsigned){fname(i, j)}(1);" for j in range(shape.funcs))
        return f"""
unsigned ll_sum{i}(void)
{{
  unsigned s = {i};
{calls}
  for (int k = 0; k < {shape.ftab}; k++)
    s = s * 33u + (unsigned)ll_ftab{i}[k](0);
  for (int k = 0; k < {shape.ptab}; k++)
    s = s * 37u + (unsigned)*ll_ptab{i}[k];
  return s;
}}"""

    def checksum_text(self) -> str:
        n = self.shape.files
        decls = "\n".join(f"unsigned ll_sum{k}(void);" for k in range(n))
        calls = "\n".join(f"  s = s * 41u + ll_sum{k}();" for k in range(n))
        return f"\n{decls}\n\nunsigned {CHECKSUM}(void)\n{{\n  unsigned s = 0;\n{calls}\n  return s;\n}}"


MAIN_C = f"""#include <stdio.h>
unsigned {CHECKSUM}(void);
int main(void) {{ printf("%u\\n", {CHECKSUM}()); return 0; }}
"""


def generate(shape: Shape, directory: Path) -> list[Path]:
    """Write the C files of ``shape`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(shape.files):
        path = directory / f"gen{i}.c"
        path.write_text(FileWriter(shape, i).text())
        paths.append(path)
    return paths


# -- building -------------------------------------------------------------------------------------
def run(*cmd: str | Path) -> str:
    """Run a command; its standard output (raises with its stderr on failure)."""
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{done.stderr[-4000:]}")
    return done.stdout


def compile_all(sources: list[Path], flags: tuple[str, ...], suffix: str,
                unique_labels: bool = False) -> list[Path]:
    """Compile ``sources`` with ``CC -c flags`` in parallel; the object paths."""
    objects = [s.with_suffix(suffix) for s in sources]

    def one(source: Path, obj: Path) -> None:
        run(CC, "-c", OPT, *flags, source, "-o", obj)
        if unique_labels:
            rename_local_labels(obj, source.stem)

    with ThreadPoolExecutor(JOBS) as pool:
        list(pool.map(one, sources, objects))
    return objects


def rename_local_labels(obj: Path, tag: str) -> None:
    """Give the object's ``.LC<n>`` string-literal labels names unique to this file.

    ``ld -r`` keeps these local symbols (they point into merged string sections), so the
    combined object holds several ``.LC5``; RuntimeDyld resolves a relocation against a named
    local symbol by name and picks one of them for every file (a wrong string literal, a wrong
    checksum). linkload resolves locals by symbol index and needs no renaming.
    """
    labels = [line.split()[-1] for line in run("nm", obj).splitlines()
              if line.split()[-1].startswith(".LC")]
    if labels:
        mapping = obj.with_suffix(".labels")
        mapping.write_text("".join(f"{n} {n}_{tag}\n" for n in labels))
        run("objcopy", "--redefine-syms", mapping, obj)


@dataclass
class Built:
    """The files built for one shape."""

    shape: Shape
    sources: list[Path]
    obj: Path  # all objects combined with ld -r
    expected: int  # the checksum printed by the ordinary executable
    relocations: int
    compile_seconds: float
    shared: Path | None = None


def build(shape: Shape, directory: Path, shared: bool = False) -> Built:
    """Generate, compile and combine ``shape``; also build the reference executable (and the
    shared library if asked)."""
    start = time.perf_counter()
    sources = generate(shape, directory)
    objects = compile_all(sources, (), ".o", unique_labels=True)
    obj = directory / "big.o"
    run("ld", "-r", "-o", obj, *objects)
    exe = directory / "reference"
    main_c = directory / "main.c"
    main_c.write_text(MAIN_C)
    run(CC, OPT, "-o", exe, main_c, obj)
    expected = int(run(exe).strip())
    lib = build_shared(sources, directory) if shared else None
    seconds = time.perf_counter() - start
    return Built(shape, sources, obj, expected, count_relocations(obj), seconds, lib)


def build_shared(sources: list[Path], directory: Path) -> Path:
    """The sources built as a shared library (``-fPIC``, ``-shared``)."""
    objects = compile_all(sources, ("-fPIC",), ".pic.o")
    lib = directory / "libbig.so"
    run(CC, "-shared", "-o", lib, *objects)
    return lib


def count_relocations(path: Path) -> int:
    """The relocations of the loaded sections of an object, as linkload reads them."""
    return len(elf.read(path).relocations)


def count_dynamic_relocations(path: Path) -> int:
    """The dynamic relocations of a shared library (the static link resolved the rest)."""
    return sum(" R_X86_64_" in line for line in run("readelf", "-rW", path).splitlines())


# -- measuring --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """Seconds measured by several runs, after a first (cold) run that is kept apart."""

    first: float
    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)


def measure(runs: int, once: Callable[[], float]) -> Timing:
    """Call ``once`` (which returns the seconds it measured) ``runs + 1`` times."""
    first = once()
    return Timing(first, tuple(once() for _ in range(runs)))


def check(what: str, got: int, expected: int) -> None:
    if got != expected:
        raise SystemExit(f"FAIL: {what} checksum {got:#x}, the executable says {expected:#x}")


@dataclass
class LinkloadTimes:
    link: Timing
    read: Timing


def time_linkload(built: Built, runs: int) -> LinkloadTimes:
    """Times of ``Linker.native().link(path)`` (unlinking between runs), and of reading."""
    linker = linkload.Linker.native()

    def once() -> float:
        start = time.perf_counter()
        module = linker.link(built.obj)
        seconds = time.perf_counter() - start
        got = module.function(CHECKSUM, ctypes.c_uint)()
        linker.unlink(module)
        check("linkload", got, built.expected)
        return seconds

    def read_once() -> float:
        start = time.perf_counter()
        read_module(built.obj)
        return time.perf_counter() - start

    return LinkloadTimes(measure(runs, once), measure(runs, read_once))


def time_runtimedyld(built: Built, runs: int) -> Timing:
    """Times of RuntimeDyld's ``add_object_file`` + ``finalize_object`` (fresh engine
    per run), through llvmlite's MCJIT."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()

    def once() -> float:
        # The engine owns its target machine (closing the engine frees it): a new one each run.
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target.create_target_machine())
        start = time.perf_counter()
        engine.add_object_file(str(built.obj))
        engine.finalize_object()
        seconds = time.perf_counter() - start
        address = engine.get_function_address(CHECKSUM)
        check("RuntimeDyld", ctypes.CFUNCTYPE(ctypes.c_uint)(address)(), built.expected)
        engine.close()
        return seconds

    return measure(runs, once)


def time_dlopen(built: Built, runs: int, directory: Path) -> Timing:
    """Times of ``dlopen(RTLD_NOW)`` of the shared library, each run a fresh copy."""
    assert built.shared is not None
    dlclose = ctypes.CDLL(None).dlclose
    dlclose.argtypes = [ctypes.c_void_p]
    counter = iter(range(1 << 30))

    def once() -> float:
        copy = directory / f"libbig_copy{next(counter)}.so"
        shutil.copyfile(built.shared, copy)
        start = time.perf_counter()
        lib = ctypes.CDLL(str(copy), mode=os.RTLD_NOW | os.RTLD_LOCAL)
        seconds = time.perf_counter() - start
        checksum = getattr(lib, CHECKSUM)
        checksum.restype = ctypes.c_uint
        check("dlopen", checksum(), built.expected)
        dlclose(lib._handle)
        copy.unlink()
        return seconds

    return measure(runs, once)


# -- reporting --------------------------------------------------------------------------------------
def ms(seconds: float) -> str:
    return f"{seconds * 1e3:9.1f} ms"


def row(label: str, timing: Timing, note: str = "") -> None:
    print(f"  {label:<34}{ms(timing.median)}{ms(timing.best)}{ms(timing.first)}   {note}".rstrip())


def describe(built: Built) -> str:
    s = built.shape
    size = built.obj.stat().st_size / 2**20
    return (f"{built.relocations:,} relocations, {s.files} files x {s.funcs} functions "
            f"(ftab {s.ftab}, dtab {s.dtab}, ptab {s.ptab}, seed {s.seed}), {size:.1f} MiB object, "
            f"built in {built.compile_seconds:.1f} s, checksum {built.expected:#x}")


def compare(built: Built, runs: int, directory: Path) -> None:
    """Part 1: linkload, RuntimeDyld and dlopen on the main object."""
    print(f"\n== Main case: {describe(built)}")
    ll = time_linkload(built, runs)
    rtdyld = time_runtimedyld(built, runs)
    dl = time_dlopen(built, runs, directory)
    dynamic = count_dynamic_relocations(built.shared) if built.shared else 0
    print(f"  {'':<34}{'median':>12}{'min':>12}{'first run':>12}   (then {runs} runs)")
    rest = ll.link.median - ll.read.median
    row("linkload Linker.link", ll.link,
        f"median read_module {ms(ll.read.median).strip()}, rest {ms(rest).strip()}")
    row("RuntimeDyld add_object+finalize", rtdyld, "fresh MCJIT engine per run")
    row("dlopen RTLD_NOW (.so, -fPIC)", dl, f"{dynamic:,} dynamic relocations, fresh copy per run")
    print(f"  linkload / RuntimeDyld  {ll.link.median / rtdyld.median:6.3f}x   (medians; goal <= 0.1x)")
    print(f"  linkload / dlopen       {ll.link.median / dl.median:6.3f}x")
    print("  all checksums match the executable")
    print("  (.LC labels renamed per file before ld -r: see rename_local_labels)")


def scaling(builds: list[Built], runs: int) -> None:
    """Part 2: linkload's time per relocation at each size."""
    print("\n== linkload time per relocation")
    print(f"  {'relocations':>12}{'median':>12}{'min':>12}{'first run':>12}"
          f"{'ns/reloc':>10}{'(min)':>8}{'read':>12}  runs")
    medians, bests = [], []
    for built in builds:
        n = runs if built.relocations < 500_000 else max(3, runs - 2)
        t = time_linkload(built, n)
        medians.append(t.link.median / built.relocations)
        bests.append(t.link.best / built.relocations)
        print(f"  {built.relocations:>12,}{ms(t.link.median)}{ms(t.link.best)}{ms(t.link.first)}"
              f"{medians[-1] * 1e9:10.1f}{bests[-1] * 1e9:8.1f}{ms(t.read.median)}  1+{n}")
    print(f"  ns/relocation largest / smallest: {medians[-1] / medians[0]:.2f}x median, "
          f"{bests[-1] / bests[0]:.2f}x min   (goal <= 1.5x)")


def profile(built: Built, top: int = 15) -> None:
    """cProfile of one linkload link of ``built``: the top functions by cumulative and own time."""
    linker = linkload.Linker.native()
    linker.unlink(linker.link(built.obj))  # warm up
    profiler = cProfile.Profile()
    profiler.enable()
    module = linker.link(built.obj)
    profiler.disable()
    linker.unlink(module)
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(key)
        stats.print_stats(top)
        print(f"\n== Profile of linkload's link of {built.relocations:,} relocations "
              f"({stats.total_tt * 1e3:.0f} ms under cProfile), top {top} by {key}")
        text = out.getvalue()
        print(text[text.index("   ncalls"):].rstrip())


# -- main ---------------------------------------------------------------------------------------------
@contextmanager
def workdir(path: str | None) -> Iterator[Path]:
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
    else:
        with tempfile.TemporaryDirectory(prefix="linkload-bench-") as tmp:
            yield Path(tmp)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--profile", action="store_true",
                        help="also profile linkload's link of the largest object")
    parser.add_argument("--workdir", help="keep the generated files here (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    runs = 3 if args.quick else 7
    print(f"linkload link-speed benchmark ({'quick' if args.quick else 'full'}); {CC} {OPT}, "
          f"{JOBS} jobs, Python {sys.version.split()[0]}")
    with workdir(args.workdir) as root:
        builds = []
        for k, target in enumerate(sizes):
            shape = Shape.for_relocations(target)
            builds.append(build(shape, root / f"r{target}", shared=(k == 1)))
            print(f"  built ~{target:,}: {describe(builds[-1])}", flush=True)
        compare(builds[1], runs, root)
        scaling(builds, runs)
        if not args.quick:
            real_code.run(root / "real", runs)
        if args.profile:
            profile(builds[-1])


if __name__ == "__main__":
    main()
