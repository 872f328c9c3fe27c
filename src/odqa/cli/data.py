"""`odqa validate`, `odqa preprocess`, `odqa prepare-korquad`, `odqa prepare-data`; config flags are
generated from PreprocessConfig, KorquadSplitConfig and PrepareDataConfig (odqa.cli.options)."""

from __future__ import annotations

import argparse
import json

from odqa.cli.options import add_config_arguments, add_force_argument, config_from_args
from odqa.data.korquad import KorquadSplitConfig
from odqa.data.layout import PrepareDataConfig
from odqa.preprocess import PreprocessConfig

# Old preprocess spellings, until 0.2.
PREPROCESS_ALIASES = {
    "--near-dup-threshold": "near_duplicate_threshold",
    "--exact-dedup-only": ("near_duplicate_threshold", None),
}


def add_commands(subparsers) -> None:
    validate = subparsers.add_parser(
        "validate", help="check a QA file (SQuAD, flat JSON/JSONL, HF datasets dir)"
    )
    validate.add_argument("--data", required=True, help="QA file or Hugging Face datasets folder")
    validate.add_argument("--split", help="split of a DatasetDict folder (default: none)")
    validate.add_argument(
        "--fix-offsets",
        action="store_true",
        help="move misplaced answers, drop what cannot be repaired (default: off, any problem is an error)",
    )
    validate.add_argument(
        "--out", help="write the (repaired) examples here as flat JSONL (default: none, only the report)"
    )
    validate.add_argument(
        "--max-problems", type=int, default=20, help="problems listed in the printed report (default: 20)"
    )
    validate.set_defaults(func=_validate)

    pre = subparsers.add_parser("preprocess", help="clean, deduplicate and split documents into passages")
    pre.add_argument("--documents", required=True, help="wikipedia_documents.json, a JSON list or JSONL")
    pre.add_argument("--out", required=True, help="output folder (passages.jsonl, doc_aliases.json, report)")
    add_force_argument(pre)
    add_config_arguments(pre, PreprocessConfig, aliases=PREPROCESS_ALIASES)
    pre.set_defaults(func=_preprocess)

    kq = subparsers.add_parser("prepare-korquad", help="article-level open-domain split of KorQuAD")
    kq.add_argument(
        "--squad", help="KorQuAD/SQuAD JSON (default: $ODQA_DATA_DIR/korquad/KorQuAD_v1.0_dev.json)"
    )
    kq.add_argument("--out", required=True, help="output folder (documents.jsonl, train.jsonl, eval.jsonl)")
    add_force_argument(kq)
    add_config_arguments(kq, KorquadSplitConfig)
    kq.set_defaults(func=_prepare_korquad)

    prep = subparsers.add_parser(
        "prepare-data",
        help="the pipeline's prepare_data stage: a corpus + train/eval(/test) sets, or one KorQuAD file split",
    )
    prep.add_argument("--out", required=True, help="output folder (documents.jsonl, train/eval/test.jsonl)")
    add_force_argument(prep)
    add_config_arguments(prep, PrepareDataConfig)
    prep.set_defaults(func=_prepare_data)


def _validate(args: argparse.Namespace) -> int:
    from odqa.data import load_qa, write_qa
    from odqa.io import check_output_file

    if args.out:
        check_output_file(args.out)
    loaded = load_qa(args.data, fix_offsets=args.fix_offsets, split=args.split)
    if args.out:
        write_qa(args.out, loaded.examples)
    print(json.dumps(loaded.report.to_dict(max_problems=args.max_problems), ensure_ascii=False, indent=2))
    return 0


def _preprocess(args: argparse.Namespace) -> int:
    from odqa.preprocess import preprocess

    result = preprocess(config_from_args(PreprocessConfig, args), args.documents, args.out, force=args.force)
    print(json.dumps({k: v for k, v in result.report.items() if k != "config"}, ensure_ascii=False))
    return 0


def _prepare_korquad(args: argparse.Namespace) -> int:
    from odqa.data.korquad import prepare_korquad
    from odqa.settings import korquad_dev_path

    config = config_from_args(KorquadSplitConfig, args)
    split = prepare_korquad(config, args.squad or korquad_dev_path(), args.out, force=args.force)
    print(json.dumps({k: v for k, v in split.report.items() if k != "eval_titles"}, ensure_ascii=False))
    return 0


def _prepare_data(args: argparse.Namespace) -> int:
    from odqa.data.layout import prepare_data

    data = prepare_data(config_from_args(PrepareDataConfig, args), args.out, force=args.force)
    print(
        json.dumps(
            {k: v for k, v in data.report.items() if k not in ("config", "eval_titles")}, ensure_ascii=False
        )
    )
    return 0
