"""`odqa augment`, `odqa ensemble`, `odqa curriculum`."""

from __future__ import annotations

import argparse
import json


def add_commands(subparsers) -> None:
    aug = subparsers.add_parser(
        "augment", help="add augmented training examples (identity when all switches off)"
    )
    aug.add_argument("--qa", required=True, help="training QA file")
    aug.add_argument("--out", required=True, help="output qa.jsonl")
    aug.add_argument("--passages", help="passages.jsonl (question generation with --qg-source passages)")
    aug.add_argument("--index", help="retrieval index folder (hard negatives)")
    aug.add_argument("--hard-negatives", type=int, default=0, help="no-answer examples per question")
    aug.add_argument("--hard-negative-pool", type=int, default=10)
    aug.add_argument("--mask-prob", type=float, default=0.0, help="mask nouns outside the answer (0: off)")
    aug.add_argument("--mask-token", default="[MASK]")
    aug.add_argument("--query-rewrite", action="store_true", help="add copies with rewritten questions")
    aug.add_argument("--qg-per-passage", type=int, default=0, help="generated questions per passage (0: off)")
    aug.add_argument("--qg-style", choices=["wh", "cloze"], default="wh")
    aug.add_argument("--qg-model", help="seq2seq question writer (hub name or local folder)")
    aug.add_argument("--qg-source", choices=["train", "passages"], default="train")
    aug.add_argument("--qg-max-passages", type=int)
    aug.add_argument("--filter-reader", help="reader model folder: keep generated pairs it answers")
    aug.add_argument("--filter-metric", choices=["em", "f1"], default="f1")
    aug.add_argument("--filter-threshold", type=float, default=0.5)
    aug.add_argument("--seed", type=int, default=42)
    aug.set_defaults(func=_augment)

    ens = subparsers.add_parser("ensemble", help="combine several readers' nbest.json files")
    ens.add_argument("--nbest", nargs="+", required=True, help="nbest.json files (or folders holding one)")
    ens.add_argument("--out", required=True, help="output folder (predictions.json, nbest.json)")
    ens.add_argument(
        "--method", choices=["prob_product", "logit_sum", "rank_average", "hard_vote"], default="prob_product"
    )
    ens.add_argument("--weights", type=float, nargs="+", help="one weight per --nbest member")
    ens.add_argument("--n-best", type=int, default=20)
    ens.set_defaults(func=_ensemble)

    cur = subparsers.add_parser("curriculum", help="order / weight training examples by reader difficulty")
    cur.add_argument("--qa", required=True, help="training QA file")
    cur.add_argument("--out", required=True, help="output qa.jsonl")
    cur.add_argument("--reader", nargs="+", required=True, help="reader model folder(s)")
    cur.add_argument("--scorer", choices=["margin", "agreement"], default="margin")
    cur.add_argument("--no-order", action="store_true", help="keep the file order (weights only)")
    cur.add_argument(
        "--hardest-weight", type=float, help="loss weight of the hardest example (default: unchanged)"
    )
    cur.set_defaults(func=_curriculum)


def _augment(args: argparse.Namespace) -> int:
    from odqa.augment import AugmentConfig, augment

    config = AugmentConfig(
        hard_negatives=args.hard_negatives,
        hard_negative_pool=args.hard_negative_pool,
        mask_prob=args.mask_prob,
        mask_token=args.mask_token,
        query_rewrite=args.query_rewrite,
        qg_per_passage=args.qg_per_passage,
        qg_style=args.qg_style,
        qg_model=args.qg_model,
        qg_source=args.qg_source,
        qg_max_passages=args.qg_max_passages,
        filter_reader=args.filter_reader,
        filter_metric=args.filter_metric,
        filter_threshold=args.filter_threshold,
        seed=args.seed,
    )
    report = augment(config, args.qa, args.out, passages_path=args.passages, index_dir=args.index)
    print(json.dumps({k: v for k, v in report.items() if k != "config"}, ensure_ascii=False, indent=2))
    return 0


def _ensemble(args: argparse.Namespace) -> int:
    from odqa.ensemble import EnsembleConfig, ensemble

    config = EnsembleConfig(method=args.method, weights=args.weights, n_best=args.n_best)
    print(ensemble(config, args.nbest, args.out))
    return 0


def _curriculum(args: argparse.Namespace) -> int:
    from odqa.curriculum import CurriculumConfig, curriculum

    config = CurriculumConfig(
        scorer=args.scorer,
        reader_dirs=args.reader,
        order=not args.no_order,
        hardest_weight=args.hardest_weight,
    )
    print(json.dumps(curriculum(config, args.qa, args.out), ensure_ascii=False, indent=2))
    return 0
