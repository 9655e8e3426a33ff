"""Link-speed workloads of real code: what users link, not one large generated object.

1. A real C library, linked as one module from its list of objects: Google's Brotli 1.1.0
   (31 C files of ``c/common``, ``c/enc``, ``c/dec``; fetched from PyPI as its source
   distribution), compiled with ``gcc -O2 -fPIC``. linkload against LLVM's RuntimeDyld (one
   engine, every object added) and ``dlopen(RTLD_NOW)`` of the same objects as a ``.so``, in
   the same run; each result is checked by compressing a buffer through the linked library
   and comparing the bytes with the ``.so``'s.
2. The smallest module: one small function, against RuntimeDyld and ``dlopen``.
3. The graph as it grows: 1,000 independent small modules, and a chain of 600 (each calling
   the one linked before it): the cost of the last links against the first, and of unlinking
   them all.

Usage: ``python bench/real_code.py [--workdir DIR] [--runs N]`` (``bench/link_speed.py``
runs it too). Needs gcc, pip (to fetch Brotli) and llvmlite.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import linkload

BROTLI = "brotli==1.1.0"
JOBS = max(os.cpu_count() or 2, 2)
CFLAGS = ("-O2", "-fPIC")
SAMPLE = bytes(range(256)) * 64 + b"linkload " * 2000  # what the library compresses


# -- building ---------------------------------------------------------------------------------
def fetch_brotli(root: Path) -> Path:
    """The Brotli C sources (``.../c``), fetched from PyPI once."""
    existing = sorted(root.glob("Brotli-*/c"))
    if existing:
        return existing[0]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                    "-q", BROTLI, "-d", str(root)], check=True)
    archive = next(root.glob("Brotli-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return next(root.glob("Brotli-*/c"))


def compile_objects(sources: Path, out: Path) -> list[Path]:
    """``gcc -c`` of every library source; the objects, in a stable order."""
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(f for part in ("common", "enc", "dec") for f in (sources / part).glob("*.c"))

    def one(source: Path) -> Path:
        obj = out / f"{source.parent.name}_{source.stem}.o"
        if not obj.exists():
            subprocess.run(["gcc", *CFLAGS, f"-I{sources / 'include'}", "-c", str(source),
                            "-o", str(obj)], check=True)
        return obj

    with ThreadPoolExecutor(JOBS) as pool:
        return list(pool.map(one, files))


def shared_library(objects: list[Path], path: Path) -> Path:
    if not path.exists():
        subprocess.run(["gcc", "-shared", "-o", str(path), *map(str, objects)], check=True)
    return path


# -- timing -----------------------------------------------------------------------------------------
def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


def compress(address_of) -> bytes:
    """Compress SAMPLE with ``BrotliEncoderCompress`` found through ``address_of(name)``."""
    function = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                ctypes.c_size_t, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t),
                                ctypes.c_char_p)(address_of("BrotliEncoderCompress"))
    out = ctypes.create_string_buffer(len(SAMPLE) + 1024)
    size = ctypes.c_size_t(len(out))
    if not function(9, 22, 0, len(SAMPLE), SAMPLE, ctypes.byref(size), out):
        raise RuntimeError("BrotliEncoderCompress failed")
    return out.raw[:size.value]


def time_linkload(objects: list[Path], runs: int, check=None) -> list[float]:
    linker = linkload.Linker.native()
    times = []
    for _ in range(runs + 1):  # (the first run warms up)
        start = time.perf_counter()
        module = linker.link(list(objects), name="lib")
        times.append(time.perf_counter() - start)
        if check is not None:
            check(module.address)
        linker.unlink(module)
    return times[1:]


def time_runtimedyld(objects: list[Path], runs: int, check=None) -> list[float]:
    import llvmlite.binding as llvm  # (only this part needs it)

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    times = []
    for _ in range(runs + 1):
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target.create_target_machine())
        start = time.perf_counter()
        for obj in objects:
            engine.add_object_file(str(obj))
        engine.finalize_object()
        times.append(time.perf_counter() - start)
        if check is not None:
            check(engine.get_function_address)
        engine.close()
    return times[1:]


def time_dlopen(library: Path, runs: int, directory: Path, check=None) -> list[float]:
    dlclose = ctypes.CDLL(None).dlclose
    dlclose.argtypes = [ctypes.c_void_p]
    times = []
    for i in range(runs + 1):
        copy = directory / f"copy{i}_{library.name}"
        shutil.copyfile(library, copy)
        start = time.perf_counter()
        lib = ctypes.CDLL(str(copy), mode=os.RTLD_NOW | os.RTLD_LOCAL)
        times.append(time.perf_counter() - start)
        if check is not None:
            check(lambda name, lib=lib: ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)
        dlclose(lib._handle)
        copy.unlink()
    return times[1:]


# -- the workloads ------------------------------------------------------------------------------------
def real_library(root: Path, runs: int) -> None:
    sources = fetch_brotli(root)
    objects = compile_objects(sources, root / "brotli-objects")
    library = shared_library(objects, root / "libbrotli-bench.so")
    expected = compress(lambda name: ctypes.cast(getattr(ctypes.CDLL(str(library)), name),
                                                 ctypes.c_void_p).value)

    def check(address_of) -> None:
        if compress(address_of) != expected:
            raise AssertionError("compressed bytes differ from the .so's")

    module = linkload.Linker.native().link(list(objects), name="lib")
    relocations = sum(len(r) for r in module.module.relocation_runs)
    sections = len(module.module.sections)
    ll = time_linkload(objects, runs, check)
    rt = time_runtimedyld(objects, runs, check)
    dl = time_dlopen(library, runs, root, check)
    print(f"\n== Real code: Brotli 1.1.0, {len(objects)} objects (gcc {' '.join(CFLAGS)}), "
          f"{sections} sections, {relocations:,} relocations, linked as one module")
    print(f"  linkload Linker.link([objects])      {median_ms(ll):8.2f} ms  (min {min(ll) * 1e3:.2f})")
    print(f"  RuntimeDyld (add each, finalize)     {median_ms(rt):8.2f} ms  (min {min(rt) * 1e3:.2f})")
    print(f"  dlopen RTLD_NOW of the .so           {median_ms(dl):8.2f} ms  (min {min(dl) * 1e3:.2f})")
    print(f"  linkload / RuntimeDyld  {median_ms(ll) / median_ms(rt):6.2f}x   (medians; goal <= 0.5x)")
    print(f"  linkload / dlopen       {median_ms(ll) / median_ms(dl):6.2f}x")
    print("  every link compressed the sample to the .so's bytes")


SMALL = "int bench_small(int x) { return x * 3 + 1; }\n"


def small_module(root: Path, runs: int) -> None:
    source = root / "small.c"
    source.write_text(SMALL)
    obj, library = root / "small.o", root / "libsmall.so"
    subprocess.run(["gcc", "-O2", "-fPIC", "-c", str(source), "-o", str(obj)], check=True)
    subprocess.run(["gcc", "-shared", "-o", str(library), str(obj)], check=True)

    def check(address_of) -> None:
        assert ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(address_of("bench_small"))(4) == 13

    many = max(runs * 20, 200)
    ll = time_linkload([obj], many, check)
    rt = time_runtimedyld([obj], many, check)
    dl = time_dlopen(library, many, root, check)
    print("\n== The smallest module: one function of one object")
    print(f"  linkload {median_ms(ll) * 1e3:7.0f} us, RuntimeDyld {median_ms(rt) * 1e3:7.0f} us, "
          f"dlopen {median_ms(dl) * 1e3:7.0f} us (medians of {many})")
    print(f"  linkload / dlopen {median_ms(ll) / median_ms(dl):6.2f}x   (goal <= 2x)")


def graph(root: Path) -> None:
    """Independent modules and a chain: the cost of a link as the graph grows."""
    out = root / "graph"
    out.mkdir(exist_ok=True)
    sources = {}
    for i in range(1000):
        sources[f"ind{i}"] = f"int ind{i}(int x) {{ return x + {i}; }}\n"
        call = f"extern int ch{i - 1}(int);\nint ch{i}(int x) {{ return ch{i - 1}(x) + 1; }}\n"
        sources[f"ch{i}"] = call if i else "int ch0(int x) { return x; }\n"

    def one(name: str) -> Path:
        obj = out / f"{name}.o"
        if not obj.exists():
            (out / f"{name}.c").write_text(sources[name])
            subprocess.run(["gcc", "-O2", "-c", str(out / f"{name}.c"), "-o", str(obj)],
                           check=True)
        return obj

    with ThreadPoolExecutor(JOBS) as pool:
        objects = dict(zip(sources, pool.map(one, sources), strict=True))
    print("\n== The graph as it grows (median of 11 links around each point)")
    for shape, count in (("ind", 1000), ("ch", 600)):
        linker = linkload.Linker.native()
        times, modules = [], []
        for i in range(count):
            start = time.perf_counter()
            modules.append(linker.link(objects[f"{shape}{i}"]))
            times.append(time.perf_counter() - start)
        if shape == "ch":
            assert modules[-1].call(f"ch{count - 1}", 5) == 5 + count - 1

        def around(k: int, times: list[float] = times) -> float:
            return statistics.median(times[k - 5:k + 6]) * 1e6

        start = time.perf_counter()
        for m in reversed(modules):
            linker.unlink(m)
        unlink = (time.perf_counter() - start) / count * 1e6
        label = "independent modules" if shape == "ind" else "a chain (each calls the one before)"
        last = count - 10
        print(f"  {count} {label}: link #10 {around(10):.0f} us, #{last} {around(last):.0f} us "
              f"({around(last) / around(10):.2f}x); unlink {unlink:.0f} us each "
              f"(link {statistics.median(times) * 1e6:.0f} us median)")


def run(root: Path, runs: int) -> None:
    """Every workload, generated files under ``root``."""
    real_library(root, runs)
    small_module(root, runs)
    graph(root)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", help="keep the fetched and built files here")
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args(argv)
    print(f"linkload real-code benchmark; gcc, {JOBS} jobs, Python {sys.version.split()[0]}")
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        run(Path(args.workdir), args.runs)
    else:
        with tempfile.TemporaryDirectory(prefix="linkload-real-") as tmp:
            run(Path(tmp), args.runs)


if __name__ == "__main__":
    main()
