"""Question generation from passages: rule-based answer selection (noun phrases from Kiwi analysis) and a
question writer — cloze/wh rules, or any seq2seq model (`qg_model`) loaded with transformers.

Generated answers are cut from the passage itself, so every pair is offset-correct by construction.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass

from odqa.progress import progress_bar
from odqa.schema import QAExample
from odqa.text.analyzers import get_kiwi

logger = logging.getLogger(__name__)

# Tokens that can form a noun-phrase answer, and those that make it worth asking about.
_PHRASE_TAGS = ("NNG", "NNP", "NNB", "NR", "SN", "SL", "SH", "XSN")
_SALIENT_TAGS = ("NNP", "SN", "SL", "SH")
_TIME_UNITS = ("년", "월", "일", "세기", "시")
BLANK = "_____"
MAX_ANSWER_CHARS = 20
# Longer sentences make questions far longer than real ones (KorQuAD: about 30 characters) and leave
# the reader's window little room for the passage.
MAX_SENTENCE_CHARS = 150


@dataclass
class AnswerCandidate:
    start: int  # in the passage
    end: int
    wh: str  # wh-word that replaces the answer in a wh-question
    drop_particle_end: int  # end of a following particle a wh-question drops (== end when none)
    sentence_start: int
    sentence_end: int


def _wh_word(tokens) -> str:
    forms = [t.form for t in tokens]
    if any(t.tag == "SN" for t in tokens):
        if forms[-1] in _TIME_UNITS:
            return "언제"
        if tokens[-1].tag == "NNB":
            return f"몇 {forms[-1]}"
        return "몇"
    return "무엇"


def answer_candidates(text: str, sentences) -> list[AnswerCandidate]:
    """Maximal noun-phrase runs (nouns, numbers, foreign words; at most one space apart) holding a proper
    noun, number or foreign word, per Kiwi sentence."""
    found = []
    for sent in sentences:
        if sent.end - sent.start > MAX_SENTENCE_CHARS:
            continue
        tokens = sent.tokens
        i = 0
        while i < len(tokens):
            if tokens[i].tag not in _PHRASE_TAGS or tokens[i].tag in ("NNB", "XSN"):
                i += 1
                continue
            j = i + 1
            while (
                j < len(tokens)
                and tokens[j].tag in _PHRASE_TAGS
                and tokens[j].start - (tokens[j - 1].start + tokens[j - 1].len) <= 1
            ):
                j += 1
            run = tokens[i:j]
            start, end = run[0].start, run[-1].start + run[-1].len
            if any(t.tag in _SALIENT_TAGS for t in run) and 2 <= end - start <= MAX_ANSWER_CHARS:
                nxt = tokens[j] if j < len(tokens) else None
                particle_end = (
                    nxt.start + nxt.len
                    if nxt is not None and nxt.tag.startswith("J") and nxt.start == end
                    else end
                )
                found.append(AnswerCandidate(start, end, _wh_word(run), particle_end, sent.start, sent.end))
            i = j
    return found


def rule_question(text: str, cand: AnswerCandidate, style: str) -> str:
    """The answer's sentence with the answer replaced by a wh-word ('wh') or a blank ('cloze')."""
    if style == "cloze":
        before, hole, after = (
            text[cand.sentence_start : cand.start],
            BLANK,
            text[cand.end : cand.sentence_end],
        )
    else:
        keep_particle = cand.wh == "무엇" or cand.wh.startswith("몇")
        cut = cand.end if keep_particle else cand.drop_particle_end
        before, hole, after = text[cand.sentence_start : cand.start], cand.wh, text[cut : cand.sentence_end]
    question = f"{before}{hole}{after}".strip()
    if style != "cloze":
        question = question.rstrip(".!。") + "?"
    return question


class Seq2SeqQuestionWriter:
    """Writes a question for (answer, passage) with any AutoModelForSeq2SeqLM (a hub name or local dir)."""

    def __init__(self, name_or_path: str, max_input_length: int = 384, max_new_tokens: int = 32):
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(name_or_path)
        self.model.eval()
        self.max_input_length = max_input_length
        self.max_new_tokens = max_new_tokens

    def write(self, answers: list[str], contexts: list[str], batch_size: int = 16) -> list[str]:
        import torch

        out: list[str] = []
        for i in range(0, len(answers), batch_size):
            prompts = [
                f"answer: {a} context: {c}"
                for a, c in zip(answers[i : i + batch_size], contexts[i : i + batch_size], strict=True)
            ]
            enc = self.tokenizer(
                prompts, truncation=True, max_length=self.max_input_length, padding=True, return_tensors="pt"
            )
            # seq2seq models take no token_type_ids (BERT-style tokenizers add them)
            enc = {k: enc[k] for k in ("input_ids", "attention_mask") if k in enc}
            with torch.inference_mode():
                generated = self.model.generate(
                    **enc, max_new_tokens=self.max_new_tokens, min_new_tokens=2, do_sample=False
                )
            out += [t.strip() for t in self.tokenizer.batch_decode(generated, skip_special_tokens=True)]
        return out


@dataclass
class SourcePassage:
    document_id: str
    title: str
    text: str
    passage_id: str = ""  # names generated ids when a document was split into several passages


def generate_questions(
    passages: list[SourcePassage],
    per_passage: int,
    style: str = "wh",
    qg_model: str | None = None,
    weight: float = 1.0,
    seed: int = 42,
) -> list[QAExample]:
    """Up to `per_passage` generated pairs per passage (distinct sentences first), ids
    'qg-<passage or doc>-<n>'."""
    rng = random.Random(seed)
    texts = [p.text for p in passages]
    picked: list[tuple[SourcePassage, AnswerCandidate, int]] = []
    analyses = get_kiwi().split_into_sents(texts, return_tokens=True)
    for passage, sentences in progress_bar(
        zip(passages, analyses, strict=True), total=len(passages), desc="qg", leave=False
    ):
        candidates = answer_candidates(passage.text, sentences)
        rng.shuffle(candidates)
        seen_sentences: set[int] = set()
        chosen = [
            c
            for c in candidates
            if not (c.sentence_start in seen_sentences or seen_sentences.add(c.sentence_start))
        ]
        chosen += [c for c in candidates if c not in chosen]
        for n, cand in enumerate(chosen[:per_passage], start=1):
            picked.append((passage, cand, n))
    if qg_model:
        writer = Seq2SeqQuestionWriter(qg_model)
        questions = writer.write(
            [p.text[c.start : c.end] for p, c, _ in picked], [p.text for p, _, _ in picked]
        )
    else:
        questions = [rule_question(p.text, c, style) for p, c, _ in picked]
    examples = []
    for (passage, cand, n), question in zip(picked, questions, strict=True):
        if not question.strip():
            continue
        source = (
            passage.passage_id
            or passage.document_id
            or hashlib.sha1(passage.text.encode("utf-8")).hexdigest()[:12]
        )
        examples.append(
            QAExample(
                id=f"qg-{source}-{n}",
                question=question,
                context=passage.text,
                title=passage.title,
                document_id=passage.document_id,
                answers={"answer_start": [cand.start], "text": [passage.text[cand.start : cand.end]]},
                weight=weight,
            )
        )
    logger.info("generated %d questions from %d passages", len(examples), len(passages))
    return examples
