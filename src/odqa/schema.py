"""The records that flow between stages, and the file names each stage writes.

Every stage reads and writes these as JSON/JSONL so a stage can run alone (CLI), inside a KFP
component, or in a test, and any output can be inspected with a text editor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# File names inside stage output folders.
PASSAGES_FILE = "passages.jsonl"  # preprocess -> index: one Passage per line
DOC_ALIASES_FILE = "doc_aliases.json"  # preprocess: {dropped duplicate doc_id: kept doc_id}
PREPROCESS_REPORT_FILE = "preprocess_report.json"
QA_FILE = "qa.jsonl"  # normalised QA examples (flat competition format), one per line
RETRIEVER_CONFIG_FILE = "retriever.json"  # inside an index folder: {"type": ..., ...settings}
RETRIEVED_FILE = "retrieved.jsonl"  # retrieve -> predict: one RetrievalResult per line
PREDICTIONS_FILE = "predictions.json"  # {question id: answer text}
NBEST_FILE = "nbest.json"  # {question id: [NBestEntry, ...]}
METRICS_FILE = "metrics.json"


@dataclass
class QAExample:
    """One question in the flat format of the Korean MRC competitions.

    `answers` keeps that format: {"answer_start": [int], "text": [str]}; empty lists at inference.
    """

    id: str
    question: str
    context: str = ""
    title: str = ""
    document_id: str = ""
    answers: dict[str, list] = field(default_factory=lambda: {"answer_start": [], "text": []})
    # Training-only: loss weight (curriculum / augmentation confidence); 1.0 for real data.
    weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QAExample:
        answers = d.get("answers") or {"answer_start": [], "text": []}
        return cls(
            id=str(d["id"]),
            question=d["question"],
            context=d.get("context", "") or "",
            title=d.get("title", "") or "",
            document_id=str(d.get("document_id", "") or ""),
            answers={
                "answer_start": list(answers.get("answer_start", [])),
                "text": list(answers.get("text", [])),
            },
            weight=float(d.get("weight", 1.0)),
        )

    @property
    def is_answerable(self) -> bool:
        return bool(self.answers["text"])


@dataclass
class Document:
    doc_id: str
    title: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Passage:
    """A retrieval unit. `start_char` is where `text` begins in the cleaned document text, so a
    span found in the passage maps back to its document (the title prefix is not part of `text`)."""

    passage_id: str
    doc_id: str
    title: str
    text: str
    start_char: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Passage:
        return cls(
            passage_id=str(d["passage_id"]),
            doc_id=str(d["doc_id"]),
            title=d.get("title", "") or "",
            text=d["text"],
            start_char=int(d.get("start_char", 0)),
        )


@dataclass
class Hit:
    """One retrieved passage with its retriever score (higher is better)."""

    passage_id: str
    doc_id: str
    title: str
    text: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hit:
        return cls(
            str(d["passage_id"]), str(d["doc_id"]), d.get("title", "") or "", d["text"], float(d["score"])
        )


@dataclass
class RetrievalResult:
    """One line of retrieved.jsonl: {"id", "question", "passages": [Hit, ...]}."""

    id: str
    question: str
    passages: list[Hit]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "passages": [h.to_dict() for h in self.passages]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RetrievalResult:
        return cls(str(d["id"]), d["question"], [Hit.from_dict(h) for h in d.get("passages", [])])
