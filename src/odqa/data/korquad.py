"""Turn KorQuAD (SQuAD layout) into an open-domain task.

Articles are split, not questions, so no paragraph the reader trained on is asked about at evaluation.
The corpus holds every unique paragraph of every article, so evaluation retrieves against the
training articles too, as open-domain QA over Wikipedia would.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator

from odqa.config import StageConfig
from odqa.data.documents import write_documents
from odqa.data.qa import load_qa, write_qa
from odqa.errors import InputError
from odqa.io import atomic_dir, check_output_dir, read_json, write_json
from odqa.schema import DOCUMENTS_FILE, EVAL_FILE, SPLIT_REPORT_FILE, TRAIN_FILE, Document, QAExample

logger = logging.getLogger(__name__)

SPLIT_KIND = "split"  # the output kind of the folder prepare_korquad writes (odqa.io.atomic_dir)


class KorquadSplitConfig(StageConfig):
    eval_fraction: float = Field(0.2, description="share of articles held out for evaluation, in (0, 1)")
    seed: int = Field(42, description="random seed of the article split")

    @field_validator("eval_fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError(f"must be between 0 and 1 (exclusive), got {value}")
        return value


@dataclass
class KorquadSplit:
    documents_path: Path
    train_path: Path
    eval_path: Path
    report: dict


def paragraph_document_id(context: str) -> str:
    """Content-derived, so the same paragraph gets the same id in every run and every split."""
    return "kq-" + hashlib.sha1(context.encode("utf-8")).hexdigest()[:12]


paragraph_doc_id = paragraph_document_id  # old name, kept until 0.2


def prepare_korquad(
    config: KorquadSplitConfig,
    squad_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    force: bool = False,
) -> KorquadSplit:
    """Split by article into out_dir (a new folder or an earlier split; `force` replaces any other
    folder)."""
    out_dir = check_output_dir(out_dir, SPLIT_KIND, force)
    loaded = load_qa(squad_path)
    if loaded.report.format != "squad":
        raise InputError(f"expected SQuAD/KorQuAD layout, got {loaded.report.format}", path=squad_path)
    examples = loaded.examples

    for ex in examples:
        ex.document_id = paragraph_document_id(ex.context)
    documents: dict[str, Document] = {}
    for article in read_json(squad_path)["data"]:  # every paragraph, also those without questions
        for paragraph in article["paragraphs"]:
            document_id = paragraph_document_id(paragraph["context"])
            if document_id not in documents:
                documents[document_id] = Document(
                    document_id, article.get("title", "") or "", paragraph["context"]
                )
    titles = list(dict.fromkeys(ex.title for ex in examples))  # an article is its title, in file order
    if len(titles) < 2:
        raise InputError("need at least two articles to split", path=squad_path)

    n_eval = min(len(titles) - 1, max(1, round(config.eval_fraction * len(titles))))
    eval_titles = set(random.Random(config.seed).sample(titles, n_eval))
    train: list[QAExample] = [ex for ex in examples if ex.title not in eval_titles]
    evaluation: list[QAExample] = [ex for ex in examples if ex.title in eval_titles]

    report = {
        "config": config.to_dict(),
        "source": str(squad_path),
        "articles": len(titles),
        "train_articles": len(titles) - n_eval,
        "eval_articles": n_eval,
        "documents": len(documents),
        "train_questions": len(train),
        "eval_questions": len(evaluation),
        "eval_titles": sorted(eval_titles),
    }
    with atomic_dir(out_dir, kind=SPLIT_KIND, force=force) as tmp:
        write_documents(tmp / DOCUMENTS_FILE, documents.values())
        write_qa(tmp / TRAIN_FILE, train)
        write_qa(tmp / EVAL_FILE, evaluation)
        write_json(tmp / SPLIT_REPORT_FILE, report)
    logger.info(
        "KorQuAD split: %d documents, %d train / %d eval questions (%d / %d articles)",
        len(documents),
        len(train),
        len(evaluation),
        len(titles) - n_eval,
        n_eval,
    )
    return KorquadSplit(
        documents_path=out_dir / DOCUMENTS_FILE,
        train_path=out_dir / TRAIN_FILE,
        eval_path=out_dir / EVAL_FILE,
        report=report,
    )
