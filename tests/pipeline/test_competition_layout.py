"""The local DAG on the competition's layout, as a user gives it: a Wikipedia corpus with duplicates, a
DatasetDict with train and validation, and a question-only test set. The index holds corpus passages
only, validation is scored against the corpus, the test set comes back as predictions.json, and a
registered model answers the same test set from the command line."""

from __future__ import annotations

import json

import pytest

from odqa import registry, tracking
from odqa.cli import main
from odqa.pipeline.runner import LocalRunConfig, run_local

pytestmark = pytest.mark.integration


def _only(run_dir, pattern):
    found = list(run_dir.glob(pattern))
    assert len(found) == 1, f"{pattern}: {found}"
    return found[0]


def test_dag_on_competition_layout(competition_layout, tiny_reader, tmp_path):
    params = {
        "corpus_uri": str(competition_layout["corpus"]),
        "train_uri": str(competition_layout["train"]),
        "eval_uri": str(competition_layout["train"]),
        "test_uri": str(competition_layout["test"]),
        "analyzer": "bigram",
        "top_k": 3,
        "epochs": 1.0,
        "reader_configs": [tiny_reader],
    }
    result = run_local(LocalRunConfig(str(tmp_path / "runs"), None, params))
    run_dir = result.run_dir

    passages = [
        json.loads(line)
        for line in _only(run_dir, "artifacts/*/preprocess/passages/passages.jsonl").open(encoding="utf-8")
    ]
    corpus_ids = competition_layout["document_ids"]
    assert passages and {p["document_id"] for p in passages} <= corpus_ids  # never the QA contexts
    aliases = json.loads(_only(run_dir, "artifacts/*/preprocess/passages/doc_aliases.json").read_text())
    assert {int(k) for k in aliases} | {int(v) for v in aliases.values()} >= set(
        competition_layout["duplicate_ids"]
    )

    uri = result.tracking_uri
    stages = {r.data.tags[tracking.STAGE_TAG]: r for r in tracking.stage_runs(uri, result.parent_run_id)}
    evaluate = stages["evaluate"].data.metrics
    assert evaluate["total"] == competition_layout["validation_count"]
    # Every validation question names the dropped duplicate as gold: recall counts it through the aliases.
    assert stages["retrieve"].data.metrics["by_document.recall_at_1"] > 0.5

    predictions = json.loads(
        _only(run_dir, "artifacts/*/answer-test/predictions/predictions.json").read_text()
    )
    assert set(predictions) == competition_layout["test_ids"]
    assert all(isinstance(a, str) for a in predictions.values())
    client = tracking.client(uri)
    assert {"test/predictions.json", "test/nbest.json"} <= {
        a.path for a in client.list_artifacts(result.parent_run_id, "test")
    }
    assert "exact_match" not in stages["answer_test"].data.metrics
    assert str(client.get_model_version_by_alias("odqa", registry.CHAMPION).version) == "1"

    out = tmp_path / "submission"
    argv = ["answer", "--model", "models:/odqa@champion", "--tracking-uri", uri]
    assert (
        main(
            [
                *argv,
                "--questions",
                str(competition_layout["test"]),
                "--split",
                "validation",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    served = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    assert set(served) == competition_layout["test_ids"]
    assert "\\u" not in (out / "predictions.json").read_text(encoding="utf-8")  # Korean unescaped


def test_failing_stage_is_one_line_naming_stage_and_log(competition_layout, tmp_path, capsys):
    argv = ["pipeline", "run", "--local", "--runs-dir", str(tmp_path / "runs")]
    argv += [
        "--corpus-uri",
        str(competition_layout["corpus"]),
        "--train-uri",
        str(competition_layout["train"]),
    ]
    argv += ["--eval-uri", str(competition_layout["train"]), "--eval-split", "dev"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err  # no kfp warnings, no "Skipping task" lines
    assert err[0].startswith("odqa pipeline run: error: stage prepare-data failed: ")
    assert "eval_split='dev': no such split" in err[0] and "(log: " in err[0]
    assert "Traceback" not in captured.out  # the stage's traceback is in the log only
    log = err[0].rsplit("(log: ", 1)[1].rstrip(")")
    text = open(log, encoding="utf-8").read()
    assert "Traceback (most recent call last)" in text and "Skipping task preprocess" in text
