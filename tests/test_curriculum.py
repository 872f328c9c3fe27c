"""Curriculum ordering and weighting from hand-made difficulty signals, and one real reader run."""

from __future__ import annotations

import pytest

from odqa.curriculum import (
    CurriculumConfig,
    agreement_difficulty,
    apply_curriculum,
    curriculum,
    margin_difficulty,
)
from odqa.data import load_qa, write_qa
from odqa.errors import InputError
from odqa.schema import QAExample


def examples(n: int) -> list[QAExample]:
    return [
        QAExample(id=f"q{i}", question="?", context="서울", answers={"answer_start": [0], "text": ["서울"]})
        for i in range(n)
    ]


def test_margin_difficulty_orders_confident_correct_first_and_wrong_last():
    # (margin, correct) per example
    signals = [(0.1, True), (5.0, True), (3.0, False), (0.0, False), (1.0, True)]
    difficulty = [margin_difficulty(m, c) for m, c in signals]
    ordered = apply_curriculum(examples(5), difficulty, CurriculumConfig())
    assert [ex.id for ex in ordered] == ["q1", "q4", "q0", "q3", "q2"]
    assert all(ex.weight == 1.0 for ex in ordered)


def test_agreement_difficulty_and_stable_ties():
    difficulty = [agreement_difficulty(f) for f in ([1.0, 1.0], [0.0, 0.5], [1.0, 0.0], [1.0, 1.0])]
    assert difficulty == [0.0, 0.75, 0.5, 0.0]
    ordered = apply_curriculum(examples(4), difficulty, CurriculumConfig())
    assert [ex.id for ex in ordered] == ["q0", "q3", "q2", "q1"]


def test_weights_fall_with_difficulty_rank_and_order_can_be_kept():
    exs = examples(3)
    exs[2].weight = 0.5  # an existing weight (e.g. generated data) is scaled, not replaced
    out = apply_curriculum(exs, [2.0, 0.0, 1.0], CurriculumConfig(order=False, hardest_weight=0.2))
    assert [ex.id for ex in out] == ["q0", "q1", "q2"]
    assert [ex.weight for ex in out] == pytest.approx([0.2, 1.0, 0.5 * 0.6])
    assert exs[0].weight == 1.0  # inputs untouched


def test_bad_config_is_rejected():
    with pytest.raises(InputError, match="scorer"):
        CurriculumConfig(scorer="loss")
    with pytest.raises(InputError, match="hardest_weight"):
        CurriculumConfig(hardest_weight=1.5)


@pytest.mark.integration
def test_curriculum_with_a_real_reader(korquad_split, tmp_path):
    from odqa.reader.train import ReaderTrainConfig, train_reader

    train = tmp_path / "train.jsonl"
    write_qa(train, load_qa(korquad_split.train_path).examples[:48])
    reader = train_reader(
        ReaderTrainConfig(max_steps=30, num_threads=1, max_length=192), train, tmp_path / "reader"
    )
    out = tmp_path / "curriculum.jsonl"
    summary = curriculum(CurriculumConfig(readers=[str(reader)], hardest_weight=0.5), train, out)
    ordered = load_qa(out).examples
    assert sorted(ex.id for ex in ordered) == sorted(ex.id for ex in load_qa(train).examples)
    weights = [ex.weight for ex in ordered]
    assert weights == sorted(weights, reverse=True) and weights[0] == 1.0 and weights[-1] == 0.5
    quartiles = summary["difficulty_quartiles"]
    assert quartiles == sorted(quartiles) and 0 < quartiles[0] <= quartiles[-1] < 2
    agreement = curriculum(CurriculumConfig(scorer="agreement", readers=[str(reader)] * 2), train, out)
    assert agreement["examples"] == 48
