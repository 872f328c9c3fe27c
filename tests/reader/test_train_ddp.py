"""Two gloo processes under torchrun train like one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from transformers import AutoModelForQuestionAnswering

from odqa.data import load_qa
from odqa.io import read_json
from odqa.reader.config import READER_CONFIG_FILE, ReaderTrainConfig
from odqa.reader.train import train_reader
from odqa.reader.train_ddp import main

pytestmark = pytest.mark.integration


def test_two_processes_match_one_with_the_same_global_batch(tiny_qa, tmp_path, make_family_checkpoint):
    """dropout 0 (each rank draws its own masks otherwise); batch_size 5 is the global batch, split 3 + 2
    over the ranks. Step losses equal within 1e-5 (relative: float sums in another order); weights within
    lr x steps, the most AdamW can move a weight (it turns a 1e-9 difference in a near-zero gradient into
    a step of up to lr, so a tighter bound fails by chance: 1.3e-3 was seen once at lr 1e-3 and 4 steps)."""
    texts = [t for ex in load_qa(tiny_qa).examples for t in (ex.context, ex.question)]
    start = make_family_checkpoint("bert", tmp_path / "start", texts, dropout=0.0)
    settings = dict(
        reader_model=str(start), max_length=64, doc_stride=16, batch_size=5, max_steps=4, num_threads=1, log_every=1, checkpoint_every=2,
    )  # fmt: skip
    one = train_reader(ReaderTrainConfig(**settings), tiny_qa, tmp_path / "one")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "odqa.reader.train_ddp", "--train", str(tiny_qa), "--out", str(tmp_path / "two"),
           "--config", json.dumps({**settings, "device": "cpu"})]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    two = tmp_path / "two"
    t1 = read_json(one / READER_CONFIG_FILE)["training"]
    t2 = read_json(two / READER_CONFIG_FILE)["training"]
    assert t2["processes"] == 2 and t1["processes"] == 1
    assert [v for _, v in t2["loss_history"]] == pytest.approx([v for _, v in t1["loss_history"]], rel=1e-5)
    assert t2["tokens"] == t1["tokens"]
    w1 = AutoModelForQuestionAnswering.from_pretrained(str(one)).state_dict()
    w2 = AutoModelForQuestionAnswering.from_pretrained(str(two)).state_dict()
    bound = ReaderTrainConfig(**settings).learning_rate * settings["max_steps"]
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < bound
    assert sorted(p.name for p in (two / "checkpoints").glob("step-*")) == ["step-00000002", "step-00000004"]


def test_entry_point_reports_bad_config_in_one_line(tiny_qa, tmp_path, capsys):
    assert main(["--train", str(tiny_qa), "--out", str(tmp_path / "m"), "--config", '{"batch_sise": 4}']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "batch_sise" in err[0]


def test_two_processes_pretrain_like_one(tmp_path, corpus, make_family_checkpoint):
    """MLM pre-training under torchrun: every sequence masked from its own seed and the step's loss the
    mean over all its masked tokens, so two gloo processes sharing each step's sequences (3 + 2) take
    the steps one process takes. A checkpoint to continue (dropout 0), not a vocabulary learned per run:
    the learner breaks ties in hash order, which differs between processes."""
    from odqa.io import write_jsonl
    from odqa.reader.config import PRETRAIN_INFO_FILE, PretrainConfig
    from odqa.reader.pretrain import pretrain

    passages = tmp_path / "passages.jsonl"
    write_jsonl(passages, [{"passage_id": f"d{i}-0", "document_id": f"d{i}", "title": "문서", "text": t} for i, t in enumerate(corpus * 6)])  # fmt: skip
    start = make_family_checkpoint("bert", tmp_path / "start", corpus, dropout=0.0)
    settings = dict(
        base_model=str(start), max_length=48, batch_size=5, max_steps=4, num_threads=1, log_every=1,
        whole_word_masking=True,
    )  # fmt: skip
    one = pretrain(PretrainConfig(**settings), passages, tmp_path / "one").summary
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "odqa.reader.train_ddp", "--stage", "pretrain", "--passages", str(passages),
           "--out", str(tmp_path / "two"), "--config", json.dumps({**settings, "device": "cpu"})]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    two = read_json(tmp_path / "two" / PRETRAIN_INFO_FILE)["training"]
    assert (one["processes"], two["processes"]) == (1, 2) and one["steps"] == two["steps"] == 4
    assert two["tokens"] == one["tokens"]
    assert [v for _, v in two["loss_history"]] == pytest.approx([v for _, v in one["loss_history"]], rel=1e-5)
