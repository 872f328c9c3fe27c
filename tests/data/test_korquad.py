"""odqa.data.korquad: article-level open-domain split of KorQuAD, and `odqa prepare-korquad`."""

from __future__ import annotations

import json

import pytest

from odqa.data import load_documents, load_qa
from odqa.data.korquad import KorquadSplitConfig, paragraph_document_id, prepare_korquad
from odqa.errors import InputError


def test_real_korquad_split(korquad_split, korquad_path):
    docs = load_documents(korquad_split.documents_path)
    train = load_qa(korquad_split.train_path).examples
    evaluation = load_qa(korquad_split.eval_path).examples
    assert len(docs) == 961  # 964 paragraphs, 3 repeated; one paragraph has no questions
    assert len(train) + len(evaluation) == 5774
    assert korquad_split.report["train_articles"] == 112 and korquad_split.report["eval_articles"] == 28
    # article level: no title on both sides, and no paragraph either
    assert not {ex.title for ex in train} & {ex.title for ex in evaluation}
    assert not {ex.document_id for ex in train} & {ex.document_id for ex in evaluation}
    # every question's gold document is in the corpus and is its own paragraph
    by_id = {d.document_id: d for d in docs}
    for ex in train + evaluation:
        assert by_id[ex.document_id].text == ex.context
        assert by_id[ex.document_id].title == ex.title
    raw = json.loads(korquad_path.read_text(encoding="utf-8"))
    all_paragraphs = {p["context"] for a in raw["data"] for p in a["paragraphs"]}
    assert {d.text for d in docs} == all_paragraphs


def test_split_is_deterministic_and_seeded(tiny_squad, tmp_path):
    a = prepare_korquad(KorquadSplitConfig(eval_fraction=0.5, seed=3), tiny_squad, tmp_path / "a")
    prepare_korquad(KorquadSplitConfig(eval_fraction=0.5, seed=3), tiny_squad, tmp_path / "b")
    for name in ("documents.jsonl", "train.jsonl", "eval.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert a.report["eval_articles"] == 2
    eval_sets = {
        tuple(
            prepare_korquad(
                KorquadSplitConfig(eval_fraction=0.5, seed=seed), tiny_squad, tmp_path / f"s{seed}"
            ).report["eval_titles"]
        )
        for seed in range(8)
    }
    assert len(eval_sets) > 1  # the seed matters


def test_tiny_split_documents(tiny_squad, tmp_path):
    split = prepare_korquad(KorquadSplitConfig(eval_fraction=0.25, seed=0), tiny_squad, tmp_path / "out")
    docs = load_documents(split.documents_path)
    # 6 paragraphs: one repeated, one without questions -> 5 documents
    assert len(docs) == 5
    assert "한강은 서울을 가로질러 흐르는 강이다. 한강의 길이는 약 494 km이다." in {d.text for d in docs}
    assert len({d.document_id for d in docs}) == 5
    qa = load_qa(split.train_path).examples + load_qa(split.eval_path).examples
    assert len(qa) == 10
    assert all(ex.document_id == paragraph_document_id(ex.context) for ex in qa)
    assert split.report["eval_articles"] == 1


def test_document_id_depends_on_content_only():
    assert paragraph_document_id("가나다") == paragraph_document_id("가나다")
    assert paragraph_document_id("가나다") != paragraph_document_id("가나다 ")


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_bad_fraction(fraction):
    with pytest.raises(InputError, match="eval_fraction"):
        KorquadSplitConfig(eval_fraction=fraction)


def test_flat_input_is_refused(tiny_qa, tmp_path):
    with pytest.raises(InputError, match="expected SQuAD"):
        prepare_korquad(KorquadSplitConfig(), tiny_qa, tmp_path / "out")


def test_refuses_to_replace_a_foreign_folder(tiny_squad, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="other files"):
        prepare_korquad(KorquadSplitConfig(), tiny_squad, tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_cli_prepare_korquad_default_path(run_cli, tmp_path, korquad_path, monkeypatch):
    monkeypatch.setenv("ODQA_DATA_DIR", str(korquad_path.parent.parent))
    rc, stdout, _ = run_cli(
        ["prepare-korquad", "--out", tmp_path / "kq", "--eval-fraction", "0.1", "--seed", "5"]
    )
    assert rc == 0
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["eval_articles"] == 14 and report["documents"] == 961
    assert sorted(p.name for p in (tmp_path / "kq").iterdir()) == [
        ".odqa-output.json",
        "documents.jsonl",
        "eval.jsonl",
        "split_report.json",
        "train.jsonl",
    ]


def test_cli_missing_korquad_says_where_to_get_it(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("ODQA_DATA_DIR", str(tmp_path / "nodata"))
    rc, _, stderr = run_cli(["prepare-korquad", "--out", tmp_path / "kq"])
    assert rc == 2
    assert "korquad.github.io" in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "kq").exists()
