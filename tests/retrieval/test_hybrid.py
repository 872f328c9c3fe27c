"""Hybrid fusion: RRF and normalised score fusion on hand-made rankings, then BM25 + dense on real KorQuAD."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from odqa.data import load_qa, write_qa
from odqa.errors import InputError
from odqa.retrieval.base import build_index, load_retriever
from odqa.retrieval.evaluate import retrieval_metrics
from odqa.retrieval.fusion import normalized_score_fusion, reciprocal_rank_fusion
from odqa.retrieval.hybrid import HybridConfig
from odqa.retrieval.tuning import tune_fusion_weight
from odqa.schema import RETRIEVER_CONFIG_FILE, Hit, RetrievalResult

# Tiny models train fastest on one thread; the fixture restores the process-wide count afterwards.
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def ranking(*pairs: tuple[str, float]) -> list[Hit]:
    return [Hit(pid, pid.split("-")[0], "", f"text of {pid}", score) for pid, score in pairs]


def ids(hits: list[Hit]) -> list[str]:
    return [h.passage_id for h in hits]


def test_rrf_scores_and_order():
    a = ranking(("x-0", 9.0), ("y-0", 5.0), ("z-0", 1.0))
    b = ranking(("y-0", 0.9), ("w-0", 0.8))
    fused = reciprocal_rank_fusion([a, b], k=60)
    scores = {h.passage_id: h.score for h in fused}
    assert scores["y-0"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["x-0"] == pytest.approx(1 / 61)
    assert scores["w-0"] == pytest.approx(1 / 62)
    assert scores["z-0"] == pytest.approx(1 / 63)
    assert ids(fused) == ["y-0", "x-0", "w-0", "z-0"]
    assert fused[0].text == "text of y-0"  # the hit itself is carried through, only its score changes
    # weights scale each list's contribution: a heavy second list puts w above x
    assert ids(reciprocal_rank_fusion([a, b], k=60, weights=[1.0, 3.0]))[:2] == ["y-0", "w-0"]


def test_rrf_ignores_score_scales():
    a = ranking(("x-0", 1000.0), ("y-0", 999.0))
    b = ranking(("y-0", 0.02), ("x-0", 0.01))
    fused = reciprocal_rank_fusion([a, b])
    assert fused[0].score == pytest.approx(fused[1].score)  # symmetric ranks tie regardless of raw scores


def test_minmax_fusion_with_weights():
    a = ranking(("x-0", 10.0), ("y-0", 6.0), ("z-0", 2.0))  # minmax -> x 1, y .5, z 0
    b = ranking(("z-0", 3.0), ("y-0", 2.0), ("w-0", 1.0))  # minmax -> z 1, y .5, w 0
    fused = normalized_score_fusion([a, b], weights=[0.7, 0.3], normalization="minmax")
    scores = {h.passage_id: h.score for h in fused}
    assert scores["x-0"] == pytest.approx(0.7 * 1 + 0.3 * 0)  # missing from b: b's minimum (0)
    assert scores["y-0"] == pytest.approx(0.7 * 0.5 + 0.3 * 0.5)
    assert scores["z-0"] == pytest.approx(0.7 * 0 + 0.3 * 1)
    assert scores["w-0"] == pytest.approx(0.7 * 0 + 0.3 * 0)
    assert ids(fused) == ["x-0", "y-0", "z-0", "w-0"]
    assert ids(normalized_score_fusion([a, b], weights=[0.0, 1.0]))[0] == "z-0"


def test_zscore_fusion():
    a = ranking(("x-0", 3.0), ("y-0", 1.0))  # z: x +1, y -1
    b = ranking(("y-0", 10.0), ("x-0", 0.0), ("v-0", 5.0))  # mean 5, std 4.08
    fused = normalized_score_fusion([a, b], normalization="zscore")
    std = (50 / 3) ** 0.5
    scores = {h.passage_id: h.score for h in fused}
    assert scores["x-0"] == pytest.approx(1 + (0 - 5) / std)
    assert scores["y-0"] == pytest.approx(-1 + 5 / std)
    assert scores["v-0"] == pytest.approx(-1 + 0)  # a's minimum z-score for a missing passage


def test_config_validation():
    with pytest.raises(InputError, match="at least two"):
        HybridConfig(indexes=["only-one"])
    with pytest.raises(InputError, match="fusion"):
        HybridConfig(indexes=["a", "b"], fusion="max")
    with pytest.raises(InputError, match="weights"):
        HybridConfig(indexes=["a", "b"], weights=[1.0])
    assert HybridConfig(indexes="a, b", weights="0.3,0.7").weights == [0.3, 0.7]  # CLI key=value form


@pytest.fixture(scope="module")
def bm25_and_dense(tmp_path_factory, korquad_articles) -> tuple[Path, Path, Path, Path]:
    """BM25 (bigram) and a tiny dense index over the paragraphs of the first 8 KorQuAD dev articles."""
    root = tmp_path_factory.mktemp("hybrid")
    korquad_articles(root, 8)
    bm25 = build_index("bm25", {"analyzer": "bigram"}, root / "passages.jsonl", root / "indexes" / "bm25")
    dense = build_index(
        "dense",
        {
            "train_qa": str(root / "qa.jsonl"),
            "epochs": 2,
            "hidden_size": 32,
            "num_layers": 1,
            "num_heads": 2,
            "intermediate_size": 64,
            "vocab_size": 3000,
            "max_passage_tokens": 128,
            "bm25_analyzer": "bigram",
            "num_threads": 1,
        },
        root / "passages.jsonl",
        root / "indexes" / "dense",
    )
    return root, root / "qa.jsonl", bm25, dense


@pytest.mark.integration
def test_hybrid_over_bm25_and_dense(bm25_and_dense):
    root, qa_path, bm25, dense = bm25_and_dense
    examples = load_qa(qa_path).examples[:40]
    questions = [e.question for e in examples]
    build_index(
        "hybrid", {"indexes": [str(bm25), str(dense)], "depth": 30}, None, root / "indexes" / "hybrid"
    )
    stored = json.loads((root / "indexes" / "hybrid" / RETRIEVER_CONFIG_FILE).read_text())
    assert stored["kind"] == "hybrid" and stored["indexes_relative"] == ["../bm25", "../dense"]
    hybrid = load_retriever(root / "indexes" / "hybrid")
    fused = hybrid.search(questions, top_k=5)
    bm25_hits = load_retriever(bm25).search(questions, 30)
    dense_hits = load_retriever(dense).search(questions, 30)
    for hits, a, b in zip(fused, bm25_hits, dense_hits, strict=True):
        assert len(hits) == 5
        assert set(ids(hits)) <= set(ids(a)) | set(ids(b))
        assert ids(hits) == ids(reciprocal_rank_fusion([a, b]))[:5]

    # the index folders move together: relative paths still resolve
    moved = root / "moved"
    shutil.copytree(root / "indexes", moved)
    shutil.rmtree(root / "indexes" / "bm25")
    try:
        again = load_retriever(moved / "hybrid").search(questions[:5], top_k=5)
        assert [ids(h) for h in again] == [ids(h) for h in fused[:5]]
    finally:
        shutil.copytree(moved / "bm25", root / "indexes" / "bm25")


@pytest.mark.integration
def test_tune_fusion_weight_matches_the_single_retrievers_at_the_ends(bm25_and_dense, tmp_path: Path):
    root, qa_path, bm25, dense = bm25_and_dense
    dev = load_qa(qa_path).examples[::3]
    write_qa(tmp_path / "dev.jsonl", dev)
    tuning = tune_fusion_weight(
        [bm25, dense],
        tmp_path / "dev.jsonl",
        fusion="minmax",
        grid=[0.0, 0.5, 1.0],
        depth=20,
        plot_path=tmp_path / "w.png",
    )
    bm25_results = [
        RetrievalResult(e.id, e.question, hits)
        for e, hits in zip(dev, load_retriever(bm25).search([e.question for e in dev], 20), strict=True)
    ]
    bm25_recall_at_1 = retrieval_metrics(bm25_results, dev)["by_document"]["recall@1"]
    assert tuning.scores[1.0] == pytest.approx(bm25_recall_at_1)  # weight 1: BM25 alone
    assert tuning.value == max(tuning.scores.values()) and tuning.weight in (0.0, 0.5, 1.0)
    assert tuning.value >= bm25_recall_at_1
    assert (tmp_path / "w.png").stat().st_size > 0


def test_hybrid_builds_its_members_in_its_own_folder_and_names_them(bm25_and_dense, tmp_path: Path):
    from odqa.retrieval.base import with_stage_defaults
    from odqa.retrieval.hybrid import sub_indexes

    root, qa_path, _, _ = bm25_and_dense
    options = with_stage_defaults(
        "hybrid",
        {"members": [{"kind": "bm25"}, {"kind": "bm25", "analyzer": "whitespace"}], "fusion": "zscore"},
        analyzer="bigram",
        train_qa=qa_path,
    )
    assert options["members"] == [
        {"kind": "bm25", "analyzer": "bigram"},
        {"kind": "bm25", "analyzer": "whitespace"},
    ]
    build_index("hybrid", options, root / "passages.jsonl", tmp_path / "built" / "hybrid")
    shutil.move(tmp_path / "built", tmp_path / "moved")  # self-contained: members travel with it
    members = sub_indexes(tmp_path / "moved" / "hybrid")
    assert list(members) == ["bm25-bigram", "bm25-whitespace"]
    assert all(p.parent == tmp_path / "moved" / "hybrid" / "members" for p in members.values())
    questions = [e.question for e in load_qa(qa_path).examples[:20]]
    fused = load_retriever(tmp_path / "moved" / "hybrid").search(questions, top_k=5)
    per_member = [load_retriever(p).search(questions, 100) for p in members.values()]
    for hits, *rankings in zip(fused, *per_member, strict=True):
        assert ids(hits) == ids(normalized_score_fusion(rankings, normalization="zscore"))[:5]
    assert sub_indexes(members["bm25-bigram"]) == {}
    assert with_stage_defaults("dense", {}, "kiwi", train_qa="t.jsonl") == {"train_qa": "t.jsonl"}


def test_hybrid_members_and_indexes_are_exclusive():
    with pytest.raises(InputError, match="either indexes"):
        HybridConfig(indexes=["a", "b"], members=[{"kind": "bm25"}, {"kind": "bm25"}])
    with pytest.raises(InputError, match="kind"):
        HybridConfig(members=[{"analyzer": "kiwi"}, {"kind": "bm25"}])
