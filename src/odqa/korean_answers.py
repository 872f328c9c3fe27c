"""Korean answer post-processing: extractive readers often include the particle or copula that follows
a noun ("세종대왕은", "서울이다"); KorQuAD gold answers stop at the noun, so those spans lose EM.

Kiwi tags every span; trailing particles/copulas/endings/punctuation are cut only when what remains ends
in a noun-like morpheme, the cut falls between syllables, and Kiwi prefers the split reading clearly over
reading the whole span as one noun — so verb forms ("가나" = 가+나) and foreign names that merely end in
a particle-like syllable ("키나", "쇼와", "마리아 카롤리나") stay whole.
"""

from __future__ import annotations

import logging

from odqa.text.analyzers import get_kiwi

logger = logging.getLogger(__name__)

# Morphemes that may be cut from the end of an answer.
TRAILING_TAGS = frozenset(
    {
        "JKS", "JKC", "JKG", "JKO", "JKB", "JKV", "JKQ", "JX", "JC",  # particles
        "VCP",  # copula 이(다)
        "EP", "EF", "EC", "ETM", "ETN",  # endings after the copula
        "SF", "SP", "SE",  # . ? ! , · …
    }
)  # fmt: skip
# An answer may end in one of these (nouns, numbers, foreign words, symbols, closing brackets).
_CONTENT_TAG_PREFIXES = ("NN", "NP", "NR", "SN", "SL", "SH", "SW", "SO", "XSN", "XR", "SSC", "W_")
# A competing analysis "keeps the span whole" when it ends in one of these.
_WHOLE_TAG_PREFIXES = ("NN", "NP", "NR", "SN", "SL", "SH", "SW")
# Candidate analyses compared per span, and how much more likely (Kiwi log score) the split reading
# must be than the best whole-span reading. Tuned on KorQuAD dev gold answers (see bench/README.md).
TOP_N = 5
DEFAULT_MIN_MARGIN = 5.0
# A served corpus's passages come back again and again, and so do their spans: trimming is a pure
# function of the span, kept for this many spans (then forgotten at once: a dict, no LRU bookkeeping).
TRIM_CACHE_SIZE = 100_000
_TRIMMED: dict[tuple[str, float], str] = {}


def _base_tag(tag: str) -> str:
    """Kiwi marks irregular conjugations as "VA-I"/"VV-R"; the base tag is what matters here."""
    return tag.split("-", 1)[0]


def _cut_position(tokens) -> int | None:
    """Start of the longest removable tail that leaves a content morpheme ending on a syllable boundary
    (Kiwi splits 훈 into 후+ᆫ; cutting there would drop half a syllable)."""
    cut = None
    for i in range(len(tokens) - 1, 0, -1):
        if _base_tag(tokens[i].tag) not in TRAILING_TAGS:
            break
        prev = tokens[i - 1]
        if _base_tag(prev.tag).startswith(_CONTENT_TAG_PREFIXES) and tokens[i].start >= prev.start + prev.len:
            cut = tokens[i].start
    return cut


def _keeps_whole(tokens, end: int, cut: int) -> bool:
    """A reading whose last noun runs across the cut to the end ("쇼와"/NNP), not one that merely
    re-tags the tail as a separate one-syllable noun ("의"/NNG)."""
    last = tokens[-1]
    return (
        _base_tag(last.tag).startswith(_WHOLE_TAG_PREFIXES)
        and last.start < cut
        and last.start + last.len >= end
    )


def _trim_one(text: str, candidates, min_margin: float) -> str:
    best_tokens, best_score = candidates[0][0], candidates[0][1]
    cut = _cut_position(best_tokens)
    if cut is None:
        return text
    whole_scores = [
        score for tokens, score, *_ in candidates[1:] if tokens and _keeps_whole(tokens, len(text), cut)
    ]
    if whole_scores and best_score - max(whole_scores) < min_margin:
        return text
    trimmed = text[:cut].rstrip()
    return trimmed or text


def trim_particles(texts: list[str], min_margin: float = DEFAULT_MIN_MARGIN) -> list[str]:
    """Trim trailing particles, copulas, endings and punctuation from predicted answer spans.

    One batched Kiwi call for the spans not seen before (a served corpus repeats its spans); empty
    strings and spans with no removable tail come back unchanged.
    """
    known = {t: _TRIMMED.get((t, min_margin)) for t in texts if t.strip()}
    todo = sorted(t for t, trimmed in known.items() if trimmed is None)
    if todo:
        analyses = get_kiwi().analyze([t.rstrip() for t in todo], top_n=TOP_N)
        if len(_TRIMMED) + len(todo) > TRIM_CACHE_SIZE:
            _TRIMMED.clear()
        for text, candidates in zip(todo, analyses, strict=True):
            known[text] = _TRIMMED[(text, min_margin)] = _trim_one(text.rstrip(), candidates, min_margin)
    return [known[t] if t.strip() else t for t in texts]
