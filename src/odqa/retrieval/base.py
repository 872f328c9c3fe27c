"""The one retriever interface. Every backend (embedded BM25, Elasticsearch, dense, hybrid) builds an
index folder holding `retriever.json` ({"kind": NAME, ...settings, ...facts about the index}) and is
loaded back by kind."""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from odqa.config import StageConfig
from odqa.errors import InputError
from odqa.io import check_output_dir, read_json
from odqa.schema import RETRIEVER_CONFIG_FILE, Hit

# kind -> "module:Class"; each class has classmethod load(index_dir) -> Retriever.
RETRIEVER_KINDS: dict[str, str] = {
    "bm25": "odqa.retrieval.bm25:BM25Retriever",
    "elasticsearch": "odqa.retrieval.elastic:ElasticsearchRetriever",
    "dense": "odqa.retrieval.dense:DenseRetriever",
    "hybrid": "odqa.retrieval.hybrid:HybridRetriever",
}
LEGACY_KIND_KEY = "type"  # what retriever.json called the kind before 0.2
INDEX_KIND = "index"  # the output kind of an index folder (odqa.io.atomic_dir)
# retriever.json key: hashes of the settings and of the analyzer's terms for PROBE_TEXT at build time,
# so an index whose retriever.json was edited (another analyzer, other k1) is refused when loaded
# instead of silently searching with terms the index never saw.
FINGERPRINT_KEY = "fingerprint"
PROBE_TEXT = "세종대왕은 1443년에 훈민정음을 창제했다. Seoul's Gyeongbokgung (경복궁) opened in 1395!"


@runtime_checkable
class Retriever(Protocol):
    def search(self, queries: list[str], top_k: int) -> list[list[Hit]]:
        """Top-k hits per query, best first."""
        ...


def saved_kind(saved: Any) -> str | None:
    """The kind a retriever.json names (`kind`, or `type` in folders built before 0.2)."""
    if not isinstance(saved, dict):
        return None
    return saved.get("kind", saved.get(LEGACY_KIND_KEY))


def load_retriever(index_dir: str | Path) -> Retriever:
    index_dir = Path(index_dir)
    config_path = index_dir / RETRIEVER_CONFIG_FILE
    if not config_path.is_file():
        raise InputError(f"not an odqa index folder (no {RETRIEVER_CONFIG_FILE})", path=index_dir)
    kind = saved_kind(read_json(config_path))
    if kind not in RETRIEVER_KINDS:
        raise InputError(
            f"unknown retriever kind {kind!r}; known: {sorted(RETRIEVER_KINDS)}", path=config_path
        )
    return retriever_class(kind).load(index_dir)


def read_retriever_config(index_dir: str | Path, kind: str) -> tuple[Path, dict[str, Any]]:
    """(path, contents) of an index folder's retriever.json, which must say it is a `kind` index."""
    config_path = Path(index_dir) / RETRIEVER_CONFIG_FILE
    saved = read_json(config_path)
    if saved_kind(saved) != kind:
        raise InputError(f"not a {kind} index (retriever.json kind is not {kind!r})", path=config_path)
    return config_path, saved


def load_retriever_config(
    index_dir: str | Path, kind: str, config_class: type[StageConfig], facts: Iterable[str] = ()
) -> tuple[StageConfig, dict[str, Any]]:
    """(config, saved) from an index folder's retriever.json. The file holds the kind, the config's
    settings and `facts` about the built index (counts, names); anything else is an error, as in
    any other config source."""
    config_path, saved = read_retriever_config(index_dir, kind)
    skip = {"kind", LEGACY_KIND_KEY, FINGERPRINT_KEY, *facts}
    config = config_class.from_dict({k: v for k, v in saved.items() if k not in skip}, source=config_path)
    check_fingerprint(config_path, saved.get(FINGERPRINT_KEY), kind, config)
    return config, saved


def _digest(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fingerprint(kind: str, config: StageConfig) -> dict[str, str]:
    """{"settings": hash of the kind and settings (its `runtime_fields` left out), "analyzer": hash of
    the analyzer's terms for PROBE_TEXT (a config with `make_analyzer` only)}."""
    settings = {k: v for k, v in config.to_dict().items() if k not in config.runtime_fields}
    out = {"settings": _digest({"kind": kind, **settings})}
    make = getattr(config, "make_analyzer", None)
    if callable(make):
        out["analyzer"] = _digest(make().analyze([PROBE_TEXT]))
    return out


def check_fingerprint(config_path: Path, saved: Any, kind: str, config: StageConfig) -> None:
    """Refuse an index whose settings or analyzer differ from those it was built with. Indexes built
    before fingerprints existed have none and are accepted."""
    if saved is None:
        return
    if not isinstance(saved, dict):
        raise InputError(f"{FINGERPRINT_KEY!r} must be an object; rebuild the index", path=config_path)
    now = fingerprint(kind, config)
    if saved.get("settings") != now["settings"]:
        raise InputError(
            "settings differ from those the index was built with (retriever.json edited?): rebuild "
            "the index with odqa index, or restore retriever.json",
            path=config_path,
        )
    if "analyzer" in saved and saved["analyzer"] != now.get("analyzer"):
        raise InputError(
            "the analyzer now gives other terms than when the index was built (analyzer library "
            "upgraded?): rebuild the index with odqa index",
            path=config_path,
        )


def saved_retriever_config(kind: str, config: StageConfig, **facts: Any) -> dict[str, Any]:
    """What a backend writes to retriever.json: its kind, its settings, facts about the index and the
    fingerprint of the settings and analyzer."""
    return {"kind": kind, **config.to_dict(), **facts, FINGERPRINT_KEY: fingerprint(kind, config)}


def retriever_class(kind: str) -> type:
    """The backend class for a kind. Each class has `config_class` (a StageConfig), classmethod
    `build(config, passages_path, index_dir) -> Retriever` and classmethod `load(index_dir)`."""
    if kind not in RETRIEVER_KINDS:
        raise InputError(f"unknown retriever kind {kind!r}; known: {sorted(RETRIEVER_KINDS)}")
    module_name, class_name = RETRIEVER_KINDS[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def retriever_config(kind: str, options: dict[str, Any] | None, source: object = None) -> StageConfig:
    """A `kind` retriever's config from loose options (CLI `--option`s, a KFP parameter, a hybrid
    member); `source` names where they came from in error messages."""
    return retriever_class(kind).config_class.from_dict(options or {}, source=source)


def build_index(
    kind: str,
    options: dict[str, Any],
    passages_path: str | Path | None,
    index_dir: str | Path,
    source: object = None,
    force: bool = False,
) -> Path:
    """Build a `kind` index over passages.jsonl into `index_dir` (a new folder or an earlier index;
    `force` replaces any other folder); returns `index_dir`."""
    config = retriever_config(kind, options, source if source is not None else f"{kind} options")
    check_output_dir(index_dir, INDEX_KIND, force)
    retriever_class(kind).build(config, passages_path, index_dir, force=force)
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
            if isinstance(m, dict)
            else m  # not a member: HybridConfig says so
            for m in options.get("members", [])
        ]
    return options
