"""Retrieve passages for every question of a QA file: the retrieve stage (index dir + qa -> retrieved.jsonl)."""

from __future__ import annotations

import logging
from pathlib import Path

from odqa.data import load_qa
from odqa.errors import InputError
from odqa.io import check_output_file, write_jsonl
from odqa.progress import progress_bar
from odqa.retrieval.base import load_retriever
from odqa.schema import QAExample, RetrievalResult

logger = logging.getLogger(__name__)

BATCH_SIZE = 256  # questions per search call: bounds memory for large corpora, keeps progress moving


def load_questions(qa_path: str | Path) -> list[QAExample]:
    """The questions of a QA file; open-domain gold (no context, answers without offsets) is accepted,
    retrieval needs neither."""
    return load_qa(qa_path, open_domain=True).examples


def retrieve(index_dir: str | Path, qa_path: str | Path, out_path: str | Path, top_k: int = 20) -> Path:
    """Writes retrieved.jsonl: one RetrievalResult per question, in the QA file's order."""
    if top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k}")
    check_output_file(out_path)
    retriever = load_retriever(index_dir)
    examples = load_questions(qa_path)
    results: list[RetrievalResult] = []
    with progress_bar(total=len(examples), desc="retrieve", unit="q") as bar:
        for start in range(0, len(examples), BATCH_SIZE):
            batch = examples[start : start + BATCH_SIZE]
            for example, hits in zip(
                batch, retriever.search([e.question for e in batch], top_k), strict=True
            ):
                results.append(RetrievalResult(example.id, example.question, hits))
            bar.update(len(batch))
    write_jsonl(out_path, (r.to_dict() for r in results))
    logger.info("retrieved top-%d passages for %d questions into %s", top_k, len(results), out_path)
    return Path(out_path)
