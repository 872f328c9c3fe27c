"""`odqa index`, `odqa retrieve`, `odqa eval-retrieval`.

A retriever's settings depend on its kind, chosen at run time, so they are `--option key=value` pairs
validated by that kind's config (errors name `--option`); `odqa index --help` lists every kind's."""

from __future__ import annotations

import argparse
import json

from odqa.cli.options import add_deprecated_flag, add_force_argument
from odqa.errors import InputError
from odqa.retrieval.base import RETRIEVER_KINDS


class _HelpWithKindOptions(argparse.Action):
    """`-h/--help` that first lists each retriever kind's options (importing the backends only then)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from odqa.cli.options import config_help
        from odqa.retrieval.base import retriever_class

        sections = []
        for kind in sorted(RETRIEVER_KINDS):
            try:
                text = config_help(retriever_class(kind).config_class)
            except ImportError as e:  # a backend whose client library is not installed
                text = f"  (unavailable here: {e})"
            sections.append(f"--option keys of --kind {kind}:\n{text}")
        parser.epilog = "\n\n".join(sections)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.print_help()
        parser.exit()


def add_commands(subparsers) -> None:
    index = subparsers.add_parser("index", help="build a retrieval index over passages.jsonl", add_help=False)
    index.add_argument(
        "-h", "--help", action=_HelpWithKindOptions, help="show this help (with every kind's options)"
    )
    index.add_argument(
        "--kind", choices=sorted(RETRIEVER_KINDS), help="retriever kind; required (no default)"
    )
    add_deprecated_flag(index, "--retriever", "kind", "--kind", choices=sorted(RETRIEVER_KINDS))
    index.add_argument(
        "--passages",
        help="passages.jsonl (from odqa preprocess); not needed for a hybrid over --option indexes=... "
        "(default: none)",
    )
    index.add_argument(
        "--out", required=True, help="index folder to create (an earlier index there is replaced)"
    )
    add_force_argument(index)
    index.add_argument(
        "--analyzer",
        help="shorthand for --option analyzer=NAME (whitespace, bigram, kiwi, kiwi+bigram) (default: the "
        "kind's, listed below)",
    )
    index.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='retriever setting, value parsed as JSON when possible (k1=1.2, analyzer_options={"pos":["N"]}); '
        "the keys of each kind are listed below with --help (default: none, the kind's defaults)",
    )
    index.set_defaults(func=_index)

    retrieve = subparsers.add_parser("retrieve", help="top-k passages for every question -> retrieved.jsonl")
    retrieve.add_argument("--index", required=True, help="index folder (from odqa index)")
    retrieve.add_argument("--data", required=True, help="QA file with the questions")
    retrieve.add_argument(
        "--top-k", type=int, default=20, help="passages retrieved per question (default: 20)"
    )
    retrieve.add_argument("--out", required=True, help="retrieved.jsonl to write")
    retrieve.set_defaults(func=_retrieve)

    ev = subparsers.add_parser("eval-retrieval", help="recall@k and MRR of retrieved.jsonl")
    ev.add_argument("--retrieved", required=True, help="retrieved.jsonl")
    ev.add_argument("--data", required=True, help="QA file with gold document_id and answers")
    ev.add_argument("--doc-aliases", help="doc_aliases.json from odqa preprocess (default: none)")
    ev.add_argument(
        "--out",
        required=True,
        help="folder to write retrieval_metrics.json and recall_at_k.png into (other files there are kept)",
    )
    ev.set_defaults(func=_eval_retrieval)


def _index(args: argparse.Namespace) -> int:
    from odqa.config import parse_assignments
    from odqa.retrieval.base import build_index

    if not args.kind:
        raise InputError(f"--kind is required: one of {', '.join(sorted(RETRIEVER_KINDS))}")
    options = parse_assignments(args.option, "--option")
    source = "--option"
    if args.analyzer:
        options["analyzer"] = args.analyzer
        source = "--option/--analyzer"
    if args.kind != "hybrid" and not args.passages:
        raise InputError(f"--passages is required for a {args.kind} index")
    print(build_index(args.kind, options, args.passages, args.out, source=source, force=args.force))
    return 0


def _retrieve(args: argparse.Namespace) -> int:
    from odqa.io import check_output_file
    from odqa.retrieval.search import retrieve

    if args.top_k < 1:
        raise InputError(f"--top-k: must be at least 1, got {args.top_k}")
    check_output_file(args.out)
    print(retrieve(args.index, args.data, args.out, top_k=args.top_k))
    return 0


def _eval_retrieval(args: argparse.Namespace) -> int:
    from odqa.retrieval.evaluate import evaluate_retrieval

    metrics = evaluate_retrieval(args.retrieved, args.data, args.out, doc_aliases_path=args.doc_aliases)
    print(json.dumps(metrics, ensure_ascii=False, indent=2))
    return 0
