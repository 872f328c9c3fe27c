"""Scale benchmark: how odqa's cost grows from 1k to 1M passages, and where the embedded default hands over.

Corpus (rebuilt on demand, cached in ~/.cache/odqa/scale/, never committed): the 961 unique KorQuAD 1.0
dev paragraphs, planted as they are (their 5,774 questions measure recall at every size), plus filler
documents made by sentence-level recombination with a fixed seed: each filler document is 2-9 sentences
drawn from the KLUE dev sets (NLI premises, STS and NER sentences) and from KorQuAD dev contexts, and
every KorQuAD-drawn sentence keeps each word with probability 0.5 (else a word drawn from the whole
text), so the planted paragraphs are not copied verbatim hundreds of times at 1M while vocabulary,
word frequencies and length statistics stay those of Korean Wikipedia text.

Per size, each stage runs in its own child process (peak RSS = that child's VmHWM):
- preprocess: `odqa.preprocess` (clean, exact + MinHash dedup, split), streaming, in 2 processes;
- bm25: the embedded BM25 build (`odqa.retrieval.bm25`, kiwi+bigram, chunked analysis in 2 processes),
  split into analysis and index time; the index's size on disk;
- bm25 query: memory-mapped load time, per-question latency p50/p95 *including query analysis* (one
  question per call, 300 questions), batch queries/s over all questions, recall@1/@20 by gold document;
- dense: a cheap encoder (hashed character bigrams, TF-weighted, projected to 128 dims by a fixed random
  Gaussian matrix, unit length; no training, so recall is a floor, and the FAISS costs depend only on
  vectors x dimensions), FAISS flat, HNSW (M 32, efSearch 128) and IVF-PQ (4 sqrt(n) lists, 16 bytes per
  passage, nprobe 16) build, size, mmap load, latency.

Then: one table, a log-log PNG of each cost against passages, the least-squares growth exponent of each
cost (slope on log-log), and the stage that dominates at the largest size. `--analysis-speedup N`
measures Kiwi analysis of N passages in 1 vs 2 processes; `--reader` adds reader prediction throughput.

    .venv/bin/python bench/scale.py --sizes 1k,10k,100k [--analysis-speedup 3000] [--reader]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import random
import re
import resource
import shlex
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from odqa.data import load_qa
from odqa.data.klue import read_ner_sentences, read_nli_premises, read_sts_sentences
from odqa.data.korquad import paragraph_document_id
from odqa.io import read_json, write_json
from odqa.settings import klue_dir, korquad_dev_path

log = logging.getLogger("bench.scale")
SEED = 20261130
CORPUS_VERSION = "v2"  # bump when build_corpus changes, so cached corpora are rebuilt
TOP_K = 20
LATENCY_QUESTIONS = 300
DENSE_DIM = 128
CACHE = Path(os.environ.get("ODQA_SCALE_CACHE", Path.home() / ".cache" / "odqa" / "scale"))
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


# ---------------------------------------------------------------- corpus


def parse_size(text: str) -> int:
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if factor > 1 else text) * factor)


def korquad_paragraphs() -> list[tuple[str, str, str]]:
    """(document_id, title, context) of every unique KorQuAD dev paragraph, in file order."""
    seen: dict[str, tuple[str, str, str]] = {}
    for article in read_json(korquad_dev_path())["data"]:
        for paragraph in article["paragraphs"]:
            doc = paragraph_document_id(paragraph["context"])
            seen.setdefault(doc, (doc, article["title"], paragraph["context"]))
    return list(seen.values())


def build_corpus(size: int) -> Path:
    """documents.jsonl with `size` documents (the planted paragraphs among them), cached by size and seed."""
    folder = CACHE / f"{size}-seed{SEED}-{CORPUS_VERSION}"
    path = folder / "documents.jsonl"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    planted = korquad_paragraphs()
    korquad_sentences = [s for _, _, c in planted for s in _SENTENCE.split(c) if len(s) > 10]
    klue = [s.text for read in (read_nli_premises, read_sts_sentences) for s in read(_klue_file(read))]
    klue += [s.text for s in read_ner_sentences(klue_dir() / "klue-ner-v1.1_dev.tsv")]
    klue = list(dict.fromkeys(s for s in klue if len(s) > 10))
    words = [w for s in korquad_sentences + klue for w in s.split()]
    fillers = max(0, size - len(planted))
    # the planted paragraphs sit at fixed random positions among the fillers
    slots = set(rng.sample(range(max(size, len(planted))), len(planted)))
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        planted_iter = iter(planted)
        filler = 0
        for position in range(fillers + len(planted)):
            if position in slots:
                doc, title, text = next(planted_iter)
            else:
                sentences = []
                for _ in range(rng.randint(2, 9)):
                    if rng.random() < 0.5:
                        sentences.append(rng.choice(klue))
                    else:
                        sentence = rng.choice(korquad_sentences).split()
                        sentences.append(
                            " ".join(w if rng.random() < 0.5 else rng.choice(words) for w in sentence)
                        )
                # a title of its own (1-3 corpus words): sharing the planted articles' titles would give
                # hundreds of documents one title, which no encyclopedia has
                title = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
                doc, text = f"filler-{filler}", " ".join(sentences)
                filler += 1
            f.write(json.dumps({"document_id": doc, "title": title, "text": text}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def _klue_file(read) -> Path:
    return (
        klue_dir()
        / {"read_nli_premises": "klue-nli-v1.1_dev.json", "read_sts_sentences": "klue-sts-v1.1_dev.json"}[
            read.__name__
        ]
    )


def planted_questions() -> list:
    questions = load_qa(korquad_dev_path()).examples
    for q in questions:
        q.document_id = paragraph_document_id(q.context)
    return questions


# ---------------------------------------------------------------- child processes


def peak_rss_mb() -> float:
    """This child's own peak RSS (VmHWM: ru_maxrss would carry the parent's peak across spawn's exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(fn, *args) -> dict:
    """fn in a fresh process (not a daemonic Pool worker: the stages start worker processes of their own)."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_with_cpu_seconds, fn, *args).result()


def _with_cpu_seconds(fn, *args):
    """fn's result plus the CPU seconds it and its finished workers used: on a machine other work keeps
    busy (a bench run at low priority beside it), CPU seconds still say what the stage costs."""
    result = fn(*args)
    if isinstance(result, dict):
        usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        result[f"{fn.__name__.removeprefix('stage_')}_cpu_s"] = sum(u.ru_utime + u.ru_stime for u in usage)
    return result


def workers_rss_mb() -> float:
    """Largest peak RSS among this process's finished children (its worker processes); an upper bound, as
    a spawned child's count starts from the parent's image before exec."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def stage_preprocess(documents: str, out: str) -> dict:
    from odqa.preprocess import PreprocessConfig, preprocess

    started = time.perf_counter()
    result = preprocess(PreprocessConfig(num_threads=2), documents, out, force=True)
    return {
        "preprocess_s": time.perf_counter() - started,
        "preprocess_rss_mb": peak_rss_mb(),
        "preprocess_worker_rss_mb": workers_rss_mb(),
        "passages": result.report["passages"],
        "documents_in": result.report["documents_in"],
        "duplicates": result.report["dropped_duplicates"],
        "chars": int(result.report["passage_chars"]["mean"] * result.report["passages"]),
    }


