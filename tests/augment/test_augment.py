"""Augment switches on a small slice of real KorQuAD: every output validates like real data, answers sit
at answer_start, no-answer examples are empty, and with every switch off the output is the input."""

from __future__ import annotations

import pytest

from odqa.augment import AugmentConfig, augment, rewrite_question, rewrite_questions
from odqa.data import load_qa, write_qa
from odqa.errors import InputError

SLICE = 40


@pytest.fixture(scope="module")
def train_slice(korquad_split, tmp_path_factory):
    examples = load_qa(korquad_split.train_path).examples[:SLICE]
    path = tmp_path_factory.mktemp("aug") / "train_slice.jsonl"
    write_qa(path, examples)
    return path


@pytest.fixture(scope="module")
def bm25_index(korquad_passages, tmp_path_factory):
    from odqa.retrieval.base import build_index

    return build_index(
        "bm25",
        {"analyzer": "bigram"},
        korquad_passages.passages_path,
        tmp_path_factory.mktemp("aug") / "bm25",
    )


def run(config: AugmentConfig, qa_path, tmp_path, **kwargs):
    out = tmp_path / "out.jsonl"
    report = augment(config, qa_path, out, **kwargs)
    loaded = load_qa(out)  # strict: raises if any answer is not at its answer_start
    assert loaded.report.examples == report["output_examples"]
    return loaded.examples, report


def added_by(examples, marker: str):
    return [ex for ex in examples if marker in ex.id]


def test_all_switches_off_is_identity(train_slice, tmp_path):
    examples, report = run(AugmentConfig(), train_slice, tmp_path)
    assert [ex.to_dict() for ex in examples] == [ex.to_dict() for ex in load_qa(train_slice).examples]
    assert report["added"] == {}


def test_query_rewrite_is_deterministic_label_free_and_drops_particles():
    question = "세종대왕이 만든 문자는 무엇인가?"
    assert rewrite_question(question) == "세종대왕 만든 문자 무엇"
    assert rewrite_question(question) == rewrite_questions([question, "1443년에 창제한 왕은 누구인가?"])[0]
    assert rewrite_question("훈민정음") == "훈민정음"
    assert rewrite_question("?") == "?"  # nothing left to keep: unchanged rather than empty


def test_query_rewrite_copies(train_slice, tmp_path):
    examples, report = run(AugmentConfig(query_rewrite=True), train_slice, tmp_path)
    originals = {ex.id: ex for ex in load_qa(train_slice).examples}
    copies = added_by(examples, "-rw")
    assert copies and report["added"]["query_rewrite"] == len(copies)
    for copy in copies:
        original = originals[copy.id.removesuffix("-rw")]
        assert copy.question == rewrite_question(original.question) != original.question
        assert copy.answers == original.answers and copy.context == original.context
        assert not copy.question.endswith("?")


def test_masking_keeps_answers_and_masks_only_outside_them(train_slice, tmp_path):
    examples, _ = run(AugmentConfig(mask_prob=1.0, mask_token="[MASK]"), train_slice, tmp_path)
    originals = {ex.id: ex for ex in load_qa(train_slice).examples}
    copies = added_by(examples, "-mask")
    assert len(copies) == SLICE
    for copy in copies:
        original = originals[copy.id.removesuffix("-mask")]
        start, text = copy.answers["answer_start"][0], copy.answers["text"][0]
        assert copy.context[start : start + len(text)] == text == original.answers["text"][0]
        assert copy.context.count("[MASK]") > 5
        assert "[MASK]" not in text
    few, _ = run(AugmentConfig(mask_prob=0.1, seed=1), train_slice, tmp_path)
    masked_share = sum(c.context.count("[MASK]") for c in added_by(few, "-mask")) / sum(
        c.context.count("[MASK]") for c in copies
    )
    assert 0.03 < masked_share < 0.25


def test_hard_negatives_are_unanswerable_wrong_passages(train_slice, bm25_index, tmp_path):
    examples, report = run(
        AugmentConfig(hard_negatives=2, hard_negative_pool=10), train_slice, tmp_path, index_dir=bm25_index
    )
    originals = {ex.id: ex for ex in load_qa(train_slice).examples}
    negatives = added_by(examples, "-neg")
    assert SLICE <= len(negatives) <= 2 * SLICE and report["added"]["hard_negatives"] == len(negatives)
    for neg in negatives:
        original = originals[neg.id.rsplit("-neg", 1)[0]]
        assert neg.answers == {"answer_start": [], "text": []} and not neg.is_answerable
        assert neg.question == original.question
        assert neg.document_id != original.document_id
        assert original.answers["text"][0] not in neg.context
    with pytest.raises(InputError, match="index_dir"):
        augment(AugmentConfig(hard_negatives=1), train_slice, tmp_path / "x.jsonl")


