"""Exact match and F1 exactly as the official scripts compute them.

`korquad`: the official KorQuAD 1.0 evaluation script, evaluate-v1.0 (F1 over characters, since Korean words carry particles).
`squad`: the official SQuAD 1.1 evaluation script, evaluate-v1.1 (F1 over whitespace tokens, English articles removed).
Both scripts add per-question scores in dataset order and divide at the end; `score` does the same
so results agree to the last digit.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable
from typing import Literal, get_args

from pydantic import Field

from odqa.config import StageConfig

Metric = Literal["korquad", "squad"]
METRICS = get_args(Metric)
# How predict and ensemble choose the answer from a question's n-best list (`expected_f1_pick`).
AnswerPick = Literal["top", "expected_f1"]
ANSWER_PICK_HELP = (
    "top: the highest-scored answer; expected_f1: the n-best answer with the highest F1 expected under "
    "the n-best's probabilities sharpened by pick_temperature (docs/reader-recipe.md)"
)
PICK_TEMPERATURE_HELP = (
    "expected_f1's temperature: the n-best probabilities are raised to 1/T and renormalised (the softmax "
    "of the scores divided by T); below 1 only near-ties are weighed against each other, 1 weighs the "
    "whole list (more F1, less EM)"
)
# docs/reader-recipe.md, "Expected F1 among near-ties": with answers merged by answer_key, T 0.25 against
# "top" over five readers EM -0.14 [-0.35, +0.07], F1 +0.17 [+0.01, +0.34]; T 1 costs about 1 EM.
DEFAULT_PICK_TEMPERATURE = 0.25

_KORQUAD_SPACED = re.compile("['\"《》<>〈〉()‘’]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str, metric: str = "korquad") -> str:
    if metric == "korquad":
        text = _KORQUAD_SPACED.sub(" ", text).lower()
        text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    elif metric == "squad":
        text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
        text = _ARTICLES.sub(" ", text)
    else:
        raise ValueError(f"unknown metric {metric!r}; known: {METRICS}")
    return " ".join(text.split())


def answer_key(text: str) -> str:
    """What makes two answers one: the KorQuAD normalisation exact match compares (case, spacing, quotes
    and punctuation aside). Predict sums an answer's spans by it, the ensemble its members' answers."""
    return normalize_answer(text, "korquad")


def exact_match(prediction: str, gold: str, metric: str = "korquad") -> bool:
    return normalize_answer(prediction, metric) == normalize_answer(gold, metric)


def f1(prediction: str, gold: str, metric: str = "korquad") -> float:
    return _f1_of_counts(_f1_counts(prediction, metric), _f1_counts(gold, metric))


def _f1_counts(text: str, metric: str) -> Counter:
    """The bag F1 compares: the normalised words, or their characters for korquad (spaces removed)."""
    tokens = normalize_answer(text, metric).split()
    if metric == "korquad":  # characters of the words, spaces removed
        tokens = [ch for tok in tokens for ch in tok]
    return Counter(tokens)


def _f1_of_counts(pred: Counter, gold: Counter) -> float:
    num_same = sum((pred & gold).values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / sum(pred.values())
    recall = 1.0 * num_same / sum(gold.values())
    return (2 * precision * recall) / (precision + recall)


def question_scores(prediction: str, golds: list[str], metric: str = "korquad") -> tuple[bool, float]:
    """(EM, F1) of one prediction: the best over its gold answers."""
    return (
        max(exact_match(prediction, g, metric) for g in golds),
        max(f1(prediction, g, metric) for g in golds),
    )


def score(
    golds: Iterable[tuple[str, list[str]]], predictions: dict[str, str], metric: str = "korquad"
) -> dict:
    """{exact_match, f1, total} over (id, gold answers) pairs, 0-100; an unanswered id scores 0."""
    em_sum = f1_sum = total = 0
    for qid, answers in golds:
        total += 1
        if qid not in predictions:
            continue
        em, f = question_scores(predictions[qid], answers, metric)
        em_sum += em
        f1_sum += f
    if total == 0:
        return {"exact_match": 0.0, "f1": 0.0, "total": 0}
    return {"exact_match": 100.0 * em_sum / total, "f1": 100.0 * f1_sum / total, "total": total}


def expected_f1_pick(texts: list[str], probs: list[float], metric: str = "korquad") -> int:
    """Index of the candidate with the highest F1 expected against the candidates themselves, each weighted
    by its probability (minimum Bayes risk for F1): a weak reader's top span is often one of several
    near-tied overlapping spans, and the one sharing most with the others scores more F1 on average.
    Ties keep the earlier (higher-ranked) candidate."""
    bags = [_f1_counts(t, metric) for t in texts]  # each text normalised once, not once per pair
    # A candidate whose weight underflows adds nothing to any value; at temperature 0.25 most do.
    weighed = [(bags[j], p) for j, p in enumerate(probs) if p > 0]
    best, best_value = 0, -1.0
    for i, bag in enumerate(bags):
        value = sum(p * _f1_of_counts(bag, other) for other, p in weighed)
        if value > best_value + 1e-12:
            best, best_value = i, value
    return best


def pick_weights(log_scores: list[float], temperature: float) -> list[float]:
    """The softmax of `log_scores` divided by `temperature`: the n-best probabilities raised to
    1/temperature and renormalised. Computed from the largest, so that small weights underflow to 0, not
    NaN; a -inf score (an answer with no probability) weighs 0."""
    peak = max(log_scores, default=-math.inf)
    if peak == -math.inf:
        return [0.0] * len(log_scores)
    exps = [math.exp((x - peak) / temperature) for x in log_scores]
    total = math.fsum(exps)
    return [e / total for e in exps]


def pick_first(
    entries: list[dict],
    log_scores: list[float],
    pick: str,
    temperature: float = DEFAULT_PICK_TEMPERATURE,
) -> list[dict]:
    """`entries` (an n-best list, best score first) with the answer `pick` chooses moved to the front, so
    that every reader of the list (predictions, serving, the ensemble) takes the same answer. `log_scores`
    are the list's scores in logs (any offset); expected_f1 weighs the candidates by their softmax at
    `temperature`."""
    if pick == "top" or len(entries) < 2:
        return entries
    i = expected_f1_pick([e["text"] for e in entries], pick_weights(log_scores, temperature))
    return [entries[i], *entries[:i], *entries[i + 1 :]]


class AnswerPickFields(StageConfig):
    """How a stage that writes n-best lists chooses their first answer, declared once for predict
    (PredictConfig) and the ensemble (EnsembleConfig)."""

    # Over five readers, with answers merged by answer_key, against "top": EM -0.14 [-0.35, +0.07], F1 +0.17
    # [+0.01, +0.34] at the default temperature 0.25 (docs/reader-recipe.md, "Expected F1 among near-ties").
    answer_pick: AnswerPick = Field("expected_f1", description=ANSWER_PICK_HELP)
    pick_temperature: float = Field(
        DEFAULT_PICK_TEMPERATURE, gt=0, le=100, allow_inf_nan=False, description=PICK_TEMPERATURE_HELP
    )

    def pick_first(self, entries: list[dict], log_scores: list[float]) -> list[dict]:
        """`entries` with this config's answer first (`pick_first`)."""
        return pick_first(entries, log_scores, self.answer_pick, self.pick_temperature)
