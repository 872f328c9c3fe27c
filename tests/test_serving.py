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
