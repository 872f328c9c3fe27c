"""Preprocess stage: clean wiki documents, drop empty and duplicate ones, split them into passages.

Cleaning is conservative (it only removes markup, never words) because predicted answers are cut
from passage text and must still match the gold strings. Duplicates are remembered in
doc_aliases.json so a question whose gold document was dropped still counts its twin as gold.
"""

from __future__ import annotations

import functools
import hashlib
import html
import itertools
import json
import logging
import multiprocessing
import os
import re
import statistics
import unicodedata
from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from datasketch import MinHash, MinHashLSH
from pydantic import Field, model_validator

from odqa.config import StageConfig
from odqa.data.documents import iter_documents
from odqa.errors import InputError
from odqa.io import atomic_dir, check_output_dir, write_json
from odqa.progress import progress_bar
from odqa.schema import DOC_ALIASES_FILE, PASSAGES_FILE, PREPROCESS_REPORT_FILE, Document, Passage
from odqa.text.analyzers import resolve_num_threads

logger = logging.getLogger(__name__)

PASSAGES_KIND = "passages"  # the output kind of the folder preprocess writes (odqa.io.atomic_dir)


class PreprocessConfig(StageConfig):
    runtime_fields = frozenset({"num_threads", "chunk_size"})
    # 1000 keeps 96% of KorQuAD paragraphs whole (median 458 chars, p95 944, max 2946).
    max_chars: int = Field(1000, ge=50, description="longest passage, in characters")
    overlap_chars: int = Field(
        100, ge=0, description="characters consecutive passages of a document share (< max_chars / 2)"
    )
    min_chars: int = Field(20, description="documents shorter than this after cleaning are dropped")
    clean: bool = Field(True, description="remove wiki/HTML markup and normalise whitespace")
    near_duplicate_threshold: float | None = Field(
        0.9,
        gt=0,
        le=1,
        description="MinHash Jaccard over character shingles above which documents are "
        "near duplicates; none: exact duplicates only",
    )
    num_perm: int = Field(128, ge=1, description="MinHash permutations")
    shingle_chars: int = Field(5, ge=1, description="characters per shingle for near-duplicate detection")
    seed: int = Field(1, description="MinHash seed")
    num_threads: int = Field(
        0, ge=0, description="processes that clean, hash and split documents (0: every available core)"
    )
    chunk_size: int = Field(1024, ge=1, description="documents per task handed to a process")

    @model_validator(mode="after")
    def _overlap_fits(self) -> PreprocessConfig:
        if self.overlap_chars >= self.max_chars // 2:
            raise ValueError(
                f"overlap_chars ({self.overlap_chars}) must be less than half of max_chars ({self.max_chars})"
            )
        return self


@dataclass
class PreprocessResult:
    passages_path: Path
    doc_aliases_path: Path
    report: dict = field(default_factory=dict)


# ---------------------------------------------------------------- cleaning

_LITERAL_NEWLINE = re.compile(r"(?:\\+n)+")  # the two characters backslash + n, as escaped dumps leave them
_REF = re.compile(r"<ref\b[^>/]*/>|<ref\b[^>]*>.*?</ref\s*>", re.IGNORECASE | re.DOTALL)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# Only real HTML/wiki tag names, so text such as "x<y and y>z" or "<히든 싱어>" survives.
_TAG_NAMES = (
    "a|abbr|b|big|blockquote|br|caption|center|cite|code|dd|del|div|dl|dt|em|font|gallery|hr|i|img|"
    "includeonly|ins|kbd|li|math|noinclude|nowiki|ol|onlyinclude|p|poem|pre|references|rp|rt|ruby|s|"
    "section|small|source|span|strike|strong|sub|sup|syntaxhighlight|table|tbody|td|th|thead|timeline|"
    "tr|tt|u|ul|var|wbr"
)
_HTML_TAG = re.compile(rf"</?(?:{_TAG_NAMES})(?:\s[^<>]*)?/?>", re.IGNORECASE)
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_LINK = re.compile(r"\[\[(?:[^\[\]]*\|)?([^\[\]|]*)\]\]")  # [[target|label]] -> label
_EMPHASIS = re.compile(r"'{2,}")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_NEWLINES = re.compile(r"\s*\n\s*")


