"""Data-parallel training across processes (torchrun): which process this is, and the few collective
calls the training loop needs. One process (no WORLD_SIZE) is the same code with every call a no-op.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT; the process group uses NCCL on CUDA and
gloo on the CPU (tests run two gloo processes). Only rank 0 writes files.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class Processes:
    rank: int = 0
    world: int = 1
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls, device: torch.device) -> Processes:
        """Join torchrun's process group (WORLD_SIZE > 1), or stay one process."""
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return cls()
        import torch.distributed as dist

        owns = False
        if not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            owns = True
        return cls(dist.get_rank(), dist.get_world_size(), owns)

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()

    def broadcast(self, obj: Any) -> Any:
        """rank 0's `obj` on every rank (picklable values only)."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum over ranks."""
        if not self.distributed:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()


def share_tokenizer(procs: Processes, tokenizer):
    """rank 0's tokenizer on every rank: a vocabulary is learned once, not by every process."""
    if not procs.distributed:
        return tokenizer
    from transformers import AutoTokenizer

    files = None
    if procs.is_main:
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer.save_pretrained(tmp)
            files = {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}
    files = procs.broadcast(files)
    if procs.is_main:
        return tokenizer
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        return AutoTokenizer.from_pretrained(tmp)


def micro_batches(step_indices: list[int], procs: Processes, grad_accum: int) -> list[list[int]]:
    """This process's share of a step's examples, in grad_accum forward passes (empty ones dropped)."""
    mine = step_indices[procs.rank :: procs.world]
    size = math.ceil(len(mine) / grad_accum) if mine else 0
    return [mine[i : i + size] for i in range(0, len(mine), size)] if size else []
