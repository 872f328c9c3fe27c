"""Embedded BM25 (bm25s) over analyzer terms: no server, the index is a folder of numpy arrays.

The corpus is analyzed once at build time; `search_tokens` is the lean path for queries that are
already analyzed (benchmarks, batch retrieval), `search` analyzes raw questions first."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import bm25s
import numpy as np
import scipy.sparse
from bm25s.scoring import _select_idf_scorer, _select_tfc_scorer
from pydantic import Field, ValidationInfo, field_validator

from odqa.config import StageConfig
from odqa.data import load_passages
from odqa.errors import InputError
from odqa.io import atomic_dir, write_json, write_jsonl
from odqa.retrieval.base import INDEX_KIND, load_retriever_config, saved_retriever_config
from odqa.schema import PASSAGES_FILE, RETRIEVER_CONFIG_FILE, Hit, Passage
from odqa.text.analyzers import (
    ANALYZERS,
    DEFAULT_CHUNK_SIZE,
    Analyzer,
    analyze_in_chunks,
    make_analyzer,
    typed_analyzer_options,
)

logger = logging.getLogger(__name__)

BM25S_DIR = "bm25s"  # bm25s.save() output inside the index folder
SCORE_BLOCK = 1 << 24  # floats in one (queries x passages) score block: 64 MiB
INDEX_INFO_KEYS = ("num_passages", "vocab_size")  # facts about the index in retriever.json, not settings


class BM25Config(StageConfig):
    runtime_fields = frozenset({"num_threads", "chunk_size"})
    analyzer: str = Field(
        "kiwi+bigram", description="how text becomes terms: whitespace, bigram, kiwi or kiwi+bigram"
    )
    analyzer_options: dict[str, Any] = Field(
        default_factory=dict, description='analyzer settings, e.g. {"pos": ["N", "V"]} for kiwi'
    )
    k1: float = Field(
        1.5, gt=0, allow_inf_nan=False, description="BM25 term-frequency saturation, a finite number > 0"
    )
    b: float = Field(
        0.75, ge=0, le=1, allow_inf_nan=False, description="BM25 length normalisation, from 0 to 1"
    )
    method: Literal["robertson", "lucene", "atire", "bm25l", "bm25+"] = Field(
        "lucene", description="bm25s scoring variant"
    )
    title_prefix: bool = Field(
        True, description='index "title\\ntext": titles name the topic questions ask about'
    )
    num_threads: int = Field(
        0,
        ge=0,
        description="processes that analyze the corpus at build time (0: every available core, a pod's "
        "CPU limit included; a corpus of one chunk is analyzed in-process)",
    )
    chunk_size: int = Field(
        DEFAULT_CHUNK_SIZE, ge=1, description="passages analyzed and indexed at a time (bounds build memory)"
    )

    @field_validator("analyzer")
    @classmethod
    def _known_analyzer(cls, name: str) -> str:
        if name not in ANALYZERS:
            raise ValueError(f"unknown analyzer {name!r}; known: {', '.join(sorted(ANALYZERS))}")
        return name

    @field_validator("analyzer_options")
    @classmethod
    def _typed_analyzer_options(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Checked against the analyzer now (not at build time), typed as its fields say."""
        name = info.data.get("analyzer")
        if name is None:  # the analyzer itself is wrong; that error says so
            return options
        try:
            return typed_analyzer_options(name, options)
        except InputError as e:
            raise ValueError(str(e)) from None

    def make_analyzer(self) -> Analyzer:
        return make_analyzer(self.analyzer, **self.analyzer_options)


def passage_index_text(passage: Passage, title_prefix: bool) -> str:
    return f"{passage.title}\n{passage.text}" if title_prefix and passage.title else passage.text


