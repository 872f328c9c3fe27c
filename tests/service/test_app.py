"""The HTTP contract over a stand-in model: answers carry the model version, every bad request is a 4xx
JSON error naming the field and leaves the service answering, readiness tells loading from ready,
metrics count, and the request log holds a hash of the question, not the question."""

from __future__ import annotations

import hashlib
import json
import logging
import threading

import pytest
from fastapi.testclient import TestClient

from odqa.service.app import VERSION_HEADER, create_app
from odqa.service.config import ServeConfig
from odqa.service.models import ModelHolder, ModelSource

QUESTION = "서울 은 어느 나라의 수도인가?"


@pytest.fixture
def client(stub_holder):
    with TestClient(create_app(ServeConfig(poll_interval_s=0), stub_holder)) as c:
        yield c


def _ok(client) -> None:
    r = client.post("/v1/answer", json={"question": QUESTION})
    assert r.status_code == 200, r.text
    assert r.json()["answer"] == "서울"


def test_an_answer_names_its_model_version_and_where_the_answer_is(client):
    r = client.post("/v1/answer", json={"question": QUESTION, "top_k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == "stub-model" == r.headers[VERSION_HEADER]
    best = body["passages"][0]
    assert best["text"][body["start_char"] : body["end_char"]] == body["answer"] == "서울"
    assert [p["rank"] for p in body["passages"]] == [1, 2, 3]
    assert set(best) == {"passage_id", "document_id", "title", "text", "score", "rank", "answer"}


def test_a_batch_is_answered_in_one_call(client, stub_model):
    r = client.post("/v1/answers", json={"questions": ["가 나", "다 라", "마 바"], "top_k": 1})
    assert r.status_code == 200
    assert [a["answer"] for a in r.json()["answers"]] == ["가", "다", "마"]
    assert r.json()["model_version"] == "stub-model"
    assert stub_model.calls == [(["가 나", "다 라", "마 바"], 1)]


BAD_REQUESTS = [
    # (body, status, field)
    ({"question": ""}, 422, "question"),
    ({"question": "   \n"}, 422, "question"),
    ({"question": "가" * 1_000_000}, 413, "question"),
    ({"question": 5}, 422, "question"),
    ({"question": ["a"]}, 422, "question"),
    ({"question": None}, 422, "question"),
    ({}, 422, "question"),
    ({"question": QUESTION, "top_k": 0}, 422, "top_k"),
    ({"question": QUESTION, "top_k": -3}, 422, "top_k"),
    ({"question": QUESTION, "top_k": 10**12}, 422, "top_k"),
    ({"question": QUESTION, "top_k": "3"}, 422, "top_k"),
    ({"question": QUESTION, "top_k": True}, 422, "top_k"),
    ({"question": QUESTION, "top_k": 2.5}, 422, "top_k"),
    ({"question": QUESTION, "topk": 3}, 422, "topk"),
    ([QUESTION], 422, None),
]


@pytest.mark.parametrize("body,status,field", BAD_REQUESTS)
def test_bad_values_are_a_4xx_naming_the_field_and_the_next_request_answers(client, body, status, field):
    r = client.post("/v1/answer", json=body)
    assert r.status_code == status, r.text
    error = r.json()
    assert error["field"] == field
    assert error["error"].startswith(f"{field}: " if field else "")
    _ok(client)


@pytest.mark.parametrize(
    "raw,expected",
    [
        (b'{"question": "', "invalid JSON"),
        (b"", "body: is required"),
        (b'{"question": "\xff\xfe"}', "the body is not UTF-8 (byte 14"),
        (b"\xff\xfe\x00\x00", "the body is not UTF-8 (byte 0"),
        (b'{"question": "\\ud800"}', "question: "),  # a lone surrogate, valid JSON
    ],
)
def test_bytes_that_are_not_json_or_not_utf8_are_a_4xx_json_error(client, raw, expected):
    r = client.post("/v1/answer", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500
    assert r.json()["error"].startswith(expected), r.json()
    _ok(client)


def test_batch_limits_name_the_field(client):
    r = client.post("/v1/answers", json={"questions": ["가"] * 33})
    assert (r.status_code, r.json()["field"]) == (413, "questions")
    r = client.post("/v1/answers", json={"questions": ["가", ""]})
    assert (r.status_code, r.json()["field"]) == (422, "questions.1")
    r = client.post("/v1/answers", json={"questions": []})
    assert (r.status_code, r.json()["field"]) == (422, "questions")


def test_a_body_over_the_limit_is_refused_unread(stub_holder):
    config = ServeConfig(poll_interval_s=0, max_body_bytes=2048)
    with TestClient(create_app(config, stub_holder)) as client:
        r = client.post("/v1/answer", json={"question": "가" * 5000})
        assert r.status_code == 413 and r.json()["field"] == "body"
        _ok(client)
        chunks = iter([b'{"question": "', b"x" * 1500, b"x" * 1500, b'"}'])  # no Content-Length
        r = client.post("/v1/answer", content=chunks, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"].startswith("the body is more than the 2048 bytes")
        _ok(client)


def test_the_spec_states_the_limits(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/answer", "/v1/answers", "/ready", "/health", "/admin/reload"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert schemas["AnswerRequest"]["properties"]["question"]["maxLength"] == 2000
    top_k = schemas["AnswerRequest"]["properties"]["top_k"]["anyOf"][0]
    assert (top_k["minimum"], top_k["maximum"]) == (1, 100)


def test_ready_says_loading_until_a_model_is_loaded(stub_model):
    release = threading.Event()

    def slow_loader(uri):
        release.wait(30)
        return stub_model

    holder = ModelHolder(ModelSource("stub-model", "sqlite:///unused.db"), loader=slow_loader)
    swapped = threading.Event()
    with TestClient(create_app(ServeConfig(poll_interval_s=0), holder)) as client:
        holder.on_swap = (lambda f: lambda old, new: (f(old, new), swapped.set()))(holder.on_swap)
        assert client.get("/health").json() == {"status": "ok"}
        r = client.get("/ready")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        r = client.post("/v1/answer", json={"question": QUESTION})
        assert r.status_code == 503 and "no model loaded yet" in r.json()["error"]
        release.set()
        assert swapped.wait(30)
        r = client.get("/ready")
        assert r.status_code == 200 and r.json()["model_version"] == "stub-model"
        _ok(client)


def test_metrics_count_requests_errors_and_latency(client):
    _ok(client)
    _ok(client)
    client.post("/v1/answer", json={"question": ""})
    text = client.get("/metrics").text
    assert 'odqa_requests_total{route="/v1/answer",status="200"} 2.0' in text
    assert 'odqa_request_errors_total{route="/v1/answer",status="422"} 1.0' in text
    assert 'odqa_request_latency_seconds_count{route="/v1/answer"} 3.0' in text
    assert 'odqa_model_info{version="stub-model"} 1.0' in text
    assert "odqa_batch_questions_count 2.0" in text


@pytest.mark.parametrize("log_questions", [False, True])
def test_one_json_log_line_per_request_with_the_question_hash(stub_holder, caplog, log_questions):
    config = ServeConfig(poll_interval_s=0, log_questions=log_questions)
    with TestClient(create_app(config, stub_holder)) as client:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="odqa.service.access"):
            client.post("/v1/answer", json={"question": QUESTION})
    lines = [r.getMessage() for r in caplog.records if r.name == "odqa.service.access"]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["question_sha256"] == [hashlib.sha256(QUESTION.encode()).hexdigest()]
    assert record["model_version"] == "stub-model" and record["status"] == 200
    assert record["latency_ms"] > 0
    assert (QUESTION in lines[0]) is log_questions


def test_the_page_is_served_at_the_root(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'id="question"' in r.text and "v1/answer" in r.text and "<mark" not in r.text.split("<script>")[0]
