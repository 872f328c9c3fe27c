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
from odqa.retrieval.dense import read_faiss_index

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
