"""EM/F1 evaluation (KorQuAD 1.0 and SQuAD 1.1 official definitions)."""

from odqa.evaluation.evaluate import (
    EvaluateConfig,
    evaluate,
    load_question_scores,
    per_question_scores,
)
from odqa.evaluation.metrics import (
    METRICS,
    exact_match,
    expected_f1_pick,
    f1,
    normalize_answer,
    question_scores,
    score,
)

__all__ = [
    "METRICS",
    "EvaluateConfig",
    "evaluate",
    "exact_match",
    "expected_f1_pick",
    "f1",
    "load_question_scores",
    "normalize_answer",
    "per_question_scores",
    "question_scores",
    "score",
]
