"""Reader windows, training labels and the tokenizer on hand-made cases (fast; no training)."""

from __future__ import annotations

import unicodedata

import pytest
from tokenizers.processors import TemplateProcessing
from transformers import AutoTokenizer

from odqa.errors import InputError
from odqa.reader.features import (
    ReaderSettings,
    cls_position,
    focus_spans,
    inference_features,
    train_features,
)
from odqa.schema import QAExample


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


def _cls_label(tokenizer, feature: dict) -> tuple[int, int]:
    cls = feature["input_ids"].index(tokenizer.cls_token_id)
    return cls, cls


def _post_processor(tokenizer, pair: str) -> None:
    """Replace the tokenizer's template (where [CLS]/[SEP] go) with `pair`."""
    special = [(t, tokenizer.convert_tokens_to_ids(t)) for t in ("[CLS]", "[SEP]")]
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="$A [SEP]", pair=pair, special_tokens=special
    )


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


# --- the CLS position ("no answer here") ---------------------------------------------------------


def test_cls_is_found_where_the_tokenizer_puts_it(fresh_tokenizer, corpus, words):
    """An XLNet-style template puts [CLS] last: labels and inference features point there, not at 0."""
    tok = fresh_tokenizer
    _post_processor(tok, "$A [SEP] $B:1 [SEP]:1 [CLS]:1")
    settings = ReaderSettings(max_length=24, doc_stride=8, max_question_tokens=4)
    context = " ".join(words * 3)
    answer = "창원 청주 전주"
    answerable = _example(context, answer)
    answerable.answers["answer_start"] = [context.index(answer, 60)]
    unanswerable = _example(corpus[0], None, qid="q2")
    features = train_features([answerable, unanswerable], tok, settings)
    offsets, _ = _offsets(tok, answerable, settings, context)
    labelled = 0
    for feature in features:
        cls = len(feature["input_ids"]) - 1
        assert feature["input_ids"][cls] == tok.cls_token_id and feature["input_ids"][0] != tok.cls_token_id
        if feature["example_index"] == 1 or feature["start_positions"] == cls:
            assert (feature["start_positions"], feature["end_positions"]) == (cls, cls)
        else:
            labelled += 1
            assert _decoded_span(feature, offsets[features.index(feature)], context) == answer
    assert labelled >= 1 and any(f["start_positions"] != 0 and f["example_index"] == 1 for f in features)

    inference = inference_features([answerable.question], [""], [context], tok, settings)
    assert len(inference) > 1
    for feat in inference:
        assert feat.cls_index == len(feat.inputs["input_ids"]) - 1 > 0
        assert feat.offsets[feat.cls_index] is None  # never part of an answer span


def test_cls_after_a_leading_token_and_a_tokenizer_without_cls(fresh_tokenizer, corpus):
    tok = fresh_tokenizer
    _post_processor(tok, "[SEP] [CLS] $A [SEP] $B:1 [SEP]:1")
    (feat,) = inference_features(["어디인가?"], [""], [corpus[0]], tok, ReaderSettings())
    assert feat.cls_index == 1 == cls_position(tok, feat.inputs["input_ids"])
    _post_processor(tok, "$A [SEP] $B:1 [SEP]:1")
    with pytest.raises(InputError, match="CLS"):
        inference_features(["어디인가?"], [""], [corpus[0]], tok, ReaderSettings())
    with pytest.raises(InputError, match="CLS"):
        train_features([_example(corpus[0], None)], tok, ReaderSettings())


# --- training features -----------------------------------------------------------------------


def test_answer_crossing_a_window_is_labelled_cls_and_whole_answer_is_labelled_exactly(tokenizer, words):
    context = " ".join(words * 3)
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
            assert (feature["start_positions"], feature["end_positions"]) == _cls_label(tokenizer, feature)
    assert kinds == {"inside", "crossing", "outside"}


def test_answer_longer_than_every_window_is_cls_everywhere(tokenizer, words):
    context = " ".join(words * 2)
    answer = " ".join(words[2:18])
    features = train_features(
        [_example(context, answer)],
        tokenizer,
        ReaderSettings(max_length=16, doc_stride=4, max_question_tokens=4),
    )
    assert len(features) > 1
    assert all((f["start_positions"], f["end_positions"]) == _cls_label(tokenizer, f) for f in features)


