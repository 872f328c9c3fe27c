"""Reader features, span selection and tokenizer on hand-made cases (fast; no training)."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from odqa.errors import InputError
from odqa.io import write_jsonl
from odqa.reader.config import PredictConfig
from odqa.reader.features import CLS_INDEX, ReaderSettings, inference_features, train_features
from odqa.reader.predict import (
    feature_spans,
    load_retrieved,
    reading_pairs,
    results_from_gold,
    select_answers,
)
from odqa.reader.train import weighted_span_loss
from odqa.schema import Hit, QAExample, RetrievalResult
from odqa.text.wordpiece import train_wordpiece_tokenizer

WORDS = "서울 부산 대구 인천 광주 대전 울산 세종 수원 성남 고양 용인 창원 청주 전주 천안 안산 김해 포항 제주".split()
CORPUS = [
    "대한민국의 수도는 서울특별시이다. 서울은 한강을 끼고 있다.",
    "세종대왕은 조선의 제4대 왕으로 훈민정음을 창제하였다.",
    " ".join(WORDS * 3),
    "이순신은 조선 중기의 무신이다. 임진왜란 때 수군을 지휘하였다.",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    train_wordpiece_tokenizer(CORPUS * 5, out, vocab_size=300, min_frequency=1)
    return AutoTokenizer.from_pretrained(str(out))


def _example(
    context: str, answer: str | None, qid: str = "q1", title: str = "", weight: float = 1.0
) -> QAExample:
    answers = {"answer_start": [], "text": []}
    if answer is not None:
        answers = {"answer_start": [context.index(answer)], "text": [answer]}
    return QAExample(
        id=qid, question="어디인가?", context=context, title=title, answers=answers, weight=weight
    )


def _decoded_span(feature: dict, enc_offsets, context: str) -> str:
    return context[enc_offsets[feature["start_positions"]][0] : enc_offsets[feature["end_positions"]][1]]


def _offsets(tokenizer, ex: QAExample, settings: ReaderSettings, context: str):
    enc = tokenizer(
        [ex.question],
        [context],
        truncation="only_second",
        max_length=settings.max_length,
        stride=settings.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    return enc["offset_mapping"], [enc.sequence_ids(i) for i in range(len(enc["input_ids"]))]


# --- tokenizer -------------------------------------------------------------------------------


def test_tokenizer_keeps_hangul_syllables_and_round_trips(tokenizer, tmp_path):
    tokens = tokenizer.tokenize("대한민국의 수도는 서울")
    assert tokens and all(not unicodedata.name(ch[-1]).startswith("HANGUL CHOSEONG") for ch in tokens)
    joined = "".join(t.removeprefix("##") for t in tokens)
    assert joined == "대한민국의수도는서울"  # syllables survive, no jamo
    # NFD (decomposed jamo) input is normalised to the same ids.
    nfd = unicodedata.normalize("NFD", "대한민국의 수도는 서울")
    assert tokenizer(nfd)["input_ids"] == tokenizer("대한민국의 수도는 서울")["input_ids"]
    assert tokenizer("SEOUL")["input_ids"] == tokenizer("seoul")["input_ids"]
    tokenizer.save_pretrained(str(tmp_path))
    again = AutoTokenizer.from_pretrained(str(tmp_path))
    enc = again("질문", "문맥 서울", return_token_type_ids=True)
    assert enc["input_ids"] == tokenizer("질문", "문맥 서울")["input_ids"]
    assert enc["input_ids"][0] == again.cls_token_id and enc["token_type_ids"][-1] == 1


# --- training features -----------------------------------------------------------------------


def test_answer_crossing_a_window_is_labelled_cls_and_whole_answer_is_labelled_exactly(tokenizer):
    context = " ".join(WORDS * 3)
    answer = "창원 청주 전주"
    ex = _example(context, answer)
    ex.answers["answer_start"] = [context.index(answer, 60)]  # the middle repetition
    settings = ReaderSettings(max_length=24, doc_stride=8, max_question_tokens=4)
    features = train_features([ex], tokenizer, settings)
    offsets, seq_ids = _offsets(tokenizer, ex, settings, context)
    assert len(features) > 3
    start, end = ex.answers["answer_start"][0], ex.answers["answer_start"][0] + len(answer)
    kinds = set()
    for feature, offs, ids in zip(features, offsets, seq_ids, strict=True):
        ctx = [o for o, s in zip(offs, ids, strict=True) if s == 1]
        inside = ctx[0][0] <= start and ctx[-1][1] >= end
        overlaps = ctx[0][0] < end and ctx[-1][1] > start
        if inside:
            kinds.add("inside")
            assert _decoded_span(feature, offs, context) == answer
            assert offs[feature["start_positions"]][0] == start
        else:
            kinds.add("crossing" if overlaps else "outside")
            assert (feature["start_positions"], feature["end_positions"]) == (CLS_INDEX, CLS_INDEX)
    assert kinds == {"inside", "crossing", "outside"}


def test_answer_longer_than_every_window_is_cls_everywhere(tokenizer):
    context = " ".join(WORDS * 2)
    answer = " ".join(WORDS[2:18])
    features = train_features(
        [_example(context, answer)],
        tokenizer,
        ReaderSettings(max_length=16, doc_stride=4, max_question_tokens=4),
    )
    assert len(features) > 1
    assert all((f["start_positions"], f["end_positions"]) == (CLS_INDEX, CLS_INDEX) for f in features)


def test_long_question_is_cut_so_windows_keep_context(tokenizer):
    long_question = " ".join(WORDS * 6) + "?"
    ex = QAExample(
        id="long",
        question=long_question,
        context=CORPUS[0],
        title="",
        answers={"answer_start": [], "text": []},
    )
    settings = ReaderSettings(max_length=40, doc_stride=8, max_question_tokens=10)
    features = train_features([ex], tokenizer, settings)
    assert features
    for f in features:
        assert len(f["input_ids"]) <= 40
        first_sep = f["input_ids"].index(tokenizer.sep_token_id)
        assert first_sep <= 11  # [CLS] + at most 10 question tokens
    inference = inference_features([long_question], [""], [CORPUS[0]], tokenizer, settings)
    assert all(any(o is not None for o in feat.offsets) for feat in inference)


def test_question_budget_shrinks_with_the_window_and_a_stride_too_large_is_refused():
    assert ReaderSettings(max_length=256, doc_stride=64).question_budget == 64
    assert ReaderSettings(max_length=128, doc_stride=64).question_budget == 60
    with pytest.raises(InputError, match="doc_stride"):
        ReaderSettings(max_length=64, doc_stride=60)


def test_no_answer_example_trains_towards_cls_and_keeps_its_weight(tokenizer):
    features = train_features([_example(CORPUS[0], None, weight=0.25)], tokenizer, ReaderSettings())
    assert len(features) == 1
    assert (features[0]["start_positions"], features[0]["end_positions"], features[0]["weight"]) == (
        0,
        0,
        0.25,
    )


def test_title_prefix_shifts_offsets_and_keeps_answer(tokenizer):
    ex = _example(CORPUS[1], "훈민정음", title="세종대왕")
    plain = train_features([ex], tokenizer, ReaderSettings(title_prefix=False))[0]
    titled = train_features([ex], tokenizer, ReaderSettings(title_prefix=True))[0]
    assert len(titled["input_ids"]) > len(plain["input_ids"])
    assert titled["start_positions"] > plain["start_positions"]
    offsets, _ = _offsets(tokenizer, ex, ReaderSettings(), "세종대왕\n" + ex.context)
    # The label covers the tokens holding the answer (a particle may share its last token).
    assert _decoded_span(titled, offsets[0], "세종대왕\n" + ex.context).startswith("훈민정음")
    # At inference the title is readable but never an answer, and offsets point into the passage text.
    feats = inference_features(
        [ex.question], [ex.title], [ex.context], tokenizer, ReaderSettings(title_prefix=True)
    )
    spans = [o for o in feats[0].offsets if o is not None]
    assert spans[0][0] == 0 and all(ex.context[s:e] for s, e in spans)
    assert "세종" in tokenizer.decode(feats[0].inputs["input_ids"]).split("[SEP]")[1]


def test_wrong_answer_start_is_an_input_error(tokenizer):
    ex = _example(CORPUS[0], "서울")
    ex.answers["answer_start"] = [3]
    with pytest.raises(InputError, match="q1"):
        train_features([ex], tokenizer, ReaderSettings(), path="train.jsonl")


def test_weighted_loss_scales_each_example():
    torch.manual_seed(0)
    start, end = torch.randn(2, 7), torch.randn(2, 7)
    pos = torch.tensor([1, 3])
    full = weighted_span_loss(start, end, pos, pos, torch.tensor([1.0, 1.0]))
    only_first = weighted_span_loss(start, end, pos, pos, torch.tensor([1.0, 0.0]))
    first_alone = weighted_span_loss(start[:1], end[:1], pos[:1], pos[:1], torch.tensor([1.0]))
    assert only_first < full
    assert torch.isclose(only_first * 2, first_alone)


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


def _two_passage_case(tokenizer):
    results = [
        RetrievalResult(
            "q1",
            "수도는?",
            [
                Hit("d1-0", "d1", "", CORPUS[0], 12.0),
                Hit("d2-0", "d2", "", CORPUS[3], 10.0),
            ],
        )
    ]
    pairs = reading_pairs(results, None)
    features = inference_features(
        ["수도는?"] * 2, ["", ""], [CORPUS[0], CORPUS[3]], tokenizer, ReaderSettings()
    )
    assert [f.pair_index for f in features] == [0, 1]
    logits = []
    for f, (peak, base) in zip(features, [(10.0, 9.0), (5.0, -10.0)], strict=True):
        # Passage 1: high but flat logits; passage 2: lower logits sharply peaked on its first token.
        first = next(t for t, o in enumerate(f.offsets) if o is not None)
        logits.append(_logits(len(f.offsets), {first: peak}, {first: peak}, base=base))
    return results, pairs, features, logits


def test_score_modes_rank_across_passages_differently(tokenizer):
    results, pairs, features, logits = _two_passage_case(tokenizer)
    by_logit, nbest_logit = select_answers(
        results, pairs, features, logits, PredictConfig(score_mode="logit_sum", use_retrieval_score=False)
    )
    by_prob, nbest_prob = select_answers(
        results, pairs, features, logits, PredictConfig(score_mode="prob_product", use_retrieval_score=False)
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
    assert set(top) == {
        "text", "score", "start_logit", "end_logit", "start_prob", "end_prob",
        "passage_id", "doc_id", "passage_rank", "retrieval_score",
    }  # fmt: skip
    assert (top["passage_rank"], top["retrieval_score"], top["doc_id"]) == (2, 10.0, "d2")


def test_retrieval_score_can_overturn_the_reader(tokenizer):
    results, pairs, features, logits = _two_passage_case(tokenizer)
    results[0].passages[0].score = 40.0  # far ahead of passage 2 (10.0) after the softmax
    _, nbest = select_answers(
        results, pairs, features, logits, PredictConfig(score_mode="prob_product", use_retrieval_score=True)
    )
    assert nbest["q1"][0]["passage_id"] == "d1-0"
    # top_k_passages=1 reads only the first passage.
    only_first = reading_pairs(results, 1)
    assert only_first == [(0, 0)]


def test_results_from_gold_and_bad_retrieved_file(tmp_path):
    ex = _example(CORPUS[0], "서울", qid="x")
    ex.document_id = "doc-7"
    (result,) = results_from_gold([ex])
    assert (result.id, result.passages[0].text, result.passages[0].doc_id) == ("x", CORPUS[0], "doc-7")
    path = tmp_path / "retrieved.jsonl"
    write_jsonl(path, [result.to_dict(), {"id": "y", "passages": []}])
    with pytest.raises(InputError, match="line 2"):
        load_retrieved(path)


def test_predict_config_rejects_unknown_score_mode():
    with pytest.raises(InputError, match="score_mode"):
        PredictConfig(score_mode="max")


def test_prediction_in_question_chunks_equals_one_pass(tokenizer, monkeypatch):
    from transformers import BertConfig, BertForQuestionAnswering

    import odqa.reader.predict as predict_module
    from odqa.reader.predict import Reader

    torch.manual_seed(0)
    model = BertForQuestionAnswering(
        BertConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=64, pad_token_id=tokenizer.pad_token_id,
        )
    )  # fmt: skip
    reader = Reader(model, tokenizer, ReaderSettings())
    results = [
        RetrievalResult(
            f"q{i}", "어디인가?", [Hit(f"d{j}-0", f"d{j}", "", CORPUS[j], float(-j)) for j in range(3)]
        )
        for i in range(5)
    ]
    config = PredictConfig(n_best=3)
    whole = reader.predict(results, config)
    monkeypatch.setattr(predict_module, "QUESTIONS_PER_CHUNK", 2)
    chunked = reader.predict(results, config)
    assert list(chunked[0]) == [r.id for r in results]
    assert chunked[0] == whole[0]
    assert [[e["text"] for e in chunked[1][q]] for q in chunked[1]] == [
        [e["text"] for e in whole[1][q]] for q in whole[1]
    ]


def test_trim_particles_in_prediction_trims_the_best_spans(tokenizer):
    from odqa.korean_answers import trim_particles

    results, pairs, features, logits = _two_passage_case(tokenizer)
    plain, _ = select_answers(results, pairs, features, logits, PredictConfig(n_best=5))
    trimmed, nbest = select_answers(
        results, pairs, features, logits, PredictConfig(n_best=5, trim_particles=True)
    )
    assert trimmed["q1"] == trim_particles([plain["q1"]])[0]
    texts = [e["text"] for e in nbest["q1"]]
    assert len(texts) == len(set(texts)) and all(t == trim_particles([t])[0] for t in texts)


def test_question_overlap_marks_context_tokens_shared_with_the_question(tokenizer):
    ex = QAExample(
        id="o", question="세종대왕은 무엇을 창제하였나?", context=CORPUS[1], title="",
        answers={"answer_start": [CORPUS[1].index("훈민정음")], "text": ["훈민정음"]},
    )  # fmt: skip
    plain = train_features([ex], tokenizer, ReaderSettings())[0]
    marked = train_features([ex], tokenizer, ReaderSettings(question_overlap=True))[0]
    assert plain["input_ids"] == marked["input_ids"] and 2 not in plain["token_type_ids"]
    pieces = tokenizer.convert_ids_to_tokens(marked["input_ids"])
    overlap = {pieces[i] for i, t in enumerate(marked["token_type_ids"]) if t == 2}
    assert overlap and overlap <= set(tokenizer.tokenize(ex.question))
    question_part = marked["input_ids"].index(tokenizer.sep_token_id)
    assert all(t == 0 for t in marked["token_type_ids"][:question_part])  # only context tokens
    assert (marked["start_positions"], marked["end_positions"]) == (
        plain["start_positions"],
        plain["end_positions"],
    )
    inference = inference_features(
        [ex.question], [""], [ex.context], tokenizer, ReaderSettings(question_overlap=True)
    )
    assert inference[0].inputs["token_type_ids"] == marked["token_type_ids"]  # same feature at inference
