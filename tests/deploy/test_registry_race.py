"""Promotions racing on a tracking server with NO shared lock file (ODQA_REGISTRY_LOCK unset): pods
that share no volume. The server lock (odqa.registry.server_lock, a registered model created atomically
by PostgreSQL's primary key) must leave exactly one champion, the best, every time. Runs against the
manifests' stack (odqa.deploy.stack: MLflow server on the local PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import os
import random
import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

TRIALS = 4
RACERS = 4


def _racer(uri: str, plan: list[tuple[str, str, float]], barrier, results) -> None:
    """One register pod: for each trial, wait for the others, then promote its version."""
    import traceback

    os.environ.pop("ODQA_REGISTRY_LOCK", None)
    try:
        from odqa.registry import Evaluation, RegisterConfig, promote

        for model, version, em in plan:
            evaluation = Evaluation({"exact_match": em, "f1": em, "total": 10}, "e" * 64, 10)
            barrier.wait(timeout=120)  # every racer is imported and connected: now they race
            d = promote(uri, RegisterConfig(model_name=model), version, evaluation)
            results.put({"model": model, "version": version, "promoted": d.promoted})
    except BaseException:
        results.put({"error": traceback.format_exc()})
        barrier.abort()  # the others stop waiting for this one
        raise


def _versions(uri: str, model: str, n: int, tmp_path) -> list[str]:
    from odqa import registry, tracking

    run_id = tracking.start_pipeline_run(uri, "race", model)
    model_dir = tmp_path / model
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("artifact_path: model\n")
    tracking.client(uri).log_artifacts(run_id, str(model_dir), "model")  # a server wants run artifacts
    return [registry.register_version(uri, model, f"runs:/{run_id}/model") for _ in range(n)]


def test_racing_promotions_without_a_lock_file_leave_one_champion_the_best(stack, tmp_path):
    from odqa import registry, tracking

    uri = stack.tracking_uri
    rng = random.Random(7)
    plans: list[list[tuple[str, str, float]]] = [[] for _ in range(RACERS)]
    best: dict[str, str] = {}
    all_versions: dict[str, list[str]] = {}
    for trial in range(TRIALS):
        model = f"race-{trial}"
        versions = all_versions[model] = _versions(uri, model, RACERS, tmp_path)
        scores = rng.sample([10.0, 20.0, 30.0, 40.0, 50.0, 60.0], RACERS)
        best[model] = versions[scores.index(max(scores))]
        for racer, (version, em) in enumerate(zip(versions, scores, strict=True)):
            plans[racer].append((model, version, em))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(RACERS), ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(uri, plan, barrier, results)) for plan in plans]
    started = time.monotonic()
    for p in procs:
        p.start()
    try:
        reports = []
        while len(reports) < TRIALS * RACERS and not any("error" in r for r in reports):
            reports.append(results.get(timeout=240))
        for p in procs:
            p.join(timeout=60)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    errors = [r["error"] for r in reports if "error" in r]
    assert not errors, errors[0]
    c = tracking.client(uri)
    for model, expected in best.items():
        holders = [
            v for v in all_versions[model] if registry.CHAMPION in c.get_model_version(model, v).aliases
        ]
        assert holders == [expected], (model, holders, expected)
    # the lock is gone once every promotion is done
    with pytest.raises(Exception, match="RESOURCE_DOES_NOT_EXIST|not found|does not exist"):
        c.get_registered_model(registry.SERVER_LOCK_MODEL)
    print(f"{TRIALS} trials x {RACERS} racers in {time.monotonic() - started:.1f} s")


def test_a_dead_holders_lock_is_broken_after_its_lease(stack):
    from odqa import registry, tracking

    c = tracking.client(stack.tracking_uri)
    c.create_registered_model(registry.SERVER_LOCK_MODEL, tags={"odqa.holder": "a-pod-that-died"})
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="held by another promotion"):
        with registry.server_lock(stack.tracking_uri, wait_s=0.5, lease_s=60):
            pass
    with registry.server_lock(stack.tracking_uri, wait_s=30, lease_s=1.0):
        assert c.get_registered_model(registry.SERVER_LOCK_MODEL).tags["odqa.holder"] != "a-pod-that-died"
    assert time.monotonic() - started < 30
