"""Read retrieved passages and pick answer spans, with an n-best list per question.

Every retrieved passage of a question is read; each window proposes its n-best spans and the question's
candidates are ranked together. `logit_sum` ranks by start_logit + end_logit, which are not comparable
across passages; `prob_product` ranks by softmax(start) * softmax(end) over each window's context tokens,
so every window's best span is scored on the same 0..1 scale.

Each window's CLS logits are kept too, as the transformers question-answering example does: they are
the reader's own "no answer in this window" score, and with `null_score="subtract"` they down-rank the
spans of a passage the reader rejects (see `span_score`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from odqa.data import load_retrieved
from odqa.errors import InputError
from odqa.evaluation.metrics import answer_key
from odqa.io import atomic_dir, check_output_dir, read_json, write_json
from odqa.progress import progress_bar
from odqa.reader.config import DEFAULT_MAX_ANSWER_LENGTH, READER_CONFIG_FILE, PredictConfig, WordSpans
from odqa.reader.device import Placement
from odqa.reader.features import InferenceFeature, ReaderSettings, inference_features
from odqa.schema import NBEST_FILE, PREDICTIONS_FILE, Hit, QAExample, RetrievalResult
from odqa.text.morphemes import piece_ends

log = logging.getLogger(__name__)


QUESTIONS_PER_CHUNK = 256
TRIM_SLACK = 4  # with trim_particles, spans trimmed per question = n_best * TRIM_SLACK at most
TRIM_ROUND_MIN = 4  # fewest spans of a question trimmed per Kiwi call (bounds the rounds)
PROB_FLOOR = 1e-30  # log(0) guard: a probability that underflowed still ranks, last


@dataclass
class PredictResult:
    predictions_path: Path
    nbest_path: Path
    questions: int
    seconds: float

    @property
    def questions_per_second(self) -> float:
        return self.questions / self.seconds if self.seconds > 0 else float("inf")


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use n torch threads inside the block and restore the previous count afterwards, so one stage's
    setting does not leak into the rest of the process (tests, serving, the next stage). None or 0:
    leave torch as it is."""
    if n is not None and n < 0:
        raise InputError(f"threads must be positive, got {n}")
    if not n:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def pad_windows(tokenizer, inputs: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    """Windows padded to the batch's longest by the tokenizer itself (its pad id and pad token type;
    question-overlap token types survive), with an attention mask. Always on the right: training
    labels and the CLS/offset positions of a window are indices into its unpadded tokens."""
    if tokenizer.pad_token_id is None:
        raise InputError("the reader's tokenizer has no padding token: set tokenizer.pad_token")
    return dict(
        tokenizer.pad(
            inputs,
            padding="longest",
            padding_side="right",
            return_attention_mask=True,
            return_tensors="pt",
        )
    )


@dataclass
class NullScore:
    """A passage's "no answer here" score: min over its windows, as the transformers QA example takes
    the min null score over an example's features (the window most likely to hold the answer decides)."""

    logit: float  # start_logit[CLS] + end_logit[CLS]
    prob: float  # softmax(start)[CLS] * softmax(end)[CLS], softmax over the whole window as in training

    def merge(self, other: NullScore) -> NullScore:
        return NullScore(min(self.logit, other.logit), min(self.prob, other.prob))


def window_null_score(start_logits: np.ndarray, end_logits: np.ndarray, cls_index: int) -> NullScore:
    """One window's null score. The probability uses a softmax over every token of the window (the
    distribution the training loss shapes), not the context-only softmax of the span probabilities."""
    s_probs, e_probs = _softmax(start_logits), _softmax(end_logits)
    return NullScore(
        float(start_logits[cls_index] + end_logits[cls_index]),
        float(s_probs[cls_index] * e_probs[cls_index]),
    )


def feature_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: list[tuple[int, int] | None],
    n_best: int,
    max_answer_length: int,
    text: str | None = None,
    word_spans: WordSpans = "off",
    inner_ends: frozenset[int] = frozenset(),
) -> list[dict]:
    """The n-best valid spans of one window: start <= end, both in the context, length <= max tokens.
    With `text` and word_spans "start" a span starts where a word of `text` starts; "both": it also ends
    where a word ends; "morpheme": it ends where a word ends or at one of `inner_ends` (in front of a
    particle or ending: odqa.text.morphemes.piece_ends).

    Probabilities are softmaxes over this window's context tokens only."""
    context_idx = np.array([t for t, o in enumerate(offsets) if o is not None], dtype=np.int64)
    if context_idx.size == 0:
        return []
    s_logits, e_logits = start_logits[context_idx], end_logits[context_idx]
    s_probs, e_probs = _softmax(s_logits), _softmax(e_logits)
    s_rank, e_rank = s_logits, e_logits
    if text is not None and word_spans != "off":
        starts_word = np.array([_word_start(text, offsets[t][0]) for t in context_idx])
        s_rank = np.where(starts_word, s_logits, -np.inf)
        if word_spans in ("both", "morpheme"):
            inner = inner_ends if word_spans == "morpheme" else frozenset()
            ends_word = np.array(
                [_word_end(text, offsets[t][1]) or offsets[t][1] in inner for t in context_idx]
            )
            e_rank = np.where(ends_word, e_logits, -np.inf)
    top_s = [i for i in np.argsort(-s_rank, kind="stable")[:n_best] if np.isfinite(s_rank[i])]
    top_e = [j for j in np.argsort(-e_rank, kind="stable")[:n_best] if np.isfinite(e_rank[j])]
    spans = []
    for i in top_s:
        for j in top_e:
            start, end = context_idx[i], context_idx[j]
            if end < start or end - start + 1 > max_answer_length:
                continue
            spans.append(
                {
                    "start_char": offsets[start][0],
                    "end_char": offsets[end][1],
                    "start_logit": float(s_logits[i]),
                    "end_logit": float(e_logits[j]),
                    "start_prob": float(s_probs[i]),
                    "end_prob": float(e_probs[j]),
                }
            )
    return spans


