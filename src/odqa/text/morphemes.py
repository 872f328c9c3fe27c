"""Kiwi morpheme boundaries as surface pieces, for learning a subword vocabulary that never joins a
word and its particle or ending ("세종대왕은" -> "세종대왕" + "은").

A WordPiece vocabulary learned from whole eojeol keeps frequent noun+particle pairs as one token, so
about a quarter of KorQuAD's answers cannot be a token span (docs/reader-recipe.md). Learned from the
pieces below, the vocabulary holds stems and particles but no stem+particle tokens, and WordPiece's
greedy longest match then stops at the morpheme boundary by itself: the saved tokenizer is a plain
BERT WordPiece tokenizer (no Kiwi at inference, offsets are the tokenizer's own).

Pieces are slices of the original text (Kiwi's `start`/`len`), never Kiwi's normalised forms
("하였다" is 하 + 였다 in the text, 하/었/다 in Kiwi's analysis).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator

from odqa.progress import progress_bar
from odqa.text.analyzers import get_kiwi

# Tag prefixes of the morphemes a piece boundary goes in front of: particles (J), endings (E),
# suffixes (XS), copulas (VC). Splitting only there keeps compound nouns and numbers + units whole
# ("1443년" stays one piece; answers rarely start or end inside them).
DEFAULT_SPLIT_TAGS: tuple[str, ...] = ("J", "E", "XS", "VC")
BATCH = 256  # texts per Kiwi call (its worker threads take a list)
# A served corpus's passages come back again and again: their piece ends are kept for this many texts
# (then forgotten at once: a dict, no LRU bookkeeping).
ENDS_CACHE_SIZE = 20_000
_ENDS: dict[str, frozenset[int]] = {}


def split_points(tokens, split_tags: tuple[str, ...] | None) -> list[int]:
    """Character positions where a new piece starts: before each morpheme whose tag starts with one of
    `split_tags` (None: before every morpheme), when that is not the first character."""
    return sorted(
        {t.start for t in tokens if t.start > 0 and (split_tags is None or t.tag.startswith(split_tags))}
    )


def pieces_of(text: str, points: list[int]) -> list[str]:
    """`text` split on whitespace and at `points`; the pieces are substrings of `text`, in order."""
    pieces: list[str] = []
    cuts = set(points)
    current: list[str] = []
    for i, ch in enumerate(text):
        if ch.isspace():
            if current:
                pieces.append("".join(current))
                current = []
            continue
        if i in cuts and current:
            pieces.append("".join(current))
            current = []
        current.append(ch)
    if current:
        pieces.append("".join(current))
    return pieces


def morpheme_pieces(
    texts: Iterable[str],
    split_tags: tuple[str, ...] | None = DEFAULT_SPLIT_TAGS,
    num_workers: int = -1,
    progress: bool = False,
) -> Iterator[list[str]]:
    """For each text, its surface pieces split at Kiwi morpheme boundaries (see `split_points`)."""
    kiwi = get_kiwi(num_workers)
    batch: list[str] = []

    def flush() -> Iterator[list[str]]:
        for text, tokens in zip(batch, kiwi.tokenize(batch), strict=True):
            yield pieces_of(text, split_points(tokens, split_tags))

    for text in progress_bar(texts, desc="kiwi pieces", unit="text", disable=not progress):
        batch.append(unicodedata.normalize("NFC", text))
        if len(batch) == BATCH:
            yield from flush()
            batch = []
    if batch:
        yield from flush()


def piece_ends(texts: list[str], num_workers: int = -1) -> list[frozenset[int]]:
    """For each text, the character positions inside a word where a piece of `morpheme_pieces` ends (in
    front of a particle, ending, suffix or copula): where a Korean answer ends without its word ending
    ("세종대왕|은"), unlike a subword boundary inside a name ("마쓰오|카"). One batched Kiwi call for the
    texts not seen before; offsets are the given text's own (no normalisation)."""
    todo = sorted({t for t in texts if t not in _ENDS})
    if todo:
        if len(_ENDS) + len(todo) > ENDS_CACHE_SIZE:
            _ENDS.clear()
        for text, tokens in zip(todo, get_kiwi(num_workers).tokenize(todo), strict=True):
            _ENDS[text] = frozenset(split_points(tokens, DEFAULT_SPLIT_TAGS))
    return [_ENDS[t] for t in texts]
