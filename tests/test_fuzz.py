"""The fuzzer's bounded run: ``scripts/fuzz.py`` with a fixed seed, a few thousand mutants of
every format linkload reads (x86-64 and PowerPC objects, executables, RELs, DOLs, symbol
lists), each through its readers, dumps, makerel and linkers, native links included, in child
processes so that a crash is a failure of this test rather than the end of the run.

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
COUNT = 2000  # mutants per format: 12,000 in about 12 s on two idle cores


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
