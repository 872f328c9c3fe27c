"""Elasticsearch backend.

Three layers: request bodies (offline); client behaviour (bulk retries with back-off, the alias swap,
the connection / missing-nori messages) against `FakeElasticsearch`, a STAND-IN HTTP server written for
these tests that answers only the endpoints the backend calls, with Elasticsearch's JSON shapes and
product header, and scores by shared character bigrams (it is not Lucene BM25); and integration tests
against a real Elasticsearch with the nori plugin, which run only when ODQA_ES_URL is set.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from odqa.errors import InputError
from odqa.io import write_jsonl
from odqa.retrieval.base import FINGERPRINT_KEY, fingerprint, load_retriever, retriever_class
from odqa.retrieval.elastic import (
    INDEX_TAG,
    ElasticsearchConfig,
    ElasticsearchRetriever,
    ElasticsearchUnavailable,
    built_index_pattern,
    built_indexes,
    bulk_actions,
    index_mappings,
    index_settings,
    point_alias,
    prune_indexes,
    search_body,
)
from odqa.schema import RETRIEVER_CONFIG_FILE, Passage

PASSAGES = [
    Passage("d1-0", "d1", "서울", "서울은 대한민국의 수도이며 한강이 도시를 가로지른다."),
    Passage("d2-0", "d2", "부산", "부산은 대한민국 제2의 도시이자 최대의 항구 도시이다."),
    Passage("d3-0", "d3", "제주도", "제주도는 한라산이 있는 화산섬으로 관광지로 유명하다."),
    Passage("d4-0", "d4", "경주", "경주는 신라의 수도였으며 불국사와 석굴암이 있다."),
]


# ---------------------------------------------------------------- request bodies (offline)


def test_index_settings_use_nori_with_configured_decompound_and_bm25():
    config = ElasticsearchConfig(decompound_mode="discard", k1=0.9, b=0.4, stoptags="E,J")
    settings = index_settings(config)["index"]
    tokenizer = settings["analysis"]["tokenizer"]["odqa_nori"]
    assert tokenizer == {"type": "nori_tokenizer", "decompound_mode": "discard", "discard_punctuation": True}
    assert settings["analysis"]["filter"]["odqa_pos"] == {
        "type": "nori_part_of_speech",
        "stoptags": ["E", "J"],
    }
    assert settings["similarity"]["odqa_bm25"] == {"type": "BM25", "k1": 0.9, "b": 0.4}
    assert "odqa_shingle" not in settings["analysis"]["filter"]
    mappings = index_mappings(config)
    for field in ("title", "text"):
        assert mappings["properties"][field]["analyzer"] == "odqa_korean"
        assert mappings["properties"][field]["similarity"] == "odqa_bm25"
        assert "fields" not in mappings["properties"][field]


def test_shingle_option_adds_bigram_analyzer_subfields_and_query_fields():
    config = ElasticsearchConfig(shingle=True, title_boost=2.0)
    analysis = index_settings(config)["index"]["analysis"]
    assert analysis["filter"]["odqa_shingle"]["type"] == "shingle"
    assert analysis["analyzer"]["odqa_korean_shingle"]["filter"][-1] == "odqa_shingle"
    text_field = index_mappings(config)["properties"]["text"]
    assert text_field["fields"]["shingle"]["analyzer"] == "odqa_korean_shingle"
    body = search_body("한강 수도", 7, config)
    assert body["size"] == 7
    assert body["query"]["multi_match"]["fields"] == ["title^2", "text", "title.shingle^2", "text.shingle"]


def test_bulk_actions_carry_passage_ids_and_target_index():
    actions = list(bulk_actions(PASSAGES[:2], "odqa-passages-1"))
    assert [a["_id"] for a in actions] == ["d1-0", "d2-0"]
    assert {a["_index"] for a in actions} == {"odqa-passages-1"}
    assert actions[1]["_source"] == {
        "passage_id": "d2-0",
        "document_id": "d2",
        "title": "부산",
        "text": PASSAGES[1].text,
    }


def test_bad_config_values_are_input_errors():
    with pytest.raises(InputError, match="decompound_mode"):
        ElasticsearchConfig(decompound_mode="full")
    with pytest.raises(InputError, match="alias"):
        ElasticsearchConfig(alias="Odqa Passages")


# ---------------------------------------------------------------- stand-in server


class FakeElasticsearch:
    """STAND-IN for Elasticsearch: indices, aliases, bulk, count, refresh and msearch, in memory."""

    def __init__(self, *, nori: bool = True, reject_first_bulk_items: int = 0):
        self.nori = nori
        self.reject_left = reject_first_bulk_items  # answer 429 for this many documents, once each
        self.indices: dict[str, dict] = {}  # name -> {"docs": {id: source}, "aliases": set(), "body": ...}
        self.requests: list[tuple[str, str]] = []
        self.bulk_calls = 0
        self.alias_requests: list[list[dict]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, status: int, obj) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                path = self.path.split("?")[0]
                fake.requests.append((self.command, path))
                status, obj = fake.route(self.command, path, raw)
                self._send(status, obj)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeElasticsearch:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def resolve(self, name: str) -> list[str]:
        if name in self.indices:
            return [name]
        if "*" in name:
            return sorted(i for i in self.indices if fnmatch.fnmatchcase(i, name))
        return sorted(i for i, v in self.indices.items() if name in v["aliases"])

    def route(self, method: str, path: str, raw: str):
        parts = [p for p in path.split("/") if p]
        if not parts:
            return 200, {
                "name": "fake",
                "cluster_name": "stand-in",
                "version": {"number": "9.1.0"},
                "tagline": "You Know, for Search",
            }
        if parts == ["_bulk"]:
            return 200, self.bulk(raw)
        if parts == ["_aliases"]:
            actions = json.loads(raw)["actions"]
            self.alias_requests.append(actions)
            for action in actions:
                ((kind, spec),) = action.items()
                if spec["index"] not in self.indices:
                    return 404, _error("index_not_found_exception", f"no such index [{spec['index']}]", 404)
                target = self.indices[spec["index"]]["aliases"]
                target.add(spec["alias"]) if kind == "add" else target.discard(spec["alias"])
            return 200, {"acknowledged": True}
        if parts[0] == "_alias":
            found = {i: {"aliases": {parts[1]: {}}} for i in self.resolve(parts[1]) if i != parts[1]}
            if not found:
                return 404, {"error": f"alias [{parts[1]}] missing", "status": 404}
            return 200, found
        name = parts[0]
        if len(parts) == 1 and method == "PUT":
            body = json.loads(raw)
            tokenizer = body["settings"]["index"]["analysis"]["tokenizer"]["odqa_nori"]["type"]
            if not self.nori and tokenizer == "nori_tokenizer":
                return 400, _error(
                    "illegal_argument_exception", "Unknown tokenizer type [nori_tokenizer] for [odqa_nori]"
                )
            created = str(int(time.time() * 1000))
            self.indices[name] = {"docs": {}, "aliases": set(), "body": body, "created": created}
            return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}
        if len(parts) == 1 and method == "DELETE":
            if name not in self.indices:
                return 404, _error("index_not_found_exception", f"no such index [{name}]", 404)
            del self.indices[name]
            return 200, {"acknowledged": True}
        if len(parts) == 1 and method == "HEAD":
            return (200 if name in self.indices else 404), {}
        targets = self.resolve(name)
        if not targets and "*" in name and parts[1] == "_settings":
            return 200, {}
        if not targets:
            return 404, _error("index_not_found_exception", f"no such index [{name}]", 404)
        if parts[1] == "_settings":
            return 200, {
                t: {"settings": {"index": {"creation_date": self.indices[t]["created"]}}} for t in targets
            }
        docs = [d for t in targets for d in self.indices[t]["docs"].values()]
        if parts[1] == "_refresh":
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if parts[1] == "_count":
            return 200, {"count": len(docs)}
        if parts[1] == "_msearch":
            lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
            return 200, {"took": 1, "responses": [self.search(docs, body) for body in lines[1::2]]}
        return 400, _error("unsupported", f"stand-in does not answer {method} {path}")

    def bulk(self, raw: str) -> dict:
        self.bulk_calls += 1
        lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
        items = []
        for meta, source in zip(lines[::2], lines[1::2], strict=True):
            spec = meta["index"]
            if self.reject_left > 0:
                self.reject_left -= 1
                error = {"type": "es_rejected_execution_exception", "reason": "rejected: queue full"}
                items.append(
                    {"index": {"_index": spec["_index"], "_id": spec["_id"], "status": 429, "error": error}}
                )
                continue
            self.indices[spec["_index"]]["docs"][spec["_id"]] = source
            items.append(
                {"index": {"_index": spec["_index"], "_id": spec["_id"], "status": 201, "result": "created"}}
            )
        return {"took": 1, "errors": any(i["index"]["status"] >= 300 for i in items), "items": items}

    @staticmethod
    def search(docs: list[dict], body: dict) -> dict:
        query = body["query"]["multi_match"]["query"]
        q_grams = _bigrams(query)
        scored = []
        for doc in docs:
            score = len(q_grams & _bigrams(doc["title"] + " " + doc["text"]))
            if score:
                scored.append((float(score), doc))
        scored.sort(key=lambda s: (-s[0], s[1]["passage_id"]))
        hits = [{"_id": d["passage_id"], "_score": s, "_source": d} for s, d in scored[: body["size"]]]
        return {"hits": {"total": {"value": len(scored), "relation": "eq"}, "hits": hits}, "status": 200}


def _bigrams(text: str) -> set[str]:
    text = re.sub(r"\s+", "", text)
    return {text[i : i + 2] for i in range(len(text) - 1)}


def _error(kind: str, reason: str, status: int = 400) -> dict:
    return {
        "error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
        "status": status,
    }


@pytest.fixture
def passages_path(tmp_path: Path) -> Path:
    path = tmp_path / "passages.jsonl"
    write_jsonl(path, (p.to_dict() for p in PASSAGES))
    return path


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch):
    monkeypatch.delenv("ODQA_ES_URL", raising=False)


def test_build_then_search_the_concrete_index_and_load(passages_path: Path, tmp_path: Path):
    with FakeElasticsearch() as es:
        config = ElasticsearchConfig(url=es.url, alias="odqa-test", chunk_size=3)
        retriever = ElasticsearchRetriever.build(config, passages_path, tmp_path / "index")
        hits = retriever.search(["한강이 흐르는 대한민국의 수도는?", "불국사는 어디에 있나"], top_k=2)
        assert hits[0][0].passage_id == "d1-0"
        assert hits[1][0].document_id == "d4"
        assert es.bulk_calls == 2  # 4 docs in chunks of 3
        (name,) = es.indices
        assert built_index_pattern("odqa-test").fullmatch(name)
        stored = json.loads((tmp_path / "index" / RETRIEVER_CONFIG_FILE).read_text())
        assert (
            stored["kind"] == "elasticsearch" and stored["url"] == es.url and stored["alias"] == "odqa-test"
        )
        assert stored["index"] == name
        reloaded = load_retriever(tmp_path / "index")
        assert [h.passage_id for h in reloaded.search(["제주도 한라산"], 3)[0]] == [
            h.passage_id for h in retriever.search(["제주도 한라산"], 3)[0]
        ]
        # searches name the concrete index, never the alias; a build moves no alias
        assert ("POST", f"/{name}/_msearch") in es.requests
        assert ("POST", "/odqa-test/_msearch") not in es.requests
        assert es.alias_requests == []


def test_rebuild_makes_a_new_index_and_leaves_the_old_one_searchable(passages_path: Path, tmp_path: Path):
    with FakeElasticsearch() as es:
        config = ElasticsearchConfig(url=es.url, alias="odqa-swap")
        ElasticsearchRetriever.build(config, passages_path, tmp_path / "a")
        point_alias(tmp_path / "a")
        (first,) = es.indices
        before = load_retriever(tmp_path / "a").search(["신라의 수도"], 2)
        write_jsonl(passages_path, (p.to_dict() for p in PASSAGES[:2]))  # the challenger's corpus differs
        ElasticsearchRetriever.build(config, passages_path, tmp_path / "b")
        second = (set(es.indices) - {first}).pop()
        assert sorted(es.indices) == sorted([first, second]) and ("DELETE", f"/{first}") not in es.requests
        assert es.indices[first]["aliases"] == {"odqa-swap"} and es.indices[second]["aliases"] == set()
        assert load_retriever(tmp_path / "a").search(["신라의 수도"], 2) == before
        assert before[0][0].document_id == "d4"
        assert load_retriever(tmp_path / "b").search(["신라의 수도"], 2)[0][0].document_id != "d4"
        # promotion moves the alias in ONE _aliases request
        assert point_alias(tmp_path / "b") == [second]
        assert es.alias_requests[-1] == [
            {"remove": {"index": first, "alias": "odqa-swap"}},
            {"add": {"index": second, "alias": "odqa-swap"}},
        ]


def test_a_pruned_index_fails_load_in_one_line(passages_path: Path, tmp_path: Path):
    with FakeElasticsearch() as es:
        ElasticsearchRetriever.build(
            ElasticsearchConfig(url=es.url, alias="odqa-gone"), passages_path, tmp_path / "i"
        )
        (name,) = es.indices
        del es.indices[name]
        with pytest.raises(ElasticsearchUnavailable, match=f"index {name} .* no longer exists") as info:
            load_retriever(tmp_path / "i")
        assert "\n" not in str(info.value)


def _register(uri: str, tmp_path: Path, index_dir: Path, em: float):
    """What the register stage does with an index folder: a version tagged with its concrete indexes,
    promoted by the registry's rule, and the alias moved when promoted."""
    from odqa import registry, tracking

    run_id = tracking.start_pipeline_run(uri, "exp", "run")
    model_dir = tmp_path / f"model-{run_id}"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("artifact_path: model\n")
    tags = {INDEX_TAG: ",".join(i for _, _, i in built_indexes(index_dir))}
    version = registry.register_version(uri, "odqa", model_dir.as_uri(), run_id=run_id, tags=tags)
    evaluation = registry.Evaluation({"exact_match": em, "total": 1}, "f" * 64, 1)
    decision = registry.promote(uri, registry.RegisterConfig(), version, evaluation)
    if decision.promoted:
        point_alias(index_dir)
    return version, decision