def clean_text(text: str) -> str:
    """Remove wiki/HTML markup remnants and normalise whitespace and Unicode (NFC)."""
    text = unicodedata.normalize("NFC", text)
    text = _LITERAL_NEWLINE.sub("\n", text)
    text = _HTML_COMMENT.sub(" ", text)
    text = _REF.sub("", text)
    text = _HTML_TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    for _ in range(3):  # templates nest a little: strip innermost first
        text, n = _TEMPLATE.subn("", text)
        if not n:
            break
    text = _LINK.sub(r"\1", text)
    text = _EMPHASIS.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _NEWLINES.sub("\n", text)
    return text.strip()


# ---------------------------------------------------------------- splitting

_SENTENCE_END = re.compile(r"[.!?。](?=\s)|\n")


def split_passages(text: str, max_chars: int, overlap_chars: int) -> list[tuple[int, int]]:
    """(start, end) spans covering `text`, each at most max_chars, consecutive ones sharing about
    overlap_chars. Cuts prefer a sentence end in the last half of the window, else a space."""
    spans: list[tuple[int, int]] = []
    n = len(text)
    start = _skip_space(text, 0)
    while start < n:
        if n - start <= max_chars:
            end = n
        else:
            end = _cut_point(text, start, start + max_chars)
        stripped_end = end
        while stripped_end > start and text[stripped_end - 1].isspace():
            stripped_end -= 1
        spans.append((start, stripped_end))
        if end >= n:
            break
        next_start = _word_start_at_or_after(text, max(start + 1, end - overlap_chars), end)
        start = _skip_space(text, next_start)
    return spans


def _cut_point(text: str, start: int, limit: int) -> int:
    window_from = start + (limit - start) // 2
    best = None
    for m in _SENTENCE_END.finditer(text, window_from, limit):
        best = m.end()
    if best is None:
        space = text.rfind(" ", window_from, limit)
        best = space + 1 if space != -1 else limit  # no space at all: hard cut
    return best


def _word_start_at_or_after(text: str, pos: int, end: int) -> int:
    """First position >= pos (and < end) that starts a word, so an overlap never begins mid-word."""
    if pos == 0 or text[pos - 1].isspace():
        return pos
    space = text.find(" ", pos, end)
    nl = text.find("\n", pos, end)
    candidates = [c for c in (space, nl) if c != -1]
    return min(candidates) + 1 if candidates else end


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


# ---------------------------------------------------------------- duplicates


def _shingles(text: str, k: int) -> set[bytes]:
    compact = " ".join(text.split())
    if len(compact) <= k:
        return {compact.encode("utf-8")}
    return {compact[i : i + k].encode("utf-8") for i in range(len(compact) - k + 1)}


MINHASH_SCHEME = "affine32"  # datasketch 2.0's default, named because shared permutations require it


def _digest(text: str) -> bytes:
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).digest()


@functools.lru_cache(maxsize=4)
def _permutations(num_perm: int, seed: int):
    """MinHash's random permutations, drawn once per setting instead of once per document."""
    return MinHash(num_perm=num_perm, seed=seed).permutations


def _minhash(config: PreprocessConfig, hashvalues: np.ndarray | None = None) -> MinHash:
    return MinHash(
        num_perm=config.num_perm,
        seed=config.seed,
        hashvalues=hashvalues,
        permutations=_permutations(config.num_perm, config.seed),
        scheme=MINHASH_SCHEME,
    )


def _signature(text: str, config: PreprocessConfig) -> np.ndarray:
    signature = _minhash(config)
    signature.update_batch(list(_shingles(text, config.shingle_chars)))
    return signature.hashvalues


