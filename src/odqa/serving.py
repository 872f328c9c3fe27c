"""The servable model: an MLflow pyfunc bundling the retriever index and the reader folder(s) as
artifacts, so `models:/odqa@champion` answers questions with no access to the pipeline's files.

Input: a DataFrame with a `question` column (or a list of strings); optional params `top_k`.
Output: one record per question: answer, score, the answer's passage and character offsets, and the
passages read with their retrieval scores. `odqa.service` serves it over HTTP (docs/serving.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc

if TYPE_CHECKING:
    from odqa.ensemble import EnsembleConfig
    from odqa.reader.config import PredictConfig

logger = logging.getLogger(__name__)

INDEX_ARTIFACT = "index"
READER_ARTIFACT_PREFIX = "reader_"
SETTINGS_ARTIFACT = "settings"
MODEL_NAME_IN_RUN = "odqa_model"


@dataclass
class ServingSettings:
    """What the served model needs besides its artifacts: how many passages to retrieve and the
    pipeline's predict / ensemble configs."""

    top_k: int
    predict_config: PredictConfig
    ensemble_config: EnsembleConfig


def load_settings(path: str | Path) -> ServingSettings:
    """The settings file bundled with the model, through the same config classes as every other source
    (so an ensemble n_best that KFP turned into 10.0 is an int again)."""
    from odqa.ensemble import EnsembleConfig
    from odqa.errors import InputError
    from odqa.io import read_json
    from odqa.reader.config import PredictConfig

    settings = read_json(path)
    if not isinstance(settings, dict):
        raise InputError("serving settings must be a JSON object", path=path)
    top_k = settings.get("top_k", 20)
    if isinstance(top_k, float) and top_k.is_integer():
        top_k = int(top_k)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise InputError(f"top_k must be a positive integer, got {top_k!r}", path=path)
    return ServingSettings(
        top_k,
        PredictConfig.from_dict(settings.get("predict_config"), source=f"{path}: predict_config"),
        EnsembleConfig.from_dict(settings.get("ensemble_config"), source=f"{path}: ensemble_config"),
    )


