"""Which windows an epoch reads and in which order (odqa.reader.sampling)."""

from __future__ import annotations

import random

import pytest
import torch

from odqa.reader.sampling import GROUP_BATCHES, epoch_order, epoch_windows

pytestmark = pytest.mark.unit


def _windows(n=2000, seed=0):
    """Half full-length windows, half shorter, and about 40 % without the answer, as KorQuAD's."""
    rng = random.Random(seed)
    lengths = [256 if rng.random() < 0.5 else rng.randint(60, 255) for _ in range(n)]
    no_answer = [rng.random() < 0.4 for _ in range(n)]
    return lengths, no_answer


def _computed_tokens(order, lengths, batch_size):
    """Tokens the model computes: every window of a batch padded to the batch's longest."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return sum(max(lengths[i] for i in b) * len(b) for b in batches)


def test_without_the_options_the_order_is_the_plain_shuffle_as_before():
    lengths, no_answer = _windows()
    order = epoch_order(lengths, no_answer, 16, torch.Generator().manual_seed(5))
    assert order == torch.randperm(len(lengths), generator=torch.Generator().manual_seed(5)).tolist()


def test_grouped_batches_pad_less_and_every_window_is_read_once():
    lengths, no_answer = _windows()
    g = torch.Generator().manual_seed(1)
    plain = epoch_order(lengths, no_answer, 16, torch.Generator().manual_seed(1))
    grouped = epoch_order(lengths, no_answer, 16, g, group_by_length=True)
    assert sorted(grouped) == list(range(len(lengths)))
    real = sum(lengths)
    assert _computed_tokens(plain, lengths, 16) > 1.15 * real
    assert _computed_tokens(grouped, lengths, 16) < 1.02 * real
    # Batches are drawn from random groups: neither sorted overall nor the same order each epoch.
    firsts = [lengths[grouped[i]] for i in range(0, len(grouped), 16)]
    assert firsts != sorted(firsts) and firsts != sorted(firsts, reverse=True)
    assert epoch_order(lengths, no_answer, 16, g, group_by_length=True) != grouped


def test_a_short_last_batch_stays_last():
    lengths, no_answer = _windows(n=16 * GROUP_BATCHES + 37)
    for seed in range(5):
        order = epoch_order(lengths, no_answer, 16, torch.Generator().manual_seed(seed), group_by_length=True)
        steps = [order[i : i + 16] for i in range(0, len(order), 16)]
        assert [len(s) for s in steps[:-1]] == [16] * (len(steps) - 1) and len(steps[-1]) == 37 % 16


def test_a_share_of_no_answer_windows_drawn_anew_each_epoch():
    lengths, no_answer = _windows()
    g = torch.Generator().manual_seed(2)
    first = epoch_order(lengths, no_answer, 16, g, group_by_length=True, no_answer_windows=0.5)
    second = epoch_order(lengths, no_answer, 16, g, group_by_length=True, no_answer_windows=0.5)
    negatives = sum(no_answer)
    for order in (first, second):
        assert len(order) == len(set(order)) == epoch_windows(no_answer, 0.5)
        assert sum(no_answer[i] for i in order) == round(negatives / 2)
        assert {i for i in range(len(lengths)) if not no_answer[i]} <= set(order)  # every answer window
    assert {i for i in first if no_answer[i]} != {i for i in second if no_answer[i]}
    assert epoch_windows(no_answer, 1.0) == len(lengths)


def test_without_shuffle_the_file_order_stays_and_is_never_grouped():
    """shuffle=False is a curriculum: dropping no-answer windows keeps the rest in file order."""
    lengths, no_answer = _windows(n=300)
    g = torch.Generator().manual_seed(0)
    assert epoch_order(lengths, no_answer, 16, g, shuffle=False, group_by_length=True) == list(range(300))
    kept = epoch_order(lengths, no_answer, 16, g, shuffle=False, no_answer_windows=0.3)
    assert kept == sorted(kept) and len(kept) == epoch_windows(no_answer, 0.3)
