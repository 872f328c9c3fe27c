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
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field

from odqa.augment.query_rewrite import rewrite_question, rewrite_questions
from odqa.config import StageConfig
from odqa.data import load_qa, write_qa
from odqa.errors import InputError
from odqa.io import check_output_file
from odqa.schema import QA_FILE, QAExample

logger = logging.getLogger(__name__)

__all__ = ["AugmentConfig", "augment", "rewrite_question", "rewrite_questions"]

QGStyle = Literal["wh", "cloze"]
QGSource = Literal["train", "passages"]
QG_STYLES = get_args(QGStyle)
QG_SOURCES = get_args(QGSource)


class AugmentConfig(StageConfig):
    # (a) hard negatives from the retrieval index (needs index_dir)
    hard_negatives: int = Field(
        0, ge=0, description="no-answer examples per question from the retrieval index (0: off)"
    )
    hard_negative_pool: int = Field(
        10, ge=1, description="retrieved passages looked through per question for hard negatives"
    )
    hard_negative_weight: float = Field(1.0, ge=0, description="loss weight of hard-negative examples")
    # (b) masked-context copies
    mask_prob: float = Field(
        0.0, ge=0, le=1, description="probability of masking each noun outside the answer (0: off)"
    )
    mask_token: str = Field(
        "[MASK]", description="mask string of the reader tokenizer (odqa's WordPiece uses [MASK])"
    )
    # (c) query rewriting
    query_rewrite: bool = Field(
        False, description="add a copy of each question with particles and interrogative endings dropped"
    )
    # (d) question generation. Source "train": the training contexts; "passages": every passage of
    # passages_path (the whole corpus - includes eval documents' text).
    qg_per_passage: int = Field(0, ge=0, description="generated questions per passage (0: off)")
    qg_style: QGStyle = Field("wh", description="rule-based question style")
    qg_model: str | None = Field(
        None, description="seq2seq question writer (hub name or local folder) instead of the rules"
    )
    qg_source: QGSource = Field(
        "train", description="what questions are generated from: training contexts or every passage"
    )
    qg_max_passages: int | None = Field(
        None, ge=1, description="generate from at most this many passages (none: all)"
    )
    qg_weight: float = Field(1.0, ge=0, description="loss weight of generated examples")
    # (e) pseudo-label filter for generated pairs
    filter_reader: str | None = Field(
        None, description="reader folder: keep only the generated pairs it answers (none: keep all)"
    )
    filter_metric: Literal["em", "f1"] = Field("f1", description="how the filter reader's answer is scored")
    filter_threshold: float = Field(0.5, description="keep a generated pair when its score is at least this")
    seed: int = Field(42, description="random seed")


def _source_passages(config: AugmentConfig, examples: list[QAExample], passages_path):
    from odqa.augment.question_generation import SourcePassage

    if config.qg_source == "passages":
        if passages_path is None:
            raise InputError("qg_source='passages' needs passages_path")
        from odqa.data import load_passages

        sources = [
            SourcePassage(p.document_id, p.title, p.text, p.passage_id) for p in load_passages(passages_path)
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
    check_output_file(out_path)
    examples = load_qa(qa_path).examples
    added: dict[str, list[QAExample]] = {}
    report: dict = {"config": config.to_dict(), "input_examples": len(examples)}

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
    check_output_file(out_path)  # a folder at out_path is refused, never replaced
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.", dir=out_path.parent))
    try:
        tmp = tmp_dir / QA_FILE
        write_qa(tmp, examples)
        load_qa(tmp)
        os.replace(tmp, out_path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