class Deduplicator:
    """Exact (hash of the whitespace-normalised text) and near (MinHash LSH) duplicates, one document at
    a time in input order: the first document of a group is kept and later ones point at it.

    Only the LSH index, one 16-byte hash and one compact signature (num_perm uint32) per kept document
    are held, never the texts: about 0.6 KB a document at the default 128 permutations."""

    def __init__(self, config: PreprocessConfig):
        self.config = config
        self.threshold = config.near_duplicate_threshold
        self.by_hash: dict[bytes, str] = {}
        self.lsh = MinHashLSH(threshold=self.threshold, num_perm=config.num_perm) if self.threshold else None
        self.signatures = np.zeros((0, config.num_perm), dtype=np.uint32)
        self.kept_ids: list[str] = []

    def check(
        self, document_id: str, digest: bytes, hashvalues: np.ndarray | None
    ) -> tuple[str | None, bool]:
        """(document_id of the kept document this one duplicates, or None; whether it is an exact copy).
        `hashvalues` is the MinHash signature (needed when near duplicates are looked for)."""
        digest = digest[:16]
        if digest in self.by_hash:
            return self.by_hash[digest], True
        self.by_hash[digest] = document_id
        if self.lsh is None:
            return None, False
        signature = _minhash(self.config, hashvalues)
        candidates = sorted(self.lsh.query(signature))  # row numbers: earliest kept document first on ties
        if candidates:
            similarity = (
                np.count_nonzero(self.signatures[candidates] == hashvalues, axis=1) / self.config.num_perm
            )
            best = int(np.argmax(similarity))
            if similarity[best] >= self.threshold:
                kept = self.kept_ids[candidates[best]]
                self.by_hash[digest] = kept  # a later exact copy points at the kept document too
                return kept, False
        row = len(self.kept_ids)
        if row == len(self.signatures):  # grow by half: amortised appends without a list of arrays
            grown = np.zeros((max(1024, row + row // 2), self.config.num_perm), dtype=np.uint32)
            grown[:row] = self.signatures
            self.signatures = grown
        self.signatures[row] = hashvalues
        self.kept_ids.append(document_id)
        self.lsh.insert(row, signature, check_duplication=False)
        return None, False


def find_duplicates(documents: Iterable[Document], config: PreprocessConfig) -> tuple[dict[str, str], int]:
    """({dropped document_id: kept document_id}, how many of them are exact copies); the first document of a
    group (input order) is kept, and aliases always point at a kept document."""
    dedup = Deduplicator(config)
    aliases: dict[str, str] = {}
    exact = 0
    for doc in documents:
        signature = _signature(doc.text, config) if dedup.lsh is not None else None
        kept, is_exact = dedup.check(doc.document_id, _digest(doc.text), signature)
        if kept is not None:
            aliases[doc.document_id] = kept
            exact += is_exact
    return aliases, exact


# ---------------------------------------------------------------- stage


@dataclass
class _Prepared:
    """One document after the per-document work that runs in worker processes."""

    document: Document  # cleaned
    status: str  # "ok", "empty" or "short"
    digest: bytes = b""
    signature: np.ndarray | None = None
    spans: list[tuple[int, int]] = field(default_factory=list)


def _prepare(doc: Document, config: PreprocessConfig) -> _Prepared:
    """Clean, and for a document that is kept: hash, MinHash signature and passage spans."""
    text = clean_text(doc.text) if config.clean else doc.text
    title = " ".join(unicodedata.normalize("NFC", doc.title).split()) if config.clean else doc.title
    cleaned = Document(doc.document_id, title, text, doc.meta)
    if not text.strip():
        return _Prepared(cleaned, "empty")
    if len(text) < config.min_chars:
        return _Prepared(cleaned, "short")
    signature = _signature(text, config) if config.near_duplicate_threshold is not None else None
    return _Prepared(
        cleaned, "ok", _digest(text), signature, split_passages(text, config.max_chars, config.overlap_chars)
    )


def _prepare_chunk(config: dict[str, Any], documents: list[Document]) -> list[_Prepared]:
    settings = PreprocessConfig.from_dict(config)
    return [_prepare(d, settings) for d in documents]


def _prepared(documents: Iterable[Document], config: PreprocessConfig) -> Iterator[_Prepared]:
    """_prepare over the documents in input order, `config.chunk_size` documents per task across
    `config.num_threads` processes (in-process for one thread or a single chunk); at most two chunks
    per process are in flight, so memory holds a few chunks, not the corpus."""
    chunks = _chunked(documents, config.chunk_size)
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None)
    workers = resolve_num_threads(config.num_threads)
    if second is None or workers == 1:
        for chunk in itertools.chain([first], [second] if second is not None else [], chunks):
            yield from (_prepare(d, config) for d in chunk)
        return
    settings = config.to_dict()
    # spawn, not fork: the parent may hold threads (Kiwi, torch, OpenMP) that fork would copy mid-state.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque[Future] = deque()
        for chunk in itertools.chain([first, second], chunks):
            pending.append(pool.submit(_prepare_chunk, settings, chunk))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def _chunked(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def preprocess(
    config: PreprocessConfig,
    documents_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    force: bool = False,
) -> PreprocessResult:
    """Clean, deduplicate and split documents into out_dir (a new folder or an earlier passages output;
    `force` replaces any other folder).

    Streaming: documents are read one at a time (odqa.data.documents.iter_documents), cleaned, hashed and
    split in worker processes, checked for duplicates in input order, and their passages written as they
    come; memory holds the duplicate index and a few chunks, not the corpus."""
    out_dir = check_output_dir(out_dir, PASSAGES_KIND, force)
    documents = iter_documents(documents_path)
    dedup = Deduplicator(config)
    aliases: dict[str, str] = {}
    documents_in = empty = short = exact_duplicates = split_docs = passages = 0
    doc_lengths = array("l")
    passage_lengths = array("l")
    with atomic_dir(out_dir, kind=PASSAGES_KIND, force=force) as tmp:
        with open(tmp / PASSAGES_FILE, "w", encoding="utf-8") as out:
            bar = progress_bar(desc="preprocess", unit="doc")
            for item in _prepared(documents, config):
                bar.update()
                documents_in += 1
                if item.status != "ok":
                    empty += item.status == "empty"
                    short += item.status == "short"
                    continue
                doc = item.document
                kept, is_exact = dedup.check(doc.document_id, item.digest, item.signature)
                if kept is not None:
                    aliases[doc.document_id] = kept
                    exact_duplicates += is_exact
                    continue
                doc_lengths.append(len(doc.text))
                split_docs += len(item.spans) > 1
                for n, (start, end) in enumerate(item.spans):
                    passage = Passage(
                        f"{doc.document_id}-{n}", doc.document_id, doc.title, doc.text[start:end], start
                    )
                    out.write(json.dumps(passage.to_dict(), ensure_ascii=False))
                    out.write("\n")
                    passage_lengths.append(end - start)
                    passages += 1
            bar.close()
        if documents_in == 0:
            raise InputError("no documents found", path=documents_path)
        if not doc_lengths and not aliases:
            raise InputError("no document left after dropping empty and short ones", path=documents_path)
        report = {
            "config": config.to_dict(),
            "source": str(documents_path),
            "documents_in": documents_in,
            "dropped_empty": empty,
            "dropped_short": short,
            "dropped_duplicates": len(aliases),
            "dropped_exact_duplicates": exact_duplicates,
            "documents_kept": len(doc_lengths),
            "documents_split": split_docs,
            "passages": passages,
            "document_chars": _summary(doc_lengths),
            "passage_chars": _summary(passage_lengths),
        }
        write_json(tmp / DOC_ALIASES_FILE, aliases)
        write_json(tmp / PREPROCESS_REPORT_FILE, report)
    logger.info(
        "preprocess: %d documents in, %d kept (%d empty, %d short, %d duplicates dropped), %d passages",
        documents_in,
        len(doc_lengths),
        empty,
        short,
        len(aliases),
        passages,
    )
    return PreprocessResult(out_dir / PASSAGES_FILE, out_dir / DOC_ALIASES_FILE, report)


def _summary(values: Sequence[int]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "median": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "max": ordered[-1],
        "mean": round(statistics.fmean(ordered), 1),
    }
