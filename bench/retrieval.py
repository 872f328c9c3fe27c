"""Retrieval benchmark: every analyzer with the embedded BM25 retriever on KorQuAD 1.0 dev open-domain.

Corpus: all unique paragraphs of KorQuAD dev (one passage each, title-prefixed); questions: all of them.
Per analyzer: corpus analysis + index time, query analysis time, queries/s searching analyzed tokens
(odqa wrapper, hits included) against raw bm25s `retrieve` on the same tokens, end-to-end queries/s
(analysis included), and recall@1/5/20 + MRR by gold document. Search runs on one thread, Kiwi
with one worker. Progress bars go to stderr, the table to stdout.

    .venv/bin/python bench/retrieval.py [--analyzers whitespace,bigram,kiwi,kiwi+bigram] [--limit N]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from odqa.data import load_documents, load_qa
from odqa.data.korquad import KorquadSplitConfig, prepare_korquad
from odqa.io import write_jsonl
from odqa.retrieval.base import build_index, load_retriever
from odqa.retrieval.evaluate import plot_recall_curves, retrieval_metrics
from odqa.schema import Passage, RetrievalResult
from odqa.settings import korquad_dev_path
from odqa.text.analyzers import ANALYZERS

TOP_K = 20
ANALYZER_KWARGS = {"kiwi": {"num_workers": 1}, "kiwi+bigram": {"num_workers": 1}}


def korquad_open_domain(work: Path) -> tuple[Path, list]:
    """passages.jsonl with one passage per unique KorQuAD dev paragraph, and every question."""
    split = prepare_korquad(KorquadSplitConfig(), korquad_dev_path(), work / "korquad")
    documents = load_documents(split.documents_path)
    passages_path = work / "passages.jsonl"
    write_jsonl(
        passages_path,
        (Passage(f"{d.document_id}-0", d.document_id, d.title, d.text).to_dict() for d in documents),
    )
    questions = load_qa(split.train_path).examples + load_qa(split.eval_path).examples
    return passages_path, questions


def timed(fn, *args, repeat: int = 1):
    """Best-of-`repeat` wall time (less noise from the other processes on a shared machine)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return out, best


def bench_analyzer(name: str, passages_path: Path, questions: list, work: Path) -> dict:
    index_dir = work / f"index-{name}"
    options = {"analyzer": name, "analyzer_options": ANALYZER_KWARGS.get(name, {})}
    _, build_s = timed(build_index, "bm25", options, passages_path, index_dir)
    retriever = load_retriever(index_dir)
    texts = [f"{p.title}\n{p.text}" for p in retriever.passages]
    _, corpus_analysis_s = timed(retriever.analyzer.analyze, texts)
    query_texts = [q.question for q in questions]
    tokens, query_analysis_s = timed(retriever.analyze_queries, query_texts)
    n = len(questions)

    def wrapped():
        return retriever.hits(*retriever.search_tokens(tokens, TOP_K))

    def raw():
        return retriever.model.retrieve(tokens, k=TOP_K, show_progress=False, n_threads=0)

    # Alternate the two so both see the same load on a shared machine; keep each one's best.
    wrapped_s = raw_s = float("inf")
    for _ in range(5):
        hits, seconds = timed(wrapped)
        wrapped_s = min(wrapped_s, seconds)
        raw_out, seconds = timed(raw)
        raw_s = min(raw_s, seconds)
    assert np.allclose(raw_out.scores, retriever.search_tokens(tokens, TOP_K)[1], rtol=1e-4, atol=1e-4)
    _, e2e_s = timed(retriever.search, query_texts, TOP_K)
    results = [RetrievalResult(q.id, q.question, h) for q, h in zip(questions, hits, strict=True)]
    metrics = retrieval_metrics(results, questions)
    return {
        "analyzer": name,
        "build_s": build_s,
        "corpus_analysis_s": corpus_analysis_s,
        "query_analysis_s": query_analysis_s,
        "qps_tokens": n / wrapped_s,
        "qps_raw_bm25s": n / raw_s,
        "wrapper_cost": wrapped_s / raw_s,
        "qps_end_to_end": n / e2e_s,
        "metrics": metrics,
    }


def markdown_table(rows: list[dict], n_passages: int, n_questions: int) -> str:
    lines = [
        f"KorQuAD 1.0 dev open-domain: {n_passages} passages, {n_questions} questions, top-{TOP_K}, "
        "recall by gold document, search on 1 thread.",
        "",
        "| analyzer | build s (analysis s) | query analysis s | q/s tokens (odqa) | q/s raw bm25s | odqa/raw time "
        "| q/s end-to-end | R@1 | R@5 | R@20 | MRR |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["metrics"]["by_document"]
        lines.append(
            f"| {r['analyzer']} | {r['build_s']:.1f} ({r['corpus_analysis_s']:.1f}) | {r['query_analysis_s']:.2f} "
            f"| {r['qps_tokens']:,.0f} | {r['qps_raw_bm25s']:,.0f} | {r['wrapper_cost']:.2f}x "
            f"| {r['qps_end_to_end']:,.0f} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['recall@20']:.3f} "
            f"| {m['mrr']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyzers", default=",".join(ANALYZERS))
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    parser.add_argument("--plot", type=Path, default=None, help="write recall@k curves (PNG) here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory(prefix="odqa-bench-retrieval-") as tmp:
        passages_path, questions = korquad_open_domain(Path(tmp))
        questions = questions[: args.limit] if args.limit else questions
        n_passages = sum(1 for _ in open(passages_path, encoding="utf-8"))
        for name in args.analyzers.split(","):
            rows.append(bench_analyzer(name, passages_path, questions, Path(tmp)))
            print(f"done {name}", file=sys.stderr)
    if args.plot:
        plot_recall_curves({r["analyzer"]: r["metrics"] for r in rows}, args.plot)
    print(markdown_table(rows, n_passages, len(questions)))
    print()
    print("Reproduce: .venv/bin/python bench/retrieval.py" + (f" --limit {args.limit}" if args.limit else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
