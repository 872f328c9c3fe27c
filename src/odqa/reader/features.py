"""Turn (question, context) pairs into model windows, as in the transformers question-answering example.

A long context becomes several overlapping windows (`max_length`, `doc_stride`). For training, a window
whose answer is not wholly inside it, and an example with no answer (a hard negative), are labelled with
the CLS index so the model learns "no answer here". With `title_prefix` the model reads
f"{title}\\n{context}"; offsets are shifted so labels and predicted spans stay context-relative.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from odqa.errors import InputError
from odqa.reader.config import ReaderSettings
from odqa.schema import QAExample

__all__ = [
    "InferenceFeature", "ReaderSettings", "cls_position", "focus_spans", "inference_features", "token_alignment",
    "token_type_count", "train_features",
]  # fmt: skip


def reader_context(title: str, context: str, title_prefix: bool) -> tuple[str, int]:
    """The text the model reads and how many characters precede `context` in it."""
    if title_prefix and title:
        prefix = f"{title}\n"
        return prefix + context, len(prefix)
    return context, 0


def _bounded_questions(tokenizer, questions: list[str], max_tokens: int) -> list[str]:
    """Questions cut after `max_tokens` tokens, so every window keeps room for context."""
    stripped = [q.strip() for q in questions]
    enc = tokenizer(stripped, add_special_tokens=False, return_offsets_mapping=True)
    bounded = []
    for q, offsets in zip(stripped, enc["offset_mapping"], strict=True):
        bounded.append(q[: offsets[max_tokens - 1][1]] if len(offsets) > max_tokens else q)
    return bounded


OVERLAP_TYPE = 2
FOCUS_SHIFT = 2  # a context token of the focus sentence: type 1 -> 3, OVERLAP_TYPE 2 -> 4
# A sentence ends at . ! ? or 。 before a space or the end, or at a line break.
_SENTENCE = re.compile(r".+?(?:[.!?。](?=\s|$)|\n|$)", re.S)
_WORD = re.compile(r"\w")


def token_type_count(question_overlap: bool, focus_sentence: bool) -> int:
    """The type_vocab_size a model needs for these reader features."""
    return 5 if focus_sentence else 3 if question_overlap else 2


def _question_ids(tokenizer, ids: list[int], special: set[int]) -> set[int]:
    """Question token ids that count as shared words: word pieces of two characters or fewer after '##'
    (mostly particles and endings) and special tokens never count."""
    pieces = tokenizer.convert_ids_to_tokens(ids)
    return {
        t
        for t, piece in zip(ids, pieces, strict=True)
        if t not in special and not (piece.startswith("##") and len(piece) <= 4)
    }


def _mark_question_overlap(tokenizer, enc) -> None:
    """Set token type OVERLAP_TYPE on context tokens whose id is among the window's question tokens."""
    special = set(tokenizer.all_special_ids)
    for i, ids in enumerate(enc["input_ids"]):
        sequence_ids = enc.sequence_ids(i)
        question = _question_ids(
            tokenizer, [t for t, seq in zip(ids, sequence_ids, strict=True) if seq == 0], special
        )
        types = enc["token_type_ids"][i]
        for position, (t, seq) in enumerate(zip(ids, sequence_ids, strict=True)):
            if seq == 1 and t in question:
                types[position] = OVERLAP_TYPE


