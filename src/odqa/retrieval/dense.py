"""Dense passage retrieval, the index half: passages encoded by a trained DualEncoder
(odqa.retrieval.dense_encoder) into a FAISS inner-product index (flat or HNSW), searched per query.
From scratch on a few thousand questions the model is weak; bench/retrievers.py measures how weak.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch

from odqa.data import load_doc_aliases, load_passages, load_qa
from odqa.errors import InputError
from odqa.io import atomic_dir, write_json, write_jsonl
from odqa.retrieval.base import INDEX_KIND, load_retriever_config, saved_retriever_config
from odqa.retrieval.dense_encoder import (
    LOSS_PLOT_FILE,
    DenseConfig,
    DualEncoder,
    _plot_losses,
    inverse_cloze_examples,
    new_dual_encoder,
    passage_text,
    train_dual_encoder,
    training_examples,
)
from odqa.schema import DOC_ALIASES_FILE, FAISS_FILE, PASSAGES_FILE, RETRIEVER_CONFIG_FILE, Hit, Passage

log = logging.getLogger(__name__)

# Facts about a built index that retriever.json holds beside the settings.
INDEX_INFO_KEYS = ("num_passages", "dim", "training", "encoders_from")


IVF_TRAINING_SAMPLE = 256  # training vectors per inverted list, FAISS's advice being 30-256


def build_faiss_index(vectors: np.ndarray, config: DenseConfig) -> faiss.Index:
    dim = vectors.shape[1]
    if config.index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = config.hnsw_ef_search
    elif config.index_type == "ivfpq":
        index = _trained_ivfpq(vectors, config)
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    return index


def _trained_ivfpq(vectors: np.ndarray, config: DenseConfig) -> faiss.Index:
    """IVF-PQ: pq_m bytes per passage instead of 4 x dim, for corpora whose flat vectors outgrow RAM.
    Small corpora get fewer lists and shorter codes, since k-means needs more points than centroids."""
    n, dim = vectors.shape
    if dim % config.pq_m:
        raise InputError(f"pq_m {config.pq_m} does not divide the vector dimension {dim}")
    nlist = config.ivf_nlist or max(1, int(4 * math.sqrt(n)))
    nlist = max(1, min(nlist, n // 39))
    nbits = max(1, min(8, int(math.log2(max(2, n // 39)))))  # 39 points per centroid: FAISS's floor
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, nlist, config.pq_m, nbits, faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(config.seed).permutation(n)[: nlist * IVF_TRAINING_SAMPLE]
    index.train(np.ascontiguousarray(vectors[np.sort(sample)]))
    index.nprobe = min(config.ivf_nprobe, nlist)  # saved with the index
    return index


def read_faiss_index(path: Path) -> faiss.Index:
    """The index with its vectors memory-mapped (read-only): a flat index of a million 128-dim vectors
    is 0.5 GB that stays in the page cache instead of the process's memory, and several servers on one
    machine share it. Falls back to reading into memory where FAISS cannot map the index type."""
    mmap = getattr(faiss, "IO_FLAG_MMAP_IFC", None)
    if mmap is not None:
        try:
            return faiss.read_index(str(path), mmap | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            pass
    try:
        return faiss.read_index(str(path))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unreadable"
        raise InputError(f"damaged FAISS index: {first}", path=path) from None


def _doc_aliases_beside(passages_path: Path) -> dict[str, str]:
    """preprocess writes doc_aliases.json next to passages.jsonl; gold documents it dropped map through it."""
    path = passages_path.parent / DOC_ALIASES_FILE
    return load_doc_aliases(path if path.is_file() else None)


class DenseRetriever:
    config_class = DenseConfig

    def __init__(
        self, config: DenseConfig, encoder: DualEncoder, index: faiss.Index, passages: list[Passage]
    ):
        self.config = config
        self.encoder = encoder
        self.index = index
        self.passages = passages

    @classmethod
    def build(
        cls, config: DenseConfig, passages_path: str | Path, index_dir: str | Path, force: bool = False
    ) -> DenseRetriever:
        _set_threads(config.num_threads)
        torch.manual_seed(config.seed)
        passages_path = Path(passages_path)
        passages = load_passages(passages_path)
        info: dict[str, Any] = {"num_passages": len(passages)}
        losses: list[float] = []
        started = time.perf_counter()
        if config.init_from:
            source = cls.load(config.init_from)
            encoder = source.encoder
            # encoding settings travel with the encoders, so this index encodes queries as they were trained
            kept = ("encoder_model", "pooling", "max_question_tokens", "max_passage_tokens", "title_prefix")
            config = config.replace(**{name: getattr(source.config, name) for name in kept})
            info["encoders_from"] = str(config.init_from)
        else:
            examples = load_qa(config.train_qa).examples
            encoder = new_dual_encoder(config, passages, examples)
            data, stats = training_examples(config, examples, passages, _doc_aliases_beside(passages_path))
            if len(data) < 2:
                raise InputError(
                    f"only {len(data)} training question(s) have their gold document in the corpus",
                    path=config.train_qa,
                )
            log.info("dense training data: %s", stats)
            if config.ict_epochs:
                cloze = inverse_cloze_examples(passages, config)
                stats["inverse_cloze_queries"] = len(cloze)
                stats["inverse_cloze_losses"] = train_dual_encoder(
                    encoder, cloze, passages, config, epochs=config.ict_epochs, stage="inverse cloze"
                )
            losses = train_dual_encoder(encoder, data, passages, config)
            info["training"] = {
                **stats,
                "epoch_losses": losses,
                "seconds": round(time.perf_counter() - started, 1),
            }
        vectors = encoder.encode(
            [passage_text(p, config.title_prefix) for p in passages],
            "passage",
            config.encode_batch_size,
            progress=True,
        )
        index = build_faiss_index(vectors, config)
        info["dim"] = int(vectors.shape[1])
        with atomic_dir(index_dir, kind=INDEX_KIND, force=force) as tmp:
            encoder.save(tmp)
            faiss.write_index(index, str(tmp / FAISS_FILE))
            write_jsonl(tmp / PASSAGES_FILE, (p.to_dict() for p in passages))
            if losses:
                _plot_losses(losses, tmp / LOSS_PLOT_FILE)
            write_json(tmp / RETRIEVER_CONFIG_FILE, saved_retriever_config("dense", config, **info))
        return cls(config, encoder, index, passages)

    @classmethod
    def load(cls, index_dir: str | Path) -> DenseRetriever:
        index_dir = Path(index_dir)
        config, _ = load_retriever_config(index_dir, "dense", DenseConfig, INDEX_INFO_KEYS)
        _set_threads(config.num_threads)
        encoder = DualEncoder.load(index_dir, config)
        if not (index_dir / FAISS_FILE).is_file():
            raise InputError(f"dense index is missing {FAISS_FILE}", path=index_dir)
        index = read_faiss_index(index_dir / FAISS_FILE)
        passages = load_passages(index_dir / PASSAGES_FILE)
        if index.ntotal != len(passages):
            raise InputError(
                f"FAISS index holds {index.ntotal} vectors but {len(passages)} passages", path=index_dir
            )
        return cls(config, encoder, index, passages)

    def search(self, queries: list[str], top_k: int) -> list[list[Hit]]:
        if not queries:
            return []
        k = min(top_k, len(self.passages))
        vectors = self.encoder.encode(queries, "question", self.config.encode_batch_size)
        scores, indices = self.index.search(vectors, k)
        results = []
        for row_scores, row_indices in zip(scores, indices, strict=True):
            hits = []
            for score, i in zip(row_scores, row_indices, strict=True):
                if i < 0:  # HNSW may return fewer than k
                    continue
                p = self.passages[i]
                hits.append(Hit(p.passage_id, p.document_id, p.title, p.text, float(score)))
            results.append(hits)
        return results


def _set_threads(n: int) -> None:
    if n > 0:
        torch.set_num_threads(n)
        faiss.omp_set_num_threads(n)
