"""Augment stage: add training examples to a QA file. Every technique is a switch; with all of them
off the output is the input, unchanged. Only training data changes here — the one transform that also
applies at inference, query rewriting, is the pure function `rewrite_question`.

Generated examples are appended after the originals (ids suffixed or prefixed per technique) and the
whole output is re-validated with `odqa.data.load_qa` before it replaces `out_path`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from odqa.augment.query_rewrite import rewrite_question, rewrite_questions
from odqa.data import load_qa, write_qa
from odqa.errors import InputError
from odqa.schema import QAExample

logger = logging.getLogger(__name__)

__all__ = ["AugmentConfig", "augment", "rewrite_question", "rewrite_questions"]

QG_STYLES = ("wh", "cloze")
QG_SOURCES = ("train", "passages")


@dataclass
class AugmentConfig:
    # (a) hard negatives: no-answer examples per question from the BM25 index (needs index_dir); 0 = off
    hard_negatives: int = 0
    hard_negative_pool: int = 10  # how many retrieved passages to look through per question
    hard_negative_weight: float = 1.0
    # (b) masked-context copies: probability of masking each noun outside the answer; 0 = off
    mask_prob: float = 0.0
    mask_token: str = "[MASK]"  # the reader tokenizer's mask string (odqa's WordPiece uses [MASK])
    # (c) query rewriting: add a copy with particles and interrogative endings dropped
    query_rewrite: bool = False
    # (d) question generation: pairs per passage; 0 = off. Source "train": the training contexts;
    # "passages": every passage of passages_path (the whole corpus — includes eval documents' text).
    qg_per_passage: int = 0
    qg_style: str = "wh"
    qg_model: str | None = None  # a seq2seq model (hub name or local dir) writes the questions instead
    qg_source: str = "train"
    qg_max_passages: int | None = None
    qg_weight: float = 1.0
    # (e) pseudo-label filter for generated pairs: keep those this reader answers
    filter_reader: str | None = None
    filter_metric: str = "f1"
    filter_threshold: float = 0.5
    seed: int = 42

    def __post_init__(self) -> None:
        if self.hard_negatives < 0 or self.qg_per_passage < 0:
            raise InputError("hard_negatives and qg_per_passage must be >= 0")
        if not 0.0 <= self.mask_prob <= 1.0:
            raise InputError("mask_prob must be between 0 and 1")
        if self.qg_style not in QG_STYLES:
            raise InputError(f"qg_style must be one of {QG_STYLES}")
        if self.qg_source not in QG_SOURCES:
            raise InputError(f"qg_source must be one of {QG_SOURCES}")
        if self.filter_metric not in ("em", "f1"):
            raise InputError("filter_metric must be 'em' or 'f1'")


def _source_passages(config: AugmentConfig, examples: list[QAExample], passages_path):
    from odqa.augment.question_generation import SourcePassage

    if config.qg_source == "passages":
        if passages_path is None:
            raise InputError("qg_source='passages' needs passages_path")
        from odqa.io import iter_jsonl
        from odqa.schema import Passage

        sources = [
            SourcePassage(p.doc_id, p.title, p.text, p.passage_id)
            for p in map(Passage.from_dict, iter_jsonl(passages_path))
        ]
    else:
        unique = {ex.context: ex for ex in examples if ex.context}
        sources = [SourcePassage(ex.document_id, ex.title, ex.context) for ex in unique.values()]
    return sources[: config.qg_max_passages]


def augment(
    config: AugmentConfig,
    qa_path: str | os.PathLike,
    out_path: str | os.PathLike,
    passages_path: str | os.PathLike | None = None,
    index_dir: str | os.PathLike | None = None,
) -> dict:
    """Write qa_path plus the switched-on augmentations to out_path; returns counts per technique."""
    examples = load_qa(qa_path).examples
    added: dict[str, list[QAExample]] = {}
    report: dict = {"config": asdict(config), "input_examples": len(examples)}

    if config.hard_negatives:
        if index_dir is None:
            raise InputError("hard_negatives needs index_dir (a retrieval index of the passages)")
        from odqa.augment.hard_negatives import hard_negative_examples
        from odqa.retrieval.base import load_retriever

        added["hard_negatives"] = hard_negative_examples(
            examples,
            load_retriever(index_dir),
            config.hard_negatives,
            config.hard_negative_pool,
            config.hard_negative_weight,
        )
    if config.mask_prob > 0:
        from odqa.augment.masking import masked_copies

        added["masking"] = masked_copies(examples, config.mask_prob, config.mask_token, config.seed)
    if config.query_rewrite:
        from odqa.augment.query_rewrite import rewritten_copies

        added["query_rewrite"] = rewritten_copies(examples)
    if config.qg_per_passage:
        from odqa.augment.question_generation import generate_questions

        generated = generate_questions(
            _source_passages(config, examples, passages_path),
            config.qg_per_passage,
            style=config.qg_style,
            qg_model=config.qg_model,
            weight=config.qg_weight,
            seed=config.seed,
        )
        report["qg_generated"] = len(generated)
        if config.filter_reader:
            from odqa.augment.pseudo_label import filter_by_reader

            generated, report["pseudo_label_filter"] = filter_by_reader(
                generated, config.filter_reader, config.filter_metric, config.filter_threshold
            )
        added["question_generation"] = generated

    output = list(examples)
    for items in added.values():
        output += items
    report["added"] = {name: len(items) for name, items in added.items()}
    report["output_examples"] = len(output)
    _write_validated(output, Path(out_path))
    logger.info("augment: %d -> %d examples %s", len(examples), len(output), report["added"])
    return report


def _write_validated(examples: list[QAExample], out_path: Path) -> None:
    """Validate the output exactly as real input is validated (load_qa, strict) before it replaces out_path."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.", dir=out_path.parent))
    try:
        tmp = tmp_dir / "qa.jsonl"
        write_qa(tmp, examples)
        load_qa(tmp)
        os.replace(tmp, out_path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
