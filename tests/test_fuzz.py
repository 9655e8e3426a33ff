"""The fuzzer's bounded run: ``scripts/fuzz.py`` with a fixed seed, a few thousand mutants of
every format linkload reads (x86-64, PowerPC and ARM objects, ELF executables and the
locator's ELF programs, RELs, DOLs, symbol lists, NXFLAT programs, PE images, RTLoc
configurations, GNU ld scripts, layout.json files, NuttX export tables), each through its
readers, dumps, makerel, `linkload nxflat`, linkers, loaders and the locator, native links
included, in child processes so that a crash is a failure of this test rather than the end of
the run. Its seeds need the cross compilers (PowerPC, arm-none-eabi, mingw-w64 i686): without
one the test skips, or fails under ``CI``.

The seed fixes the inputs: a failure names the mutants, and ``python scripts/fuzz.py --replay
FORMAT:INDEX --seed 1`` shows one with its traceback. ``make fuzz`` runs the long version.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from conftest import missing

FUZZ = Path(__file__).resolve().parent.parent / "scripts" / "fuzz.py"
SEED = 1
COUNT = 2000  # mutants per format: 28,000 of 14 formats in 33 to 37 s on two idle cores


def _fuzz_module():
    if "linkload_fuzz" not in sys.modules:
        spec = importlib.util.spec_from_file_location("linkload_fuzz", FUZZ)
        module = importlib.util.module_from_spec(spec)
        sys.modules["linkload_fuzz"] = module  # (its dataclasses look their module up)
        spec.loader.exec_module(module)
    return sys.modules["linkload_fuzz"]


def test_fuzz(tmp_path):
    fuzz = _fuzz_module()
    corpus = fuzz.build_corpus(tmp_path / "build")
    if corpus.skipped:
        missing("fuzz seeds need: " + "; ".join(corpus.skipped))
    corpus.save(tmp_path / "corpus")
    report = fuzz.run(tmp_path / "corpus", list(fuzz.FORMAT_NAMES), COUNT, SEED,
                      workers=os.cpu_count() or 1, timeout=60)
    text = "\n".join(report.lines(SEED))
    assert not report.bugs, text
    assert report.counts == dict.fromkeys(fuzz.FORMAT_NAMES, COUNT), text
    # every step took some mutants: seeds that every step refuses would test nothing
    for fmt, steps in fuzz.STEPS.items():
        for step in (steps.read, *steps.uses):
            assert report.passed.get(f"{fmt} {step.__name__}"), f"{fmt} {step.__name__}\n{text}"
