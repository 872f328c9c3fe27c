"""retrieved.jsonl, what the retrieve stage writes and predict, evaluate and eval-retrieval read: one
reader for all of them, so the three agree on what a valid file is."""

from __future__ import annotations

import os

from odqa.errors import InputError
from odqa.io import iter_jsonl
from odqa.schema import RetrievalResult


def load_retrieved(path: str | os.PathLike) -> list[RetrievalResult]:
    """Every line as a RetrievalResult; a malformed line is an InputError naming it. Hits written
    before 0.2 say `doc_id` instead of `document_id`; both are read. A line without a `passages` list
    (a QA file given by mistake) is an error, not a question with nothing retrieved."""
    results = []
    for n, record in enumerate(iter_jsonl(path), start=1):
        if "passages" not in record:
            hint = " (a QA file? odqa retrieve turns one into retrieved.jsonl)" if "context" in record else ""
            raise InputError(
                f"not a retrieval result: no 'passages' list{hint}", path=path, record=f"line {n}"
            )
        try:
            if not isinstance(record["passages"], list):
                raise TypeError("'passages' must be a list")
            results.append(RetrievalResult.from_dict(record))
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise InputError(
                f"not a retrieval result ({type(e).__name__}: {e})", path=path, record=f"line {n}"
            ) from None
    return results


def check_retrieved(path: str | os.PathLike, flag: str = "retrieved") -> list[RetrievalResult]:
    """load_retrieved, refusing a file in which no question has a passage (nothing to read: every
    answer would be empty)."""
    results = load_retrieved(path)
    if not results:
        raise InputError(f"no questions ({flag})", path=path)
    if not any(r.passages for r in results):
        raise InputError(
            f"none of the {len(results)} questions has a retrieved passage ({flag}): rebuild it with "
            "odqa retrieve",
            path=path,
        )
    return results