@pytest.mark.integration
def test_challenger_keeps_champion_index_and_prune_keeps_what_versions_reference(
    passages_path: Path, tmp_path: Path
):
    """Build A, register + promote A; build B, register B (worse: not promoted): A's index and hits are
    unchanged and the alias stays on A. Prune deletes only what no version references."""
    from odqa import tracking

    uri = tracking.sqlite_uri(tmp_path / "mlflow.db")
    with FakeElasticsearch() as es:
        config = ElasticsearchConfig(url=es.url, alias="odqa-ver")
        ElasticsearchRetriever.build(config, passages_path, tmp_path / "a")
        (index_a,) = es.indices
        version_a, decision_a = _register(uri, tmp_path, tmp_path / "a", 50.0)
        assert decision_a.promoted
        hits_a = load_retriever(tmp_path / "a").search(["신라의 수도", "한라산"], 3)

        ElasticsearchRetriever.build(config, passages_path, tmp_path / "b")
        index_b = (set(es.indices) - {index_a}).pop()
        version_b, decision_b = _register(uri, tmp_path, tmp_path / "b", 40.0)
        assert not decision_b.promoted
        assert index_a in es.indices and es.indices[index_a]["aliases"] == {"odqa-ver"}
        assert load_retriever(tmp_path / "a").search(["신라의 수도", "한라산"], 3) == hits_a
        c = tracking.client(uri)
        assert c.get_model_version("odqa", version_a).tags[INDEX_TAG] == index_a
        assert c.get_model_version("odqa", version_b).tags[INDEX_TAG] == index_b

        ElasticsearchRetriever.build(config, passages_path, tmp_path / "orphan")  # a run that failed later
        orphan = (set(es.indices) - {index_a, index_b}).pop()
        es.indices["odqa-ver-manual"] = {"docs": {}, "aliases": set(), "body": {}, "created": "0"}
        assert prune_indexes(es.url, "odqa-ver", uri, "odqa") == []  # everything is younger than 3 days
        assert prune_indexes(es.url, "odqa-ver", uri, "odqa", min_age_s=0, dry_run=True) == [orphan]
        assert orphan in es.indices
        assert prune_indexes(es.url, "odqa-ver", uri, "odqa", min_age_s=0) == [orphan]
        assert sorted(es.indices) == sorted([index_a, index_b, "odqa-ver-manual"])
        c.delete_model_version("odqa", version_b)  # B's version is gone: its index may go
        assert prune_indexes(es.url, "odqa-ver", uri, "odqa", min_age_s=0) == [index_b]
        assert sorted(es.indices) == sorted([index_a, "odqa-ver-manual"])
        assert load_retriever(tmp_path / "a").search(["신라의 수도", "한라산"], 3) == hits_a


