"""Hybrid retrieval: fuse the rankings of two or more retrievers (e.g. BM25 + dense).

Lexical and dense retrievers fail on different questions, so a passage ranked well by either one is
worth reading. The fusion math is in odqa.retrieval.fusion, weight tuning in odqa.retrieval.tuning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from odqa.config import StageConfig
from odqa.errors import InputError
from odqa.io import atomic_dir, read_json, write_json
from odqa.retrieval.base import (
    INDEX_KIND,
    Retriever,
    load_retriever,
    load_retriever_config,
    retriever_config,
    saved_kind,
    saved_retriever_config,
)
from odqa.retrieval.fusion import FUSIONS, Fusion, fuse
from odqa.schema import RETRIEVER_CONFIG_FILE, Hit

log = logging.getLogger(__name__)

INDEX_INFO_KEYS = ("indexes_relative", "member_names")  # retriever.json: where the sub-indexes are


class HybridConfig(StageConfig):
    indexes: list[str] = Field(
        default_factory=list, description='sub-retriever index folders, built already ("a,b" on the CLI)'
    )
    members: list[dict[str, Any]] = Field(
        default_factory=list,
        description='or sub-retrievers to build inside the hybrid\'s own folder: [{"kind": "bm25", ...}, ...]',
    )
    fusion: Fusion = Field("rrf", description=f"how rankings are fused: {', '.join(FUSIONS)}")
    rrf_k: int = Field(60, ge=1, description="rrf: score = sum of weight / (rrf_k + rank)")
    weights: list[float] = Field(
        default_factory=list,
        description="one non-negative weight per sub-index (empty: equal weights; one number w: w, 1 - w)",
    )
    depth: int = Field(
        100, ge=1, description="candidates fetched from each sub-retriever before fusing (at least top_k)"
    )

    @field_validator("indexes", mode="before")
    @classmethod
    def _split_indexes(cls, value: Any) -> Any:
        return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value

    @field_validator("weights", mode="before")
    @classmethod
    def _weight_forms(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [w.strip() for w in value.split(",") if w.strip()]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return [float(value), 1.0 - float(value)]
        return value

    @field_validator("members")
    @classmethod
    def _valid_members(cls, members: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each member through its own kind's config (so KFP's 3.0 is an int 3 again); a member keeps
        only the keys it was given, plus its kind."""
        checked = []
        for i, member in enumerate(members):
            kind = member.get("kind")
            if not kind:
                raise ValueError(f"member {i} needs a 'kind', got {member!r}")
            options = {k: v for k, v in member.items() if k != "kind"}
            try:
                config = retriever_config(kind, options, source=f"member {i} ({kind})")
            except InputError as e:
                raise ValueError(str(e) if str(e).startswith("member") else f"member {i}: {e}") from None
            checked.append({"kind": kind, **config.model_dump(mode="json", include=set(options))})
        return checked

    @model_validator(mode="after")
    def _sub_indexes(self) -> HybridConfig:
        if self.members and self.indexes:
            raise ValueError("hybrid takes either indexes (built already) or members (to build), not both")
        count = len(self.indexes or self.members)
        if count < 2:
            raise ValueError(f"hybrid needs at least two sub-indexes, got {self.indexes or self.members!r}")
        if self.weights and len(self.weights) != count:
            raise ValueError(f"{len(self.weights)} weights for {count} indexes")
        if any(w < 0 for w in self.weights):
            raise ValueError(f"weights must be non-negative: {self.weights}")
        return self

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
    if saved_kind(saved) != "hybrid":
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
        cls,
        config: HybridConfig,
        passages_path: str | Path | None,
        index_dir: str | Path,
        force: bool = False,
    ) -> HybridRetriever:
        """Sub-indexes built separately (`indexes`) are recorded by where they are (also relative to
        `index_dir`, so the folders can move together); `members` are built from `passages_path` into
        `index_dir/members/`, so the hybrid folder is self-contained."""
        if config.members:
            return cls._build_members(config, passages_path, index_dir, force)
        target = Path(index_dir).resolve()
        absolute = [str(Path(p).resolve()) for p in config.indexes]
        retrievers = [load_retriever(p) for p in absolute]
        relative = [os.path.relpath(p, target) for p in absolute]
        config = config.replace(indexes=absolute)
        with atomic_dir(index_dir, kind=INDEX_KIND, force=force) as tmp:
            write_json(
                tmp / RETRIEVER_CONFIG_FILE,
                saved_retriever_config("hybrid", config, indexes_relative=relative),
            )
        return cls(config, retrievers)

    @classmethod
    def _build_members(
        cls, config: HybridConfig, passages_path: str | Path | None, index_dir: str | Path, force: bool
    ) -> HybridRetriever:
        from odqa.retrieval.base import build_index

        if passages_path is None:
            raise InputError("hybrid members are built from passages: give passages_path")
        target = Path(index_dir).resolve()
        names = member_names(config.members)
        relative = [f"{MEMBERS_DIR}/{name}" for name in names]
        with atomic_dir(target, kind=INDEX_KIND, force=force) as tmp:
            for i, (member, rel) in enumerate(zip(config.members, relative, strict=True)):
                options = {k: v for k, v in member.items() if k != "kind"}
                log.info("hybrid member %s: building %s index", rel, member["kind"])
                build_index(member["kind"], options, passages_path, tmp / rel, source=f"hybrid member {i}")
            built = config.model_copy(
                update={"members": [], "indexes": [str(target / rel) for rel in relative]}
            )
            stored = saved_retriever_config("hybrid", built, member_names=names, indexes_relative=relative)
            write_json(tmp / RETRIEVER_CONFIG_FILE, stored)
        return cls.load(target)

    @classmethod
    def load(cls, index_dir: str | Path) -> HybridRetriever:
        index_dir = Path(index_dir).resolve()
        saved_config, saved = load_retriever_config(index_dir, "hybrid", HybridConfig, INDEX_INFO_KEYS)
        resolved = _resolved_indexes(index_dir, saved)
        config = saved_config.replace(indexes=resolved)
        return cls(config, [load_retriever(p) for p in resolved])

    def search(self, queries: list[str], top_k: int) -> list[list[Hit]]:
        depth = max(top_k, self.config.depth)
        candidates = [r.search(queries, depth) for r in self.retrievers]
        weights = self.config.weight_list()
        return [
            fuse(list(per_query), self.config.fusion, weights, self.config.rrf_k)[:top_k]
            for per_query in zip(*candidates, strict=True)
        ]
