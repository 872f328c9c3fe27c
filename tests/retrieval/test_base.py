"""Building an index the way the pipeline's index component does (`with_stage_defaults` + `build_index`),
with options as KFP delivers them: numbers inside the dict parameter are floats."""

from __future__ import annotations

import json

import pytest

from odqa.errors import InputError
from odqa.io import read_json
from odqa.retrieval.base import build_index, load_retriever, with_stage_defaults
from odqa.retrieval.hybrid import sub_indexes


def _as_kfp_delivers(options: dict) -> dict:
    """The DAG's documented example parameter after KFP: JSON whose ints are floats."""
    text = json.dumps(options)
    return json.loads(text, parse_int=float)


# Dense members set torch/FAISS threads process-wide; the fixture restores them after this module.
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_hybrid_members_from_a_kfp_parameter_build(tmp_path, tiny_passages, tiny_qa):
    """`{"kind": "dense", "epochs": 3}` arrived as epochs 3.0 and reached `range(3.0)` before members
    were validated by their kind's config."""
    dense = {
        "kind": "dense",
        "epochs": 3,
        "hidden_size": 16,
        "num_layers": 1,
        "num_heads": 1,
        "intermediate_size": 32,
        "vocab_size": 300,
        "max_passage_tokens": 64,
        "batch_size": 4,
        "hard_negatives": 0,
        "num_threads": 1,
    }
    options = _as_kfp_delivers({"members": [{"kind": "bm25"}, dense], "fusion": "rrf"})
    assert options["members"][1]["epochs"] == 3.0 and isinstance(options["members"][1]["epochs"], float)
    options = with_stage_defaults("hybrid", options, analyzer="whitespace", train_qa=tiny_qa)
    index_dir = build_index(
        "hybrid", options, tiny_passages.passages_path, tmp_path / "hybrid", source="retriever_options"
    )
    members = sub_indexes(index_dir)
    assert list(members) == ["bm25-whitespace", "dense"]
    stored = read_json(members["dense"] / "retriever.json")
    assert stored["epochs"] == 3 and isinstance(stored["epochs"], int)
    assert len(stored["training"]["epoch_losses"]) == 3
    hits = load_retriever(index_dir).search(["조선의 수도는?"], top_k=2)
    assert len(hits) == 1 and len(hits[0]) == 2


def test_bad_member_options_fail_before_any_member_is_built(tmp_path, tiny_passages, tiny_qa):
    options = _as_kfp_delivers({"members": [{"kind": "bm25"}, {"kind": "dense", "epochs": 2.5}]})
    options = with_stage_defaults("hybrid", options, analyzer="whitespace", train_qa=tiny_qa)
    with pytest.raises(InputError) as raised:
        build_index(
            "hybrid", options, tiny_passages.passages_path, tmp_path / "h", source="retriever_options"
        )
    assert str(raised.value) == (
        "retriever_options: members: member 1 (dense): epochs: must be an integer, got 2.5"
    )
    assert not (tmp_path / "h").exists()


def test_an_edited_retriever_json_is_refused_and_an_old_one_without_fingerprint_loads(
    tmp_path, tiny_passages
):
    """The fingerprint catches retriever.json edited to another analyzer; indexes from before it load."""
    from odqa.retrieval.base import FINGERPRINT_KEY

    index = build_index("bm25", {"analyzer": "whitespace"}, tiny_passages.passages_path, tmp_path / "i")
    config_path = index / "retriever.json"
    saved = json.loads(config_path.read_text())
    assert set(saved[FINGERPRINT_KEY]) == {"settings", "analyzer"}
    config_path.write_text(json.dumps({**saved, "analyzer": "bigram"}))
    with pytest.raises(InputError, match=r"retriever.json: settings differ .* rebuild the index"):
        load_retriever(index)
    config_path.write_text(json.dumps({k: v for k, v in saved.items() if k != FINGERPRINT_KEY}))
    assert load_retriever(index).search(["서울"], 1)
    config_path.write_text(
        json.dumps({**saved, FINGERPRINT_KEY: {**saved[FINGERPRINT_KEY], "analyzer": "0" * 16}})
    )
    with pytest.raises(InputError, match="analyzer now gives other terms"):
        load_retriever(index)
