"""`make cluster-check` (odqa.deploy.check): the repository passes it, and each name it cross-checks,
broken on purpose in a copy of the manifests, fails it with one line naming the file and the field."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from odqa.deploy import check
from odqa.deploy.manifests import REPO
from odqa.pipeline.components import DEFAULT_IMAGE

PIPELINE = "pipelines/odqa_pipeline_cpu.yaml"
GPU_PIPELINE = "pipelines/odqa_pipeline_gpu.yaml"
TRAINJOB = "manifests/trainer/reader-trainjob.yaml"
# Before 2026-11-29 the compiled pipeline's default tracking_uri named namespace `mlflow` while the
# manifests deploy MLflow to `odqa` (a deploy breaker); a test below puts it back in a copy.
WRONG_TRACKING_URI = "http://mlflow.mlflow.svc.cluster.local:5000"
TRACKING_URI = "http://mlflow.odqa.svc.cluster.local:5000"


@pytest.fixture(scope="module")
def report() -> check.Report:
    return check.run(check.Inputs(REPO, default_image=DEFAULT_IMAGE))


def test_the_check_reads_the_default_image_as_the_pipeline_defines_it():
    assert check.default_image_from_source(REPO / check.COMPONENTS_PY) == DEFAULT_IMAGE


def test_every_kustomization_builds_and_the_deployment_is_consistent(report):
    assert report.built == ["base", "gpu", "local"]
    assert [str(p) for p in report.problems] == []


def test_cli_prints_one_line_per_problem_and_fails(tmp_path):
    root = _copy(tmp_path)
    _edit(root, "manifests/base/mlflow.yaml", "- s3://mlflow-artifacts", "- s3://mlflow-artefacts")
    proc = subprocess.run(
        [sys.executable, "-m", "odqa.deploy.check", "--root", str(root), "--check", "buckets"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "manifests/base/mlflow.yaml: Deployment/mlflow containers[mlflow] --artifacts-destination: bucket "
        "mlflow-artefacts is created by no init step (odqa.deploy.buckets creates: mlflow-artifacts, odqa-data)"
    ]


def test_missing_kubectl_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(check.InputError, match="^kubectl not found: install it") as e:
        check.run(check.Inputs(_copy(tmp_path), default_image=DEFAULT_IMAGE), [])
    assert "\n" not in str(e.value)


# --- deliberate breaks ------------------------------------------------------------------------------


def _copy(tmp_path: Path) -> Path:
    """The files the check reads, copied so that one name can be broken."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "manifests", root / "manifests")
    for rel in (PIPELINE, GPU_PIPELINE, check.COMPONENTS_PY):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, root / rel)
    return root


def _edit(root: Path, rel: str, old: str, new: str, required: bool = True, count: int = -1) -> None:
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert old in text or not required, f"{rel} has no {old!r}"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    root = _copy(tmp_path_factory.mktemp("clean"))
    found = check.run(check.Inputs(root, default_image=DEFAULT_IMAGE)).problems
    assert [str(p) for p in found] == [], "the copy must start clean"
    return root


DAEMONSET = """apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: nvidia-device-plugin
spec:
  selector: {matchLabels: {name: nvidia-device-plugin}}
  template:
    metadata: {labels: {name: nvidia-device-plugin}}
    spec:
      containers:
        - name: nvidia-device-plugin
          image: nvcr.io/nvidia/k8s-device-plugin:v0.17.0
"""
NORI_INIT = """      initContainers:
        - name: install-nori
          image: ghcr.io/odqa/elasticsearch-nori:8.15.3
          command: ["/bin/sh", "-c"]
          args: ["bin/elasticsearch-plugin install --batch analysis-nori"]
      containers:
        - name: elasticsearch"""

MLFLOW = "manifests/base/mlflow.yaml"
ES = "manifests/base/elasticsearch.yaml"
SCHEDULE = "manifests/base/recurring-run.yaml"
GPU = "manifests/overlays/gpu/kustomization.yaml"
POOL = "manifests/overlays/gpu/gpu-node-pool.yaml"
DOCKERFILE = "manifests/images/elasticsearch-nori/Dockerfile"
SERVING = "manifests/base/serving.yaml"