def _word_start(text: str, char: int) -> bool:
    return char == 0 or not text[char - 1].isalnum()


def _word_end(text: str, char: int) -> bool:
    return char >= len(text) or not text[char].isalnum()


def span_score(
    span: dict, score_mode: str, retrieval_prob: float | None, null: NullScore | None = None
) -> float:
    """The score a span is ranked by across a question's passages.

    With `null` (null_score="subtract"): in logit_sum, span logit - passage null logit, the margin the
    transformers QA example compares against its threshold. In prob_product, p_span * (1 - p_null): the
    chain P(answer in this passage) * P(span | answer in it), which keeps the 0..1 scale that makes
    prob_product comparable across passages and multiplies cleanly with the retrieval probability (the
    ratio p_span / p_null would only be exp(logit margin), unbounded, with the scale lost)."""
    if score_mode == "logit_sum":
        score = span["start_logit"] + span["end_logit"]
        if null is not None:
            score -= null.logit
        return score + math.log(max(retrieval_prob, PROB_FLOOR)) if retrieval_prob is not None else score
    score = span["start_prob"] * span["end_prob"]
    if null is not None:
        score *= 1.0 - null.prob
    return score * retrieval_prob if retrieval_prob is not None else score


def results_from_gold(examples: list[QAExample]) -> list[RetrievalResult]:
    """One-passage results holding each question's own context, so reader-only EM uses the same path."""
    return [
        RetrievalResult(
            ex.id,
            ex.question,
            [Hit(ex.document_id or ex.id, ex.document_id, ex.title, ex.context, 1.0)],
        )
        for ex in examples
    ]


