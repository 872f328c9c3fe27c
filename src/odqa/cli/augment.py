"""`odqa augment`, `odqa ensemble`, `odqa curriculum`; config flags are generated from AugmentConfig,
EnsembleConfig and CurriculumConfig (odqa.cli.options)."""

from __future__ import annotations

import argparse
import json

from odqa.augment import AugmentConfig
from odqa.cli.options import add_config_arguments, add_force_argument, config_from_args
from odqa.curriculum import CurriculumConfig
from odqa.ensemble import EnsembleConfig
from odqa.io import check_output_file

CURRICULUM_FLAGS = {"readers": "--reader"}


def add_commands(subparsers) -> None:
    aug = subparsers.add_parser(
        "augment", help="add augmented training examples (identity when all switches off)"
    )
    aug.add_argument("--qa", required=True, help="training QA file")
    aug.add_argument("--out", required=True, help="output file, e.g. work/aug/qa.jsonl")
    aug.add_argument(
        "--passages",
        help="passages.jsonl (question generation with --qg-source passages) (default: none)",
    )
    aug.add_argument("--index", help="retrieval index folder (hard negatives) (default: none)")
    add_config_arguments(aug, AugmentConfig)
    aug.set_defaults(func=_augment)

    ens = subparsers.add_parser("ensemble", help="combine several readers' nbest.json files")
    ens.add_argument("--nbest", nargs="+", required=True, help="nbest.json files (or folders holding one)")
    ens.add_argument("--out", required=True, help="output folder (predictions.json, nbest.json)")
    add_force_argument(ens)
    add_config_arguments(ens, EnsembleConfig)
    ens.set_defaults(func=_ensemble)

    cur = subparsers.add_parser("curriculum", help="order / weight training examples by reader difficulty")
    cur.add_argument("--qa", required=True, help="training QA file")
    cur.add_argument("--out", required=True, help="output file, e.g. work/curriculum/qa.jsonl")
    add_config_arguments(cur, CurriculumConfig, flags=CURRICULUM_FLAGS)
    cur.set_defaults(func=_curriculum)


def _augment(args: argparse.Namespace) -> int:
    from odqa.augment import augment

    config = config_from_args(AugmentConfig, args)
    check_output_file(args.out)
    report = augment(config, args.qa, args.out, passages_path=args.passages, index_dir=args.index)
    print(json.dumps({k: v for k, v in report.items() if k != "config"}, ensure_ascii=False, indent=2))
    return 0


def _ensemble(args: argparse.Namespace) -> int:
    from odqa.ensemble import ensemble

    print(ensemble(config_from_args(EnsembleConfig, args), args.nbest, args.out, force=args.force))
    return 0


def _curriculum(args: argparse.Namespace) -> int:
    from odqa.curriculum import curriculum

    config = config_from_args(CurriculumConfig, args, flags=CURRICULUM_FLAGS)
    check_output_file(args.out)
    print(json.dumps(curriculum(config, args.qa, args.out), ensure_ascii=False, indent=2))
    return 0
