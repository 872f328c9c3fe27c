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


class _ReadRendezvousClient:
    """An MlflowClient whose champion read waits for every competitor to have read it too: the
    interleaving the registry lock exists to forbid (all read the old champion, then all write)."""

    def __init__(self, inner, rendezvous):
        self._inner, self._rendezvous = inner, rendezvous

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def get_model_version_by_alias(self, name, alias):
        try:
            return self._inner.get_model_version_by_alias(name, alias)
        finally:
            if alias == registry.CHAMPION:
                self._rendezvous.wait(timeout=120)


def _compete(uri, version, em, start, requested, n_requested, results, with_lock, read_rendezvous):
    """One competitor (a spawned process): wait at `start` with the others, then promote through an
    observed registry lock that records when it was requested, acquired and released. The first
    holder waits until every competitor has requested the lock, so contention always happens."""
    import contextlib
    import traceback

    real_lock = registry.registry_lock
    times: dict[str, float] = {}

    @contextlib.contextmanager
    def observed_lock(tracking_uri):
        times["requested"] = time.monotonic()
        with requested:
            n_requested.value += 1
            requested.notify_all()
        with real_lock(tracking_uri) if with_lock else contextlib.nullcontext():
            times["acquired"] = time.monotonic()
            with requested:  # the others are now blocked on the lock (or, without it, inside too)
                assert requested.wait_for(lambda: n_requested.value == start.parties, timeout=120)
            yield
            times["released"] = time.monotonic()

    try:
        registry.registry_lock = observed_lock
        if read_rendezvous is not None:
            inner_client = tracking.client
            tracking.client = lambda u: _ReadRendezvousClient(inner_client(u), read_rendezvous)
        start.wait(timeout=120)
        decision = registry.promote(uri, RegisterConfig(), version, _evaluation(em))
        results.put({"decision": decision.to_dict(), **times})
    except BaseException:
        results.put({"version": version, "error": traceback.format_exc()})
        raise


def _run_competitors(uri: str, competitors: list[tuple[str, float]], with_lock: bool, read_rendezvous: bool):
    """Promote each (version, em) in its own process, all released at once; their reports by version."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding SQLite/MLflow state
    n = len(competitors)
    start, requested, n_requested = ctx.Barrier(n), ctx.Condition(), ctx.Value("i", 0)
    rendezvous = ctx.Barrier(n) if read_rendezvous else None
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_compete,
            args=(uri, version, em, start, requested, n_requested, results, with_lock, rendezvous),
        )
        for version, em in competitors
    ]
    for p in procs:
        p.start()
    try:
        reports = [results.get(timeout=180) for _ in procs]
        for p in procs:
            p.join(timeout=60)
    finally:
        for p in procs:
            if p.is_alive():  # a competitor stuck at a barrier: end it, the test fails above
                p.kill()
    errors = [r["error"] for r in reports if "error" in r]
    assert not errors, errors[0]
    assert [p.exitcode for p in procs] == [0] * n
    return {r["decision"]["version"]: r for r in reports}


def _holders(uri: str, versions: list[str]) -> list[str]:
    c = tracking.client(uri)
    return [v for v in versions if registry.CHAMPION in c.get_model_version("odqa", v).aliases]


@pytest.mark.integration
def test_concurrent_promotions_contend_for_the_lock_and_leave_the_best_champion(store, tmp_path):
    """Two promotions start together and both ask for the lock while one holds it; the lock makes the
    second read the first one's result, so the best of them ends as the only champion."""
    versions = [_new_version(store, tmp_path) for _ in range(3)]
    registry.promote(store, RegisterConfig(), versions[0], _evaluation(10.0))
    reports = _run_competitors(store, [(versions[1], 30.0), (versions[2], 20.0)], True, False)

    first, second = sorted(reports.values(), key=lambda r: r["acquired"])
    assert second["requested"] < first["released"]  # contention: it asked while the other held the lock
    assert second["acquired"] >= first["released"]  # and got it only after
    expected_seen = first["decision"]["version"] if first["decision"]["promoted"] else versions[0]
    assert second["decision"]["champion_version"] == expected_seen  # it read the first one's write
    assert _holders(store, versions) == [versions[1]]


