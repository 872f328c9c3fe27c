"""passages.jsonl, the corpus every retriever indexes and every from-scratch reader learns its vocabulary
from, and doc_aliases.json beside it (both written by preprocess)."""

from __future__ import annotations

import os
from pathlib import Path

from odqa.errors import InputError
from odqa.io import iter_jsonl, read_json
from odqa.schema import Passage


def load_passages(path: str | Path) -> list[Passage]:
    """passages.jsonl as Passages; a record missing passage_id/document_id/text, a duplicate passage_id
    or an empty file is an InputError. Files written before 0.2 say `doc_id`; it is read too."""
    passages: list[Passage] = []
    seen: set[str] = set()
    for n, record in enumerate(iter_jsonl(path), start=1):
        missing = [k for k in ("passage_id", "text") if k not in record]
        if "document_id" not in record and "doc_id" not in record:
            missing.insert(1, "document_id")
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


def load_doc_aliases(path: str | os.PathLike | None) -> dict[str, str]:
    """doc_aliases.json ({dropped duplicate document_id: kept document_id}); None reads as no aliases."""
    if path is None:
        return {}
    aliases = read_json(path)
    if not isinstance(aliases, dict) or not all(isinstance(v, str | int) for v in aliases.values()):
        raise InputError(
            "doc aliases must be a JSON object {dropped document_id: kept document_id}", path=path
        )
    return {str(k): str(v) for k, v in aliases.items()}
