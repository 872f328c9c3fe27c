"""Hybrid retrieval: fuse the rankings of two or more retrievers (e.g. BM25 + dense).

Lexical and dense retrievers fail on different questions, so a passage ranked well by either one is
worth reading. Reciprocal rank fusion needs no tuning and ignores score scales; normalised score
fusion (min-max or z-score) keeps how sure each retriever is, with a weight tuned on a dev split.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from odqa.errors import InputError
from odqa.io import atomic_dir, atomic_path, read_json, write_json
from odqa.retrieval.base import Retriever, config_from_options, load_retriever, read_retriever_config
from odqa.retrieval.evaluate import load_doc_aliases, retrieval_metrics
from odqa.retrieval.search import load_questions
from odqa.schema import RETRIEVER_CONFIG_FILE, Hit, RetrievalResult

log = logging.getLogger(__name__)

FUSIONS = ("rrf", "minmax", "zscore")


@dataclass
class HybridConfig:
    indexes: list[str] = field(default_factory=list)  # sub-retriever index folders (or "a,b" on the CLI)
    # Or sub-retrievers to build inside the hybrid's own folder: [{"kind": "bm25", "analyzer": ...}, ...]
    members: list[dict] = field(default_factory=list)
    fusion: str = "rrf"  # rrf | minmax | zscore
    rrf_k: int = 60
    weights: list[float] = field(default_factory=list)  # one per index; empty = equal weights
    depth: int = 100  # candidates fetched from each sub-retriever before fusing (at least top_k)

    def __post_init__(self) -> None:
        if isinstance(self.indexes, str):
            self.indexes = [p.strip() for p in self.indexes.split(",") if p.strip()]
        if isinstance(self.weights, str):
            self.weights = [float(w) for w in self.weights.split(",") if w.strip()]
        if isinstance(self.weights, int | float):
            self.weights = [float(self.weights), 1.0 - float(self.weights)]
        if self.members and self.indexes:
            raise InputError("hybrid takes either indexes (built already) or members (to build), not both")
        for member in self.members:
            if not isinstance(member, dict) or "kind" not in member:
                raise InputError(f"each hybrid member needs a 'kind', got {member!r}")
        if len(self.indexes or self.members) < 2:
            raise InputError(f"hybrid needs at least two sub-indexes, got {self.indexes or self.members!r}")
        if self.fusion not in FUSIONS:
            raise InputError(f"fusion must be one of {FUSIONS}, not {self.fusion!r}")
        if self.weights and len(self.weights) != len(self.indexes or self.members):
            raise InputError(f"{len(self.weights)} weights for {len(self.indexes or self.members)} indexes")
        if any(w < 0 for w in self.weights):
            raise InputError(f"weights must be non-negative: {self.weights}")

    def weight_list(self) -> list[float]:
        return list(self.weights) if self.weights else [1.0] * len(self.indexes or self.members)


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(list(scores), list(scores.values()), marker="o")
    ax.set_xlabel("weight of the first retriever")
    ax.set_ylabel(metric)
    ax.set_title(f"{fusion} fusion weight (dev)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


MEMBERS_DIR = "members"


def member_names(members: list[dict]) -> list[str]:
    """Folder names for built members: kind (+ analyzer), numbered when two would collide."""
    bases = ["-".join(str(m[k]).replace("+", "_") for k in ("kind", "analyzer") if m.get(k)) for m in members]
    return [base if bases.count(base) == 1 else f"{base}-{i}" for i, base in enumerate(bases)]


def sub_indexes(index_dir: str | Path) -> dict[str, Path]:
    """{name: folder} of a hybrid index's sub-retrievers (empty for any other index), so each can be
    evaluated on its own next to the fused ranking. Reads retriever.json only; loads no retriever."""
    index_dir = Path(index_dir).resolve()
    saved = read_json(index_dir / RETRIEVER_CONFIG_FILE)
    if not isinstance(saved, dict) or saved.get("type") != "hybrid":
        return {}
    folders = _resolved_indexes(index_dir, saved)
    names = saved.get("member_names") or [Path(p).name for p in folders]
    return {name: Path(p) for name, p in zip(names, folders, strict=True)}


def _resolved_indexes(index_dir: Path, saved: dict) -> list[str]:
    """Sub-index folders: beside the hybrid folder when they moved with it, else where they were built."""
    relative = saved.get("indexes_relative") or []
    resolved = []
    for i, absolute in enumerate(saved.get("indexes", [])):
        moved = index_dir / relative[i] if i < len(relative) else None
        resolved.append(
            str(moved if moved is not None and (moved / RETRIEVER_CONFIG_FILE).is_file() else absolute)
        )
    return resolved


class HybridRetriever:
    config_class = HybridConfig

    def __init__(self, config: HybridConfig, retrievers: list[Retriever]):
        self.config = config
        self.retrievers = retrievers

    @classmethod
    def build(
        cls, config: HybridConfig, passages_path: str | Path | None, index_dir: str | Path
    ) -> HybridRetriever:
        """Sub-indexes built separately (`indexes`) are recorded by where they are (also relative to
        `index_dir`, so the folders can move together); `members` are built from `passages_path` into
        `index_dir/members/`, so the hybrid folder is self-contained."""
        if config.members:
            return cls._build_members(config, passages_path, index_dir)
        target = Path(index_dir).resolve()
        absolute = [str(Path(p).resolve()) for p in config.indexes]
        retrievers = [load_retriever(p) for p in absolute]
        relative = [os.path.relpath(p, target) for p in absolute]
        stored: dict[str, Any] = {
            "type": "hybrid",
            **dataclasses.asdict(config),
            "indexes": absolute,
            "indexes_relative": relative,
        }
        with atomic_dir(index_dir) as tmp:
            write_json(tmp / RETRIEVER_CONFIG_FILE, stored)
        return cls(dataclasses.replace(config, indexes=absolute), retrievers)

    @classmethod
    def _build_members(
        cls, config: HybridConfig, passages_path: str | Path | None, index_dir: str | Path
    ) -> HybridRetriever:
        from odqa.retrieval.base import build_index

        if passages_path is None:
            raise InputError("hybrid members are built from passages: give passages_path")
        target = Path(index_dir).resolve()
        names = member_names(config.members)
        relative = [f"{MEMBERS_DIR}/{name}" for name in names]
        with atomic_dir(target) as tmp:
            for member, rel in zip(config.members, relative, strict=True):
                options = {k: v for k, v in member.items() if k != "kind"}
                log.info("hybrid member %s: building %s index", rel, member["kind"])
                build_index(member["kind"], options, passages_path, tmp / rel)
            stored = {
                "type": "hybrid",
                **dataclasses.asdict(config),
                "members": [],
                "member_names": names,
                "indexes": [str(target / rel) for rel in relative],
                "indexes_relative": relative,
            }
            write_json(tmp / RETRIEVER_CONFIG_FILE, stored)
        return cls.load(target)

    @classmethod
    def load(cls, index_dir: str | Path) -> HybridRetriever:
        index_dir = Path(index_dir).resolve()
        config_path, saved = read_retriever_config(index_dir, "hybrid")
        resolved = _resolved_indexes(index_dir, saved)
        names = {f.name for f in dataclasses.fields(HybridConfig)}
        options = {k: v for k, v in saved.items() if k in names} | {"indexes": resolved}
        config = config_from_options(HybridConfig, options, config_path)
        return cls(config, [load_retriever(p) for p in resolved])

    def search(self, queries: list[str], top_k: int) -> list[list[Hit]]:
        depth = max(top_k, self.config.depth)
        candidates = [r.search(queries, depth) for r in self.retrievers]
        weights = self.config.weight_list()
        return [
            fuse(list(per_query), self.config.fusion, weights, self.config.rrf_k)[:top_k]
            for per_query in zip(*candidates, strict=True)
        ]
