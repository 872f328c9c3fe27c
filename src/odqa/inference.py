"""Answer a question set nobody has scored (the competition's test set): retrieve, read with every reader,
ensemble, and write predictions.json (`{id: answer}`, the submission layout) and nbest.json. Two entry
points: the pipeline's trained index and readers (`answer_questions`), or a registered model
(`answer_with_model`, e.g. `models:/odqa@champion`)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from odqa.data.qa import load_qa
from odqa.ensemble import ENSEMBLE_KIND, EnsembleConfig, ensemble
from odqa.errors import InputError
from odqa.io import atomic_dir, check_output_dir, write_json, write_jsonl
from odqa.progress import progress_bar
from odqa.reader.config import PredictConfig
from odqa.reader.predict import predict
from odqa.retrieval.search import retrieve
from odqa.schema import ANSWERS_FILE, PREDICTIONS_FILE, RETRIEVED_FILE

logger = logging.getLogger(__name__)

ANSWERS_KIND = "answers"  # odqa.io output kind of answer_with_model's folder
MODEL_BATCH_SIZE = 64  # questions per call of a registered model


def answer_questions(
    index_dir: str | os.PathLike,
    reader_dirs: list[str | os.PathLike],
    qa_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    top_k: int,
    predict_config: PredictConfig,
    ensemble_config: EnsembleConfig,
    force: bool = False,
) -> Path:
    """The pipeline's own inference, as for the eval set (retrieve -> predict per reader -> ensemble), on
    questions without answers; out_dir gets predictions.json and nbest.json (an ensemble folder)."""
    if not reader_dirs:
        raise InputError("no reader to answer with")
    check_output_dir(out_dir, ENSEMBLE_KIND, force)
    with tempfile.TemporaryDirectory(prefix="odqa-answer-") as tmp:
        retrieved = retrieve(index_dir, qa_path, Path(tmp) / RETRIEVED_FILE, top_k=top_k)
        members = [
            predict(predict_config, reader, retrieved, Path(tmp) / f"reader_{i}").nbest_path
            for i, reader in enumerate(reader_dirs)
        ]
        return ensemble(ensemble_config, members, out_dir, force=force)


def answer_with_model(
    model_uri: str,
    qa_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    split: str | None = None,
    top_k: int | None = None,
    force: bool = False,
) -> Path:
    """A registered (or logged) odqa model answers every question of a QA file: out_dir gets
    predictions.json and answers.jsonl (the model's full record per question: score, passages read)."""
    import mlflow.pyfunc
    import pandas

    if top_k is not None and top_k < 1:
        raise InputError(f"--top-k must be at least 1, got {top_k}")
    out_dir = check_output_dir(out_dir, ANSWERS_KIND, force)
    examples = load_qa(qa_path, split=split, open_domain=True).examples
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except Exception as e:  # MlflowException, missing alias, unreachable server: one line for the user
        raise InputError(f"cannot load model {model_uri!r}: {' '.join(str(e).split())[:300]}") from None
    params = {"top_k": top_k} if top_k else None
    records = []
    with progress_bar(total=len(examples), desc="answer", unit="q") as bar:
        for start in range(0, len(examples), MODEL_BATCH_SIZE):
            batch = examples[start : start + MODEL_BATCH_SIZE]
            frame = pandas.DataFrame({"question": [ex.question for ex in batch]})  # the model's signature
            answers = model.predict(frame, params=params)
            records += [{"id": ex.id, **answer} for ex, answer in zip(batch, answers, strict=True)]
            bar.update(len(batch))
    with atomic_dir(out_dir, kind=ANSWERS_KIND, force=force) as tmp:
        write_json(tmp / PREDICTIONS_FILE, {r["id"]: r.get("answer", "") for r in records})
        write_jsonl(tmp / ANSWERS_FILE, records)
    logger.info("answered %d questions with %s into %s", len(records), model_uri, out_dir)
    return out_dir
