"""Query rewriting: drop particles and interrogative endings so a question reads like a keyword query.

A pure function of the question (no labels, no model state), so retrieval and predict can apply
the same rewrite at inference that augmentation applied in training.
"""

from __future__ import annotations

from odqa.schema import QAExample
from odqa.text.analyzers import get_kiwi

# Particles, endings, the copula and sentence punctuation carry no content for matching.
DROP_TAG_PREFIXES = ("J", "E", "VCP", "SF")


def _rewrite(question: str, tokens) -> str:
    pieces: list[str] = []
    covered = 0  # end of the question text already emitted
    gap = False  # a dropped morpheme or whitespace since the last kept one
    for tok in tokens:
        if tok.tag.split("-", 1)[0].startswith(DROP_TAG_PREFIXES):
            gap = True
            continue
        start, end = max(tok.start, covered), tok.start + tok.len
        if end <= start:  # shares a syllable already emitted (e.g. 만들+ᆫ)
            continue
        if pieces and (gap or question[covered:start].strip() == "" and start > covered):
            pieces.append(" ")
        pieces.append(question[start:end])
        covered, gap = end, False
    rewritten = "".join(pieces).strip()
    return rewritten or question.strip()


def rewrite_questions(questions: list[str]) -> list[str]:
    """Batched `rewrite_question`: one Kiwi call for the whole list."""
    if not questions:
        return []
    return [
        _rewrite(q, toks) for q, toks in zip(questions, get_kiwi().tokenize(list(questions)), strict=True)
    ]


def rewrite_question(question: str) -> str:
    """'세종대왕이 만든 문자는 무엇인가?' -> '세종대왕 만든 문자 무엇'. Deterministic, label-free."""
    return rewrite_questions([question])[0]


def rewritten_copies(examples: list[QAExample]) -> list[QAExample]:
    """One copy per example whose rewrite differs, id suffixed '-rw'; context and answers unchanged."""
    rewrites = rewrite_questions([ex.question for ex in examples])
    copies = []
    for ex, rewritten in zip(examples, rewrites, strict=True):
        if rewritten != ex.question.strip():
            copy = QAExample.from_dict(ex.to_dict())
            copy.id, copy.question = f"{ex.id}-rw", rewritten
            copies.append(copy)
    return copies
