"""Train an extractive reader: a small BERT from scratch (default) or any Hugging Face QA checkpoint.

The loop is plain torch rather than the Hugging Face Trainer: per-example loss weights (curriculum,
augmentation confidence) need a custom loss anyway, the file order must be kept when `shuffle=False`,
and a 2-core CPU run should not pay for accelerate's device and logging machinery. It stays
deterministic for a given seed and thread count.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import (
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    BertConfig,
    BertForQuestionAnswering,
    get_linear_schedule_with_warmup,
    set_seed,
)

from odqa.errors import InputError
from odqa.io import atomic_dir, write_json
from odqa.reader.config import READER_CONFIG_FILE, ReaderTrainConfig
from odqa.reader.features import ReaderSettings, train_features
from odqa.reader.predict import pad_windows, torch_threads
from odqa.schema import TRAINING_LOSS_PLOT_FILE, QAExample
from odqa.text.wordpiece import train_wordpiece_tokenizer

log = logging.getLogger(__name__)

LOSS_PLOT_FILE = TRAINING_LOSS_PLOT_FILE


def _load_examples(path: str | Path) -> list[QAExample]:
    from odqa.data import load_qa

    examples = load_qa(path).examples
    if not examples:
        raise InputError("no training examples", path=path)
    for ex in examples:
        if not ex.context.strip():
            raise InputError("training example has no context to read", path=path, record=ex.id)
    if not any(ex.is_answerable for ex in examples):
        raise InputError("no training example has an answer (only no-answer examples)", path=path)
    return examples


def _corpus_texts(corpus_path: str | Path | None, examples: list[QAExample]):
    """Passages' texts and titles, then the training contexts and questions (tokenizer training text)."""
    if corpus_path is not None:
        from odqa.data import load_passages

        for passage in load_passages(corpus_path):
            yield passage.text
            if passage.title:
                yield passage.title
    seen_contexts = set()
    for ex in examples:
        if ex.context not in seen_contexts:
            seen_contexts.add(ex.context)
            yield ex.context
            if ex.title:
                yield ex.title
        yield ex.question


def _build_model(config: ReaderTrainConfig, examples: list[QAExample], corpus_path, out_dir: Path):
    if config.reader_model:
        tokenizer = AutoTokenizer.from_pretrained(config.reader_model)
        model = AutoModelForQuestionAnswering.from_pretrained(config.reader_model)
        return model, tokenizer
    tokenizer = train_wordpiece_tokenizer(
        _corpus_texts(corpus_path, examples), None, vocab_size=config.vocab_size
    )
    bert = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size or 4 * config.hidden_size,
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.dropout,
        max_position_embeddings=config.max_length,
        type_vocab_size=3 if config.question_overlap else 2,
        pad_token_id=tokenizer.pad_token_id,
    )
    return BertForQuestionAnswering(bert), tokenizer


def weighted_span_loss(start_logits, end_logits, start_positions, end_positions, weights) -> torch.Tensor:
    """Mean over the batch of weight * (CE(start) + CE(end)) / 2."""
    ce = torch.nn.functional.cross_entropy
    per_example = (
        ce(start_logits, start_positions, reduction="none") + ce(end_logits, end_positions, reduction="none")
    ) / 2
    return (per_example * weights).sum() / weights.numel()


def _save_loss_plot(losses: list[tuple[int, float]], path: Path) -> None:
    from odqa.reports import line_plot

    line_plot(
        path,
        [s for s, _ in losses],
        [v for _, v in losses],
        xlabel="step",
        ylabel=f"mean training loss (window {losses[0][0] if losses else 0})",
        title="reader training loss",
        marker=None,
    )


def train_reader(
    config: ReaderTrainConfig,
    train_qa_path: str | Path,
    out_dir: str | Path,
    corpus_path: str | Path | None = None,
) -> Path:
    """Train on qa.jsonl and write a Hugging Face model folder (+ tokenizer + odqa_reader.json)."""
    with torch_threads(config.num_threads):
        return _train_reader(config, train_qa_path, out_dir, corpus_path)


