"""Elasticsearch BM25 with the nori Korean analyzer, behind the one retriever interface.

The index folder holds only `retriever.json` (URL, alias, settings); the passages live in
Elasticsearch. Each build writes a new timestamped index and then moves the alias onto it in one
atomic `_aliases` call, so searches never see a half-built index; the old index is deleted after.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from elasticsearch import ApiError, BadRequestError, Elasticsearch, NotFoundError, helpers
from elasticsearch import ConnectionError as ESConnectionError
from pydantic import Field, field_validator
from tqdm import tqdm

from odqa.config import StageConfig
from odqa.data import load_passages
from odqa.errors import InputError
from odqa.io import atomic_dir, write_json
from odqa.retrieval.base import load_retriever_config, saved_retriever_config
from odqa.schema import RETRIEVER_CONFIG_FILE, Hit, Passage

log = logging.getLogger(__name__)

URL_ENV = "ODQA_ES_URL"
DEFAULT_URL = "http://localhost:9200"
# The nori_part_of_speech default: endings, particles, adverbs, determiners, symbols, affixes.
DEFAULT_STOPTAGS = "E,IC,J,MAG,MAJ,MM,SP,SSC,SSO,SC,SE,XPN,XSA,XSN,XSV,UNA,NA,VSV"
INDEX_INFO_KEYS = ("index",)  # retriever.json: the Elasticsearch index the alias pointed at when built
SIMILARITY = "odqa_bm25"
ANALYZER = "odqa_korean"
SHINGLE_ANALYZER = "odqa_korean_shingle"
NORI_HINT = (
    "the Elasticsearch server has no analysis-nori plugin: install it with "
    "`bin/elasticsearch-plugin install analysis-nori` and restart (see docs/elasticsearch.md)"
)


class ElasticsearchUnavailable(InputError):
    """The server cannot be reached or lacks what the index needs; the message says which."""


class ElasticsearchConfig(StageConfig):
    url: str = Field("", description=f"Elasticsearch URL (empty: ${URL_ENV}, else {DEFAULT_URL})")
    alias: str = Field(
        "odqa-passages",
        description='searches go through this alias; indices are named "<alias>-<timestamp>"',
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
    if config.shingle:
        # Removed particles leave position gaps; an empty filler keeps "_" tokens out of the bigrams.
        filters["odqa_shingle"] = {
            "type": "shingle",
            "min_shingle_size": 2,
            "max_shingle_size": 2,
            "output_unigrams": False,
            "filler_token": "",
        }
        analyzers[SHINGLE_ANALYZER] = {
            "type": "custom",
            "tokenizer": "odqa_nori",
            "filter": [*chain, "odqa_shingle"],
        }
    return {
        "index": {
            "number_of_shards": config.shards,
            "number_of_replicas": config.replicas,
            "similarity": {SIMILARITY: {"type": "BM25", "k1": config.k1, "b": config.b}},
            "analysis": {
                "tokenizer": {
                    "odqa_nori": {
                        "type": "nori_tokenizer",
                        "decompound_mode": config.decompound_mode,
                        "discard_punctuation": True,
                    }
                },
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
        client.info()
    except ESConnectionError as e:
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
    return f"{alias}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}{time.time_ns() // 1000 % 1_000_000:06d}"


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
    """Point `alias` at `new_index` only, in one atomic request; return the indices it left."""
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

    def __init__(self, client: Elasticsearch, config: ElasticsearchConfig, url: str):
        self.client = client
        self.config = config
        self.url = url

    @classmethod
    def build(
        cls, config: ElasticsearchConfig, passages_path: str | Path, index_dir: str | Path
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
            old = swap_alias(client, config.alias, index_name)
        except BaseException:
            client.options(ignore_status=404).indices.delete(index=index_name)
            raise
        for name in old:
            client.options(ignore_status=404).indices.delete(index=name)
        log.info(
            "indexed %d passages into %s; alias %s moved from %s",
            indexed,
            index_name,
            config.alias,
            old or "-",
        )
        with atomic_dir(index_dir) as tmp:
            stored = saved_retriever_config("elasticsearch", config.replace(url=url), index=index_name)
            write_json(tmp / RETRIEVER_CONFIG_FILE, stored)
        return cls(client, config, url)

    @classmethod
    def load(cls, index_dir: str | Path) -> ElasticsearchRetriever:
        config, _ = load_retriever_config(index_dir, "elasticsearch", ElasticsearchConfig, INDEX_INFO_KEYS)
        url = resolve_url(config.url)
        return cls(connect(url, config), config, url)

    def search(self, queries: list[str], top_k: int) -> list[list[Hit]]:
        results: list[list[Hit]] = []
        batch = self.config.search_batch_size
        for start in range(0, len(queries), batch):
            searches: list[dict[str, Any]] = []
            for q in queries[start : start + batch]:
                searches += [{}, search_body(q, top_k, self.config)]
            try:
                response = self.client.msearch(index=self.config.alias, searches=searches)
            except ESConnectionError:
                raise ElasticsearchUnavailable(
                    f"lost the connection to Elasticsearch at {self.url}"
                ) from None
            for item in response["responses"]:
                if "error" in item:
                    reason = (
                        item["error"].get("reason", item["error"])
                        if isinstance(item["error"], dict)
                        else item["error"]
                    )
                    raise ElasticsearchUnavailable(f"search on alias {self.config.alias} failed: {reason}")
                results.append([_hit(h) for h in item["hits"]["hits"]])
        return results


def _hit(raw: dict[str, Any]) -> Hit:
    return Hit.from_dict({**raw["_source"], "score": raw["_score"]})


def _reason(error: ApiError) -> str:
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("reason") or body["error"].get("type") or body)
    return str(body or error.message)