def stage_bm25_build(passages: str, out: str) -> dict:
    import odqa.retrieval.bm25 as bm25

    timings: dict = {}
    original = bm25.build_bm25s

    def timed_build(*args, **kwargs):
        return original(*args, stats=timings, **kwargs)

    bm25.build_bm25s = timed_build
    started = time.perf_counter()
    bm25.BM25Retriever.build(bm25.BM25Config(num_threads=2), passages, out, force=True)
    return {
        "bm25_total_s": time.perf_counter() - started,
        "analysis_s": timings["analysis_s"],
        "bm25_index_s": timings["index_s"],
        "postings": timings["postings"],
        "vocab": timings["vocab"],
        "bm25_build_rss_mb": peak_rss_mb(),
        "bm25_worker_rss_mb": workers_rss_mb(),
        "bm25_disk_mb": folder_mb(Path(out)),
    }


def _recall(ranked_docs: list[list[str]], gold: list[str]) -> tuple[float, float]:
    at1 = sum(r[:1] == [g] for r, g in zip(ranked_docs, gold, strict=True)) / len(gold)
    at20 = sum(g in r[:TOP_K] for r, g in zip(ranked_docs, gold, strict=True)) / len(gold)
    return at1, at20


def stage_bm25_query(index: str, aliases: str) -> dict:
    from odqa.retrieval.base import load_retriever

    alias = read_json(aliases)
    questions = planted_questions()
    started = time.perf_counter()
    retriever = load_retriever(index)
    load_s = time.perf_counter() - started
    retriever.search([questions[0].question], TOP_K)  # warm: Kiwi loaded, first pages mapped
    latencies = []
    for q in questions[:: max(1, len(questions) // LATENCY_QUESTIONS)][:LATENCY_QUESTIONS]:
        t = time.perf_counter()
        retriever.search([q.question], TOP_K)
        latencies.append(time.perf_counter() - t)
    t = time.perf_counter()
    hits = retriever.search([q.question for q in questions], TOP_K)
    batch_s = time.perf_counter() - t
    r1, r20 = _recall(
        [[h.document_id for h in row] for row in hits],
        [alias.get(q.document_id, q.document_id) for q in questions],
    )
    return {
        "bm25_load_s": load_s,
        "bm25_p50_ms": 1000 * statistics.median(latencies),
        "bm25_p95_ms": 1000 * float(np.percentile(latencies, 95)),
        "bm25_qps": len(questions) / batch_s,
        "bm25_r1": r1,
        "bm25_r20": r20,
        "bm25_query_rss_mb": peak_rss_mb(),
    }


def hashed_bigram_vectors(texts: list[str], dim: int = DENSE_DIM, buckets: int = 1 << 18) -> np.ndarray:
    """The bench's dense encoder: character bigrams hashed into `buckets`, log(1 + tf) weighted, times a
    fixed Gaussian (buckets x dim) matrix, unit length. No training; deterministic across processes."""
    import scipy.sparse

    projection = np.random.default_rng(SEED).standard_normal((buckets, dim)).astype(np.float32)
    rows, cols, vals = [], [], []
    for i, text in enumerate(texts):
        counts: dict[int, int] = {}
        for word in text.lower().split():
            for j in range(max(1, len(word) - 1)):
                h = int.from_bytes(
                    hashlib.blake2b(word[j : j + 2].encode(), digest_size=4).digest(), "little"
                )
                counts[h % buckets] = counts.get(h % buckets, 0) + 1
        rows.extend([i] * len(counts))
        cols.extend(counts)
        vals.extend(math.log1p(c) for c in counts.values())
    sparse = scipy.sparse.csr_matrix(
        (np.asarray(vals, np.float32), (rows, cols)), shape=(len(texts), buckets)
    )
    vectors = np.asarray(sparse @ projection, dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
    return vectors


def stage_dense(passages: str, out: str, aliases: str) -> dict:
    import faiss

    from odqa.data import load_passages
    from odqa.retrieval.dense import build_faiss_index, read_faiss_index
    from odqa.retrieval.dense_encoder import DenseConfig

    faiss.omp_set_num_threads(2)
    items = load_passages(passages)
    t = time.perf_counter()
    vectors = np.concatenate(
        [
            hashed_bigram_vectors([f"{p.title}\n{p.text}" for p in items[s : s + 20_000]])
            for s in range(0, len(items), 20_000)
        ]
    )
    encode_s = time.perf_counter() - t
    questions = planted_questions()
    alias = read_json(aliases)
    gold = [alias.get(q.document_id, q.document_id) for q in questions]
    qvec = hashed_bigram_vectors([q.question for q in questions])
    doc_ids = [p.document_id for p in items]
    row: dict = {"dense_encode_s": encode_s}
    Path(out).mkdir(parents=True, exist_ok=True)
    for kind in ("flat", "hnsw", "ivfpq"):
        config = DenseConfig(train_qa="unused: vectors come from the bench encoder", index_type=kind)
        t = time.perf_counter()
        index = build_faiss_index(vectors, config)
        row[f"{kind}_build_s"] = time.perf_counter() - t
        path = Path(out) / f"{kind}.faiss"
        faiss.write_index(index, str(path))
        del index
        row[f"{kind}_disk_mb"] = path.stat().st_size / 2**20
        t = time.perf_counter()
        index = read_faiss_index(path)
        row[f"{kind}_load_s"] = time.perf_counter() - t
        latencies = []
        faiss.omp_set_num_threads(
            1
        )  # one question per call: OpenMP's thread hand-off costs more than it saves
        for v in qvec[:: max(1, len(qvec) // LATENCY_QUESTIONS)][:LATENCY_QUESTIONS]:
            t = time.perf_counter()
            index.search(v[None, :], TOP_K)
            latencies.append(time.perf_counter() - t)
        faiss.omp_set_num_threads(2)
        row[f"{kind}_p50_ms"] = 1000 * statistics.median(latencies)
        row[f"{kind}_p95_ms"] = 1000 * float(np.percentile(latencies, 95))
        t = time.perf_counter()
        _, found = index.search(qvec, TOP_K)
        row[f"{kind}_qps"] = len(qvec) / (time.perf_counter() - t)
        row[f"{kind}_r1"], row[f"{kind}_r20"] = _recall(
            [[doc_ids[i] for i in r if i >= 0] for r in found], gold
        )
        del index
    row["dense_rss_mb"] = peak_rss_mb()
    return row


def analysis_speedup(passages: str, n: int) -> list[dict]:
    """Kiwi analysis of the first n passages: 1 process, Kiwi's own 2 threads in 1 process, 2 processes.
    CPU seconds (this process + its workers) over wall seconds says how many cores the setting got:
    on a machine other work keeps busy, 2 processes cannot be 2x faster if they get no second core."""
    from odqa.data import load_passages
    from odqa.text.analyzers import analyze_in_chunks, make_analyzer

    def cpu_seconds() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    texts = [f"{p.title}\n{p.text}" for p in load_passages(passages)[:n]]
    chars = sum(map(len, texts))
    rows = []
    for label, workers, processes in (
        ("1 process", 1, 1),
        ("1 process, Kiwi 2 threads", 2, 1),
        ("2 processes", 1, 2),
    ):
        analyzer = make_analyzer("kiwi", num_workers=workers)
        analyzer.analyze(["워밍업"])  # Kiwi's model load is not analysis
        t, cpu = time.perf_counter(), cpu_seconds()
        # 16 chunks, so 2 processes share the work; their start (spawn + Kiwi model load) is included
        for _ in analyze_in_chunks(analyzer, texts, chunk_size=max(1, n // 16), num_threads=processes):
            pass
        seconds = time.perf_counter() - t
        rows.append(
            {
                "setting": label,
                "seconds": seconds,
                "chars_per_s": chars / seconds,
                "passages": len(texts),
                "cores_used": (cpu_seconds() - cpu) / seconds,
                "load_average": os.getloadavg()[0],
            }
        )
    return rows


# ---------------------------------------------------------------- reader


def reader_throughput(work: Path) -> list[dict]:
    """A tiny reader trained briefly (as bench/reader.py builds one), then prediction questions/s at
    top-k 5 for batch sizes 1/16/64 and 1/2 CPU threads (and CUDA when present) on 200 eval questions."""
    import torch

    from odqa.data import write_qa
    from odqa.data.korquad import KorquadSplitConfig, prepare_korquad
    from odqa.preprocess import PreprocessConfig, preprocess
    from odqa.reader.config import PredictConfig, ReaderTrainConfig
    from odqa.reader.predict import predict
    from odqa.reader.train import train_reader
    from odqa.retrieval.base import build_index
    from odqa.retrieval.search import retrieve

    split = prepare_korquad(KorquadSplitConfig(), korquad_dev_path(), work / "split", force=True)
    passages = preprocess(PreprocessConfig(), split.documents_path, work / "passages", force=True)
    config = ReaderTrainConfig(max_steps=30, hidden_size=128, num_layers=2, num_threads=2)
    model = train_reader(
        config, split.train_path, work / "reader", corpus_path=passages.passages_path, force=True
    )
    index = build_index("bm25", {"analyzer": "bigram"}, passages.passages_path, work / "index", force=True)
    qa = work / "eval200.jsonl"
    write_qa(qa, load_qa(split.eval_path).examples[:200])
    retrieved = retrieve(index, qa, work / "retrieved.jsonl", top_k=5)
    rows = []
    devices = [("cpu", t) for t in (1, 2)] + ([("cuda", None)] if torch.cuda.is_available() else [])
    for device, threads in devices:
        for batch in (1, 16, 64):
            pconf = PredictConfig(top_k_passages=5, batch_size=batch, num_threads=threads, device=device)
            result = predict(pconf, model, retrieved, work / f"pred-{device}-{threads}-{batch}", force=True)
            rows.append(
                {"device": device, "threads": threads, "batch": batch, "qps": result.questions_per_second}
            )
    return rows


# ---------------------------------------------------------------- report

COSTS = [  # (column, label, unit) plotted and fitted
    ("preprocess_s", "preprocess", "s"),
    ("analysis_s", "Kiwi+bigram analysis", "s"),
    ("bm25_index_s", "BM25 index (after analysis)", "s"),
    ("dense_encode_s", "dense encode (hashing)", "s"),
    ("flat_build_s", "FAISS flat build", "s"),
    ("hnsw_build_s", "FAISS HNSW build", "s"),
    ("ivfpq_build_s", "FAISS IVF-PQ build", "s"),
    ("bm25_p50_ms", "BM25 query p50", "ms"),
    ("flat_p50_ms", "flat query p50", "ms"),
    ("hnsw_p50_ms", "HNSW query p50", "ms"),
    ("ivfpq_p50_ms", "IVF-PQ query p50", "ms"),
    ("bm25_build_rss_mb", "BM25 build peak RSS", "MB"),
    ("bm25_query_rss_mb", "BM25 query peak RSS", "MB"),
    ("bm25_disk_mb", "BM25 index on disk", "MB"),
    ("flat_disk_mb", "flat index on disk", "MB"),
    ("ivfpq_disk_mb", "IVF-PQ index on disk", "MB"),
]
BUILD_STAGES = [
    "preprocess_s",
    "analysis_s",
    "bm25_index_s",
    "dense_encode_s",
    "flat_build_s",
    "hnsw_build_s",
    "ivfpq_build_s",
]


def growth_exponents(rows: list[dict]) -> dict[str, float]:
    """Least-squares slope of log(cost) on log(passages), per cost (needs two sizes or more)."""
    out = {}
    for key, _, _ in COSTS:
        points = [(r["passages"], r[key]) for r in rows if r.get(key, 0) > 0]  # rows of older runs lack some
        if len(points) >= 2:
            x = np.log([p for p, _ in points])
            y = np.log([c for _, c in points])
            out[key] = float(np.polyfit(x, y, 1)[0])
    return out


def plot(rows: list[dict], path: Path) -> None:
    from odqa.reports import png_figure

    with png_figure(path, figsize=(15, 4.5)) as (fig, ax):
        ax.remove()
        panels = {unit: fig.add_subplot(1, 3, n) for n, unit in enumerate(("s", "ms", "MB"), start=1)}
        x = [r["passages"] for r in rows]
        for key, label, unit in COSTS:
            panels[unit].plot(x, [r.get(key, np.nan) for r in rows], marker="o", label=label)
        titles = {
            "s": "build time",
            "ms": "query latency p50 (one question per call)",
            "MB": "memory and disk",
        }
        for unit, target in panels.items():
            target.set_xscale("log")
            target.set_yscale("log")
            target.set_xlabel("passages")
            target.set_ylabel({"s": "seconds", "ms": "milliseconds", "MB": "MB"}[unit])
            target.set_title(titles[unit])
            target.grid(True, which="both", alpha=0.3)
            target.legend(fontsize=7)


def _cell(row: dict, key: str, spec: str) -> str:
    """A number, or '-' in rows of older runs that did not measure it."""
    return format(row[key], spec) if key in row else "-"


def print_report(
    rows: list[dict], speedup: list[dict], reader: list[dict], argv: list[str], png: Path
) -> None:
    if rows:
        loads = [r["load_average"] for r in rows if "load_average" in r]
        load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "not recorded"
        print(
            f"\nScale, kiwi+bigram BM25 (2 processes), hashing dense encoder {DENSE_DIM}-d; load average {load} "
            f"on {os.cpu_count()} cores (1-minute, after each size)\n"
        )
        header = (
            "| passages | chars | preprocess s | analysis s | BM25 index s | BM25 build RSS MB | BM25 disk MB | BM25 load s "
            "| BM25 p50/p95 ms | BM25 q/s | BM25 R@1 | BM25 R@20 | BM25 query RSS MB | dense encode s | flat build s "
            "| HNSW build s | flat/HNSW disk MB | flat p50 ms | HNSW p50 ms | flat R@20 | HNSW R@20 | dense RSS MB "
            "| IVF-PQ build s | IVF-PQ disk MB | IVF-PQ p50 ms | IVF-PQ R@20 | CPU s, all stages |"
        )
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for r in rows:
            print(
                f"| {r['passages']:,} | {r['chars'] / 1e6:.1f} M | {r['preprocess_s']:.1f} | {r['analysis_s']:.1f} "
                f"| {r['bm25_index_s']:.1f} | {r['bm25_build_rss_mb']:,.0f} | {r['bm25_disk_mb']:,.0f} | {r['bm25_load_s']:.1f} "
                f"| {r['bm25_p50_ms']:.1f} / {r['bm25_p95_ms']:.1f} | {r['bm25_qps']:,.0f} | {r['bm25_r1']:.3f} | {r['bm25_r20']:.3f} "
                f"| {r['bm25_query_rss_mb']:,.0f} | {r['dense_encode_s']:.1f} | {r['flat_build_s']:.2f} | {r['hnsw_build_s']:.1f} "
                f"| {r['flat_disk_mb']:,.0f} / {r['hnsw_disk_mb']:,.0f} | {r['flat_p50_ms']:.2f} | {r['hnsw_p50_ms']:.2f} "
                f"| {r['flat_r20']:.3f} | {r['hnsw_r20']:.3f} | {r['dense_rss_mb']:,.0f} "
                f"| {_cell(r, 'ivfpq_build_s', '.1f')} | {_cell(r, 'ivfpq_disk_mb', ',.1f')} "
                f"| {_cell(r, 'ivfpq_p50_ms', '.2f')} | {_cell(r, 'ivfpq_r20', '.3f')} "
                f"| {_cell(r, 'cpu_s', ',.0f')} |"
            )
        exponents = growth_exponents(rows)
        if exponents:
            print("\nGrowth exponents (cost ~ passages^k, least squares on log-log):\n")
            print("| cost | k | at largest size |")
            print("|---|---|---|")
            for key, label, unit in COSTS:
                if key in exponents:
                    print(f"| {label} | {exponents[key]:.2f} | {rows[-1][key]:,.1f} {unit} |")
        largest = rows[-1]
        dominant = max(BUILD_STAGES, key=lambda k: largest.get(k, 0))
        label = dict((k, lbl) for k, lbl, _ in COSTS)[dominant]
        total = sum(largest.get(k, 0) for k in BUILD_STAGES)
        print(
            f"\nAt {largest['passages']:,} passages the dominant build stage is {label}: {largest[dominant]:.0f} s of {total:.0f} s."
        )
        base = rows[0]
        print(
            f"BM25 recall@20 moves {largest['bm25_r20'] - base['bm25_r20']:+.3f} from {base['passages']:,} to {largest['passages']:,} passages."
        )
    if speedup:
        print(
            f"\nKiwi analysis (kiwi analyzer, {len(speedup) and speedup[0].get('passages', 0):,} passages in 16 chunks):\n"
        )
        print("| setting | seconds | chars/s | vs 1 process | cores used (CPU s / wall s) | load average |")
        print("|---|---|---|---|---|---|")
        for s in speedup:
            print(
                f"| {s['setting']} | {s['seconds']:.1f} | {s['chars_per_s']:,.0f} "
                f"| {speedup[0]['seconds'] / s['seconds']:.2f}x | {s.get('cores_used', 0):.2f} "
                f"| {s.get('load_average', 0):.1f} |"
            )
    if reader:
        print("\nReader prediction (tiny reader, 30 steps; top-k 5; 200 questions):\n")
        print("| device | threads | batch | questions/s |")
        print("|---|---|---|---|")
        for r in reader:
            print(f"| {r['device']} | {r['threads'] or '-'} | {r['batch']} | {r['qps']:.1f} |")
    print(f"\nPlot: {png}")
    print("Reproduce: .venv/bin/python bench/scale.py " + shlex.join(argv))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1k,10k,100k", help="documents per corpus, e.g. 1k,10k,100k,1m")
    parser.add_argument("--out-dir", type=Path, default=Path("bench_out/scale"), help="indexes, JSON and PNG")
    parser.add_argument(
        "--analysis-speedup",
        type=int,
        default=0,
        metavar="N",
        help="time Kiwi on N passages, 1 vs 2 processes",
    )
    parser.add_argument("--reader", action="store_true", help="add reader prediction throughput")
    parser.add_argument("--no-dense", action="store_true", help="skip the FAISS rows")
    parser.add_argument(
        "--passages", type=Path, help="passages.jsonl for --analysis-speedup (default: the last size's)"
    )
    parser.add_argument(
        "--report-from", type=Path, help="print the table and draw the PNG from an earlier scale.json only"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    if args.report_from:
        saved = read_json(args.report_from)
        plot(saved["rows"], out / "scale.png")
        print_report(
            saved["rows"],
            saved.get("analysis_speedup", []),
            saved.get("reader", []),
            saved["argv"],
            out / "scale.png",
        )
        return 0
    rows = []
    passages = ""
    for size in [parse_size(s) for s in args.sizes.split(",") if s not in ("", "none")]:
        work = out / str(size)
        t = time.perf_counter()
        documents = build_corpus(size)
        print(f"[{size:,}] corpus {documents} ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
        row: dict = {"size": size}
        row |= in_child(stage_preprocess, str(documents), str(work / "passages"))
        passages, aliases = (
            str(work / "passages" / "passages.jsonl"),
            str(work / "passages" / "doc_aliases.json"),
        )
        print(f"[{size:,}] preprocess {row['preprocess_s']:.0f} s", file=sys.stderr, flush=True)
        row |= in_child(stage_bm25_build, passages, str(work / "bm25"))
        print(f"[{size:,}] bm25 build {row['bm25_total_s']:.0f} s", file=sys.stderr, flush=True)
        row |= in_child(stage_bm25_query, str(work / "bm25"), aliases)
        if not args.no_dense:
            row |= in_child(stage_dense, passages, str(work / "dense"), aliases)
        row["cpu_s"] = sum(v for k, v in row.items() if k.endswith("_cpu_s"))
        row["load_average"] = os.getloadavg()[0]  # the machine is shared: timings mean little without it
        rows.append(row)
        write_json(out / "scale.json", {"rows": rows, "argv": argv})
        print(
            f"[{size:,}] done: {json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})}",
            file=sys.stderr,
            flush=True,
        )
        shutil.rmtree(work / "dense", ignore_errors=True)
    if args.passages:  # a speedup or reader run on an earlier corpus, without the sizes
        passages = str(args.passages)
    speedup = in_child(analysis_speedup, passages, args.analysis_speedup) if args.analysis_speedup else []
    reader = in_child(reader_throughput, out / "reader") if args.reader else []
    write_json(
        out / "scale.json", {"rows": rows, "analysis_speedup": speedup, "reader": reader, "argv": argv}
    )
    png = out / "scale.png"
    if rows and not args.no_dense:
        plot(rows, png)
    print_report(rows, speedup, reader, argv, png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
