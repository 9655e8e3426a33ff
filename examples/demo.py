"""linkload demo: compile the bundled examples with the host compiler, link them into this
Python process, call them, unlink them. Run with `make demo` (or `python examples/demo.py`)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from linkload import Linker, LinkError, trampoline

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


def rel_demo(out: Path) -> None:
    """GameCube/Wii REL modules: makerel, reldump, OSLink/OSUnlink in emulated PowerPC."""
    step("REL modules: build with the PowerPC cross compiler and makerel")
    cc = ["powerpc-linux-gnu-gcc", "-mcpu=750", "-msdata=none", "-fno-pic", "-O2"]
    if shutil.which(cc[0]) is None:
        print("(skipped: powerpc-linux-gnu-gcc is not installed; `make demo` installs it)")
        return
    rel = HERE / "rel"
    static = out / "main.elf"
    run([*cc, "-nostdlib", "-static", "-Wl,-Ttext=0x80004000", "-Wl,-e,_start",
         str(rel / "main.c"), "-o", str(static)])
    plfs = []
    for name in ("game", "physics"):
        run([*cc, "-c", str(rel / f"{name}.c"), "-o", str(out / f"{name}.o")])
        run(["powerpc-linux-gnu-ld", "-r", str(out / f"{name}.o"), "-o", str(out / f"{name}.plf")])
        plfs.append(str(out / f"{name}.plf"))
    run(["linkload", "makerel", str(static), *plfs, "--str", str(out / "modules.str"),
         "--import-list", str(out / "import.lst")])
    print("import.lst:", (out / "import.lst").read_text().split())
    print("\n".join(subprocess.run(["linkload", "dump", str(out / "game.rel")], check=True,
                                   capture_output=True, text=True).stdout.splitlines()[:12]))
    print("...")

    step("link them into an emulated Wii (unicorn) and run them")
    ld = Linker.emulated("ppc", static=static, strings=out / "modules.str")
    ld.host_function("OSReport", lambda emu, message, value: print(
        f"  [OSReport] {emu.read_string(message)} {value}"))
    game = ld.link(out / "game.rel")
    game.call("_prolog")
    print("game_tick(3) ->", game.call("game_tick", 3))
    physics = ld.link(out / "physics.rel")
    print("physics linked: game's bl is patched to it")
    print("game_tick(3) ->", game.call("game_tick", 3))
    ld.unlink(physics)
    print("physics unlinked (OSUnlink): game_tick(3) ->", game.call("game_tick", 3))
    game.call("_epilog")
    ld.unlink(game)


def nxflat_demo(out: Path) -> None:
    """NuttX NXFLAT: a program built with `linkload nxflat`, dumped, and run twice on an
    emulated Cortex-M3 against a real firmware, with a callback from the firmware."""
    step("NXFLAT: build a program for NuttX's binfmt with linkload (no mknxflat, no ld)")
    cpu = ["-mcpu=cortex-m3", "-mthumb"]
    if shutil.which("arm-none-eabi-gcc") is None:
        print("(skipped: arm-none-eabi-gcc is not installed; `make demo` installs it)")
        return
    nx = HERE / "nxflat"
    firmware = out / "firmware.elf"
    run(["arm-none-eabi-gcc", *cpu, "-O2", "-nostdlib", "-static", "-e", "_start",
         "-Wl,-Ttext=0x08000000,-Tdata=0x20000000,--no-warn-rwx-segments",
         str(nx / "firmware.c"), "-o", str(firmware)])
    flags = [*cpu, "-Os", "-fpic", "-msingle-pic-base", "-mpic-register=r9",
             "-mno-pic-data-is-text-relative"]
    run(["arm-none-eabi-gcc", *flags, "-c", str(nx / "counter.c"), "-o", str(out / "counter.o")])
    run(["linkload", "nxflat", str(out / "counter.o"), "-o", str(out / "counter.nxf"), "--abi",
         "v2", "--stack", "2048", "--symbols", str(nx / "exports.csv")])
    run(["linkload", "mksymtab", str(nx / "exports.csv"), "-o", str(out / "symtab.c")])
    print("\n".join(subprocess.run(["linkload", "dump", str(out / "counter.nxf")], check=True,
                                   capture_output=True, text=True).stdout.splitlines()[:14]))
    print("...")

    step("run two instances on an emulated Cortex-M3: one I-space in flash, two D-spaces")
    ld = Linker.emulated("cortex-m3", static=firmware, exports=nx / "exports.csv")
    ld.host_function("report", lambda emu, message, value: print(
        f"  [report] {emu.read_string(message)} {value}"))
    first, second = ld.load(out / "counter.nxf"), ld.load(out / "counter.nxf")
    (shared,) = ld.shared.values()
    print(f"I-space at {shared.address:#x} (shared, read+execute), D-spaces at "
          f"{first.base:#x} and {second.base:#x}")
    print("first  ->", ld.exec(first, ["first"]), "(call_twice called add_step back twice)")
    print("second ->", ld.exec(second, ["second"]))
    print("first  ->", ld.exec(first, ["first"]), "(its own step is 11 now)")
    ld.unload(first)
    ld.unload(second)
    print("unloaded; shared I-space freed:", not ld.shared)

    step("the same program without linkload's callback table: NXFLAT's documented limit")
    run(["linkload", "nxflat", str(out / "counter.o"), "-o", str(out / "plain.nxf"), "--abi",
         "v2", "--no-callbacks"])
    try:
        ld.exec(ld.load(out / "plain.nxf"), ["plain"])
    except LinkError as e:
        print("the callback arrives with the firmware's r9:", str(e).split(":")[0], "...")


def locate_demo(out: Path) -> None:
    """The locator: one mingw-w64 program placed for two boards, both booted, the maps drawn."""
    step("the locator: one program, two boards (linkload locate)")
    cc = "i686-w64-mingw32-gcc"
    if shutil.which(cc) is None:
        print(f"(skipped: {cc} is not installed; `make demo` installs it)")
        return
    exe = out / "sensor.exe"
    run([cc, "-O2", "-ffreestanding", "-fno-asynchronous-unwind-tables",
         "-fno-tree-loop-distribute-patterns", "-nostdlib",
         "-Wl,--enable-reloc-section", "-Wl,-e,_start", str(HERE / "locate" / "sensor.c"),
         "-o", str(exe)])
    maps = HERE.parent / "build" / "locate-demo"
    for board in ("rom_board", "pc_board"):
        outdir = maps / board
        run(["linkload", "locate", str(exe), str(HERE / "locate" / f"{board}.cfg"), "-o",
             str(outdir), "--run", "--console", "0xE0000000"])
        print("\n".join((outdir / "map.txt").read_text().splitlines()[:2]))
        print(f"the picture: file://{(outdir / 'map.html').resolve()}")


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd))
    subprocess.run(cmd, check=True)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        step("compile the examples with the host compiler")
        mathlib = compile_object(HERE / "mathlib.c", out)
        shapes = compile_object(HERE / "shapes.cpp", out)

        def on_unresolved(module: str, symbol: str) -> int:
            print(f"  [unresolved handler] {module} called {symbol}, which is not linked")
            return -1

        ld = Linker.native(libraries=["libstdc++.so.6"], on_unresolved=on_unresolved)

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

        step("a module that reads a variable nobody defines links; the read waits for it")
        reader = out / "reader.c"
        reader.write_text("extern int table[]; int first(void) { return table[0]; }\n")
        user = ld.link(compile_object(reader, out))
        print("waiting:", user.waiting(), "(a read now would fault in the guard area)")
        table = out / "table.c"
        table.write_text("int table[] = {42, 7};\n")
        provider = ld.link(compile_object(table, out))
        print("table linked; first() ->", user.call("first"))
        ld.unlink(user)
        ld.unlink(provider)

        step("a damaged object file is refused, and nothing changes")
        try:
            ld.link(compile_object(reader, out).read_bytes()[:300], name="damaged")
        except LinkError as e:
            print("LinkError:", e)
        print("still linked:", [mod.name for mod in ld.modules])

        step("modules linked in any order: app calls a plugin that is not linked yet")
        app = ld.link(compile_object(HERE / "app.c", out))
        print("pending calls of app:", app.pending())
        print("run_pipeline(7) ->", app.call("run_pipeline", 7), "(the handler answered)")
        plugin = ld.link(compile_object(HERE / "plugin_v1.c", out), name="plugin")
        print("plugin linked; app's call site now calls it directly")
        app.call("run_pipeline", 7)
        plugin = ld.reload(plugin, compile_object(HERE / "plugin_v2.c", out))
        print("plugin reloaded from plugin_v2.c; app re-patched")
        app.call("run_pipeline", 7)
        ld.unlink(plugin)
        print("plugin unlinked; app's call falls back to the handler:", app.call("run_pipeline", 7))
        ld.unlink(app)

        step("trampolines: two closures over one C comparator, each with its own data")
        closures = ld.link(compile_object(HERE / "closures.c", out))
        sort = closures.function("sort_ints", None, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
        for descending in (0, 1):
            order = ctypes.c_int(descending)
            t = trampoline.alloc(closures.address("compare_ints"), closures.address("current_order"),
                                 ctypes.addressof(order))
            values = (ctypes.c_int * 6)(5, 3, 9, 1, 7, 2)
            sort(values, 6, t)
            print(f"trampoline {t:#x} (descending={descending}):", list(values))
            trampoline.free(t)
        ld.unlink(closures)

        rel_demo(out)
        nxflat_demo(out)
        locate_demo(out)

        step("unlink both (destructors run)")
        ld.unlink(s)
        ld.unlink(m)
        print("still linked:", [mod.name for mod in ld.modules])
    return 0


if __name__ == "__main__":
    sys.exit(main())
