"""odqa.preprocess: cleaning, dedup, passage splitting with exact offsets, `odqa preprocess`."""

from __future__ import annotations

import json
import unicodedata

import pytest

from odqa.data import load_documents, load_qa
from odqa.errors import InputError
from odqa.io import read_json, read_jsonl
from odqa.preprocess import PreprocessConfig, clean_text, preprocess, split_passages
from odqa.schema import Passage


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("'''한라산'''은 ''휴화산''이다.", "한라산은 휴화산이다."),
        ("[[제주도]]에 있는 [[화산|휴화산]]", "제주도에 있는 휴화산"),
        ("[[파일:a.jpg|섬네일|한라산 사진]] 정상", "한라산 사진 정상"),
        ("높다.{{각주}} 끝{{인용|{{날짜|2020}}|제목}}", "높다. 끝"),
        ('높다.<ref name="a">출처 책, 12쪽</ref> 다음<ref name=b /> 문장', "높다. 다음 문장"),
        ("줄<br/>바꿈 <span style='x'>강조</span> <!-- 주석 -->끝", "줄 바꿈 강조 끝"),
        ("첫 줄\\n둘째 줄\\\\n셋째", "첫 줄\n둘째 줄\n셋째"),
        ("공백   여러\t\t개\u00a0와  \n\n  빈 줄", "공백 여러 개 와\n빈 줄"),
        ("AT&amp;T 와 &lt;b&gt;", "AT&T 와 <b>"),
        (unicodedata.normalize("NFD", "한글"), "한글"),
        # kept: text that only looks like markup
        ("x<y 이고 y>z 이다. 영화 <히든 싱어> 와 《책》", "x<y 이고 y>z 이다. 영화 <히든 싱어> 와 《책》"),
        ("그는 'A'라고 말했다. (1990년~2000년) [1] {a}", "그는 'A'라고 말했다. (1990년~2000년) [1] {a}"),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def _check_spans(text: str, spans: list[tuple[int, int]], max_chars: int) -> None:
    assert spans[0][0] == 0 and spans[-1][1] == len(text.rstrip())
    for (s1, e1), (s2, _) in zip(spans, spans[1:], strict=False):
        assert s1 < s2 <= e1  # moves forward, overlapping or touching: nothing is skipped
    for s, e in spans:
        assert 0 < e - s <= max_chars
        assert not text[s].isspace() and not text[e - 1].isspace()
        assert s == 0 or text[s - 1].isspace()  # starts at a word


def test_split_passages_overlap_and_boundaries():
    sentences = [f"{i}번째 문장은 여기에서 끝난다." for i in range(40)]
    text = " ".join(sentences)
    spans = split_passages(text, max_chars=120, overlap_chars=30)
    _check_spans(text, spans, 120)
    assert len(spans) > 5
    for (_, e1), (s2, _) in zip(spans, spans[1:], strict=False):
        assert 0 < e1 - s2 <= 30 + 20  # overlap about overlap_chars (rounded to a word start)
    assert all(text[e - 1] == "." for _, e in spans[:-1])  # cut at sentence ends


def test_split_without_spaces_cuts_hard():
    text = "가" * 250
    spans = split_passages(text, max_chars=100, overlap_chars=10)
    assert all(e - s <= 100 for s, e in spans)
    assert spans[-1][1] == 250
    assert all(s1 < s2 <= e1 for (s1, e1), (s2, _) in zip(spans, spans[1:], strict=False))


def test_short_text_is_one_passage():
    assert split_passages("짧은 문서.", 100, 10) == [(0, 6)]


def test_tiny_documents_stage(tiny_passages, tiny_documents, tiny_qa):
    passages = [Passage.from_dict(p) for p in read_jsonl(tiny_passages.passages_path)]
    aliases = read_json(tiny_passages.doc_aliases_path)
    report = tiny_passages.report
    assert aliases == {"4": "1", "5": "2"}  # exact copy, near copy (one word differs)
    assert report["dropped_empty"] == 1 and report["dropped_exact_duplicates"] == 1
    assert report["documents_kept"] == 5 and report["passages"] == 5
    assert [p.passage_id for p in passages] == ["0-0", "1-0", "2-0", "3-0", "7-0"]
    hallasan = next(p for p in passages if p.document_id == "3")
    assert hallasan.title == "한라산" and "'''" not in hallasan.text and "<ref>" not in hallasan.text
    assert not any(p.text.startswith(p.title + "\n") for p in passages)  # no title prefix in text
    # every gold answer survives cleaning and sits inside a passage of its (aliased) document
    for ex in load_qa(tiny_qa).examples:
        gold = aliases.get(ex.document_id, ex.document_id)
        assert any(ex.answers["text"][0] in p.text for p in passages if p.document_id == gold)
    assert (
        json.loads((tiny_passages.passages_path.parent / "preprocess_report.json").read_text())["passages"]
        == 5
    )


def test_offsets_map_back_after_splitting(tiny_documents, tmp_path):
    result = preprocess(PreprocessConfig(max_chars=80, overlap_chars=20), tiny_documents, tmp_path / "p")
    documents = {d.document_id: clean_text(d.text) for d in load_documents(tiny_documents)}
    passages = [Passage.from_dict(p) for p in read_jsonl(result.passages_path)]
    by_doc: dict[str, list[Passage]] = {}
    for p in passages:
        assert documents[p.document_id][p.start_char : p.start_char + len(p.text)] == p.text
        by_doc.setdefault(p.document_id, []).append(p)
    python = by_doc["7"]
    assert len(python) >= 5 and [p.passage_id for p in python] == [f"7-{i}" for i in range(len(python))]
    _check_spans(documents["7"], [(p.start_char, p.start_char + len(p.text)) for p in python], 80)


