"""`odqa train` and `odqa predict`: argument parsing only; the work is in odqa.reader."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from odqa.reader.config import SCORE_MODES, PredictConfig, ReaderTrainConfig

_TRAIN_DEFAULTS = ReaderTrainConfig()
_PREDICT_DEFAULTS = PredictConfig()


def add_commands(subparsers) -> None:
    train = subparsers.add_parser("train", help="train an extractive reader on qa.jsonl")
    train.add_argument("--train", required=True, help="training qa.jsonl")
    train.add_argument("--out", required=True, help="model folder to write")
    train.add_argument("--corpus", help="passages.jsonl, also used to train the WordPiece vocabulary")
    train.add_argument(
        "--reader-model", help="Hugging Face checkpoint name or folder (default: small BERT from scratch)"
    )
    train.add_argument("--epochs", type=float, default=_TRAIN_DEFAULTS.epochs)
    train.add_argument("--max-steps", type=int, default=None)
    train.add_argument("--batch-size", type=int, default=_TRAIN_DEFAULTS.batch_size)
    train.add_argument("--learning-rate", type=float, default=_TRAIN_DEFAULTS.learning_rate)
    train.add_argument("--max-length", type=int, default=_TRAIN_DEFAULTS.max_length)
    train.add_argument("--doc-stride", type=int, default=_TRAIN_DEFAULTS.doc_stride)
    train.add_argument("--hidden-size", type=int, default=_TRAIN_DEFAULTS.hidden_size)
    train.add_argument("--num-layers", type=int, default=_TRAIN_DEFAULTS.num_layers)
    train.add_argument("--num-heads", type=int, default=_TRAIN_DEFAULTS.num_heads)
    train.add_argument("--vocab-size", type=int, default=_TRAIN_DEFAULTS.vocab_size)
    train.add_argument("--title-prefix", action="store_true", help='read contexts as "title\\ncontext"')
    train.add_argument("--no-shuffle", action="store_true", help="keep the file order (curriculum)")
    train.add_argument("--seed", type=int, default=_TRAIN_DEFAULTS.seed)
    train.add_argument("--threads", type=int, default=None, help="torch threads")
    train.set_defaults(func=_train)

    predict = subparsers.add_parser("predict", help="answer questions with a trained reader")
    predict.add_argument("--model", required=True, help="reader model folder")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--retrieved", help="retrieved.jsonl to read")
    source.add_argument("--data", help="qa.jsonl: read each question's own (gold) context")
    predict.add_argument("--out", required=True, help="folder for predictions.json and nbest.json")
    predict.add_argument("--score-mode", choices=SCORE_MODES, default=_PREDICT_DEFAULTS.score_mode)
    predict.add_argument("--n-best", type=int, default=_PREDICT_DEFAULTS.n_best)
    predict.add_argument("--max-answer-length", type=int, default=_PREDICT_DEFAULTS.max_answer_length)
    predict.add_argument(
        "--top-k-passages",
        type=int,
        default=_PREDICT_DEFAULTS.top_k_passages,
        help="retrieved passages read per question (0: all)",
    )
    predict.add_argument(
        "--use-retrieval-score",
        action=argparse.BooleanOptionalAction,
        default=_PREDICT_DEFAULTS.use_retrieval_score,
        help="weigh each answer by its passage's retrieval probability",
    )
    predict.add_argument(
        "--trim-particles",
        action=argparse.BooleanOptionalAction,
        default=_PREDICT_DEFAULTS.trim_particles,
        help="cut trailing Korean particles and copulas from answers (Kiwi)",
    )
    predict.add_argument("--batch-size", type=int, default=_PREDICT_DEFAULTS.batch_size)
    predict.add_argument("--threads", type=int, default=None)
    predict.set_defaults(func=_predict)


def _config(cls, args: argparse.Namespace, **extra):
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    return cls(**{**values, **extra})


def _train(args: argparse.Namespace) -> int:
    from odqa.reader.train import train_reader

    config = _config(ReaderTrainConfig, args, shuffle=not args.no_shuffle)
    out = train_reader(config, args.train, args.out, corpus_path=args.corpus)
    print(out)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from odqa.reader.predict import predict, predict_gold

    config = _config(PredictConfig, args, top_k_passages=args.top_k_passages or None)
    if args.retrieved:
        result = predict(config, args.model, args.retrieved, args.out)
    else:
        result = predict_gold(config, args.model, args.data, args.out)
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
