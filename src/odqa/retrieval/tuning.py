"""Tuning a two-retriever fusion weight on dev questions (never the questions reported as results)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from odqa.data import load_doc_aliases
from odqa.errors import InputError
from odqa.retrieval.base import load_retriever
from odqa.retrieval.evaluate import retrieval_metrics
from odqa.retrieval.fusion import fuse
from odqa.retrieval.search import load_questions
from odqa.schema import RetrievalResult

log = logging.getLogger(__name__)


@dataclass
class FusionTuning:
    weight: float  # weight of the first index; the second gets 1 - weight
    metric: str
    value: float
    scores: dict[float, float]  # weight -> metric on the dev questions


def tune_fusion_weight(
    index_dirs: list[str | Path],
    qa_path: str | Path,
    *,
    fusion: str = "minmax",
    metric: str = "recall@1",
    grid: list[float] | None = None,
    depth: int = 100,
    rrf_k: int = 60,
    doc_aliases_path: str | Path | None = None,
    plot_path: str | Path | None = None,
) -> FusionTuning:
    """Pick the weight of the first of two retrievers that maximises `metric` (recall@k or mrr, by gold
    document) on the questions of `qa_path`, which must not be the ones reported as test results."""
    if len(index_dirs) != 2:
        raise InputError(f"tune_fusion_weight fuses exactly two indexes, got {len(index_dirs)}")
    grid = grid if grid is not None else [round(w, 2) for w in np.linspace(0.0, 1.0, 21)]
    examples = load_questions(qa_path)
    questions = [e.question for e in examples]
    candidates = [load_retriever(d).search(questions, depth) for d in index_dirs]
    aliases = load_doc_aliases(doc_aliases_path)
    scores: dict[float, float] = {}
    for weight in grid:
        results = [
            RetrievalResult(e.id, e.question, fuse([a, b], fusion, [weight, 1.0 - weight], rrf_k)[:depth])
            for e, a, b in zip(examples, candidates[0], candidates[1], strict=True)
        ]
        by_document = retrieval_metrics(results, examples, aliases)["by_document"]
        if metric not in by_document:
            raise InputError(
                f"unknown metric {metric!r}; known: {sorted(k for k in by_document if k != 'total')}"
            )
        scores[weight] = float(by_document[metric])
    best = max(grid, key=lambda w: (scores[w], -abs(w - 0.5)))  # ties: the more balanced weight
    log.info("fusion %s: best weight %.2f (%s %.4f)", fusion, best, metric, scores[best])
    if plot_path is not None:
        _plot_tuning(scores, metric, fusion, Path(plot_path))
    return FusionTuning(best, metric, scores[best], scores)


def _plot_tuning(scores: dict[float, float], metric: str, fusion: str, path: Path) -> None:
    from odqa.reports import line_plot

    line_plot(
        path,
        list(scores),
        list(scores.values()),
        xlabel="weight of the first retriever",
        ylabel=metric,
        title=f"{fusion} fusion weight (dev)",
    )
