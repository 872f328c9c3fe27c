"""The prepare_data stage: the user's data, in either layout the pipeline takes, as one folder of flat files
(documents.jsonl, train.jsonl, eval.jsonl and, when there is a test set, test.jsonl).

- The competition layout: a Wikipedia corpus (`corpus_uri`) searched at inference, train and eval
  question sets (`train_uri`, `eval_uri`: any QA layout odqa reads; a DatasetDict's split by name), and an
  optional question-only test set (`test_uri`) that the pipeline answers for submission. Open-domain as
  the competition defines it: the documents are the corpus, never the questions' contexts.
- One KorQuAD-layout file (`data_uri`, '' = KorQuAD 1.0 dev), split by article (odqa.data.korquad).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, model_validator

from odqa.config import StageConfig
from odqa.data.documents import iter_documents, load_documents, write_documents
from odqa.data.korquad import KorquadSplitConfig, prepare_korquad
from odqa.data.qa import load_qa, write_qa
from odqa.data.uri import resolve_data_uri
from odqa.errors import InputError
from odqa.io import atomic_dir, check_output_dir, read_json, write_json
from odqa.schema import DOCUMENTS_FILE, EVAL_FILE, SPLIT_REPORT_FILE, TEST_FILE, TRAIN_FILE, QAExample

logger = logging.getLogger(__name__)

DATA_KIND = "split"  # the same output kind as prepare_korquad: documents + train + eval (+ test)
DATASET_DICT_FILE = "dataset_dict.json"  # what `DatasetDict.save_to_disk` writes at the folder's top


class PrepareDataConfig(StageConfig):
    data_uri: str = Field("", description="one KorQuAD-layout file split by article ('' = KorQuAD 1.0 dev)")
    corpus_uri: str = Field(
        "",
        description="the documents to search: wikipedia_documents.json (dict or list), JSONL or a datasets folder",
    )
    train_uri: str = Field("", description="training questions (any QA layout odqa reads)")
    train_split: str = Field("train", description="split of train_uri when it is a DatasetDict")
    eval_uri: str = Field("", description="evaluation questions, answered against the corpus and scored")
    eval_split: str = Field("validation", description="split of eval_uri when it is a DatasetDict")
    test_uri: str = Field("", description="questions without answers to predict (optional)")
    test_split: str = Field("", description="split of test_uri when it is a DatasetDict ('': its only split)")
    eval_fraction: float = Field(0.2, description="data_uri only: share of articles held out for evaluation")
    split_seed: int = Field(42, description="data_uri only: seed of the article split")

    @model_validator(mode="after")
    def _one_layout(self) -> PrepareDataConfig:
        named = {"corpus_uri": self.corpus_uri, "train_uri": self.train_uri, "eval_uri": self.eval_uri}
        given = [k for k, v in named.items() if v]
        if given and self.data_uri:
            raise ValueError(f"give data_uri or {'/'.join(named)}, not both (data_uri with {given[0]})")
        missing = [k for k, v in named.items() if not v]
        if given and missing:
            raise ValueError(
                f"{', '.join(given)} given without {', '.join(missing)}: the layout needs all three"
            )
        return self

    @property
    def competition_layout(self) -> bool:
        return bool(self.corpus_uri)


class _StreamedDocuments:
    """A corpus read twice, streaming (ids, then the copy), never held whole: a 1.5 GB
    wikipedia_documents.json stays out of memory. load_documents' checks apply on the first pass."""

    def __init__(self, path: Path):
        self.path = path
        self._ids: set[str] | None = None

    def ids(self) -> set[str]:
        if self._ids is None:
            self._ids = {d.document_id for d in iter_documents(self.path)}
            if not self._ids:
                raise InputError("no documents found", path=self.path)
        return self._ids

    def __iter__(self):
        return iter_documents(self.path)

    def __len__(self) -> int:
        return len(self.ids())


@dataclass
class PreparedData:
    documents_path: Path
    train_path: Path
    eval_path: Path
    test_path: Path | None
    report: dict