# (id, check, [(file, old, new[, count])], expected file, expected text in the field)
BREAKS = [
    ("kustomize-patch", "namespace", [("manifests/overlays/local/kustomization.yaml", "value: --workers", "value: --worker")],
     "manifests/overlays/local/kustomization.yaml", "kustomize build"),
    ("overlay-namespace", "namespace", [(GPU, "namespace: odqa\n", "")], POOL, "ConfigMap/odqa-gpu-node-pool metadata.namespace"),
    ("base-namespace", "namespace", [("manifests/base/kustomization.yaml", "namespace: odqa\n", "")], "manifests/base/kustomization.yaml", "namespace"),
    ("schema-type", "schema", [(ES, "containerPort: 9200", 'containerPort: "9200"')], ES, "StatefulSet/elasticsearch spec.template.spec.containers.0.ports.0.containerPort"),
    ("schema-unknown-field", "schema", [("manifests/base/minio.yaml", "  serviceName: minio", "  serviceName: minio\n  servicename: minio")], "manifests/base/minio.yaml", "StatefulSet/minio spec"),
    ("secret-name", "references", [(MLFLOW, "name: mlflow-db", "name: mlflow-database")], MLFLOW, "Deployment/mlflow containers[mlflow] env"),
    ("service-selector", "references", [(MLFLOW, "  selector:\n    app: mlflow", "  selector:\n    app: ml-flow")], MLFLOW, "Service/mlflow spec.selector"),
    ("service-target-port", "ports", [(MLFLOW, "targetPort: 5000", "targetPort: 5001")], MLFLOW, "Service/mlflow ports[http].targetPort"),
    ("mlflow-port-arg", "ports", [(MLFLOW, '- --port\n            - "5000"', '- --port\n            - "5050"')], MLFLOW, "containers[mlflow] --port"),
    ("es-container-port", "ports", [(ES, "containerPort: 9200", "containerPort: 9300")], ES, "Service/elasticsearch ports[http].targetPort"),
    ("tracking-uri-host", "urls", [(SCHEDULE, "TRACKING_URI: http://mlflow.odqa", "TRACKING_URI: http://mlflow-server.odqa")], SCHEDULE, "ConfigMap/odqa-schedule data.TRACKING_URI"),
    ("tracking-uri-port", "urls", [(SCHEDULE, "TRACKING_URI: http://mlflow.odqa.svc.cluster.local:5000", "TRACKING_URI: http://mlflow.odqa.svc.cluster.local:5001")], SCHEDULE, "ConfigMap/odqa-schedule data.TRACKING_URI"),
    ("tracking-uri-short-name", "urls", [(SCHEDULE, "TRACKING_URI: http://mlflow.odqa.svc.cluster.local:5000", "TRACKING_URI: http://mlflow:5000")], SCHEDULE, "ConfigMap/odqa-schedule data.TRACKING_URI"),
    ("pipeline-tracking-uri", "urls", [(PIPELINE, TRACKING_URI, WRONG_TRACKING_URI)], PIPELINE, "root.inputDefinitions.parameters.tracking_uri.defaultValue"),
    ("es-url", "urls", [(SCHEDULE, "http://elasticsearch.odqa", "http://elastic.odqa")], SCHEDULE, "ConfigMap/odqa-schedule data.ODQA_PIPELINE_ES_URL"),
    ("s3-endpoint", "urls", [(MLFLOW, "value: http://minio:9000", "value: http://minio:9001")], MLFLOW, "containers[mlflow] env.MLFLOW_S3_ENDPOINT_URL"),
    ("postgres-host", "urls", [(MLFLOW, "@postgres:5432/", "@postgresql:5432/")], MLFLOW, "containers[mlflow] --backend-store-uri"),
    ("allowed-hosts-missing-name", "mlflow-hosts", [(MLFLOW, "mlflow.odqa.svc.cluster.local:5000,", "")], MLFLOW, "env.MLFLOW_SERVER_ALLOWED_HOSTS"),
    ("allowed-hosts-unset", "mlflow-hosts", [(MLFLOW, "name: MLFLOW_SERVER_ALLOWED_HOSTS", "name: MLFLOW_SERVER_ALLOWED_HOST")], MLFLOW, "env.MLFLOW_SERVER_ALLOWED_HOSTS"),
    ("readiness-health", "mlflow-hosts", [(MLFLOW, "path: /api/2.0/mlflow/experiments/get?experiment_id=0", "path: /health")], MLFLOW, "readinessProbe.httpGet.path"),
    ("readiness-host", "mlflow-hosts", [(MLFLOW, "value: mlflow.odqa.svc.cluster.local:5000", "value: mlflow.odqa.svc.cluster.local:80")], MLFLOW, "readinessProbe.httpGet.httpHeaders.Host"),
    ("backend-driver", "mlflow-store", [(MLFLOW, "postgresql+psycopg2://", "postgresql://")], MLFLOW, "--backend-store-uri"),
    ("manifest-image-tag", "images", [(MLFLOW, "image: ghcr.io/odqa/odqa:0.1.0", "image: ghcr.io/odqa/odqa:0.1.1")], MLFLOW, "image"),
    ("pipeline-default-image", "images", [(check.COMPONENTS_PY, '"ghcr.io/odqa/odqa:0.1.0"', '"ghcr.io/odqa/odqa:0.2.0"')], MLFLOW, "image"),
    ("compiled-pipeline-image", "images", [(PIPELINE, "image: ghcr.io/odqa/odqa:0.1.0", "image: ghcr.io/odqa/odqa:0.0.9")], PIPELINE, "deploymentSpec.executors"),
    ("gpu-pipeline-cuda-image", "images", [(GPU_PIPELINE, "image: ghcr.io/odqa/odqa:0.1.0-cuda", "image: ghcr.io/odqa/odqa:0.1.0-cu")], GPU_PIPELINE, "deploymentSpec.executors"),
    ("gpu-overlay-schedules-cpu", "gpu", [(GPU, "value: gpu", "value: cpu")], PIPELINE, "resources.accelerator"),
    ("local-schedules-gpu", "gpu", [(SCHEDULE, "ODQA_PIPELINE_TARGET: cpu", "ODQA_PIPELINE_TARGET: gpu")], GPU_PIPELINE, "resources.accelerator"),
    ("trainjob-runtime", "trainer", [(TRAINJOB, "    name: torch-distributed\n", "")], TRAINJOB, "TrainJob/odqa-reader spec.runtimeRef.name"),
    ("trainjob-nodes", "trainer", [(TRAINJOB, "numNodes: 2", "numNodes: two")], TRAINJOB, "spec.trainer.numNodes"),
    ("trainjob-image", "trainer", [(TRAINJOB, "image: ghcr.io/odqa/odqa:0.1.0-cuda", "image: ghcr.io/odqa/odqa:0.1.0")], TRAINJOB, "spec.trainer.image"),
    ("es-dockerfile-version", "elasticsearch", [(DOCKERFILE, "elasticsearch:8.15.3", "elasticsearch:8.15.2")], DOCKERFILE, "FROM"),
    ("es-server-major", "elasticsearch", [(ES, "elasticsearch-nori:8.15.3", "elasticsearch-nori:9.1.0"), (DOCKERFILE, "elasticsearch:8.15.3", "elasticsearch:9.1.0")], ES, "containers[elasticsearch].image"),
    ("es-plugin-at-start", "elasticsearch", [(ES, "      containers:\n        - name: elasticsearch", NORI_INIT)], ES, "initContainers[install-nori] args"),
    ("es-fs-group", "elasticsearch", [(ES, "        fsGroup: 1000\n", "")], ES, "securityContext.fsGroup"),
    ("artifact-bucket", "buckets", [(MLFLOW, "- s3://mlflow-artifacts", "- s3://mlflow-artefacts")], MLFLOW, "--artifacts-destination"),
    ("data-bucket", "buckets", [(SCHEDULE, "DATA_URI: s3://odqa-data/", "DATA_URI: s3://odqa-datasets/")], SCHEDULE, "ConfigMap/odqa-schedule data.DATA_URI"),
    ("bucket-endpoint", "buckets", [(MLFLOW, "value: http://minio:9000", "value: http://minio.odqa:9000", 1)], MLFLOW, "initContainers[create-buckets] env.MLFLOW_S3_ENDPOINT_URL"),
    ("data-uri-empty", "data-uri", [(SCHEDULE, "DATA_URI: s3://odqa-data/korquad/KorQuAD_v1.0_dev.json", 'DATA_URI: ""')], SCHEDULE, "containers[schedule] args data_uri"),
    ("data-uri-not-passed", "data-uri", [(SCHEDULE, "            - --data-uri\n            - $(DATA_URI)\n", "")], SCHEDULE, "containers[schedule] args data_uri"),
    ("gpu-resource", "gpu", [(POOL, "acceleratorResource: nvidia.com/gpu", "acceleratorResource: amd.com/gpu")], POOL, "data.acceleratorResource"),
    ("gpu-node-selector", "gpu", [(POOL, "nodeSelectorValue: nvidia-tesla-t4", "nodeSelectorValue: nvidia-l4")], POOL, "data.nodeSelectorKey/nodeSelectorValue"),
    ("gpu-taint", "gpu", [(POOL, "taint: nvidia.com/gpu=", "taint: gpu=")], POOL, "data.taint"),
    ("gpu-device-plugin", "gpu", [(GPU, "  - gpu-node-pool.yaml\n", "  - gpu-node-pool.yaml\n  - device-plugin.yaml\n")], "manifests/overlays/gpu/device-plugin.yaml", "DaemonSet/nvidia-device-plugin"),
    ("serving-tracking-uri", "serving", [(SERVING, "- http://mlflow.odqa.svc.cluster.local:5000", "- http://mlflow.mlflow.svc.cluster.local:5000")], SERVING, "Deployment/odqa-serving containers[serve] --tracking-uri"),
    ("serving-model-name", "serving", [(SERVING, "- models:/odqa@champion", "- models:/qa@champion")], SERVING, "containers[serve] --model"),
    ("serving-host", "serving", [(SERVING, "- 0.0.0.0", "- 127.0.0.1")], SERVING, "containers[serve] --host"),
    ("serving-port", "serving", [(SERVING, '- --port\n            - "8080"', '- --port\n            - "8000"')], SERVING, "containers[serve] --port"),
    ("serving-readiness", "serving", [(SERVING, "path: /ready", "path: /health")], SERVING, "readinessProbe.httpGet.path"),
    ("serving-s3-secret", "serving", [(SERVING, "          envFrom:\n            - secretRef:\n                name: mlflow-s3\n", "")], SERVING, "containers[serve] envFrom"),
    ("serving-s3-endpoint", "serving", [(SERVING, "value: http://minio:9000", "value: http://minio.odqa:9000")], SERVING, "env.MLFLOW_S3_ENDPOINT_URL"),
    ("serving-hpa-target", "serving", [(SERVING, "    name: odqa-serving\n  minReplicas", "    name: odqa-serve\n  minReplicas")], SERVING, "HorizontalPodAutoscaler/odqa-serving spec.scaleTargetRef"),
]  # fmt: skip


