"""Regenerate the golden files of ``linkload dump`` for RELs and DOLs.

    python tests/golden/regen.py

Assembles ``static.s``, ``mod_one.s`` and ``mod_two.s`` with the PowerPC cross binutils, links
the static module at 0x80004000 (``static.elf``, then ``static.dol`` and the symbol list
``static.sym``), partially links the modules (``*.plf``) and builds their RELs with makerel
from the symbol list (version 3 here, version 1 under ``v1/``). Then every case of
:data:`CASES` is dumped into its expected-output file. The inputs of the dumps (the RELs, the
DOL, the plfs) are committed, so that the golden test itself needs no toolchain; the test
``test_makerel.py::test_golden_files_rebuild`` checks that these sources still build to the
committed bytes.

Review the diff of the ``.txt`` files before committing them.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
AS, LD = "powerpc-linux-gnu-as", "powerpc-linux-gnu-ld"

# (command-line arguments of ``linkload``, run in this directory; expected output file)
CASES = [
    (["dump", "mod_one.rel", "--plf", "mod_one.plf", "--disasm"], "mod_one.txt"),
    (["dump", "mod_two.rel"], "mod_two.txt"),
    (["dump", "v1/mod_one.rel"], "v1_mod_one.txt"),
    (["dump", "static.dol", "--disasm"], "static_dol.txt"),
]


def _run(*cmd: str, cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)


def build_inputs(out: Path) -> dict[str, bytes]:
    """Assemble and link everything into ``out``; the generated files' bytes by name."""
    from linkload.formats import dol, elf
    from linkload.tools import build

    out.mkdir(parents=True, exist_ok=True)
    for name in ("static", "mod_one", "mod_two"):
        _run(AS, "-mregnames", "-many", str(HERE / f"{name}.s"), "-o", f"{name}.o", cwd=out)
    _run(LD, "-Ttext=0x80004000", "--build-id=none", "-e", "_start", "static.o", "-o",
         "static.elf", cwd=out)
    for name in ("mod_one", "mod_two"):
        _run(LD, "-r", f"{name}.o", "-o", f"{name}.plf", cwd=out)
    static = elf.read(out / "static.elf")
    listing = "".join(f"{int(static.symbols['value'][row]):08x}:{name}\n"
                      for name, row in sorted(static.exports().items()))
    (out / "static.sym").write_text(listing)
    files = {"static.sym": listing.encode(), "static.dol": dol.from_elf(static)}
    plfs = [out / "mod_one.plf", out / "mod_two.plf"]
    for version, prefix in ((3, ""), (1, "v1/")):
        result = build(None, plfs, symbols=out / "static.sym", version=version,
                       module_names=["mod_one", "mod_two"])
        for name, r in zip(("mod_one", "mod_two"), result.rels, strict=True):
            files[f"{prefix}{name}.rel"] = r.data
        files[f"{prefix}modules.str"] = result.string_table
        files[f"{prefix}import.lst"] = "".join(n + "\n" for n in result.imports).encode()
    for name in ("mod_one", "mod_two"):
        files[f"{name}.plf"] = (out / f"{name}.plf").read_bytes()
    return files


def dump_case(args: list[str]) -> str:
    """The output of ``linkload ARGS`` run in this directory."""
    from linkload.cli import main

    old = os.getcwd()
    buffer = io.StringIO()
    try:
        os.chdir(HERE)
        with contextlib.redirect_stdout(buffer):
            code = main(args)
    finally:
        os.chdir(old)
    if code:
        raise RuntimeError(f"linkload {' '.join(args)} failed ({code})")
    return buffer.getvalue()


def main() -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        files = build_inputs(Path(tmp))
    for name, data in files.items():
        (HERE / name).parent.mkdir(parents=True, exist_ok=True)
        (HERE / name).write_bytes(data)
    for args, expected in CASES:
        (HERE / expected).write_text(dump_case(args))
        print(f"wrote {expected}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    sys.exit(main())
