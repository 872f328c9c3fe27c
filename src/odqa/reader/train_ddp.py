"""Entry point for data-parallel reader training on several GPUs or nodes:

    torchrun --nproc-per-node 4 -m odqa.reader.train_ddp --train qa.jsonl --out reader/ \
        --config '{"reader_model": "klue/roberta-large", "batch_size": 32}'

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
        raise InputError("--config: must be a JSON object of ReaderTrainConfig fields")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m odqa.reader.train_ddp", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--train", required=True, help="training qa.jsonl")
    parser.add_argument("--out", required=True, help="reader folder to write (rank 0)")
    parser.add_argument("--corpus", help="passages.jsonl for the from-scratch vocabulary")
    parser.add_argument("--config", help="ReaderTrainConfig fields as a JSON object, or @file.json")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
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
