"""retrieved.jsonl, what the retrieve stage writes and predict, evaluate and eval-retrieval read: one
reader for all of them, so the three agree on what a valid file is."""

from __future__ import annotations

import os

from odqa.errors import InputError
from odqa.io import iter_jsonl
from odqa.schema import RetrievalResult


def load_retrieved(path: str | os.PathLike) -> list[RetrievalResult]:
    """Every line as a RetrievalResult; a malformed line is an InputError naming it. Hits written
    before 0.2 say `doc_id` instead of `document_id`; both are read."""
    results = []
    for n, record in enumerate(iter_jsonl(path), start=1):
        try:
            if not isinstance(record.get("passages", []), list):
                raise TypeError("'passages' must be a list")
            results.append(RetrievalResult.from_dict(record))
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise InputError(
                f"not a retrieval result ({type(e).__name__}: {e})", path=path, record=f"line {n}"
            ) from None
    return results