@pytest.mark.integration  # about 0.6 s each (three kustomize builds): not in the fast unit loop
@pytest.mark.parametrize("name,check_name,edits,file,field", BREAKS, ids=[b[0] for b in BREAKS])
def test_a_broken_name_fails_the_check_with_one_line_naming_file_and_field(
    clean, tmp_path, name, check_name, edits, file, field
):
    root = tmp_path / "repo"
    shutil.copytree(clean, root)
    if name == "gpu-device-plugin":
        (root / "manifests/overlays/gpu/device-plugin.yaml").write_text(DAEMONSET, encoding="utf-8")
    for rel, old, new, *count in edits:
        _edit(root, rel, old, new, count=count[0] if count else -1)
    found = check.run(check.Inputs(root, default_image=_default_image(root)), [check_name]).problems
    lines = [str(p) for p in found]
    assert lines, f"{name}: the check passed"
    assert all("\n" not in line for line in lines)
    assert any(p.file == file and field in p.field for p in found), "\n".join(lines)


def _default_image(root: Path) -> str:
    """What the test would import from odqa.pipeline.components, for the copy (which may be edited)."""
    return check.default_image_from_source(root / check.COMPONENTS_PY)


def test_another_elasticsearch_client_major_fails_the_check(clean):
    found = check.run(
        check.Inputs(clean, default_image=DEFAULT_IMAGE, es_client_version="9.5.1"), ["elasticsearch"]
    )
    assert [str(p) for p in found.problems] == [
        "manifests/base/elasticsearch.yaml: StatefulSet/elasticsearch containers[elasticsearch].image: server 8.15.3 "
        "but the elasticsearch client is 9.5.1: a client of another major sends compatible-with=9 and the server "
        "answers 400 (pin elasticsearch>=8,<9 in pyproject.toml)"
    ]
