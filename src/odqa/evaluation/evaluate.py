"""Evaluate stage: EM/F1 of predictions.json against gold QA, and, given retrieved.jsonl, the same
split by whether retrieval found the gold document (so reader and retriever errors can be told apart)."""

from __future__ import annotations

import logging
import os

from pydantic import Field

from odqa.config import StageConfig
from odqa.data import load_doc_aliases, load_qa, load_retrieved
from odqa.errors import InputError
from odqa.evaluation.metrics import METRICS, Metric, question_scores, score
from odqa.io import check_output_file, read_json, write_json
from odqa.schema import QAExample

logger = logging.getLogger(__name__)

# Per-question EM/F1 beside metrics.json: what register's paired bootstrap compares (odqa.registry).


class EvaluateConfig(StageConfig):
    metric: Metric = Field(
        "korquad", description=f"answer normalisation of the official script: {' or '.join(METRICS)}"
    )
    top_k: int | None = Field(
        None,
        ge=1,
        description="with retrieved passages: gold counts as retrieved within the first top_k hits "
        "(none: all)",
    )
    strict: bool = Field(
        False,
        description="predictions for ids not in the gold, or gold questions without a prediction, are an "
        "error instead of a warning (they are counted in metrics.json either way)",
    )


def evaluate(
    config: EvaluateConfig,
    qa_path: str | os.PathLike,
    predictions_path: str | os.PathLike,
    out_path: str | os.PathLike,
    retrieved_path: str | os.PathLike | None = None,
    doc_aliases_path: str | os.PathLike | None = None,
    question_scores_path: str | os.PathLike | None = None,
) -> dict:
    """metrics.json at out_path; with question_scores_path also every question's EM and F1 (0-100)."""
    check_output_file(out_path)
    if question_scores_path is not None:
        check_output_file(question_scores_path)
    # Open-domain gold (no context, answers without offsets) is enough: EM/F1 compare texts only.
    examples = load_qa(qa_path, open_domain=True).examples
    for ex in examples:
        if not ex.answers["text"]:
            raise InputError("question without gold answers cannot be scored", path=qa_path, record=ex.id)
    predictions = load_predictions(predictions_path)
    golds = [(ex.id, ex.answers["text"]) for ex in examples]
    metrics = {"metric": config.metric, **score(golds, predictions, config.metric)}
    gold_ids = {ex.id for ex in examples}
    unknown = [qid for qid in predictions if qid not in gold_ids]
    missing = [ex.id for ex in examples if ex.id not in predictions]
    metrics["answered"] = len(examples) - len(missing)
    metrics["unknown_ids"] = len(unknown)
    metrics["missing_ids"] = len(missing)
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} prediction ids are not in the gold {qa_path} (e.g. {unknown[0]!r})")
    if missing:
        problems.append(
            f"{len(missing)} of {len(examples)} gold questions have no prediction and score 0 "
            f"(e.g. {missing[0]!r})"
        )
    if problems and config.strict:
        raise InputError("; ".join(problems) + " (--strict)", path=predictions_path)
    for problem in problems:
        logger.warning("%s: %s", predictions_path, problem)

    if retrieved_path is not None:
        aliases = load_doc_aliases(doc_aliases_path)
        found = gold_retrieved(examples, retrieved_path, aliases, config.top_k, qa_path)
        hit = [g for g in golds if found[g[0]]]
        miss = [g for g in golds if not found[g[0]]]
        metrics["breakdown"] = {
            "top_k": config.top_k,
            "gold_retrieved": score(hit, predictions, config.metric),
            "gold_not_retrieved": score(miss, predictions, config.metric),
        }
    write_json(out_path, metrics)
    if question_scores_path is not None:
        write_json(
            question_scores_path,
            {"metric": config.metric, "questions": per_question_scores(golds, predictions, config.metric)},
            indent=None,
        )
    logger.info(
        "EM %.2f  F1 %.2f  over %d questions", metrics["exact_match"], metrics["f1"], metrics["total"]
    )
    return metrics


def per_question_scores(
    golds: list[tuple[str, list[str]]], predictions: dict[str, str], metric: str
) -> dict[str, dict[str, float]]:
    """{id: {"exact_match": 0|100, "f1": 0..100}}; an unanswered question scores 0 (as in `score`)."""
    out = {}
    for qid, answers in golds:
        em, f = question_scores(predictions[qid], answers, metric) if qid in predictions else (False, 0.0)
        out[qid] = {"exact_match": 100.0 * em, "f1": 100.0 * f}
    return out


def load_question_scores(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """question_scores.json's {id: {"exact_match", "f1"}}, checked."""
    data = read_json(path)
    questions = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(questions, dict):
        raise InputError('not a question scores file: expected {"questions": {id: {...}}}', path=path)
    for qid, values in questions.items():
        if not isinstance(values, dict) or not all(
            isinstance(values.get(k), (int, float)) for k in ("exact_match", "f1")
        ):
            raise InputError("question scores need numeric exact_match and f1", path=path, record=qid)
    return questions


def load_predictions(path: str | os.PathLike) -> dict[str, str]:
    predictions = read_json(path)
    if not isinstance(predictions, dict):
        raise InputError("predictions must be a JSON object {question id: answer text}", path=path)
    for qid, text in predictions.items():
        if not isinstance(text, str):
            raise InputError(f"prediction must be a string, got {type(text).__name__}", path=path, record=qid)
    return predictions


def gold_retrieved(
    examples: list[QAExample],
    retrieved_path: str | os.PathLike,
    aliases: dict[str, str],
    top_k: int | None,
    qa_path: str | os.PathLike,
) -> dict[str, bool]:
    """{question id: gold document among its retrieved passages}; a question missing from
    retrieved.jsonl counts as not retrieved."""
    retrieved = {
        result.id: {aliases.get(h.document_id, h.document_id) for h in result.passages[:top_k]}
        for result in load_retrieved(retrieved_path)
    }
    found = {}
    for ex in examples:
        if not ex.document_id:
            raise InputError(
                "no document_id: the retrieval breakdown needs the gold document", path=qa_path, record=ex.id
            )
        found[ex.id] = aliases.get(ex.document_id, ex.document_id) in retrieved.get(ex.id, set())
    missing = sum(1 for ex in examples if ex.id not in retrieved)
    if missing:
        logger.warning("%d questions are missing from %s; counted as not retrieved", missing, retrieved_path)
    return found
