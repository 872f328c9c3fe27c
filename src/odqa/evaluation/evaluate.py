"""Evaluate stage: EM/F1 of predictions.json against gold QA, and, given retrieved.jsonl, the same
split by whether retrieval found the gold document (so reader and retriever errors can be told apart)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from odqa.data import load_qa
from odqa.errors import InputError
from odqa.evaluation.metrics import METRICS, score
from odqa.io import iter_jsonl, read_json, write_json
from odqa.schema import QAExample

logger = logging.getLogger(__name__)


@dataclass
class EvaluateConfig:
    metric: str = "korquad"
    top_k: int | None = None  # breakdown: gold counts as retrieved within the first top_k hits (None: all)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise InputError(f"unknown metric {self.metric!r}; known: {METRICS}")
        if self.top_k is not None and self.top_k < 1:
            raise InputError("top_k must be positive")


def evaluate(
    config: EvaluateConfig,
    qa_path: str | os.PathLike,
    predictions_path: str | os.PathLike,
    out_path: str | os.PathLike,
    retrieved_path: str | os.PathLike | None = None,
    doc_aliases_path: str | os.PathLike | None = None,
) -> dict:
    examples = load_qa(qa_path).examples
    for ex in examples:
        if not ex.answers["text"]:
            raise InputError("question without gold answers cannot be scored", path=qa_path, record=ex.id)
    predictions = load_predictions(predictions_path)
    golds = [(ex.id, ex.answers["text"]) for ex in examples]
    metrics = {"metric": config.metric, **score(golds, predictions, config.metric)}
    gold_ids = {ex.id for ex in examples}
    metrics["answered"] = sum(1 for qid in gold_ids if qid in predictions)
    unknown = len(set(predictions) - gold_ids)
    if unknown:
        logger.warning("%d predictions have ids that are not in %s; ignored", unknown, qa_path)
    if metrics["answered"] < len(examples):
        logger.warning("%d questions have no prediction and score 0", len(examples) - metrics["answered"])

    if retrieved_path is not None:
        aliases = read_doc_aliases(doc_aliases_path) if doc_aliases_path is not None else {}
        found = gold_retrieved(examples, retrieved_path, aliases, config.top_k, qa_path)
        hit = [g for g in golds if found[g[0]]]
        miss = [g for g in golds if not found[g[0]]]
        metrics["breakdown"] = {
            "top_k": config.top_k,
            "gold_retrieved": score(hit, predictions, config.metric),
            "gold_not_retrieved": score(miss, predictions, config.metric),
        }
    write_json(out_path, metrics)
    logger.info(
        "EM %.2f  F1 %.2f  over %d questions", metrics["exact_match"], metrics["f1"], metrics["total"]
    )
    return metrics


def load_predictions(path: str | os.PathLike) -> dict[str, str]:
    predictions = read_json(path)
    if not isinstance(predictions, dict):
        raise InputError("predictions must be a JSON object {question id: answer text}", path=path)
    for qid, text in predictions.items():
        if not isinstance(text, str):
            raise InputError(f"prediction must be a string, got {type(text).__name__}", path=path, record=qid)
    return predictions


def read_doc_aliases(path: str | os.PathLike) -> dict[str, str]:
    aliases = read_json(path)
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise InputError("doc aliases must be a JSON object {dropped doc id: kept doc id}", path=path)
    return aliases


def gold_retrieved(
    examples: list[QAExample],
    retrieved_path: str | os.PathLike,
    aliases: dict[str, str],
    top_k: int | None,
    qa_path: str | os.PathLike,
) -> dict[str, bool]:
    """{question id: gold document among its retrieved passages}; a question missing from
    retrieved.jsonl counts as not retrieved."""
    retrieved: dict[str, set[str]] = {}
    for lineno, record in enumerate(iter_jsonl(retrieved_path), start=1):
        if "id" not in record or not isinstance(record.get("passages"), list):
            raise InputError(
                "retrieved record needs 'id' and a 'passages' list",
                path=retrieved_path,
                record=f"line {lineno}",
            )
        hits = record["passages"][:top_k] if top_k else record["passages"]
        try:
            retrieved[str(record["id"])] = {aliases.get(str(h["doc_id"]), str(h["doc_id"])) for h in hits}
        except (KeyError, TypeError):
            raise InputError(
                "each passage needs a 'doc_id'", path=retrieved_path, record=record["id"]
            ) from None
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
