"""Shared by the local-DAG tests: the smallest reader that trains in seconds."""

from __future__ import annotations

import pytest


@pytest.fixture
def tiny_reader() -> dict:
    """One reader_configs item: a 1-layer BERT of hidden size 32 on 128-token windows, one thread."""
    return {
        "hidden_size": 32,
        "num_layers": 1,
        "num_heads": 2,
        "vocab_size": 500,
        "max_length": 128,
        "doc_stride": 32,
        "num_threads": 1,
    }