def test_long_question_is_cut_so_windows_keep_context(tokenizer, corpus, words):
    long_question = " ".join(words * 6) + "?"
    ex = QAExample(
        id="long",
        question=long_question,
        context=corpus[0],
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
    inference = inference_features([long_question], [""], [corpus[0]], tokenizer, settings)
    assert all(any(o is not None for o in feat.offsets) for feat in inference)


def test_question_budget_shrinks_with_the_window_and_a_stride_too_large_is_refused():
    assert ReaderSettings(max_length=256, doc_stride=64).question_budget == 64
    assert ReaderSettings(max_length=128, doc_stride=64).question_budget == 60
    with pytest.raises(InputError, match="doc_stride"):
        ReaderSettings(max_length=64, doc_stride=60)


def test_no_answer_example_trains_towards_cls_and_keeps_its_weight(tokenizer, corpus):
    features = train_features([_example(corpus[0], None, weight=0.25)], tokenizer, ReaderSettings())
    assert len(features) == 1
    assert tokenizer.cls_token_id is not None
    assert (features[0]["start_positions"], features[0]["end_positions"], features[0]["weight"]) == (
        *_cls_label(tokenizer, features[0]),
        0.25,
    )


def test_title_prefix_shifts_offsets_and_keeps_answer(tokenizer, corpus):
    ex = _example(corpus[1], "훈민정음", title="세종대왕")
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


def test_wrong_answer_start_is_an_input_error(tokenizer, corpus):
    ex = _example(corpus[0], "서울")
    ex.answers["answer_start"] = [3]
    with pytest.raises(InputError, match="q1"):
        train_features([ex], tokenizer, ReaderSettings(), path="train.jsonl")


def test_question_overlap_marks_context_tokens_shared_with_the_question(tokenizer, corpus):
    ex = QAExample(
        id="o", question="세종대왕은 무엇을 창제하였나?", context=corpus[1], title="",
        answers={"answer_start": [corpus[1].index("훈민정음")], "text": ["훈민정음"]},
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


def test_focus_sentence_is_the_sentence_sharing_most_question_words(tokenizer, corpus):
    context = corpus[0] + " " + corpus[3]  # 수도 / 서울 / 한강 / 이순신 / 임진왜란: four sentences
    second = context.index("서울은")
    fourth = context.index("임진왜란")
    spans = focus_spans(
        tokenizer,
        ["서울은 무엇을 끼고 있나?", "임진왜란 때 이순신은 무엇을 지휘하였나?", "서울은 임진왜란", "제주"],
        [context] * 4,
    )
    assert [context[a:b].strip() for a, b in spans[0]] == ["서울은 한강을 끼고 있다."]
    assert spans[0][0][0] <= second < spans[0][0][1]
    # 이순신 (sentence 3) against 임진왜란 + 지휘 (sentence 4): the most shared words win
    assert [context[a:b].strip() for a, b in spans[1]] == ["임진왜란 때 수군을 지휘하였다."]
    assert spans[1][0][0] <= fourth < spans[1][0][1]
    assert [context[a:b].strip() for a, b in spans[2]] == [
        corpus[0].split(". ")[1],
        "임진왜란 때 수군을 지휘하였다.",
    ]  # a tie: both
    assert spans[3] == []  # nothing shared: no focus


def test_focus_sentence_adds_two_to_the_token_types_inside_it(tokenizer, corpus):
    context = corpus[0] + " " + corpus[3]
    answer = "수군"
    ex = QAExample(
        id="f", question="임진왜란 때 무엇을 지휘하였나?", context=context, title="",
        answers={"answer_start": [context.index(answer)], "text": [answer]},
    )  # fmt: skip
    base = ReaderSettings(question_overlap=True)
    both = ReaderSettings(question_overlap=True, focus_sentence=True)
    plain = train_features([ex], tokenizer, base)[0]
    marked = train_features([ex], tokenizer, both)[0]
    assert plain["input_ids"] == marked["input_ids"]
    assert (plain["start_positions"], plain["end_positions"]) == (
        marked["start_positions"],
        marked["end_positions"],
    )
    enc = tokenizer(ex.question, context, return_offsets_mapping=True)
    ((start, end),) = focus_spans(tokenizer, [ex.question], [context])[0]
    for position, (t0, t1) in enumerate(zip(plain["token_type_ids"], marked["token_type_ids"], strict=True)):
        in_focus = enc.sequence_ids()[position] == 1 and start <= enc["offset_mapping"][position][0] < end
        assert t1 == t0 + 2 if in_focus else t1 == t0
    assert {4, 3} <= set(marked["token_type_ids"])  # overlap and plain tokens inside the sentence
    assert marked["token_type_ids"][marked["start_positions"]] == 3  # the answer lies in it
    inference = inference_features([ex.question], [""], [context], tokenizer, both)
    assert inference[0].inputs["token_type_ids"] == marked["token_type_ids"]  # same feature at inference
