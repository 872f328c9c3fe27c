"""`odqa evaluate`: EM/F1 of predictions; the last stdout line is one JSON object. Config flags are
generated from EvaluateConfig (odqa.cli.options)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from odqa.cli.options import add_config_arguments, config_from_args
from odqa.evaluation import EvaluateConfig


def add_commands(subparsers) -> None:
    ev = subparsers.add_parser("evaluate", help="exact match and F1 of predictions.json against gold QA")
    ev.add_argument("--data", required=True, help="gold QA (any layout odqa validate reads)")
    ev.add_argument("--predictions", required=True, help="predictions.json {question id: answer text}")
    ev.add_argument(
        "--retrieved",
        help="retrieved.jsonl: adds EM/F1 split by gold document retrieved or not (default: none)",
    )
    ev.add_argument(
        "--doc-aliases", help="doc_aliases.json from preprocess (duplicate documents) (default: none)"
    )
    ev.add_argument("--out", help="metrics.json (default: beside the predictions)")
    ev.add_argument(
        "--question-scores",
        help="also write every question's EM/F1 here (question_scores.json: what the registry's paired "
        "bootstrap compares) (default: none)",
    )
    add_config_arguments(ev, EvaluateConfig)
    ev.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from odqa.evaluation import evaluate
    from odqa.schema import METRICS_FILE

    out = args.out or Path(args.predictions).with_name(METRICS_FILE)
    metrics = evaluate(
        config_from_args(EvaluateConfig, args),
        args.data,
        args.predictions,
        out,
        retrieved_path=args.retrieved,
        doc_aliases_path=args.doc_aliases,
        question_scores_path=args.question_scores,
    )
    print(json.dumps(metrics, ensure_ascii=False))
    return 0
