"""Train an extractive reader: a small BERT from scratch (default) or any Hugging Face QA checkpoint, on
the CPU, one GPU (device, precision), or several through torchrun (odqa.reader.train_ddp).

Hand-written on torch's own pieces (autocast, GradScaler, DistributedDataParallel, torch.save
checkpoints) rather than Hugging Face Accelerate or transformers.Trainer. Measured 2026-11-29 on the
default reader of the time (hidden 128, 2 layers, batch 16 x 256, 2 threads, 60 steps, best of 3
alternating runs on a shared 2-core machine): Accelerate ran at 0.93x the plain loop's steps/s, within
the 10 % the issue allows, so speed did not decide. What did:
- Accelerate keeps its settings in process-wide singletons: a second `Accelerator` with another
  mixed precision in the same process raises "AcceleratorState has already been initialized and cannot
  be changed". odqa trains several readers per process (curriculum, ensembles, tests, evaluation), each
  with its own device and precision.
- Its default device prefers MPS over CUDA and cannot name cuda:N; its gradient accumulation divides by
  the number of passes, which misweights a short last pass; per-example loss weights and the exact
  `shuffle=False` file order need a custom loop (or Trainer overrides) anyway.
The loop stays deterministic for a given seed, thread count and device: a resumed run ends with the
same weights as one that never stopped (tests/reader/test_train.py).

`batch_size` is the number of windows per optimizer step over all processes and `grad_accum` passes, so
one config trains the same way on one CPU or eight GPUs; each part's loss is divided by its share of the
step, so weighted parts add up to the step's weighted mean.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    BertConfig,
    BertForQuestionAnswering,
    get_linear_schedule_with_warmup,
    set_seed,
)

from odqa.errors import InputError
from odqa.io import OUTPUT_MARKER, atomic_dir, check_output_dir, write_json
from odqa.progress import progress_bar
from odqa.reader import checkpoint
from odqa.reader.config import READER_CONFIG_FILE, ReaderTrainConfig
from odqa.reader.device import Placement, optimizer_step
from odqa.reader.distributed import Processes, micro_batches, share_tokenizer
from odqa.reader.features import ReaderSettings, cls_position, token_type_count, train_features
from odqa.reader.predict import pad_windows, torch_threads
from odqa.reader.sampling import epoch_order, epoch_windows
from odqa.schema import TRAINING_LOSS_PLOT_FILE, QAExample
from odqa.text.wordpiece import train_wordpiece_tokenizer

log = logging.getLogger(__name__)

LOSS_PLOT_FILE = TRAINING_LOSS_PLOT_FILE
CHECKPOINTS_DIR = "checkpoints"
READER_KIND = "reader"  # odqa.io output kind: only an empty folder or an earlier reader is replaced


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
    tokenizer = _scratch_tokenizer(config, examples, corpus_path)
    return _scratch_model(config, tokenizer), tokenizer


def _scratch_tokenizer(config: ReaderTrainConfig, examples: list[QAExample], corpus_path):
    return train_wordpiece_tokenizer(
        _corpus_texts(corpus_path, examples),
        None,
        vocab_size=config.vocab_size,
        morphemes=config.morpheme_vocab,
        num_workers=config.num_threads or -1,
    )


def _scratch_config(config: ReaderTrainConfig, tokenizer) -> BertConfig:
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size or 4 * config.hidden_size,
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.dropout,
        max_position_embeddings=config.max_length,
        # PretrainConfig has no focus_sentence: its question_overlap asks for every reader feature's type.
        type_vocab_size=token_type_count(
            config.question_overlap, getattr(config, "focus_sentence", config.question_overlap)
        ),
        pad_token_id=tokenizer.pad_token_id,
    )


def _scratch_model(config: ReaderTrainConfig, tokenizer):
    """A small BERT for this tokenizer, initialised from the seed (so every DDP rank starts alike)."""
    set_seed(config.seed)
    return BertForQuestionAnswering(_scratch_config(config, tokenizer))


def weighted_span_loss(
    start_logits,
    end_logits,
    start_positions,
    end_positions,
    weights,
    denominator: float | None = None,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """sum over the batch of weight * (CE(start) + CE(end)) / 2, divided by `denominator` (default: the
    batch size, i.e. the mean). A step split over processes and accumulation passes divides each part
    by its share of the step's windows, so the parts add up to the mean over the whole step. With the
    attention mask, padding is no candidate position: a window's loss does not depend on how long its
    batch's longest window is (predict's softmax reads only the window's own tokens too)."""
    ce = torch.nn.functional.cross_entropy
    start_logits, end_logits = start_logits.float(), end_logits.float()
    if attention_mask is not None:
        padding = attention_mask == 0
        start_logits = start_logits.masked_fill(padding, torch.finfo(torch.float32).min)
        end_logits = end_logits.masked_fill(padding, torch.finfo(torch.float32).min)
    per_example = (
        ce(start_logits, start_positions, reduction="none") + ce(end_logits, end_positions, reduction="none")
    ) / 2
    return (per_example * weights).sum() / (denominator if denominator is not None else weights.numel())


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
    on_step: Callable[[int], None] | None = None,
    force: bool = False,
) -> Path:
    """Train on qa.jsonl and write a Hugging Face model folder (+ tokenizer + odqa_reader.json).

    `on_step(step)` runs after each optimizer step and its checkpoint (tests interrupt runs with it).
    Under torchrun every process calls this; only rank 0 writes."""
    with torch_threads(config.num_threads):
        return _train_reader(config, train_qa_path, out_dir, corpus_path, on_step, force)