def test_bulk_retries_rejected_documents_with_backoff(passages_path: Path, tmp_path: Path):
    with FakeElasticsearch(reject_first_bulk_items=3) as es:
        config = ElasticsearchConfig(url=es.url, alias="odqa-retry", initial_backoff=0.01, max_retries=3)
        retriever = ElasticsearchRetriever.build(config, passages_path, tmp_path / "index")
        assert es.bulk_calls == 2  # one request, then one retry of the 3 rejected documents
        (name,) = es.indices
        assert sorted(es.indices[name]["docs"]) == ["d1-0", "d2-0", "d3-0", "d4-0"]
        assert retriever.search(["신라의 수도"], 1)[0][0].document_id == "d4"


def test_bulk_failure_after_retries_leaves_old_alias_serving(passages_path: Path, tmp_path: Path):
    with FakeElasticsearch() as es:
        config = ElasticsearchConfig(url=es.url, alias="odqa-keep", initial_backoff=0.01, max_retries=1)
        ElasticsearchRetriever.build(config, passages_path, tmp_path / "index")
        point_alias(tmp_path / "index")
        (serving,) = es.indices
        es.reject_left = 100  # every document rejected, more times than the retries allow
        with pytest.raises(ElasticsearchUnavailable, match="were not indexed"):
            ElasticsearchRetriever.build(config, passages_path, tmp_path / "index2")
        assert list(es.indices) == [serving]  # the half-built index was deleted
        assert es.indices[serving]["aliases"] == {"odqa-keep"}
        assert not (tmp_path / "index2").exists()


