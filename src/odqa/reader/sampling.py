"""Which training windows an epoch reads, in which order.

Two ways to spend less compute on the same data. Grouping by length is the transformers Trainer's
`group_by_length` (its LengthGroupedSampler: random windows in groups of many batches, each group sorted
by length): a batch is padded to its longest window, and KorQuAD's windows are half full-length, half
shorter, so random batches compute 19 % more tokens than their windows hold and grouped ones under 1 %.
Fewer "no answer here" windows: they are 42 % of KorQuAD's windows at 256 tokens; an epoch can read a
fresh random share of them.

The result is one flat list of window indices whose consecutive `batch_size` slices are the steps, so a
checkpoint that stores it resumes mid-epoch as before.
"""

from __future__ import annotations

import torch

__all__ = ["GROUP_BATCHES", "epoch_order", "epoch_windows"]

# Batches per length group, the transformers Trainer's megabatch multiplier.
GROUP_BATCHES = 50


def epoch_windows(no_answer: list[bool], share: float) -> int:
    """How many windows one epoch reads: every answer window and `share` of the no-answer ones."""
    negatives = sum(no_answer)
    return len(no_answer) - negatives + _kept(negatives, share)


def _kept(negatives: int, share: float) -> int:
    return negatives if share >= 1 else round(share * negatives)


def epoch_order(
    lengths: list[int],
    no_answer: list[bool],
    batch_size: int,
    generator: torch.Generator,
    shuffle: bool = True,
    group_by_length: bool = False,
    no_answer_windows: float = 1.0,
) -> list[int]:
    """Window indices for one epoch. Without shuffle the file order stays (a curriculum), with only
    no-answer windows left out; grouping needs shuffle (sorted groups would undo a curriculum)."""
    n = len(lengths)
    order = torch.randperm(n, generator=generator).tolist() if shuffle else list(range(n))
    if no_answer_windows < 1:
        negatives = [i for i in range(n) if no_answer[i]]
        keep = _kept(len(negatives), no_answer_windows)
        picked = torch.randperm(len(negatives), generator=generator)[:keep]
        dropped = set(negatives) - {negatives[j] for j in picked.tolist()}
        order = [i for i in order if i not in dropped]
    if not (shuffle and group_by_length) or batch_size < 2:
        return order
    group = batch_size * GROUP_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start : start + group], key=lambda i: -lengths[i])  # stable: ties stay random
        batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    # The batches in random order; a short last batch stays last, so every step is a batch_size slice.
    tail = [batches.pop()] if batches and len(batches[-1]) < batch_size else []
    shuffled = [batches[j] for j in torch.randperm(len(batches), generator=generator).tolist()]
    return [i for batch in shuffled + tail for i in batch]
