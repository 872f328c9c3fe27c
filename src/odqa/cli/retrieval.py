"""`odqa index`, `odqa retrieve`, `odqa eval-retrieval`."""

from __future__ import annotations

import argparse
import json

from odqa.retrieval.base import RETRIEVER_TYPES


def add_commands(subparsers) -> None:
    index = subparsers.add_parser("index", help="build a retrieval index over passages.jsonl")
    index.add_argument("--retriever", required=True, choices=sorted(RETRIEVER_TYPES))
    index.add_argument("--passages", required=True, help="passages.jsonl (from odqa preprocess)")
    index.add_argument("--out", required=True, help="index folder to create (replaced if it exists)")
    index.add_argument(
        "--analyzer", help="shorthand for --option analyzer=NAME (whitespace, bigram, kiwi, kiwi+bigram)"
    )
    index.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='retriever setting, value parsed as JSON when possible (k1=1.2, analyzer_options={"pos":["N"]})',
    )
    index.set_defaults(func=_index)

    retrieve = subparsers.add_parser("retrieve", help="top-k passages for every question -> retrieved.jsonl")
    retrieve.add_argument("--index", required=True, help="index folder (from odqa index)")
    retrieve.add_argument("--data", required=True, help="QA file with the questions")
    retrieve.add_argument("--top-k", type=int, default=20)
    retrieve.add_argument("--out", required=True, help="retrieved.jsonl to write")
    retrieve.set_defaults(func=_retrieve)

    ev = subparsers.add_parser("eval-retrieval", help="recall@k and MRR of retrieved.jsonl")
    ev.add_argument("--retrieved", required=True, help="retrieved.jsonl")
    ev.add_argument("--data", required=True, help="QA file with gold document_id and answers")
    ev.add_argument("--doc-aliases", help="doc_aliases.json from odqa preprocess")
    ev.add_argument("--out", required=True, help="folder for retrieval_metrics.json and recall_at_k.png")
    ev.set_defaults(func=_eval_retrieval)


def _index(args: argparse.Namespace) -> int:
    from odqa.config import parse_assignments
    from odqa.retrieval.base import build_index

    options = parse_assignments(args.option)
    if args.analyzer:
        options["analyzer"] = args.analyzer
    print(build_index(args.retriever, options, args.passages, args.out))
    return 0


def _retrieve(args: argparse.Namespace) -> int:
    from odqa.retrieval.search import retrieve

    print(retrieve(args.index, args.data, args.out, top_k=args.top_k))
    return 0


def _eval_retrieval(args: argparse.Namespace) -> int:
    from odqa.retrieval.evaluate import evaluate_retrieval

    metrics = evaluate_retrieval(args.retrieved, args.data, args.out, doc_aliases_path=args.doc_aliases)
    print(json.dumps(metrics, ensure_ascii=False, indent=2))
    return 0
