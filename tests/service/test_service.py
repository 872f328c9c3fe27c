"""The service over a real registered model (tiny reader, BM25 over KorQuAD articles, SQLite registry),
served by uvicorn on 127.0.0.1: the champion swap under a steady stream of requests, a property-based
fuzz run against the OpenAPI spec, and the page in Debian's Chromium."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx2 as httpx
import pytest

from odqa import registry, tracking
from odqa.service.app import create_app
from odqa.service.config import ServeConfig
from odqa.service.server import BackgroundServer

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MAX_EXAMPLES = 25  # per operation: the whole fuzz run stays well under a minute


def _serve(model, **overrides) -> tuple[BackgroundServer, threading.Event]:
    """The service on a free port, and an event set once a model is serving."""
    config = ServeConfig(tracking_uri=model.tracking_uri, **{"poll_interval_s": 0, **overrides})
    app = create_app(config)
    holder = app.state.holder
    loaded = threading.Event()
    previous = holder.on_swap
    holder.on_swap = lambda old, new: (previous(old, new), loaded.set())
    return BackgroundServer(app), loaded


def test_the_alias_moves_under_a_steady_stream_with_no_failed_request(registered_model):
    """A client thread asks continuously; once it has answers from version 1, the alias moves to
    version 2; the watcher (polling every 0.05 s) loads 2 beside 1 and swaps. No request fails, and
    once a response names version 2 no later one names version 1."""
    v1, v2 = registered_model.versions
    server, loaded = _serve(registered_model, poll_interval_s=0.05)
    with server:
        assert loaded.wait(60)
        seen: list[tuple[int, str | None]] = []
        failures: list[str] = []
        answered_by_v1 = threading.Event()
        answered_by_v2 = threading.Event()
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                after_v2 = 0
                i = 0
                while not stop.is_set() and after_v2 < 20:
                    q = registered_model.questions[i % len(registered_model.questions)]
                    i += 1
                    try:
                        r = c.post("/v1/answer", json={"question": q})
                    except httpx.HTTPError as e:
                        failures.append(repr(e))
                        continue
                    version = r.json().get("model_version") if r.status_code == 200 else None
                    seen.append((r.status_code, version))
                    if r.status_code != 200:
                        failures.append(r.text)
                    if version == v1 and len(seen) >= 5:
                        answered_by_v1.set()
                    if version == v2:
                        answered_by_v2.set()
                        after_v2 += 1

        thread = threading.Thread(target=client)
        thread.start()
        try:
            assert answered_by_v1.wait(60), seen
            tracking.client(registered_model.tracking_uri).set_registered_model_alias(
                "odqa", registry.CHAMPION, v2
            )
            assert answered_by_v2.wait(60), seen[-5:]
        finally:
            thread.join(120)
            stop.set()
        assert failures == []
        versions = [v for _, v in seen]
        switch = versions.index(v2)
        assert switch >= 5 and set(versions[:switch]) == {v1} and set(versions[switch:]) == {v2}
        assert len(versions) - switch >= 20
        ready = httpx.get(f"{server.url}/ready").json()
        assert ready["model_version"] == v2
        metrics = httpx.get(f"{server.url}/metrics").text
        assert f'odqa_model_info{{version="{v2}"}} 1.0' in metrics and f'version="{v1}"' not in metrics


def test_admin_reload_swaps_at_once(registered_model):
    v1, v2 = registered_model.versions
    server, loaded = _serve(registered_model)  # no polling
    with server, httpx.Client(base_url=server.url, timeout=60) as c:
        assert loaded.wait(60)
        assert c.post("/admin/reload").json() == {"changed": False, "model_version": v1}
        tracking.client(registered_model.tracking_uri).set_registered_model_alias(
            "odqa", registry.CHAMPION, v2
        )
        assert c.post("/admin/reload").json() == {"changed": True, "model_version": v2}
        assert (
            c.post("/v1/answer", json={"question": registered_model.questions[0]}).json()["model_version"]
            == v2
        )


def test_a_fuzz_run_against_the_openapi_spec_finds_no_server_error(registered_model):
    """schemathesis generates requests from /openapi.json (valid and invalid bodies, wrong types,
    boundary values) for every operation; a 5xx, or a response outside the documented ones, fails."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    server, loaded = _serve(registered_model)
    with server:
        assert loaded.wait(60)
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        operations = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path == "/admin/reload":
                continue  # reloading is not input handling (test_admin_reload_swaps_at_once)
            operations += 1

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            @given(case=operation.as_strategy())
            def check(case):
                case.validate_response(case.call(base_url=server.url, timeout=30), checks=checks)

            check()
        assert operations == 5  # answer, answers, health, ready, metrics
        # still answering normally afterwards
        r = httpx.post(
            f"{server.url}/v1/answer", json={"question": registered_model.questions[0]}, timeout=30
        )
        assert r.status_code == 200


