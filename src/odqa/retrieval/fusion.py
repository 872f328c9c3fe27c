"""Rank fusion math: combine several rankings of the same queries into one.

Reciprocal rank fusion needs no tuning and ignores score scales; normalised score fusion (min-max or
z-score) keeps how sure each retriever is, with weights tuned on a dev split (odqa.retrieval.tuning)."""

from __future__ import annotations

import dataclasses
from typing import Literal, get_args

import numpy as np

from odqa.errors import InputError
from odqa.schema import Hit

Fusion = Literal["rrf", "minmax", "zscore"]
FUSIONS = get_args(Fusion)


def reciprocal_rank_fusion(
    rankings: list[list[Hit]], k: int = 60, weights: list[float] | None = None
) -> list[Hit]:
    """score(p) = sum_i w_i / (k + rank_i(p)), rank 1-based; a list that misses p adds nothing."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, hit in enumerate(ranking, start=1):
            fused[hit.passage_id] = fused.get(hit.passage_id, 0.0) + weight / (k + rank)
            first.setdefault(hit.passage_id, hit)
    return _ranked(fused, first)


def normalized_score_fusion(
    rankings: list[list[Hit]], weights: list[float] | None = None, normalization: str = "minmax"
) -> list[Hit]:
    """score(p) = sum_i w_i * norm_i(score_i(p)); a list that misses p contributes its own minimum
    normalised score (p ranked below everything that list returned)."""
    if normalization not in ("minmax", "zscore"):
        raise InputError(f"normalization must be minmax or zscore, not {normalization!r}")
    weights = weights or [1.0] * len(rankings)
    normalized: list[dict[str, float]] = []
    first: dict[str, Hit] = {}
    for ranking in rankings:
        scores = np.array([h.score for h in ranking], dtype=np.float64)
        if len(scores) == 0:
            normalized.append({})
            continue
        if normalization == "minmax":
            spread = scores.max() - scores.min()
            values = (scores - scores.min()) / spread if spread > 0 else np.ones_like(scores)
        else:
            std = scores.std()
            values = (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)
        normalized.append({h.passage_id: float(v) for h, v in zip(ranking, values, strict=True)})
        for hit in ranking:
            first.setdefault(hit.passage_id, hit)
    fused = {}
    for pid in first:
        total = 0.0
        for values, weight in zip(normalized, weights, strict=True):
            if values:
                total += weight * values.get(pid, min(values.values()))
        fused[pid] = total
    return _ranked(fused, first)


def fuse(
    rankings: list[list[Hit]], fusion: str, weights: list[float] | None = None, rrf_k: int = 60
) -> list[Hit]:
    if fusion == "rrf":
        return reciprocal_rank_fusion(rankings, k=rrf_k, weights=weights)
    return normalized_score_fusion(rankings, weights=weights, normalization=fusion)


def _ranked(fused: dict[str, float], first: dict[str, Hit]) -> list[Hit]:
    # ties keep first-seen order (dicts are ordered), so results are deterministic
    order = sorted(fused, key=lambda pid: -fused[pid])
    return [dataclasses.replace(first[pid], score=fused[pid]) for pid in order]
