"""`odqa answer`: a registered model answers a question set (e.g. the competition's test set) and writes
predictions.json, the submission layout."""

from __future__ import annotations

import argparse

from odqa.cli.options import add_force_argument


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "answer", help="answer a question set with a registered model: predictions.json ({id: answer})"
    )
    p.add_argument(
        "--model", required=True, help="model URI, e.g. models:/odqa@champion or runs:/<id>/odqa_model"
    )
    p.add_argument(
        "--questions", required=True, help="QA file or datasets folder (answers, if any, are ignored)"
    )
    p.add_argument("--split", help="split of a DatasetDict folder (default: none)")
    p.add_argument("--out", required=True, help="output folder (predictions.json, answers.jsonl)")
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI holding the registry (default: $MLFLOW_TRACKING_URI)"
    )
    p.add_argument("--top-k", type=int, help="passages retrieved per question (default: the model's)")
    add_force_argument(p)
    p.set_defaults(func=_answer)


def _answer(args: argparse.Namespace) -> int:
    from odqa.inference import answer_with_model

    if args.tracking_uri:
        from odqa import tracking
        from odqa.errors import InputError

        db = tracking.sqlite_path(args.tracking_uri)
        if db is not None and not db.is_file():  # reading a registry must not create an empty one
            raise InputError(f"--tracking-uri {args.tracking_uri}: no MLflow database at {db}")
        tracking.require_server(args.tracking_uri)
        import mlflow

        mlflow.set_tracking_uri(args.tracking_uri)
        mlflow.set_registry_uri(args.tracking_uri)
    out = answer_with_model(
        args.model, args.questions, args.out, split=args.split, top_k=args.top_k, force=args.force
    )
    print(out / "predictions.json")
    return 0
