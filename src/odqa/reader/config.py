"""Reader configs, kept free of torch imports so the CLI and KFP components load fast."""

from __future__ import annotations

from dataclasses import dataclass

from odqa.errors import InputError

READER_CONFIG_FILE = "odqa_reader.json"  # inside a reader model folder: windowing + training summary
SCORE_MODES = ("prob_product", "logit_sum")


@dataclass
class ReaderTrainConfig:
    # None: a BERT trained from scratch with a WordPiece vocabulary learned from the corpus.
    reader_model: str | None = None
    vocab_size: int = 8000
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int | None = None  # None: 4 * hidden_size
    dropout: float = 0.1
    max_length: int = 256
    doc_stride: int = 64
    title_prefix: bool = False
    max_question_tokens: int = 64  # longer questions are cut so each window keeps room for context
    # From scratch only: mark context tokens that occur in the question (see ReaderSettings).
    question_overlap: bool = True
    epochs: float = 3.0
    max_steps: int | None = None  # stop after this many steps (overrides epochs when smaller)
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    shuffle: bool = True  # False keeps the file order (curriculum by ordering the file)
    seed: int = 42
    threads: int | None = None  # torch.set_num_threads; None leaves torch's default
    log_every: int = 25


@dataclass
class PredictConfig:
    score_mode: str = "prob_product"
    n_best: int = 20
    max_answer_length: int = 30  # in tokens
    # Read only the first k retrieved passages (None: all). With BM25 recall@5 at 0.998 on KorQuAD,
    # reading 20 costs 4x the time and lets a weak reader pick spans from wrong passages.
    top_k_passages: int | None = 5
    # Combine with a softmax over the question's retrieval scores (times the probability in
    # prob_product, plus its log in logit_sum). Measured on KorQuAD dev (bench/README.md): EM 0.95 ->
    # 2.08 at top-5 for the from-scratch reader, equal to reading the gold passage.
    use_retrieval_score: bool = True
    batch_size: int = 64
    # Cut trailing Korean particles/copulas from answers with Kiwi ("세종대왕은" -> "세종대왕"); measured
    # EM +0.6, F1 +0.2 on KorQuAD dev (bench/README.md). Off for languages other than Korean.
    trim_particles: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.score_mode not in SCORE_MODES:
            raise InputError(f"score_mode must be one of {SCORE_MODES}, got {self.score_mode!r}")
        if self.n_best < 1 or self.max_answer_length < 1:
            raise InputError("n_best and max_answer_length must be positive")
