"""Dense passage retrieval, the model half: a question encoder and a passage encoder (DPR) and how they
are trained, with in-batch negatives plus BM25 hard negatives (for each question, a passage BM25 ranks
high that is not from the gold document and does not contain the answer: the near-misses a lexical
retriever gets wrong). Encoders start from any Hugging Face checkpoint (`encoder_model`) or, offline,
from a small BERT trained from scratch with the project's WordPiece tokenizer. The index half (FAISS,
search) is odqa.retrieval.dense.
"""

from __future__ import annotations

import logging
import random
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, get_linear_schedule_with_warmup

from odqa.config import StageConfig
from odqa.errors import InputError
from odqa.io import write_jsonl
from odqa.progress import progress_bar
from odqa.schema import PASSAGES_FILE, TRAINING_LOSS_PLOT_FILE, Passage, QAExample

log = logging.getLogger(__name__)

QUESTION_ENCODER_DIR = "question_encoder"
PASSAGE_ENCODER_DIR = "passage_encoder"
LOSS_PLOT_FILE = TRAINING_LOSS_PLOT_FILE


class DenseConfig(StageConfig):
    runtime_fields = frozenset({"encode_batch_size", "num_threads"})
    train_qa: str = Field(
        "",
        description="qa.jsonl whose document_id names each question's gold passage; needed unless init_from",
    )
    encoder_model: str = Field(
        "", description='Hugging Face checkpoint (name or path) for both encoders ("": a BERT from scratch)'
    )
    init_from: str = Field(
        "", description="a dense index folder whose trained encoders are reused as they are (no training)"
    )
    vocab_size: int = Field(
        8000, ge=100, description="from scratch: WordPiece vocabulary trained on passages + questions"
    )
    hidden_size: int = Field(128, ge=1, description="from scratch: hidden size")
    num_layers: int = Field(2, ge=1, description="from scratch: transformer layers")
    num_heads: int = Field(2, ge=1, description="from scratch: attention heads")
    intermediate_size: int = Field(512, ge=1, description="from scratch: feed-forward size")
    max_question_tokens: int = Field(48, ge=1, description="questions are cut after this many tokens")
    max_passage_tokens: int = Field(256, ge=1, description="passages are cut after this many tokens")
    epochs: int = Field(4, ge=0, description="passes over the training questions")
    batch_size: int = Field(16, ge=2, description="questions per step (at least 2: in-batch negatives)")
    learning_rate: float = Field(
        5e-4, gt=0, description="AdamW learning rate (5e-4 from scratch; about 2e-5 suits a checkpoint)"
    )
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="share of steps with a linear warm-up")
    hard_negatives: int = Field(
        1, ge=0, description="BM25 hard negatives per question (0: in-batch negatives only)"
    )
    hard_negative_depth: int = Field(30, ge=1, description="how deep in the BM25 ranking to look for them")
    bm25_analyzer: str = Field("kiwi+bigram", description="analyzer of the BM25 index for hard negatives")
    title_prefix: bool = Field(True, description='encode "title\\ntext", as the BM25 index does')
    pooling: Literal["mean", "cls"] = Field(
        "mean", description="mean of token vectors (learns fast from scratch) or cls (DPR's [CLS] vector)"
    )
    # Cosine: from scratch, dot products let memorised training passages outrank unseen ones.
    similarity: Literal["dot", "cosine"] = Field(
        "dot",
        description="dot (DPR) or cosine: unit vectors and a temperature, so a passage cannot win on "
        "vector length alone",
    )
    temperature: float = Field(0.05, gt=0, description="cosine only: scores are divided by it in the loss")
    shared_encoder: bool = Field(False, description="one encoder for questions and passages")
    # Inverse cloze task over the whole corpus before QA training (no labels: a sentence of a passage
    # is the query, its passage the positive), so every passage, not only training ones, is seen.
    ict_epochs: int = Field(0, ge=0, description="inverse cloze epochs over the corpus before QA training")
    ict_queries_per_passage: int = Field(2, ge=1, description="inverse cloze queries per passage")
    index_type: Literal["flat", "hnsw", "ivfpq"] = Field(
        "flat",
        description="flat (exact inner product), hnsw (approximate, fast) or ivfpq (approximate, "
        "compressed: beyond what RAM holds flat)",
    )
    hnsw_m: int = Field(32, ge=2, description="hnsw: neighbours per node")
    hnsw_ef_search: int = Field(128, ge=1, description="hnsw: candidates looked at per search")
    ivf_nlist: int = Field(0, ge=0, description="ivfpq: inverted lists (0: 4 x sqrt(passages))")
    ivf_nprobe: int = Field(16, ge=1, description="ivfpq: lists searched per question")
    pq_m: int = Field(
        16, ge=1, description="ivfpq: sub-quantizers, bytes per passage (divides the dimension)"
    )
    encode_batch_size: int = Field(64, ge=1, description="texts per encoder forward pass")
    num_threads: int = Field(0, ge=0, description="torch/faiss threads (0: the library default)")
    seed: int = Field(13, description="random seed")

    @model_validator(mode="after")
    def _has_encoders(self) -> DenseConfig:
        if not self.train_qa and not self.init_from:
            raise ValueError(
                "dense retriever needs train_qa=QA.jsonl (questions with gold documents) or init_from=INDEX_DIR"
            )
        return self