def test_the_page_highlights_the_answer_the_api_gives(registered_model, tmp_path):
    """Chromium types a KorQuAD question into the page; the highlighted <mark> equals the JSON API's
    answer for the same question; the screenshot is saved in this test's folder."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: `make test` installs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    question = registered_model.questions[1]
    server, loaded = _serve(registered_model)
    with server:
        assert loaded.wait(60)
        expected = httpx.post(f"{server.url}/v1/answer", json={"question": question}, timeout=30).json()
        assert expected["answer"]
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1400"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.get(server.url + "/")
            box = driver.find_element(By.ID, "question")
            box.send_keys(question)
            driver.find_element(By.ID, "ask").click()
            mark = WebDriverWait(driver, 30).until(ec.visibility_of_element_located((By.ID, "answer")))
            assert mark.text == expected["answer"] == driver.find_element(By.ID, "answer-text").text
            assert driver.find_element(By.ID, "answered-by").text == expected["model_version"]
            assert driver.find_element(By.ID, "title").text == next(
                p["title"] for p in expected["passages"] if p["passage_id"] == expected["passage_id"]
            )
            assert len(driver.find_elements(By.CSS_SELECTOR, "#passages li")) == len(expected["passages"])
            screenshot = tmp_path / "ask-the-champion.png"
            assert driver.save_screenshot(str(screenshot))
            print(f"screenshot: {screenshot}")
        finally:
            driver.quit()
    assert screenshot.stat().st_size > 10_000


def test_one_command_serves_the_champion(registered_model, tmp_path):
    """`odqa serve` in a subprocess: it prints where it listens, logs the version it loaded, answers,
    writes one JSON line per request, and stops on SIGTERM."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [
        str(Path(sys.executable).with_name("odqa")),
        "serve",
        "--tracking-uri",
        registered_model.tracking_uri,
        "--port",
        "0",
    ]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        listening = json.loads(proc.stdout.readline())
        url = listening["url"]
        assert listening["model"] == "models:/odqa@champion"
        for line in proc.stderr:  # the log says when the model serves (no polling)
            if "serving version" in line:
                break
        assert httpx.get(f"{url}/ready").json()["model_version"] == registered_model.versions[0]
        question = registered_model.questions[0]
        r = httpx.post(f"{url}/v1/answer", json={"question": question}, timeout=30)
        assert r.status_code == 200 and r.json()["model_version"] == registered_model.versions[0]
        for line in proc.stderr:
            if line.startswith("{"):
                record = json.loads(line)
                break
        assert record["path"] == "/v1/answer" and record["status"] == 200 and question not in line
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn finishes the requests in flight, then exits by the signal it caught
        assert proc.wait(30) in (0, -signal.SIGTERM)


def test_a_batch_reads_top_k_passages_and_every_offset_points_at_its_answer(registered_model):
    server, loaded = _serve(registered_model)
    with server:
        assert loaded.wait(60)
        questions = registered_model.questions[:4]
        r = httpx.post(f"{server.url}/v1/answers", json={"questions": questions, "top_k": 2}, timeout=60)
    assert r.status_code == 200
    answers = r.json()["answers"]
    assert [a["question"] for a in answers] == questions
    for a in answers:
        assert len(a["passages"]) == 2
        for p in a["passages"]:
            if p["answer"] and p["answer"]["start_char"] is not None:
                assert p["text"][p["answer"]["start_char"] : p["answer"]["end_char"]] == p["answer"]["text"]
        best = next(p for p in a["passages"] if p["passage_id"] == a["passage_id"])
        assert best["text"][a["start_char"] : a["end_char"]] == a["answer"]
