"""retrieved.jsonl and doc_aliases.json have one reader each, used by predict, evaluate and
eval-retrieval; files written before 0.2 (hits with `doc_id`) still read."""

from __future__ import annotations

import pytest

from odqa.data import load_doc_aliases, load_retrieved
from odqa.errors import InputError
from odqa.io import write_json, write_jsonl
from odqa.schema import Hit, RetrievalResult


def test_retrieved_round_trip_and_old_hit_key(tmp_path):
    new = RetrievalResult("q1", "수도는?", [Hit("d1-0", "d1", "서울", "서울은 수도", 2.5)])
    old = {
        "id": "q2",
        "question": "?",
        "passages": [{"passage_id": "d2-0", "doc_id": "d2", "text": "t", "score": 1}],
    }
    write_jsonl(tmp_path / "retrieved.jsonl", [new.to_dict(), old])
    assert new.to_dict()["passages"][0]["document_id"] == "d1"
    first, second = load_retrieved(tmp_path / "retrieved.jsonl")
    assert first == new
    assert second.passages == [Hit("d2-0", "d2", "", "t", 1.0)]


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "b", "passages": [{"passage_id": "x", "text": "t", "score": 1}]},  # no document id
        {"id": "b", "question": "?", "passages": "not a list"},
        {"question": "?", "passages": []},  # no id
    ],
)
def test_bad_retrieved_line_is_named(tmp_path, bad):
    path = tmp_path / "retrieved.jsonl"
    write_jsonl(path, [RetrievalResult("a", "?", []).to_dict(), bad])
    with pytest.raises(InputError, match=r"retrieved.jsonl \[record line 2\]: not a retrieval result"):
        load_retrieved(path)


def test_doc_aliases(tmp_path):
    assert load_doc_aliases(None) == {}
    write_json(tmp_path / "doc_aliases.json", {"4": "1", "5": 2})
    assert load_doc_aliases(tmp_path / "doc_aliases.json") == {"4": "1", "5": "2"}
    write_json(tmp_path / "bad.json", ["4", "1"])
    with pytest.raises(InputError, match=r"bad.json: doc aliases must be a JSON object"):
        load_doc_aliases(tmp_path / "bad.json")
