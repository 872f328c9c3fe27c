"""Span selection, null scores, batching and threads of the reader's prediction (fast; no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tokenizers.processors import TemplateProcessing
from transformers import BertConfig, BertForQuestionAnswering

from odqa.errors import InputError
from odqa.io import write_jsonl
from odqa.reader.config import PredictConfig
from odqa.reader.features import ReaderSettings, inference_features
from odqa.reader.predict import (
    Reader,
    feature_spans,
    load_retrieved,
    pad_windows,
    reading_pairs,
    results_from_gold,
    select_answers,
    sum_same_answer,
    torch_threads,
)
from odqa.schema import Hit, QAExample, RetrievalResult
from odqa.text.morphemes import piece_ends


def _tiny_model(tokenizer, type_vocab_size: int = 2) -> BertForQuestionAnswering:
    torch.manual_seed(0)
    return BertForQuestionAnswering(
        BertConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=64, pad_token_id=tokenizer.pad_token_id, type_vocab_size=type_vocab_size,
        )
    ).eval()  # fmt: skip


def _questions(corpus: list[str], n: int) -> list[RetrievalResult]:
    return [
        RetrievalResult(
            f"q{i}", "어디인가?", [Hit(f"d{j}-0", f"d{j}", "", corpus[j], float(-j)) for j in range(3)]
        )
        for i in range(n)
    ]


# --- span selection --------------------------------------------------------------------------


def _logits(n: int, start_peaks: dict[int, float], end_peaks: dict[int, float], base: float = 0.0):
    s, e = np.full(n, base), np.full(n, base)
    for i, v in start_peaks.items():
        s[i] = v
    for i, v in end_peaks.items():
        e[i] = v
    return s, e


OFFSETS = (
    [None, None, None, None] + [(i * 3, i * 3 + 2) for i in range(12)] + [None]
)  # 4 question/special tokens


def _chars(start_token: int, end_token: int) -> tuple[int, int]:
    return OFFSETS[start_token][0], OFFSETS[end_token][1]


def test_spans_respect_max_length_order_and_context():
    # Highest logits sit on question tokens (1, 2); the best end (5) lies before the best start (6);
    # 6 -> 15 would score 9.5 but is 10 tokens long. The best valid span is 6 -> 8.
    s, e = _logits(17, {1: 50.0, 6: 5.0}, {2: 50.0, 5: 6.0, 8: 3.0, 15: 4.5})
    spans = feature_spans(s, e, OFFSETS, n_best=20, max_answer_length=4)
    found = {(sp["start_char"], sp["end_char"]) for sp in spans}
    assert all(sp["start_char"] <= sp["end_char"] for sp in spans)
    assert _chars(6, 5) not in found and _chars(6, 15) not in found
    best = max(spans, key=lambda sp: sp["start_logit"] + sp["end_logit"])
    assert (best["start_char"], best["end_char"]) == _chars(6, 8)
    assert best["start_logit"] + best["end_logit"] == pytest.approx(8.0)
    # With a longer limit the 10-token span wins.
    longer = feature_spans(s, e, OFFSETS, n_best=20, max_answer_length=10)
    best = max(longer, key=lambda sp: sp["start_logit"] + sp["end_logit"])
    assert (best["start_char"], best["end_char"]) == _chars(6, 15)
    assert feature_spans(s, e, [None] * 17, 20, 30) == []


def test_word_spans_keep_starts_and_ends_on_word_boundaries():
    # "세종대왕은 훈민정음을" as tokens 세종 ##대왕 ##은 훈민 ##정음 ##을: a word starts at 0 and 7.
    text = "세종대왕은 훈민정음을"
    offsets = [None, (0, 2), (2, 4), (4, 5), (6, 8), (8, 10), (10, 11)]
    # The best start (2: "대왕") is inside a word; the best end (2) ends before a particle.
    s, e = _logits(7, {2: 9.0, 1: 5.0, 4: 1.0}, {2: 9.0, 3: 4.0, 6: 2.0})
    best = lambda spans: max(spans, key=lambda sp: sp["start_logit"] + sp["end_logit"])  # noqa: E731
    off = best(feature_spans(s, e, offsets, 20, 30, text, "off"))
    assert text[off["start_char"] : off["end_char"]] == "대왕"
    start = best(feature_spans(s, e, offsets, 20, 30, text, "start"))
    assert text[start["start_char"] : start["end_char"]] == "세종대왕"
    assert start["start_prob"] == pytest.approx(float(np.exp(5.0) / np.exp(s[1:]).sum()))  # same softmax
    both = best(feature_spans(s, e, offsets, 20, 30, text, "both"))
    assert text[both["start_char"] : both["end_char"]] == "세종대왕은"
    assert all(text[sp["start_char"] - 1 : sp["start_char"]] in ("", " ") for sp in
               feature_spans(s, e, offsets, 20, 30, text, "start"))  # fmt: skip


def test_morpheme_word_spans_end_before_a_particle_but_not_inside_a_name():
    # "마쓰오카는 세종대왕은" as tokens 마쓰오 ##카 ##는 세종대왕 ##은: the best end (1, "마쓰오") falls
    # inside the name; "morpheme" lets a span end at a word end or where a particle starts (piece_ends).
    text = "마쓰오카는 세종대왕은"
    offsets = [None, (0, 3), (3, 4), (4, 5), (6, 10), (10, 11)]
    ends = piece_ends([text])[0]
    assert 4 in ends and 10 in ends and 3 not in ends  # 는 and 은 are particles; 카 is part of the name
    s, e = _logits(6, {1: 9.0, 4: 3.0}, {1: 9.0, 2: 4.0, 3: 2.0, 4: 1.0})
    best = lambda spans: max(spans, key=lambda sp: sp["start_logit"] + sp["end_logit"])  # noqa: E731
    start = best(feature_spans(s, e, offsets, 20, 30, text, "start"))
    assert text[start["start_char"] : start["end_char"]] == "마쓰오"
    morpheme = best(feature_spans(s, e, offsets, 20, 30, text, "morpheme", ends))
    assert text[morpheme["start_char"] : morpheme["end_char"]] == "마쓰오카"
    both = best(feature_spans(s, e, offsets, 20, 30, text, "both", ends))
    assert text[both["start_char"] : both["end_char"]] == "마쓰오카는"  # "both" ignores the particles


def _two_passage_case(tokenizer, corpus):
    results = [
        RetrievalResult(
            "q1",
            "수도는?",
            [
                Hit("d1-0", "d1", "", corpus[0], 12.0),
                Hit("d2-0", "d2", "", corpus[3], 10.0),
            ],
        )
    ]
    pairs = reading_pairs(results, None)
    features = inference_features(
        ["수도는?"] * 2, ["", ""], [corpus[0], corpus[3]], tokenizer, ReaderSettings()
    )
    assert [f.pair_index for f in features] == [0, 1]
    logits = []
    for f, (peak, base) in zip(features, [(10.0, 9.0), (5.0, -10.0)], strict=True):
        # Passage 1: high but flat logits; passage 2: lower logits sharply peaked on its first token.
        first = next(t for t, o in enumerate(f.offsets) if o is not None)
        logits.append(_logits(len(f.offsets), {first: peak}, {first: peak}, base=base))
    return results, pairs, features, logits


MAX = {"merge_spans": "max"}  # each text at its best span: the score modes' own numbers


def test_score_modes_rank_across_passages_differently(tokenizer, corpus):
    results, pairs, features, logits = _two_passage_case(tokenizer, corpus)
    by_logit, nbest_logit = select_answers(
        results,
        pairs,
        features,
        logits,
        PredictConfig(score_mode="logit_sum", use_retrieval_score=False, **MAX),
    )
    by_prob, nbest_prob = select_answers(
        results,
        pairs,
        features,
        logits,
        PredictConfig(score_mode="prob_product", use_retrieval_score=False, **MAX),
    )
    assert nbest_logit["q1"][0]["passage_id"] == "d1-0"
    assert nbest_prob["q1"][0]["passage_id"] == "d2-0"
    assert by_logit["q1"] != by_prob["q1"]
    for entries in (nbest_logit["q1"], nbest_prob["q1"]):
        scores = [x["score"] for x in entries]
        assert scores == sorted(scores, reverse=True)
        assert len({x["text"] for x in entries}) == len(entries)  # one entry per distinct text
    assert {x["passage_id"] for x in nbest_prob["q1"]} == {"d1-0", "d2-0"}  # aggregated across passages
    top = nbest_prob["q1"][0]
    assert top["score"] == pytest.approx(top["start_prob"] * top["end_prob"])
    assert top["log_score"] == pytest.approx(math.log(top["score"]))
    assert nbest_logit["q1"][0]["log_score"] == nbest_logit["q1"][0]["score"]
    assert set(top) == {
        "text", "score", "log_score", "start_logit", "end_logit", "start_prob", "end_prob",
        "null_score", "null_prob", "passage_id", "document_id", "passage_rank", "retrieval_score", "start_char",
    }  # fmt: skip
    assert (top["passage_rank"], top["retrieval_score"], top["document_id"]) == (2, 10.0, "d2")
    passage = next(h.text for h in results[0].passages if h.passage_id == top["passage_id"])
    assert passage[top["start_char"] : top["start_char"] + len(top["text"])] == top["text"]


def test_an_answer_two_passages_give_outranks_a_slightly_better_single_span(tokenizer, corpus):
    # Passage d1 gives its first word at 10 + 10; d2 and d3 (the same text) give theirs at 9.8 + 9.8.
    # By the best span alone d1 wins; summed, log(2 e^19.6) = 20.29 > 20 wins for the answer both give.
    texts = [corpus[0], corpus[3], corpus[3]]
    results = [
        RetrievalResult(
            "q1", "수도는?", [Hit(f"d{i}-0", f"d{i}", "", t, 0.0) for i, t in enumerate(texts, 1)]
        )
    ]
    pairs = reading_pairs(results, None)
    features = inference_features(["수도는?"] * 3, [""] * 3, texts, tokenizer, ReaderSettings())
    assert [f.pair_index for f in features] == [0, 1, 2]
    logits = []
    for f, peak in zip(features, [10.0, 9.8, 9.8], strict=True):
        first = next(t for t, o in enumerate(f.offsets) if o is not None)
        logits.append(_logits(len(f.offsets), {first: peak}, {first: peak}, base=-10.0))
    common = dict(score_mode="logit_sum", use_retrieval_score=False, word_spans="off", trim_particles=False)
    _, best = select_answers(results, pairs, features, logits, PredictConfig(**common, merge_spans="max"))
    _, summed = select_answers(results, pairs, features, logits, PredictConfig(**common, merge_spans="sum"))
    assert best["q1"][0]["passage_id"] == "d1-0"
    top = summed["q1"][0]
    assert (top["passage_id"], top["spans"]) == ("d2-0", 2)  # the answer's best span stands for it
    assert top["score"] == pytest.approx(19.6 + math.log(2), abs=1e-3)
    assert top["text"] != summed["q1"][1]["text"] and summed["q1"][1]["passage_id"] == "d1-0"
    assert [e["score"] for e in summed["q1"]] == sorted((e["score"] for e in summed["q1"]), reverse=True)


def test_a_span_two_overlapping_windows_read_counts_once(tokenizer, corpus):
    results = [RetrievalResult("q1", "수도는?", [Hit("d1-0", "d1", "", corpus[0], 0.0)])]
    pairs = reading_pairs(results, None)
    (feature,) = inference_features(["수도는?"], [""], [corpus[0]], tokenizer, ReaderSettings())
    first = next(t for t, o in enumerate(feature.offsets) if o is not None)
    logits = [_logits(len(feature.offsets), {first: 10.0}, {first: 10.0}, base=-10.0)] * 2
    config = PredictConfig(
        score_mode="logit_sum", use_retrieval_score=False, word_spans="off", trim_particles=False
    )
    _, nbest = select_answers(results, pairs, [feature, feature], logits, config)
    assert (nbest["q1"][0]["spans"], nbest["q1"][0]["score"]) == (1, pytest.approx(20.0))


def test_sum_same_answer_adds_probabilities_in_both_score_modes():
    cands = [
        {"text": "서울", "score": 2.0},
        {"text": "부산", "score": 1.5, "k": 1},
        {"text": "부산", "score": 1.5},
    ]
    merged = sum_same_answer(cands, "logit_sum")
    assert [(c["text"], c["spans"]) for c in merged] == [("부산", 2), ("서울", 1)]
    assert merged[0]["score"] == merged[0]["log_score"] == pytest.approx(1.5 + math.log(2))
    assert merged[0]["k"] == 1  # the text's first (best) span
    probs = sum_same_answer([{"text": "a", "score": 0.5}, {"text": "b", "score": 0.3}, {"text": "b", "score": 0.3}],
                          "prob_product")  # fmt: skip
    assert [c["text"] for c in probs] == ["b", "a"]
    assert probs[0]["score"] == pytest.approx(0.6) and probs[0]["log_score"] == pytest.approx(math.log(0.6))


def test_spans_exact_match_equates_are_one_answer():
    # "'훈민정음'" and "훈민정음" are one answer to EM (quotes aside): their probabilities add up and
    # overtake 세종대왕, and the entry keeps the best span's own text; punctuation alone merges nothing.
    cands = [
        {"text": "세종대왕", "score": 2.0},
        {"text": "'훈민정음'", "score": 1.5},
        {"text": "훈민정음", "score": 1.5},
        {"text": "(", "score": 1.0},
        {"text": ")", "score": 1.0},
    ]
    merged = sum_same_answer(cands, "logit_sum")
    assert [(c["text"], c["spans"]) for c in merged] == [
        ("'훈민정음'", 2),
        ("세종대왕", 1),
        ("(", 1),
        (")", 1),
    ]
    assert merged[0]["score"] == pytest.approx(1.5 + math.log(2))


def test_retrieval_score_can_overturn_the_reader(tokenizer, corpus):
    results, pairs, features, logits = _two_passage_case(tokenizer, corpus)
    results[0].passages[0].score = 40.0  # far ahead of passage 2 (10.0) after the softmax
    _, nbest = select_answers(
        results, pairs, features, logits, PredictConfig(score_mode="prob_product", use_retrieval_score=True)
    )
    assert nbest["q1"][0]["passage_id"] == "d1-0"
    # top_k_passages=1 reads only the first passage.
    only_first = reading_pairs(results, 1)
    assert only_first == [(0, 0)]


def test_results_from_gold_and_bad_retrieved_file(tmp_path, corpus):
    ex = QAExample(id="x", question="어디인가?", context=corpus[0], document_id="doc-7")
    (result,) = results_from_gold([ex])
    assert (result.id, result.passages[0].text, result.passages[0].document_id) == ("x", corpus[0], "doc-7")
    path = tmp_path / "retrieved.jsonl"
    write_jsonl(path, [result.to_dict(), {"id": "y", "passages": []}])
    with pytest.raises(InputError, match="line 2"):
        load_retrieved(path)


def test_predict_config_rejects_unknown_score_mode():
    with pytest.raises(InputError, match="score_mode"):
        PredictConfig(score_mode="max")


def test_prediction_in_question_chunks_equals_one_pass(tokenizer, corpus, monkeypatch):
    import odqa.reader.predict as predict_module

    reader = Reader(_tiny_model(tokenizer), tokenizer, ReaderSettings())
    results = _questions(corpus, 5)
    config = PredictConfig(n_best=3)
    whole = reader.predict(results, config)
    monkeypatch.setattr(predict_module, "QUESTIONS_PER_CHUNK", 2)
    chunked = reader.predict(results, config)
    assert list(chunked[0]) == [r.id for r in results]
    assert chunked[0] == whole[0]
    assert [[e["text"] for e in chunked[1][q]] for q in chunked[1]] == [
        [e["text"] for e in whole[1][q]] for q in whole[1]
    ]


def test_trim_particles_in_prediction_trims_the_best_spans(tokenizer, corpus):
    from odqa.korean_answers import trim_particles

    results, pairs, features, logits = _two_passage_case(tokenizer, corpus)
    plain, _ = select_answers(results, pairs, features, logits, PredictConfig(n_best=5))
    trimmed, nbest = select_answers(
        results, pairs, features, logits, PredictConfig(n_best=5, trim_particles=True)
    )
    assert trimmed["q1"] == trim_particles([plain["q1"]])[0]
    texts = [e["text"] for e in nbest["q1"]]
    assert len(texts) == len(set(texts)) and all(t == trim_particles([t])[0] for t in texts)


def test_predict_config_rejects_unknown_null_score():
    with pytest.raises(InputError, match="null_score"):
        PredictConfig(null_score="always")


# --- the null ("no answer in this passage") score ----------------------------------------------


def _cls_last(tokenizer) -> None:
    """XLNet-style template: [CLS] is the last token of every window, never index 0."""
    special = [(t, tokenizer.convert_tokens_to_ids(t)) for t in ("[CLS]", "[SEP]")]
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="$A [SEP] [CLS]", pair="$A [SEP] $B:1 [SEP]:1 [CLS]:1", special_tokens=special
    )


def _null_case(tokenizer, corpus, cls_logits=(8.0, -8.0)):
    """Passage 1 has the better span (peak 6 vs 5) but its CLS says "no answer here" (cls_logits[0]);
    index 0, a question token, carries the opposite signal as a decoy."""
    results = [
        RetrievalResult(
            "q1", "수도는?", [Hit("d1-0", "d1", "", corpus[0], 1.0), Hit("d2-0", "d2", "", corpus[3], 1.0)]
        )
    ]
    pairs = reading_pairs(results, None)
    features = inference_features(
        ["수도는?"] * 2, ["", ""], [corpus[0], corpus[3]], tokenizer, ReaderSettings()
    )
    assert [f.pair_index for f in features] == [0, 1]
    logits = []
    for f, peak, cls_logit in zip(features, (6.0, 5.0), cls_logits, strict=True):
        assert f.cls_index == len(f.offsets) - 1 and f.offsets[0] is None
        first = next(t for t, o in enumerate(f.offsets) if o is not None)
        s, e = _logits(len(f.offsets), {first: peak, f.cls_index: cls_logit, 0: -cls_logit}, {})
        e[first], e[f.cls_index], e[0] = peak, cls_logit, -cls_logit
        logits.append((s, e))
    return results, pairs, features, logits


@pytest.mark.parametrize("score_mode", ["logit_sum", "prob_product"])
def test_null_score_ranks_a_passage_the_reader_rejects_below_one_it_accepts(
    fresh_tokenizer, corpus, score_mode
):
    _cls_last(fresh_tokenizer)
    results, pairs, features, logits = _null_case(fresh_tokenizer, corpus)
    common = dict(score_mode=score_mode, use_retrieval_score=False, trim_particles=False)
    _, off = select_answers(results, pairs, features, logits, PredictConfig(**common, null_score="ignore"))
    _, on = select_answers(results, pairs, features, logits, PredictConfig(**common, null_score="subtract"))
    assert off["q1"][0]["passage_id"] == "d1-0"  # the better span alone
    assert on["q1"][0]["passage_id"] == "d2-0"  # passage 1's own CLS rejects it
    # The entries carry the passage's null score, read at the real CLS (last token), not at index 0.
    nulls = {e["passage_id"]: e["null_score"] for e in off["q1"] + on["q1"]}
    assert nulls == {"d1-0": pytest.approx(16.0), "d2-0": pytest.approx(-16.0)}
    top = on["q1"][0]
    if score_mode == "logit_sum":
        assert top["score"] == pytest.approx(top["start_logit"] + top["end_logit"] - top["null_score"])
    else:
        assert top["score"] == pytest.approx(top["start_prob"] * top["end_prob"] * (1 - top["null_prob"]))


@pytest.mark.parametrize("score_mode", ["logit_sum", "prob_product"])
def test_null_score_off_leaves_the_ranking_as_it_was(fresh_tokenizer, corpus, score_mode):
    _cls_last(fresh_tokenizer)
    config = PredictConfig(score_mode=score_mode, use_retrieval_score=False, trim_particles=False)
    ranked = []
    for cls_logits in [(8.0, -8.0), (-8.0, 8.0), (0.0, 0.0)]:
        results, pairs, features, logits = _null_case(fresh_tokenizer, corpus, cls_logits)
        _, nbest = select_answers(results, pairs, features, logits, config)
        ranked.append([(e["text"], e["passage_id"], round(e["score"], 9)) for e in nbest["q1"]])
    assert ranked[0] == ranked[1] == ranked[2]


def test_null_score_of_a_passage_is_the_min_over_its_windows(tokenizer, words):
    context = " ".join(words * 3)
    results = [RetrievalResult("q1", "어디인가?", [Hit("d-0", "d", "", context, 1.0)])]
    features = inference_features(
        ["어디인가?"],
        [""],
        [context],
        tokenizer,
        ReaderSettings(max_length=24, doc_stride=8, max_question_tokens=4),
    )
    assert len(features) >= 3
    rng = np.random.default_rng(0)
    logits, nulls, null_probs = [], [], []
    for k, f in enumerate(features):
        s, e = rng.normal(size=len(f.offsets)), rng.normal(size=len(f.offsets))
        s[f.cls_index], e[f.cls_index] = (2.0, -3.0, 4.0, 0.0, 1.0, 3.0)[k % 6], 1.0  # lowest: window 2
        logits.append((s, e))
        nulls.append(s[f.cls_index] + e[f.cls_index])
        ps, pe = torch.softmax(torch.tensor(s), 0), torch.softmax(torch.tensor(e), 0)
        null_probs.append(float(ps[f.cls_index] * pe[f.cls_index]))
    _, nbest = select_answers(
        results, reading_pairs(results, None), features, logits, PredictConfig(trim_particles=False)
    )
    assert nbest["q1"] and nulls.index(min(nulls)) not in (0, len(nulls) - 1)
    assert all(e["null_score"] == pytest.approx(min(nulls)) for e in nbest["q1"])
    assert all(e["null_prob"] == pytest.approx(min(null_probs)) for e in nbest["q1"])


# --- batching and threads ------------------------------------------------------------------------


def _hand_padded(inputs: list[dict[str, list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """The hand-written padding odqa used before tokenizer.pad (kept here as the reference)."""
    width = max(len(x["input_ids"]) for x in inputs)
    batch = {}
    for name in inputs[0]:
        pad = pad_token_id if name == "input_ids" else 0
        batch[name] = torch.tensor(
            [x[name] + [pad] * (width - len(x[name])) for x in inputs], dtype=torch.long
        )
    if "attention_mask" not in batch:
        batch["attention_mask"] = torch.tensor(
            [[1] * len(x["input_ids"]) + [0] * (width - len(x["input_ids"])) for x in inputs],
            dtype=torch.long,
        )
    return batch


@pytest.mark.parametrize("variant", ["default", "overlap types", "no token types", "pad [MASK], left side"])
def test_pad_windows_equals_the_hand_padding_it_replaced(fresh_tokenizer, corpus, variant):
    tok = fresh_tokenizer
    settings = ReaderSettings(max_length=32, doc_stride=8, question_overlap=variant == "overlap types")
    if variant == "no token types":
        tok.model_input_names = ["input_ids", "attention_mask"]
    if variant == "pad [MASK], left side":
        tok.pad_token, tok.padding_side = "[MASK]", "left"
        assert tok.pad_token_id != 0
    questions = ["수도는 어디인가?", "세종대왕은 무엇을 창제하였나?", "누구?"]
    features = inference_features(questions, [""] * 3, corpus[:3], tok, settings)
    inputs = [f.inputs for f in features[:5]]
    assert len({len(x["input_ids"]) for x in inputs}) > 1  # ragged, so padding happens
    if variant == "overlap types":
        assert any(2 in x["token_type_ids"] for x in inputs)
    expected = _hand_padded(inputs, tok.pad_token_id)
    padded = pad_windows(tok, inputs)
    assert set(padded) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(padded[name], tensor), name


def test_pad_windows_needs_a_padding_token(fresh_tokenizer, corpus):
    features = inference_features(["어디?"], [""], [corpus[0]], fresh_tokenizer, ReaderSettings())
    fresh_tokenizer.pad_token = None
    with pytest.raises(InputError, match="padding token"):
        pad_windows(fresh_tokenizer, [features[0].inputs])


def test_batch_size_does_not_change_the_logits(tokenizer, corpus):
    settings = ReaderSettings(max_length=32, doc_stride=8, question_overlap=True)
    reader = Reader(_tiny_model(tokenizer, type_vocab_size=3), tokenizer, settings)
    features = inference_features(["수도는 어디인가?"] * 3, [""] * 3, corpus[:3], tokenizer, settings)
    one = reader._logits(features, batch_size=1)
    many = reader._logits(features, batch_size=len(features))
    assert len({len(f.inputs["input_ids"]) for f in features}) > 1
    for (s1, e1), (s2, e2), f in zip(one, many, features, strict=True):
        assert len(s1) == len(s2) == len(f.inputs["input_ids"])
        np.testing.assert_allclose(s1, s2, atol=1e-5)
        np.testing.assert_allclose(e1, e2, atol=1e-5)


@pytest.fixture
def torch_thread_count():
    """Starts the test with 3 torch threads (a count nobody asks for) and restores the original after."""
    original = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(original)


def test_predict_sets_threads_only_for_the_call(tokenizer, corpus, torch_thread_count):
    model = _tiny_model(tokenizer)
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
    reader = Reader(model, tokenizer, ReaderSettings())
    reader.predict(_questions(corpus, 2), PredictConfig(n_best=2, num_threads=1, trim_particles=False))
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == torch_thread_count
    reader.predict(_questions(corpus, 1), PredictConfig(n_best=2, num_threads=None, trim_particles=False))
    assert seen[-1] == torch_thread_count  # None leaves torch's setting alone


def test_torch_threads_restores_after_an_error_and_refuses_negative(torch_thread_count):
    with pytest.raises(RuntimeError, match="boom"), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == torch_thread_count
    with pytest.raises(InputError, match="threads"), torch_threads(-2):
        pass


def test_trimming_in_rounds_gives_the_n_best_of_trimming_every_span_with_fewer_kiwi_reads(monkeypatch):
    import odqa.korean_answers as korean_answers
    from odqa.reader import predict as predict_module

    words = ["세종대왕", "훈민정음", "한글", "집현전", "조선", "경복궁", "정인지", "최항", "신숙주", "성삼문"]
    # many spans per question that trimming merges ("세종대왕은" / "세종대왕이" / "세종대왕")
    spans = [w + tail for w in words for tail in ("은", "이", "", "을", "의")]
    rng = np.random.default_rng(0)

    def questions():
        return [
            [{"text": t, "score": float(s)} for t, s in zip(spans, rng.permutation(len(spans)), strict=True)]
            for _ in range(3)
        ]

    reference = [sorted(q, key=lambda c: c["score"], reverse=True) for q in questions()]
    lazy = [[dict(c) for c in q] for q in reference]
    for q in reference:
        trimmed = korean_answers.trim_particles([c["text"] for c in q])
        for c, t in zip(q, trimmed, strict=True):
            c["text"] = t
    read: list[str] = []
    real = korean_answers.trim_particles
    monkeypatch.setattr(korean_answers, "trim_particles", lambda texts: read.extend(texts) or real(texts))
    n_best = 6
    predict_module._trim_until_n_best(lazy, n_best)

    def n_best_texts(cands):
        seen = []
        for c in cands:
            if c["text"].strip() and c["text"] not in seen:
                seen.append(c["text"])
        return seen[:n_best]

    for ref, got in zip(reference, lazy, strict=True):
        assert n_best_texts(got) == n_best_texts(ref)
        assert len(n_best_texts(ref)) == n_best
    assert len(read) < 3 * len(spans) / 2  # fewer than half the spans went to Kiwi


def test_trim_particles_answers_repeated_spans_from_its_cache(monkeypatch):
    import odqa.korean_answers as korean_answers

    first = korean_answers.trim_particles(["세종대왕은", "집현전에서"])
    calls = []
    kiwi = korean_answers.get_kiwi()
    monkeypatch.setattr(korean_answers, "get_kiwi", lambda: calls.append(1) or kiwi)
    assert korean_answers.trim_particles(["세종대왕은", "집현전에서", ""]) == [*first, ""]
    assert calls == []
    assert first == ["세종대왕", "집현전"]


def test_answer_pick_expected_f1_reorders_the_nbest_and_answers_with_its_first(tokenizer, corpus):
    """The chosen answer is the n-best's first entry (what serving and the ensemble read), chosen by
    expected F1 under the softmax of the n-best's log scores divided by the temperature (the default
    pick, at the default temperature and at 1); the list holds the same candidates."""
    from odqa.evaluation import expected_f1_pick

    reader = Reader(_tiny_model(tokenizer), tokenizer, ReaderSettings())
    # questions that differ (from the corpus' own words), so the untrained reader's n-best lists differ
    words = " ".join(corpus).split()
    results = [
        RetrievalResult(f"q{i}", f"{words[i]} {words[-i - 1]}?", _questions(corpus, 1)[0].passages)
        for i in range(12)
    ]
    config = PredictConfig(n_best=20, trim_particles=False, word_spans="off")
    assert config.answer_pick == "expected_f1"
    top = reader.predict(results, config.replace(answer_pick="top"))
    moved = {}
    for temperature in (config.pick_temperature, 1.0):
        picked = reader.predict(results, config.replace(pick_temperature=temperature))
        moved[temperature] = 0
        for r in results:
            entries = top[1][r.id]
            logs = np.array([e["log_score"] for e in entries]) / temperature
            probs = np.exp(logs - logs.max())
            i = expected_f1_pick([e["text"] for e in entries], list(probs / probs.sum()))
            assert picked[0][r.id] == picked[1][r.id][0]["text"] == entries[i]["text"]
            assert sorted(e["text"] for e in picked[1][r.id]) == sorted(e["text"] for e in entries)
            moved[temperature] += i > 0
    assert moved[1.0] > 0, "no question's choice changed: the test shows nothing"
