"""Curriculum: score training examples by how hard they are for trained readers, then write the QA file
ordered easy -> hard and/or with loss weights (the trainer keeps file order with shuffle=False and scales
each example's loss by QAExample.weight).

Difficulty is computed from a reader reading each example's own context, so it uses the labels only
as training data does — never at inference.
"""

from __future__ import annotations

import logging
import os
from typing import Literal, get_args

from pydantic import Field

from odqa.config import StageConfig
from odqa.data import load_qa, write_qa
from odqa.errors import InputError
from odqa.evaluation import question_scores
from odqa.io import write_json
from odqa.schema import QAExample

logger = logging.getLogger(__name__)

Scorer = Literal["margin", "agreement"]
SCORERS = get_args(Scorer)


class CurriculumConfig(StageConfig):
    renamed_keys = {"reader_dirs": "readers"}

    scorer: Scorer = Field(
        "margin",
        description="margin: one reader's best-minus-second n-best score (wrong top-1 answers count as "
        "hardest); agreement: mean F1 of several readers",
    )
    readers: list[str] = Field(
        default_factory=list, description="trained reader folder(s) that score difficulty"
    )
    order: bool = Field(True, description="write the examples easy -> hard")
    hardest_weight: float | None = Field(
        None,
        ge=0,
        le=1,
        description="loss weight of the hardest example; weights fall linearly with difficulty rank from "
        "1.0 (none: weights untouched)",
    )


def margin_difficulty(margin: float, correct: bool) -> float:
    """In (0, 1] for a correct top-1 (larger margin = easier), in [1, 2) for a wrong one (a confidently
    wrong answer is the hardest — or a label error)."""
    easiness = 1.0 / (1.0 + max(margin, 0.0))
    return easiness if correct else 2.0 - easiness


def agreement_difficulty(f1_scores: list[float]) -> float:
    """1 - mean F1 of several readers (0 = every reader gets it exactly)."""
    return 1.0 - sum(f1_scores) / len(f1_scores)


def apply_curriculum(
    examples: list[QAExample], difficulty: list[float], config: CurriculumConfig
) -> list[QAExample]:
    """Examples ordered easy -> hard (stable on ties) and/or with weights from difficulty rank."""
    if len(examples) != len(difficulty):
        raise InputError("one difficulty per example")
    ranked = sorted(range(len(examples)), key=lambda i: difficulty[i])
    out = [QAExample.from_dict(ex.to_dict()) for ex in examples]
    if config.hardest_weight is not None and len(out) > 1:
        for rank, i in enumerate(ranked):
            fraction = rank / (len(out) - 1)
            out[i].weight = examples[i].weight * (1.0 - (1.0 - config.hardest_weight) * fraction)
    return [out[i] for i in ranked] if config.order else out


def _nbest_margin(entries: list[dict]) -> float:
    if not entries:
        return 0.0
    second = entries[1]["score"] if len(entries) > 1 else 0.0
    return float(entries[0]["score"]) - float(second)


def reader_difficulty(examples: list[QAExample], config: CurriculumConfig) -> list[float]:
    """Difficulty per example from the configured readers reading each example's own context."""
    from odqa.reader.predict import PredictConfig, Reader, results_from_gold

    if not config.readers:
        raise InputError("curriculum needs at least one reader folder (readers)")
    if config.scorer == "margin" and len(config.readers) != 1:
        raise InputError("the margin scorer uses exactly one reader")
    results = results_from_gold(examples)
    per_reader = []
    for reader_dir in config.readers:
        predictions, nbest = Reader.load(reader_dir).predict(results, PredictConfig(n_best=5))
        per_reader.append((predictions, nbest))
    difficulty = []
    for ex in examples:
        scores = [question_scores(pred.get(ex.id, ""), ex.answers["text"]) for pred, _ in per_reader]
        if config.scorer == "margin":
            em, _ = scores[0]
            difficulty.append(margin_difficulty(_nbest_margin(per_reader[0][1].get(ex.id, [])), bool(em)))
        else:
            difficulty.append(agreement_difficulty([f1 for _, f1 in scores]))
    return difficulty


def curriculum(config: CurriculumConfig, qa_path: str | os.PathLike, out_path: str | os.PathLike) -> dict:
    """Write qa_path re-ordered / re-weighted to out_path; returns a summary (also <out_path>.report.json)."""
    examples = load_qa(qa_path).examples
    answerable = [ex.is_answerable for ex in examples]
    if not all(answerable):
        raise InputError(
            "curriculum scores answerable examples only (run it before adding no-answer ones)", path=qa_path
        )
    difficulty = reader_difficulty(examples, config)
    ordered = apply_curriculum(examples, difficulty, config)
    write_qa(out_path, ordered)
    sorted_difficulty = sorted(difficulty)
    summary = {
        "config": config.to_dict(),
        "examples": len(examples),
        "difficulty_quartiles": [
            sorted_difficulty[int(q * (len(examples) - 1))] for q in (0.0, 0.25, 0.5, 0.75, 1.0)
        ],
        "reader_wrong": sum(1 for d in difficulty if d > 1.0) if config.scorer == "margin" else None,
    }
    write_json(f"{out_path}.report.json", summary)
    logger.info("curriculum (%s): %d examples written to %s", config.scorer, len(examples), out_path)
    return summary