def _train_reader(
    config: ReaderTrainConfig, train_qa_path: str | Path, out_dir: str | Path, corpus_path: str | Path | None
) -> Path:
    set_seed(config.seed)
    examples = _load_examples(train_qa_path)
    out_dir = Path(out_dir)
    settings = ReaderSettings(
        max_length=config.max_length,
        doc_stride=config.doc_stride,
        title_prefix=config.title_prefix,
        max_question_tokens=config.max_question_tokens,
        question_overlap=config.question_overlap and not config.reader_model,
    )  # validated before any training work
    with atomic_dir(out_dir) as tmp:
        model, tokenizer = _build_model(config, examples, corpus_path, tmp)
        features = train_features(examples, tokenizer, settings, path=train_qa_path)
        summary = _train_loop(config, model, tokenizer, features)
        summary.update(examples=len(examples), features=len(features))
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        write_json(
            tmp / READER_CONFIG_FILE,
            {
                **settings.to_dict(),
                "reader_model": config.reader_model,
                "train_config": config.to_dict(),
                "training": summary,
            },
        )
        if summary["loss_history"]:
            _save_loss_plot(summary["loss_history"], tmp / LOSS_PLOT_FILE)
    log.info(
        "reader trained: %d steps, %.0f tokens/s, %.0fs, final loss %.3f -> %s",
        summary["steps"],
        summary["tokens_per_second"],
        summary["seconds"],
        summary["final_loss"],
        out_dir,
    )
    return out_dir


def _train_loop(config: ReaderTrainConfig, model, tokenizer, features: list[dict]) -> dict:
    steps_per_epoch = math.ceil(len(features) / config.batch_size)
    total_steps = math.ceil(steps_per_epoch * config.epochs)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    if total_steps < 1:
        raise InputError("nothing to train: zero steps (check epochs / max_steps)")
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": config.weight_decay,
        },
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps
    )
    generator = torch.Generator().manual_seed(config.seed)
    input_names = [n for n in tokenizer.model_input_names if n in features[0]]

    model.train()
    step, tokens, window, history = 0, 0, [], []
    t0 = time.perf_counter()
    progress = tqdm(total=total_steps, desc="train reader", unit="step")
    while step < total_steps:
        order = (
            torch.randperm(len(features), generator=generator).tolist()
            if config.shuffle
            else range(len(features))
        )
        order = list(order)
        for b in range(0, len(order), config.batch_size):
            batch = [features[i] for i in order[b : b + config.batch_size]]
            inputs = pad_windows(tokenizer, [{n: f[n] for n in input_names} for f in batch])
            outputs = model(**inputs)
            loss = weighted_span_loss(
                outputs.start_logits,
                outputs.end_logits,
                torch.tensor([f["start_positions"] for f in batch]),
                torch.tensor([f["end_positions"] for f in batch]),
                torch.tensor([f["weight"] for f in batch], dtype=torch.float32),
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            tokens += int(inputs["attention_mask"].sum())
            window.append(loss.item())
            progress.update(1)
            if step % config.log_every == 0 or step == total_steps:
                history.append((step, sum(window) / len(window)))
                progress.set_postfix(loss=f"{history[-1][1]:.3f}")
                log.info("step %d/%d loss %.4f", step, total_steps, history[-1][1])
                window = []
            if step >= total_steps:
                break
    progress.close()
    seconds = time.perf_counter() - t0
    model.eval()
    return {
        "steps": step,
        "epochs": step / steps_per_epoch,
        "seconds": round(seconds, 2),
        "tokens": tokens,
        "tokens_per_second": tokens / seconds if seconds > 0 else 0.0,
        "num_threads": torch.get_num_threads(),
        "first_loss": history[0][1] if history else float("nan"),
        "final_loss": history[-1][1] if history else float("nan"),
        "loss_history": history,
    }
