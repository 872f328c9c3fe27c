"""odqa.data: QA and document loaders, validation and repair, `odqa validate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from odqa.data import load_documents, load_qa, write_qa
from odqa.data.qa import nearest_occurrence
from odqa.errors import InputError
from odqa.io import read_jsonl

CONTEXT = "세종은 1443년 훈민정음을 창제하였다. 세종은 집현전을 두었다."


def flat(qid="q1", question="훈민정음을 만든 왕은?", context=CONTEXT, starts=(0,), texts=("세종",), **extra):
    rec = {
        "id": qid,
        "title": "세종",
        "context": context,
        "question": question,
        "answers": {"answer_start": list(starts), "text": list(texts)},
        "document_id": 7,
    }
    rec.update(extra)
    return rec


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


def write_lines(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


# ---------------------------------------------------------------- layouts


def test_squad_layout_is_flattened(tiny_squad):
    loaded = load_qa(tiny_squad)
    assert loaded.report.format == "squad"
    assert loaded.report.examples == 10
    by_id = {ex.id: ex for ex in loaded.examples}
    ex = by_id["tiny-2b"]
    assert ex.title == "세종"
    assert ex.answers["text"] == ["세종", "세종"]
    assert ex.answers["answer_start"][1] == ex.context.find("세종", 1)


@pytest.mark.parametrize("wrap", ["list", "data"])
def test_flat_json_list_and_data_object(tmp_path, wrap):
    records = [flat("a"), flat("b", texts=("1443년",), starts=(CONTEXT.find("1443년"),))]
    obj = records if wrap == "list" else {"version": "x", "data": records}
    loaded = load_qa(write_json(tmp_path / "qa.json", obj))
    assert loaded.report.format == "flat_json"
    assert [ex.id for ex in loaded.examples] == ["a", "b"]
    assert loaded.examples[0].document_id == "7"  # integers become strings


def test_jsonl_roundtrip_through_write_qa(tmp_path, tiny_qa):
    examples = load_qa(tiny_qa).examples
    out = tmp_path / "copy.jsonl"
    assert write_qa(out, examples) == 10
    again = load_qa(out).examples
    assert [e.to_dict() for e in again] == [e.to_dict() for e in examples]


def test_questions_without_answers_need_no_context(tmp_path):
    path = write_lines(tmp_path / "test.jsonl", [{"id": "t1", "question": "서울의 옛 이름은?"}])
    (ex,) = load_qa(path).examples
    assert not ex.is_answerable and ex.context == ""


def test_hf_dataset_and_datasetdict(tmp_path):
    import datasets

    records = [flat("a"), flat("b")]
    columns = {k: [r[k] for r in records] for k in records[0]}
    ds = datasets.Dataset.from_dict(columns)
    ds.save_to_disk(str(tmp_path / "single"))
    datasets.DatasetDict({"train": ds, "validation": ds.select([1])}).save_to_disk(str(tmp_path / "dict"))

    single = load_qa(tmp_path / "single")
    assert single.report.format == "hf_datasets"
    assert [ex.answers for ex in single.examples] == [{"answer_start": [0], "text": ["세종"]}] * 2
    assert [ex.id for ex in load_qa(tmp_path / "dict", split="validation").examples] == ["b"]
    with pytest.raises(InputError, match=r"choose a split.*\['train', 'validation'\]"):
        load_qa(tmp_path / "dict")
    with pytest.raises(InputError, match="no split 'test'"):
        load_qa(tmp_path / "dict", split="test")
    with pytest.raises(InputError, match="not a Hugging Face datasets folder"):
        load_qa(tmp_path)


# ---------------------------------------------------------------- validation


def test_offset_mismatch_is_an_error_naming_file_and_record(tmp_path):
    path = write_lines(tmp_path / "qa.jsonl", [flat("ok"), flat("bad-1", starts=(3,))])
    with pytest.raises(InputError) as err:
        load_qa(path)
    message = str(err.value)
    assert str(path) in message and "bad-1" in message and "answer_start 3" in message
    assert "\n" not in message


def test_fix_offsets_moves_to_nearest_and_drops_missing(tmp_path):
    second = CONTEXT.find("세종", 1)
    records = [
        flat("near-second", starts=(second + 3,)),  # closer to the second 세종
        flat("near-first", starts=(2,)),
        flat("mixed", starts=(0, 5), texts=("세종", "이순신")),  # one answer not in context
        flat("gone", texts=("이순신",)),  # example left without answers
        flat("blank-answer", starts=(0, 0), texts=("세종", "  ")),
    ]
    loaded = load_qa(write_lines(tmp_path / "qa.jsonl", records), fix_offsets=True)
    by_id = {ex.id: ex for ex in loaded.examples}
    assert by_id["near-second"].answers["answer_start"] == [second]
    assert by_id["near-first"].answers["answer_start"] == [0]
    assert by_id["mixed"].answers == {"answer_start": [0], "text": ["세종"]}
    assert by_id["blank-answer"].answers["text"] == ["세종"]
    assert "gone" not in by_id
    r = loaded.report
    assert (r.records, r.examples, r.answers_moved, r.answers_dropped, r.examples_dropped) == (5, 4, 2, 3, 1)
    counts = r.to_dict()["problem_counts"]
    assert counts == {"offset_moved": 2, "answer_not_found": 2, "no_answers_left": 1, "empty_answer": 1}


def test_duplicate_ids_and_empty_question(tmp_path):
    records = [flat("a"), flat("a", question="다른 질문?"), flat("b", question="  ")]
    path = write_lines(tmp_path / "qa.jsonl", records)
    with pytest.raises(InputError, match=r"\[record a\].*duplicate id"):
        load_qa(path)
    loaded = load_qa(path, fix_offsets=True)
    assert [ex.question for ex in loaded.examples] == ["훈민정음을 만든 왕은?"]
    assert loaded.report.to_dict()["problem_counts"] == {"duplicate_id": 1, "empty_question": 1}


def test_empty_context_with_answers(tmp_path):
    path = write_lines(tmp_path / "qa.jsonl", [flat("a", context="")])
    with pytest.raises(InputError, match="empty context"):
        load_qa(path)
    # a repair that drops every record is no repair: an error naming what went wrong, not an empty file
    with pytest.raises(
        InputError, match=r"every one of the 1 records would be dropped \({'empty_context': 1}\)"
    ):
        load_qa(path, fix_offsets=True)


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"question": "q?"}, "missing field 'id'"),
        ({"id": "x"}, "missing field 'question'"),
        ({"id": "x", "question": 3}, "'question' must be a string"),
        (
            {"id": "x", "question": "q", "context": "c", "answers": {"answer_start": [0, 1], "text": ["c"]}},
            "differ",
        ),
        (
            {"id": "x", "question": "q", "context": "c", "answers": {"answer_start": ["0"], "text": ["c"]}},
            "integers",
        ),
        ({"id": "x", "question": "q", "context": "c", "answers": [{"text": "c"}]}, "answers"),
    ],
)
def test_missing_or_mistyped_fields_are_errors_even_when_fixing(tmp_path, record, match):
    path = write_lines(tmp_path / "qa.jsonl", [record])
    with pytest.raises(InputError, match=match):
        load_qa(path, fix_offsets=True)


def test_squad_answer_without_start(tmp_path):
    squad = {
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {"context": "c", "qas": [{"id": "z", "question": "q", "answers": [{"text": "c"}]}]}
                ],
            }
        ]
    }
    with pytest.raises(InputError, match=r"\[record z\].*answer_start"):
        load_qa(write_json(tmp_path / "s.json", squad))


def test_hostile_files(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [{"id": "a",', encoding="utf-8")
    with pytest.raises(InputError, match="malformed JSON at line 1"):
        load_qa(broken)

    cp949 = tmp_path / "cp949.jsonl"
    cp949.write_bytes((json.dumps(flat(), ensure_ascii=False) + "\n").encode("cp949"))
    with pytest.raises(InputError, match="not UTF-8"):
        load_qa(cp949)

    bad_line = tmp_path / "bad_line.jsonl"
    bad_line.write_text(json.dumps(flat()) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"\[record line 2\]"):
        load_qa(bad_line)

    empty = write_json(tmp_path / "empty.json", [])
    with pytest.raises(InputError, match="no QA records"):
        load_qa(empty)
    with pytest.raises(InputError, match="file not found"):
        load_qa(tmp_path / "nope.json")
    with pytest.raises(InputError, match="not SQuAD nor flat"):
        load_qa(write_json(tmp_path / "obj.json", {"questions": []}))


def test_nearest_occurrence():
    assert nearest_occurrence("가나가나가", "가", 3) == 2  # ties keep the earlier
    assert nearest_occurrence("가나가나가", "가", 4) == 4
    assert nearest_occurrence("가나", "다", 0) is None


def test_real_korquad_is_valid(korquad_path):
    loaded = load_qa(korquad_path)
    assert loaded.report.examples == 5774
    assert loaded.report.problems == []
    assert len({ex.title for ex in loaded.examples}) == 140


# ---------------------------------------------------------------- documents


def test_wikipedia_documents_layout(tiny_documents):
    docs = load_documents(tiny_documents)
    assert [d.document_id for d in docs] == [str(i) for i in range(8)]
    assert docs[3].title == "한라산" and docs[3].text.startswith("'''한라산'''")
    assert docs[0].meta["corpus_source"] == "위키피디아" and "document_id" not in docs[0].meta


def test_document_list_jsonl_and_key_fallback(tmp_path):
    listed = load_documents(
        write_json(tmp_path / "d.json", [{"title": "가", "text": "본문"}, {"doc_id": "x", "text": "b"}])
    )
    assert [d.document_id for d in listed] == ["0", "x"]
    keyed = load_documents(
        write_json(tmp_path / "k.json", {"k1": {"title": "가", "text": "본문", "url": "u"}})
    )
    assert keyed[0].document_id == "k1" and keyed[0].meta == {"url": "u"}
    lines = load_documents(write_lines(tmp_path / "d.jsonl", [{"document_id": 5, "title": "t", "text": ""}]))
    assert lines[0].document_id == "5" and lines[0].text == ""


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({"0": {"title": "t"}}, "missing field 'text'"),
        ([{"document_id": 1, "text": "a"}, {"document_id": "1", "text": "b"}], "duplicate document id"),
        ({"0": "text only"}, "not a JSON object"),
        ([{"text": 5}], "must be strings"),
        ([], "no documents"),
        ("just a string", "expected a JSON object"),
    ],
)
def test_bad_documents(tmp_path, obj, match):
    with pytest.raises(InputError, match=match):
        load_documents(write_json(tmp_path / "docs.json", obj))


# ---------------------------------------------------------------- CLI


def test_cli_validate_fix_and_write(tmp_path, run_cli):
    path = write_lines(tmp_path / "qa.jsonl", [flat("a", starts=(5,)), flat("b", texts=("이순신",))])
    out = tmp_path / "fixed.jsonl"
    rc, stdout, _ = run_cli(["validate", "--data", path, "--fix-offsets", "--out", out])
    assert rc == 0
    report = json.loads(stdout)
    assert report["answers_moved"] == 1 and report["examples_dropped"] == 1
    assert [r["id"] for r in read_jsonl(out)] == ["a"]


def test_cli_validate_bad_input_one_line_exit_2_no_output(tmp_path, run_cli):
    path = write_lines(tmp_path / "qa.jsonl", [flat("a", starts=(5,))])
    out = tmp_path / "fixed.jsonl"
    rc, stdout, stderr = run_cli(["validate", "--data", path, "--out", out])
    assert rc == 2
    assert stderr.strip().count("\n") == 0
    assert stderr.startswith("odqa validate: error:") and "[record a]" in stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [path]


def test_json_over_the_size_limit_is_refused_with_advice(tmp_path, monkeypatch, run_cli):
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"data": []}) + " " * 2048, encoding="utf-8")
    monkeypatch.setenv("ODQA_MAX_JSON_BYTES", "1024")
    code, out, err = run_cli(["validate", "--data", str(big)])
    assert (
        code == 2
        and "big.json" in err
        and "convert it to JSONL" in err
        and len(err.strip().splitlines()) == 1
    )
    monkeypatch.setenv("ODQA_MAX_JSON_BYTES", str(1 << 20))
    assert "too large" not in run_cli(["validate", "--data", str(big)])[2]


def test_open_domain_gold_needs_no_context_nor_offsets(tmp_path):
    """{id, question, answers: {text}}: refused as reader data, accepted with open_domain=True."""
    path = write_lines(
        tmp_path / "gold.jsonl", [{"id": "g", "question": "누가?", "answers": {"text": ["세종"]}}]
    )
    with pytest.raises(InputError, match="differ in length"):
        load_qa(path)
    (example,) = load_qa(path, open_domain=True).examples
    assert example.answers == {"answer_start": [-1], "text": ["세종"]} and example.context == ""


def test_text_is_nfc_and_offsets_follow_the_context(tmp_path):
    """An NFD context (Hangul as jamo) holds its NFC answer once normalised, at the moved offset."""
    import unicodedata

    context = "조선의 왕 세종은 한글을 만들었다."
    start = context.index("한글")
    record = flat(
        "n",
        context=unicodedata.normalize("NFD", context),
        texts=("한글",),
        starts=(len(unicodedata.normalize("NFD", context[:start])),),
    )
    (example,) = load_qa(write_lines(tmp_path / "nfd.jsonl", [record])).examples
    assert example.context == context and example.answers == {"answer_start": [start], "text": ["한글"]}
