"""Shared test helpers: build C and C++ test programs at test time.

A :class:`Toolchain` names a compiler family by its commands (``gcc``/``g++``/``ld`` for the
host, ``powerpc-linux-gnu-gcc`` and friends for a cross compiler) and builds into one
directory, caching every result by its inputs so that a session compiles each variant once:

    tc = toolchain("powerpc-linux-gnu-gcc", ld="powerpc-linux-gnu-ld")
    obj = tc.compile(C_DIR / "strings.c", ["-O2"])
    both = tc.combine([a, b])                      # ld -r
    exe = tc.executable([obj, driver], libs=["-lm"])
    text = tc.run(exe)

A missing tool fails the test when the environment variable ``CI`` is set and skips it
otherwise.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from relmodules import CC, CXX, FLAGS, LD, MODULES, STATIC, STATIC_LDFLAGS, Build

C_DIR = Path(__file__).parent / "c"
CXX_SUFFIXES = {".cc", ".cpp", ".cxx", ".C"}


def missing(message: str):
    """Fail (under CI) or skip the current test because something it needs is missing."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """The full path of the command ``name``, or fail/skip the test."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed")
    return path


def require_module(name: str):
    """The Python module ``name`` (a test-only dependency, e.g. pyelf2rel), or fail/skip the
    test."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the Python package {name} is not installed (pip install -e '.[test]')")


def run_tool(cmd: Sequence[str], cwd: Path | None = None) -> str:
    """Run a build command; a failure fails the test with the tool's output."""
    require_tool(str(cmd[0]))
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd)
    if done.returncode:
        pytest.fail(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stderr}",
                    pytrace=False)
    return done.stdout


class Toolchain:
    """One compiler family building into ``workdir``; every output is cached by its inputs."""

    def __init__(self, workdir: Path, cc: str = "gcc", cxx: str | None = "g++",
                 ld: str = "ld", common_flags: Iterable[str] = ()) -> None:
        self.workdir = Path(workdir)
        self.cc, self.cxx, self.ld = cc, cxx, ld
        self.common_flags = tuple(common_flags)
        self._cache: dict[tuple, Path] = {}
        self._outputs: dict[tuple, str] = {}

    # -- naming ----------------------------------------------------------------------------
    def _path(self, stem: str, key: tuple, suffix: str) -> Path:
        digest = hashlib.sha1(repr(key).encode()).hexdigest()[:10]
        return self.workdir / f"{stem}.{digest}{suffix}"

    def compiler_for(self, source: Path) -> str:
        if Path(source).suffix in CXX_SUFFIXES:
            if self.cxx is None:
                missing(f"no C++ compiler for the {self.cc} toolchain")
            return self.cxx
        return self.cc

    # -- building --------------------------------------------------------------------------
    def compile(self, source: str | Path, flags: Iterable[str] = ()) -> Path:
        """``cc -c source flags`` (g++ for C++ sources); the object's path."""
        source = Path(source)
        if not source.is_absolute():
            source = C_DIR / source
        flags = self.common_flags + tuple(flags)
        compiler = self.compiler_for(source)
        key = ("compile", compiler, str(source), flags)
        if key not in self._cache:
            out = self._path(source.stem, key, ".o")
            run_tool([compiler, "-c", str(source), "-o", str(out), f"-I{C_DIR}", *flags])
            self._cache[key] = out
        return self._cache[key]

    def compile_text(self, code: str, name: str, flags: Iterable[str] = ()) -> Path:
        """Compile source text (``name`` gives the file name, hence the language)."""
        path = self._path(Path(name).stem, ("text", code), Path(name).suffix)
        if not path.exists():
            path.write_text(code)
        return self.compile(path, flags)

    def compile_all(self, sources: Iterable[str | Path], flags: Iterable[str] = ()) -> list[Path]:
        flags = tuple(flags)
        return [self.compile(s, flags) for s in sources]

    def combine(self, objects: Sequence[Path], stem: str | None = None) -> Path:
        """``ld -r``: one relocatable object made of ``objects``."""
        key = ("combine", self.ld, tuple(map(str, objects)))
        if key not in self._cache:
            out = self._path(stem or Path(objects[0]).stem + "-r", key, ".o")
            run_tool([self.ld, "-r", *map(str, objects), "-o", str(out)])
            self._cache[key] = out
        return self._cache[key]

    def executable(self, objects: Sequence[Path], *, cxx: bool = False,
                   ldflags: Iterable[str] = (), libs: Iterable[str] = (),
                   stem: str | None = None) -> Path:
        """A normal executable linked by the compiler driver (g++ when ``cxx``)."""
        driver = self.cxx if cxx else self.cc
        if driver is None:
            missing(f"no C++ compiler for the {self.cc} toolchain")
        ldflags, libs = tuple(ldflags), tuple(libs)
        key = ("exe", driver, tuple(map(str, objects)), ldflags, libs)
        if key not in self._cache:
            out = self._path(stem or Path(objects[0]).stem, key, "")
            run_tool([driver, *ldflags, *map(str, objects), "-o", str(out), *libs])
            self._cache[key] = out
        return self._cache[key]

    def run(self, exe: Path, *args: str, runner: Sequence[str] = (), timeout: float = 60) -> str:
        """The standard output of running ``exe`` (under ``runner``, e.g. ``qemu-ppc``);
        cached, since a test program's output does not change within a session."""
        key = (str(exe), args, tuple(runner))
        if key not in self._outputs:
            if runner:
                require_tool(runner[0])
            done = subprocess.run([*runner, str(exe), *args], capture_output=True, text=True,
                                  timeout=timeout)
            if done.returncode:
                pytest.fail(f"{exe} exited with {done.returncode}:\n{done.stderr}", pytrace=False)
            self._outputs[key] = done.stdout
        return self._outputs[key]