def focus_spans(tokenizer, questions: list[str], contexts: list[str]) -> list[list[tuple[int, int]]]:
    """Per pair, the character spans of the context sentence(s) sharing the most distinct words with
    the question (ties: all of them; none when no word is shared).

    Why: on KorQuAD dev that sentence holds the answer for 81 % of questions, and a reader trained from
    scratch on a few thousand questions does not learn to find it; marked, EM on the gold passage went
    4.3 -> 8.3 (docs/reader-recipe.md). Label-free: the same at inference."""
    special = set(tokenizer.all_special_ids)
    question_ids = tokenizer(questions, add_special_tokens=False)["input_ids"]
    context_enc = tokenizer(contexts, add_special_tokens=False, return_offsets_mapping=True)
    result = []
    for q_ids, context, ids, offsets in zip(
        question_ids, contexts, context_enc["input_ids"], context_enc["offset_mapping"], strict=True
    ):
        pieces = dict(zip(q_ids, tokenizer.convert_ids_to_tokens(q_ids), strict=True))
        words = {t for t in _question_ids(tokenizer, q_ids, special) if _WORD.search(pieces[t])}
        sentences = [(m.start(), m.end()) for m in _SENTENCE.finditer(context)]
        shared: list[set[int]] = [set() for _ in sentences]
        starts = [start for start, _ in sentences]
        for t, (start, _) in zip(ids, offsets, strict=True):
            if t in words:
                shared[bisect.bisect_right(starts, start) - 1].add(t)
        best = max((len(s) for s in shared), default=0)
        result.append([span for span, s in zip(sentences, shared, strict=True) if best and len(s) == best])
    return result


def _mark_focus_sentence(tokenizer, enc, questions: list[str], contexts: list[str]) -> None:
    """Add FOCUS_SHIFT to the token type of context tokens inside their pair's focus sentence."""
    spans = focus_spans(tokenizer, questions, contexts)
    for i, offsets in enumerate(enc["offset_mapping"]):
        pair = spans[enc["overflow_to_sample_mapping"][i]]
        if not pair:
            continue
        starts = [start for start, _ in pair]
        types = enc["token_type_ids"][i]
        for position, ((start, _), seq) in enumerate(zip(offsets, enc.sequence_ids(i), strict=True)):
            if seq == 1:
                k = bisect.bisect_right(starts, start) - 1
                if k >= 0 and start < pair[k][1]:
                    types[position] += FOCUS_SHIFT


def _encode(tokenizer, questions: list[str], contexts: list[str], settings: ReaderSettings):
    """Tokenize pairs into overflowing windows with offsets (only the context is ever truncated)."""
    # transformers 5: a tokenizers-backed tokenizer omits token_type_ids unless asked (FACTS.md).
    marks = settings.question_overlap or settings.focus_sentence
    wants_types = "token_type_ids" in tokenizer.model_input_names or marks
    bounded = _bounded_questions(tokenizer, questions, settings.question_budget)
    enc = tokenizer(
        bounded,
        contexts,
        truncation="only_second",
        max_length=settings.max_length,
        stride=settings.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=wants_types,
        padding=False,
    )
    if marks and "token_type_ids" not in enc:
        raise InputError("question_overlap and focus_sentence need a tokenizer that returns token_type_ids")
    if settings.question_overlap:
        _mark_question_overlap(tokenizer, enc)
    if settings.focus_sentence:
        _mark_focus_sentence(tokenizer, enc, bounded, contexts)
    return enc


def cls_position(tokenizer, input_ids: list[int]) -> int:
    """Where this window's CLS token is: "no answer here" labels and null scores point at it.

    Found in the window as the transformers QA example does (`input_ids.index(cls_token_id)`), since a
    RoBERTa/XLM-R `<s>` or another post-processor need not put it at index 0."""
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    if cls_id is None or cls_id not in input_ids:
        raise InputError(
            "the reader's tokenizer puts no CLS (or BOS) token in its windows: no position for 'no answer'"
        )
    return input_ids.index(cls_id)


def _model_inputs(tokenizer, enc, i: int) -> dict[str, list[int]]:
    return {name: enc[name][i] for name in tokenizer.model_input_names if name in enc}


