"""`odqa train`, `odqa predict`, `odqa pretrain` and `odqa folds`: argument parsing only; the work is in
odqa.reader. The config flags are generated from ReaderTrainConfig, PredictConfig, PretrainConfig and
FoldsConfig (odqa.cli.options)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from odqa.cli.options import add_config_arguments, add_deprecated_flag, add_force_argument, config_from_args
from odqa.errors import InputError
from odqa.reader.config import FoldsConfig, PredictConfig, PretrainConfig, ReaderTrainConfig

OLD_THREADS_FLAG = {"--threads": "num_threads"}  # until 0.2


def add_commands(subparsers) -> None:
    train = subparsers.add_parser("train", help="train an extractive reader on qa.jsonl")
    train.add_argument("--train", required=True, help="training qa.jsonl")
    train.add_argument("--out", required=True, help="reader folder to write")
    add_force_argument(train)
    train.add_argument(
        "--corpus", help="passages.jsonl, also used to train the WordPiece vocabulary (default: none)"
    )
    add_config_arguments(train, ReaderTrainConfig, aliases=OLD_THREADS_FLAG)
    train.set_defaults(func=_train)

    predict = subparsers.add_parser("predict", help="answer questions with a trained reader")
    predict.add_argument("--reader", help="trained reader folder (from odqa train); required, no default")
    add_deprecated_flag(predict, "--model", "reader", "--reader")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--retrieved", help="retrieved.jsonl to read (no default: this or --data is required)"
    )
    source.add_argument(
        "--data", help="qa.jsonl: read each question's own (gold) context (no default: this or --retrieved)"
    )
    predict.add_argument("--out", required=True, help="folder for predictions.json and nbest.json")
    add_force_argument(predict)
    add_config_arguments(predict, PredictConfig, aliases=OLD_THREADS_FLAG)
    predict.set_defaults(func=_predict)

    pretrain = subparsers.add_parser(
        "pretrain",
        help="masked-language-model training on passages.jsonl; odqa train --reader-model starts from it",
    )
    pretrain.add_argument("--passages", required=True, help="passages.jsonl from odqa preprocess")
    pretrain.add_argument("--out", required=True, help="model folder to write")
    add_force_argument(pretrain)
    add_config_arguments(pretrain, PretrainConfig)
    pretrain.set_defaults(func=_pretrain)

    folds = subparsers.add_parser(
        "folds", help="k train/dev splits of qa.jsonl by article, one reader each for an ensemble"
    )
    folds.add_argument("--train", required=True, help="training qa.jsonl to split")
    folds.add_argument("--out", required=True, help="folder for fold-k/train.jsonl, fold-k/dev.jsonl")
    add_force_argument(folds)
    add_config_arguments(folds, FoldsConfig)
    folds.set_defaults(func=_folds)


# Output kinds (odqa.io.atomic_dir) of the folders train and predict write.
READER_KIND = "reader"
PREDICTIONS_KIND = "predictions"


def _train(args: argparse.Namespace) -> int:
    from odqa.io import check_output_dir, require_file
    from odqa.reader.train import train_reader

    config = config_from_args(ReaderTrainConfig, args)
    require_file(args.train)
    if args.corpus:
        require_file(args.corpus)
    check_output_dir(args.out, READER_KIND, args.force)
    out = train_reader(config, args.train, args.out, corpus_path=args.corpus, force=args.force)
    print(out)
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from odqa.io import check_output_dir, require_file
    from odqa.reader.pretrain import PRETRAIN_KIND, pretrain

    config = config_from_args(PretrainConfig, args)
    require_file(args.passages)
    check_output_dir(args.out, PRETRAIN_KIND, args.force)
    result = pretrain(config, args.passages, args.out, force=args.force)
    summary = result.summary
    print(json.dumps({"model": str(result.model_dir), "steps": summary["steps"], "seconds": summary["seconds"],
                      "first_loss": summary["first_loss"], "final_loss": summary["final_loss"]}))  # fmt: skip
    return 0


def _folds(args: argparse.Namespace) -> int:
    from odqa.io import check_output_dir, require_file
    from odqa.reader.folds import FOLDS_KIND, make_folds

    config = config_from_args(FoldsConfig, args)
    require_file(args.train)
    check_output_dir(args.out, FOLDS_KIND, args.force)
    specs = make_folds(config, args.train, args.out, force=args.force)
    print(json.dumps([s.to_dict() for s in specs]))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from odqa.data.retrieved import check_retrieved
    from odqa.io import check_output_dir, require_file
    from odqa.reader.predict import predict, predict_gold

    if not args.reader:
        raise InputError("--reader is required (the folder odqa train wrote)")
    config = config_from_args(PredictConfig, args)
    reader = Path(args.reader)
    if not reader.is_dir():
        what = "is a file, expected the reader folder odqa train wrote" if reader.exists() else "not found"
        raise InputError(f"{what} (--reader)", path=reader)
    check_output_dir(args.out, PREDICTIONS_KIND, args.force)
    if args.retrieved:
        check_retrieved(args.retrieved, flag="--retrieved")
        result = predict(config, args.reader, args.retrieved, args.out, force=args.force)
    else:
        require_file(args.data)
        result = predict_gold(config, args.reader, args.data, args.out, force=args.force)
    print(
        json.dumps(
            {
                "predictions": str(result.predictions_path),
                "nbest": str(result.nbest_path),
                "questions": result.questions,
                "questions_per_second": round(result.questions_per_second, 2),
            }
        )
    )
    return 0
