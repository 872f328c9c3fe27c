"""Where a reader runs and in which precision, decided once per call and refused in one line when the
machine cannot do it (before any slow work), so a `--device cuda` typo on a CPU node fails fast.

`auto` picks CUDA, else MPS, else the CPU, and on the CPU stays fp32: `make run` trains exactly as it
did before devices existed. Mixed precision is torch's own autocast (bf16, or fp16 with a GradScaler);
the weights stay fp32, so a checkpoint or a saved reader does not depend on the precision it was
trained in.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from odqa.errors import InputError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str) -> torch.device:
    """auto | cpu | cuda | cuda:N | mps as a torch.device that exists here, else an InputError.

    Under torchrun (LOCAL_RANK set) `cuda` and `auto` mean this process's own GPU."""
    name = (name or "auto").strip().lower()
    local_rank = os.environ.get("LOCAL_RANK")
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif _mps_available():
            return torch.device("mps")
        else:
            return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise InputError("device mps asked for, but this machine has no MPS (Apple GPU) backend")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = "a CPU-only torch build" if torch.version.cuda is None else "no visible GPU"
            raise InputError(
                f"device {name} asked for, but CUDA is not available here ({build}); use --device cpu"
            )
        index = int(name[5:]) if name.startswith("cuda:") else int(local_rank or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise InputError(f"device cuda:{index} asked for, but this machine has {count} CUDA device(s)")
        return torch.device("cuda", index)
    raise InputError(f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}")


def resolve_precision(precision: str, device: torch.device) -> str:
    """fp32 | bf16 | fp16 that `device` supports; auto is bf16 on CUDA with bf16, else fp32."""
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp32"
    if precision == "fp32":
        return "fp32"
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise InputError(
                f"precision bf16 is not supported on {device} ({torch.cuda.get_device_name(device)}); use fp16 or fp32"
            )
        return "bf16"
    if precision == "fp16":
        if device.type not in ("cuda", "mps"):
            raise InputError(
                f"precision fp16 needs a CUDA (or MPS) device, not {device.type}; use bf16 or fp32"
            )
        return "fp16"
    raise InputError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")


@dataclass(frozen=True)
class Placement:
    """A resolved device and precision."""

    device: torch.device
    precision: str  # fp32 | bf16 | fp16

    @classmethod
    def resolve(cls, device: str, precision: str) -> Placement:
        resolved = resolve_device(device)
        return cls(resolved, resolve_precision(precision, resolved))

    def autocast(self) -> contextlib.AbstractContextManager:
        """torch.autocast for bf16/fp16, nothing for fp32 (no autocast overhead on the default path)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.precision])

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
        if self.precision != "fp16":
            return None
        return torch.amp.GradScaler(self.device.type)

    @property
    def pin_memory(self) -> bool:
        """Page-locked host batches copy to a GPU asynchronously; on the CPU they only cost time."""
        return self.device.type == "cuda"

    def to_dict(self) -> dict:
        out = {"device": str(self.device), "precision": self.precision}
        if self.device.type == "cuda":
            out["device_name"] = torch.cuda.get_device_name(self.device)
        return out


def optimizer_step(
    model, optimizer, scheduler, scaler: torch.amp.GradScaler | None, max_norm: float = 1.0
) -> None:
    """One update after the step's backward passes, for the reader and pre-training alike: gradients
    unscaled (fp16), clipped to `max_norm`, stepped through the scaler when there is one, then the
    schedule advanced and the gradients cleared."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