def _settings(config: ReaderTrainConfig) -> ReaderSettings:
    types = _feature_types(config)
    return ReaderSettings(
        max_length=config.max_length,
        doc_stride=config.doc_stride,
        title_prefix=config.title_prefix,
        max_question_tokens=config.max_question_tokens,
        question_overlap=config.question_overlap and types >= token_type_count(True, False),
        focus_sentence=config.focus_sentence and types >= token_type_count(False, True),
    )


def _feature_types(config: ReaderTrainConfig) -> int:
    """Token types the reader's model will have: from scratch, as many as the features need; an odqa
    pretrain output, its own; a hub checkpoint, none for features (its type embeddings mean sentence
    A/B, so the features stay off there)."""
    if not config.reader_model:
        return token_type_count(True, True)
    from odqa.reader.config import PRETRAIN_INFO_FILE

    folder = Path(config.reader_model)
    if not (folder / PRETRAIN_INFO_FILE).is_file() or not (folder / "config.json").is_file():
        return 0
    from odqa.io import read_json

    model_config = read_json(folder / "config.json")
    return int(model_config.get("type_vocab_size", 0) or 0) if isinstance(model_config, dict) else 0


ANSWER_LENGTH_PERCENTILE = 99


def labelled_no_answer(tokenizer, features: list[dict]) -> list[bool]:
    """Which training windows are labelled "no answer here" (start and end at their CLS token)."""
    return [f["start_positions"] == cls_position(tokenizer, f["input_ids"]) for f in features]


def answer_length_limit(tokenizer, features: list[dict]) -> int | None:
    """The ANSWER_LENGTH_PERCENTILE-th percentile of the labelled answers' lengths in tokens, rounded up:
    the longest span predict considers for this reader (ReaderSettings.max_answer_length)."""
    import numpy as np

    lengths = [
        f["end_positions"] - f["start_positions"] + 1
        for f, absent in zip(features, labelled_no_answer(tokenizer, features), strict=True)
        if not absent
    ]
    return int(np.ceil(np.percentile(lengths, ANSWER_LENGTH_PERCENTILE))) if lengths else None