class BM25Retriever:
    config_class = BM25Config

    def __init__(self, config: BM25Config, model: bm25s.BM25, passages: list[Passage]):
        self.config = config
        self.analyzer = config.make_analyzer()
        self.model = model
        self.passages = passages
        self._hit_fields = [(p.passage_id, p.document_id, p.title, p.text) for p in passages]
        # bm25s keeps a term-major sparse matrix of per-passage term scores: rows are terms.
        data, term_indices, indptr = (model.scores[key] for key in ("data", "indices", "indptr"))
        self._term_scores = _term_score_matrix(data, term_indices, indptr, len(passages))

    @classmethod
    def build(
        cls, config: BM25Config, passages_path: str | Path, index_dir: str | Path, force: bool = False
    ) -> BM25Retriever:
        analyzer = config.make_analyzer()  # fail on a bad analyzer before the slow part
        passages = load_passages(passages_path)
        with atomic_dir(index_dir, kind=INDEX_KIND, force=force) as tmp:
            model = build_bm25s(
                (passage_index_text(p, config.title_prefix) for p in passages),
                analyzer,
                config,
                tmp / BM25S_DIR,
                total=len(passages),
            )
            write_jsonl(tmp / PASSAGES_FILE, (p.to_dict() for p in passages))
            info = dict(zip(INDEX_INFO_KEYS, (len(passages), len(model.vocab_dict)), strict=True))
            write_json(tmp / RETRIEVER_CONFIG_FILE, saved_retriever_config("bm25", config, **info))
        return cls(config, model, passages)

    @classmethod
    def load(cls, index_dir: str | Path) -> BM25Retriever:
        index_dir = Path(index_dir)
        config, _ = load_retriever_config(index_dir, "bm25", BM25Config, INDEX_INFO_KEYS)
        try:
            # Memory-mapped: the score arrays stay on disk and pages come in as queries touch them.
            model = bm25s.BM25.load(
                str(index_dir / BM25S_DIR), load_corpus=False, mmap=True, show_progress=False
            )
        except (FileNotFoundError, ValueError, OSError) as e:
            raise InputError(f"damaged bm25 index: {e}", path=index_dir / BM25S_DIR) from None
        passages = load_passages(index_dir / PASSAGES_FILE)
        if len(passages) != model.scores["num_docs"]:
            raise InputError(
                f"index holds {model.scores['num_docs']} documents but {len(passages)} passages",
                path=index_dir,
            )
        return cls(config, model, passages)

    def analyze_queries(self, queries: list[str]) -> list[list[str]]:
        return self.analyzer.analyze(queries)

    def search_tokens(self, query_tokens: list[list[str]], top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """(passage indices, scores), each of shape (queries, min(top_k, passages)), best first.

        Scores equal bm25s `retrieve` (same precomputed matrix), but a batch of queries is scored with
        one sparse product instead of a Python loop per query: about 3x faster on one core."""
        if top_k < 1:
            raise InputError(f"top_k must be at least 1, got {top_k}")
        n_docs = len(self.passages)
        k = min(top_k, n_docs)
        batch = max(1, SCORE_BLOCK // n_docs)
        indices = np.empty((len(query_tokens), k), dtype=np.int64)
        scores = np.empty((len(query_tokens), k), dtype=np.float32)
        for start in range(0, len(query_tokens), batch):
            block = self._score_block(query_tokens[start : start + batch])
            top = (
                np.argpartition(-block, k - 1, axis=1)[:, :k]
                if k < n_docs
                else np.tile(np.arange(n_docs), (len(block), 1))
            )
            top_scores = np.take_along_axis(block, top, axis=1)
            order = np.argsort(-top_scores, axis=1, kind="stable")
            indices[start : start + len(block)] = np.take_along_axis(top, order, axis=1)
            scores[start : start + len(block)] = np.take_along_axis(top_scores, order, axis=1)
        return indices, scores

    def _score_block(self, query_tokens: list[list[str]]) -> np.ndarray:
        """Dense (queries, passages) BM25 scores: query term counts times the term-by-passage score matrix."""
        vocab = self.model.vocab_dict
        rows: list[int] = []
        cols: list[int] = []
        for row, tokens in enumerate(query_tokens):
            ids = [
                vocab[t] for t in tokens if t and t in vocab
            ]  # "" is bm25s's pseudo-term for empty queries
            rows.extend([row] * len(ids))
            cols.extend(ids)
        counts = scipy.sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(len(query_tokens), self._term_scores.shape[0]),
        )  # repeated query terms add up, as in bm25s
        block = (counts @ self._term_scores).toarray()
        if self.model.nonoccurrence_array is not None:  # bm25l / bm25+: a per-query constant
            block += (counts @ self.model.nonoccurrence_array)[:, None]
        return block

    def hits(self, indices: np.ndarray, scores: np.ndarray) -> list[list[Hit]]:
        fields = self._hit_fields
        return [
            [Hit(*fields[i], s) for i, s in zip(row_idx, row_scores, strict=True)]
            for row_idx, row_scores in zip(indices.tolist(), scores.tolist(), strict=True)
        ]

    def search(self, queries: list[str], top_k: int) -> list[list[Hit]]:
        return self.hits(*self.search_tokens(self.analyze_queries(queries), top_k))


# ---------------------------------------------------------------- building at scale


def _term_score_matrix(data: np.ndarray, term_indices: np.ndarray, indptr: np.ndarray, n_docs: int):
    """bm25s's arrays as a (terms x passages) CSR matrix without copying them. scipy needs indices and
    indptr of one dtype and would copy a memory-mapped int32 `indices` to int64 to match bm25s's int64
    `indptr` (and read every index to check it): a small int32 indptr is used instead wherever every
    offset fits, and the arrays are assigned as they are."""
    shape = (len(indptr) - 1, n_docs)
    if term_indices.dtype == np.int32 and len(data) < np.iinfo(np.int32).max:
        matrix = scipy.sparse.csr_matrix(shape, dtype=data.dtype)
        matrix.data, matrix.indices, matrix.indptr = data, term_indices, indptr.astype(np.int32)
        return matrix
    return scipy.sparse.csr_matrix((data, term_indices, indptr), shape=shape)


def build_bm25s(
    texts: Iterable[str],
    analyzer: Analyzer,
    config: BM25Config,
    out_dir: Path,
    total: int | None = None,
    stats: dict[str, Any] | None = None,
) -> bm25s.BM25:
    """A bm25s index of `texts` written to `out_dir` (bm25s's own folder layout, so `bm25s.BM25.load`
    reads it), returned loaded memory-mapped.

    Equal, array for array, to `bm25s.BM25(...).index(analyzer.analyze(texts))` (same formulas, same
    float32 rounding) except that term ids are numbered in order of first appearance, but it never holds
    the corpus's terms: pass 1 analyzes `config.chunk_size` texts at a time (in `config.num_threads`
    processes) and spills each chunk's (term id, term frequency) pairs to disk while counting document
    frequencies; pass 2 scores each chunk and writes it straight into memory-mapped CSC arrays. Memory
    is the vocabulary plus one chunk, not the corpus. `stats`, when given, receives the analysis and
    index seconds and the vocabulary and postings counts."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    spill = out_dir / ".chunks"
    spill.mkdir()
    vocab: dict[str, int] = {}
    doc_freq = np.zeros(0, dtype=np.int64)
    lengths: list[np.ndarray] = []
    n_chunks = 0
    chunks = analyze_in_chunks(
        analyzer, texts, config.chunk_size, config.num_threads, progress=True, total=total
    )
    for chunk in chunks:
        lookup = vocab.setdefault
        remap = np.fromiter(
            (lookup(t, len(vocab)) for t in chunk.terms), dtype=np.int64, count=len(chunk.terms)
        )
        term_ids = remap[chunk.ids]
        doc_lengths = np.diff(chunk.offsets)
        local_doc = np.repeat(np.arange(len(chunk), dtype=np.int64), doc_lengths)
        # one entry per (passage, term) with its count, passage-major, as bm25s's Counter per passage
        pairs, tf = np.unique((local_doc << 32) | term_ids, return_counts=True)
        terms = (pairs & 0xFFFFFFFF).astype(np.int32)
        per_doc = np.bincount(pairs >> 32, minlength=len(chunk)).astype(np.int32)
        np.save(spill / f"{n_chunks}.terms.npy", terms)
        np.save(spill / f"{n_chunks}.tf.npy", tf.astype(np.int32))
        np.save(spill / f"{n_chunks}.per_doc.npy", per_doc)
        if len(doc_freq) < len(vocab):
            doc_freq = np.concatenate([doc_freq, np.zeros(len(vocab) - len(doc_freq), dtype=np.int64)])
        doc_freq += np.bincount(terms, minlength=len(vocab))
        lengths.append(doc_lengths)
        n_chunks += 1
    analyzed = time.perf_counter()
    doc_lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    n_docs, n_vocab = len(doc_lengths), len(vocab)
    avg_doc_len = doc_lengths.mean()  # as bm25s: a float64 mean of the integer lengths

    model = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
    idf_fn, tfc_fn = _select_idf_scorer(model.idf_method), _select_tfc_scorer(model.method)
    # bm25s computes each idf with math.log and stores it as float32; the same here, term by term.
    idf64 = np.fromiter(
        (idf_fn(int(df), N=n_docs) for df in doc_freq.tolist()), dtype=np.float64, count=n_vocab
    )
    idf = idf64.astype(model.dtype)
    nonoccurrence = None
    if model.method in model.methods_requiring_nonoccurrence:
        tfc0 = tfc_fn(
            tf_array=0, l_d=avg_doc_len, l_avg=avg_doc_len, k1=model.k1, b=model.b, delta=model.delta
        )
        nonoccurrence = (idf64 * tfc0).astype(model.dtype)

    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(doc_freq, out=indptr[1:])
    nnz = int(indptr[-1])
    data = np.lib.format.open_memmap(
        out_dir / "data.csc.index.npy", mode="w+", dtype=model.dtype, shape=(nnz,)
    )
    rows = np.lib.format.open_memmap(
        out_dir / "indices.csc.index.npy", mode="w+", dtype=model.int_dtype, shape=(nnz,)
    )
    filled = np.zeros(n_vocab, dtype=np.int64)
    first_doc = 0
    for n in range(n_chunks):
        terms = np.load(spill / f"{n}.terms.npy")
        tf = np.load(spill / f"{n}.tf.npy").astype(model.dtype)
        per_doc = np.load(spill / f"{n}.per_doc.npy")
        docs = np.repeat(np.arange(first_doc, first_doc + len(per_doc), dtype=np.int64), per_doc)
        first_doc += len(per_doc)
        # the very expression bm25s evaluates per passage (float32 tf, integer length, float64 mean)
        tfc = tfc_fn(
            tf_array=tf, l_d=doc_lengths[docs], l_avg=avg_doc_len, k1=model.k1, b=model.b, delta=model.delta
        )
        scores = idf[terms] * tfc
        if nonoccurrence is not None:
            scores -= nonoccurrence[terms]
        # CSC order: by term, then by passage (stable sort keeps the passage order within a term)
        order = np.argsort(terms, kind="stable")
        sorted_terms = terms[order]
        counts = np.bincount(sorted_terms, minlength=n_vocab)
        group_start = np.cumsum(counts) - counts
        rank = np.arange(len(order), dtype=np.int64) - group_start[sorted_terms]
        positions = indptr[sorted_terms] + filled[sorted_terms] + rank
        data[positions] = scores[order]
        rows[positions] = docs[order]
        filled += counts
    data.flush()
    rows.flush()
    del data, rows
    shutil.rmtree(spill)
    np.save(out_dir / "indptr.csc.index.npy", indptr)
    if nonoccurrence is not None:
        np.save(out_dir / "nonoccurrence_array.index.npy", nonoccurrence)
    if "" not in vocab:  # bm25s's pseudo-term for empty queries, past the last real term
        vocab[""] = n_vocab
    (out_dir / "vocab.index.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    params = {
        "k1": model.k1,
        "b": model.b,
        "delta": model.delta,
        "method": model.method,
        "idf_method": model.idf_method,
        "dtype": model.dtype,
        "int_dtype": model.int_dtype,
        "num_docs": n_docs,
        "version": bm25s.__version__,
        "backend": model.backend,
    }
    (out_dir / "params.index.json").write_text(json.dumps(params, indent=4), encoding="utf-8")
    if stats is not None:
        stats.update(
            analysis_s=analyzed - started, index_s=time.perf_counter() - analyzed, vocab=n_vocab, postings=nnz
        )
    logger.info(
        "BM25 over %d passages: analysis %.1fs, indexing %.1fs, %d terms, %d postings",
        n_docs,
        analyzed - started,
        time.perf_counter() - analyzed,
        n_vocab,
        nnz,
    )
    return bm25s.BM25.load(str(out_dir), load_corpus=False, mmap=True, show_progress=False)