@pytest.fixture(scope="session")
def toolchain(tmp_path_factory):
    """A factory of session-wide toolchains, one per set of commands:
    ``toolchain("gcc")``, ``toolchain("powerpc-linux-gnu-gcc", "powerpc-linux-gnu-g++",
    "powerpc-linux-gnu-ld")``. Missing tools fail or skip the test that uses them."""
    made: dict[tuple, Toolchain] = {}

    def make(cc: str = "gcc", cxx: str | None = "g++", ld: str = "ld",
             common_flags: Iterable[str] = ()) -> Toolchain:
        key = (cc, cxx, ld, tuple(common_flags))
        if key not in made:
            workdir = tmp_path_factory.mktemp(cc.replace("+", "x").replace("/", "_"))
            made[key] = Toolchain(workdir, cc, cxx, ld, common_flags)
        return made[key]

    return make


@pytest.fixture(scope="session")
def host(toolchain) -> Toolchain:
    """The host's gcc, g++ and ld."""
    return toolchain("gcc", "g++", "ld")


@pytest.fixture(params=[None, 2], ids=["chunks", "tiny-chunks"])
def chunk_rows(request, monkeypatch):
    """Run the test with the linker's usual relocation chunks, then with chunks of 2 rows, so
    that chunk boundaries fall between related relocations (veneered branches, rebinding)."""
    if request.param is not None:
        from linkload.link import select

        monkeypatch.setattr(select, "CHUNK_ROWS", request.param)
    return request.param


def writable_executable_pages(ranges: Iterable[tuple[int, int]]) -> list[str]:
    """Lines of /proc/self/maps that overlap ``ranges`` and are writable and executable.

    Only linkload's own memory is checked: ctypes callbacks (libffi closures) that tests
    create map writable and executable pages of their own."""
    ranges = list(ranges)
    bad = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        perms = line.split()[1]
        if "w" in perms and "x" in perms and any(lo < end and start < hi for start, end in ranges):
            bad.append(line)
    return bad


def space_ranges(space) -> list[tuple[int, int]]:
    """The (start, end) of every reservation of a native space."""
    return [(m.address, m.address + m.size) for m in space._mappings.values()]


@pytest.fixture(scope="session")
def ppc(toolchain):
    """The PowerPC cross toolchain with the flags REL modules are compiled with."""
    return toolchain(CC, CXX, LD, common_flags=FLAGS)


@pytest.fixture(scope="session")
def built(ppc):
    """The static module and the plfs of :mod:`relmodules`, built once a session."""
    static = ppc.executable([ppc.compile_text(STATIC, "static.c")], ldflags=STATIC_LDFLAGS,
                            stem="static")
    plfs = [ppc.combine([ppc.compile_text(src, f"mod_{name}.c")], stem=name)
            for name, src in MODULES.items()]
    return Build(static, plfs)