def _check_positions(model, config: ReaderTrainConfig) -> None:
    """Windows longer than the model's position table fail deep in the forward pass: say so up front."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if isinstance(limit, int) and limit < config.max_length:
        raise InputError(
            f"max_length {config.max_length} is longer than {config.reader_model}'s "
            f"{limit} positions: lower --max-length"
        )


def _check_masking(tokenizer, config: ReaderTrainConfig) -> None:
    """context_masking needs a mask token: say so before the windows are built."""
    if config.context_masking > 0 and tokenizer.mask_token_id is None:
        raise InputError(f"context_masking: the tokenizer ({type(tokenizer).__name__}) has no mask token")


def _checkpoint_root(config: ReaderTrainConfig, out_dir: Path) -> Path:
    return Path(config.checkpoint_dir) if config.checkpoint_dir else out_dir / CHECKPOINTS_DIR


def _prepare_out_dir(out_dir: Path, root: Path, force: bool) -> None:
    """Checkpoints inside a new output folder: create it as a reader output, so the final replace (and a
    resumed run) accepts it; the model files appear only when training ends."""
    check_output_dir(out_dir, READER_KIND, force)
    if root.parent == out_dir and not (out_dir / OUTPUT_MARKER).exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / OUTPUT_MARKER, {"kind": READER_KIND}, indent=None)


def _train_reader(
    config: ReaderTrainConfig,
    train_qa_path: str | Path,
    out_dir: str | Path,
    corpus_path: str | Path | None,
    on_step: Callable[[int], None] | None,
    force: bool = False,
) -> Path:
    placement = Placement.resolve(config.device, config.precision)  # refused before any slow work
    set_seed(config.seed)
    out_dir = Path(out_dir)
    root = _checkpoint_root(config, out_dir)
    check_output_dir(out_dir, READER_KIND, force)  # a bad --out fails before the slow part
    examples = _load_examples(train_qa_path)
    eval_examples = _load_eval(config.eval_qa) if config.eval_qa else None
    settings = _settings(config)  # validated before any training work
    procs = Processes.from_env(placement.device)
    try:
        # Resume checks come first, so a wrong or damaged checkpoint fails before any model is loaded.
        run = checkpoint.read_run(root) if config.resume else None
        steps = checkpoint.step_dirs(root) if run is not None else []
        resume_from = steps[-1] if steps else None
        facts = {"train_sha256": _file_sha256(train_qa_path)}
        run_fingerprint = checkpoint.fingerprint(config.to_dict(), facts)
        if run is not None:
            checkpoint.check_run(root, run, run_fingerprint)
        saved = checkpoint.load(resume_from) if resume_from is not None else None
        if saved is not None:
            # The run's own tokenizer and architecture; its weights come from the step checkpoint.
            tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"))
            model = AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(str(root / "model")))
        elif config.reader_model or not procs.distributed:
            model, tokenizer = _build_model(config, examples, corpus_path, out_dir)
        else:  # rank 0 learns the vocabulary, every rank gets it
            tokenizer = _scratch_tokenizer(config, examples, corpus_path) if procs.is_main else None
            tokenizer = share_tokenizer(procs, tokenizer)
            model = _scratch_model(config, tokenizer)
        _check_positions(model, config)
        _check_masking(tokenizer, config)
        features = train_features(examples, tokenizer, settings, path=train_qa_path)
        settings = settings.replace(max_answer_length=answer_length_limit(tokenizer, features))
        facts.update(examples=len(examples), features=len(features))
        uses_root = config.checkpoint_every is not None or eval_examples is not None
        if procs.is_main and uses_root and resume_from is None:
            _prepare_out_dir(out_dir, root, force)
            checkpoint.write_run(root, {"fingerprint": run_fingerprint, **facts}, tokenizer, model.config)
        procs.barrier()
        summary = _train_loop(
            config,
            model,
            tokenizer,
            features,
            placement,
            procs,
            root,
            saved,
            eval_examples,
            settings,
            on_step,
        )
        summary.update(examples=len(examples), features=len(features))
        if procs.is_main:
            _write_reader(config, model, tokenizer, settings, summary, out_dir, root, force)
        procs.barrier()
    finally:
        procs.close()
    log.info(
        "reader trained: %d steps, %.2f steps/s, %.0f tokens/s on %s (%s), final loss %.3f -> %s",
        summary["steps"],
        summary["steps_per_second"],
        summary["tokens_per_second"],
        summary["device"],
        summary["precision"],
        summary["final_loss"],
        out_dir,
    )
    return out_dir


def _file_sha256(path: str | Path) -> str:
    """The training file's content hash: a checkpoint resumes only the run that read the same data."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_eval(path: str) -> list[QAExample]:
    from odqa.data import load_qa

    examples = [ex for ex in load_qa(path).examples if ex.is_answerable]
    if not examples:
        raise InputError("eval_qa has no answerable question to score", path=path)
    return examples


