"""Load QA examples from every layout we meet, check them, and write the one flat format stages share.

Layouts: SQuAD/KorQuAD JSON (`data[].paragraphs[].qas[]`), the flat competition records
(`id, title, context, question, answers{answer_start[], text[]}, document_id`) as a JSON list,
`{"data": [...]}`, JSONL, or a Hugging Face `datasets` folder written by `save_to_disk`.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from odqa.errors import InputError
from odqa.io import iter_jsonl, read_json, write_jsonl
from odqa.schema import QAExample

logger = logging.getLogger(__name__)

# Problem kinds; all of them are errors unless fix_offsets=True repairs or drops the record.
OFFSET_MOVED = "offset_moved"
ANSWER_NOT_FOUND = "answer_not_found"
EMPTY_ANSWER = "empty_answer"
EMPTY_QUESTION = "empty_question"
EMPTY_CONTEXT = "empty_context"
DUPLICATE_ID = "duplicate_id"
NO_ANSWERS_LEFT = "no_answers_left"


@dataclass
class Problem:
    record: str
    kind: str
    message: str


@dataclass
class ValidationReport:
    """What loading found: counts plus one Problem per repaired or dropped item."""

    path: str
    format: str
    records: int = 0  # questions read
    examples: int = 0  # questions kept
    answers: int = 0  # answers kept
    answers_moved: int = 0
    answers_dropped: int = 0
    examples_dropped: int = 0
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self, max_problems: int | None = None) -> dict[str, Any]:
        d = asdict(self)
        kinds: dict[str, int] = {}
        for p in self.problems:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        d["problem_counts"] = kinds
        if max_problems is not None:
            d["problems"] = d["problems"][:max_problems]
        return d


@dataclass
class LoadedQA:
    examples: list[QAExample]
    report: ValidationReport


def load_qa(
    path: str | os.PathLike,
    *,
    fix_offsets: bool = False,
    split: str | None = None,
    open_domain: bool = False,
) -> LoadedQA:
    """Read and validate QA examples.

    Without `fix_offsets` any problem (answer not at answer_start, empty text, duplicate id) is an
    InputError naming the file and record. With it, offsets are moved to the occurrence nearest the
    stated start, and what cannot be repaired is dropped and counted in the report.
    Missing or mistyped fields are always an InputError: there is nothing sensible to repair.

    Text is NFC-normalised here, once (question, context, title, answer texts; offsets follow), so
    an NFD context still holds its NFC answers. `open_domain` accepts gold without context and
    answers without answer_start (-1 then): retrieval and EM/F1 need only the question and texts.
    """
    path = Path(path)
    fmt, records = _read_records(path, split, open_domain)
    report = ValidationReport(path=str(path), format=fmt)
    examples: list[QAExample] = []
    seen: set[str] = set()
    for index, raw in enumerate(records):
        report.records += 1
        example = _to_example(raw, path, index, open_domain)
        example = _check_example(example, seen, report, path, fix_offsets, open_domain)
        if example is None:
            report.examples_dropped += 1
            continue
        seen.add(example.id)
        examples.append(example)
        report.answers += len(example.answers["text"])
    report.examples = len(examples)
    if report.records == 0:
        raise InputError("no QA records found", path=path)
    if not examples:  # only fix_offsets drops records; dropping all of them is no repair
        counts = report.to_dict()["problem_counts"]
        first = report.problems[0] if report.problems else None
        example = f"; first: record {first.record}: {first.message}" if first else ""
        raise InputError(
            f"every one of the {report.records} records would be dropped ({counts}){example}", path=path
        )
    if report.problems:
        logger.warning(
            "%s: %d problems repaired or dropped (%d answers moved, %d dropped, %d examples dropped)",
            path,
            len(report.problems),
            report.answers_moved,
            report.answers_dropped,
            report.examples_dropped,
        )
    return LoadedQA(examples=examples, report=report)


def write_qa(path: str | os.PathLike, examples: Iterable[QAExample]) -> int:
    """Write examples as flat JSONL (qa.jsonl); returns the count."""
    return write_jsonl(path, (ex.to_dict() for ex in examples))


# ---------------------------------------------------------------- reading layouts


def _read_records(
    path: Path, split: str | None, open_domain: bool = False
) -> tuple[str, Iterator[tuple[str, dict]]]:
    """(format name, iterator of flat dict records). Raw SQuAD records are flattened here."""
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.is_dir():
        return "hf_datasets", _iter_hf_dataset(path, split)
    if split is not None:
        raise InputError(f"split={split!r} only applies to a Hugging Face datasets folder", path=path)
    if path.suffix == ".jsonl":
        return "jsonl", iter_jsonl(path)
    data = read_json(path)
    if isinstance(data, dict):
        if "data" not in data:
            raise InputError("JSON object without a 'data' list: not SQuAD nor flat QA", path=path)
        data = data["data"]
    if not isinstance(data, list):
        raise InputError("expected a JSON list of records (or {'data': [...]})", path=path)
    if data and isinstance(data[0], dict) and "paragraphs" in data[0]:
        return "squad", _iter_squad(data, path, open_domain)
    return "flat_json", iter(data)


def _iter_squad(articles: list, path: Path, open_domain: bool = False) -> Iterator[dict]:
    for a_index, article in enumerate(articles):
        where = f"data[{a_index}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise InputError("article without a 'paragraphs' list", path=path, record=where)
        title = article.get("title", "") or ""
        for p_index, paragraph in enumerate(article["paragraphs"]):
            pwhere = f"{where}.paragraphs[{p_index}]"
            if (
                not isinstance(paragraph, dict)
                or "qas" not in paragraph
                or ("context" not in paragraph and not open_domain)
            ):
                raise InputError("paragraph needs 'context' and 'qas'", path=path, record=pwhere)
            for q_index, qa in enumerate(paragraph["qas"]):
                if not isinstance(qa, dict):
                    raise InputError(
                        "qa entry is not an object", path=path, record=f"{pwhere}.qas[{q_index}]"
                    )
                answers = qa.get("answers", [])
                if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
                    raise InputError(
                        "'answers' must be a list of {text, answer_start}",
                        path=path,
                        record=qa.get("id", f"{pwhere}.qas[{q_index}]"),
                    )
                try:
                    flat_answers = {
                        "answer_start": [
                            a.get("answer_start", -1) if open_domain else a["answer_start"] for a in answers
                        ],
                        "text": [a["text"] for a in answers],
                    }
                except KeyError as e:
                    raise InputError(
                        f"answer without field {e}",
                        path=path,
                        record=qa.get("id", f"{pwhere}.qas[{q_index}]"),
                    ) from None
                record = {k: v for k, v in qa.items() if k != "answers"}
                record.update(title=title, context=paragraph.get("context", ""), answers=flat_answers)
                yield record


def _iter_hf_dataset(path: Path, split: str | None) -> Iterator[dict]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise InputError(f"not a Hugging Face datasets folder ({e})", path=path) from None
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            raise InputError(
                f"a DatasetDict: choose a split with split= (one of {sorted(loaded)})", path=path
            )
        if split not in loaded:
            raise InputError(f"no split {split!r}; splits are {sorted(loaded)}", path=path)
        loaded = loaded[split]
    elif split is not None:
        raise InputError(f"split={split!r} given but the folder holds a single Dataset", path=path)
    yield from loaded


# ---------------------------------------------------------------- checking records


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _nfc_offset(text: str, start: int) -> int:
    """Where offset `start` of `text` lies in NFC(text)."""
    return len(_nfc(text[:start])) if 0 < start <= len(text) else start


def _to_example(raw: Any, path: Path, index: int, open_domain: bool = False) -> QAExample:
    where = raw.get("id", f"#{index}") if isinstance(raw, dict) else f"#{index}"
    if not isinstance(raw, dict):
        raise InputError("record is not a JSON object", path=path, record=where)
    for name in ("id", "question"):
        if name not in raw or raw[name] is None:
            raise InputError(f"missing field {name!r}", path=path, record=where)
    if not isinstance(raw["question"], str):
        raise InputError("'question' must be a string", path=path, record=where)
    context = raw.get("context", "")
    if context is not None and not isinstance(context, str):
        raise InputError("'context' must be a string", path=path, record=where)
    answers = raw.get("answers")
    if answers is not None:
        if not isinstance(answers, dict) or not isinstance(answers.get("text", []), list):
            raise InputError("'answers' must be {answer_start: [int], text: [str]}", path=path, record=where)
        if open_domain and "answer_start" not in answers:  # gold texts only: offsets unknown
            answers = {**answers, "answer_start": [-1] * len(answers.get("text", []))}
            raw = {**raw, "answers": answers}
        starts, texts = answers.get("answer_start", []), answers.get("text", [])
        if not isinstance(starts, list) or len(starts) != len(texts):
            raise InputError(
                "answers.answer_start and answers.text differ in length", path=path, record=where
            )
        if not all(isinstance(t, str) for t in texts):
            raise InputError("answers.text must hold strings", path=path, record=where)
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in starts):
            raise InputError("answers.answer_start must hold integers", path=path, record=where)
    if "document_id" in raw and isinstance(raw["document_id"], (dict, list)):
        raise InputError("'document_id' must be a string or integer", path=path, record=where)
    example = QAExample.from_dict(raw)
    return _normalized(example)


def _normalized(ex: QAExample) -> QAExample:
    """The example in NFC, answer offsets moved with the context."""
    context = ex.context
    if not unicodedata.is_normalized("NFC", context):
        ex.answers["answer_start"] = [_nfc_offset(context, s) for s in ex.answers["answer_start"]]
        ex.context = _nfc(context)
    ex.question = _nfc(ex.question)
    ex.title = _nfc(ex.title)
    ex.answers["text"] = [_nfc(t) for t in ex.answers["text"]]
    return ex


def _check_example(
    ex: QAExample, seen: set[str], report: ValidationReport, path: Path, fix: bool, open_domain: bool = False
) -> QAExample | None:
    """The example (possibly repaired), or None when fix=True drops it. Open-domain gold keeps
    answers it cannot place (no context, or no answer_start)."""

    def problem(kind: str, message: str) -> None:
        if not fix:
            hint = "" if kind == DUPLICATE_ID else " (fix_offsets / --fix-offsets repairs or drops it)"
            raise InputError(message + hint, path=path, record=ex.id)
        report.problems.append(Problem(ex.id, kind, message))

    if ex.id in seen:
        problem(DUPLICATE_ID, f"duplicate id {ex.id!r}: the later record is dropped")
        return None
    if not ex.question.strip():
        problem(EMPTY_QUESTION, "empty question")
        return None
    if not ex.answers["text"]:
        return ex  # unanswered (inference) examples need no context
    if not ex.context.strip() and not open_domain:
        problem(EMPTY_CONTEXT, "missing or empty context for an example with answers")
        return None
    starts, texts = [], []
    for start, text in zip(ex.answers["answer_start"], ex.answers["text"], strict=True):
        if not text.strip():
            problem(EMPTY_ANSWER, f"empty answer text at answer_start {start}")
            report.answers_dropped += 1
            continue
        unplaced = open_domain and (start < 0 or not ex.context.strip())
        if not unplaced and ex.context[start : start + len(text)] != text:
            found = nearest_occurrence(ex.context, text, start)
            if found is None:
                problem(ANSWER_NOT_FOUND, f"answer {text!r} is not in the context")
                report.answers_dropped += 1
                continue
            problem(OFFSET_MOVED, f"answer {text!r} is not at answer_start {start}; found at {found}")
            report.answers_moved += 1
            start = found
        starts.append(start)
        texts.append(text)
    if not texts:
        problem(NO_ANSWERS_LEFT, "no valid answer left: example dropped")
        return None
    ex.answers = {"answer_start": starts, "text": texts}
    return ex


def nearest_occurrence(context: str, text: str, start: int) -> int | None:
    """Start of the occurrence of `text` in `context` closest to `start`, or None."""
    best = None
    pos = context.find(text)
    while pos != -1:
        if best is None or abs(pos - start) < abs(best - start):
            best = pos
        pos = context.find(text, pos + 1)
    return best
