"""`odqa train` and `odqa predict`: argument parsing only; the work is in odqa.reader. The config flags
are generated from ReaderTrainConfig and PredictConfig (odqa.cli.options)."""

from __future__ import annotations

import argparse
import json

from odqa.cli.options import add_config_arguments, add_deprecated_flag, config_from_args
from odqa.errors import InputError
from odqa.reader.config import PredictConfig, ReaderTrainConfig

OLD_THREADS_FLAG = {"--threads": "num_threads"}  # until 0.2


def add_commands(subparsers) -> None:
    train = subparsers.add_parser("train", help="train an extractive reader on qa.jsonl")
    train.add_argument("--train", required=True, help="training qa.jsonl")
    train.add_argument("--out", required=True, help="reader folder to write")
    train.add_argument("--corpus", help="passages.jsonl, also used to train the WordPiece vocabulary")
    add_config_arguments(train, ReaderTrainConfig, aliases=OLD_THREADS_FLAG)
    train.set_defaults(func=_train)

    predict = subparsers.add_parser("predict", help="answer questions with a trained reader")
    predict.add_argument("--reader", help="trained reader folder (from odqa train); required")
    add_deprecated_flag(predict, "--model", "reader", "--reader")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--retrieved", help="retrieved.jsonl to read")
    source.add_argument("--data", help="qa.jsonl: read each question's own (gold) context")
    predict.add_argument("--out", required=True, help="folder for predictions.json and nbest.json")
    add_config_arguments(predict, PredictConfig, aliases=OLD_THREADS_FLAG)
    predict.set_defaults(func=_predict)


def _train(args: argparse.Namespace) -> int:
    from odqa.reader.train import train_reader

    config = config_from_args(ReaderTrainConfig, args)
    out = train_reader(config, args.train, args.out, corpus_path=args.corpus)
    print(out)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from odqa.reader.predict import predict, predict_gold

    if not args.reader:
        raise InputError("--reader is required (the folder odqa train wrote)")
    config = config_from_args(PredictConfig, args)
    if args.retrieved:
        result = predict(config, args.reader, args.retrieved, args.out)
    else:
        result = predict_gold(config, args.reader, args.data, args.out)
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
