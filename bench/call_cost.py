"""What a call between linked modules costs, against a call inside one module and a call
through the PLT of a dlopen'ed shared library, measured in the same run.

    python bench/call_cost.py [--calls N] [--repeat R]

Module A calls ``b_inc`` of module B (linked by linkload after A: the call is back-patched to a
direct ``call rel32``), a ``noipa`` function of its own, and, from a shared library built from
the same source, ``lib_inc`` of another shared library through the PLT. Each loop makes N
calls; the best of R runs is kept. Goal: cross-module calls within 1.05x of in-module calls.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from linkload import Linker

CALLEE = """
__attribute__((noipa)) long b_inc(long x) { return x + 1; }
"""
CALLER = """
long b_inc(long);
__attribute__((noipa)) long local_inc(long x) { return x + 1; }
/* The same callee on a page of its own, as b_inc is: call costs depend on code layout
   (alignment, cache sets) by more than the 5% the goal allows, either way. */
__attribute__((noipa, section(".text.far"), aligned(4096))) long paged_inc(long x) { return x + 1; }
long loop_cross(long n) { long s = 0; for (long i = 0; i < n; i++) s = b_inc(s); return s; }
long loop_local(long n) { long s = 0; for (long i = 0; i < n; i++) s = local_inc(s); return s; }
long loop_paged(long n) { long s = 0; for (long i = 0; i < n; i++) s = paged_inc(s); return s; }
"""
LIB_CALLEE = """
__attribute__((noipa)) long lib_inc(long x) { return x + 1; }
"""
LIB_CALLER = """
long lib_inc(long);
long loop_plt(long n) { long s = 0; for (long i = 0; i < n; i++) s = lib_inc(s); return s; }
"""


def build(tmp: Path) -> dict[str, Path]:
    files = {"a.c": CALLER, "b.c": CALLEE, "libinc.c": LIB_CALLEE, "libloop.c": LIB_CALLER}
    for name, text in files.items():
        (tmp / name).write_text(text)

    def cc(*args: str) -> None:
        subprocess.run(["gcc", "-O2", *args], cwd=tmp, check=True)

    cc("-c", "a.c", "-o", "a.o")
    cc("-c", "b.c", "-o", "b.o")
    cc("-shared", "-fPIC", "libinc.c", "-o", "libinc.so")
    cc("-shared", "-fPIC", "libloop.c", "-o", "libloop.so", "-L.", "-linc", "-Wl,-rpath," + str(tmp))
    return {n: tmp / n for n in ("a.o", "b.o", "libloop.so")}


def round_times(loops: dict, calls: int, repeat: int) -> dict[str, list[float]]:
    """Times of each loop in ``repeat`` rounds; the loops take turns in every round so that a
    noisy moment of the machine does not favour one of them."""
    times: dict[str, list[float]] = {label: [] for label in loops}
    for _ in range(repeat):
        for label, fn in loops.items():
            start = time.perf_counter()
            result = fn(calls)
            times[label].append(time.perf_counter() - start)
            if result != calls:
                raise SystemExit(f"{label}: wrong result {result} for {calls} calls")
    return times


def best_times(loops: dict, calls: int, repeat: int) -> dict[str, float]:
    """Best time of each loop (see :func:`round_times`)."""
    return {label: min(t) for label, t in round_times(loops, calls, repeat).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000_000)
    parser.add_argument("--repeat", type=int, default=11)
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = build(Path(tmp))
        ld = Linker.native()
        a = ld.link(paths["a.o"])  # b_inc is pending: A's call goes to the unresolved stub
        b = ld.link(paths["b.o"])  # ... and is patched to a direct call now
        lib = ctypes.CDLL(str(paths["libloop.so"]), mode=os.RTLD_NOW)
        loops = {
            "in-module call (baseline)": a.function("loop_local", ctypes.c_long, ctypes.c_long),
            "in-module, callee page-aligned": a.function("loop_paged", ctypes.c_long, ctypes.c_long),
            "linkload cross-module call": a.function("loop_cross", ctypes.c_long, ctypes.c_long),
            "dlopen'ed library, via PLT": lib.loop_plt,
        }
        lib.loop_plt.restype, lib.loop_plt.argtypes = ctypes.c_long, [ctypes.c_long]
        rounds = round_times(loops, ns.calls, ns.repeat)
        times = {label: min(t) for label, t in rounds.items()}
        base = times["in-module call (baseline)"]
        print(f"{ns.calls:,} calls per loop, best of {ns.repeat}; B at {b.base:#x}, A at {a.base:#x}")
        for label, seconds in times.items():
            per_call = seconds / ns.calls * 1e9
            print(f"  {label:<30} {seconds:8.3f} s  {per_call:6.3f} ns/call  {seconds / base:5.3f}x")
        ratio = times["linkload cross-module call"] / base
        per_round = sorted(c / b for c, b in zip(rounds["linkload cross-module call"],
                                                rounds["in-module call (baseline)"], strict=True))
        print(f"cross-module / in-module = {ratio:.3f} best, {per_round[len(per_round) // 2]:.3f} "
              f"median of rounds (goal <= 1.05)")
        paged = times["linkload cross-module call"] / times["in-module, callee page-aligned"]
        print(f"cross-module / in-module with the callee laid out as b_inc is = {paged:.3f}")
        ld.unlink(a)
        ld.unlink(b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