def test_question_generation_from_split_passages_has_unique_ids(train_slice, korquad_passages, tmp_path):
    from odqa.io import iter_jsonl

    passages = list(iter_jsonl(korquad_passages.passages_path))
    split_docs = {p["document_id"] for p in passages if not p["passage_id"].endswith("-0")}
    assert split_docs  # some documents were split into several passages
    examples, report = run(
        AugmentConfig(qg_per_passage=2, qg_source="passages", qg_style="cloze", qg_max_passages=200),
        train_slice,
        tmp_path,
        passages_path=korquad_passages.passages_path,
    )  # run() reloads strictly: a duplicate id would be an InputError
    generated = [ex for ex in examples if ex.id.startswith("qg-")]
    assert len(generated) > 200 and len({ex.id for ex in generated}) == len(generated)


@pytest.mark.parametrize("style,marker", [("wh", "?"), ("cloze", "_____")])
def test_rule_question_generation(train_slice, tmp_path, style, marker):
    examples, report = run(AugmentConfig(qg_per_passage=2, qg_style=style), train_slice, tmp_path)
    generated = [ex for ex in examples if ex.id.startswith("qg-")]
    contexts = {ex.context for ex in load_qa(train_slice).examples}
    assert len(contexts) <= len(generated) <= 2 * len(contexts)
    for ex in generated:
        answer = ex.answers["text"][0]
        assert ex.context in contexts and 2 <= len(answer) <= 20 and len(ex.question) <= 160
        assert marker in ex.question
        if style == "cloze":
            sentence = ex.question.replace("_____", answer)
            assert sentence in ex.context


def test_seq2seq_question_writer_plumbing(train_slice, tmp_path):
    """A tiny random T5 saved locally: questions are gibberish, but pairs are written and validate."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from odqa.text.wordpiece import train_wordpiece_tokenizer

    torch.manual_seed(0)
    model_dir = tmp_path / "tiny-t5"
    texts = [ex.context for ex in load_qa(train_slice).examples]
    tokenizer = train_wordpiece_tokenizer(texts, model_dir, vocab_size=500)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = T5ForConditionalGeneration(config)
    with torch.no_grad():  # this random init happens to favour [PAD] at every step; make it emit words
        model.lm_head.weight[tokenizer.all_special_ids] = 0.0
    model.save_pretrained(model_dir)
    examples, report = run(
        AugmentConfig(qg_per_passage=1, qg_model=str(model_dir), qg_max_passages=3), train_slice, tmp_path
    )
    generated = [ex for ex in examples if ex.id.startswith("qg-")]
    assert report["qg_generated"] == len(generated) == 3
    assert all(ex.question.strip() and ex.context.find(ex.answers["text"][0]) >= 0 for ex in generated)


@pytest.mark.integration
def test_pseudo_label_filter_keeps_what_the_reader_answers(train_slice, korquad_split, tmp_path):
    from odqa.evaluation import question_scores
    from odqa.reader.predict import PredictConfig, Reader, results_from_gold
    from odqa.reader.train import ReaderTrainConfig, train_reader

    reader_dir = train_reader(
        ReaderTrainConfig(max_steps=30, batch_size=16, threads=1, max_length=192),
        train_slice,
        tmp_path / "reader",
    )
    all_pairs, report = run(AugmentConfig(qg_per_passage=3), train_slice, tmp_path)
    generated = [ex for ex in all_pairs if ex.id.startswith("qg-")]
    predictions, _ = Reader.load(reader_dir).predict(results_from_gold(generated), PredictConfig(n_best=5))
    f1 = {ex.id: question_scores(predictions[ex.id], ex.answers["text"])[1] for ex in generated}
    # A threshold between the two highest distinct scores, so the filter has something to decide
    # whatever this briefly trained reader happens to get right.
    distinct = sorted(set(f1.values()))
    assert len(distinct) >= 2, distinct
    threshold = (distinct[-1] + distinct[-2]) / 2
    expected = {qid for qid, score in f1.items() if score >= threshold}

    filtered, report = run(
        AugmentConfig(qg_per_passage=3, filter_reader=str(reader_dir), filter_threshold=threshold),
        train_slice,
        tmp_path,
    )
    assert 0 < len(expected) < len(generated)  # the filter has something to decide
    kept = {ex.id for ex in filtered if ex.id.startswith("qg-")}
    assert kept == expected
    assert report["pseudo_label_filter"] == {"checked": len(generated), "kept": len(expected)}
    everything, _ = run(
        AugmentConfig(qg_per_passage=3, filter_reader=str(reader_dir), filter_threshold=0.0),
        train_slice,
        tmp_path,
    )
    assert len(everything) == len(all_pairs)