def _write_reader(
    config, model, tokenizer, settings, summary, out_dir: Path, root: Path, force: bool
) -> None:
    """The final reader folder, replaced in one rename; with eval_qa it holds the best evaluated weights.
    Checkpoints inside the output folder move into the new one (a later run can resume from them)."""
    best = checkpoint.load_best(root) if summary.get("best") else None
    if best is not None:
        model.load_state_dict(best[0])
    with atomic_dir(out_dir, kind=READER_KIND, force=force) as tmp:
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
        if root.parent == out_dir and root.is_dir():
            os.replace(root, tmp / CHECKPOINTS_DIR)


def _optimizer(config: ReaderTrainConfig, model) -> torch.optim.Optimizer:
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": config.weight_decay,
        },
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    # fused AdamW is one kernel per step on CUDA; on the CPU the default (foreach) stays as it was.
    fused = {"fused": True} if next(model.parameters()).device.type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=config.learning_rate, **fused)


def model_input_names(tokenizer, model, feature: dict) -> list[str]:
    """The tokenizer's inputs the model can take: a RoBERTa with type_vocab_size 1 (klue/roberta ships a
    BERT tokenizer that emits token_type_ids) must not get segment ids it has no embedding for."""
    names = [n for n in tokenizer.model_input_names if n in feature]
    if getattr(model.config, "type_vocab_size", 2) < 2 and "token_type_ids" in names:
        names.remove("token_type_ids")
    return names


class _Collate:
    """Pads one micro-batch (picklable: DataLoader workers call it)."""

    def __init__(self, tokenizer, features, names):
        self.tokenizer, self.features, self.names = tokenizer, features, names

    def __call__(self, micro: list[int]) -> dict:
        batch = [self.features[i] for i in micro]
        inputs = pad_windows(self.tokenizer, [{n: f[n] for n in self.names} for f in batch])
        inputs["start_positions"] = torch.tensor([f["start_positions"] for f in batch])
        inputs["end_positions"] = torch.tensor([f["end_positions"] for f in batch])
        inputs["weights"] = torch.tensor([f["weight"] for f in batch], dtype=torch.float32)
        return inputs


def _batches(micros: list[list[int]], collate: _Collate, config: ReaderTrainConfig, placement: Placement):
    """Padded micro-batches in order. Workers pad ahead and pinned memory lets copies to a GPU overlap;
    with neither (the CPU default) padding happens inline, as it always did."""
    if config.loader_workers == 0 and not placement.pin_memory:
        return map(collate, micros)
    from torch.utils.data import DataLoader

    return iter(
        DataLoader(
            micros,
            batch_size=None,
            collate_fn=collate,
            num_workers=config.loader_workers,
            pin_memory=placement.pin_memory,
            prefetch_factor=4 if config.loader_workers else None,
        )
    )