def test_exact_only_and_no_clean(tiny_documents, tmp_path):
    config = PreprocessConfig(near_duplicate_threshold=None, clean=False)
    result = preprocess(config, tiny_documents, tmp_path / "p")
    assert read_json(result.doc_aliases_path) == {"4": "1"}
    raw = next(p for p in read_jsonl(result.passages_path) if p["document_id"] == "3")
    assert raw["text"].startswith("'''한라산'''")


def test_short_and_empty_documents(tmp_path):
    docs = tmp_path / "docs.json"
    docs.write_text(
        json.dumps(
            [{"text": "짧다"}, {"text": " \\n "}, {"text": "충분히 긴 문서의 본문이 여기에 있습니다."}]
        )
    )
    result = preprocess(PreprocessConfig(min_chars=10), docs, tmp_path / "p")
    assert (result.report["dropped_short"], result.report["dropped_empty"], result.report["passages"]) == (
        1,
        1,
        1,
    )
    only_empty = tmp_path / "empty.json"
    only_empty.write_text(json.dumps({"0": {"title": "t", "text": ""}}))
    with pytest.raises(InputError, match="no document left"):
        preprocess(PreprocessConfig(), only_empty, tmp_path / "q")
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize(
    "kwargs",
    [{"max_chars": 10}, {"overlap_chars": 600}, {"overlap_chars": -1}, {"near_duplicate_threshold": 1.5}],
)
def test_bad_config(kwargs):
    with pytest.raises(InputError):
        PreprocessConfig(**kwargs)


def test_real_korquad_answers_survive(korquad_passages, korquad_split):
    """Defaults keep typical KorQuAD paragraphs whole and never cut a gold answer out of its document."""
    report = korquad_passages.report
    assert report["documents_kept"] + report["dropped_duplicates"] == 961
    assert report["passages"] < 1.1 * report["documents_kept"]
    passages = read_jsonl(korquad_passages.passages_path)
    aliases = read_json(korquad_passages.doc_aliases_path)
    assert all(v not in aliases for v in aliases.values())  # aliases point at kept documents
    texts: dict[str, list[str]] = {}
    for p in passages:
        texts.setdefault(p["document_id"], []).append(p["text"])
    for path in (korquad_split.train_path, korquad_split.eval_path):
        for ex in load_qa(path).examples:
            gold = aliases.get(ex.document_id, ex.document_id)
            assert any(ex.answers["text"][0] in t for t in texts[gold]), ex.id


def test_cli_preprocess(run_cli, tiny_documents, tmp_path):
    rc, stdout, _ = run_cli(
        [
            "preprocess",
            "--documents",
            tiny_documents,
            "--out",
            tmp_path / "p",
            "--max-chars",
            "200",
            "--overlap-chars",
            "20",
        ]
    )
    assert rc == 0
    assert json.loads(stdout)["documents_split"] == 1
    rc, _, stderr = run_cli(["preprocess", "--documents", tmp_path / "missing.json", "--out", tmp_path / "q"])
    assert rc == 2 and "file not found" in stderr and not (tmp_path / "q").exists()
    rc, _, stderr = run_cli(
        [
            "preprocess",
            "--documents",
            tiny_documents,
            "--out",
            tmp_path,
            "--max-chars",
            "100",
            "--overlap-chars",
            "20",
        ]
    )
    assert rc == 2 and "other files" in stderr  # would have replaced a folder holding other things


def test_processes_and_chunks_give_the_same_output(tiny_documents, tmp_path):
    """Documents cleaned, hashed and split in 2 worker processes, 2 documents a task, come out as in one
    process: same passages, aliases and report."""
    one = preprocess(PreprocessConfig(num_threads=1), tiny_documents, tmp_path / "one")
    two = preprocess(PreprocessConfig(num_threads=2, chunk_size=2), tiny_documents, tmp_path / "two")
    assert read_jsonl(two.passages_path) == read_jsonl(one.passages_path)
    assert read_json(two.doc_aliases_path) == read_json(one.doc_aliases_path) == {"4": "1", "5": "2"}
    strip = lambda r: {k: v for k, v in r.items() if k != "config"}  # noqa: E731
    assert strip(two.report) == strip(one.report)


def test_an_exact_copy_of_a_near_duplicate_points_at_the_kept_document(tmp_path):
    base = " ".join(f"{i}번째 문장은 제주도의 한라산과 바다에 관한 이야기이다." for i in range(30))
    near = base.replace("바다에", "하늘에", 1)
    docs = tmp_path / "docs.json"
    docs.write_text(
        json.dumps({"a": {"text": base}, "b": {"text": near}, "c": {"text": near}}), encoding="utf-8"
    )
    result = preprocess(PreprocessConfig(), docs, tmp_path / "p")
    assert read_json(result.doc_aliases_path) == {"b": "a", "c": "a"}
    assert result.report["dropped_exact_duplicates"] == 1


def test_a_bad_record_late_in_the_stream_leaves_the_output_untouched(tiny_documents, tmp_path):
    earlier = preprocess(PreprocessConfig(), tiny_documents, tmp_path / "p")
    before = earlier.passages_path.read_bytes()
    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        "".join(
            json.dumps({"document_id": str(i), "text": f"{i}번째 문서의 본문은 충분히 길다."}) + "\n"
            for i in range(5)
        )
        + json.dumps({"document_id": "9", "title": "t"})
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"docs\.jsonl \[record 9\]: missing field 'text'"):
        preprocess(PreprocessConfig(), docs, tmp_path / "p")
    assert earlier.passages_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.jsonl", "p"]  # no temp folder left
