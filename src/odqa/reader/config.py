"""Reader configs, kept free of torch imports so the CLI and KFP components load fast."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from odqa.config import StageConfig
from odqa.evaluation.metrics import AnswerPickFields
from odqa.schema import PRETRAIN_INFO_FILE, READER_CONFIG_FILE

__all__ = [
    "DEFAULT_MAX_ANSWER_LENGTH", "NULL_SCORE_MODES", "PRECISIONS", "PRETRAIN_INFO_FILE", "READER_CONFIG_FILE", "SCORE_MODES", "FoldsConfig", "PredictConfig", "PretrainConfig",
    "ReaderSettings", "ReaderTrainConfig", "ScratchModelFields", "TrainingLoopFields", "WordSpans",
]  # fmt: skip

ScoreMode = Literal["prob_product", "logit_sum"]
SCORE_MODES = get_args(ScoreMode)
NullScoreMode = Literal["ignore", "subtract"]
NULL_SCORE_MODES = get_args(NullScoreMode)
Precision = Literal["auto", "fp32", "bf16", "fp16"]
WordSpans = Literal["off", "start", "both", "morpheme"]
MergeSpans = Literal["sum", "max"]
PRECISIONS = get_args(Precision)


def _check_device(value: str) -> str:
    """auto, cpu, mps, cuda or cuda:N; whether it exists is checked when training or reading starts."""
    text = str(value).strip().lower()
    if text in ("auto", "cpu", "mps", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise ValueError(f"must be auto, cpu, cuda, cuda:N or mps, got {value!r}")


# Written by odqa.reader.pretrain beside the model (its config and training summary); a reader started
# from such a folder keeps question_overlap and focus_sentence when the model has token types for them.

# The transformers QA example's limit; readers trained before odqa recorded their own get it.
DEFAULT_MAX_ANSWER_LENGTH = 30

DEVICE_HELP = "auto (cuda if available, else mps, else cpu), cpu, cuda, cuda:N or mps"


class WindowFields(StageConfig):
    """The windowing settings training and prediction share (ReaderTrainConfig declares them once for
    the CLI; ReaderSettings saves them with the reader)."""

    max_length: int = Field(256, ge=8, description="tokens per window (question + context)")
    doc_stride: int = Field(64, ge=1, description="tokens consecutive windows of a long context overlap by")
    title_prefix: bool = Field(False, description='read contexts as "title\\ncontext"')
    max_question_tokens: int = Field(
        64, ge=1, description="longer questions are cut so each window keeps room for context"
    )

    @model_validator(mode="after")
    def _room_for_context(self) -> WindowFields:
        if self.question_budget < 1:
            raise ValueError(
                f"doc_stride {self.doc_stride} leaves no room in windows of max_length {self.max_length}: "
                "lower doc_stride or raise max_length"
            )
        return self

    @property
    def question_budget(self) -> int:
        """Question tokens per window: [CLS] q [SEP] context [SEP] must keep more context tokens than
        the stride, or the tokenizer panics; so a long question is cut rather than the run failing."""
        return min(self.max_question_tokens, self.max_length - 3 - self.doc_stride - 1)


class ScratchModelFields(StageConfig):
    """A BERT built from scratch with a vocabulary learned from the corpus: declared once for the reader
    (ReaderTrainConfig) and for masked-language-model pre-training (PretrainConfig)."""

    vocab_size: int = Field(8000, ge=100, description="from scratch: WordPiece vocabulary size")
    # Measured on KorQuAD dev (docs/reader-recipe.md): answers on token boundaries 77 % -> 99 %.
    morpheme_vocab: bool = Field(
        True,
        description="from scratch: learn the vocabulary from Kiwi morphemes, so particles and endings are "
        "tokens of their own and answers start and end on token boundaries",
    )
    # The offline default reader (make run's, `odqa train`'s; docs/reader-recipe.md, "Learning rate"): hidden
    # 192 / 3 heads for 3 epochs beat 128 / 2 heads for 5 (EM +2.17, F1 +2.67 over two seeds), and hidden
    # 256 / 4 heads for 2 epochs beat that at about 1.1x its training time (EM +1.16 [+0.14, +2.20], F1
    # +1.11 [+0.12, +2.11] over three seeds).
    hidden_size: int = Field(256, ge=1, description="from scratch: hidden size")
    num_layers: int = Field(2, ge=1, description="from scratch: transformer layers")
    num_heads: int = Field(4, ge=1, description="from scratch: attention heads")
    intermediate_size: int | None = Field(
        None, ge=1, description="from scratch: feed-forward size (none: 4 x hidden_size)"
    )
    dropout: float = Field(0.1, ge=0, lt=1, description="from scratch: dropout probability")


class TrainingLoopFields(StageConfig):
    """The optimisation settings of odqa's two training loops, declared once: the reader
    (ReaderTrainConfig) and masked-language-model pre-training (PretrainConfig). What a step's batch
    is (windows or sequences) and its size stay with each loop."""

    epochs: float = Field(3.0, gt=0, description="passes over the training data")
    max_steps: int | None = Field(
        None, ge=1, description="stop after this many steps when fewer than the epochs take (none: no cap)"
    )
    # The reader on KorQuAD dev at make run's budget (docs/reader-recipe.md "Learning rate"): 2e-3 was not
    # clearly better over four seeds (F1 +0.97 [-0.11, +2.00]), 3e-3 neither.
    learning_rate: float = Field(1e-3, gt=0, description="peak AdamW learning rate")
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="share of steps with a linear warm-up")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    seed: int = Field(42, description="random seed")
    num_threads: int | None = Field(None, ge=1, description="torch threads (none: torch's default)")
    log_every: int = Field(25, ge=1, description="steps between loss log lines")
    device: str = Field("auto", description=DEVICE_HELP)
    precision: Precision = Field(
        "auto",
        description="fp32, bf16 (autocast; CUDA with bf16 support, or CPU when asked), fp16 (CUDA, with a "
        "gradient scaler); auto: bf16 on CUDA that supports it, else fp32",
    )
    grad_accum: int = Field(
        1,
        ge=1,
        description="split each step's batch into this many forward passes (less memory, same step): "
        "batch_size counts the whole step, over all processes and passes",
    )

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value):
        return _check_device(value)


class ReaderTrainConfig(WindowFields, ScratchModelFields, TrainingLoopFields):
    renamed_keys = {"threads": "num_threads"}

    # The default reader's passes (see ScratchModelFields.hidden_size): more overfit it (a 6th epoch of
    # the smaller reader lost F1 -1.83 [-3.21, -0.47]). Pre-training keeps TrainingLoopFields' 3.
    epochs: float = Field(2.0, gt=0, description="passes over the training data")

    reader_model: str | None = Field(
        None,
        description="Hugging Face checkpoint (hub name or folder, e.g. an odqa pretrain output) to fine-tune "
        "(none: a small BERT trained from scratch with a WordPiece vocabulary learned from the corpus)",
    )
    question_overlap: bool = Field(
        True,
        description="from scratch only: mark context tokens that also occur in the question "
        "(an extra token type)",
    )
    # Measured on KorQuAD dev (docs/reader-recipe.md): EM 3.9 -> 8.3, F1 15.4 -> 24.5 at make run's budget.
    focus_sentence: bool = Field(
        True,
        description="from scratch only: mark the context sentence sharing the most words with the question "
        "(extra token types)",
    )
    batch_size: int = Field(
        16, ge=1, description="windows per optimizer step (all processes and grad_accum passes)"
    )
    shuffle: bool = Field(
        True, description="shuffle windows each epoch (off: keep the file order, a curriculum)"
    )
    # Together, with padding out of the loss (measured 2026-11-30, docs/reader-recipe.md "Fewer tokens per
    # epoch"): about 0.64x the default reader's training time, EM +0.61 [-0.52, +1.74], F1 -0.31 [-1.41,
    # +0.81] over two seeds.
    group_by_length: bool = Field(
        True,
        description="with shuffle: batches of windows of similar length, so less padding is computed "
        "(random windows in groups of 50 batches, sorted by length, then the batches shuffled)",
    )
    no_answer_windows: float = Field(
        0.5,
        gt=0,
        le=1,
        description="share of the windows without the answer (labelled 'no answer here') trained on in "
        "each epoch, drawn anew each epoch (1: all)",
    )
    # Off: 0.15 and 0.3 gave no gain on the default reader (2026-12-01, docs/reader-recipe.md "Context
    # masking").
    context_masking: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="share of each training window's context tokens outside the answer replaced by the "
        "mask token, drawn anew every step (0: off)",
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass (large encoders: less memory, slower)"
    )
    loader_workers: int = Field(
        0, ge=0, description="processes padding batches ahead (0: in the training loop, the fastest on CPU)"
    )
    checkpoint_every: int | None = Field(
        None, ge=1, description="save a resumable checkpoint every this many steps (none: never)"
    )
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept (the newest)")
    checkpoint_dir: str | None = Field(
        None, description="where checkpoints go (none: <out>/checkpoints); a persistent volume on a cluster"
    )
    resume: bool = Field(
        False,
        description="continue from the newest checkpoint when there is one (same data and settings, or an "
        "error)",
    )
    eval_qa: str | None = Field(
        None, description="qa.jsonl scored (EM/F1, gold context) while training; the best model is kept"
    )
    eval_every: int | None = Field(
        None, ge=1, description="steps between evaluations on eval_qa (none: after each epoch)"
    )
    patience: int | None = Field(
        None, ge=1, description="stop after this many evaluations without a better F1 (none: never early)"
    )


class PredictConfig(AnswerPickFields):
    renamed_keys = {"threads": "num_threads"}

    # Measured on KorQuAD dev with the focus-sentence reader (docs/reader-recipe.md): EM +1.5, F1 +2.2 over
    # prob_product, in both article halves of the eval split; without that feature the gain was noise.
    score_mode: ScoreMode = Field(
        "logit_sum",
        description="logit_sum: start + end logit (comparable across windows); prob_product: softmax(start) x "
        "softmax(end) within each window",
    )
    n_best: int = Field(20, ge=1, description="answer candidates kept per question")
    # Measured on KorQuAD dev (docs/reader-recipe.md): 30 -> the reader's own (10 tokens), EM 8.9 -> 11.1.
    max_answer_length: int | None = Field(
        None,
        ge=1,
        description="longest answer, in tokens (none: the reader's own, the 99th percentile of its training "
        f"answers; {DEFAULT_MAX_ANSWER_LENGTH} for readers saved before they recorded it)",
    )
    # With BM25 recall@5 at 0.998 on KorQuAD, reading 20 costs 4x the time and lets a weak reader pick
    # spans from wrong passages.
    top_k_passages: int | None = Field(
        5, ge=1, description="read only the first k retrieved passages per question (none or 0: all)"
    )
    # Measured on KorQuAD dev (bench/README.md): EM 0.95 -> 2.08 at top-5 for the from-scratch reader.
    use_retrieval_score: bool = Field(
        True,
        description="combine with a softmax over the question's retrieval scores (times the probability "
        "in prob_product, plus its log in logit_sum)",
    )
    batch_size: int = Field(64, ge=1, description="windows per forward pass")
    # Measured EM +0.6, F1 +0.2 on KorQuAD dev (bench/README.md). Off for languages other than Korean.
    trim_particles: bool = Field(
        True,
        description='cut trailing Korean particles and copulas from answers with Kiwi ("세종대왕은" -> "세종대왕")',
    )
    num_threads: int | None = Field(None, ge=1, description="torch threads (none: torch's default)")
    # Measured on KorQuAD dev (docs/reader-recipe.md): "start" EM 8.3 -> 8.9, F1 24.5 -> 25.2; "both" 6.0 / 22.1
    # (a Korean answer ends before a particle, inside its word; trimming recovers only part of those);
    # "morpheme" over "start": EM +2.00 [+1.27, +2.81], F1 +0.72 [-0.06, +1.47] over three readers.
    word_spans: WordSpans = Field(
        "morpheme",
        description="start: answers start where a word starts (a span starting inside a word is rarely an "
        "answer); morpheme: also end where a word ends or in front of a particle, ending, suffix or copula "
        "(Kiwi), never inside a name; both: end only where a word ends; off: any token",
    )
    # Over three readers, the same predictions summed vs max: EM +0.61 [+0.26, +1.01], F1 +0.55 [+0.23, +0.91]
    # (docs/reader-recipe.md, "An answer's spans add up").
    merge_spans: MergeSpans = Field(
        "sum",
        description="how the spans of one answer (the texts exact match equates) score together: sum: their "
        "probabilities add up (an answer stated in several places or passages gains); max: its best span alone",
    )
    null_score: NullScoreMode = Field(
        "ignore",
        description="subtract: rank each span against its passage's 'no answer here' (CLS) score, so a "
        "passage the reader itself rejects ranks lower; ignore: the span alone",
    )
    device: str = Field("auto", description=DEVICE_HELP)
    precision: Precision = Field(
        "auto", description="fp32, bf16, fp16 (CUDA); auto: bf16 on CUDA that supports it, else fp32"
    )

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value):
        return _check_device(value)

    @field_validator("top_k_passages", mode="before")
    @classmethod
    def _zero_means_all(cls, value):
        """0 reads every passage, as `--top-k-passages 0` always has."""
        return None if value == 0 or (isinstance(value, str) and value.strip() == "0") else value


class ReaderSettings(WindowFields):
    """How text is windowed; saved with a trained reader (odqa_reader.json) so predict reads text exactly
    as training did."""

    # Context tokens that also occur in the question get token type 2 (DrQA's exact-match feature).
    # Label-free, so identical at inference; it lets a small reader trained from scratch find the
    # sentence the question talks about. Needs a model with type_vocab_size 3.
    question_overlap: bool = Field(False, description="mark context tokens that also occur in the question")
    # Written by train: the 99th percentile of the training answers' token lengths. A span limit from the
    # reader's own data, not one number for every language and tokenizer (KorQuAD, morpheme vocabulary:
    # 10 tokens, where the transformers example's 30 let the reader pick whole clauses).
    max_answer_length: int | None = Field(
        None, ge=1, description="longest answer predict considers, in tokens (none: predict's default)"
    )
    # The context sentence sharing the most words with the question holds the answer for 81 % of KorQuAD
    # questions; its tokens get the token type + 2 (odqa.reader.features.focus_spans). Label-free too.
    focus_sentence: bool = Field(
        False, description="mark the context sentence sharing the most words with the question"
    )


class PretrainConfig(ScratchModelFields, TrainingLoopFields):
    """Masked-language-model training on the corpus' passages (odqa.reader.pretrain)."""

    base_model: str | None = Field(
        None,
        description="Hugging Face checkpoint folder to continue (task-adaptive pre-training; none: a small "
        "BERT from scratch with a vocabulary learned from the passages)",
    )
    question_overlap: bool = Field(
        True,
        description="from scratch: give the model the reader's extra token types, so a reader started from "
        "it can mark question overlap and the focus sentence (ReaderTrainConfig.question_overlap, "
        "focus_sentence)",
    )
    max_length: int = Field(256, ge=8, description="tokens per training sequence (passages are concatenated)")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="share of tokens masked")
    whole_word_masking: bool = Field(
        False, description="mask every token of a Kiwi morpheme together (not single word pieces)"
    )
    batch_size: int = Field(32, ge=1, description="sequences per optimizer step (all grad_accum passes)")


class FoldsConfig(StageConfig):
    """k-fold training data for a reader ensemble (odqa.reader.folds)."""

    folds: int = Field(3, ge=2, description="number of folds: reader k trains on every fold but k")
    seed: int = Field(42, description="seed of the article shuffle before the folds are cut")
