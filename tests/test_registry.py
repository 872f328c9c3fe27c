"""Registry promotion rules and nested stage runs against a real MLflow SQLite store."""

from __future__ import annotations

import multiprocessing
import shutil
import time
from pathlib import Path

import pytest

from odqa import registry, tracking
from odqa.registry import Evaluation, RegisterConfig


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory) -> Path:
    """Creating MLflow's tables takes seconds; each test gets a copy of one migrated database."""
    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    tracking.client(tracking.sqlite_uri(db)).search_experiments()
    return db


@pytest.fixture()
def store(tmp_path: Path, empty_db: Path) -> str:
    shutil.copy(empty_db, tmp_path / "mlflow.db")
    return tracking.sqlite_uri(tmp_path / "mlflow.db")


def _new_version(uri: str, tmp_path: Path, name: str = "odqa") -> str:
    run_id = tracking.start_pipeline_run(uri, "exp", "run")
    model_dir = tmp_path / f"model-{run_id}"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("artifact_path: model\n")
    return registry.register_version(uri, name, model_dir.as_uri(), run_id=run_id)


def _evaluation(em: float, fingerprint: str = "a" * 64, total: int = 10, expected: int = 10) -> Evaluation:
    return Evaluation({"exact_match": em, "f1": em + 5, "total": total}, fingerprint, expected)


def _champion(uri: str, name: str = "odqa") -> str:
    return str(tracking.client(uri).get_model_version_by_alias(name, registry.CHAMPION).version)


def test_first_version_becomes_champion_and_worse_one_does_not(store, tmp_path):
    cfg = RegisterConfig(margin=1.0)
    v1 = _new_version(store, tmp_path)
    d1 = registry.promote(store, cfg, v1, _evaluation(50.0))
    assert d1.promoted and _champion(store) == v1

    v2 = _new_version(store, tmp_path)
    d2 = registry.promote(store, cfg, v2, _evaluation(40.0))
    assert not d2.promoted and d2.champion_version == v1 and d2.champion_value == 50.0
    assert _champion(store) == v1
    c = tracking.client(store)
    assert str(c.get_model_version_by_alias("odqa", registry.CHALLENGER).version) == v2
    assert c.get_model_version("odqa", v2).tags[registry.DECISION_TAG] == "kept"
    assert "does not beat" in c.get_model_version("odqa", v2).tags[registry.REASON_TAG]


def test_margin_is_required(store, tmp_path):
    cfg = RegisterConfig(margin=1.0)
    v1 = _new_version(store, tmp_path)
    registry.promote(store, cfg, v1, _evaluation(50.0))
    v2 = _new_version(store, tmp_path)
    assert not registry.promote(store, cfg, v2, _evaluation(50.5)).promoted
    v3 = _new_version(store, tmp_path)
    assert registry.promote(store, cfg, v3, _evaluation(51.0)).promoted
    assert _champion(store) == v3


def test_equal_score_with_zero_margin_keeps_champion(store, tmp_path):
    v1 = _new_version(store, tmp_path)
    registry.promote(store, RegisterConfig(), v1, _evaluation(50.0))
    v2 = _new_version(store, tmp_path)
    assert not registry.promote(store, RegisterConfig(), v2, _evaluation(50.0)).promoted


def test_other_eval_set_is_not_comparable(store, tmp_path):
    v1 = _new_version(store, tmp_path)
    registry.promote(store, RegisterConfig(), v1, _evaluation(10.0, fingerprint="a" * 64))
    v2 = _new_version(store, tmp_path)
    d = registry.promote(store, RegisterConfig(), v2, _evaluation(90.0, fingerprint="b" * 64))
    assert not d.promoted and "another eval set" in d.reason
    assert _champion(store) == v1
    v3 = _new_version(store, tmp_path)
    cfg = RegisterConfig(promote_when_incomparable=True)
    assert registry.promote(store, cfg, v3, _evaluation(5.0, fingerprint="b" * 64)).promoted
    assert _champion(store) == v3


