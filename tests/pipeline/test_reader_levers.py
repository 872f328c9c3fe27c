"""The DAG's reader levers, run locally: the pretrain stage feeds every reader, and folds=K trains K
readers per configuration on article folds and ensembles them."""

from __future__ import annotations

import json

import pytest

from odqa import tracking
from odqa.pipeline.runner import LocalRunConfig, run_local

pytestmark = pytest.mark.integration

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "vocab_size": 500, "num_threads": 1}


def test_pretrain_and_folds_in_the_dag(competition_layout, tmp_path):
    params = {
        "corpus_uri": str(competition_layout["corpus"]),
        "train_uri": str(competition_layout["train"]),
        "eval_uri": str(competition_layout["train"]),
        "analyzer": "bigram",
        "top_k": 3,
        "epochs": 1.0,
        "pretrain": True,
        "pretrain_config": {**TINY, "max_steps": 3, "max_length": 128, "batch_size": 4},
        "reader_configs": [{**TINY, "max_length": 128, "doc_stride": 32}],
        "folds": 2,
    }
    result = run_local(LocalRunConfig(str(tmp_path / "runs"), None, params))
    runs = tracking.stage_runs(result.tracking_uri, result.parent_run_id)
    by_stage: dict[str, list] = {}
    for run in runs:
        by_stage.setdefault(run.data.tags[tracking.STAGE_TAG], []).append(run)
    assert len(by_stage["pretrain"]) == 1 and by_stage["pretrain"][0].data.metrics["steps"] == 3
    assert len(by_stage["train_reader"]) == 2 and len(by_stage["predict"]) == 2

    pretrained = next(result.run_dir.glob("artifacts/*/pretrain/model"))
    assert (pretrained / "config.json").is_file()
    folds = json.loads(next(result.run_dir.glob("artifacts/*/reader-plan/fold_data/folds.json")).read_text())
    assert [f["fold"] for f in folds["folds"]] == [0, 1]
    train_sizes = sorted(f["train_questions"] for f in folds["folds"])
    for run in by_stage["train_reader"]:
        assert run.data.params["reader_model"] == str(pretrained)  # every fold reader starts from it
    readers = sorted(
        result.run_dir.glob("artifacts/*/for-loop-1-iteration-*/train-reader/reader/odqa_reader.json")
    )
    assert len(readers) == 2
    ensemble = json.loads(
        next(result.run_dir.glob("artifacts/*/ensemble/predictions/ensemble.json")).read_text()
    )
    assert len(ensemble["members"]) == 2
    assert sum(train_sizes) == competition_layout["train_count"]  # each question is in one fold's dev set
