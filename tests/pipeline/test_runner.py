"""The whole DAG on a tiny slice of real KorQuAD with the real kfp local runner and real MLflow: first
against SQLite, then through `mlflow server` on the same store, where a second, worse run must not
take `champion`; the champion pyfunc loads by alias and answers."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from odqa import registry, settings, tracking
from odqa.errors import InputError
from odqa.pipeline.runner import LocalRunConfig, run_local

pytestmark = pytest.mark.integration

STAGES = {
    "prepare_data",
    "preprocess",
    "augment",
    "index",
    "retrieve",
    "train_reader",
    "predict",
    "ensemble",
    "evaluate",
    "register",
}


@pytest.fixture(scope="module")
def tiny_korquad(tmp_path_factory) -> Path:
    """4 articles x 2 paragraphs x 3 questions of KorQuAD 1.0 dev."""
    data = json.loads(settings.korquad_dev_path().read_text(encoding="utf-8"))
    articles = [
        {
            "title": a["title"],
            "paragraphs": [{"context": p["context"], "qas": p["qas"][:3]} for p in a["paragraphs"][:2]],
        }
        for a in data["data"][:4]
    ]
    path = tmp_path_factory.mktemp("data") / "tiny_korquad.json"
    path.write_text(json.dumps({"version": data.get("version", ""), "data": articles}, ensure_ascii=False))
    return path


def _params(data: Path, reader: dict, epochs: float) -> dict:
    return {
        "data_uri": str(data),
        "eval_fraction": 0.5,
        "analyzer": "bigram",
        "top_k": 3,
        "epochs": epochs,
        "reader_configs": [reader],
        "promotion_metric": "f1",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_mlflow_server(backend_uri: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    cmd = [mlflow_bin, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(
        cmd + ["--backend-store-uri", backend_uri],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
        assert proc.poll() is None, "mlflow server exited"
    proc.send_signal(signal.SIGTERM)
    raise AssertionError("mlflow server did not answer /health")


def test_local_dag_registers_promotes_and_serves(tiny_korquad, tiny_reader, tmp_path):
    runs_dir = tmp_path / "runs"
    first = run_local(LocalRunConfig(str(runs_dir), None, _params(tiny_korquad, tiny_reader, epochs=3)))
    uri = first.tracking_uri
    assert uri == tracking.sqlite_uri(runs_dir / "mlflow.db")
    c = tracking.client(uri)
    parent = c.get_run(first.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[registry.DECISION_TAG] == "promoted"

    stages = {r.data.tags[tracking.STAGE_TAG]: r for r in tracking.stage_runs(uri, first.parent_run_id)}
    assert set(stages) == STAGES
    assert all(
        r.info.status == "FINISHED" and tracking.DURATION_METRIC in r.data.metrics for r in stages.values()
    )
    assert 0.0 <= stages["retrieve"].data.metrics["by_document.recall_at_1"] <= 1.0
    evaluate = stages["evaluate"].data.metrics
    assert {"exact_match", "f1", "total"} <= set(evaluate) and evaluate["total"] > 0
    predict_files = {a.path for a in c.list_artifacts(stages["predict"].info.run_id)}
    assert {"predictions.json", "nbest.json", "answer_scores.png"} <= predict_files
    assert "recall_at_k.png" in {a.path for a in c.list_artifacts(stages["retrieve"].info.run_id)}
    assert "registry: odqa v1 -> promoted" in first.summary and "evaluate" in first.summary
    assert (first.run_dir / "summary.txt").is_file() and (first.run_dir / "artifacts").is_dir()

    champion = c.get_model_version_by_alias("odqa", registry.CHAMPION)
    assert str(champion.version) == "1" and champion.run_id == first.parent_run_id
    assert champion.tags[registry.FINGERPRINT_TAG] and float(champion.tags["odqa.f1"]) == pytest.approx(
        evaluate["f1"]
    )

    import mlflow.pyfunc
    import pandas as pd
    from mlflow.pyfunc.scoring_server import predictions_to_json

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model("models:/odqa@champion")
    questions = [json.loads(line)["question"] for line in open(_eval_qa(first.run_dir), encoding="utf-8")][:2]
    answers = model.predict(pd.DataFrame({"question": questions}))
    assert [a["question"] for a in answers] == questions
    assert all(isinstance(a["answer"], str) and len(a["passages"]) == 3 for a in answers)
    assert all(a["passages"][0]["score"] >= a["passages"][-1]["score"] for a in answers)
    assert (
        len(model.predict(pd.DataFrame({"question": questions[:1]}), params={"top_k": 1})[0]["passages"]) == 1
    )
    out = io.StringIO()
    predictions_to_json(answers, out)  # what `mlflow models serve` returns
    assert json.loads(out.getvalue())["predictions"][0]["question"] == questions[0]

    # Second run through a tracking server on the same store, with an untrained reader.
    server, url = _start_mlflow_server(uri)
    try:
        # A reader trained for one step, which must beat the champion by more than the whole F1 scale:
        # whatever tiny scores both get, it cannot be promoted (worse-scores-never-promote is tested
        # exactly in test_tracking.py; this checks the DAG passes the margin through and records why).
        worse_reader = {**tiny_reader, "max_steps": 1}
        params = {**_params(tiny_korquad, worse_reader, epochs=1), "promotion_margin": 101.0}
        second = run_local(LocalRunConfig(str(runs_dir), url, params))
        cs = tracking.client(url)
        second_tags = cs.get_run(second.parent_run_id).data.tags
        version2 = cs.get_model_version("odqa", "2")
        assert registry.CHALLENGER in version2.aliases and registry.CHAMPION not in version2.aliases
        assert str(cs.get_model_version_by_alias("odqa", registry.CHAMPION).version) == "1"
        assert second_tags[registry.DECISION_TAG] == "kept"
        assert "does not beat champion v1" in second_tags[registry.REASON_TAG]
        assert "registry: odqa v2 -> kept" in second.summary
        assert len(tracking.stage_runs(url, second.parent_run_id)) == len(STAGES)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def _eval_qa(run_dir: Path) -> Path:
    return next(run_dir.glob("artifacts/*/prepare-data/eval_qa/qa.jsonl"))


@pytest.mark.parametrize(
    ("cron", "error"),
    [
        ("0 0 3 * * *", None),
        ("*/15 0-30/5 1,13 ? JAN-MAR MON-FRI", None),
        ("@daily", None),
        ("@every 1h", None),
        ("60 0 3 * * *", "seconds field '60'"),
        ("0 60 3 * * *", "minutes field"),
        ("0 0 24 * * *", "hours field"),
        ("0 0 3 0 * *", "day of month field"),
        ("0 0 3 * 13 *", "month field"),
        ("0 0 3 * * 7", "day of week field"),
        ("0 0 3 * * 1-", "expected"),
        ("0 0 3 * * 5-1", "runs backwards"),
        ("0 0/0 3 * * *", "step"),
        ("? 0 3 * * *", "only for day of month"),
        ("0 3 * * *", "has 5 fields"),
        ("@sometimes", "unknown descriptor"),
    ],
)
def test_validate_cron_checks_each_field(cron, error):
    """A typo in --cron fails here, naming the field, not on the cluster at the first firing."""
    from odqa.pipeline.runner import validate_cron

    if error is None:
        assert validate_cron(cron) == cron
    else:
        with pytest.raises(InputError, match=re.escape(error) if "'" in error else error):
            validate_cron(cron)


def test_stage_failure_finds_the_stage_and_its_own_error_line():
    """The kfp runner's coloured RuntimeError names the task; the stage's traceback ends with its error."""
    from odqa.pipeline.runner import stage_failure

    message = "Pipeline \x1b[95m'odqa'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m. Inner task failed: \x1b[96m'prepare-data'\x1b[0m."
    lines = [
        "Traceback (most recent call last):",
        '  File "x.py"',
        "odqa.errors.InputError: d.json [record 3]: bad",
        "",
        "done",
    ]
    assert stage_failure(message, lines) == ("prepare-data", "d.json [record 3]: bad")
    assert stage_failure(message, ["ValueError: boom"]) == ("prepare-data", "ValueError: boom")
    assert stage_failure("finished with status FAILURE", []) == ("?", "see the log")
