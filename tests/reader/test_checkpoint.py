"""Checkpoint files: every random stream round-trips, and a damaged checkpoint is one line, not a trace."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from odqa.errors import InputError
from odqa.reader import checkpoint


def _draws(generator: torch.Generator) -> tuple:
    return (
        torch.rand(3).tolist(),
        random.random(),
        float(np.random.rand()),
        torch.randperm(10, generator=generator).tolist(),
    )


def test_rng_state_restores_every_stream(tmp_path):
    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(2), random.seed(3), np.random.seed(4)
    state = checkpoint.rng_state(generator)
    path = checkpoint.save(tmp_path, 7, {"rng": state}, keep=2)
    first = _draws(generator)
    checkpoint.set_rng_state(checkpoint.load(path)["rng"], generator)  # weights_only load
    assert _draws(generator) == first


def test_only_the_newest_are_kept_and_half_written_ones_are_ignored(tmp_path):
    for step in (1, 2, 3):
        checkpoint.save(tmp_path, step, {"x": torch.tensor(step)}, keep=2)
    (tmp_path / "step-00000009").mkdir()  # a killed writer's folder: no meta.json
    assert [p.name for p in checkpoint.step_dirs(tmp_path)] == ["step-00000002", "step-00000003"]


@pytest.mark.parametrize("damage", [b"", b"not a torch file", None])
def test_a_damaged_checkpoint_is_one_line(tmp_path, damage):
    path = checkpoint.save(tmp_path, 1, {"x": torch.zeros(1000)}, keep=1)
    state = path / checkpoint.STATE_FILE
    state.write_bytes(state.read_bytes()[:300] if damage is None else damage)
    with pytest.raises(InputError) as e:
        checkpoint.load(path)
    assert "\n" not in str(e.value) and "corrupted checkpoint" in str(e.value)


def test_fingerprint_ignores_what_does_not_shape_the_weights():
    base = {"learning_rate": 1e-3, "num_threads": 2, "resume": False}
    facts = {"features": 10}
    same = checkpoint.fingerprint({**base, "num_threads": 8, "resume": True}, facts)
    assert checkpoint.fingerprint(base, facts) == same
    assert checkpoint.fingerprint({**base, "learning_rate": 2e-3}, facts) != same
    assert checkpoint.fingerprint(base, {"features": 11}) != same
