"""Print the regression suite's expected figures as Python constants, measured by the same functions
the tests use (tests/regression/conftest.py). Run by hand when a change is meant to move them, check
the difference, and paste the printed blocks over the constants at the top of each test module
(then `ruff format`):

    .venv/bin/python tests/regression/regenerate.py [--only bm25,split,predictions]

Nothing here writes into the repository: regeneration is a deliberate, reviewed edit.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import pprint
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import conftest as regression  # this folder's conftest.py: on sys.path when run as a script

from odqa.settings import korquad_dev_path

PARTS = ("bm25", "split", "predictions")


def _rounded(value):
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _constant(name: str, value) -> str:
    return f"{name} = {pprint.pformat(_rounded(value), width=100, sort_dicts=False)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    parts = args.only.split(",")
    korquad = korquad_dev_path()
    print(f"# regenerated {date.today().isoformat()} by: .venv/bin/python tests/regression/regenerate.py")
    with tempfile.TemporaryDirectory(prefix="odqa-regression-") as tmp:
        work = Path(tmp)
        if "bm25" in parts:
            start = time.perf_counter()
            passages_path, questions = regression.open_domain_corpus(korquad, work / "corpus")
            figures = {
                name: regression.bm25_figures(name, passages_path, questions, work)
                for name in regression.BM25_ANALYZERS
            }
            print(f"\n# test_bm25_korquad.py ({time.perf_counter() - start:.1f} s)")
            print(_constant("EXPECTED_PASSAGES", sum(1 for _ in open(passages_path, encoding="utf-8"))))
            print(_constant("EXPECTED_QUESTIONS", len(questions)))
            print(_constant("EXPECTED", figures))
        if "split" in parts:
            from odqa.cli import main as odqa_main

            out = work / "split"
            with contextlib.redirect_stdout(io.StringIO()):  # its JSON report; the files are what count
                odqa_main(regression.split_argv(korquad, out))
            print("\n# test_korquad_split.py")
            print(_constant("EXPECTED", regression.split_figures(out)))
        if "predictions" in parts:
            print("\n# test_em_f1.py")
            print(_constant("EXPECTED", regression.prediction_figures(korquad, work / "predictions")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