def test_missing_nori_plugin_gives_one_clear_message(passages_path: Path, tmp_path: Path):
    with FakeElasticsearch(nori=False) as es:
        config = ElasticsearchConfig(url=es.url)
        with pytest.raises(ElasticsearchUnavailable) as info:
            ElasticsearchRetriever.build(config, passages_path, tmp_path / "index")
        assert "analysis-nori" in str(info.value) and "\n" not in str(info.value)
        assert es.indices == {}


def test_unreachable_server_gives_one_clear_message(passages_path: Path, tmp_path: Path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(ElasticsearchUnavailable) as info:
        ElasticsearchRetriever.build(ElasticsearchConfig(url=url), passages_path, tmp_path / "index")
    message = str(info.value)
    assert f"cannot reach Elasticsearch at {url}" in message and "\n" not in message
    assert isinstance(info.value, InputError)  # the CLI prints it as one line, exit 2


def test_a_server_that_never_answers_fails_in_one_line_within_seconds(passages_path: Path, tmp_path: Path):
    with socket.socket() as s:  # accepts connections (kernel backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ElasticsearchUnavailable) as info:
            ElasticsearchRetriever.build(
                ElasticsearchConfig(url=url, request_timeout=1.0), passages_path, tmp_path / "index"
            )
        assert time.monotonic() - started < 10
    assert f"cannot reach Elasticsearch at {url} (ConnectionTimeout)" in str(info.value)
    assert "\n" not in str(info.value)


def test_env_url_overrides_stored_url(passages_path: Path, tmp_path: Path, monkeypatch):
    with FakeElasticsearch() as es:
        ElasticsearchRetriever.build(
            ElasticsearchConfig(url=es.url, alias="odqa-env"), passages_path, tmp_path / "i"
        )
        stored = json.loads((tmp_path / "i" / RETRIEVER_CONFIG_FILE).read_text())
        stored["url"] = "http://elsewhere.invalid:9200"  # as if built against another cluster's URL
        stored[FINGERPRINT_KEY] = fingerprint(
            "elasticsearch",
            ElasticsearchConfig(
                **{k: v for k, v in stored.items() if k not in ("kind", "index", FINGERPRINT_KEY)}
            ),
        )
        (tmp_path / "i" / RETRIEVER_CONFIG_FILE).write_text(json.dumps(stored))
        monkeypatch.setenv("ODQA_ES_URL", es.url)
        assert (
            retriever_class("elasticsearch").load(tmp_path / "i").search(["부산 항구"], 1)[0][0].document_id
            == "d2"
        )


# ---------------------------------------------------------------- real Elasticsearch (ODQA_ES_URL)

needs_es = pytest.mark.skipif(
    not os.environ.get("ODQA_ES_URL"), reason="set ODQA_ES_URL to a real Elasticsearch with analysis-nori"
)


@pytest.mark.es
@needs_es
def test_real_elasticsearch_nori_round_trip(passages_path: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ODQA_ES_URL", os.environ["ODQA_ES_URL"])
    config = ElasticsearchConfig(alias="odqa-pytest", shingle=True)
    first = ElasticsearchRetriever.build(config, passages_path, tmp_path / "a")
    retriever = ElasticsearchRetriever.build(config, passages_path, tmp_path / "b")  # a second index
    try:
        hits = retriever.search(["한라산이 있는 섬은?", "불국사와 석굴암"], top_k=2)
        assert hits[0][0].document_id == "d3" and hits[1][0].document_id == "d4"
        assert first.search(["불국사와 석굴암"], 1)[0][0].document_id == "d4"  # the first one is intact
        assert point_alias(tmp_path / "b") == [retriever.index]
        assert list(retriever.client.indices.get_alias(name="odqa-pytest").body) == [retriever.index]
    finally:
        for r in (first, retriever):
            r.client.options(ignore_status=404).indices.delete(index=r.index)
