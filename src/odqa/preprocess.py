"""Preprocess stage: clean wiki documents, drop empty and duplicate ones, split them into passages.

Cleaning is conservative (it only removes markup, never words) because predicted answers are cut
from passage text and must still match the gold strings. Duplicates are remembered in
doc_aliases.json so a question whose gold document was dropped still counts its twin as gold.
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
import re
import statistics
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from datasketch import MinHash, MinHashLSH
from pydantic import Field, model_validator

from odqa.config import StageConfig
from odqa.data.documents import load_documents
from odqa.errors import InputError
from odqa.io import atomic_dir, check_output_dir, write_json, write_jsonl
from odqa.progress import progress_bar
from odqa.schema import DOC_ALIASES_FILE, PASSAGES_FILE, PREPROCESS_REPORT_FILE, Document, Passage

logger = logging.getLogger(__name__)

PASSAGES_KIND = "passages"  # the output kind of the folder preprocess writes (odqa.io.atomic_dir)


class PreprocessConfig(StageConfig):
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


def find_duplicates(documents: list[Document], config: PreprocessConfig) -> tuple[dict[str, str], int]:
    """({dropped document_id: kept document_id}, how many of them are exact copies); the first document of a
    group (input order) is kept, and aliases always point at a kept document."""
    aliases: dict[str, str] = {}
    exact = 0
    by_hash: dict[str, str] = {}
    lsh = None
    if config.near_duplicate_threshold is not None:
        lsh = MinHashLSH(threshold=config.near_duplicate_threshold, num_perm=config.num_perm)
    signatures: dict[str, MinHash] = {}
    for doc in progress_bar(documents, desc="dedup", unit="doc", disable=len(documents) < 2000):
        digest = hashlib.sha1(" ".join(doc.text.split()).encode("utf-8")).hexdigest()
        if digest in by_hash:
            aliases[doc.document_id] = by_hash[digest]
            exact += 1
            continue
        by_hash[digest] = doc.document_id
        if lsh is None:
            continue
        signature = MinHash(num_perm=config.num_perm, seed=config.seed)
        signature.update_batch(list(_shingles(doc.text, config.shingle_chars)))
        candidates = [
            c
            for c in lsh.query(signature)
            if signature.jaccard(signatures[c]) >= config.near_duplicate_threshold
        ]
        if candidates:
            aliases[doc.document_id] = max(candidates, key=lambda c: signature.jaccard(signatures[c]))
            continue
        lsh.insert(doc.document_id, signature)
        signatures[doc.document_id] = signature
    return aliases, exact


# ---------------------------------------------------------------- stage


def preprocess(
    config: PreprocessConfig,
    documents_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    force: bool = False,
) -> PreprocessResult:
    """Clean, deduplicate and split documents into out_dir (a new folder or an earlier passages output;
    `force` replaces any other folder)."""
    out_dir = check_output_dir(out_dir, PASSAGES_KIND, force)
    documents = load_documents(documents_path)
    cleaned: list[Document] = []
    empty = short = 0
    for doc in progress_bar(documents, desc="clean", unit="doc", disable=len(documents) < 2000):
        text = clean_text(doc.text) if config.clean else doc.text
        title = " ".join(unicodedata.normalize("NFC", doc.title).split()) if config.clean else doc.title
        if not text.strip():
            empty += 1
            continue
        if len(text) < config.min_chars:
            short += 1
            continue
        cleaned.append(Document(doc.document_id, title, text, doc.meta))
    if not cleaned:
        raise InputError("no document left after dropping empty and short ones", path=documents_path)

    aliases, exact_duplicates = find_duplicates(cleaned, config)
    kept = [d for d in cleaned if d.document_id not in aliases]
    passages: list[Passage] = []
    for doc in kept:
        for n, (start, end) in enumerate(split_passages(doc.text, config.max_chars, config.overlap_chars)):
            passages.append(
                Passage(f"{doc.document_id}-{n}", doc.document_id, doc.title, doc.text[start:end], start)
            )

    lengths = [len(p.text) for p in passages]
    doc_lengths = [len(d.text) for d in kept]
    split_docs = len({p.document_id for p in passages if not p.passage_id.endswith("-0")})
    report = {
        "config": config.to_dict(),
        "source": str(documents_path),
        "documents_in": len(documents),
        "dropped_empty": empty,
        "dropped_short": short,
        "dropped_duplicates": len(aliases),
        "dropped_exact_duplicates": exact_duplicates,
        "documents_kept": len(kept),
        "documents_split": split_docs,
        "passages": len(passages),
        "document_chars": _summary(doc_lengths),
        "passage_chars": _summary(lengths),
    }
    with atomic_dir(out_dir, kind=PASSAGES_KIND, force=force) as tmp:
        write_jsonl(tmp / PASSAGES_FILE, (p.to_dict() for p in passages))
        write_json(tmp / DOC_ALIASES_FILE, aliases)
        write_json(tmp / PREPROCESS_REPORT_FILE, report)
    logger.info(
        "preprocess: %d documents in, %d kept (%d empty, %d short, %d duplicates dropped), %d passages",
        len(documents),
        len(kept),
        empty,
        short,
        len(aliases),
        len(passages),
    )
    return PreprocessResult(out_dir / PASSAGES_FILE, out_dir / DOC_ALIASES_FILE, report)


def _summary(values: list[int]) -> dict:
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
