"""The deployed stack, run here as deployed (odqa.deploy.stack): MLflow's server with the command and
environment of manifests/ (kustomize build of overlays/local) on the local PostgreSQL, artifacts in an
S3-compatible server (moto) in the bucket the manifests' init step creates.

The MLflow Python client cannot choose the Host header, so the host allow-list is checked with direct
HTTP requests carrying the in-cluster names, and tracking goes through http://127.0.0.1:PORT (which the
manifests admit for `kubectl port-forward`)."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
import requests

from odqa.deploy.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def s3(stack: Stack):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=stack.s3_endpoint,
        aws_access_key_id=stack.s3_credentials.get("AWS_ACCESS_KEY_ID", "x"),
        aws_secret_access_key=stack.s3_credentials.get("AWS_SECRET_ACCESS_KEY", "x"),
        region_name="us-east-1",
    )


def _get(stack: Stack, path: str, host: str) -> requests.Response:
    return requests.get(f"{stack.tracking_uri}{path}", headers={"Host": host}, timeout=10)


API = "/api/2.0/mlflow/experiments/get?experiment_id=0"


def test_the_stack_is_what_the_manifests_say(stack, s3):
    assert stack.artifacts_bucket == "mlflow-artifacts"
    assert stack.artifacts_bucket in stack.buckets, f"no init step creates {stack.artifacts_bucket}"
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} >= set(stack.buckets)
    assert stack.allowed_hosts, "the manifests set no MLFLOW_SERVER_ALLOWED_HOSTS"


def test_in_cluster_host_names_are_admitted_and_others_refused(stack):
    for host in stack.in_cluster_hosts():
        r = _get(stack, API, host)
        assert r.status_code == 200, f"Host {host}: {r.status_code} {r.text[:100]}"
    for host in [
        "mlflow.other.svc.cluster.local:5000",
        "evil.example.com",
        "mlflow.odqa.svc.cluster.local:8080",
    ]:
        r = _get(stack, API, host)
        assert r.status_code == 403 and "Invalid Host header" in r.text, f"Host {host}: {r.status_code}"
    # /health skips the check: why the readiness probe must not use it
    assert _get(stack, "/health", "evil.example.com").status_code == 200


def test_readiness_probe_passes_and_would_fail_with_a_wrong_host(stack):
    probe = stack.readiness_probe
    assert stack.readiness() == 200, stack.log_tail()
    headers = {h["name"]: h["value"] for h in probe.get("httpHeaders", [])}
    r = requests.get(
        f"{stack.tracking_uri}{probe['path']}", headers={**headers, "Host": "evil:5000"}, timeout=10
    )
    assert r.status_code == 403


def _pyfunc_model():
    import mlflow.pyfunc

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input: list[int], params=None) -> list[int]:
            return [2 * x for x in model_input]

    return Doubler()


def test_run_artifact_registry_alias_and_load_from_s3(stack, s3, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(stack.tracking_uri)
    mlflow.set_registry_uri(stack.tracking_uri)
    exp = mlflow.set_experiment("stack-roundtrip")
    note = tmp_path / "note.txt"
    note.write_text("나는 아티팩트", encoding="utf-8")
    with mlflow.start_run(experiment_id=exp.experiment_id) as run:
        mlflow.log_param("retriever_kind", "bm25")
        mlflow.log_metric("exact_match", 61.5)
        mlflow.log_artifact(str(note))
        info = mlflow.pyfunc.log_model(name="model", python_model=_pyfunc_model())
    version = mlflow.register_model(info.model_uri, "odqa-stack").version
    client = MlflowClient(stack.tracking_uri)
    client.set_registered_model_alias("odqa-stack", "champion", version)

    loaded = mlflow.pyfunc.load_model("models:/odqa-stack@champion")
    assert list(loaded.predict([1, 2, 3])) == [2, 4, 6]
    downloaded = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="note.txt", dst_path=str(tmp_path / "dl")
    )
    assert Path(downloaded).read_text(encoding="utf-8") == "나는 아티팩트"
    # ... and the bytes are in the manifests' bucket, not on a local disk
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.artifacts_bucket).get("Contents", [])]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/note.txt") for k in keys), keys
    assert any(k.endswith("MLmodel") for k in keys), keys


def _promote(uri: str, version: str, em: float, lock: str, barrier) -> None:
    os.environ["ODQA_REGISTRY_LOCK"] = lock
    from odqa.registry import Evaluation, RegisterConfig, promote

    evaluation = Evaluation({"exact_match": em, "f1": em, "total": 10}, "f" * 64, 10)
    barrier.wait(timeout=120)  # every process is imported and connected: now they race
    promote(uri, RegisterConfig(model_name="odqa-race"), version, evaluation)


def test_concurrent_promotions_on_postgres_leave_one_champion_the_best(stack, tmp_path):
    """register pods share a lock file (ODQA_REGISTRY_LOCK, a volume they all mount): promotions from
    several processes, released together by a barrier, leave exactly one champion, the best."""
    from odqa import registry, tracking

    uri = stack.tracking_uri
    versions = []
    for i in range(3):
        run_id = tracking.start_pipeline_run(uri, "race", f"run-{i}")
        model_dir = tmp_path / f"model-{i}"
        model_dir.mkdir()
        (model_dir / "MLmodel").write_text("artifact_path: model\n")
        # a tracking server registers only sources inside a run's artifacts
        tracking.client(uri).log_artifacts(run_id, str(model_dir), "model")
        versions.append(registry.register_version(uri, "odqa-race", f"runs:/{run_id}/model", run_id=run_id))
    scores = [10.0, 30.0, 20.0]  # without the shared lock, any of them can end up champion
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(versions))
    lock = str(tmp_path / "registry.lock")
    procs = [
        ctx.Process(target=_promote, args=(uri, v, s, lock, barrier))
        for v, s in zip(versions, scores, strict=True)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0] * len(procs), stack.log_tail()
    c = tracking.client(uri)
    holders = [v for v in versions if registry.CHAMPION in c.get_model_version("odqa-race", v).aliases]
    assert holders == [versions[1]]
    assert str(c.get_model_version_by_alias("odqa-race", registry.CHAMPION).version) == versions[1]


def test_the_serving_deployment_answers_from_a_champion_logged_to_the_stack(
    stack, tmp_path, odqa_model_builder
):
    """manifests/base/serving.yaml's container as deployed: its `odqa serve` args and environment (the
    mlflow-s3 Secret, MLFLOW_S3_ENDPOINT_URL) with the in-cluster names pointed at this stack, against
    a real odqa model logged to the stack's MLflow (artifacts in its S3) and made champion. Its probes'
    paths answer, and a question gets an answer from that version."""
    import signal
    import subprocess

    from odqa.deploy.stack import free_port

    model = odqa_model_builder(tmp_path / "model", tracking_uri=stack.tracking_uri)
    command = stack.serving_command(free_port())
    assert "--tracking-uri" in command.argv and stack.tracking_uri in command.argv, command.argv
    proc = subprocess.Popen(
        command.argv,
        env={**command.env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        url = json.loads(proc.stdout.readline())["url"]
        log = []
        for line in proc.stderr:  # the log says when the model serves (no polling)
            log.append(line)
            if "serving version" in line or "refresh failed" in line:
                break
        assert "serving version" in log[-1], "".join(log[-20:])
        assert requests.get(f"{url}{command.liveness_path}", timeout=10).status_code == 200
        ready = requests.get(f"{url}{command.readiness_path}", timeout=10)
        assert ready.status_code == 200 and ready.json()["model_version"] == model.versions[0], ready.text
        r = requests.post(f"{url}/v1/answer", json={"question": model.questions[0]}, timeout=60)
        body = r.json()
        assert r.status_code == 200 and body["model_version"] == model.versions[0], r.text
        best = next(p for p in body["passages"] if p["passage_id"] == body["passage_id"])
        assert body["answer"] and best["text"][body["start_char"] : body["end_char"]] == body["answer"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) in (0, -signal.SIGTERM)
