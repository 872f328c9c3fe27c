"""BM25 on KorQuAD 1.0 dev open-domain (every unique paragraph, every question): exact recall and MRR
per analyzer, so a change to analysis, indexing, scoring or evaluation shows up as a moved figure
instead of hiding above a loose floor.

Expected figures measured 2026-11-29 (bm25s 0.3.16, kiwipiepy 0.24.1, default BM25Config: lucene,
k1 1.5, b 0.75, title prefix on) by the same code (tests/regression/conftest.py), printed by:

    .venv/bin/python tests/regression/regenerate.py --only bm25
"""

from __future__ import annotations

import pytest

EXPECTED_PASSAGES = 961
EXPECTED_QUESTIONS = 5774
# By gold document, top 20.
EXPECTED = {
    "whitespace": {"recall@1": 0.752338, "recall@5": 0.876515, "recall@20": 0.916176, "mrr": 0.80633},
    "bigram": {"recall@1": 0.906997, "recall@5": 0.989089, "recall@20": 0.998268, "mrr": 0.943434},
    "kiwi": {"recall@1": 0.905958, "recall@5": 0.982681, "recall@20": 0.994804, "mrr": 0.940838},
    "kiwi+bigram": {"recall@1": 0.927433, "recall@5": 0.99238, "recall@20": 0.998268, "mrr": 0.956749},
}
TOLERANCE = 1e-3  # about 6 of 5,774 questions


@pytest.fixture(
    scope="module",
    params=[
        "whitespace",
        "bigram",
        pytest.param("kiwi", marks=pytest.mark.integration),  # Kiwi reads the corpus: about 10 s
        pytest.param("kiwi+bigram", marks=pytest.mark.integration),
    ],
)
def measured(request, open_domain, measure) -> tuple[str, dict[str, float]]:
    """(analyzer, figures), each index built once."""
    passages_path, questions, work = open_domain
    return request.param, measure.bm25(request.param, passages_path, questions, work)


def test_corpus_is_every_korquad_dev_paragraph_and_question(open_domain):
    passages_path, questions, _ = open_domain
    with open(passages_path, encoding="utf-8") as f:
        assert sum(1 for _ in f) == EXPECTED_PASSAGES
    assert len(questions) == EXPECTED_QUESTIONS


def test_bm25_recall_and_mrr_are_the_recorded_figures(measured):
    analyzer, figures = measured
    assert figures == pytest.approx(EXPECTED[analyzer], abs=TOLERANCE), analyzer


def test_every_analyzer_has_recorded_figures():
    """A new analyzer must get figures here, not slip through unmeasured."""
    from odqa.text.analyzers import ANALYZERS

    assert sorted(EXPECTED) == sorted(ANALYZERS)
