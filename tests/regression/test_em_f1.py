"""EM/F1 of fixed, deterministic prediction sets against KorQuAD 1.0 dev, through the evaluate
stage, under both metrics: pins normalisation and F1 (characters for korquad, words for squad) to
the figures the official-script-equivalent code in odqa.evaluation gave when they were recorded.

The predictions are built from the data (tests/regression/conftest.py `fixed_predictions`):
the first three words of each context, the first gold answer without its last character, and the
first gold answer with a particle (은) appended. Expected figures (0-100) measured 2026-11-29 by:

    .venv/bin/python tests/regression/regenerate.py --only predictions
"""

from __future__ import annotations

import pytest

EXPECTED = {
    "first_three_words/korquad": {"exact_match": 0.34638, "f1": 10.394878, "total": 5774},
    "first_three_words/squad": {"exact_match": 0.34638, "f1": 3.28983, "total": 5774},
    "gold_minus_last_char/korquad": {"exact_match": 1.714583, "f1": 84.425227, "total": 5774},
    "gold_minus_last_char/squad": {"exact_match": 1.541392, "f1": 22.840745, "total": 5774},
    "gold_with_particle/korquad": {"exact_match": 0.0, "f1": 88.81866, "total": 5774},
    "gold_with_particle/squad": {"exact_match": 0.0, "f1": 21.100369, "total": 5774},
}
TOLERANCE = 1e-3  # on the 0-100 scale: far below one question (100 / 5,774 = 0.017)


@pytest.fixture(scope="module")
def measured(tmp_path_factory, korquad_path, measure) -> dict[str, dict[str, float]]:
    return measure.predictions(korquad_path, tmp_path_factory.mktemp("predictions"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_em_f1_of_fixed_predictions_are_the_recorded_figures(measured, name):
    assert measured[name] == pytest.approx(EXPECTED[name], abs=TOLERANCE)


def test_no_unrecorded_prediction_set(measured):
    assert sorted(measured) == sorted(EXPECTED)
