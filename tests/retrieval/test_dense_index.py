"""odqa.retrieval.dense's FAISS file handling: indexes load memory-mapped, damage is one line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import faiss
import numpy as np
import pytest

from odqa.errors import InputError
from odqa.retrieval.dense import build_faiss_index, read_faiss_index
from odqa.retrieval.dense_encoder import DenseConfig

_RSS_AFTER_READ = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from odqa.retrieval.dense import read_faiss_index

    def rss_mb():
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("VmRSS:")).split()[1]) / 1024

    before = rss_mb()
    index = read_faiss_index(__import__("pathlib").Path(sys.argv[1]))
    grown = rss_mb() - before
    _, found = index.search(np.load(sys.argv[2]), 1)
    print(json.dumps({"grown_mb": grown, "found": found[:, 0].tolist()}))
    """
)


def test_flat_index_is_read_memory_mapped(tmp_path):
    """A 100 MB flat index adds far less than its size to the reading process (the vectors stay in the
    page cache) and searches as the index that was written."""
    dim, n = 128, 200_000
    vectors = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    faiss.write_index(index, str(tmp_path / "index.faiss"))
    queries = vectors[:5] * 10
    np.save(tmp_path / "queries.npy", queries)
    done = subprocess.run(
        [sys.executable, "-c", _RSS_AFTER_READ, str(tmp_path / "index.faiss"), str(tmp_path / "queries.npy")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["found"] == index.search(queries, 1)[1][:, 0].tolist()
    size_mb = (tmp_path / "index.faiss").stat().st_size / 2**20
    assert measured["grown_mb"] < 0.2 * size_mb, (measured, size_mb)


def test_hnsw_index_reads_back_and_searches_the_same(tmp_path):
    vectors = np.random.default_rng(1).standard_normal((2_000, 32)).astype(np.float32)
    index = faiss.IndexHNSWFlat(32, 8, faiss.METRIC_INNER_PRODUCT)
    index.add(vectors)
    faiss.write_index(index, str(tmp_path / "index.faiss"))
    loaded = read_faiss_index(tmp_path / "index.faiss")
    assert loaded.ntotal == 2_000
    assert np.array_equal(loaded.search(vectors[:20], 5)[1], index.search(vectors[:20], 5)[1])


def test_damaged_faiss_file_is_one_input_error_line(tmp_path):
    path = tmp_path / "index.faiss"
    path.write_bytes(b"not a faiss index at all")
    with pytest.raises(InputError, match="damaged FAISS index") as caught:
        read_faiss_index(path)
    assert "\n" not in str(caught.value)


def _clustered(n: int, dim: int, seed: int = 3) -> np.ndarray:
    """Unit vectors around 50 centres: the structure real passage embeddings have, which IVF relies on."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim))
    vectors = centres[rng.integers(0, 50, n)] + 0.3 * rng.standard_normal((n, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def test_ivfpq_index_is_compressed_finds_what_flat_finds_and_keeps_nprobe(tmp_path):
    vectors = _clustered(20_000, 64)
    queries = vectors[:200] + 0.05 * np.random.default_rng(4).standard_normal((200, 64)).astype(np.float32)
    flat = build_faiss_index(vectors, DenseConfig(train_qa="q.jsonl", index_type="flat"))
    config = DenseConfig(train_qa="q.jsonl", index_type="ivfpq", pq_m=16, ivf_nprobe=8)
    ivfpq = build_faiss_index(vectors, config)
    for index, name in ((flat, "flat.faiss"), (ivfpq, "ivfpq.faiss")):
        faiss.write_index(index, str(tmp_path / name))
    # 16 bytes per vector (+ ids and centroids) against 256 for flat
    assert (tmp_path / "ivfpq.faiss").stat().st_size < 0.25 * (tmp_path / "flat.faiss").stat().st_size
    loaded = read_faiss_index(tmp_path / "ivfpq.faiss")
    assert loaded.ntotal == 20_000 and faiss.extract_index_ivf(loaded).nprobe == 8
    exact = flat.search(queries, 1)[1][:, 0]
    found = loaded.search(queries, 10)[1]
    recall_at_10 = float(np.mean([e in row for e, row in zip(exact, found, strict=True)]))
    assert recall_at_10 >= 0.9, recall_at_10


def test_ivfpq_on_a_tiny_corpus_builds_with_fewer_lists_and_bits():
    vectors = _clustered(100, 32)
    index = build_faiss_index(vectors, DenseConfig(train_qa="q.jsonl", index_type="ivfpq", pq_m=8))
    assert index.ntotal == 100 and index.nlist <= 100 // 39 and index.pq.nbits <= 1
    assert index.search(vectors[:5], 3)[1].shape == (5, 3)


def test_ivfpq_refuses_a_pq_m_that_does_not_divide_the_dimension():
    with pytest.raises(InputError, match="pq_m 5 does not divide the vector dimension 32"):
        build_faiss_index(_clustered(1_000, 32), DenseConfig(train_qa="q.jsonl", index_type="ivfpq", pq_m=5))
