"""Measurements behind the regression tests: each returns the figures a test pins exactly.

The tests in this folder compare these to constants written at the top of each test module;
`regenerate.py` (run by hand, never by a test) prints new constants from the same functions.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

BM25_ANALYZERS = ("whitespace", "bigram", "kiwi", "kiwi+bigram")
BM25_TOP_K = 20
BM25_FIGURES = ("recall@1", "recall@5", "recall@20", "mrr")


def open_domain_corpus(korquad_path: Path, work: Path) -> tuple[Path, list]:
    """passages.jsonl with one passage per unique KorQuAD dev paragraph (ids as prepare-korquad
    gives them, in file order), and every question with its gold paragraph as document_id."""
    from odqa.data import load_qa
    from odqa.data.korquad import paragraph_document_id
    from odqa.io import read_json, write_jsonl
    from odqa.schema import Passage

    passages: dict[str, Passage] = {}
    for article in read_json(korquad_path)["data"]:
        for paragraph in article["paragraphs"]:
            doc = paragraph_document_id(paragraph["context"])
            passages.setdefault(doc, Passage(f"{doc}-0", doc, article.get("title", ""), paragraph["context"]))
    work.mkdir(parents=True, exist_ok=True)
    write_jsonl(work / "passages.jsonl", (p.to_dict() for p in passages.values()))
    questions = load_qa(korquad_path).examples
    for q in questions:
        q.document_id = paragraph_document_id(q.context)
    return work / "passages.jsonl", questions


def bm25_figures(analyzer: str, passages_path: Path, questions: list, work: Path) -> dict[str, float]:
    """recall@1/5/20 and MRR by gold document of a default-config BM25 index (title prefix on)."""
    from odqa.retrieval.base import build_index, load_retriever
    from odqa.retrieval.evaluate import retrieval_metrics
    from odqa.schema import RetrievalResult

    index_dir = build_index("bm25", {"analyzer": analyzer}, passages_path, work / f"bm25-{analyzer}")
    hits = load_retriever(index_dir).search([q.question for q in questions], BM25_TOP_K)
    results = [RetrievalResult(q.id, q.question, h) for q, h in zip(questions, hits, strict=True)]
    metrics = retrieval_metrics(results, questions)
    assert metrics["by_document"]["total"] == len(questions)
    return {k: metrics["by_document"][k] for k in BM25_FIGURES}


def ids_fingerprint(ids: list[str]) -> str:
    """sha256 of the ids, one per line, in file order."""
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def split_argv(korquad_path: Path, out_dir: Path) -> list[str]:
    """`odqa prepare-korquad` as the README runs it: seed 42, a fifth of the articles for eval."""
    split = ["--seed", "42", "--eval-fraction", "0.2"]
    return ["prepare-korquad", "--squad", str(korquad_path), "--out", str(out_dir), *split]


def split_figures(split_dir: Path) -> dict:
    """Counts read back from a prepare-korquad output folder, and the eval ids' fingerprint."""
    from odqa.data import load_qa

    train = load_qa(split_dir / "train.jsonl").examples
    evaluation = load_qa(split_dir / "eval.jsonl").examples
    with open(split_dir / "documents.jsonl", encoding="utf-8") as f:
        documents = sum(1 for _ in f)
    return {
        "documents": documents,
        "train_articles": len({q.title for q in train}),
        "eval_articles": len({q.title for q in evaluation}),
        "train_questions": len(train),
        "eval_questions": len(evaluation),
        "eval_ids_sha256": ids_fingerprint([q.id for q in evaluation]),
    }


def fixed_predictions(examples: list) -> dict[str, dict[str, str]]:
    """Deterministic predictions built from the data itself, each scoring somewhere strictly
    between 0 and 100 so a change in normalisation or F1 moves the figure."""
    return {
        "first_three_words": {q.id: " ".join(q.context.split()[:3]) for q in examples},
        "gold_minus_last_char": {q.id: q.answers["text"][0][:-1] for q in examples},
        "gold_with_particle": {q.id: q.answers["text"][0] + "은" for q in examples},
    }


def prediction_figures(korquad_path: Path, work: Path) -> dict[str, dict[str, float]]:
    """EM/F1 (0-100) of each fixed prediction set under each metric, through the evaluate stage."""
    from odqa.data import load_qa
    from odqa.evaluation.evaluate import EvaluateConfig, evaluate

    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, float]] = {}
    for name, predictions in fixed_predictions(load_qa(korquad_path).examples).items():
        path = work / f"{name}.json"
        path.write_text(json.dumps(predictions, ensure_ascii=False), encoding="utf-8")
        for metric in ("korquad", "squad"):
            m = evaluate(EvaluateConfig(metric=metric), korquad_path, path, work / f"{name}-{metric}.json")
            out[f"{name}/{metric}"] = {"exact_match": m["exact_match"], "f1": m["f1"], "total": m["total"]}
    return out


@pytest.fixture(scope="session")
def open_domain(tmp_path_factory, korquad_path) -> tuple[Path, list, Path]:
    """(passages.jsonl, questions, work folder) for the whole of KorQuAD dev, built once."""
    work = tmp_path_factory.mktemp("open_domain")
    passages_path, questions = open_domain_corpus(korquad_path, work)
    return passages_path, questions, work


@pytest.fixture(scope="session")
def measure() -> SimpleNamespace:
    """The measuring functions above, for test modules (which cannot import a conftest)."""
    return SimpleNamespace(
        bm25=bm25_figures, split=split_figures, split_argv=split_argv, predictions=prediction_figures
    )
