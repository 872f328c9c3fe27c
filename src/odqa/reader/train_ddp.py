"""Entry point for data-parallel reader training (and MLM pre-training) on several GPUs or nodes:

    torchrun --nproc-per-node 4 -m odqa.reader.train_ddp --train qa.jsonl --out reader/ \
        --config '{"reader_model": "klue/roberta-large", "batch_size": 32}'
    torchrun --nproc-per-node 4 -m odqa.reader.train_ddp --stage pretrain --passages passages.jsonl \
        --out pretrained/ --config '{"base_model": "/models/roberta", "max_steps": 10000}'

Every process runs the same training (odqa.reader.train) on its share of each step's windows; DDP
averages the gradients and rank 0 alone writes checkpoints and the reader. A Kubeflow Trainer TrainJob
(manifests/trainer/) and the train_reader component (gpus_per_node > 1) start this module.
Exit code 2 with one line on stderr for bad input, as the odqa CLI.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from odqa.errors import InputError


def _config(text: str | None) -> dict:
    if not text:
        return {}
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"--config: not JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(value, dict):
        raise InputError("--config: must be a JSON object of the stage's config fields")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m odqa.reader.train_ddp", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--stage", choices=("reader", "pretrain"), default="reader", help="what to train (default: reader)"
    )
    parser.add_argument("--train", help="reader: training qa.jsonl")
    parser.add_argument("--passages", help="pretrain: passages.jsonl to pre-train on")
    parser.add_argument("--out", required=True, help="folder to write (rank 0)")
    parser.add_argument("--corpus", help="reader: passages.jsonl for the from-scratch vocabulary")
    parser.add_argument(
        "--config", help="ReaderTrainConfig (or PretrainConfig) fields as a JSON object, or @file.json"
    )
    args = parser.parse_args(argv)
    needed, given = ("--train", args.train) if args.stage == "reader" else ("--passages", args.passages)
    if not given:
        parser.error(f"--stage {args.stage} needs {needed}")
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.stage == "pretrain":
            from odqa.reader.config import PretrainConfig
            from odqa.reader.pretrain import pretrain

            settings = PretrainConfig.from_dict(_config(args.config), source="--config")
            out = pretrain(settings, args.passages, args.out).model_dir
        else:
            from odqa.reader.config import ReaderTrainConfig
            from odqa.reader.train import train_reader

            config = ReaderTrainConfig.from_dict(_config(args.config), source="--config")
            out = train_reader(config, args.train, args.out, corpus_path=args.corpus)
    except InputError as e:
        print(f"odqa train_ddp: error: {e}", file=sys.stderr)
        return 2
    if rank == 0:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
