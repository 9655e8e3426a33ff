"""The ``linkload`` command as its users meet it: what ``--help`` says, and what each verb
imports (a command's time is mostly Python starting and importing, so ``makerel`` and
``dump`` must not pay for the linker, the spaces, unicorn or capstone).

The verbs run in a fresh interpreter, on the committed golden files (no toolchain needed) or
on an object gcc compiles.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import linkload
from elfutil import compile_c

GOLDEN = Path(__file__).parent / "golden"
SOURCE = Path(linkload.__file__).resolve().parent.parent

#: Modules (and their submodules) that neither ``makerel`` nor ``dump`` (without --disasm)
#: needs; ``numpy.ma`` is what ``np.unique`` would import (see ``linkload.columns``).
NOT_FOR_FILE_VERBS = ("linkload.link", "linkload.space", "linkload.trampoline", "unicorn",
                      "capstone", "numpy.ma")

_CHILD = """
import contextlib, io, json, sys
from linkload.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        status = main(sys.argv[1:])
    except SystemExit as e:
        status = e.code
print(json.dumps([status, sorted(sys.modules)]))
"""


def _run_fresh(args: list[str], cwd: Path) -> tuple[int, set[str]]:
    """Run ``linkload ARGS`` in a new interpreter: its exit status and the modules it
    imported."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(SOURCE)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    done = subprocess.run([sys.executable, "-c", _CHILD, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=True)
    status, modules = json.loads(done.stdout.splitlines()[-1])
    return status, set(modules)


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == name or m.startswith(name + ".")
                                            for name in NOT_FOR_FILE_VERBS))


def test_makerel_imports_only_what_it_needs(tmp_path):
    status, modules = _run_fresh(["makerel", str(GOLDEN / "mod_one.plf"),
                                  str(GOLDEN / "mod_two.plf"), "--symbols",
                                  str(GOLDEN / "static.sym"), "-o", str(tmp_path)], tmp_path)
    assert status == 0 and (tmp_path / "mod_one.rel").is_file()
    assert _heavy(modules) == []


def test_dump_imports_only_what_it_needs(tmp_path):
    status, modules = _run_fresh(["dump", str(GOLDEN / "mod_one.rel")], tmp_path)
    assert status == 0
    assert _heavy(modules) == []


def test_help_imports_no_numpy(tmp_path):
    status, modules = _run_fresh(["--help"], tmp_path)
    assert status == 0
    assert "numpy" not in modules and _heavy(modules) == []


def test_package_names_load_on_first_use():
    """``linkload.Linker`` & co. are still there, loaded when first used."""
    assert linkload.Linker.__name__ == "Linker"
    assert linkload.read_module is linkload.formats.read_module
    assert set(linkload.__all__) <= set(dir(linkload))
    with pytest.raises(AttributeError):
        linkload.no_such_name  # noqa: B018


def test_help_speaks_to_users(capsys):
    """``linkload --help`` says what the program is for, with examples; not the CLI module's
    internal docstring."""
    from linkload.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "``" not in text and "argument parsing" not in text
    assert "GameCube/Wii REL modules" in text and "examples:" in text
    for verb in ("run", "dump", "makerel"):
        assert f"linkload {verb} " in text
    assert "exit status 2" in text


def test_names_the_terminal_cannot_show_are_escaped_not_fatal(tmp_path):
    """A symbol named ``café`` dumped to an ASCII-only stdout (PYTHONIOENCODING=ascii, a
    legacy console) is printed escaped; the command does not end with a UnicodeEncodeError."""
    obj = compile_c("int caf\\u00e9(int x) { return x; }\n", tmp_path / "u.o", ["-fPIC"])
    env = dict(os.environ, PYTHONIOENCODING="ascii", PYTHONPATH=os.pathsep.join(
        [str(SOURCE)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    done = subprocess.run([sys.executable, "-c", "import sys; from linkload.cli import main; "
                           "sys.exit(main())", "dump", str(obj)], env=env, capture_output=True,
                          text=True, encoding="ascii")
    assert done.returncode == 0, done.stderr
    assert "caf\\xe9" in done.stdout
