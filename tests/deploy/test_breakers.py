"""The deploy breakers of issue "The cluster half works the first time", one test each, read straight
from the manifests (odqa.deploy.check finds the same problems among others; these say it plainly).
Each of these failed on the manifests before the fix."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from odqa.deploy import manifests as m
from odqa.deploy.check import host_allowed, service_host_forms, split_image

ROOT = m.REPO


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return m.build(ROOT, "base")


def _es_server_version(objects: list[dict]) -> str:
    es = m.container(objects, "StatefulSet", "elasticsearch", "elasticsearch")
    return split_image(es.container["image"])[1]


def test_a_elasticsearch_client_major_equals_server_major(base):
    """elasticsearch-py 9 sends compatible-with=9; an 8.x server answers 400 to every request."""
    server = _es_server_version(base)
    major = int(server.split(".")[0])
    installed = importlib.metadata.version("elasticsearch")
    assert int(installed.split(".")[0]) == major, f"client {installed}, server {server}"
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    spec = next(Requirement(d) for d in deps if Requirement(d).name == "elasticsearch").specifier
    assert spec.contains(f"{major}.99.0") and not spec.contains(f"{major + 1}.0.0"), (
        f"pyproject admits another major than the server's {major}: {spec}"
    )


def test_b_mlflow_admits_in_cluster_host_names_and_readiness_is_host_checked(base):
    """MLflow 3.17 refuses Host headers other than localhost/private IPs (403), /health excepted."""
    cref = m.container(base, "Deployment", "mlflow", "mlflow")
    env = m.environment(base, cref)
    assert "MLFLOW_SERVER_ALLOWED_HOSTS" in env, "no allow-list: every in-cluster request gets 403"
    allowed = env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    for host in service_host_forms("mlflow", "odqa"):
        assert host_allowed(allowed, host) and host_allowed(allowed, f"{host}:5000"), host
    assert not host_allowed(allowed, "mlflow.other.svc.cluster.local:5000")
    probe = cref.container["readinessProbe"]["httpGet"]
    assert probe["path"].split("?")[0] not in ("/health", "/version"), "readiness skips the Host check"
    host = {h["name"]: h["value"] for h in probe.get("httpHeaders", [])}.get("Host")
    assert host and host_allowed(allowed, host)


def test_c_an_init_step_creates_the_artifact_bucket(base):
    """MLflow never creates its bucket: the first log_artifact fails with NoSuchBucket."""
    server = m.container(base, "Deployment", "mlflow", "mlflow")
    argv = m.words(server, m.environment(base, server))
    bucket = m.option(argv, "--artifacts-destination").removeprefix("s3://")
    init = [
        c for c in m.containers(base) if c.init and "odqa.deploy.buckets" in c.container.get("command", [])
    ]
    assert init, "nothing creates the bucket"
    assert bucket in init[0].container["args"]
    assert init[0].workload["metadata"]["name"] == "mlflow", "the bucket must exist before MLflow starts"


def test_d_gpu_overlay_adds_no_device_plugin_and_stays_in_the_namespace():
    gpu = m.build(ROOT, "gpu")
    assert not m.find(gpu, "DaemonSet"), "GKE runs its own NVIDIA device plugin"
    outside = [m.ref(o) for o in gpu if m.namespace_of(o) not in (None, "odqa")]
    assert outside == []


def test_d_elasticsearch_has_fs_group_and_nori_baked_in(base):
    sts = m.one(base, "StatefulSet", "elasticsearch")
    spec = m.pod_spec(sts)
    assert spec.get("securityContext", {}).get("fsGroup") == 1000, "uid 1000 cannot write the fresh volume"
    assert not spec.get("initContainers"), "the plugin is downloaded at every pod start"
    image = spec["containers"][0]["image"]
    repo, tag = split_image(image)
    dockerfile = ROOT / "manifests/images" / repo.rsplit("/", 1)[-1] / "Dockerfile"
    text = dockerfile.read_text(encoding="utf-8")
    assert re.search(rf"^FROM docker\.elastic\.co/elasticsearch/elasticsearch:{re.escape(tag)}$", text, re.M)
    assert re.search(r"^RUN bin/elasticsearch-plugin install --batch analysis-nori$", text, re.M)


def test_e_recurring_run_names_its_data(base):
    """data_uri '' resolves to ../shared/data, which is in a checkout, not in the image."""
    job = m.container(base, "Job", "odqa-create-recurring-run", "schedule")
    argv = m.words(job, m.environment(base, job))
    data_uri = m.option(argv, "--data-uri")
    assert data_uri, f"the recurring run passes no data URI: {argv}"
    assert data_uri.startswith("s3://") or Path(data_uri).is_absolute()
