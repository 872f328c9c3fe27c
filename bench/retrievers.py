"""Compare every retriever in one run: BM25 (each analyzer), dense, hybrid (RRF and weighted score
fusion), and Elasticsearch when ODQA_ES_URL answers, on KorQuAD 1.0 dev open-domain, with and without
KLUE distractor passages.

Protocol: engineer A's article-level split (prepare_korquad, 20% of articles for evaluation) and
preprocess give the corpus (every paragraph) and the questions. The dense model trains on the train
articles minus 10% held out as a fusion dev set (the fusion weight is tuned there), never on the eval
questions; every retriever is scored on the eval questions. Each build + search runs in its own
process, so peak RSS is that retriever's own.

    .venv/bin/python bench/retrievers.py [--out-dir DIR] [--dense-epochs 3] [--num-threads 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import random
import resource
import shutil
import sys
import time
from pathlib import Path

from odqa.cli.options import add_deprecated_flag
from odqa.data import load_qa, write_qa
from odqa.data.klue import DistractorConfig, write_corpus_with_distractors
from odqa.data.korquad import KorquadSplitConfig, prepare_korquad
from odqa.io import write_json, write_jsonl
from odqa.preprocess import PreprocessConfig, preprocess
from odqa.retrieval.base import build_index, load_retriever
from odqa.retrieval.evaluate import evaluate_retrieval, plot_recall_curves
from odqa.retrieval.tuning import tune_fusion_weight
from odqa.schema import DOC_ALIASES_FILE, RetrievalResult
from odqa.settings import korquad_dev_path

log = logging.getLogger("bench.retrievers")
ANALYZERS = ["whitespace", "bigram", "kiwi", "kiwi+bigram"]
DEPTH = 100


def run_retriever(
    kind: str, options: dict, passages: str, index_dir: str, qa: str, out: str, num_threads: int
) -> dict:
    """Child process: build (unless index_dir exists), load, search every eval question; timings + peak RSS."""
    import torch

    torch.set_num_threads(num_threads)
    started = time.perf_counter()
    if kind != "prebuilt":
        build_index(kind, options, passages, index_dir)
    built = time.perf_counter()
    retriever = load_retriever(index_dir)
    examples = load_qa(qa).examples
    questions = [e.question for e in examples]
    loaded = time.perf_counter()
    hits = retriever.search(questions, DEPTH)
    searched = time.perf_counter()
    write_jsonl(
        out, (RetrievalResult(e.id, e.question, h).to_dict() for e, h in zip(examples, hits, strict=True))
    )
    return {
        "index_s": built - started,
        "qps": len(questions) / (searched - loaded),
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM belongs to the address space exec created, whereas
    ru_maxrss survives exec and would report the parent's peak for a spawned child."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(*args) -> dict:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(run_retriever, args)


def es_reachable() -> bool:
    url = os.environ.get("ODQA_ES_URL")
    if not url:
        return False
    from elasticsearch import Elasticsearch

    try:
        return bool(Elasticsearch(url, request_timeout=5, max_retries=0).ping())
    except Exception:  # any failure means "not reachable": the row is just left out
        return False


def split_by_article(qa_path: Path, dev_fraction: float, seed: int, train_out: Path, dev_out: Path) -> None:
    examples = load_qa(qa_path).examples
    titles = list(dict.fromkeys(e.title for e in examples))
    dev_titles = set(random.Random(seed).sample(titles, max(1, round(dev_fraction * len(titles)))))
    write_qa(train_out, [e for e in examples if e.title not in dev_titles])
    write_qa(dev_out, [e for e in examples if e.title in dev_titles])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out-dir", default="bench_out/retrievers")
    parser.add_argument("--dense-epochs", type=int, default=3)
    parser.add_argument("--num-threads", type=int, default=1, help="torch threads in each child (default: 1)")
    add_deprecated_flag(parser, "--threads", "num_threads", "--num-threads", type=int)
    parser.add_argument(
        "--dense-options",
        default="{}",
        help='extra DenseConfig options as JSON, e.g. \'{"similarity": "cosine", "ict_epochs": 2}\'',
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = Path(args.out_dir).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    split = prepare_korquad(KorquadSplitConfig(), korquad_dev_path(), out / "split")
    pre = preprocess(PreprocessConfig(), split.documents_path, out / "korquad")
    aliases = pre.doc_aliases_path
    write_corpus_with_distractors(
        DistractorConfig(), pre.passages_path, out / "korquad+klue" / "passages.jsonl"
    )
    shutil.copy(aliases, out / "korquad+klue" / DOC_ALIASES_FILE)
    dense_train, fusion_dev = out / "split" / "dense_train.jsonl", out / "split" / "fusion_dev.jsonl"
    split_by_article(split.train_path, 0.1, 7, dense_train, fusion_dev)
    eval_qa = str(split.eval_path)

    rows = []
    for corpus in ("korquad", "korquad+klue"):
        passages = str(out / corpus / "passages.jsonl")
        n_passages = sum(1 for _ in open(passages, encoding="utf-8"))
        idx = out / corpus / "indexes"
        runs: dict[str, tuple[str, dict, str]] = {}
        for analyzer in ANALYZERS:
            runs[f"bm25 {analyzer}"] = ("bm25", {"analyzer": analyzer}, str(idx / f"bm25-{analyzer}"))
        if corpus == "korquad":
            dense_options = {
                "train_qa": str(dense_train),
                "epochs": args.dense_epochs,
                "num_threads": args.num_threads,
                **json.loads(args.dense_options),
            }
        else:  # the same trained encoders, re-encoding the larger corpus
            dense_options = {
                "init_from": str(out / "korquad" / "indexes" / "dense"),
                "num_threads": args.num_threads,
            }
        runs["dense"] = ("dense", dense_options, str(idx / "dense"))
        if es_reachable():
            runs["elasticsearch nori"] = (
                "elasticsearch",
                {"alias": f"odqa-bench-{corpus.replace('+', '-')}"},
                str(idx / "es"),
            )
        results: dict[str, dict] = {}
        for name, (kind, options, index_dir) in runs.items():
            log.info("== %s / %s", corpus, name)
            results[name] = in_child(
                kind,
                options,
                passages,
                index_dir,
                eval_qa,
                str(out / corpus / f"{name}.jsonl"),
                args.num_threads,
            )

        subs = [str(idx / "bm25-kiwi+bigram"), str(idx / "dense")]
        tuning = tune_fusion_weight(
            subs,
            fusion_dev,
            fusion="minmax",
            metric="recall@1",
            doc_aliases_path=aliases,
            plot_path=out / corpus / "fusion_weight.png",
        )
        sparse = [str(idx / "bm25-kiwi+bigram"), str(idx / "bm25-bigram")]
        hybrid_runs = {
            "hybrid zscore (bm25 kiwi+bigram + bm25 bigram)": {"indexes": sparse, "fusion": "zscore"},
            "hybrid rrf (bm25 kiwi+bigram + dense)": {"indexes": subs, "fusion": "rrf"},
            f"hybrid minmax w={tuning.weight:.2f} (bm25 kiwi+bigram + dense)": {
                "indexes": subs,
                "fusion": "minmax",
                "weights": [tuning.weight, 1 - tuning.weight],
            },
        }
        for i, (name, options) in enumerate(hybrid_runs.items()):
            log.info("== %s / %s", corpus, name)
            results[name] = in_child(
                "hybrid",
                options,
                passages,
                str(idx / f"hybrid-{i}"),
                eval_qa,
                str(out / corpus / f"hybrid-{i}.jsonl"),
                args.num_threads,
            )
            results[name]["retrieved"] = str(out / corpus / f"hybrid-{i}.jsonl")
        curves = {}
        for name, stats in results.items():
            retrieved = stats.pop("retrieved", str(out / corpus / f"{name}.jsonl"))
            metrics = evaluate_retrieval(
                retrieved, eval_qa, out / corpus / "eval" / name.split(" (")[0].replace(" ", "_"), aliases
            )
            curves[name] = metrics
            rows.append(
                {
                    "corpus": f"{corpus} ({n_passages} passages)",
                    "retriever": name,
                    **stats,
                    **metrics["by_document"],
                }
            )
        plot_recall_curves(curves, out / corpus / "recall_at_k.png")

    write_json(out / "table.json", rows)
    header = "| corpus | retriever | R@1 | R@5 | R@20 | R@100 | MRR | index s | queries/s | peak RSS MB |"
    print(f"\nKorQuAD 1.0 dev open-domain, {len(load_qa(eval_qa).examples)} eval questions (gold document)\n")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        print(
            f"| {r['corpus']} | {r['retriever']} | {r['recall@1']:.3f} | {r['recall@5']:.3f} | {r['recall@20']:.3f} | "
            f"{r['recall@100']:.3f} | {r['mrr']:.3f} | {r['index_s']:.1f} | {r['qps']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    print(f"\nfusion weight (minmax, tuned on {fusion_dev.name}): see */fusion_weight.png; plots in {out}")
    print(
        f"reproduce: .venv/bin/python bench/retrievers.py --dense-epochs {args.dense_epochs} --num-threads {args.num_threads}"
        f" --dense-options '{args.dense_options}'"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
