"""Load a document collection: the competition's `wikipedia_documents.json` (a dict keyed "0".."N"),
a JSON list, JSONL, or a Hugging Face `datasets` folder (`save_to_disk`) with `text`, `title` and
optionally `document_id` columns. Empty texts are kept here; preprocess drops and counts them. Titles
and texts are NFC-normalised on load.

Every layout is read streaming (`iter_documents`): a whole-JSON file goes through ijson, so all of
Korean Wikipedia (a 1.5 GB `wikipedia_documents.json`) never sits in memory at once.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import ijson

from odqa.errors import InputError
from odqa.io import iter_jsonl, require_file, write_jsonl
from odqa.schema import Document

_CORE_FIELDS = ("document_id", "doc_id", "title", "text")
_BOM = b"\xef\xbb\xbf"


def iter_documents(path: str | os.PathLike) -> Iterator[Document]:
    """Documents one at a time, in file order. document_id is the record's `document_id` (or `doc_id`),
    else its key (dict) or position (list, JSONL, dataset row). A bad record raises InputError naming
    the file and the record when the iteration reaches it."""
    path = Path(path)
    if path.is_dir():
        items: Iterable[tuple[str, Any]] = _dataset_items(path)
    elif require_file(path).suffix == ".jsonl":
        items = ((str(i), rec) for i, rec in enumerate(iter_jsonl(path)))
    else:
        items = _json_items(path)
    return _iter_documents(items, path)


def load_documents(path: str | os.PathLike) -> list[Document]:
    """All documents of `path` (see iter_documents); an empty collection is an InputError."""
    documents = list(iter_documents(path))
    if not documents:
        raise InputError("no documents found", path=path)
    return documents


def write_documents(path: str | os.PathLike, documents: Iterable[Document]) -> int:
    """Write documents as JSONL in the same record shape load_documents reads back."""
    return write_jsonl(
        path, ({"document_id": d.document_id, "title": d.title, "text": d.text, **d.meta} for d in documents)
    )


def _json_items(path: Path) -> Iterator[tuple[str, Any]]:
    """(key, record) pairs of a whole-JSON dict or list, parsed streaming."""
    with open(path, "rb") as f:
        head = f.read(len(_BOM))
        if head != _BOM:
            f.seek(0)
        first = _first_byte(f)
        if first == b"{":
            pairs: Iterator[tuple[str, Any]] = ijson.kvitems(f, "", use_float=True)
        elif first == b"[":
            pairs = ((str(i), v) for i, v in enumerate(ijson.items(f, "item", use_float=True)))
        else:
            raise InputError("expected a JSON object keyed by id or a JSON list of documents", path=path)
        last = None
        try:
            for key, value in pairs:
                last = key
                yield key, value
        except ijson.JSONError as e:
            where = f" after record {last}" if last is not None else ""
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"malformed JSON{where}: {detail}", path=path) from None
        except UnicodeDecodeError:
            raise InputError("not UTF-8 text: re-encode the file as UTF-8", path=path) from None


def _first_byte(f) -> bytes:
    """The first non-space byte of a binary file; the file is left positioned at it."""
    while True:
        pos = f.tell()
        byte = f.read(1)
        if not byte or not byte.isspace():
            f.seek(pos)
            return byte


def _dataset_items(path: Path) -> Iterator[tuple[str, Any]]:
    """(row number, row) of a `datasets` folder: a Dataset, or a DatasetDict with exactly one split.
    Rows are read from the memory-mapped Arrow files one at a time."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise InputError(f"not a Hugging Face datasets folder ({e})", path=path) from None
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1:
            raise InputError(
                f"a DatasetDict with splits {sorted(loaded)}: a document collection must have exactly one",
                path=path,
            )
        loaded = next(iter(loaded.values()))
    missing = [c for c in ("text",) if c not in loaded.column_names]
    if missing:
        raise InputError(f"dataset has no column {missing[0]!r} (columns: {loaded.column_names})", path=path)
    for i, row in enumerate(loaded):
        yield str(i), row


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
