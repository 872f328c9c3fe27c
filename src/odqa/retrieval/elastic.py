"""Elasticsearch BM25 with the nori Korean analyzer, behind the one retriever interface.

The index folder holds only `retriever.json` (URL, settings, and the concrete index it was built into);
the passages live in Elasticsearch. Each build writes a NEW concrete index `<alias>-<timestamp>-<id>` and
searches name that index, never a moving alias: a challenger built by a later run (and not promoted)
leaves the champion's index untouched, so the served model and any evaluation of it keep their
passages. The alias is for people (Kibana, curl): `point_alias` moves it, in one atomic `_aliases` call,
when the register stage promotes a model. Indexes are deleted only by `prune_indexes`, which keeps
every index a registered model version references (version tag `odqa.index`), the alias's, and any
younger than a grace period (a run that has built but not yet registered); docs/elasticsearch.md.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from elasticsearch import ApiError, BadRequestError, ConnectionTimeout, Elasticsearch, NotFoundError, helpers
from elasticsearch import ConnectionError as ESConnectionError
from pydantic import Field, field_validator
from tqdm import tqdm

from odqa.config import StageConfig
from odqa.data import load_passages
from odqa.errors import InputError
from odqa.io import atomic_dir, write_json
from odqa.retrieval.base import INDEX_KIND, load_retriever_config, saved_retriever_config
from odqa.schema import RETRIEVER_CONFIG_FILE, Hit, Passage

log = logging.getLogger(__name__)

URL_ENV = "ODQA_ES_URL"
DEFAULT_URL = "http://localhost:9200"
# The nori_part_of_speech default: endings, particles, adverbs, determiners, symbols, affixes.
DEFAULT_STOPTAGS = "E,IC,J,MAG,MAJ,MM,SP,SSC,SSO,SC,SE,XPN,XSA,XSN,XSV,UNA,NA,VSV"
INDEX_INFO_KEYS = ("index",)  # retriever.json: the concrete index built (and searched)
SIMILARITY = "odqa_bm25"
PROBE_TIMEOUT_S = 10.0
ANALYZER = "odqa_korean"
SHINGLE_ANALYZER = "odqa_korean_shingle"
SHINGLE_TOKENIZER = "odqa_nori_parts"
NORI_HINT = (
    "the Elasticsearch server has no analysis-nori plugin: install it with "
    "`bin/elasticsearch-plugin install analysis-nori` and restart (see docs/elasticsearch.md)"
)


class ElasticsearchUnavailable(InputError):
    """The server cannot be reached or lacks what the index needs; the message says which."""


class ElasticsearchConfig(StageConfig):
    runtime_fields = frozenset(
        {
            "url",
            "chunk_size",
            "max_retries",
            "initial_backoff",
            "max_backoff",
            "request_timeout",
            "search_batch_size",
        }
    )
    url: str = Field("", description=f"Elasticsearch URL (empty: ${URL_ENV}, else {DEFAULT_URL})")
    alias: str = Field(
        "odqa-passages",
        description='indices are named "<alias>-<timestamp>-<id>"; the alias points at the champion\'s',
    )
    decompound_mode: Literal["none", "discard", "mixed"] = Field(
        "mixed", description="nori compounds: none, discard (parts only) or mixed (compound + its parts)"
    )
    stoptags: str = Field(DEFAULT_STOPTAGS, description="comma-separated nori part-of-speech tags to drop")
    shingle: bool = Field(False, description="also index and search word bigrams (text.shingle)")
    k1: float = Field(1.2, ge=0, description="BM25 term-frequency saturation")
    b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation")
    title_boost: float = Field(1.0, ge=0, description="weight of title matches against text matches")
    shards: int = Field(1, ge=1, description="primary shards of the index")
    replicas: int = Field(0, ge=0, description="replicas of each shard")
    chunk_size: int = Field(500, ge=1, description="documents per bulk request")
    max_retries: int = Field(
        5, ge=0, description="bulk retries of 429-rejected documents, with exponential back-off"
    )
    initial_backoff: float = Field(
        2.0, ge=0, description="seconds before the first bulk retry; doubles each time"
    )
    max_backoff: float = Field(60.0, ge=0, description="longest wait between bulk retries, in seconds")
    request_timeout: float = Field(60.0, gt=0, description="seconds before a request times out")
    search_batch_size: int = Field(64, ge=1, description="queries per _msearch request")

    @field_validator("alias")
    @classmethod
    def _index_name(cls, alias: str) -> str:
        if not alias or alias != alias.lower() or any(c in alias for c in ' "*\\<|,>/?'):
            raise ValueError(f"{alias!r} is not a valid Elasticsearch index name (lowercase, no spaces)")
        return alias

    def stoptag_list(self) -> list[str]:
        return [t.strip() for t in self.stoptags.split(",") if t.strip()]


def resolve_url(configured: str) -> str:
    """$ODQA_ES_URL wins, so an index folder built elsewhere can point at this cluster."""
    return os.environ.get(URL_ENV) or configured or DEFAULT_URL


def index_settings(config: ElasticsearchConfig) -> dict[str, Any]:
    """The `settings` body of index creation: nori analysis chain and the BM25 similarity."""
    filters: dict[str, Any] = {
        "odqa_pos": {"type": "nori_part_of_speech", "stoptags": config.stoptag_list()},
    }
    chain = ["odqa_pos", "nori_readingform", "lowercase"]
    analyzers: dict[str, Any] = {ANALYZER: {"type": "custom", "tokenizer": "odqa_nori", "filter": chain}}
    tokenizers: dict[str, Any] = {
        "odqa_nori": {
            "type": "nori_tokenizer",
            "decompound_mode": config.decompound_mode,
            "discard_punctuation": True,
        }
    }
    if config.shingle:
        # Word bigrams need a flat, gap-free token stream: a compound kept beside its parts (mixed) pairs
        # with its own part ("훈민정음 훈민"), and a removed particle leaves a position gap that ShingleFilter
        # fills ("대왕 _", or "대왕 " with an empty filler). So the bigram analyzer splits compounds into
        # their parts only and keeps every morpheme: "세종 대왕", "대왕 은", "훈민 정음" (checked on Lucene's
        # nori + ShingleFilter: tests/retrieval/test_elastic_analysis.py).
        tokenizers[SHINGLE_TOKENIZER] = {
            "type": "nori_tokenizer",
            "decompound_mode": "discard",
            "discard_punctuation": True,
        }
        filters["odqa_shingle"] = {
            "type": "shingle",
            "min_shingle_size": 2,
            "max_shingle_size": 2,
            "output_unigrams": False,
        }
        analyzers[SHINGLE_ANALYZER] = {
            "type": "custom",
            "tokenizer": SHINGLE_TOKENIZER,
            "filter": ["nori_readingform", "lowercase", "odqa_shingle"],
        }
    return {
        "index": {
            "number_of_shards": config.shards,
            "number_of_replicas": config.replicas,
            "similarity": {SIMILARITY: {"type": "BM25", "k1": config.k1, "b": config.b}},
            "analysis": {
                "tokenizer": tokenizers,
                "filter": filters,
                "analyzer": analyzers,
            },
        }
    }


def index_mappings(config: ElasticsearchConfig) -> dict[str, Any]:
    def analysed() -> dict[str, Any]:
        field: dict[str, Any] = {"type": "text", "analyzer": ANALYZER, "similarity": SIMILARITY}
        if config.shingle:
            field["fields"] = {
                "shingle": {"type": "text", "analyzer": SHINGLE_ANALYZER, "similarity": SIMILARITY}
            }
        return field

    return {
        "dynamic": "strict",
        "properties": {
            "passage_id": {"type": "keyword"},
            "document_id": {"type": "keyword"},
            "title": analysed(),
            "text": analysed(),
        },
    }


def bulk_actions(passages: Iterable[Passage], index_name: str) -> Iterator[dict[str, Any]]:
    for p in passages:
        yield {
            "_op_type": "index",
            "_index": index_name,
            "_id": p.passage_id,
            "_source": {
                "passage_id": p.passage_id,
                "document_id": p.document_id,
                "title": p.title,
                "text": p.text,
            },
        }


def search_body(query: str, top_k: int, config: ElasticsearchConfig) -> dict[str, Any]:
    search_fields = [f"title^{config.title_boost:g}", "text"]
    if config.shingle:
        search_fields += [f"title.shingle^{config.title_boost:g}", "text.shingle"]
    return {
        "size": top_k,
        "_source": ["passage_id", "document_id", "doc_id", "title", "text"],  # doc_id: indices before 0.2
        # most_fields adds title, text and bigram evidence up, like BM25 over "title\ntext".
        "query": {"multi_match": {"query": query, "fields": search_fields, "type": "most_fields"}},
    }


def connect(url: str, config: ElasticsearchConfig) -> Elasticsearch:
    """A client that has already answered once, so a wrong URL fails here with one clear line."""
    client = Elasticsearch(url, request_timeout=config.request_timeout, max_retries=2, retry_on_timeout=True)
    try:
        # a short, once-retried probe: an unreachable URL fails in seconds, not 3 x request_timeout
        client.options(request_timeout=min(PROBE_TIMEOUT_S, config.request_timeout), max_retries=1).info()
    except (ESConnectionError, ConnectionTimeout) as e:
        raise ElasticsearchUnavailable(
            f"cannot reach Elasticsearch at {url} ({type(e).__name__}); start one (docs/elasticsearch.md) "
            f"or set {URL_ENV}"
        ) from None
    except ApiError as e:
        raise ElasticsearchUnavailable(
            f"Elasticsearch at {url} answered {e.meta.status}: {_reason(e)}"
        ) from None
    return client


def new_index_name(alias: str) -> str:
    """<alias>-<UTC time to the microsecond>-<8 hex>: unique even for builds in the same microsecond."""
    stamp = f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}{time.time_ns() // 1000 % 1_000_000:06d}"
    return f"{alias}-{stamp}-{uuid.uuid4().hex[:8]}"


def built_index_pattern(alias: str) -> re.Pattern[str]:
    """Names new_index_name makes for `alias` (and the 0.1 form without the id): prune touches no other."""
    return re.compile(rf"{re.escape(alias)}-\d{{20}}(-[0-9a-f]{{8}})?")


def create_index(client: Elasticsearch, index_name: str, config: ElasticsearchConfig) -> None:
    try:
        client.indices.create(
            index=index_name, settings=index_settings(config), mappings=index_mappings(config)
        )
    except BadRequestError as e:
        if "nori" in _reason(e):
            raise ElasticsearchUnavailable(NORI_HINT) from None
        raise ElasticsearchUnavailable(f"cannot create index {index_name}: {_reason(e)}") from None


def bulk_index(
    client: Elasticsearch, passages: list[Passage], index_name: str, config: ElasticsearchConfig
) -> int:
    """Index every passage; documents rejected with 429 are retried with back-off, others fail the build."""
    failures: list[dict[str, Any]] = []
    indexed = 0
    results = helpers.streaming_bulk(
        client,
        bulk_actions(passages, index_name),
        chunk_size=config.chunk_size,
        max_retries=config.max_retries,
        initial_backoff=config.initial_backoff,
        max_backoff=config.max_backoff,
        raise_on_error=False,
        yield_ok=True,
    )
    for ok, item in tqdm(results, total=len(passages), desc="elasticsearch bulk", unit="doc"):
        if ok:
            indexed += 1
        else:
            failures.append(item)
    if failures:
        first = next(iter(failures[0].values()))
        raise ElasticsearchUnavailable(
            f"{len(failures)} of {len(passages)} passages were not indexed into {index_name}; first: "
            f"id {first.get('_id')} status {first.get('status')} {first.get('error')}"
        )
    return indexed


def swap_alias(client: Elasticsearch, alias: str, new_index: str) -> list[str]:
    """Point `alias` at `new_index` only, in one atomic request; return the indices it left (they are
    NOT deleted: registered model versions may still search them)."""
    try:
        old = sorted(client.indices.get_alias(name=alias).body)
    except NotFoundError:
        old = []
    if new_index in old:
        old.remove(new_index)
    actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": alias}} for i in old]
    actions.append({"add": {"index": new_index, "alias": alias}})
    client.indices.update_aliases(actions=actions)
    return old


class ElasticsearchRetriever:
    config_class = ElasticsearchConfig

    def __init__(self, client: Elasticsearch, config: ElasticsearchConfig, url: str, index: str):
        self.client = client
        self.config = config
        self.url = url
        self.index = index  # the concrete index searched

    @classmethod
    def build(
        cls,
        config: ElasticsearchConfig,
        passages_path: str | Path,
        index_dir: str | Path,
        force: bool = False,
    ) -> ElasticsearchRetriever:
        passages = load_passages(passages_path)
        url = resolve_url(config.url)
        client = connect(url, config)
        index_name = new_index_name(config.alias)
        create_index(client, index_name, config)
        try:
            indexed = bulk_index(client, passages, index_name, config)
            client.indices.refresh(index=index_name)
            count = client.count(index=index_name)["count"]
            if count != indexed:
                raise ElasticsearchUnavailable(
                    f"index {index_name} holds {count} documents, expected {indexed}"
                )
            with atomic_dir(index_dir, kind=INDEX_KIND, force=force) as tmp:
                stored = saved_retriever_config("elasticsearch", config.replace(url=url), index=index_name)
                write_json(tmp / RETRIEVER_CONFIG_FILE, stored)
        except BaseException:
            client.options(ignore_status=404).indices.delete(index=index_name)
            raise
        log.info(
            "indexed %d passages into %s (alias %s not moved: promotion moves it)",
            indexed,
            index_name,
            config.alias,
        )
        return cls(client, config, url, index_name)

    @classmethod
    def load(cls, index_dir: str | Path) -> ElasticsearchRetriever:
        config, saved = load_retriever_config(
            index_dir, "elasticsearch", ElasticsearchConfig, INDEX_INFO_KEYS
        )
        url = resolve_url(config.url)
        client = connect(url, config)
        index = saved.get("index") or config.alias  # folders without "index" predate concrete names
        if not client.indices.exists(index=index):
            raise ElasticsearchUnavailable(
                f"index {index} of {Path(index_dir) / RETRIEVER_CONFIG_FILE} no longer exists on {url} "
                "(pruned, or deleted by an odqa before 0.2 that replaced indices on rebuild): rebuild it"
            )
        return cls(client, config, url, index)

    def search(self, queries: list[str], top_k: int) -> list[list[Hit]]:
        results: list[list[Hit]] = []
        batch = self.config.search_batch_size
        for start in range(0, len(queries), batch):
            searches: list[dict[str, Any]] = []
            for q in queries[start : start + batch]:
                searches += [{}, search_body(q, top_k, self.config)]
            try:
                response = self.client.msearch(index=self.index, searches=searches)
            except (ESConnectionError, ConnectionTimeout):
                raise ElasticsearchUnavailable(
                    f"lost the connection to Elasticsearch at {self.url}"
                ) from None
            except NotFoundError:
                raise ElasticsearchUnavailable(f"index {self.index} no longer exists on {self.url}") from None
            for item in response["responses"]:
                if "error" in item:
                    reason = (
                        item["error"].get("reason", item["error"])
                        if isinstance(item["error"], dict)
                        else item["error"]
                    )
                    raise ElasticsearchUnavailable(f"search on index {self.index} failed: {reason}")
                results.append([_hit(h) for h in item["hits"]["hits"]])
        return results


def _hit(raw: dict[str, Any]) -> Hit:
    return Hit.from_dict({**raw["_source"], "score": raw["_score"]})


def _reason(error: ApiError) -> str:
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("reason") or body["error"].get("type") or body)
    return str(body or error.message)


# ---------------------------------------------------------------- versions, promotion and retention


def built_indexes(index_dir: str | Path) -> list[tuple[str, str, str]]:
    """(url, alias, concrete index) of every Elasticsearch index an index folder searches: its own, or
    a hybrid's members'. What the register stage records on the model version (`odqa.index`)."""
    from odqa.io import read_json
    from odqa.retrieval.base import saved_kind
    from odqa.retrieval.hybrid import sub_indexes

    index_dir = Path(index_dir)
    saved = read_json(index_dir / RETRIEVER_CONFIG_FILE)
    kind = saved_kind(saved)
    if kind == "elasticsearch":
        alias = saved.get("alias") or ElasticsearchConfig().alias
        return [(resolve_url(saved.get("url") or ""), alias, saved.get("index") or alias)]
    if kind == "hybrid":
        return [found for member in sub_indexes(index_dir).values() for found in built_indexes(member)]
    return []


def point_alias(index_dir: str | Path) -> list[str]:
    """Move each alias of the folder's Elasticsearch indexes onto the concrete index it built (the
    register stage calls this when it promotes the model); returns the indexes moved to."""
    moved = []
    for url, alias, index in built_indexes(index_dir):
        if index == alias:
            continue  # a folder from before concrete names: it searches the alias itself
        client = connect(url, ElasticsearchConfig(url=url, alias=alias))
        swap_alias(client, alias, index)
        moved.append(index)
    return moved


INDEX_TAG = "odqa.index"  # model version tag: comma-separated concrete Elasticsearch indexes it searches


def referenced_indexes(tracking_uri: str, model_names: str | Iterable[str]) -> set[str]:
    """Every index named by the `odqa.index` tag of any version (any alias, any state) of the models."""
    from odqa import tracking

    names = [model_names] if isinstance(model_names, str) else list(model_names)
    client = tracking.client(tracking_uri)
    found: set[str] = set()
    for name in names:
        token = None
        while True:
            page = client.search_model_versions(
                filter_string=f"name = '{name}'", max_results=1000, page_token=token
            )
            for version in page:
                found |= {i for i in (version.tags or {}).get(INDEX_TAG, "").split(",") if i}
            token = page.token
            if not token:
                break
    return found


def prune_indexes(
    es_url: str,
    prefix: str,
    tracking_uri: str,
    model_names: str | Iterable[str],
    min_age_s: float = 3 * 24 * 3600,
    dry_run: bool = False,
) -> list[str]:
    """Delete the indexes built for alias `prefix` that nothing needs any more; returns their names.

    Kept: every index a version of `model_names` references (tag `odqa.index`, so the champion's, the
    challenger's and any version a person may roll back to), the ones the alias points at, and those
    created less than `min_age_s` ago (a pipeline run that has built its index but not registered yet).
    The registry is read BEFORE the indexes are listed, so an index registered meanwhile is young."""
    url = resolve_url(es_url)
    referenced = referenced_indexes(tracking_uri, model_names)
    client = connect(url, ElasticsearchConfig(url=url, alias=prefix))
    pattern = built_index_pattern(prefix)
    try:
        settings = client.indices.get_settings(index=f"{prefix}-*", name="index.creation_date").body
    except NotFoundError:
        settings = {}
    try:
        aliased = set(client.indices.get_alias(name=prefix).body)
    except NotFoundError:
        aliased = set()
    now_ms = time.time() * 1000
    doomed = []
    for name, body in sorted(settings.items()):
        if not pattern.fullmatch(name) or name in referenced or name in aliased:
            continue
        created = float(body.get("settings", {}).get("index", {}).get("creation_date", now_ms))
        if now_ms - created < min_age_s * 1000:
            continue
        doomed.append(name)
    for name in doomed if not dry_run else []:
        client.options(ignore_status=404).indices.delete(index=name)
        log.info("deleted index %s (no model version references it)", name)
    return doomed