class OdqaModel(mlflow.pyfunc.PythonModel):
    """Retriever + reader(s); several readers are combined with the pipeline's ensemble settings."""

    def load_context(self, context) -> None:
        from odqa.reader.predict import Reader
        from odqa.retrieval.base import load_retriever

        settings = load_settings(context.artifacts[SETTINGS_ARTIFACT])
        self.top_k = settings.top_k
        self.predict_config = settings.predict_config
        self.ensemble_config = settings.ensemble_config
        self.retriever = load_retriever(context.artifacts[INDEX_ARTIFACT])
        reader_keys = sorted(k for k in context.artifacts if k.startswith(READER_ARTIFACT_PREFIX))
        self.readers = [Reader.load(context.artifacts[k]) for k in reader_keys]

    def predict(self, context, model_input, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The pyfunc entry (`mlflow models serve`, `mlflow.pyfunc.load_model`): param `top_k` is how many
        passages are retrieved; the reader reads the first `predict_config.top_k_passages` of them."""
        top_k = int((params or {}).get("top_k") or self.top_k)
        read = min(top_k, self.predict_config.top_k_passages or top_k)
        return self.answer(_questions(model_input), read)

    def answer(self, questions: list[str], top_k: int | None = None) -> list[dict[str, Any]]:
        """Answer a batch of questions, reading the `top_k` best retrieved passages of each (default: the
        model's `predict_config.top_k_passages`, else its `top_k`). One record per question: the answer,
        its score, passage and character offsets into that passage's text, and every passage read with
        its retrieval score and the reader's best span in it (None where it proposed none).

        The whole batch goes through one retriever call and one reader call per reader, so callers that
        collect concurrent questions (odqa.service's batcher) get real batching."""
        from odqa.ensemble import combine
        from odqa.schema import RetrievalResult

        if not questions:
            return []
        k = int(top_k or self.predict_config.top_k_passages or self.top_k)
        hits = self.retriever.search(list(questions), k)
        results = [
            RetrievalResult(str(i), q, h[:k]) for i, (q, h) in enumerate(zip(questions, hits, strict=True))
        ]
        config = self.predict_config
        if config.top_k_passages != k:
            config = config.replace(top_k_passages=k)
        nbests = [reader.predict(results, config)[1] for reader in self.readers]
        nbest = nbests[0] if len(nbests) == 1 else combine(nbests, self.ensemble_config)[1]
        return [_answer_record(result, nbest.get(result.id) or []) for result in results]


def answer_offsets(passage_text: str, entry: dict[str, Any]) -> tuple[int, int] | None:
    """Character offsets of an n-best entry's answer in its passage text: the reader's own offsets when
    the entry carries them, else the first occurrence of the (particle-trimmed) answer text."""
    text = entry.get("text") or ""
    start = entry.get("start_char")
    if isinstance(start, int) and passage_text[start : start + len(text)] == text:
        return start, start + len(text)
    found = passage_text.find(text) if text else -1
    return (found, found + len(text)) if found >= 0 else None


def _answer_record(result, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The served record of one question (docs/serving.md has the contract)."""
    best_by_passage: dict[str, dict[str, Any]] = {}
    for entry in entries:  # best first
        best_by_passage.setdefault(entry.get("passage_id"), entry)
    passages = []
    for rank, hit in enumerate(result.passages, start=1):
        entry = best_by_passage.get(hit.passage_id)
        span = answer_offsets(hit.text, entry) if entry else None
        passages.append(
            {
                "passage_id": hit.passage_id,
                "document_id": hit.document_id,
                "title": hit.title,
                "text": hit.text,
                "score": float(hit.score),
                "rank": rank,
                "answer": None
                if entry is None
                else {
                    "text": entry.get("text", ""),
                    "score": float(entry.get("score", 0.0)),
                    "start_char": span[0] if span else None,
                    "end_char": span[1] if span else None,
                },
            }
        )
    best = entries[0] if entries else {}
    read = next((p for p in passages if p["passage_id"] == best.get("passage_id")), None)
    span = read["answer"] if read and read["answer"] else {}
    return {
        "question": result.question,
        "answer": best.get("text", ""),
        "score": float(best.get("score", 0.0)),
        "passage_id": best.get("passage_id"),
        "document_id": best.get("document_id"),
        "start_char": span.get("start_char"),
        "end_char": span.get("end_char"),
        "passages": passages,
    }


def _questions(model_input: Any) -> list[str]:
    if hasattr(model_input, "columns"):  # pandas DataFrame
        column = "question" if "question" in model_input.columns else model_input.columns[0]
        return [str(q) for q in model_input[column].tolist()]
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, dict):
        value = model_input.get("question", [])
        return [value] if isinstance(value, str) else [str(q) for q in value]
    return [str(q) for q in model_input]


def log_model(
    tracking_uri: str,
    run_id: str,
    index_dir: str | Path,
    readers: list[str | Path],
    predict_config: dict[str, Any] | None = None,
    ensemble_config: dict[str, Any] | None = None,
    top_k: int = 20,
) -> str:
    """Log the pyfunc (index + readers copied in as artifacts) to run `run_id`; returns its model URI."""
    import tempfile

    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    from odqa.io import write_json
    from odqa.schema import SERVING_SETTINGS_FILE

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", "question")]),
        params=ParamSchema([ParamSpec("top_k", "long", top_k)]),
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings_path = Path(tmp) / SERVING_SETTINGS_FILE
        write_json(
            settings_path,
            {
                "top_k": top_k,
                "predict_config": predict_config or {},
                "ensemble_config": ensemble_config or {},
            },
        )
        artifacts = {INDEX_ARTIFACT: str(index_dir), SETTINGS_ARTIFACT: str(settings_path)}
        for n, reader_dir in enumerate(readers):
            artifacts[f"{READER_ARTIFACT_PREFIX}{n:02d}"] = str(reader_dir)
        # start_run refuses a run of another experiment than the process's active one (set by whatever
        # logged before in this process): the run's own experiment is the one that counts.
        experiment_id = mlflow.tracking.MlflowClient(tracking_uri).get_run(run_id).info.experiment_id
        mlflow.set_experiment(experiment_id=experiment_id)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME_IN_RUN,
                python_model=OdqaModel(),
                artifacts=artifacts,
                signature=signature,
                pip_requirements=_requirements(),
            )
    return info.model_uri


def _requirements() -> list[str]:
    """Pinned from the running environment (inference would import and run the model)."""
    from importlib.metadata import version

    names = ["mlflow", "torch", "transformers", "tokenizers", "bm25s", "kiwipiepy", "numpy", "faiss-cpu"]
    return [f"{n}=={version(n)}" for n in names]


def version_tags(index_dir: str | Path) -> dict[str, str]:
    """Tags the registered version gets for the index it bundles: `odqa.index`, the concrete
    Elasticsearch indexes it searches (prune_indexes keeps those); none for a self-contained index."""
    from odqa.retrieval.elastic import INDEX_TAG, built_indexes

    names = [index for _, _, index in built_indexes(index_dir)]
    return {INDEX_TAG: ",".join(names)} if names else {}


def point_aliases(index_dir: str | Path) -> list[str]:
    """On promotion, move the Elasticsearch alias (for people: Kibana, curl) onto the champion's index.
    A failure only warns: the champion searches its concrete index, not the alias."""
    from odqa.retrieval.elastic import point_alias

    try:
        return point_alias(index_dir)
    except Exception as e:  # noqa: BLE001 (the promotion stands; the alias is a convenience)
        logger.warning("could not move the Elasticsearch alias to the champion's index: %s", e)
        return []
