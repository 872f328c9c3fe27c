"""Reader benchmark on KorQuAD 1.0 dev: train tokens/s, inference questions/s, and EM/F1 with the gold
passage given versus BM25-retrieved passages (both score modes, each with the reader's null score
ignored and subtracted), on held-out articles.

Prints a markdown table and the command that reproduces it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import tempfile
from pathlib import Path

from odqa.data.korquad import KorquadSplitConfig, prepare_korquad
from odqa.evaluation import EvaluateConfig, evaluate
from odqa.io import read_json
from odqa.preprocess import PreprocessConfig, preprocess
from odqa.reader.config import READER_CONFIG_FILE, PredictConfig, ReaderTrainConfig
from odqa.reader.predict import predict, predict_gold
from odqa.reader.train import train_reader
from odqa.retrieval.base import build_index
from odqa.retrieval.search import retrieve
from odqa.settings import korquad_dev_path


def main(argv: list[str] | None = None) -> int:
    defaults = ReaderTrainConfig()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", type=Path, help="keep outputs here (default: a temp folder)")
    parser.add_argument("--epochs", type=float, default=defaults.epochs)
    parser.add_argument("--max-steps", type=int, default=None, help="cap training steps (quick runs)")
    parser.add_argument("--max-length", type=int, default=defaults.max_length)
    parser.add_argument("--hidden-size", type=int, default=defaults.hidden_size)
    parser.add_argument("--num-layers", type=int, default=defaults.num_layers)
    parser.add_argument("--vocab-size", type=int, default=defaults.vocab_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--num-threads", type=int, default=2)
    parser.add_argument("--top-k", type=int, default=5, help="retrieved passages read per question")
    parser.add_argument("--analyzer", default="bigram", help="BM25 analyzer for the retrieved rows")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    work = args.out_dir or Path(tempfile.mkdtemp(prefix="odqa-bench-reader-"))
    split = prepare_korquad(KorquadSplitConfig(), korquad_dev_path(), work / "split")
    passages = preprocess(PreprocessConfig(), split.documents_path, work / "preprocess")
    config = ReaderTrainConfig(
        epochs=args.epochs,
        max_steps=args.max_steps,
        max_length=args.max_length,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        vocab_size=args.vocab_size,
        learning_rate=args.learning_rate,
        num_threads=args.num_threads,
    )
    model_dir = train_reader(config, split.train_path, work / "model", corpus_path=passages.passages_path)
    training = read_json(model_dir / READER_CONFIG_FILE)["training"]

    index_dir = build_index("bm25", {"analyzer": args.analyzer}, passages.passages_path, work / "index")
    retrieved = retrieve(index_dir, split.eval_path, work / "retrieved.jsonl", top_k=args.top_k)

    rows = []
    bm25 = f"BM25 {args.analyzer} top-{args.top_k}"
    runs = [
        ("gold passage", "prob_product", "ignore", None),
        *(
            (bm25, mode, null, retrieved)
            for mode in ("prob_product", "logit_sum")
            for null in ("ignore", "subtract")
        ),
    ]
    for source, mode, null, retrieved_path in runs:
        out = work / f"pred-{len(rows)}"
        pconf = PredictConfig(score_mode=mode, null_score=null, num_threads=args.num_threads)
        if retrieved_path is None:
            result = predict_gold(pconf, model_dir, split.eval_path, out)
        else:
            result = predict(pconf, model_dir, retrieved_path, out)
        metrics = evaluate(EvaluateConfig(), split.eval_path, result.predictions_path, out / "metrics.json")
        rows.append((source, mode, null, result.questions_per_second, metrics["exact_match"], metrics["f1"]))

    size = f"h{config.hidden_size}/L{config.num_layers}, len {config.max_length}, vocab {config.vocab_size}"
    print(
        f"\nReader {size}: {training['steps']} steps ({training['epochs']:.2f} epochs) in {training['seconds']:.0f}s, "
        f"{training['tokens_per_second']:,.0f} train tokens/s on {training['num_threads']} threads, "
        f"loss {training['first_loss']:.2f} -> {training['final_loss']:.2f}; "
        f"{training['examples']} training questions, {training['features']} windows\n"
    )
    print("| passages | score mode | null score | questions/s | EM | F1 |")
    print("|---|---|---|---|---|---|")
    for source, mode, null, qps, em, f1 in rows:
        print(f"| {source} | {mode} | {null} | {qps:,.1f} | {em:.1f} | {f1:.1f} |")
    print(
        "\nReproduce: .venv/bin/python bench/reader.py "
        + shlex.join(argv if argv is not None else sys.argv[1:])
    )
    (work / "bench_reader.json").write_text(
        json.dumps(
            {"config": config.model_dump(), "training": training, "rows": rows}, ensure_ascii=False, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