@pytest.mark.integration
def test_without_the_lock_both_promote_over_the_same_champion(store, tmp_path):
    """The race the lock prevents, forced: with a no-op lock and both competitors past the champion
    read before either writes, both promote over v1, so whichever writes last (maybe the worse one)
    ends champion. The test above would catch a lock that stopped serialising."""
    versions = [_new_version(store, tmp_path) for _ in range(3)]
    registry.promote(store, RegisterConfig(), versions[0], _evaluation(10.0))
    reports = _run_competitors(store, [(versions[1], 30.0), (versions[2], 20.0)], False, True)

    decisions = [r["decision"] for r in reports.values()]
    assert all(d["promoted"] and d["champion_version"] == versions[0] for d in decisions)
    assert len(_holders(store, versions)) == 1  # the alias itself stays single-valued


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


def test_register_failing_after_promotion_gives_champion_back(store, tmp_path):
    """A register stage that fails after promoting (a later tag write, the decision file) must not
    leave its version champion: `promotion` withdraws it and says why on the version."""
    v1 = _new_version(store, tmp_path)
    registry.promote(store, RegisterConfig(), v1, _evaluation(10.0))
    v2 = _new_version(store, tmp_path)
    with pytest.raises(RuntimeError, match="disk full"):
        with registry.promotion(store, RegisterConfig(), v2, _evaluation(20.0)) as decision:
            assert decision.promoted and _champion(store) == v2
            raise RuntimeError("disk full")
    assert _champion(store) == v1
    tags = tracking.client(store).get_model_version("odqa", v2).tags
    assert tags[registry.DECISION_TAG] == "withdrawn" and "disk full" in tags[registry.REASON_TAG]


def test_first_version_withdrawn_leaves_no_champion(store, tmp_path):
    v1 = _new_version(store, tmp_path)
    with pytest.raises(OSError):
        with registry.promotion(store, RegisterConfig(), v1, _evaluation(10.0)):
            raise OSError("no space")
    with pytest.raises(Exception, match="champion"):
        _champion(store)


