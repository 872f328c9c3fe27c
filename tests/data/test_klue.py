"""KLUE distractor corpus, built from the real KLUE dev files (odqa.settings.klue_dir())."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from odqa.data.klue import (
    DistractorConfig,
    SourceSentence,
    build_distractor_passages,
    group_into_passages,
    read_ner_sentences,
    read_nli_premises,
    strip_ner_markup,
    write_corpus_with_distractors,
)
from odqa.errors import InputError
from odqa.io import read_jsonl, write_jsonl
from odqa.schema import Passage
from odqa.settings import klue_dir


def test_strip_ner_markup_keeps_entity_text_and_plain_brackets():
    tagged = "<경찰:OG>은 <박:PS>씨의 딸(<32:QT>)과 영화 <레이>를 봤다 <일:;LC> <19:QT>, 20기:QT>로"
    assert strip_ner_markup(tagged) == "경찰은 박씨의 딸(32)과 영화 <레이>를 봤다 일 19, 20기로"


def test_grouping_respects_sources_and_length():
    sentences = [
        SourceSentence("nli", "wikinews" if i % 2 else "airbnb", f"문장{i} " + "가" * 95) for i in range(20)
    ]
    passages = group_into_passages(sentences, passage_chars=300)
    for p in passages:
        assert (
            p.document_id.startswith("klue-nli-")
            and p.passage_id == f"{p.document_id}-0"
            and p.start_char == 0
        )
        assert len(p.text) < 300 + 101  # closes at the first sentence that reaches the target
    news = [p for p in passages if "wikinews" in p.document_id]
    assert all(
        "문장" + str(i) not in "".join(p.text for p in news) for i in range(0, 20, 2)
    )  # no airbnb mixed in
    assert (
        news[0].text.startswith("문장1 ") and "문장3 " in news[0].text
    )  # consecutive sentences of one source
    assert len({p.document_id for p in passages}) == len(passages)


def test_real_klue_distractors():
    passages = build_distractor_passages(DistractorConfig())
    sources = {p.document_id.rsplit("-", 1)[0] for p in passages}
    assert {"klue-nli-wikipedia", "klue-sts-airbnb_rtt", "klue-ner-wikitree"} <= sources
    assert len({p.document_id for p in passages}) == len(passages)
    lengths = sorted(len(p.text) for p in passages)
    assert 450 <= lengths[len(lengths) // 2] <= 700  # median near the 500-character target
    assert not any(":PS>" in p.text or ":QT>" in p.text for p in passages)
    premises = read_nli_premises(klue_dir() / "klue-nli-v1.1_dev.json")
    assert len(premises) == len({s.text for s in premises}) <= 1000  # three hypotheses per premise, kept once
    ner = read_ner_sentences(klue_dir() / "klue-ner-v1.1_dev.tsv")
    assert 4500 <= len(ner) <= 5000 and ner[0].text.startswith("경찰은 또 성매매")
    only_nli = build_distractor_passages(DistractorConfig(include_sts=False, include_ner=False))
    assert only_nli and all(p.document_id.startswith("klue-nli-") for p in only_nli)


def test_write_corpus_with_distractors(tmp_path: Path):
    originals = [
        Passage("kq-1-0", "kq-1", "서울", "서울은 대한민국의 수도이다."),
        Passage("kq-2-0", "kq-2", "부산", "부산은 항구 도시이다."),
    ]
    write_jsonl(tmp_path / "passages.jsonl", (p.to_dict() for p in originals))
    out = write_corpus_with_distractors(
        DistractorConfig(include_ner=False), tmp_path / "passages.jsonl", tmp_path / "all" / "passages.jsonl"
    )
    records = read_jsonl(out)
    assert [r["passage_id"] for r in records[:2]] == ["kq-1-0", "kq-2-0"]
    assert all(r["document_id"].startswith("klue-") for r in records[2:]) and len(records) > 50
    assert len({r["passage_id"] for r in records}) == len(records)


def test_bad_klue_files_are_input_errors(tmp_path: Path):
    (tmp_path / "klue-nli-v1.1_dev.json").write_text(
        json.dumps([{"guid": "x", "source": "a"}]), encoding="utf-8"
    )
    with pytest.raises(InputError, match=r"klue-nli-v1.1_dev.json \[record 0\]: missing"):
        build_distractor_passages(DistractorConfig(include_sts=False, include_ner=False), tmp_path)
    (tmp_path / "klue-ner-v1.1_dev.tsv").write_bytes(
        "## klue-ner-v1_dev_00000-wikitree\t\xff".encode("latin-1")
    )
    with pytest.raises(InputError, match="UTF-8"):
        read_ner_sentences(tmp_path / "klue-ner-v1.1_dev.tsv")
    with pytest.raises(InputError, match="file not found"):
        build_distractor_passages(DistractorConfig(include_nli=False), tmp_path)