def _train_loop(
    config: ReaderTrainConfig,
    model,
    tokenizer,
    features: list[dict],
    placement: Placement,
    procs: Processes,
    root: Path,
    saved: dict | None,
    eval_examples: list[QAExample] | None,
    settings: ReaderSettings,
    on_step: Callable[[int], None] | None,
) -> dict:
    no_answer = labelled_no_answer(tokenizer, features)
    lengths = [len(f["input_ids"]) for f in features]
    windows_per_epoch = epoch_windows(no_answer, config.no_answer_windows)
    steps_per_epoch = math.ceil(windows_per_epoch / config.batch_size)
    total_steps = math.ceil(steps_per_epoch * config.epochs)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    if total_steps < 1:
        raise InputError("nothing to train: zero steps (check epochs / max_steps)")
    device = placement.device
    if config.gradient_checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise InputError(f"gradient_checkpointing: {type(model).__name__} does not support it")
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.to(device)
    optimizer = _optimizer(config, model)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps
    )
    scaler = placement.grad_scaler()
    generator = torch.Generator().manual_seed(config.seed)
    names = model_input_names(tokenizer, model, features[0])
    collate = _Collate(tokenizer, features, names)
    mask_id = tokenizer.mask_token_id

    # Loop position and history; a checkpoint holds all of it.
    state = {"step": 0, "epoch": 0, "next_batch": 0, "order": None, "tokens": 0, "seconds": 0.0,
             "history": [], "window": [], "eval_history": [], "best": None, "bad_evals": 0, "stopped_early": False}  # fmt: skip
    resumed_step = None
    if saved is not None:
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise InputError(
                f"checkpoint does not fit this model ({str(e).splitlines()[0][:120]}); train without --resume",
                path=root,
            ) from None
        if scaler is not None and saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        checkpoint.set_rng_state(saved["rng"], generator)
        state.update(saved["loop"])
        resumed_step = state["step"]
        log.info("resumed from step %d (%s)", resumed_step, root)

    train_model = model
    if procs.distributed:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    def evaluate_now() -> bool:
        """Score eval_qa on rank 0, keep the best weights; True when patience has run out."""
        stop = False
        if procs.is_main:
            em, f1 = _evaluate(model, tokenizer, settings, eval_examples, placement)
            model.train()
            state["eval_history"].append([state["step"], em, f1])
            log.info("step %d eval EM %.2f F1 %.2f", state["step"], em, f1)
            if state["best"] is None or f1 > state["best"]["f1"]:
                state["best"] = {"step": state["step"], "exact_match": em, "f1": f1}
                state["bad_evals"] = 0
                checkpoint.save_best(root, model, state["best"])
            else:
                state["bad_evals"] += 1
            stop = config.patience is not None and state["bad_evals"] >= config.patience
        return bool(procs.broadcast(stop))

    model.train()
    t0 = time.perf_counter() - state["seconds"]
    progress = progress_bar(
        total=total_steps, initial=state["step"], desc="train reader", unit="step", disable=not procs.is_main
    )
    while state["step"] < total_steps and not state["stopped_early"]:
        if state["order"] is None:
            state["order"] = epoch_order(
                lengths,
                no_answer,
                config.batch_size,
                generator,
                shuffle=config.shuffle,
                group_by_length=config.group_by_length,
                no_answer_windows=config.no_answer_windows,
            )
            state["next_batch"] = 0
        order = state["order"]
        while state["next_batch"] < len(order) and state["step"] < total_steps:
            b = state["next_batch"]
            step_indices = order[b : b + config.batch_size]
            micros = micro_batches(step_indices, procs, config.grad_accum)
            denominator = len(step_indices) / procs.world
            step_loss = torch.zeros((), device=device)
            for i, inputs in enumerate(_batches(micros, collate, config, placement)):
                last = i == len(micros) - 1
                if config.context_masking > 0:
                    spans = [_maskable_span(features[j]) for j in micros[i]]
                    mask_context(inputs["input_ids"], spans, config.context_masking, mask_id, generator)
                state["tokens"] += int(inputs["attention_mask"].sum())
                inputs = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
                labels = [inputs.pop(k) for k in ("start_positions", "end_positions", "weights")]
                sync = contextlib.nullcontext() if last or not procs.distributed else train_model.no_sync()
                with sync:
                    with placement.autocast():
                        outputs = train_model(**inputs)
                    loss = weighted_span_loss(
                        outputs.start_logits,
                        outputs.end_logits,
                        *labels,
                        denominator=denominator,
                        attention_mask=inputs["attention_mask"],
                    )
                    (scaler.scale(loss) if scaler is not None else loss).backward()
                step_loss += loss.detach()
            if not micros and procs.distributed:
                # A rank with no windows this step still joins DDP's gradient all-reduce.
                with placement.autocast():
                    dummy = train_model(
                        **{k: v.to(device) for k, v in collate([order[0]]).items() if k in names}
                    )
                ((dummy.start_logits.sum() + dummy.end_logits.sum()) * 0.0).backward()
            optimizer_step(model, optimizer, scheduler, scaler)
            state["step"] += 1
            state["next_batch"] = b + config.batch_size
            state["window"].append(step_loss)
            progress.update(1)
            step = state["step"]
            if step % config.log_every == 0 or step == total_steps:
                mean = _window_mean(state["window"], procs, device)
                state["history"].append((step, mean))
                progress.set_postfix(loss=f"{mean:.3f}")
                log.info("step %d/%d loss %.4f", step, total_steps, mean)
                state["window"] = []
            epoch_done = state["next_batch"] >= len(order)
            if eval_examples is not None and (
                (config.eval_every and step % config.eval_every == 0)
                or (not config.eval_every and (epoch_done or step == total_steps))
            ):
                state["stopped_early"] = evaluate_now()
            if epoch_done:
                state["epoch"] += 1
                state["order"] = None
            if config.checkpoint_every and (step % config.checkpoint_every == 0) and procs.is_main:
                _save_checkpoint(root, config, state, t0, model, optimizer, scheduler, scaler, generator)
            if on_step is not None:
                on_step(step)
            if state["stopped_early"]:
                break
    progress.close()
    seconds = time.perf_counter() - t0
    model.eval()
    if state["window"]:  # early stop between log lines
        state["history"].append((state["step"], _window_mean(state["window"], procs, device)))
    tokens = int(procs.sum([float(state["tokens"])], device)[0])
    history = state["history"]
    return {
        "steps": state["step"],
        "epochs": state["step"] / steps_per_epoch,
        "windows_per_epoch": windows_per_epoch,
        "seconds": round(seconds, 2),
        "steps_per_second": state["step"] / seconds if seconds > 0 else 0.0,
        "tokens": tokens,
        "tokens_per_second": tokens / seconds if seconds > 0 else 0.0,
        "num_threads": torch.get_num_threads(),
        **placement.to_dict(),
        "processes": procs.world,
        "grad_accum": config.grad_accum,
        "gradient_checkpointing": config.gradient_checkpointing,
        "resumed_from_step": resumed_step,
        "first_loss": history[0][1] if history else float("nan"),
        "final_loss": history[-1][1] if history else float("nan"),
        "loss_history": history,
        "eval_history": state["eval_history"],
        "best": state["best"],
        "stopped_early": state["stopped_early"],
    }


