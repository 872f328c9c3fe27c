"""Context masking: copies of training examples with salient nouns outside the answer replaced by the
tokenizer's mask string, so the reader cannot lean on a few lexical overlaps with the question."""

from __future__ import annotations

import random

from odqa.schema import QAExample
from odqa.text.analyzers import get_kiwi

# Kiwi tags of "salient" tokens: common and proper nouns, foreign words.
MASKABLE_TAGS = ("NNG", "NNP", "SL")


def _answer_spans(ex: QAExample) -> list[tuple[int, int]]:
    return [(s, s + len(t)) for s, t in zip(ex.answers["answer_start"], ex.answers["text"], strict=True)]


def mask_context(ex: QAExample, tokens, prob: float, mask_token: str, rng: random.Random) -> QAExample | None:
    """A masked copy (id suffixed '-mask') with answer offsets moved, or None when nothing was masked."""
    spans = _answer_spans(ex)
    chosen: list[tuple[int, int]] = []
    for tok in tokens:
        start, end = tok.start, tok.start + tok.len
        if tok.tag not in MASKABLE_TAGS or end <= start:
            continue
        if any(start < a_end and a_start < end for a_start, a_end in spans):
            continue
        if chosen and start < chosen[-1][1]:
            continue
        if rng.random() < prob:
            chosen.append((start, end))
    if not chosen:
        return None
    pieces, pos = [], 0
    for start, end in chosen:
        pieces += [ex.context[pos:start], mask_token]
        pos = end
    pieces.append(ex.context[pos:])

    def moved(offset: int) -> int:
        return offset + sum(len(mask_token) - (end - start) for start, end in chosen if end <= offset)

    copy = QAExample.from_dict(ex.to_dict())
    copy.id = f"{ex.id}-mask"
    copy.context = "".join(pieces)
    copy.answers = {
        "answer_start": [moved(s) for s in ex.answers["answer_start"]],
        "text": list(ex.answers["text"]),
    }
    return copy


def masked_copies(examples: list[QAExample], prob: float, mask_token: str, seed: int) -> list[QAExample]:
    """One masked copy per answerable example (contexts analysed once each, in one Kiwi batch)."""
    answerable = [ex for ex in examples if ex.is_answerable and ex.context]
    contexts = list(dict.fromkeys(ex.context for ex in answerable))
    tokens_by_context = dict(zip(contexts, get_kiwi().tokenize(contexts), strict=True))
    rng = random.Random(seed)
    copies = []
    for ex in answerable:
        copy = mask_context(ex, tokens_by_context[ex.context], prob, mask_token, rng)
        if copy is not None:
            copies.append(copy)
    return copies
