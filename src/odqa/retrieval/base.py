"""The one retriever interface. Every backend (embedded BM25, Elasticsearch, dense, hybrid) builds an
index folder holding `retriever.json` ({"type": NAME, ...settings}) and is loaded back by type."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from odqa.errors import InputError
from odqa.io import read_json
from odqa.schema import RETRIEVER_CONFIG_FILE, Hit

# type name -> "module:Class"; each class has classmethod load(index_dir) -> Retriever.
RETRIEVER_TYPES: dict[str, str] = {
    "bm25": "odqa.retrieval.bm25:BM25Retriever",
    "elasticsearch": "odqa.retrieval.elastic:ElasticsearchRetriever",
    "dense": "odqa.retrieval.dense:DenseRetriever",
    "hybrid": "odqa.retrieval.hybrid:HybridRetriever",
}


@runtime_checkable
class Retriever(Protocol):
    def search(self, queries: list[str], top_k: int) -> list[list[Hit]]:
        """Top-k hits per query, best first."""
        ...


def load_retriever(index_dir: str | Path) -> Retriever:
    index_dir = Path(index_dir)
    config_path = index_dir / RETRIEVER_CONFIG_FILE
    if not config_path.is_file():
        raise InputError(f"not an odqa index folder (no {RETRIEVER_CONFIG_FILE})", path=index_dir)
    config = read_json(config_path)
    kind = config.get("type") if isinstance(config, dict) else None
    if kind not in RETRIEVER_TYPES:
        raise InputError(
            f"unknown retriever type {kind!r}; known: {sorted(RETRIEVER_TYPES)}", path=config_path
        )
    return retriever_class(kind).load(index_dir)


def read_retriever_config(index_dir: str | Path, kind: str) -> tuple[Path, dict[str, Any]]:
    """(path, settings) of an index folder's retriever.json, which must say it is a `kind` index."""
    config_path = Path(index_dir) / RETRIEVER_CONFIG_FILE
    saved = read_json(config_path)
    if not isinstance(saved, dict) or saved.get("type") != kind:
        raise InputError(f"not a {kind} index (retriever.json type is not {kind!r})", path=config_path)
    return config_path, saved


def retriever_class(kind: str) -> type:
    """The backend class for a type name. Each class has `config_class` (a dataclass), classmethod
    `build(config, passages_path, index_dir) -> Retriever` and classmethod `load(index_dir)`."""
    if kind not in RETRIEVER_TYPES:
        raise InputError(f"unknown retriever type {kind!r}; known: {sorted(RETRIEVER_TYPES)}")
    module_name, class_name = RETRIEVER_TYPES[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def config_from_options(config_class: type, options: dict[str, Any], source: object = None) -> Any:
    """A backend's config dataclass from loose options; unknown keys are an InputError, not ignored.

    Also used when loading `retriever.json`, where `source` names the file."""
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise InputError(
            f"{config_class.__name__} has no option(s) {unknown}; known: {sorted(names)}", path=source
        )
    try:
        return config_class(**options)
    except (TypeError, ValueError) as e:
        raise InputError(f"bad {config_class.__name__} options {options!r}: {e}", path=source) from None


def build_index(kind: str, options: dict[str, Any], passages_path: str | Path, index_dir: str | Path) -> Path:
    """Build a `kind` index over passages.jsonl into `index_dir`; returns `index_dir`."""
    cls = retriever_class(kind)
    config = config_from_options(cls.config_class, options)
    cls.build(config, passages_path, index_dir)
    return Path(index_dir)


def with_stage_defaults(
    kind: str, options: dict[str, Any], analyzer: str = "", train_qa: str | Path | None = None
) -> dict[str, Any]:
    """Options as the pipeline's index stage uses them: a BM25 index (or hybrid member) without an
    analyzer gets the pipeline's `analyzer`; a dense one without training questions gets `train_qa`."""
    options = dict(options)
    if kind == "bm25" and analyzer:
        options.setdefault("analyzer", analyzer)
    if kind == "dense" and train_qa and not options.get("init_from"):
        options.setdefault("train_qa", str(train_qa))
    if kind == "hybrid":
        options["members"] = [
            {"kind": m.get("kind"), **with_stage_defaults(m.get("kind", ""), m, analyzer, train_qa)}
            for m in options.get("members", [])
        ]
    return options