def train_features(
    examples: list[QAExample], tokenizer, settings: ReaderSettings, path: object = None
) -> list[dict]:
    """One dict per window: model inputs + start_positions, end_positions, weight, example_index and
    context_span (the first and last context token, None when the window holds none)."""
    contexts, shifts = [], []
    for ex in examples:
        for start, text in zip(ex.answers["answer_start"], ex.answers["text"], strict=False):
            if ex.context[start : start + len(text)] != text:
                raise InputError(
                    f"answer {text!r} is not at answer_start {start} of the context", path=path, record=ex.id
                )
        ctx, shift = reader_context(ex.title, ex.context, settings.title_prefix)
        contexts.append(ctx)
        shifts.append(shift)
    enc = _encode(tokenizer, [ex.question for ex in examples], contexts, settings)
    features = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        example_index = enc["overflow_to_sample_mapping"][i]
        ex = examples[example_index]
        feature = _model_inputs(tokenizer, enc, i)
        cls_index = cls_position(tokenizer, feature["input_ids"])
        context = [t for t, s in enumerate(enc.sequence_ids(i)) if s == 1]
        context_span = (context[0], context[-1]) if context else None
        start_pos, end_pos = answer_token_span(ex, shifts[example_index], offsets, context_span, cls_index)
        feature.update(
            start_positions=start_pos,
            end_positions=end_pos,
            weight=ex.weight,
            example_index=example_index,
            context_span=context_span,
        )
        features.append(feature)
    return features


def answer_token_span(
    ex: QAExample,
    shift: int,
    offsets: list[tuple[int, int]],
    context_span: tuple[int, int] | None,
    cls_index: int,
) -> tuple[int, int]:
    """Token indices of the (first) answer in this window (whose context tokens are `context_span`, first
    and last), or (cls_index, cls_index) when it is absent or cut."""
    if not ex.is_answerable or context_span is None:
        return cls_index, cls_index
    start_char = ex.answers["answer_start"][0] + shift
    end_char = start_char + len(ex.answers["text"][0])
    first, last = context_span
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return cls_index, cls_index
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


@dataclass
class InferenceFeature:
    """One window of one (question, passage) pair; `offsets[t]` is None for tokens that cannot be answers
    (question, special tokens, title prefix), otherwise char offsets into the passage text; `cls_index`
    is where the window's CLS token is (its start+end logits there are the "no answer here" score)."""

    pair_index: int
    inputs: dict[str, list[int]]
    offsets: list[tuple[int, int] | None]
    cls_index: int


def inference_features(
    questions: list[str], titles: list[str], texts: list[str], tokenizer, settings: ReaderSettings
) -> list[InferenceFeature]:
    contexts, shifts = [], []
    for title, text in zip(titles, texts, strict=True):
        ctx, shift = reader_context(title, text, settings.title_prefix)
        contexts.append(ctx)
        shifts.append(shift)
    enc = _encode(tokenizer, questions, contexts, settings)
    features = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        pair_index = enc["overflow_to_sample_mapping"][i]
        shift = shifts[pair_index]
        sequence_ids = enc.sequence_ids(i)
        span_offsets: list[tuple[int, int] | None] = [
            (s - shift, e - shift) if seq == 1 and s >= shift and e > s else None
            for (s, e), seq in zip(offsets, sequence_ids, strict=True)
        ]
        inputs = _model_inputs(tokenizer, enc, i)
        features.append(
            InferenceFeature(pair_index, inputs, span_offsets, cls_position(tokenizer, inputs["input_ids"]))
        )
    return features


def token_alignment(tokenizer, examples: list[QAExample], title_prefix: bool = False) -> float:
    """Share of answerable examples whose first answer starts and ends on token boundaries of its
    context: an exact-match ceiling no reader with this tokenizer can pass (before particle trimming)."""
    bounds: dict[str, tuple[set[int], set[int]]] = {}
    aligned = total = 0
    for ex in examples:
        if not ex.is_answerable:
            continue
        ctx, shift = reader_context(ex.title, ex.context, title_prefix)
        if ctx not in bounds:
            offsets = tokenizer(ctx, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            bounds[ctx] = ({s for s, _ in offsets}, {e for _, e in offsets})
        starts, ends = bounds[ctx]
        start = ex.answers["answer_start"][0] + shift
        total += 1
        aligned += start in starts and start + len(ex.answers["text"][0]) in ends
    return aligned / total if total else float("nan")