def _split_for(path: Path, split: str, flag: str, default: str) -> str | None:
    """The split to read: a DatasetDict needs one (its only split when `split` is ''); other layouts none."""
    if not (path.is_dir() and (path / DATASET_DICT_FILE).exists()):
        if split and split != default:
            raise InputError(f"{flag}={split!r} applies only to a datasets DatasetDict folder", path=path)
        return None
    splits = read_json(path / DATASET_DICT_FILE).get("splits", [])
    if not split:
        if len(splits) != 1:
            raise InputError(f"a DatasetDict with splits {sorted(splits)}: choose one with {flag}", path=path)
        return splits[0]
    if split not in splits:
        raise InputError(f"{flag}={split!r}: no such split; the DatasetDict has {sorted(splits)}", path=path)
    return split


def _questions(
    uri: str, split: str, flag: str, default: str, open_domain: bool = True
) -> tuple[Path, list[QAExample]]:
    """Training questions need their contexts and answer offsets (open_domain=False); eval and test
    questions only the question and gold texts."""
    path = resolve_data_uri(uri)
    return path, load_qa(path, split=_split_for(path, split, flag, default), open_domain=open_domain).examples


def _check_test(path: Path, test: list[QAExample], others: dict[str, list[QAExample]]) -> None:
    answered = next((ex for ex in test if ex.answers["text"]), None)
    if answered is not None:
        raise InputError(
            "the test set holds answers: it is predicted, not scored; give labelled questions as eval_uri",
            path=path,
            record=answered.id,
        )
    for name, examples in others.items():
        shared = {ex.id for ex in examples} & {ex.id for ex in test}
        if shared:
            raise InputError(
                f"{len(shared)} test question id(s) also in the {name} set, e.g. {min(shared)!r}: "
                "predictions would be ambiguous",
                path=path,
            )


def prepare_data(config: PrepareDataConfig, out_dir: str | os.PathLike, force: bool = False) -> PreparedData:
    """Write the user's data as flat files into out_dir (a new folder or an earlier one of this kind)."""
    out_dir = check_output_dir(out_dir, DATA_KIND, force)
    test_path, test = None, None
    if config.test_uri:
        test_path, test = _questions(config.test_uri, config.test_split, "test_split", "")
    if not config.competition_layout:
        split_config = KorquadSplitConfig(eval_fraction=config.eval_fraction, seed=config.split_seed)
        with tempfile.TemporaryDirectory() as tmp:
            split = prepare_korquad(split_config, resolve_data_uri(config.data_uri), Path(tmp) / "split")
            documents = load_documents(split.documents_path)
            train = load_qa(split.train_path).examples
            evaluation = load_qa(split.eval_path, open_domain=True).examples
            report = {**split.report, "layout": "korquad"}
    else:
        corpus_path = resolve_data_uri(config.corpus_uri)
        documents = _StreamedDocuments(corpus_path)
        train_path, train = _questions(
            config.train_uri, config.train_split, "train_split", "train", open_domain=False
        )
        eval_path, evaluation = _questions(config.eval_uri, config.eval_split, "eval_split", "validation")
        if not any(ex.answers["text"] for ex in train):
            raise InputError("the training set holds no answers", path=train_path)
        known = documents.ids()
        unknown = sum(1 for ex in evaluation if ex.document_id and ex.document_id not in known)
        report = {
            "layout": "competition",
            "config": config.to_dict(),
            "documents": len(documents),
            "train_questions": len(train),
            "eval_questions": len(evaluation),
            # Gold documents the corpus lacks cannot be retrieved: recall counts them as misses.
            "eval_gold_not_in_corpus": unknown,
        }
    if test is not None:
        _check_test(test_path, test, {"train": train, "eval": evaluation})
        report["test_questions"] = len(test)
    with atomic_dir(out_dir, kind=DATA_KIND, force=force) as tmp:
        write_documents(tmp / DOCUMENTS_FILE, documents)
        write_qa(tmp / TRAIN_FILE, train)
        write_qa(tmp / EVAL_FILE, evaluation)
        if test is not None:
            write_qa(tmp / TEST_FILE, test)
        write_json(tmp / SPLIT_REPORT_FILE, report)
    logger.info(
        "data (%s layout): %d documents, %d train / %d eval%s questions",
        report["layout"],
        len(documents),
        len(train),
        len(evaluation),
        f" / {len(test)} test" if test is not None else "",
    )
    return PreparedData(
        documents_path=out_dir / DOCUMENTS_FILE,
        train_path=out_dir / TRAIN_FILE,
        eval_path=out_dir / EVAL_FILE,
        test_path=out_dir / TEST_FILE if test is not None else None,
        report=report,
    )
