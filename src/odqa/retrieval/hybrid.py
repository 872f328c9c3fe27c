"""Hybrid retrieval: fuse the rankings of two or more retrievers (e.g. BM25 + dense).

Lexical and dense retrievers fail on different questions, so a passage ranked well by either one is
worth reading. The fusion math is in odqa.retrieval.fusion, weight tuning in odqa.retrieval.tuning.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odqa.errors import InputError
from odqa.io import atomic_dir, read_json, write_json
from odqa.retrieval.base import Retriever, config_from_options, load_retriever, read_retriever_config
from odqa.retrieval.fusion import FUSIONS, fuse
from odqa.schema import RETRIEVER_CONFIG_FILE, Hit

log = logging.getLogger(__name__)


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
