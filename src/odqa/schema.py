"""The records that flow between stages, and the file names each stage writes.

Every stage reads and writes these as JSON/JSONL so a stage can run alone (CLI), inside a KFP
component, or in a test, and any output can be inspected with a text editor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# File names inside stage output folders: every stage file is named here, once.
DOCUMENTS_FILE = "documents.jsonl"  # prepare-korquad: one document per line
TRAIN_FILE = "train.jsonl"  # prepare-korquad: training questions
EVAL_FILE = "eval.jsonl"  # prepare-korquad: evaluation questions
TEST_FILE = "test.jsonl"  # prepare_data: questions without answers, predicted for submission
SPLIT_REPORT_FILE = "split_report.json"  # prepare-korquad
PASSAGES_FILE = "passages.jsonl"  # preprocess -> index: one Passage per line
DOC_ALIASES_FILE = "doc_aliases.json"  # preprocess: {dropped duplicate document_id: kept document_id}
PREPROCESS_REPORT_FILE = "preprocess_report.json"
QA_FILE = "qa.jsonl"  # normalised QA examples (flat competition format), one per line
RETRIEVER_CONFIG_FILE = "retriever.json"  # inside an index folder: {"kind": ..., ...settings}
RETRIEVED_FILE = "retrieved.jsonl"  # retrieve -> predict: one RetrievalResult per line
RETRIEVAL_METRICS_FILE = "retrieval_metrics.json"  # eval-retrieval: recall@k and MRR
RECALL_PLOT_FILE = "recall_at_k.png"  # eval-retrieval
READER_CONFIG_FILE = "odqa_reader.json"  # inside a reader folder: windowing + training summary
PREDICTIONS_FILE = "predictions.json"  # {question id: answer text}
NBEST_FILE = "nbest.json"  # {question id: [NBestEntry, ...]}
ANSWERS_FILE = "answers.jsonl"  # odqa answer: a registered model's full record per question
ENSEMBLE_REPORT_FILE = "ensemble.json"  # ensemble: config, members, top-1 agreement
ANSWER_SCORES_PLOT_FILE = "answer_scores.png"  # predict / ensemble: histogram of top answer scores
METRICS_FILE = "metrics.json"  # evaluate: EM/F1 of predictions
QUESTION_SCORES_FILE = "question_scores.json"  # evaluate -> register: per-question EM/F1 (paired bootstrap)
PRETRAIN_INFO_FILE = "odqa_pretrain.json"  # inside a pretrain model folder: config + training summary
TRAINING_LOSS_PLOT_FILE = "training_loss.png"  # inside a reader folder or a dense index
FAISS_FILE = "passages.faiss"  # inside a dense index folder: the passage vectors
SERVING_SETTINGS_FILE = "odqa_serving.json"  # bundled with the served model: top_k and stage configs
RUN_SUMMARY_FILE = "summary.txt"  # runs/<timestamp>/ of a local pipeline run


def _document_id(d: dict[str, Any]) -> str:
    """`document_id`, or `doc_id` in files written before 0.2."""
    return str(d["document_id"] if "document_id" in d else d["doc_id"])


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
    document_id: str
    title: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Passage:
    """A retrieval unit. `start_char` is where `text` begins in the cleaned document text, so a
    span found in the passage maps back to its document (the title prefix is not part of `text`)."""

    passage_id: str
    document_id: str
    title: str
    text: str
    start_char: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Passage:
        return cls(
            passage_id=str(d["passage_id"]),
            document_id=_document_id(d),
            title=d.get("title", "") or "",
            text=d["text"],
            start_char=int(d.get("start_char", 0)),
        )


@dataclass
class Hit:
    """One retrieved passage with its retriever score (higher is better)."""

    passage_id: str
    document_id: str
    title: str
    text: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hit:
        return cls(
            str(d["passage_id"]), _document_id(d), d.get("title", "") or "", d["text"], float(d["score"])
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
