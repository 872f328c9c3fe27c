"""k-fold training data (odqa.reader.folds): cut by article, every question in exactly one dev fold."""

from __future__ import annotations

import json

import pytest

from odqa.data import load_qa
from odqa.errors import InputError
from odqa.io import read_json
from odqa.reader.config import FoldsConfig
from odqa.reader.folds import FOLDS_FILE, assign_folds, make_folds


def test_folds_partition_questions_by_article(korquad_split, tmp_path):
    specs = make_folds(FoldsConfig(folds=3, seed=1), korquad_split.train_path, tmp_path / "folds")
    examples = load_qa(korquad_split.train_path).examples
    assert [s.fold for s in specs] == [0, 1, 2]
    dev_ids: list[str] = []
    for spec in specs:
        train = load_qa(tmp_path / "folds" / spec.train).examples
        dev = load_qa(tmp_path / "folds" / spec.dev).examples
        assert len(train) + len(dev) == len(examples) == spec.train_questions + spec.dev_questions
        assert not {ex.title for ex in train} & {ex.title for ex in dev}  # no article on both sides
        dev_ids += [ex.id for ex in dev]
    assert sorted(dev_ids) == sorted(ex.id for ex in examples)  # each question held out exactly once
    sizes = [s.dev_questions for s in specs]
    assert max(sizes) - min(sizes) < 0.1 * len(examples)  # balanced within about one article
    assert read_json(tmp_path / "folds" / FOLDS_FILE)["folds"][1] == specs[1].to_dict()


def test_assignment_is_seeded_and_balanced():
    sizes = {"a": 5, "b": 4, "c": 3, "d": 3, "e": 1}
    keys = [k for k, n in sizes.items() for _ in range(n)]
    one = assign_folds(keys, sizes, 2, seed=0)
    assert one == assign_folds(keys, sizes, 2, seed=0)
    loads = [sum(sizes[a] for a, f in one.items() if f == k) for k in range(2)]
    assert sorted(loads) == [8, 8]


def test_too_few_articles_is_one_input_error_and_writes_nothing(tiny_qa, tmp_path):
    titles = {ex.title for ex in load_qa(tiny_qa).examples}
    with pytest.raises(InputError, match="articles"):
        make_folds(FoldsConfig(folds=len(titles) + 1), tiny_qa, tmp_path / "folds")
    assert not (tmp_path / "folds").exists()


def test_cli_folds(run_cli, tiny_qa, tmp_path):
    rc, stdout, _ = run_cli(
        ["folds", "--train", tiny_qa, "--out", tmp_path / "f", "--folds", "2"], modules=("reader",)
    )
    assert rc == 0
    specs = json.loads(stdout.strip().splitlines()[-1])
    assert [s["fold"] for s in specs] == [0, 1] and (tmp_path / "f" / specs[0]["train"]).is_file()
    rc, _, stderr = run_cli(
        ["folds", "--train", tiny_qa, "--out", tmp_path / "g", "--folds", "1"], modules=("reader",)
    )
    assert rc == 2 and "--folds" in stderr and stderr.count("\n") == 1
