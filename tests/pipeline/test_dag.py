"""The compiled DAG: every stage, the right edges, cluster settings, and the committed YAML is current."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from odqa.config import parse_assignments
from odqa.errors import InputError
from odqa.pipeline.runner import PIPELINE_YAML, validate_cron

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED_YAML = REPO_ROOT / PIPELINE_YAML

STAGES = [
    "start-tracking",
    "prepare-data",
    "preprocess",
    "augment",
    "index",
    "retrieve",
    "train-reader",
    "predict",
    "ensemble",
    "evaluate",
    "register",
]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> tuple[Path, dict]:
    """Compile in a fresh process with the default image, as `odqa pipeline compile` does."""
    out = tmp_path_factory.mktemp("compiled") / "odqa_pipeline.yaml"
    env = {k: v for k, v in os.environ.items() if k != "ODQA_IMAGE"}
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from odqa.cli import main; sys.exit(main())",
            "pipeline",
            "compile",
        ]
        + ["--out", str(out)],
        check=True,
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
    )
    return out, yaml.safe_load_all(out.read_text(encoding="utf-8")).__next__()


def _all_tasks(spec: dict) -> dict[str, dict]:
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def _upstream(task: dict) -> set[str]:
    ups = set(task.get("dependentTasks", []))
    for kind in ("artifacts", "parameters"):
        for value in task.get("inputs", {}).get(kind, {}).values():
            producer = value.get("taskOutputArtifact", value.get("taskOutputParameter"))
            if producer:
                ups.add(producer["producerTask"])
    return ups


def test_committed_yaml_is_current(compiled):
    """Compared as parsed YAML: the header comment lists dict defaults in a varying key order."""
    out, _ = compiled
    committed = list(yaml.safe_load_all(COMMITTED_YAML.read_text(encoding="utf-8")))
    fresh = list(yaml.safe_load_all(out.read_text(encoding="utf-8")))
    assert committed == fresh, (
        "pipelines/odqa_pipeline.yaml is stale: run `odqa pipeline compile` and commit it"
    )


def test_every_stage_present_with_the_right_edges(compiled):
    _, spec = compiled
    tasks = _all_tasks(spec)
    assert set(STAGES) <= set(tasks)
    assert _upstream(tasks["preprocess"]) >= {"prepare-data"}
    assert _upstream(tasks["index"]) >= {"preprocess"}
    assert _upstream(tasks["retrieve"]) >= {"index", "prepare-data", "preprocess"}
    assert _upstream(tasks["predict"]) >= {"train-reader"}
    assert _upstream(tasks["ensemble"]) >= {"for-loop-1"}
    assert _upstream(tasks["evaluate"]) >= {"ensemble", "prepare-data"}
    assert _upstream(tasks["register"]) >= {"evaluate", "for-loop-1", "index"}
    loop = tasks["for-loop-1"]
    assert loop["parameterIterator"]["itemInput"].endswith("reader_configs-loop-item")
    loop_dag = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert set(loop_dag) == {"train-reader", "predict"}
    train_inputs = {
        v.get("componentInputArtifact") for v in loop_dag["train-reader"]["inputs"]["artifacts"].values()
    }
    assert "pipelinechannel--augment-augmented_qa" in train_inputs
    assert "pipelinechannel--start-tracking-mlflow_run" in train_inputs
    for name in set(STAGES) - set(loop_dag) - {"start-tracking"}:
        assert "start-tracking" in _upstream(tasks[name]), f"{name} is not attached to the MLflow parent run"


def test_parameter_names_follow_the_glossary(compiled):
    """docs/DESIGN.md: a retriever's kind and options are `retriever_kind` / `retriever_options`, in the
    pipeline and in the index task alike; reader settings say num_threads."""
    _, spec = compiled
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert {"retriever_kind", "retriever_options"} <= set(parameters)
    assert not {"index_kind", "index_options"} & set(parameters)
    index_inputs = _all_tasks(spec)["index"]["inputs"]["parameters"]
    assert index_inputs["retriever_kind"] == {"componentInputParameter": "retriever_kind"}
    assert index_inputs["retriever_options"] == {"componentInputParameter": "retriever_options"}
    (reader_defaults,) = parameters["reader_configs"]["defaultValue"]
    assert "num_threads" in reader_defaults and "threads" not in reader_defaults


def test_cluster_settings(compiled):
    _, spec = compiled
    executors = spec["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == "ghcr.io/odqa/odqa:0.1.0", name
        assert container["resources"]["cpuRequest"] > 0 and container["resources"]["memoryRequest"] > 0
    train = executors["exec-train-reader"]["container"]["resources"]["accelerator"]
    assert train["resourceType"] == "nvidia.com/gpu" and train["resourceCount"] == "1"
    assert sum("accelerator" in e["container"]["resources"] for e in executors.values()) == 1
    tasks = _all_tasks(spec)
    assert tasks["prepare-data"]["cachingOptions"] == {}  # caching off for data pulls
    assert tasks["register"]["cachingOptions"] == {}
    assert tasks["preprocess"]["cachingOptions"] == {"enableCache": True}


def test_train_reader_node_selector_and_toleration():
    docs = list(yaml.safe_load_all(COMMITTED_YAML.read_text(encoding="utf-8")))
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(platform) == {"exec-train-reader"}
    k8s = platform["exec-train-reader"]
    assert k8s["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert k8s["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]


def test_components_import_without_running_stage_code():
    code = (
        "import sys; import odqa.pipeline.components; "
        "bad = [m for m in ('torch', 'mlflow', 'transformers', 'odqa.reader') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_cron_needs_six_fields_and_explains_five():
    assert validate_cron("0 0 3 * * *") == "0 0 3 * * *"
    with pytest.raises(InputError, match="6, seconds first: use '0 0 3 \\* \\* \\*'"):
        validate_cron("0 3 * * *")
    with pytest.raises(InputError, match="expected 6"):
        validate_cron("* * *")


def test_cli_schedule_rejects_five_field_cron_before_contacting_a_host(capsys):
    from odqa.cli import main

    assert main(["pipeline", "schedule", "--host", "http://127.0.0.1:9", "--cron", "0 3 * * *"]) == 2
    assert "seconds first" in capsys.readouterr().err


def test_parse_params_reads_json_values():
    assert parse_assignments(["epochs=2", "analyzer=kiwi", 'reader_configs=[{"hidden_size": 64}]']) == {
        "epochs": 2,
        "analyzer": "kiwi",
        "reader_configs": [{"hidden_size": 64}],
    }
    with pytest.raises(InputError):
        parse_assignments(["epochs"])
