"""The KorQuAD article split (`odqa prepare-korquad`, seed 42): exact counts and the eval ids'
fingerprint, so a change in shuffling, article grouping or file order cannot silently move questions
between train and eval (and make every earlier result incomparable).

Expected figures measured 2026-11-29 by the same code (tests/regression/conftest.py), printed by:

    .venv/bin/python tests/regression/regenerate.py --only split
"""

from __future__ import annotations

import json

EXPECTED = {
    "documents": 961,
    "train_articles": 112,
    "eval_articles": 28,
    "train_questions": 4622,
    "eval_questions": 1152,
    "eval_ids_sha256": "62e339459950e0fff9c28ee091e9f390611e3b42e6e4ce8a611cf26e9dfa6c28",
}


def test_prepare_korquad_seed_42_gives_the_recorded_split(run_cli, korquad_path, tmp_path, measure):
    rc, out, _ = run_cli(measure.split_argv(korquad_path, tmp_path / "split"), modules=("data",))
    assert rc == 0
    figures = measure.split(tmp_path / "split")
    assert figures == EXPECTED
    report = json.loads(out)  # what the command prints agrees with what it wrote
    counts = ("documents", "train_articles", "eval_articles", "train_questions", "eval_questions")
    assert {k: report[k] for k in counts} == {k: figures[k] for k in counts}
    assert report["articles"] == EXPECTED["train_articles"] + EXPECTED["eval_articles"]


def test_another_seed_gives_another_split(run_cli, korquad_path, tmp_path, measure):
    """The fingerprint tells splits apart: same counts need not mean the same split."""
    argv = measure.split_argv(korquad_path, tmp_path / "split")
    argv[argv.index("--seed") + 1] = "7"
    assert run_cli(argv, modules=("data",))[0] == 0
    assert measure.split(tmp_path / "split")["eval_ids_sha256"] != EXPECTED["eval_ids_sha256"]
