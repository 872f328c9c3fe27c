"""Pseudo-label filtering: keep a generated pair only when the current reader, reading the pair's own
passage, finds the generated answer — pairs a reader cannot answer are mostly bad questions."""

from __future__ import annotations

import logging
from pathlib import Path

from odqa.evaluation import question_scores
from odqa.schema import QAExample

logger = logging.getLogger(__name__)


def filter_by_reader(
    examples: list[QAExample], reader_dir: str | Path, metric: str, threshold: float
) -> tuple[list[QAExample], dict]:
    """(kept examples, stats). metric 'em': exact match; 'f1': KorQuAD character F1 >= threshold."""
    from odqa.reader.predict import PredictConfig, Reader, results_from_gold

    if not examples:
        return [], {"checked": 0, "kept": 0}
    reader = Reader.load(reader_dir)
    predictions, _ = reader.predict(results_from_gold(examples), PredictConfig(n_best=5))
    kept = []
    for ex in examples:
        em, f1 = question_scores(predictions.get(ex.id, ""), ex.answers["text"])
        if em if metric == "em" else f1 >= threshold:
            kept.append(ex)
    stats = {"checked": len(examples), "kept": len(kept)}
    logger.info("pseudo-label filter kept %d of %d generated pairs", len(kept), len(examples))
    return kept, stats
