"""linkload demo: compile the bundled examples with the host compiler, link them into this
Python process, call them, unlink them. Run with `make demo` (or `python examples/demo.py`)."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import tempfile
from pathlib import Path

from linkload import Linker, LinkError

HERE = Path(__file__).resolve().parent


def compile_object(source: Path, out_dir: Path, *flags: str) -> Path:
    compiler = "g++" if source.suffix == ".cpp" else "gcc"
    obj = out_dir / (source.stem + ".o")
    cmd = [compiler, "-c", "-O2", *flags, str(source), "-o", str(obj)]
    print("$", " ".join(cmd))
    subprocess.run(cmd, check=True)
    return obj


def step(text: str) -> None:
    print(f"\n== {text}")
    sys.stdout.flush()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        step("compile the examples with the host compiler")
        mathlib = compile_object(HERE / "mathlib.c", out)
        shapes = compile_object(HERE / "shapes.cpp", out)

        ld = Linker.native(libraries=["libstdc++.so.6"])

        step("link mathlib.o into this process (its constructor runs now)")
        m = ld.link(mathlib)
        print(m)
        add = m.function("add", ctypes.c_int, ctypes.c_int, ctypes.c_int)
        print("add(2, 3) =", add(2, 3))
        print("sum_primes() =", m.function("sum_primes", ctypes.c_long)())
        print("largest_prime() via qsort callback =", m.call("largest_prime"))
        m.function("greet", ctypes.c_int, ctypes.c_char_p)(b"linkload")
        print(f"primes[] lives at {m.address('primes'):#x}; printf at {ld.lookup('printf'):#x}")

        step("link shapes.o (C++: static constructor, virtual calls, exceptions)")
        s = ld.link(shapes)
        print("shape_count() =", s.call("shape_count"))
        for index in (0, 1, 7):
            print(f"area_milli({index}) =", s.call("area_milli", index))

        step("a module that needs a symbol nobody defines is refused, and nothing changes")
        broken = out / "broken.c"
        broken.write_text("int missing(void); int use(void) { return missing(); }\n")
        try:
            ld.link(compile_object(broken, out))
        except LinkError as e:
            print("LinkError:", e)
        print("still linked:", [mod.name for mod in ld.modules])

        step("unlink both (destructors run)")
        ld.unlink(s)
        ld.unlink(m)
        print("still linked:", [mod.name for mod in ld.modules])
    return 0


if __name__ == "__main__":
    sys.exit(main())
