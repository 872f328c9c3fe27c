"""The served model reads its settings through the stage configs: an ensemble n_best that KFP handed
over as 10.0 (numbers inside dict parameters become floats) must not crash serving."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from odqa.ensemble import combine
from odqa.errors import InputError
from odqa.io import write_json, write_jsonl
from odqa.retrieval.base import build_index
from odqa.schema import Passage
from odqa.serving import INDEX_ARTIFACT, SETTINGS_ARTIFACT, OdqaModel, load_settings


def _candidates(texts: list[str]) -> list[dict]:
    return [{"text": t, "start_logit": 5.0 - i, "end_logit": 5.0 - i} for i, t in enumerate(texts)]


@pytest.fixture
def index_dir(tmp_path):
    passages = tmp_path / "passages.jsonl"
    write_jsonl(passages, [Passage("d1-0", "d1", "서울", "서울은 수도이다.").to_dict()])
    return build_index("bm25", {"analyzer": "whitespace"}, passages, tmp_path / "index")


def test_ensemble_settings_with_kfp_floats_serve(tmp_path, index_dir):
    settings = tmp_path / "odqa_serving.json"
    # What the register component receives: the pipeline's ensemble_config after KFP's JSON.
    write_json(
        settings,
        {"top_k": 3, "predict_config": {"n_best": 5.0}, "ensemble_config": json.loads('{"n_best": 10.0}')},
    )
    model = OdqaModel()
    model.load_context(
        SimpleNamespace(artifacts={SETTINGS_ARTIFACT: str(settings), INDEX_ARTIFACT: str(index_dir)})
    )
    assert model.ensemble_config.n_best == 10 and model.predict_config.n_best == 5
    # the model's own ensemble step over two readers' n-best lists
    members = [{"q": _candidates([f"answer {i}" for i in range(12)])}, {"q": _candidates(["answer 3"])}]
    _, nbest = combine(members, model.ensemble_config)
    assert len(nbest["q"]) == 10 and nbest["q"][0]["text"] == "answer 3"


def test_bad_serving_settings_name_the_file_and_field(tmp_path):
    settings = tmp_path / "odqa_serving.json"
    write_json(settings, {"top_k": 3, "predict_config": {}, "ensemble_config": {"n_best": 10.5}})
    with pytest.raises(InputError) as raised:
        load_settings(settings)
    assert str(raised.value) == f"{settings}: ensemble_config: n_best: must be an integer, got 10.5"


def test_version_tags_name_the_concrete_elasticsearch_index(tmp_path, index_dir):
    """What the register stage records on the version, so prune_indexes keeps the index it searches."""
    from odqa.serving import point_aliases, version_tags

    assert version_tags(index_dir) == {}  # bm25: the index travels inside the model
    es_dir = tmp_path / "es"
    es_dir.mkdir()
    write_json(
        es_dir / "retriever.json",
        {"kind": "elasticsearch", "url": "http://127.0.0.1:9", "alias": "odqa-p", "index": "odqa-p-1"},
    )
    assert version_tags(es_dir) == {"odqa.index": "odqa-p-1"}
    assert point_aliases(es_dir) == []  # unreachable: a warning, the promotion stands


def test_answer_offsets_use_the_readers_own_then_the_first_occurrence():
    from odqa.serving import answer_offsets

    text = "세종은 한글을 만들었다. 세종대왕은 조선의 왕이다."
    assert answer_offsets(text, {"text": "세종대왕", "start_char": 14}) == (14, 18)
    # no offsets (or stale ones): the first occurrence of the particle-trimmed text
    assert answer_offsets(text, {"text": "세종"}) == (0, 2)
    assert answer_offsets(text, {"text": "세종", "start_char": 3}) == (0, 2)
    assert answer_offsets(text, {"text": "고려"}) is None


def test_a_served_record_says_where_each_passages_best_span_is():
    from odqa.schema import Hit, RetrievalResult
    from odqa.serving import _answer_record

    hits = [
        Hit("d1-0", "d1", "서울", "서울은 대한민국의 수도이다.", 3.0),
        Hit("d2-0", "d2", "부산", "부산은 항구 도시이다.", 2.0),
        Hit("d3-0", "d3", "대구", "대구는 분지에 있다.", 1.0),
    ]
    entries = [  # n-best, best first: the best answer is in the second passage
        {"text": "항구 도시", "score": 0.6, "passage_id": "d2-0", "document_id": "d2"},
        {"text": "대한민국", "score": 0.3, "passage_id": "d1-0", "document_id": "d1"},
        {"text": "부산", "score": 0.1, "passage_id": "d2-0", "document_id": "d2"},
    ]
    record = _answer_record(RetrievalResult("0", "어느 도시?", hits), entries)
    assert (record["answer"], record["passage_id"], record["document_id"]) == ("항구 도시", "d2-0", "d2")
    assert hits[1].text[record["start_char"] : record["end_char"]] == "항구 도시"
    assert [p["rank"] for p in record["passages"]] == [1, 2, 3]
    first, second, third = record["passages"]
    assert first["answer"] == {"text": "대한민국", "score": 0.3, "start_char": 4, "end_char": 8}
    assert second["answer"]["text"] == "항구 도시"  # the passage's best span, not its later ones
    assert third["answer"] is None and third["score"] == 1.0
    empty = _answer_record(RetrievalResult("1", "?", hits[:1]), [])
    assert empty["answer"] == "" and empty["start_char"] is None and empty["passages"][0]["answer"] is None
