"""Every Kubernetes manifest parses, images are pinned, workloads request resources and have probes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
SERVICES_WITH_PROBES = {"Deployment", "StatefulSet"}


def _documents() -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                docs.append((path, doc))
    return docs


def _pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def test_every_file_is_listed_by_a_kustomization_and_every_listed_file_exists():
    listed: set[Path] = set()
    for kustomization in MANIFESTS.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
        for entry in spec.get("resources", []):
            target = (kustomization.parent / entry).resolve()
            assert target.exists(), f"{kustomization}: {entry} does not exist"
            listed.add(target)
    for path, _ in _documents():
        if path.name != "kustomization.yaml":
            assert path.resolve() in listed, f"{path} is not in any kustomization"
    assert {p.parent.name for p in MANIFESTS.rglob("kustomization.yaml")} >= {"base", "local", "gpu"}


def test_expected_kinds_are_present():
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in _documents() if "metadata" in doc}
    for expected in [
        ("Deployment", "mlflow"),
        ("StatefulSet", "postgres"),
        ("StatefulSet", "minio"),
        ("StatefulSet", "elasticsearch"),
        ("Job", "odqa-create-recurring-run"),
        ("ConfigMap", "odqa-gpu-node-pool"),
    ]:
        assert expected in kinds


@pytest.mark.parametrize("path,doc", [d for d in _documents() if d[1].get("kind") in WORKLOADS])
def test_workloads_pin_images_and_request_resources(path, doc):
    spec = _pod_spec(doc)
    containers = spec.get("initContainers", []) + spec["containers"]
    for c in containers:
        image = c["image"]
        assert ":" in image.rsplit("/", 1)[-1], f"{path}: {image} has no tag"
        assert not image.endswith(":latest"), f"{path}: {image} uses :latest"
        requests = c.get("resources", {}).get("requests", {})
        assert "cpu" in requests and "memory" in requests, f"{path}: {c['name']} lacks cpu/memory requests"
    if doc["kind"] in SERVICES_WITH_PROBES:
        for c in spec["containers"]:
            assert "readinessProbe" in c and "livenessProbe" in c, f"{path}: {c['name']} lacks probes"


def test_mlflow_uses_postgres_and_s3():
    docs = {doc["metadata"]["name"]: doc for _, doc in _documents() if doc.get("kind") in WORKLOADS}
    args = " ".join(_pod_spec(docs["mlflow"])["containers"][0]["args"])
    assert "postgresql+psycopg2://" in args and "s3://" in args


def test_recurring_run_cron_has_six_fields():
    from odqa.pipeline.runner import validate_cron

    cm = next(doc for _, doc in _documents() if doc.get("metadata", {}).get("name") == "odqa-schedule")
    assert validate_cron(cm["data"]["CRON"])


def test_gpu_overlay_matches_pipeline_node_selector():
    from odqa.pipeline.dag import DEFAULT_GPU_NODE_SELECTOR, DEFAULT_GPU_TOLERATION

    pool = yaml.safe_load((MANIFESTS / "overlays/gpu/gpu-node-pool.yaml").read_text(encoding="utf-8"))
    selector = f"{pool['data']['nodeSelectorKey']}={pool['data']['nodeSelectorValue']}"
    assert selector == DEFAULT_GPU_NODE_SELECTOR
    assert pool["data"]["taint"].startswith(DEFAULT_GPU_TOLERATION)
