"""The one retriever interface. Every backend (embedded BM25, Elasticsearch, dense, hybrid) builds an
index folder holding `retriever.json` ({"type": NAME, ...settings}) and is loaded back by type."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

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
    kind = config.get("type")
    if kind not in RETRIEVER_TYPES:
        raise InputError(f"unknown retriever type {kind!r}; known: {sorted(RETRIEVER_TYPES)}", path=config_path)
    return retriever_class(kind).load(index_dir)


def retriever_class(kind: str) -> type:
    """The backend class for a type name. Each class has `config_class` (a dataclass), classmethod
    `build(config, passages_path, index_dir) -> Retriever` and classmethod `load(index_dir)`."""
    if kind not in RETRIEVER_TYPES:
        raise InputError(f"unknown retriever type {kind!r}; known: {sorted(RETRIEVER_TYPES)}")
    module_name, class_name = RETRIEVER_TYPES[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name)