@pytest.mark.parametrize(
    "evaluation",
    [
        Evaluation({"exact_match": 99.0, "f1": 99.0, "total": 7}, "a" * 64, 10),  # partial
        Evaluation({"f1": 99.0, "total": 10}, "a" * 64, 10),  # metric missing
        Evaluation({"exact_match": float("nan"), "total": 10}, "a" * 64, 10),
    ],
)
def test_failed_or_partial_evaluation_never_promotes(store, tmp_path, evaluation):
    run_id = tracking.start_pipeline_run(store, "exp", "first")
    v1 = _new_version(store, tmp_path)
    registry.promote(store, RegisterConfig(), v1, _evaluation(10.0))
    v2 = _new_version(store, tmp_path)
    d = registry.promote(store, RegisterConfig(), v2, evaluation, run_id=run_id)
    assert not d.promoted and d.reason.startswith("not promoted")
    assert _champion(store) == v1
    assert tracking.client(store).get_run(run_id).data.tags[registry.DECISION_TAG] == "kept"


def test_partial_evaluation_does_not_become_first_champion(store, tmp_path):
    v1 = _new_version(store, tmp_path)
    d = registry.promote(store, RegisterConfig(), v1, _evaluation(80.0, total=3, expected=10))
    assert not d.promoted and "partial" in d.reason
    with pytest.raises(Exception, match="champion"):
        _champion(store)


def _promote_in_process(uri: str, version: str, em: float, go_file: str) -> None:
    while not Path(go_file).exists():
        time.sleep(0.01)
    registry.promote(uri, RegisterConfig(), version, _evaluation(em))


def test_concurrent_promotions_leave_exactly_one_champion_the_best(store, tmp_path):
    versions = [_new_version(store, tmp_path) for _ in range(3)]
    registry.promote(store, RegisterConfig(), versions[0], _evaluation(10.0))
    go = tmp_path / "go"
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_promote_in_process, args=(store, versions[1], 30.0, str(go))),
        ctx.Process(target=_promote_in_process, args=(store, versions[2], 20.0, str(go))),
    ]
    for p in procs:
        p.start()
    time.sleep(1.0)
    go.touch()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    c = tracking.client(store)
    holders = [v for v in versions if registry.CHAMPION in c.get_model_version("odqa", v).aliases]
    assert holders == [versions[1]]


def test_stage_runs_nest_under_parent_and_failure_marks_parent(store, tmp_path):
    parent = tracking.start_pipeline_run(store, "exp", "pipeline", params={"reader": {"epochs": 1}})
    with tracking.stage_run(store, parent, "index", params={"kind": "bm25"}) as sr:
        sr.log_metrics({"recall@5": 0.9, "skipped": "text"})
        report = tmp_path / "report.md"
        report.write_text("# ok\n")
        sr.log_artifact(report)
    with pytest.raises(RuntimeError):
        with tracking.stage_run(store, parent, "predict"):
            raise RuntimeError("boom")
    runs = tracking.stage_runs(store, parent)
    assert [r.data.tags[tracking.STAGE_TAG] for r in runs] == ["index", "predict"]
    assert runs[0].data.metrics["recall_at_5"] == 0.9 and tracking.DURATION_METRIC in runs[0].data.metrics
    assert runs[0].data.params["kind"] == "bm25" and runs[0].info.status == "FINISHED"
    assert runs[1].info.status == "FAILED"
    c = tracking.client(store)
    assert [a.path for a in c.list_artifacts(runs[0].info.run_id)] == ["report.md"]
    parent_run = c.get_run(parent)
    assert parent_run.info.status == "FAILED" and parent_run.data.tags["odqa.failed_stage"] == "predict"
    assert parent_run.data.params["reader.epochs"] == "1"
    assert parent_run.data.metrics["index.recall_at_5"] == 0.9  # stage metrics mirrored on the pipeline run
    assert f"predict.{tracking.DURATION_METRIC}" in parent_run.data.metrics
    exp = c.get_experiment(parent_run.info.experiment_id)
    assert exp.artifact_location == (tmp_path / "mlartifacts").as_uri()
