"""Models for the service tests.

- `stub_holder`: a ModelHolder over a stand-in model that answers instantly (unit tests of the HTTP
  contract, batching and metrics).
- `registered_model`: the real thing, small (tests/conftest.py's `odqa_model_builder`) in a SQLite
  registry, versions 1 and 2 of `odqa`, alias champion on 1; a copy of the registry per test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from odqa.service.models import ModelHolder, ModelSource


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


@pytest.fixture(scope="session")
def registered_model_template(tmp_path_factory, odqa_model_builder):
    return odqa_model_builder(tmp_path_factory.mktemp("registered"))


@pytest.fixture
def registered_model(registered_model_template, tmp_path):
    """A copy of the registry per test (tests move the alias); artifacts are shared, read-only."""
    from odqa import tracking

    src = Path(tracking.sqlite_path(registered_model_template.tracking_uri))
    shutil.copy(src, tmp_path / "mlflow.db")
    uri = tracking.sqlite_uri(tmp_path / "mlflow.db")
    t = registered_model_template
    return type(t)(uri, t.model_uri, list(t.versions), list(t.questions))
