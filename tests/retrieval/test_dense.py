"""Dense retriever on a small slice of real KorQuAD: train -> encode -> FAISS -> search -> save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import BertConfig, BertModel

from odqa.data import load_qa
from odqa.errors import InputError
from odqa.io import write_jsonl
from odqa.retrieval.base import build_index, load_retriever
from odqa.retrieval.dense import DenseRetriever
from odqa.retrieval.dense_encoder import DenseConfig, training_examples
from odqa.schema import RETRIEVER_CONFIG_FILE, Passage
from odqa.text.wordpiece import train_wordpiece_tokenizer

# Tiny models train fastest on one thread; the fixture restores the process-wide count afterwards.
pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = dict(
    hidden_size=32,
    num_layers=1,
    num_heads=2,
    intermediate_size=64,
    vocab_size=3000,
    max_question_tokens=32,
    max_passage_tokens=128,
    batch_size=8,
    bm25_analyzer="bigram",
    num_threads=1,
)


@pytest.fixture(scope="module")
def korquad_slice(tmp_path_factory, korquad_articles) -> tuple[Path, Path, list[Passage]]:
    """The first 6 KorQuAD dev articles: one passage per paragraph, questions with gold document ids."""
    return korquad_articles(tmp_path_factory.mktemp("korquad_slice"), 6)


def test_hard_negatives_are_bm25_near_misses_without_the_answer(korquad_slice):
    passages_path, qa_path, passages = korquad_slice
    examples = load_qa(qa_path).examples
    config = DenseConfig(train_qa=str(qa_path), hard_negatives=2, **{**TINY, "bm25_analyzer": "bigram"})
    data, stats = training_examples(config, examples, passages, {})
    assert stats["with_gold_passage"] == len(examples) == len(data)
    assert stats["hard_negatives"] > len(data)  # nearly every question gets two
    for example, item in zip(examples, data, strict=True):
        assert passages[item.positive].document_id == example.document_id
        for n in item.hard_negatives:
            assert passages[n].document_id != example.document_id
            assert not any(a in passages[n].text for a in example.answers["text"])


@pytest.mark.integration
def test_train_encode_index_search_round_trip(korquad_slice, tmp_path: Path):
    """The retriever build returns (in memory) and the one loaded from its folder rank and score alike:
    a save that loses weights, vectors, passages or settings fails here."""
    passages_path, qa_path, passages = korquad_slice
    config = DenseConfig(train_qa=str(qa_path), epochs=8, learning_rate=1e-3, **TINY)
    index_dir = tmp_path / "dense"
    built = DenseRetriever.build(config, passages_path, index_dir)
    stored = json.loads((index_dir / RETRIEVER_CONFIG_FILE).read_text())
    assert stored["kind"] == "dense" and stored["num_passages"] == len(passages) and stored["dim"] == 32
    losses = stored["training"]["epoch_losses"]
    assert losses[-1] < losses[0] - 0.3, losses  # it learns on its training questions
    assert (index_dir / "training_loss.png").stat().st_size > 0

    examples = load_qa(qa_path).examples
    questions = [e.question for e in examples]
    loaded = load_retriever(index_dir)
    assert isinstance(loaded, DenseRetriever)
    assert loaded.config == built.config
    assert [p.to_dict() for p in loaded.passages] == [p.to_dict() for p in built.passages]
    first = built.search(questions, top_k=5)
    second = loaded.search(questions, top_k=5)
    assert [[h.passage_id for h in hits] for hits in first] == [
        [h.passage_id for h in hits] for hits in second
    ]
    np.testing.assert_allclose(
        [[h.score for h in hits] for hits in first], [[h.score for h in hits] for hits in second], rtol=1e-5
    )
    assert all(len(hits) == 5 for hits in first)
    assert all(hits[0].score >= hits[-1].score for hits in first)
    # trained on these questions, it must beat chance (1/len(passages)) by a wide margin
    hit_at_1 = np.mean(
        [hits[0].document_id == e.document_id for e, hits in zip(examples, first, strict=True)]
    )
    assert hit_at_1 > 3 / len(passages), (hit_at_1, len(passages))


@pytest.mark.integration
def test_encoders_from_a_hugging_face_checkpoint_and_reuse_with_init_from(korquad_slice, tmp_path: Path):
    passages_path, qa_path, passages = korquad_slice
    checkpoint = tmp_path / "tiny-bert"
    tokenizer = train_wordpiece_tokenizer([p.text for p in passages], vocab_size=2000)
    model = BertModel(
        BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=24,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=48,
        )
    )
    model.save_pretrained(str(checkpoint))
    tokenizer.save_pretrained(str(checkpoint))

    config = DenseConfig(
        train_qa=str(qa_path),
        encoder_model=str(checkpoint),
        epochs=1,
        hard_negatives=0,
        index_type="hnsw",
        learning_rate=1e-4,
        **{
            k: v
            for k, v in TINY.items()
            if k not in ("hidden_size", "num_layers", "num_heads", "intermediate_size")
        },
    )
    retriever = DenseRetriever.build(config, passages_path, tmp_path / "from_checkpoint")
    saved = json.loads((tmp_path / "from_checkpoint" / "question_encoder" / "config.json").read_text())
    assert saved["hidden_size"] == 24  # the checkpoint's architecture, not the from-scratch sizes
    assert retriever.index.ntotal == len(passages)

    # init_from: same encoders over a different corpus (half the passages), no training
    half = tmp_path / "half.jsonl"
    write_jsonl(half, (p.to_dict() for p in passages[::2]))
    reused = DenseRetriever.build(
        DenseConfig(init_from=str(tmp_path / "from_checkpoint"), num_threads=1), half, tmp_path / "reused"
    )
    assert "training" not in json.loads((tmp_path / "reused" / RETRIEVER_CONFIG_FILE).read_text())
    question = ["이 문서의 주제는 무엇인가?"]
    a = {h.passage_id: h.score for h in retriever.search(question, len(passages))[0]}
    b = {h.passage_id: h.score for h in reused.search(question, len(passages))[0]}
    assert set(b) == {p.passage_id for p in passages[::2]}
    for pid, score in b.items():
        assert score == pytest.approx(a[pid], rel=1e-4)


def test_config_errors_are_input_errors(tmp_path: Path):
    with pytest.raises(InputError, match="train_qa"):
        DenseConfig()
    with pytest.raises(InputError, match="index_type"):
        DenseConfig(train_qa="x.jsonl", index_type="ivf")
    with pytest.raises(InputError, match="encoder_model"):
        from odqa.retrieval.dense_encoder import new_dual_encoder

        new_dual_encoder(DenseConfig(train_qa="x", encoder_model=str(tmp_path / "nope")), [], [])


def test_inverse_cloze_queries_come_from_every_passage():
    from odqa.retrieval.dense_encoder import inverse_cloze_examples

    passages = [
        Passage("a-0", "a", "A", "첫 문장은 충분히 길어야 한다. 두 번째 문장도 충분히 길다. 짧다."),
        Passage("b-0", "b", "B", "다른 문서의 유일한 문장이 여기에 있다."),
    ]
    config = DenseConfig(train_qa="unused.jsonl", ict_queries_per_passage=2)
    data = inverse_cloze_examples(passages, config)
    by_passage = {}
    for ex in data:
        by_passage.setdefault(ex.positive, []).append(ex.question)
        assert ex.question in passages[ex.positive].text and not ex.hard_negatives
    assert sorted(by_passage) == [0, 1]
    assert len(by_passage[0]) == 2 and "짧다." not in by_passage[0]  # too short to be a query
    assert data == inverse_cloze_examples(passages, config)  # seeded


def test_cosine_shared_encoder_with_inverse_cloze_builds_unit_vectors(korquad_slice, tmp_path: Path):
    passages_path, qa_path, passages = korquad_slice
    options = {"train_qa": str(qa_path), "epochs": 1, "similarity": "cosine", "shared_encoder": True}
    index_dir = build_index("dense", {**options, "ict_epochs": 1, **TINY}, passages_path, tmp_path / "dense")
    stored = json.loads((index_dir / RETRIEVER_CONFIG_FILE).read_text())
    assert stored["training"]["inverse_cloze_queries"] >= len(passages)
    assert len(stored["training"]["inverse_cloze_losses"]) == 1
    retriever = load_retriever(index_dir)
    hits = retriever.search([load_qa(qa_path).examples[0].question], top_k=len(passages))[0]
    assert all(-1.0001 <= h.score <= 1.0001 for h in hits)  # cosine similarities
    vectors = retriever.encoder.encode([passages[0].text], "passage", 4)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(InputError, match="similarity"):
        DenseConfig(train_qa="q.jsonl", similarity="l2")
