"""Load a document collection: the competition's `wikipedia_documents.json` (a dict keyed "0".."N"),
a JSON list, or JSONL. Empty texts are kept here; preprocess drops and counts them. Titles and texts
are NFC-normalised on load."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from odqa.errors import InputError
from odqa.io import iter_jsonl, read_json, write_jsonl
from odqa.schema import Document

_CORE_FIELDS = ("document_id", "doc_id", "title", "text")


def load_documents(path: str | os.PathLike) -> list[Document]:
    """document_id is the record's `document_id` (or `doc_id`), else its key (dict) or position (list)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        items: Iterable[tuple[str, Any]] = ((str(i), rec) for i, rec in enumerate(iter_jsonl(path)))
    else:
        data = read_json(path)
        if isinstance(data, dict):
            items = ((str(k), v) for k, v in data.items())
        elif isinstance(data, list):
            items = ((str(i), v) for i, v in enumerate(data))
        else:
            raise InputError("expected a JSON object keyed by id or a JSON list of documents", path=path)
    documents = list(_iter_documents(items, path))
    if not documents:
        raise InputError("no documents found", path=path)
    return documents


def write_documents(path: str | os.PathLike, documents: Iterable[Document]) -> int:
    """Write documents as JSONL in the same record shape load_documents reads back."""
    return write_jsonl(
        path, ({"document_id": d.document_id, "title": d.title, "text": d.text, **d.meta} for d in documents)
    )


def _iter_documents(items: Iterable[tuple[str, Any]], path: Path) -> Iterator[Document]:
    seen: set[str] = set()
    for key, rec in items:
        if not isinstance(rec, dict):
            raise InputError("document is not a JSON object", path=path, record=key)
        document_id = rec.get("document_id", rec.get("doc_id", key))
        if document_id is None or isinstance(document_id, (dict, list)):
            raise InputError("document_id must be a string or integer", path=path, record=key)
        document_id = str(document_id)
        if "text" not in rec:
            raise InputError("missing field 'text'", path=path, record=document_id)
        text = rec["text"] if rec["text"] is not None else ""
        title = rec.get("title") or ""
        if not isinstance(text, str) or not isinstance(title, str):
            raise InputError("'text' and 'title' must be strings", path=path, record=document_id)
        if document_id in seen:
            raise InputError(f"duplicate document id {document_id!r}", path=path, record=document_id)
        seen.add(document_id)
        meta = {k: v for k, v in rec.items() if k not in _CORE_FIELDS}
        # NFC once, here: NFD would split Hangul into jamo that match nothing the questions hold.
        yield Document(
            document_id=document_id,
            title=unicodedata.normalize("NFC", title),
            text=unicodedata.normalize("NFC", text),
            meta=meta,
        )
