"""`odqa pipeline compile | run --local | submit | schedule`."""

from __future__ import annotations

import argparse
import json

from odqa.cli.options import add_deprecated_flag
from odqa.pipeline.runner import RUNNERS

# Shortcuts for the most used pipeline parameters; any other one via --param name=value (JSON values).
SHORTCUTS = {
    "data_uri": str,
    "corpus_uri": str,
    "train_uri": str,
    "train_split": str,
    "eval_uri": str,
    "eval_split": str,
    "test_uri": str,
    "test_split": str,
    "analyzer": str,
    "retriever_kind": str,
    "reader_model": str,
    "epochs": float,
    "top_k": int,
    "score_mode": str,
    "experiment": str,
    "model_name": str,
    "promotion_metric": str,
    "promotion_margin": float,
}


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "pipeline", help="compile, run locally, submit or schedule the Kubeflow DAG"
    )
    sub = parser.add_subparsers(dest="pipeline_command", required=True, metavar="ACTION")

    p = sub.add_parser(
        "compile", help="write pipelines/odqa_pipeline_cpu.yaml and pipelines/odqa_pipeline_gpu.yaml"
    )
    p.add_argument(
        "--target",
        choices=["cpu", "gpu"],
        default=None,
        help="cpu: no GPU anywhere; gpu: train_reader and predict in the CUDA image (ODQA_CUDA_IMAGE) on GPU "
        "nodes (default: both, each to its file)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output YAML (with --target; default: pipelines/odqa_pipeline_<target>.yaml)",
    )
    p.add_argument(
        "--gpus-per-node",
        type=int,
        default=None,
        help="gpu: GPUs per train_reader pod, >1 runs torchrun (default 1, or ODQA_GPUS_PER_NODE)",
    )
    p.add_argument(
        "--gpu-node-selector",
        default=None,
        metavar="KEY=VALUE",
        help="gpu: node label the GPU stages select (default cloud.google.com/gke-accelerator=nvidia-tesla-t4, or ODQA_GPU_NODE_SELECTOR)",
    )
    p.add_argument(
        "--gpu-toleration",
        default=None,
        metavar="KEY",
        help="gpu: taint key the GPU stages tolerate (default nvidia.com/gpu, or ODQA_GPU_TOLERATION)",
    )
    p.set_defaults(func=_compile)

    p = sub.add_parser("run", help="run the whole DAG with the kfp local runner into runs/<timestamp>/")
    p.add_argument("--local", action="store_true", required=True, help="run with the kfp local runner")
    p.add_argument(
        "--runner",
        choices=RUNNERS,
        default="subprocess",
        help="subprocess: every component in this Python environment; docker: every component in its "
        "image (ODQA_IMAGE), as on a cluster (default: subprocess)",
    )
    p.add_argument(
        "--runs-dir", default="runs", help="folder for runs/<timestamp>/ and the SQLite store (default: runs)"
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: sqlite:///<runs-dir>/mlflow.db, shared across runs so a new "
        "model is compared with the champion of earlier runs)",
    )
    _add_params(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("submit", help="submit the compiled pipeline to Kubeflow Pipelines")
    p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    p.add_argument(
        "--kfp-experiment", default="odqa", help="KFP experiment to file the run under (default: odqa)"
    )
    _add_params(p)
    p.set_defaults(func=_submit)

    p = sub.add_parser("schedule", help="create a recurring run on Kubeflow Pipelines")
    p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    p.add_argument("--cron", required=True, help='6 fields, seconds first, e.g. "0 0 3 * * *" (03:00 daily)')
    p.add_argument("--job-name", default="odqa-nightly", help="recurring run name (default: odqa-nightly)")
    p.add_argument(
        "--kfp-experiment", default="odqa", help="KFP experiment to file the runs under (default: odqa)"
    )
    _add_params(p)
    p.set_defaults(func=_schedule)


def _add_params(p: argparse.ArgumentParser) -> None:
    for name, kind in SHORTCUTS.items():
        p.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=kind,
            default=None,
            help="pipeline parameter (default: the pipeline's)",
        )
    add_deprecated_flag(p, "--index-kind", "retriever_kind", "--retriever-kind")
    p.add_argument(
        "--reader-configs",
        type=json.loads,
        default=None,
        help='JSON list, one reader trained per item, e.g. \'[{"hidden_size": 128}, {"hidden_size": 256}]\' '
        "(default: the pipeline's, one reader)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any pipeline parameter, value parsed as JSON when possible (default: none)",
    )


def _params(args: argparse.Namespace) -> dict:
    from odqa.config import parse_assignments

    params = {name: getattr(args, name) for name in SHORTCUTS if getattr(args, name) is not None}
    if args.reader_configs is not None:
        params["reader_configs"] = args.reader_configs
    params.update(parse_assignments(args.param, "--param"))
    return params


def _compile(args: argparse.Namespace) -> int:
    from odqa.errors import InputError
    from odqa.pipeline.runner import PIPELINE_YAMLS, compile_pipeline, gpu_target_from_env

    if args.out and not args.target:
        raise InputError("--out names one file: give --target cpu or --target gpu with it")
    gpu = gpu_target_from_env(
        gpus_per_node=args.gpus_per_node, node_selector=args.gpu_node_selector, toleration=args.gpu_toleration
    )
    for target in [args.target] if args.target else list(PIPELINE_YAMLS):
        print(compile_pipeline(args.out or PIPELINE_YAMLS[target], target, gpu))
    return 0


def _run(args: argparse.Namespace) -> int:
    from odqa.pipeline.runner import LocalRunConfig, run_local

    result = run_local(LocalRunConfig(args.runs_dir, args.tracking_uri, _params(args), runner=args.runner))
    print(result.summary)
    print(f"artifacts: {result.run_dir}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from odqa.pipeline.runner import submit

    print(submit(args.host, _params(args), experiment=args.kfp_experiment))
    return 0


def _schedule(args: argparse.Namespace) -> int:
    from odqa.pipeline.runner import schedule, validate_cron

    validate_cron(args.cron)
    print(
        schedule(args.host, args.cron, _params(args), job_name=args.job_name, experiment=args.kfp_experiment)
    )
    return 0
