import json

import pytest

from odqa.data import write_qa
from odqa.errors import InputError
from odqa.io import write_json, write_jsonl
from odqa.retrieval.evaluate import evaluate_retrieval, plot_recall_curves, retrieval_metrics, summarize_ranks
from odqa.schema import Hit, QAExample, RetrievalResult


def hit(document_id: str, text: str = "") -> Hit:
    return Hit(f"{document_id}-0", document_id, document_id.upper(), text or f"text of {document_id}", 1.0)


def example(qid: str, document_id: str, answer: str | None = None) -> QAExample:
    context = f"context with {answer}" if answer else ""
    answers = {"answer_start": [13], "text": [answer]} if answer else {"answer_start": [], "text": []}
    return QAExample(
        id=qid, question=f"question {qid}?", context=context, document_id=document_id, answers=answers
    )


def test_summarize_ranks_recall_and_mrr():
    summary = summarize_ranks([1, 3, None, 20], depth=20)
    assert summary["total"] == 4
    assert summary["recall@1"] == 0.25
    assert summary["recall@5"] == 0.5
    assert summary["recall@10"] == 0.5
    assert summary["recall@20"] == 0.75
    assert "recall@50" not in summary and "recall@100" not in summary  # deeper than what was retrieved
    assert summary["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 20) / 4)
    assert summarize_ranks([], depth=5) == {"total": 0, "recall@1": 0.0, "recall@5": 0.0, "mrr": 0.0}


def test_document_and_answer_relevance_differ():
    examples = [example("a", "d1", "세종"), example("b", "d2", "1443년"), example("c", "d3", "서울")]
    results = [
        # gold doc first
        RetrievalResult("a", "?", [hit("d1", "세종대왕"), hit("x")]),
        # gold doc second; first passage (another doc) already holds the answer
        RetrievalResult("b", "?", [hit("y", "한글은 1443년에 창제되었다"), hit("d2")]),
        # gold doc missing, no passage holds the answer
        RetrievalResult("c", "?", [hit("x"), hit("y")]),
    ]
    metrics = retrieval_metrics(results, examples)
    assert metrics["questions"] == 3 and metrics["depth"] == 2
    doc, ans = metrics["by_document"], metrics["by_answer"]
    assert doc["recall@1"] == pytest.approx(1 / 3)
    assert doc["mrr"] == pytest.approx((1 + 1 / 2) / 3)
    assert "recall@5" not in doc
    assert ans["recall@1"] == pytest.approx(2 / 3)
    assert ans["mrr"] == pytest.approx(2 / 3)


def test_doc_aliases_map_dropped_duplicates_to_the_kept_document():
    examples = [example("a", "dup")]
    results = [RetrievalResult("a", "?", [hit("x"), hit("kept")])]
    assert retrieval_metrics(results, examples)["by_document"]["recall@1"] == 0.0
    with_aliases = retrieval_metrics(results, examples, {"dup": "kept"})["by_document"]
    assert with_aliases["mrr"] == 0.5


def test_questions_without_gold_are_left_out_of_that_measure():
    examples = [example("a", "", "서울"), example("b", "d1")]
    results = [RetrievalResult("a", "?", [hit("x", "서울 특별시")]), RetrievalResult("b", "?", [hit("d1")])]
    metrics = retrieval_metrics(results, examples)
    assert metrics["by_document"] == {"total": 1, "recall@1": 1.0, "mrr": 1.0}
    assert metrics["by_answer"] == {"total": 1, "recall@1": 1.0, "mrr": 1.0}


def test_a_question_without_retrieval_result_is_an_error():
    with pytest.raises(InputError, match="no retrieval result"):
        retrieval_metrics([RetrievalResult("a", "?", [hit("d1")])], [example("a", "d1"), example("b", "d1")])


def test_evaluate_retrieval_writes_metrics_and_plot(tmp_path):
    qa_path = tmp_path / "qa.jsonl"
    write_qa(qa_path, [example("a", "dup", "세종"), example("b", "d2", "한글")])
    retrieved = tmp_path / "retrieved.jsonl"
    write_jsonl(
        retrieved,
        [
            RetrievalResult(
                "a", "?", [hit("kept", "세종대왕")] + [hit(f"n{i}") for i in range(19)]
            ).to_dict(),
            RetrievalResult("b", "?", [hit(f"n{i}") for i in range(19)] + [hit("x")]).to_dict(),
        ],
    )
    write_json(tmp_path / "aliases.json", {"dup": "kept"})
    metrics = evaluate_retrieval(
        retrieved, qa_path, tmp_path / "out", doc_aliases_path=tmp_path / "aliases.json"
    )
    assert json.loads((tmp_path / "out" / "retrieval_metrics.json").read_text()) == metrics
    assert metrics["by_document"]["recall@20"] == 0.5 and "recall@50" not in metrics["by_document"]
    assert (tmp_path / "out" / "recall_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_retrieved_file_names_the_record(tmp_path):
    qa_path = tmp_path / "qa.jsonl"
    write_qa(qa_path, [example("a", "d1")])
    bad = tmp_path / "retrieved.jsonl"
    write_jsonl(bad, [RetrievalResult("a", "?", [hit("d1")]).to_dict(), {"id": "b", "passages": []}])
    with pytest.raises(InputError, match=r"retrieved.jsonl \[record line 2\]"):
        evaluate_retrieval(bad, qa_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_several_retrievers_share_one_plot(tmp_path):
    a = {"by_document": summarize_ranks([1, 2, None], 20), "by_answer": summarize_ranks([1, 1, 4], 20)}
    b = {"by_document": summarize_ranks([5, None, None], 100), "by_answer": summarize_ranks([], 100)}
    path = plot_recall_curves({"bm25": a, "dense": b}, tmp_path / "curves.png")
    assert path.stat().st_size > 10_000