class _AliasFails:
    """An MlflowClient whose champion alias write fails (the server went away mid-promotion)."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def set_registered_model_alias(self, name, alias, version):
        if alias == registry.CHAMPION:
            raise ConnectionError("tracking server unreachable")
        return self._inner.set_registered_model_alias(name, alias, version)


def test_champion_alias_is_the_last_write_of_a_promotion(store, tmp_path, monkeypatch):
    v1 = _new_version(store, tmp_path)
    inner = tracking.client
    monkeypatch.setattr(tracking, "client", lambda uri: _AliasFails(inner(uri)))
    with pytest.raises(ConnectionError):
        registry.promote(store, RegisterConfig(), v1, _evaluation(10.0))
    monkeypatch.setattr(tracking, "client", inner)
    with pytest.raises(Exception, match="champion"):
        _champion(store)
    assert tracking.client(store).get_model_version("odqa", v1).tags[registry.DECISION_TAG] == "failed"


# ---------------------------------------------------------------- promotion by significance

N_QUESTIONS = 1000


def _scored(correct: set[int], fingerprint: str = "a" * 64) -> Evaluation:
    """An evaluation of N_QUESTIONS questions with per-question scores: EM 100 on `correct`, else 0."""
    questions = {
        f"q{i}": {"exact_match": 100.0 if i in correct else 0.0, "f1": 100.0 if i in correct else 20.0}
        for i in range(N_QUESTIONS)
    }
    em = sum(q["exact_match"] for q in questions.values()) / N_QUESTIONS
    f1 = sum(q["f1"] for q in questions.values()) / N_QUESTIONS
    return Evaluation(
        {"exact_match": em, "f1": f1, "total": N_QUESTIONS}, fingerprint, N_QUESTIONS, questions
    )


def _versions_with_runs(uri: str, tmp_path: Path, n: int) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        run_id = tracking.start_pipeline_run(uri, "exp", "run")
        model_dir = tmp_path / f"model-{run_id}"
        model_dir.mkdir()
        (model_dir / "MLmodel").write_text("artifact_path: model\n")
        out.append((registry.register_version(uri, "odqa", model_dir.as_uri(), run_id=run_id), run_id))
    return out


def test_lucky_challenger_is_refused_and_clearly_better_one_promoted(store, tmp_path):
    """EM about 4 on 1,000 questions: the same model with another seed answers a few other questions
    right (+0.5 EM by luck): a point comparison would promote it, the paired bootstrap does not."""
    import random

    rng = random.Random(7)
    champion_correct = set(rng.sample(range(N_QUESTIONS), 40))  # EM 4.0
    others = [i for i in range(N_QUESTIONS) if i not in champion_correct]
    lucky = (champion_correct - set(rng.sample(sorted(champion_correct), 12))) | set(rng.sample(others, 17))
    better = champion_correct | set(rng.sample(others, 60))  # EM 10.0
    (v1, r1), (v2, r2), (v3, r3) = _versions_with_runs(store, tmp_path, 3)
    cfg = RegisterConfig()
    assert registry.promote(store, cfg, v1, _scored(champion_correct), run_id=r1).promoted

    d2 = registry.promote(store, cfg, v2, _scored(lucky), run_id=r2)
    assert d2.value > d2.champion_value  # better by the point estimate ...
    assert not d2.promoted and _champion(store) == v1  # ... but not significantly
    assert d2.bootstrap is not None and d2.bootstrap.lower < 0 < d2.bootstrap.upper
    assert d2.bootstrap.questions == N_QUESTIONS and d2.bootstrap.resamples == 2000
    assert "paired bootstrap" in d2.reason and "does not beat" in d2.reason

    d3 = registry.promote(store, cfg, v3, _scored(better), run_id=r3)
    assert d3.promoted and _champion(store) == v3
    assert d3.bootstrap.lower > 0 and d3.bootstrap.delta == pytest.approx(6.0)  # against v1, still champion
    tags = tracking.client(store).get_model_version("odqa", v3).tags
    assert float(tags["odqa.bootstrap_lower"]) == pytest.approx(d3.bootstrap.lower)
    assert tags["odqa.bootstrap_resamples"] == "2000" and tags["odqa.bootstrap_confidence"] == "0.95"
    assert tags[registry.SCORES_URI_TAG].startswith(f"runs:/{r3}/")
    run_tags = tracking.client(store).get_run(r3).data.tags
    assert run_tags[registry.DECISION_TAG] == "promoted" and "odqa.bootstrap_upper" in run_tags


def test_margin_applies_to_the_lower_bound(store, tmp_path):
    rng_correct = set(range(0, 40))
    better = rng_correct | set(range(500, 560))  # +6 EM, lower bound about +4.6
    (v1, r1), (v2, r2) = _versions_with_runs(store, tmp_path, 2)
    registry.promote(store, RegisterConfig(), v1, _scored(rng_correct), run_id=r1)
    d = registry.promote(store, RegisterConfig(margin=5.0), v2, _scored(better), run_id=r2)
    assert not d.promoted and 4.0 < d.bootstrap.lower < 5.0 and "margin 5.0" in d.reason
    # The same inputs decide the same way (fixed seed).
    again = registry.paired_bootstrap(
        [100.0 if i in better else 0.0 for i in range(N_QUESTIONS)],
        [100.0 if i in rng_correct else 0.0 for i in range(N_QUESTIONS)],
        0.95,
        2000,
        0,
    )
    assert again.lower == d.bootstrap.lower


def test_champion_without_question_scores_falls_back_to_point_comparison(store, tmp_path):
    (v1, r1), (v2, r2) = _versions_with_runs(store, tmp_path, 2)
    registry.promote(store, RegisterConfig(), v1, _evaluation(3.0), run_id=r1)  # an older odqa's champion
    d = registry.promote(store, RegisterConfig(), v2, _scored(set(range(35))), run_id=r2)  # EM 3.5
    assert d.promoted and d.bootstrap is None
    assert "point comparison" in d.reason and "no per-question scores" in d.reason
    assert "odqa.bootstrap_lower" not in tracking.client(store).get_model_version("odqa", v2).tags
