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
from odqa.pipeline.runner import PIPELINE_YAMLS, validate_cron

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED = {target: REPO_ROOT / rel for target, rel in PIPELINE_YAMLS.items()}
IMAGE_ENV = ("ODQA_IMAGE", "ODQA_CUDA_IMAGE", "ODQA_PIPELINE_TARGET", "ODQA_GPUS_PER_NODE",
             "ODQA_GPU_NODE_SELECTOR", "ODQA_GPU_TOLERATION", "ODQA_PIPELINE_ES_URL",
             "ODQA_PIPELINE_S3_ENDPOINT")  # fmt: skip

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
    "answer-test",
    "pretrain",
    "reader-plan",
]


def _compile(out_dir: Path, *options: str, cluster_env: dict[str, str] | None = None) -> dict[str, Path]:
    """`odqa pipeline compile` in a fresh process with the default images, as `make compile` runs it
    (`cluster_env`: what the schedule job's ConfigMap sets at compile time on a cluster)."""
    env = {k: v for k, v in os.environ.items() if k not in IMAGE_ENV} | (cluster_env or {})
    code = "import sys; from odqa.cli import main; sys.exit(main())"
    outs = {}
    for target in PIPELINE_YAMLS:
        outs[target] = out_dir / f"{target}.yaml"
        cmd = [
            sys.executable,
            "-c",
            code,
            "pipeline",
            "compile",
            "--target",
            target,
            "--out",
            str(outs[target]),
        ]
        subprocess.run([*cmd, *options], check=True, env=env, cwd=REPO_ROOT, capture_output=True)
    return outs


def _load(path: Path) -> list[dict]:
    return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def compiled_all(tmp_path_factory) -> dict[str, tuple[Path, list[dict]]]:
    outs = _compile(tmp_path_factory.mktemp("compiled"))
    return {target: (path, _load(path)) for target, path in outs.items()}


@pytest.fixture(scope="module", params=list(PIPELINE_YAMLS))
def compiled(request, compiled_all) -> tuple[Path, dict]:
    path, docs = compiled_all[request.param]
    return path, docs[0]


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


