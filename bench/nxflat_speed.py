"""NXFLAT speed: build and load a large generated program.

Generates C for a program of ``--functions`` functions and as many variables: each function
reads its variable through the GOT (one GOT word each), and two tables in .data point at every
variable (REL32D) and every function (REL32I), so the program has about 3 relocations per
function (over 10,000 with the default 3,500). It is compiled with NuttX's flags by
``arm-none-eabi-gcc``, then timed: ``linkload nxflat`` (the build), ``Linker.load`` into an
emulated Cortex-M3 (shared I-space, D-space, imports, relocations, callback trampolines),
``exec`` (main walks both tables, so every relocated word is checked), and ``unload``.

Usage: ``python bench/nxflat_speed.py [--functions N] [--repeat R] [--profile]
[--workdir DIR]``. Needs ``arm-none-eabi-gcc``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from linkload import Linker
from linkload.formats import nxflat as nxflat_format
from linkload.tools import nxflat

CC = "arm-none-eabi-gcc"
FLAGS = ("-mcpu=cortex-m3", "-mthumb", "-Os", "-fno-common", "-fomit-frame-pointer",
         "-mfloat-abi=soft", "-fpic", "-msingle-pic-base", "-mpic-register=r10",
         "-mno-pic-data-is-text-relative")


def program(functions: int) -> str:
    """C of the program: ``functions`` functions and variables, two tables of pointers, and
    a main that sums every variable through both."""
    out = ["extern void report(const char *msg, int value);"]
    out += [f"int v_{i} = {i};" for i in range(functions)]
    out += [f"int f_{i}(void) {{ return v_{i} + 1; }}" for i in range(functions)]
    out.append("int *const vars[] = {" + ", ".join(f"&v_{i}" for i in range(functions)) + "};")
    out.append("int (*const funcs[])(void) = {" + ", ".join(f"f_{i}" for i in range(functions))
               + "};")
    out.append(f"""
int main(int argc, char **argv)
{{
    int sum = 0;
    for (int i = 0; i < {functions}; i++)
        sum += *vars[i] - funcs[i]();
    report("sum", sum);
    return sum;  /* -{functions} */
}}""")
    return "\n".join(out) + "\n"


def timed(function, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", type=int, default=3500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="profile the build and the load")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if shutil.which(CC) is None:
        print(f"{CC} is not installed (scripts/install-deps installs it)", file=sys.stderr)
        return 1
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nxflat-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    source, obj = workdir / "big.c", workdir / "big.o"
    source.write_text(program(args.functions))
    start = time.perf_counter()
    subprocess.run([CC, *FLAGS, "-c", str(source), "-o", str(obj)], check=True)
    print(f"compiled {args.functions} functions in {time.perf_counter() - start:.2f} s")

    build_time, result = timed(lambda: nxflat.build([obj]), args.repeat)
    path = workdir / "big.nxf"
    path.write_bytes(result.data)
    h, contents = nxflat_format.parse(result.data)
    print(f"build: {build_time * 1e3:8.1f} ms  ({h.reloccount} relocations, {len(result.got)} GOT "
          f"words, {len(contents.callbacks)} callback words, {len(result.data)} bytes)")

    ld = Linker.emulated("cortex-m3", memory=[(0x0800_0000, 4 << 20, "FLASH"),
                                               (0x2000_0000, 4 << 20, "SRAM")])
    ld.host_function("report", lambda emu, message, value: None)

    def load_and_unload():
        module = ld.load(path)
        ld.unload(module)

    load_time, _ = timed(load_and_unload, args.repeat)
    print(f"load and unload: {load_time * 1e3:8.1f} ms")
    module = ld.load(path)
    start = time.perf_counter()
    status = ld.exec(module, ["big"])
    print(f"exec: {(time.perf_counter() - start) * 1e3:8.1f} ms  (main returned {status}, "
          f"expected {-args.functions})")
    if status != -args.functions:
        print("wrong result", file=sys.stderr)
        return 1
    if args.profile:
        for what, function in (("build", lambda: nxflat.build([obj])), ("load", load_and_unload)):
            profiler = cProfile.Profile()
            profiler.runcall(function)
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(15)
            print(f"-- profile of the {what}\n{text.getvalue()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
