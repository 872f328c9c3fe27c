"""prepare_data: the competition's layout (corpus + DatasetDict train/validation + question-only test) and
the KorQuAD article split, and the bad layouts, each one line naming the file, split or flag."""

from __future__ import annotations

import json

import datasets
import pytest

from odqa.data import load_documents, load_qa
from odqa.data.layout import PrepareDataConfig, prepare_data
from odqa.errors import InputError


def _config(layout: dict, **overrides) -> PrepareDataConfig:
    values = {
        "corpus_uri": str(layout["corpus"]),
        "train_uri": str(layout["train"]),
        "eval_uri": str(layout["train"]),
        "test_uri": str(layout["test"]),
        **overrides,
    }
    return PrepareDataConfig(**values)


def test_competition_layout_documents_are_the_corpus(competition_layout, tmp_path):
    data = prepare_data(_config(competition_layout), tmp_path / "data")
    documents = load_documents(data.documents_path)
    assert {d.document_id for d in documents} == competition_layout["document_ids"]
    assert len(load_qa(data.train_path).examples) == competition_layout["train_count"]
    evaluation = load_qa(data.eval_path, open_domain=True).examples
    assert len(evaluation) == competition_layout["validation_count"]
    assert {ex.document_id for ex in evaluation} <= set(map(str, competition_layout["duplicate_ids"]))
    test = load_qa(data.test_path, open_domain=True).examples
    assert {ex.id for ex in test} == competition_layout["test_ids"]
    assert data.report["layout"] == "competition"
    assert data.report["eval_gold_not_in_corpus"] == 0


def test_korquad_file_is_split_by_article_as_before(korquad_path, tmp_path):
    data = prepare_data(PrepareDataConfig(data_uri=str(korquad_path)), tmp_path / "data")
    assert data.report["layout"] == "korquad"
    assert data.test_path is None
    train_titles = {ex.title for ex in load_qa(data.train_path).examples}
    eval_titles = {ex.title for ex in load_qa(data.eval_path, open_domain=True).examples}
    assert train_titles and eval_titles and not train_titles & eval_titles


def test_rerun_replaces_own_output_but_never_a_user_folder(competition_layout, tmp_path):
    prepare_data(_config(competition_layout), tmp_path / "data")
    prepare_data(_config(competition_layout, test_uri=""), tmp_path / "data")  # its own output: replaced
    assert not (tmp_path / "data" / "test.jsonl").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(InputError):
        prepare_data(_config(competition_layout), mine)
    assert (mine / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"train_split": "training"},
            r"train_split='training': no such split; the DatasetDict has \['train', 'validation'\]",
        ),
        (
            {"eval_split": ""},
            r"a DatasetDict with splits \['train', 'validation'\]: choose one with eval_split",
        ),
        ({"eval_uri": ""}, r"corpus_uri, train_uri given without eval_uri"),
        ({"data_uri": "x.json"}, r"give data_uri or corpus_uri/train_uri/eval_uri, not both"),
    ],
)
def test_bad_layouts_name_the_split_or_parameter(competition_layout, tmp_path, overrides, message):
    with pytest.raises(InputError, match=message):
        prepare_data(_config(competition_layout, **overrides), tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_corpus_without_text_names_file_and_record(competition_layout, tmp_path):
    corpus = json.loads(competition_layout["corpus"].read_text(encoding="utf-8"))
    del corpus["3"]["text"]
    bad = tmp_path / "wikipedia_documents.json"
    bad.write_text(json.dumps(corpus, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(InputError, match=r"wikipedia_documents.json.*3.*missing field 'text'"):
        prepare_data(_config(competition_layout, corpus_uri=str(bad)), tmp_path / "data")


def test_test_set_with_answers_is_refused(competition_layout, tmp_path):
    # The labelled train_dataset given as the test set (its validation split).
    config = _config(competition_layout, test_uri=str(competition_layout["train"]), test_split="validation")
    with pytest.raises(InputError, match="the test set holds answers"):
        prepare_data(config, tmp_path / "data")


def test_test_ids_shared_with_training_are_refused(competition_layout, tmp_path):
    train = datasets.load_from_disk(str(competition_layout["train"]))["train"]
    clash = [{"id": train[0]["id"], "question": "누가?"}, {"id": "mrc-test-new", "question": "언제?"}]
    path = tmp_path / "test_dataset"
    datasets.DatasetDict({"validation": datasets.Dataset.from_list(clash)}).save_to_disk(str(path))
    with pytest.raises(
        InputError, match=rf"1 test question id\(s\) also in the train set, e.g. '{train[0]['id']}'"
    ):
        prepare_data(_config(competition_layout, test_uri=str(path)), tmp_path / "data")


def test_split_flag_on_a_plain_file_is_refused(competition_layout, tiny_qa, tmp_path):
    with pytest.raises(
        InputError, match="test_split='validation' applies only to a datasets DatasetDict folder"
    ):
        prepare_data(
            _config(competition_layout, test_uri=str(tiny_qa), test_split="validation"), tmp_path / "d"
        )
