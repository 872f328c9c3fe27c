"""Models for the service tests.

- `stub_holder`: a ModelHolder over a stand-in model that answers instantly (unit tests of the HTTP
  contract, batching and metrics).
- `registered_model` (session): the real thing, small: a BM25 index over 3 KorQuAD dev articles and a
  tiny reader (hidden 32, one layer, a few steps), logged with odqa.serving.log_model to a SQLite
  registry and registered twice (versions 1 and 2 of `odqa`, alias champion on 1). About 15 s.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from odqa.service.models import ModelHolder, ModelSource

KORQUAD_ARTICLES = 3


class StubModel:
    """OdqaModel's `answer` contract without a retriever or reader: the answer is the question's first
    word, found in a passage that contains it; every call is recorded."""

    def __init__(self, name: str = "stub"):
        self.name = name
        self.calls: list[tuple[list[str], int | None]] = []

    def answer(self, questions: list[str], top_k: int | None = None) -> list[dict]:
        self.calls.append((list(questions), top_k))
        records = []
        for q in questions:
            word = q.split()[0]
            text = f"앞 문장. {word} 이(가) 답이다."
            start = text.index(word)
            passages = [
                {
                    "passage_id": f"d{r}-0",
                    "document_id": f"d{r}",
                    "title": f"제목 {r}",
                    "text": text if r == 1 else "다른 문단.",
                    "score": 10.0 / r,
                    "rank": r,
                    "answer": {"text": word, "score": 0.5, "start_char": start, "end_char": start + len(word)}
                    if r == 1
                    else None,
                }
                for r in range(1, (top_k or 2) + 1)
            ]
            records.append(
                {
                    "question": q,
                    "answer": word,
                    "score": 0.5,
                    "passage_id": "d1-0",
                    "document_id": "d1",
                    "start_char": start,
                    "end_char": start + len(word),
                    "passages": passages,
                }
            )
        return records


@pytest.fixture
def stub_model() -> StubModel:
    return StubModel()


@pytest.fixture
def stub_holder(stub_model) -> ModelHolder:
    """A holder whose source is a fixed local 'URI' (version = the URI), loaded with `stub_model`."""
    holder = ModelHolder(ModelSource("stub-model", "sqlite:///unused.db"), loader=lambda uri: stub_model)
    holder.refresh()
    return holder


@dataclass
class RegisteredModel:
    tracking_uri: str
    model_uri: str  # the logged pyfunc (runs:/ or models:/m-...)
    versions: list[str]  # registered versions of `odqa`, all the same pyfunc
    questions: list[str]  # KorQuAD dev questions about the indexed articles


def build_registered_model(root: Path, korquad_articles) -> RegisteredModel:
    from odqa import registry, serving, tracking
    from odqa.data import load_qa
    from odqa.reader.train import ReaderTrainConfig, train_reader
    from odqa.retrieval.base import build_index

    passages, qa, _ = korquad_articles(root, KORQUAD_ARTICLES)
    index = build_index("bm25", {"analyzer": "bigram"}, passages, root / "index")
    reader = train_reader(
        ReaderTrainConfig(
            hidden_size=32, num_layers=1, num_heads=2, vocab_size=500, max_steps=4, batch_size=8, max_length=128,
            doc_stride=32, num_threads=1,
        ),
        qa,
        root / "reader",
        corpus_path=passages,
    )  # fmt: skip
    uri = tracking.sqlite_uri(root / "mlflow.db")
    run_id = tracking.start_pipeline_run(uri, "serving-tests", "build")
    model_uri = serving.log_model(uri, run_id, index, [reader], {"n_best": 5}, {}, top_k=10)
    versions = [registry.register_version(uri, "odqa", model_uri) for _ in range(2)]
    tracking.client(uri).set_registered_model_alias("odqa", registry.CHAMPION, versions[0])
    questions = list(dict.fromkeys(e.question for e in load_qa(qa).examples))
    return RegisteredModel(uri, model_uri, versions, questions)


@pytest.fixture(scope="session")
def registered_model_template(tmp_path_factory, korquad_articles) -> RegisteredModel:
    return build_registered_model(tmp_path_factory.mktemp("registered"), korquad_articles)


@pytest.fixture
def registered_model(registered_model_template, tmp_path) -> RegisteredModel:
    """A copy of the registry per test (tests move the alias); artifacts are shared, read-only."""
    from odqa import tracking

    src = Path(tracking.sqlite_path(registered_model_template.tracking_uri))
    shutil.copy(src, tmp_path / "mlflow.db")
    uri = tracking.sqlite_uri(tmp_path / "mlflow.db")
    t = registered_model_template
    return RegisteredModel(uri, t.model_uri, list(t.versions), list(t.questions))