class Reader:
    """A loaded reader model + tokenizer + the windowing it was trained with."""

    def __init__(self, model, tokenizer, settings: ReaderSettings):
        if not getattr(tokenizer, "is_fast", False):
            raise InputError("the reader needs a fast (tokenizers-backed) tokenizer for character offsets")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.settings = settings
        self.placement: Placement | None = None  # set by predict() from its config

    @property
    def max_answer_length(self) -> int:
        """The span limit when PredictConfig leaves it open: the one the reader recorded in training."""
        return self.settings.max_answer_length or DEFAULT_MAX_ANSWER_LENGTH

    @classmethod
    def load(cls, model_dir: str | Path) -> Reader:
        """A reader folder odqa train wrote; every damaged or wrong folder is one InputError naming it,
        raised before transformers logs anything."""
        model_dir = Path(model_dir)
        if model_dir.is_file():
            raise InputError("is a file, expected the reader folder odqa train wrote", path=model_dir)
        if not model_dir.is_dir():
            raise InputError("reader folder not found", path=model_dir)
        config_path = model_dir / READER_CONFIG_FILE
        if not config_path.is_file():
            raise InputError(
                f"not a reader folder (no {READER_CONFIG_FILE}): give the folder odqa train wrote",
                path=model_dir,
            )
        saved = read_json(config_path)
        if not isinstance(saved, dict):
            raise InputError("not a JSON object", path=config_path)
        # odqa_reader.json also holds the training summary: only the windowing keys are settings.
        settings = ReaderSettings.from_dict(
            {k: v for k, v in saved.items() if k in ReaderSettings.model_fields}, source=config_path
        )
        model_config = model_dir / "config.json"
        if not model_config.is_file():
            raise InputError("damaged reader: no config.json; retrain it with odqa train", path=model_dir)
        read_json(model_config)  # malformed JSON: one line with its position
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            model = AutoModelForQuestionAnswering.from_pretrained(str(model_dir))
        except Exception as e:  # OSError, ValueError, KeyError, safetensors' SafetensorError, ...
            if isinstance(e, InputError):
                raise
            lines = str(e).strip().splitlines()
            raise InputError(
                f"damaged reader: {lines[0] if lines else type(e).__name__}; retrain it with odqa train",
                path=model_dir,
            ) from None
        return cls(model, tokenizer, settings)

    def _logits(
        self, features: list[InferenceFeature], batch_size: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Start/end logits per feature; batches are built from similar lengths to pad little."""
        order = sorted(range(len(features)), key=lambda i: len(features[i].inputs["input_ids"]))
        out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(features)
        device = next(self.model.parameters()).device
        placement = self.placement or Placement(device, "fp32")
        # A RoBERTa with type_vocab_size 1 (klue/roberta) reads no segment ids its BERT tokenizer emits.
        drop = {"token_type_ids"} if getattr(self.model.config, "type_vocab_size", 2) < 2 else set()
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        with torch.inference_mode():
            for batch in progress_bar(batches, desc="read", unit="batch", leave=False):
                inputs = pad_windows(
                    self.tokenizer,
                    [{k: v for k, v in features[i].inputs.items() if k not in drop} for i in batch],
                )
                with placement.autocast():
                    outputs = self.model(**{k: v.to(device, non_blocking=True) for k, v in inputs.items()})
                starts = outputs.start_logits.float().cpu().numpy()
                ends = outputs.end_logits.float().cpu().numpy()
                for row, i in enumerate(batch):
                    n = len(features[i].inputs["input_ids"])
                    out[i] = (starts[row, :n], ends[row, :n])
        return out  # type: ignore[return-value]

    def predict(self, results: list[RetrievalResult], config: PredictConfig) -> tuple[dict, dict]:
        """Returns (predictions {id: text}, nbest {id: [entry, ...]}) with entries as in DESIGN.md.
        The model moves to `config.device` (auto: CUDA, else MPS, else CPU) and reads in its precision."""
        self.placement = Placement.resolve(config.device, config.precision)
        if next(self.model.parameters()).device != self.placement.device:
            self.model.to(self.placement.device)
        with torch_threads(config.num_threads):
            return self._predict(results, config)

    def _predict(self, results: list[RetrievalResult], config: PredictConfig) -> tuple[dict, dict]:
        predictions: dict = {}
        nbest: dict = {}
        if config.max_answer_length is None:
            config = config.replace(max_answer_length=self.max_answer_length)
        # Questions go through in chunks so memory stays bounded however many questions there are.
        chunks = range(0, len(results), QUESTIONS_PER_CHUNK)
        for start in progress_bar(chunks, desc="predict", unit="chunk", disable=len(chunks) < 2):
            chunk = results[start : start + QUESTIONS_PER_CHUNK]
            pairs = reading_pairs(chunk, config.top_k_passages)
            features = inference_features(
                [chunk[qi].question for qi, _ in pairs],
                [chunk[qi].passages[rank].title for qi, rank in pairs],
                [chunk[qi].passages[rank].text for qi, rank in pairs],
                self.tokenizer,
                self.settings,
            )
            chunk_predictions, chunk_nbest = select_answers(
                chunk, pairs, features, self._logits(features, config.batch_size), config
            )
            predictions.update(chunk_predictions)
            nbest.update(chunk_nbest)
        return predictions, nbest


def reading_pairs(results: list[RetrievalResult], top_k_passages: int | None) -> list[tuple[int, int]]:
    """(question index, passage index) for every passage the reader reads."""
    return [(qi, rank) for qi, r in enumerate(results) for rank in range(len(r.passages[:top_k_passages]))]


def select_answers(
    results: list[RetrievalResult],
    pairs: list[tuple[int, int]],
    features: list[InferenceFeature],
    logits: list[tuple[np.ndarray, np.ndarray]],
    config: PredictConfig,
) -> tuple[dict, dict]:
    """Rank every window's spans per question; one n-best entry per distinct answer text."""
    retrieval_probs: list[np.ndarray | None] = []
    for result in results:
        scores = np.array([h.score for h in result.passages[: config.top_k_passages]], dtype=np.float64)
        retrieval_probs.append(_softmax(scores) if config.use_retrieval_score and scores.size else None)

    nulls: dict[int, NullScore] = {}  # per (question, passage) pair: min over its windows
    for feature, (starts, ends) in zip(features, logits, strict=True):
        null = window_null_score(starts, ends, feature.cls_index)
        seen = nulls.get(feature.pair_index)
        nulls[feature.pair_index] = null if seen is None else seen.merge(null)

    ends_of: dict[str, frozenset[int]] = {}
    if config.word_spans == "morpheme":
        texts = list(dict.fromkeys(results[qi].passages[rank].text for qi, rank in pairs))
        ends_of = dict(zip(texts, piece_ends(texts), strict=True))

    candidates: list[list[dict]] = [[] for _ in results]
    for feature, (starts, ends) in zip(features, logits, strict=True):
        qi, rank = pairs[feature.pair_index]
        hit = results[qi].passages[rank]
        probs = retrieval_probs[qi]
        retrieval_prob = float(probs[rank]) if probs is not None else None
        null = nulls[feature.pair_index]
        ranking_null = null if config.null_score == "subtract" else None
        for span in feature_spans(
            starts,
            ends,
            feature.offsets,
            config.n_best,
            config.max_answer_length or DEFAULT_MAX_ANSWER_LENGTH,
            hit.text,
            config.word_spans,
            ends_of.get(hit.text, frozenset()),
        ):
            candidates[qi].append(
                {
                    "text": hit.text[span["start_char"] : span["end_char"]],
                    # where the answer starts in the passage: trimming particles keeps the start
                    "start_char": span["start_char"],
                    "score": (score := span_score(span, config.score_mode, retrieval_prob, ranking_null)),
                    "log_score": score
                    if config.score_mode == "logit_sum"
                    else math.log(max(score, PROB_FLOOR)),
                    "start_logit": span["start_logit"],
                    "end_logit": span["end_logit"],
                    "start_prob": span["start_prob"],
                    "end_prob": span["end_prob"],
                    "null_score": null.logit,
                    "null_prob": null.prob,
                    "passage_id": hit.passage_id,
                    "document_id": hit.document_id,
                    "passage_rank": rank + 1,
                    "retrieval_score": hit.score,
                }
            )
    for cands in candidates:
        cands.sort(key=lambda c: c["score"], reverse=True)
    summing = config.merge_spans == "sum"
    if summing:
        candidates = [sum_same_answer(_one_per_span(cands), config.score_mode) for cands in candidates]
    if config.trim_particles:
        # Only the best spans can reach the n-best list; trimming merges some texts, hence the slack.
        for i, cands in enumerate(candidates):
            candidates[i] = cands[: config.n_best * TRIM_SLACK]
        trimmed = _trim_until_n_best(candidates, config.n_best)
        if summing:  # texts that trim to one answer add up too; the untrimmed rest cannot reach the n-best
            candidates = [
                sum_same_answer(cands[:n], config.score_mode)
                for cands, n in zip(candidates, trimmed, strict=True)
            ]

    predictions, nbest = {}, {}
    for result, cands in zip(results, candidates, strict=True):
        seen, best = set(), []
        for c in cands:  # one entry per answer, at its best score
            if c["text"].strip() and (key := _key(c["text"])) not in seen:
                seen.add(key)
                best.append(c)
                if len(best) == config.n_best:
                    break
        best = config.pick_first(best, [c["log_score"] for c in best])
        nbest[result.id] = best
        predictions[result.id] = best[0]["text"] if best else ""
    return predictions, nbest


def _one_per_span(cands: list[dict]) -> list[dict]:
    """Each passage span once, at its best score: overlapping windows read the same span twice, which is
    one place in the text, not two."""
    seen: set[tuple] = set()
    kept = []
    for c in cands:  # best first
        key = (c["passage_id"], c["start_char"], c["text"])
        if key not in seen:
            seen.add(key)
            kept.append(c)
    return kept


def sum_same_answer(cands: list[dict], score_mode: str) -> list[dict]:
    """One entry per answer, best first, scored by its spans' probabilities summed (in logit_sum the log
    of the summed exp(score)): a reader that points at the same answer in two sentences or passages is
    surer of it than its best span says. Spans are one answer when exact match equates their texts
    (`answer_key`: "세종대왕" and "'세종대왕'" add up). Each entry is the answer's best span, with `spans`
    counted."""
    groups: dict[str, list[dict]] = {}
    for c in cands:  # best first, so each group's first entry is its best span
        key = _key(c["text"])
        group = groups.get(key)
        if group is None:
            groups[key] = [c]
        else:
            group.append(c)
    merged = []
    for spans in groups.values():
        best, count = spans[0], sum(c.get("spans", 1) for c in spans)  # merged entries count their own
        if len(spans) == 1:  # most texts: no arithmetic (about 2 ms per question of 1,000 spans, not 5)
            merged.append({**best, "spans": count})
            continue
        scores = [c["score"] for c in spans]
        if score_mode == "logit_sum":
            peak = max(scores)
            score = log_score = peak + math.log(math.fsum(math.exp(x - peak) for x in scores))
        else:
            score = math.fsum(scores)
            log_score = math.log(max(score, PROB_FLOOR))
        merged.append({**best, "score": score, "log_score": log_score, "spans": count})
    merged.sort(key=lambda c: c["score"], reverse=True)
    return merged


def _key(text: str) -> str:
    """`answer_key`, or the text itself when nothing is left of it (punctuation alone is no answer to merge)."""
    return answer_key(text) or text


def _trim_until_n_best(candidates: list[list[dict]], n_best: int) -> list[int]:
    """Trim particles from candidate texts in score order, a round at a time, until each question has
    n_best distinct trimmed texts or no candidates left. The n-best lists are those of trimming every
    candidate, while Kiwi reads about n_best spans per question instead of n_best x TRIM_SLACK: Kiwi was
    40 % of a served question's time. Returns how many candidates of each question were trimmed."""
    from odqa.korean_answers import trim_particles

    done = [0] * len(candidates)  # candidates trimmed so far, per question (a prefix, in score order)
    while True:
        todo = []
        for qi, cands in enumerate(candidates):
            distinct = len({_key(c["text"]) for c in cands[: done[qi]] if c["text"].strip()})
            if distinct < n_best and done[qi] < len(cands):
                end = min(len(cands), done[qi] + max(n_best - distinct, TRIM_ROUND_MIN))
                todo.append((qi, done[qi], end))
        if not todo:
            return done
        texts = sorted({c["text"] for qi, start, end in todo for c in candidates[qi][start:end]})
        trimmed = dict(zip(texts, trim_particles(texts), strict=True))
        for qi, start, end in todo:
            for c in candidates[qi][start:end]:
                c["text"] = trimmed[c["text"]]
            done[qi] = end


PREDICTIONS_KIND = "predictions"  # odqa.io output kind


def _write(
    predictions: dict, nbest: dict, out_dir: str | Path, n: int, seconds: float, force: bool = False
) -> PredictResult:
    """Both files in one folder replace: a crash never leaves one new file beside an old one."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, kind=PREDICTIONS_KIND, force=force) as tmp:
        write_json(tmp / PREDICTIONS_FILE, predictions)
        write_json(tmp / NBEST_FILE, nbest)
    log.info("predicted %d questions in %.1fs (%.1f questions/s)", n, seconds, n / max(seconds, 1e-9))
    return PredictResult(out_dir / PREDICTIONS_FILE, out_dir / NBEST_FILE, n, seconds)


def predict(
    config: PredictConfig,
    model_dir: str | Path,
    retrieved_path: str | Path,
    out_dir: str | Path,
    force: bool = False,
) -> PredictResult:
    """Read retrieved.jsonl and write predictions.json + nbest.json into out_dir."""
    Placement.resolve(config.device, config.precision)  # a device this machine lacks fails before loading
    check_output_dir(out_dir, PREDICTIONS_KIND, force)
    reader = Reader.load(model_dir)
    results = load_retrieved(retrieved_path)
    if results and not any(r.passages for r in results):
        raise InputError(
            f"none of the {len(results)} questions has a retrieved passage: rebuild it with odqa retrieve",
            path=retrieved_path,
        )
    t0 = time.perf_counter()
    predictions, nbest = reader.predict(results, config)
    return _write(predictions, nbest, out_dir, len(results), time.perf_counter() - t0, force)


def predict_gold(
    config: PredictConfig,
    model_dir: str | Path,
    qa_path: str | Path,
    out_dir: str | Path,
    force: bool = False,
) -> PredictResult:
    """Like `predict`, but each question reads only its own (gold) context: reader-only accuracy."""
    from odqa.data import load_qa

    Placement.resolve(config.device, config.precision)
    check_output_dir(out_dir, PREDICTIONS_KIND, force)
    reader = Reader.load(model_dir)
    results = results_from_gold(load_qa(qa_path).examples)
    t0 = time.perf_counter()
    predictions, nbest = reader.predict(results, config)
    return _write(predictions, nbest, out_dir, len(results), time.perf_counter() - t0, force)