@dataclass
class TrainingExample:
    question: str
    positive: int  # passage index
    hard_negatives: list[int]


class DualEncoder:
    """A question encoder and a passage encoder (BERT-style) sharing one tokenizer."""

    def __init__(self, question_model, passage_model, tokenizer, config: DenseConfig):
        self.question_model = question_model
        self.passage_model = passage_model
        self.tokenizer = tokenizer
        self.max_question_tokens = config.max_question_tokens
        self.max_passage_tokens = config.max_passage_tokens
        self.pooling = config.pooling
        self.normalize = config.similarity == "cosine"

    def _embed(self, model, texts: list[str], max_length: int) -> torch.Tensor:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        mask = batch["attention_mask"]
        hidden = model(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def embed_questions(self, texts: list[str]) -> torch.Tensor:
        return self._embed(self.question_model, texts, self.max_question_tokens)

    def embed_passages(self, texts: list[str]) -> torch.Tensor:
        return self._embed(self.passage_model, texts, self.max_passage_tokens)

    @torch.no_grad()
    def encode(self, texts: list[str], which: str, batch_size: int, progress: bool = False) -> np.ndarray:
        embed = self.embed_questions if which == "question" else self.embed_passages
        model = self.question_model if which == "question" else self.passage_model
        model.eval()
        chunks = []
        starts = range(0, len(texts), batch_size)
        for start in progress_bar(starts, desc=f"encode {which}s", unit="batch", disable=not progress):
            chunks.append(embed(texts[start : start + batch_size]).float().numpy())
        return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)

    def save(self, directory: Path) -> None:
        for sub, model in (
            (QUESTION_ENCODER_DIR, self.question_model),
            (PASSAGE_ENCODER_DIR, self.passage_model),
        ):
            model.save_pretrained(str(directory / sub))
            self.tokenizer.save_pretrained(str(directory / sub))

    @classmethod
    def load(cls, directory: Path, config: DenseConfig) -> DualEncoder:
        for sub in (QUESTION_ENCODER_DIR, PASSAGE_ENCODER_DIR):
            if not (directory / sub).is_dir():
                raise InputError(f"dense index is missing its {sub}/ folder", path=directory)
        return cls(
            AutoModel.from_pretrained(str(directory / QUESTION_ENCODER_DIR)),
            AutoModel.from_pretrained(str(directory / PASSAGE_ENCODER_DIR)),
            AutoTokenizer.from_pretrained(str(directory / QUESTION_ENCODER_DIR)),
            config,
        )


def passage_text(passage: Passage, title_prefix: bool) -> str:
    return f"{passage.title}\n{passage.text}" if title_prefix and passage.title else passage.text


def new_dual_encoder(config: DenseConfig, passages: list[Passage], examples: list[QAExample]) -> DualEncoder:
    """Both encoders from `encoder_model`, or fresh BERTs over a WordPiece vocabulary of this corpus."""
    if config.encoder_model:
        try:
            tokenizer = AutoTokenizer.from_pretrained(config.encoder_model)
            question_model = AutoModel.from_pretrained(config.encoder_model)
            passage_model = (
                question_model if config.shared_encoder else AutoModel.from_pretrained(config.encoder_model)
            )
        except OSError as e:
            raise InputError(f"cannot load encoder_model {config.encoder_model!r}: {e}") from None
    else:
        from odqa.text.wordpiece import train_wordpiece_tokenizer

        texts = [passage_text(p, config.title_prefix) for p in passages] + [e.question for e in examples]
        tokenizer = train_wordpiece_tokenizer(texts, vocab_size=config.vocab_size)
        bert = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.hidden_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            intermediate_size=config.intermediate_size,
            max_position_embeddings=max(512, config.max_passage_tokens),
            pad_token_id=tokenizer.pad_token_id,
        )
        question_model, passage_model = BertModel(bert), BertModel(bert)
    if config.shared_encoder:
        passage_model = question_model
    return DualEncoder(question_model, passage_model, tokenizer, config)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def training_examples(
    config: DenseConfig, examples: list[QAExample], passages: list[Passage], doc_aliases: dict[str, str]
) -> tuple[list[TrainingExample], dict[str, int]]:
    """Pair each question with its gold passage (the gold document's chunk holding the answer) and
    BM25 hard negatives; questions whose gold passage is not in the corpus are skipped and counted."""
    by_doc: dict[str, list[int]] = {}
    for i, p in enumerate(passages):
        by_doc.setdefault(doc_aliases.get(p.document_id, p.document_id), []).append(i)
    paired: list[tuple[QAExample, int, list[str]]] = []
    for e in examples:
        candidates = by_doc.get(doc_aliases.get(e.document_id, e.document_id), [])
        answers = [_nfc(a) for a in e.answers["text"] if a.strip()]
        holding = [i for i in candidates if any(a in _nfc(passages[i].text) for a in answers)]
        chosen = (holding or candidates)[:1]
        if chosen:
            paired.append((e, chosen[0], answers))
    stats = {"questions": len(examples), "with_gold_passage": len(paired), "hard_negatives": 0}
    negatives: list[list[int]] = [[] for _ in paired]
    if config.hard_negatives > 0 and paired:
        negatives = _bm25_hard_negatives(config, paired, passages, doc_aliases)
        stats["hard_negatives"] = sum(len(n) for n in negatives)
    return [
        TrainingExample(e.question, pos, neg) for (e, pos, _), neg in zip(paired, negatives, strict=True)
    ], stats