def _maskable_span(feature: dict) -> tuple[int, int, int, int] | None:
    """The window's context tokens and the answer's tokens inside them (kept), as mask_context reads them."""
    if feature.get("context_span") is None:
        return None
    first, last = feature["context_span"]
    start, end = feature["start_positions"], feature["end_positions"]
    return (first, last, start, end) if first <= start <= last else (first, last, -1, -1)


def mask_context(
    input_ids: torch.Tensor,
    spans: list[tuple[int, int, int, int] | None],
    share: float,
    mask_id: int,
    generator: torch.Generator,
) -> None:
    """Replaces each context token outside the answer by the mask token with probability `share`, in
    place: token-level noise (the field's "masking" augmentation) drawn anew every step, so a reader that
    memorises its 4.6k training questions' words must also read the rest of the sentence."""
    noise = torch.rand(input_ids.shape, generator=generator) < share
    keep = torch.ones_like(noise)
    for row, span in enumerate(spans):
        if span is None:
            continue
        first, last, start, end = span
        keep[row, first : last + 1] = False
        if start >= 0:
            keep[row, start : end + 1] = True
    input_ids.masked_fill_(noise & ~keep, mask_id)


def _window_mean(window: list, procs: Processes, device) -> float:
    """Mean step loss over the window. Each rank's part of a step is scaled by the number of ranks (DDP
    averages gradients), so the parts summed over ranks are `world` times the step's loss."""
    total = procs.sum([sum(float(x) for x in window)], device)[0]  # floats after a resume, tensors else
    return total / (len(window) * procs.world)


def _save_checkpoint(root, config, state, t0, model, optimizer, scheduler, scaler, generator) -> None:
    loop = {**state, "window": [float(x) for x in state["window"]], "seconds": time.perf_counter() - t0}
    checkpoint.save(
        root,
        state["step"],
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": checkpoint.rng_state(generator),
            "loop": loop,
        },
        config.keep_checkpoints,
    )


def _evaluate(
    model, tokenizer, settings, examples: list[QAExample], placement: Placement
) -> tuple[float, float]:
    """Reader-only EM/F1 on each question's own context (no particle trimming: Kiwi is a second model
    to load, and the curve only has to rank checkpoints)."""
    from odqa.evaluation import score
    from odqa.reader.config import PredictConfig
    from odqa.reader.predict import Reader, results_from_gold

    reader = Reader(model, tokenizer, settings)
    config = PredictConfig(trim_particles=False, device=str(placement.device), precision=placement.precision)
    predictions, _ = reader.predict(results_from_gold(examples), config)
    metrics = score([(ex.id, ex.answers["text"]) for ex in examples], predictions)
    return metrics["exact_match"], metrics["f1"]
