"""passages.jsonl, the corpus every retriever indexes and every from-scratch reader learns its vocabulary
from (written by preprocess)."""

from __future__ import annotations

from pathlib import Path

from odqa.errors import InputError
from odqa.io import iter_jsonl
from odqa.schema import Passage


def load_passages(path: str | Path) -> list[Passage]:
    """passages.jsonl as Passages; a record missing passage_id/doc_id/text, a duplicate passage_id or an
    empty file is an InputError."""
    passages: list[Passage] = []
    seen: set[str] = set()
    for n, record in enumerate(iter_jsonl(path), start=1):
        missing = [k for k in ("passage_id", "doc_id", "text") if k not in record]
        if missing:
            raise InputError(f"passage is missing {missing}", path=path, record=f"passage {n}")
        if not isinstance(record["text"], str):
            raise InputError("passage text must be a string", path=path, record=f"passage {n}")
        passage = Passage.from_dict(record)
        if passage.passage_id in seen:
            raise InputError(f"duplicate passage_id {passage.passage_id!r}", path=path, record=f"passage {n}")
        seen.add(passage.passage_id)
        passages.append(passage)
    if not passages:
        raise InputError("no passages to index", path=path)
    return passages
