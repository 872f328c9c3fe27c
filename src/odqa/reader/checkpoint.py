"""Resumable training checkpoints: everything a run needs to continue as if it had never stopped.

Layout of a checkpoint folder (default <out>/checkpoints/):

    run.json             what the run is (a fingerprint of the data and settings that shape the weights)
    tokenizer/, model/   the tokenizer and model config the run started with (a from-scratch vocabulary
                         is learned from the corpus, and the learner breaks ties in hash order: a rebuilt
                         one could differ)
    step-00000100/       state.pt (model, optimizer, scheduler, grad scaler, RNG states: torch, CUDA,
                         python random, numpy, the shuffling generator; loop position, loss and eval
                         history) + meta.json; the newest `keep` are kept
    best/                the best evaluated model's weights (eval_qa) + meta.json

Each step folder is written to a temp name and renamed, so a killed writer leaves no half checkpoint
that looks whole. state.pt holds only tensors and plain Python values and is read with
`weights_only=True`: a checkpoint file cannot run code when it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from odqa.errors import InputError
from odqa.io import write_json

RUN_FILE = "run.json"
STATE_FILE = "state.pt"
META_FILE = "meta.json"
BEST_DIR = "best"
STEP_PREFIX = "step-"
# ReaderTrainConfig fields that do not change the weights a run ends with: a resumed run may differ in them.
NOT_FINGERPRINTED = frozenset(
    {
        "resume", "checkpoint_every", "keep_checkpoints", "checkpoint_dir", "log_every", "num_threads",
        "device", "loader_workers", "eval_every", "patience", "eval_qa",
    }
)  # fmt: skip


def fingerprint(config_dict: dict, facts: dict) -> str:
    """sha256 of the settings that shape the weights plus facts about the data (windows, examples)."""
    shaping = {k: v for k, v in sorted(config_dict.items()) if k not in NOT_FINGERPRINTED}
    text = json.dumps({"config": shaping, "facts": facts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every random stream the loop draws from, as tensors and plain values (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "generator": generator.get_state(),
    }  # fmt: skip
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def step_dirs(root: Path) -> list[Path]:
    """Complete step checkpoints, oldest first (a folder without meta.json is a killed writer's)."""
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(STEP_PREFIX) and (p / META_FILE).is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def write_run(root: Path, run: dict, tokenizer, model_config) -> None:
    """Start a fresh checkpoint folder: old checkpoints of another run go, run.json + tokenizer stay."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    tokenizer.save_pretrained(str(root / "tokenizer"))
    model_config.save_pretrained(str(root / "model"))
    write_json(root / RUN_FILE, run)


def read_run(root: Path) -> dict | None:
    path = root / RUN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(
            f"unreadable checkpoint run file ({type(e).__name__}); delete the folder or train without --resume",
            path=path,
        ) from None


def check_run(root: Path, run: dict, expected_fingerprint: str) -> None:
    if run.get("fingerprint") != expected_fingerprint:
        raise InputError(
            "checkpoints are from another run (different data, model or settings); train without --resume, "
            "or point --checkpoint-dir elsewhere",
            path=root,
        )


def save(root: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write step-<step>/ atomically and keep only the newest `keep` step folders."""
    final = root / f"{STEP_PREFIX}{step:08d}"
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    torch.save(state, tmp / STATE_FILE)
    write_json(tmp / META_FILE, {"step": step})
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in step_dirs(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(path: Path) -> dict[str, Any]:
    """A step checkpoint's state, or a one-line InputError when it is unreadable (truncated, not torch)."""
    try:
        return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, pickle/zip errors, EOFError, OSError
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise InputError(
            f"corrupted checkpoint ({reason}); delete it to resume from an older one, or train without --resume",
            path=path / STATE_FILE,
        ) from None


def save_best(root: Path, model, meta: dict) -> None:
    """The best evaluated weights so far (model only: enough to be the final reader)."""
    tmp = root / f".{BEST_DIR}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / STATE_FILE)
    write_json(tmp / META_FILE, meta)
    final = root / BEST_DIR
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def load_best(root: Path) -> tuple[dict, dict] | None:
    path = root / BEST_DIR
    if not (path / META_FILE).is_file():
        return None
    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    return load(path), meta
