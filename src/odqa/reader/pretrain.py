"""Pretrain stage: masked-language-model training on the corpus' passages, from scratch or continuing a
Hugging Face checkpoint (task-adaptive pre-training), into a model folder that `train_reader` starts from
(`reader_model` = that folder).

The competition's winning readers were pre-trained encoders, and two teams gained from further MLM
training on the competition's Wikipedia; odqa's default reader otherwise starts from random weights on a
few thousand questions. Passages are concatenated and cut into `max_length` sequences (the usual
`group_texts` of the transformers MLM example); masking is transformers' DataCollatorForLanguageModeling,
whose whole-word masking groups tokens by character offsets: with `whole_word_masking` the offsets
handed to it are made to touch exactly within a Kiwi morpheme, so a morpheme is masked as a whole.

Runs where the reader runs (odqa.reader.device: device, precision, gradient scaler), on one process or
data-parallel under torchrun like the reader (`python -m odqa.reader.train_ddp --stage pretrain`): each
sequence is masked from its own seed, so the masks, and so the steps, do not depend on how many
processes share a step.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertForMaskedLM,
    DataCollatorForLanguageModeling,
    get_linear_schedule_with_warmup,
    set_seed,
)

from odqa.errors import InputError
from odqa.io import atomic_dir, check_output_dir, write_json
from odqa.progress import progress_bar
from odqa.reader.config import PRETRAIN_INFO_FILE, PretrainConfig
from odqa.reader.device import Placement, optimizer_step
from odqa.reader.distributed import Processes, micro_batches, share_tokenizer
from odqa.reader.predict import torch_threads

log = logging.getLogger(__name__)

PRETRAIN_KIND = "pretrained_model"  # odqa.io output kind
LOSS_PLOT_FILE = "pretrain_loss.png"


@dataclass
class PretrainResult:
    model_dir: Path
    summary: dict  # steps, seconds, tokens, loss_history [(step, loss)], device, precision, ...


def _passage_texts(passages_path: str | Path) -> list[str]:
    from odqa.data import load_passages

    texts = []
    for p in load_passages(passages_path):
        text = unicodedata.normalize("NFC", f"{p.title}\n{p.text}" if p.title else p.text)
        if text.strip():
            texts.append(text)
    if not texts:
        raise InputError("no passage text to pre-train on", path=passages_path)
    return texts


def _build(config: PretrainConfig, texts: list[str], procs: Processes):
    """(model, tokenizer): the base checkpoint with an MLM head, or a BERT from scratch whose
    vocabulary is learned from the passages (the reader's own from-scratch recipe; under torchrun rank 0
    learns it and every rank gets it)."""
    if config.base_model:
        folder = Path(config.base_model)
        if not folder.is_dir():
            raise InputError("base_model: checkpoint folder not found", path=folder)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            model = AutoModelForMaskedLM.from_pretrained(str(folder))
        except Exception as e:  # OSError, ValueError, KeyError, SafetensorError, ...
            lines = str(e).strip().splitlines()
            raise InputError(
                f"base_model: not a loadable checkpoint ({lines[0] if lines else type(e).__name__})",
                path=folder,
            ) from None
        if tokenizer.mask_token_id is None:
            raise InputError("base_model: its tokenizer has no mask token", path=folder)
        return model, tokenizer
    from odqa.reader.train import _scratch_config
    from odqa.text.wordpiece import train_wordpiece_tokenizer

    tokenizer = None
    if procs.is_main:
        tokenizer = train_wordpiece_tokenizer(
            texts,
            None,
            vocab_size=config.vocab_size,
            morphemes=config.morpheme_vocab,
            num_workers=config.num_threads or -1,
        )
    tokenizer = share_tokenizer(procs, tokenizer)
    set_seed(config.seed)  # every rank starts from the same weights
    return BertForMaskedLM(_scratch_config(config, tokenizer)), tokenizer


def _morpheme_ids(
    texts: list[str], offsets: list[list[tuple[int, int]]], num_workers: int
) -> list[list[int]]:
    """For each text's tokens, the number (unique over all texts) of the Kiwi morpheme piece its first
    character falls in."""
    from odqa.text.analyzers import get_kiwi
    from odqa.text.morphemes import DEFAULT_SPLIT_TAGS, split_points

    kiwi = get_kiwi(num_workers)
    out, base = [], 0
    for text, tokens, token_offsets in zip(texts, kiwi.tokenize(texts), offsets, strict=True):
        # Piece starts: Kiwi's split points plus every start of a run of non-space characters.
        starts = set(split_points(tokens, DEFAULT_SPLIT_TAGS))
        starts.update(
            i for i, ch in enumerate(text) if not ch.isspace() and (i == 0 or text[i - 1].isspace())
        )
        starts = sorted(starts)
        out.append([base + bisect.bisect_right(starts, s) for s, _ in token_offsets])
        base += len(starts) + 1
    return out


def _sequences(tokenizer, texts: list[str], block: int, config: PretrainConfig) -> list[dict]:
    """The passages' tokens concatenated and cut into sequences of `block` tokens with the tokenizer's
    own special tokens; a last short piece is kept only when it is the only one."""
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=config.whole_word_masking)
    words = None
    if config.whole_word_masking:
        words = _morpheme_ids(texts, enc["offset_mapping"], config.num_threads or -1)
    ids = [i for row in enc["input_ids"] for i in row]
    word_stream = [w for row in words for w in row] if words is not None else None
    prefix, suffix = _special_frame(tokenizer)
    room = block - len(prefix) - len(suffix)
    if room < 1:
        raise InputError(f"max_length {block} leaves no room for text between the special tokens")
    cuts = list(range(0, len(ids), room))
    if len(cuts) > 1 and len(ids) - cuts[-1] < room:
        cuts.pop()  # the short remainder (group_texts drops it too)
    sequences = []
    for start in cuts:
        chunk = ids[start : start + room]
        input_ids = prefix + chunk + suffix
        special = [1] * len(prefix) + [0] * len(chunk) + [1] * len(suffix)
        seq = {"input_ids": input_ids, "special_tokens_mask": special}
        if word_stream is not None:
            seq["offset_mapping"] = _touching_offsets(special, iter(word_stream[start : start + room]))
        sequences.append(seq)
    if not sequences or not ids:
        raise InputError("the passages tokenize to nothing")
    return sequences


def _special_frame(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one text ([CLS] .. [SEP], <s> .. </s>),
    read off an encoding (transformers 5 tokenizers have no build_inputs_with_special_tokens)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    framed = tokenizer("a", add_special_tokens=True)["input_ids"]
    for k in range(len(framed) - len(plain) + 1):
        if framed[k : k + len(plain)] == plain:
            return framed[:k], framed[k + len(plain) :]
    raise InputError("cannot tell the tokenizer's special tokens from its text tokens")


def _touching_offsets(special: list[int], words) -> list[tuple[int, int]]:
    """Offsets that touch exactly within one word and leave a gap between words: the grouping rule of
    DataCollatorForLanguageModeling(whole_word_mask=True), fed with Kiwi morphemes instead of text."""
    offsets, pos, previous = [], 1, None
    for is_special in special:
        if is_special:
            offsets.append((0, 0))
            previous = None
            continue
        word = next(words)
        if word != previous:
            pos += 1  # a gap: a new word starts here
        offsets.append((pos, pos + 1))
        pos += 1
        previous = word
    return offsets


def _pad(tokenizer, sequences: list[dict]) -> list[dict]:
    """Equal lengths (the collator stacks offsets and masks as they are): pad id, special, (0, 0)."""
    longest = max(len(s["input_ids"]) for s in sequences)
    out = []
    for s in sequences:
        n = longest - len(s["input_ids"])
        padded = {
            "input_ids": s["input_ids"] + [tokenizer.pad_token_id] * n,
            "attention_mask": [1] * len(s["input_ids"]) + [0] * n,
            "special_tokens_mask": s["special_tokens_mask"] + [1] * n,
        }
        if "offset_mapping" in s:
            padded["offset_mapping"] = s["offset_mapping"] + [(0, 0)] * n
        out.append(padded)
    return out


def pretrain(
    config: PretrainConfig, passages_path: str | Path, out_dir: str | Path, force: bool = False
) -> PretrainResult:
    """MLM-train on passages.jsonl and write a model folder (model + tokenizer + odqa_pretrain.json +
    loss plot) that `ReaderTrainConfig(reader_model=out_dir)` fine-tunes."""
    placement = Placement.resolve(config.device, config.precision)  # refused before any slow work
    out_dir = Path(out_dir)
    check_output_dir(out_dir, PRETRAIN_KIND, force)
    if config.base_model and not Path(config.base_model).is_dir():
        raise InputError("base_model: checkpoint folder not found", path=config.base_model)
    procs = Processes.from_env(placement.device)
    try:
        with torch_threads(config.num_threads):
            set_seed(config.seed)
            texts = _passage_texts(passages_path)
            model, tokenizer = _build(config, texts, procs)
            if tokenizer.pad_token_id is None:
                raise InputError("the model's tokenizer has no padding token")
            limit = getattr(model.config, "max_position_embeddings", None) or config.max_length
            # RoBERTa-style position tables start after the padding index: leave it two positions.
            block = min(config.max_length, limit if not config.base_model else limit - 2)
            sequences = _sequences(tokenizer, texts, block, config)
            summary = _train(config, model, tokenizer, sequences, placement, procs)
            summary.update(passages=len(texts), sequences=len(sequences), sequence_length=block)
            if procs.is_main:
                _write(config, out_dir, force, model, tokenizer, summary)
            procs.barrier()
    finally:
        procs.close()
    log.info(
        "pre-trained %d steps on %d sequences in %.0f s, loss %.3f -> %.3f -> %s",
        summary["steps"],
        len(sequences),
        summary["seconds"],
        summary["first_loss"],
        summary["final_loss"],
        out_dir,
    )
    return PretrainResult(out_dir, summary)


def _write(config: PretrainConfig, out_dir: Path, force: bool, model, tokenizer, summary: dict) -> None:
    """The model folder (rank 0 only): weights, tokenizer, odqa_pretrain.json, loss plot."""
    with atomic_dir(out_dir, kind=PRETRAIN_KIND, force=force) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        write_json(tmp / PRETRAIN_INFO_FILE, {"config": config.to_dict(), "training": summary})
        if summary["loss_history"]:
            from odqa.reports import line_plot

            history = summary["loss_history"]
            line_plot(
                tmp / LOSS_PLOT_FILE,
                [s for s, _ in history],
                [v for _, v in history],
                xlabel="step",
                ylabel="masked-token loss",
                title="MLM pre-training loss",
                marker=None,
            )


def mlm_loss(model, batch: dict) -> torch.Tensor:
    """The masked-token cross-entropy. For a BERT the vocabulary projection runs only on the masked
    positions (15 %), not on every token as BertForMaskedLM's forward does: with an 8k vocabulary and
    hidden 128 that projection is about half of a step's work. Other families use their own forward."""
    if not isinstance(model, BertForMaskedLM):
        return model(**batch).loss
    labels = batch["labels"]
    hidden = model.bert(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    chosen = labels != -100
    logits = model.cls(hidden[chosen])
    return torch.nn.functional.cross_entropy(logits.float(), labels[chosen])


def _train(
    config: PretrainConfig, model, tokenizer, sequences: list[dict], placement: Placement, procs: Processes
) -> dict:
    steps_per_epoch = math.ceil(len(sequences) / config.batch_size)
    total_steps = math.ceil(steps_per_epoch * config.epochs)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    device = placement.device
    model.to(device)
    from odqa.reader.train import _optimizer

    optimizer = _optimizer(config, model)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps
    )
    scaler = placement.grad_scaler()
    train_model = model
    if procs.distributed:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    generator = torch.Generator().manual_seed(config.seed)
    masker = _Masker(tokenizer, config, len(sequences))
    history, window, tokens, step, epoch = [], [], 0, 0, 0
    model.train()
    t0 = time.perf_counter()
    progress = progress_bar(total=total_steps, desc="pretrain", unit="step", disable=not procs.is_main)
    while step < total_steps:
        order = torch.randperm(len(sequences), generator=generator).tolist()
        for b in range(0, len(order), config.batch_size):
            if step >= total_steps:
                break
            indices = order[b : b + config.batch_size]
            micros = micro_batches(indices, procs, config.grad_accum)
            batches = [
                masker(_pad(tokenizer, [sequences[j] for j in micro]), micro, epoch) for micro in micros
            ]
            masked = [int((batch["labels"] != -100).sum()) for batch in batches]
            # the step's loss is the mean over all its masked tokens, whichever process reads them
            step_masked = max(1.0, procs.sum([float(sum(masked))], device)[0])
            step_loss = torch.zeros((), device=device)
            for i, batch in enumerate(batches):
                tokens += int(batch["attention_mask"].sum())
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                last = i == len(batches) - 1
                sync = contextlib.nullcontext() if last or not procs.distributed else train_model.no_sync()
                with sync:
                    with placement.autocast():
                        # DDP averages gradients over ranks, hence the factor world
                        loss = mlm_loss(train_model, batch) * (masked[i] * procs.world / step_masked)
                    (scaler.scale(loss) if scaler is not None else loss).backward()
                step_loss += loss.detach()
            if not micros and procs.distributed:
                # a rank with no sequences this step still joins DDP's gradient all-reduce
                batch = masker(_pad(tokenizer, [sequences[order[0]]]), [order[0]], epoch)
                with placement.autocast():
                    dummy = mlm_loss(train_model, {k: v.to(device) for k, v in batch.items()})
                (dummy * 0.0).backward()
            optimizer_step(model, optimizer, scheduler, scaler)
            step += 1
            window.append(float(step_loss))
            progress.update(1)
            if step % config.log_every == 0 or step == total_steps:
                mean = procs.sum([sum(window)], device)[0] / (len(window) * procs.world)
                history.append((step, mean))
                progress.set_postfix(loss=f"{mean:.3f}")
                log.info("pretrain step %d/%d loss %.4f", step, total_steps, mean)
                window = []
        epoch += 1
    progress.close()
    model.eval()
    seconds = time.perf_counter() - t0
    tokens = int(procs.sum([float(tokens)], device)[0])
    return {
        "steps": step,
        "epochs": step / steps_per_epoch,
        "seconds": round(seconds, 2),
        "steps_per_second": step / seconds if seconds > 0 else 0.0,
        "tokens": tokens,
        "tokens_per_second": tokens / seconds if seconds > 0 else 0.0,
        "num_threads": torch.get_num_threads(),
        "processes": procs.world,
        **placement.to_dict(),
        "first_loss": history[0][1] if history else float("nan"),
        "final_loss": history[-1][1] if history else float("nan"),
        "loss_history": history,
    }


class _Masker:
    """transformers' DataCollatorForLanguageModeling, one sequence at a time from a seed of its own
    (run seed, epoch, sequence): a sequence's masks do not depend on which process or micro-batch
    reads it, so one process and several under torchrun take the same steps."""

    def __init__(self, tokenizer, config: PretrainConfig, n_sequences: int):
        self.tokenizer, self.config, self.n = tokenizer, config, n_sequences
        # Whole-word masking in transformers 5 replaces every chosen token by the mask token (it warns
        # and does so when asked for random replacements): ask for exactly that.
        self.replace = (
            {"mask_replace_prob": 1.0, "random_replace_prob": 0.0} if config.whole_word_masking else {}
        )

    def __call__(self, padded: list[dict], indices: list[int], epoch: int) -> dict:
        rows = []
        for row, index in zip(padded, indices, strict=True):
            collator = DataCollatorForLanguageModeling(
                self.tokenizer,
                mlm_probability=self.config.mlm_probability,
                whole_word_mask=self.config.whole_word_masking,
                seed=(self.config.seed * 1_000_003 + epoch * self.n + index) % 2**31,
                **self.replace,
            )
            rows.append(collator([row]))
        return {k: torch.cat([r[k] for r in rows]) for k in rows[0]}