def _bm25_hard_negatives(
    config: DenseConfig,
    paired: list[tuple[QAExample, int, list[str]]],
    passages: list[Passage],
    doc_aliases: dict[str, str],
) -> list[list[int]]:
    from odqa.retrieval.bm25 import BM25Config, BM25Retriever

    position = {p.passage_id: i for i, p in enumerate(passages)}
    with tempfile.TemporaryDirectory(prefix="odqa-dense-bm25-") as tmp:
        write_jsonl(Path(tmp) / PASSAGES_FILE, (p.to_dict() for p in passages))
        bm25 = BM25Retriever.build(
            BM25Config(analyzer=config.bm25_analyzer, title_prefix=config.title_prefix),
            Path(tmp) / PASSAGES_FILE,
            Path(tmp) / "index",
        )
        rankings = bm25.search([e.question for e, _, _ in paired], config.hard_negative_depth)
    out = []
    for (_, positive, answers), hits in zip(paired, rankings, strict=True):
        gold_document = passages[positive].document_id
        gold_doc = doc_aliases.get(gold_document, gold_document)
        chosen = []
        for hit in hits:
            if doc_aliases.get(hit.document_id, hit.document_id) == gold_doc or any(
                a in _nfc(hit.text) for a in answers
            ):
                continue
            chosen.append(position[hit.passage_id])
            if len(chosen) == config.hard_negatives:
                break
        out.append(chosen)
    return out


def train_dual_encoder(
    encoder: DualEncoder,
    data: list[TrainingExample],
    passages: list[Passage],
    config: DenseConfig,
    epochs: int | None = None,
    stage: str = "dense",
) -> list[float]:
    """In-batch + hard-negative contrastive training (NLL of the gold passage); returns mean loss per epoch.

    A column holding another question's copy of this row's gold passage is masked, so questions
    about the same paragraph (common in KorQuAD) are not pushed away from their own answer."""
    rng = random.Random(config.seed)
    texts = [passage_text(p, config.title_prefix) for p in passages]
    params = list(
        {id(p): p for m in (encoder.question_model, encoder.passage_model) for p in m.parameters()}.values()
    )
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.01)
    steps_per_epoch = (len(data) + config.batch_size - 1) // config.batch_size
    epochs = config.epochs if epochs is None else epochs
    total = steps_per_epoch * epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    encoder.question_model.train()
    encoder.passage_model.train()
    epoch_losses = []
    for epoch in range(epochs):
        order = list(range(len(data)))
        rng.shuffle(order)
        losses = []
        bar = progress_bar(
            range(0, len(order), config.batch_size),
            desc=f"{stage} epoch {epoch + 1}/{epochs}",
            unit="step",
        )
        for start in bar:
            batch = [data[i] for i in order[start : start + config.batch_size]]
            if len(batch) < 2:
                continue
            columns = [b.positive for b in batch] + [n for b in batch for n in b.hard_negatives]
            q = encoder.embed_questions([b.question for b in batch])
            p = encoder.embed_passages([texts[i] for i in columns])
            scores = q @ p.T
            if config.similarity == "cosine":
                scores = scores / config.temperature
            cols = torch.tensor(columns)
            gold = torch.tensor([b.positive for b in batch])
            same_passage = cols.unsqueeze(0) == gold.unsqueeze(1)
            same_passage[torch.arange(len(batch)), torch.arange(len(batch))] = False
            scores = scores.masked_fill(same_passage, float("-inf"))
            loss = torch.nn.functional.cross_entropy(scores, torch.arange(len(batch)))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        epoch_losses.append(float(np.mean(losses)) if losses else float("nan"))
        log.info("%s epoch %d: mean loss %.4f", stage, epoch + 1, epoch_losses[-1])
    return epoch_losses


def inverse_cloze_examples(passages: list[Passage], config: DenseConfig) -> list[TrainingExample]:
    """Pseudo-questions from the corpus itself: up to `ict_queries_per_passage` sentences per passage."""
    rng = random.Random(config.seed)
    data = []
    for i, passage in enumerate(passages):
        sentences = [s for s in _SENTENCE_END.split(passage.text) if len(s.strip()) >= 10]
        for sentence in rng.sample(sentences, min(len(sentences), config.ict_queries_per_passage)):
            data.append(TrainingExample(sentence.strip(), i, []))
    return data


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _plot_losses(losses: list[float], path: Path) -> None:
    from odqa.reports import line_plot

    line_plot(
        path,
        range(1, len(losses) + 1),
        losses,
        xlabel="epoch",
        ylabel="mean contrastive loss",
        title="Dense retriever training",
    )