@pytest.mark.parametrize("target", list(PIPELINE_YAMLS))
def test_committed_yaml_is_current(compiled_all, target):
    """Compared as parsed YAML: the header comment lists dict defaults in a varying key order."""
    assert _load(COMMITTED[target]) == compiled_all[target][1], (
        f"{PIPELINE_YAMLS[target]} is stale: run `make compile` (odqa pipeline compile) and commit it"
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
    # The loop runs over reader_plan's list: the reader_configs items, each once per fold when folds > 1.
    assert loop["parameterIterator"]["itemInput"].endswith("reader-plan-Output-loop-item")
    assert _upstream(tasks["reader-plan"]) >= {"augment"}
    assert _upstream(loop) >= {"pretrain", "reader-plan"}
    loop_dag = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert set(loop_dag) == {"train-reader", "predict"}
    train_inputs = {
        v.get("componentInputArtifact") for v in loop_dag["train-reader"]["inputs"]["artifacts"].values()
    }
    assert "pipelinechannel--augment-augmented_qa" in train_inputs
    assert {"pipelinechannel--pretrain-model", "pipelinechannel--reader-plan-fold_data"} <= train_inputs
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


DATA_PARAMETERS = {
    "data_uri": "",
    "corpus_uri": "",
    "train_uri": "",
    "train_split": "train",
    "eval_uri": "",
    "eval_split": "validation",
    "test_uri": "",
    "test_split": "",
}


def test_data_layout_parameters_reach_prepare_data_and_the_cli(compiled, capsys):
    """The competition layout's names are pipeline parameters (what the KFP UI shows), prepare_data's
    inputs, and flags of run / submit / schedule."""
    from odqa.cli import main

    _, spec = compiled
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert {name: parameters[name].get("defaultValue", "") for name in DATA_PARAMETERS} == DATA_PARAMETERS
    tasks = _all_tasks(spec)
    prepare_inputs = tasks["prepare-data"]["inputs"]["parameters"]
    assert all(prepare_inputs[n] == {"componentInputParameter": n} for n in DATA_PARAMETERS)
    assert _upstream(tasks["answer-test"]) >= {"prepare-data", "index", "for-loop-1"}
    for action in ("run", "submit", "schedule"):
        with pytest.raises(SystemExit):
            main(["pipeline", action, "--help"])
        text = capsys.readouterr().out
        assert all(f"--{n.replace('_', '-')}" in text for n in DATA_PARAMETERS), action


GPU_EXECUTORS = {"exec-train-reader", "exec-predict", "exec-pretrain"}


def _k8s(docs: list[dict]) -> dict:
    return docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if len(docs) > 1 else {}


def test_cpu_target_asks_for_no_gpu(compiled_all):
    _, docs = compiled_all["cpu"]
    executors = docs[0]["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == "ghcr.io/odqa/odqa:0.1.0", name
        assert "accelerator" not in container["resources"], name
        assert container["resources"]["cpuRequest"] > 0 and container["resources"]["memoryRequest"] > 0
    assert _k8s(docs) == {}  # no node selector, no toleration
    tasks = _all_tasks(docs[0])
    assert tasks["prepare-data"]["cachingOptions"] == {}  # caching off for data pulls
    assert tasks["register"]["cachingOptions"] == {}
    assert tasks["preprocess"]["cachingOptions"] == {"enableCache": True}


def test_gpu_target_puts_train_and_predict_on_gpu_nodes_in_the_cuda_image(compiled_all):
    _, docs = compiled_all["gpu"]
    executors = docs[0]["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        container = executor["container"]
        on_gpu = name in GPU_EXECUTORS
        assert container["image"] == (
            "ghcr.io/odqa/odqa:0.1.0-cuda" if on_gpu else "ghcr.io/odqa/odqa:0.1.0"
        ), name
        accelerator = container["resources"].get("accelerator")
        assert (accelerator is not None) == on_gpu, name
        if on_gpu:
            assert accelerator["resourceType"] == "nvidia.com/gpu" and accelerator["resourceCount"] == "1"
    k8s = _k8s(docs)
    assert set(k8s) == GPU_EXECUTORS
    for name in GPU_EXECUTORS:
        assert k8s[name]["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
        assert k8s[name]["tolerations"] == [
            {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}
        ]


def test_train_reader_is_retried_and_gets_the_trainer_parameters(compiled):
    _, spec = compiled
    train = _all_tasks(spec)["train-reader"]
    assert train["retryPolicy"]["maxRetryCount"] == 2
    assert {"gpus_per_node", "trainer_nodes"} <= set(train["inputs"]["parameters"])
    assert spec["root"]["inputDefinitions"]["parameters"]["trainer_nodes"]["defaultValue"] == 1


def test_gpu_compile_options_set_gpus_selector_and_toleration(tmp_path):
    outs = _compile(
        tmp_path, "--gpus-per-node", "4", "--gpu-node-selector", "pool=a100", "--gpu-toleration", "gpu"
    )
    docs = _load(outs["gpu"])
    train = docs[0]["deploymentSpec"]["executors"]["exec-train-reader"]["container"]["resources"]
    assert train["accelerator"]["resourceCount"] == "4"
    assert _all_tasks(docs[0])["train-reader"]["inputs"]["parameters"]["gpus_per_node"] == {
        "runtimeValue": {"constant": 4}
    }
    k8s = _k8s(docs)["exec-train-reader"]
    assert k8s["nodeSelector"]["labels"] == {"pool": "a100"} and k8s["tolerations"][0]["key"] == "gpu"
    cpu = _load(outs["cpu"])  # GPU options leave the cpu target alone
    assert _k8s(cpu) == {}
    assert _all_tasks(cpu[0])["train-reader"]["inputs"]["parameters"]["gpus_per_node"] == {
        "runtimeValue": {"constant": 1}
    }


def test_cluster_compile_env_reaches_the_pods(tmp_path):
    """The recurring run's ConfigMap (manifests/base/recurring-run.yaml) sets these when it compiles:
    index/retrieve get the in-cluster Elasticsearch, prepare_data the S3 endpoint and the keys of the
    mlflow-s3 Secret. The local compile (committed YAML) has neither."""
    es, s3 = "http://elasticsearch.odqa.svc.cluster.local:9200", "http://minio.odqa.svc.cluster.local:9000"
    outs = _compile(tmp_path, cluster_env={"ODQA_PIPELINE_ES_URL": es, "ODQA_PIPELINE_S3_ENDPOINT": s3})
    for target, path in outs.items():
        docs = _load(path)
        executors = docs[0]["deploymentSpec"]["executors"]

        def env(name: str, executors=executors) -> dict[str, str]:
            return {e["name"]: e["value"] for e in executors[name]["container"].get("env", [])}

        assert env("exec-index")["ODQA_ES_URL"] == es and env("exec-retrieve")["ODQA_ES_URL"] == es, target
        assert env("exec-prepare-data")["AWS_ENDPOINT_URL"] == s3, target
        secret = _k8s(docs)["exec-prepare-data"]["secretAsEnv"][0]
        assert secret["secretName"] == "mlflow-s3" and secret["optional"] is True
        assert {m["envVar"] for m in secret["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    for target, committed in COMMITTED.items():
        executors = _load(committed)[0]["deploymentSpec"]["executors"]
        assert not any("env" in e["container"] for e in executors.values()), target


def test_compile_refuses_out_without_a_target(capsys, tmp_path):
    from odqa.cli import main

    assert main(["pipeline", "compile", "--out", str(tmp_path / "x.yaml")]) == 2
    assert "--target" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


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


def test_default_reader_is_odqa_trains(compiled):
    """The pipeline's default reader (the compiled reader_configs item and epochs, combined as the train
    component combines them) is the reader `odqa train` trains with no flags, apart from its threads: one
    default, not two that drift apart."""
    from odqa.cli import build_parser
    from odqa.cli.options import config_from_args
    from odqa.reader.config import ReaderTrainConfig

    _, spec = compiled
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    (item,) = parameters["reader_configs"]["defaultValue"]
    values = {"reader_model": None, "epochs": parameters["epochs"]["defaultValue"], **item}
    pipeline_reader = ReaderTrainConfig.from_dict(values, source="reader_configs")
    args = build_parser().parse_args(["train", "--train", "t.jsonl", "--out", "o"])
    cli_reader = config_from_args(ReaderTrainConfig, args)
    assert pipeline_reader == cli_reader.replace(num_threads=pipeline_reader.num_threads)
    assert pipeline_reader.hidden_size == ReaderTrainConfig().hidden_size
