"""odqa.data.documents: every document layout read streaming, with the same checks for each."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from odqa.data.documents import iter_documents, load_documents, write_documents
from odqa.errors import InputError

RECORDS = [
    {"title": "한라산", "text": "한라산은 제주도에 있는 산이다.", "url": "u0"},
    {"title": "서울", "text": "서울은 대한민국의 수도이다.", "url": "u1"},
    {"title": "김치", "text": "", "url": "u2"},
]


def _write(path: Path, obj, bom: bool = False) -> Path:
    text = json.dumps(obj, ensure_ascii=False, indent=1)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def _summary(documents) -> list[tuple]:
    return [(d.document_id, d.title, d.text, d.meta) for d in documents]


EXPECTED = [(str(i), r["title"], r["text"], {"url": r["url"]}) for i, r in enumerate(RECORDS)]


def test_every_layout_reads_the_same_documents(tmp_path):
    import datasets

    keyed = _write(tmp_path / "wikipedia_documents.json", {str(i): r for i, r in enumerate(RECORDS)})
    listed = _write(tmp_path / "list.json", RECORDS, bom=True)
    lines = tmp_path / "docs.jsonl"
    lines.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS), encoding="utf-8")
    dataset = datasets.Dataset.from_list(RECORDS)
    dataset.save_to_disk(str(tmp_path / "ds"))
    datasets.DatasetDict({"train": dataset}).save_to_disk(str(tmp_path / "dsdict"))
    for path in (keyed, listed, lines, tmp_path / "ds", tmp_path / "dsdict"):
        assert _summary(iter_documents(path)) == EXPECTED, path
        assert _summary(load_documents(path)) == EXPECTED, path


def test_dataset_document_id_column_and_write_round_trip(tmp_path):
    import datasets

    rows = [
        {"document_id": 7, "title": "가", "text": "본문"},
        {"document_id": 9, "title": "나", "text": "둘"},
    ]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    docs = load_documents(tmp_path / "ds")
    assert [d.document_id for d in docs] == ["7", "9"] and docs[0].meta == {}
    write_documents(tmp_path / "out.jsonl", docs)
    assert _summary(load_documents(tmp_path / "out.jsonl")) == _summary(docs)


def test_dataset_dict_with_several_splits_names_them(tmp_path):
    import datasets

    one = datasets.Dataset.from_list(RECORDS)
    datasets.DatasetDict({"train": one, "validation": one}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(InputError, match=r"\['train', 'validation'\]"):
        load_documents(tmp_path / "dd")
    datasets.Dataset.from_list([{"title": "t", "body": "x"}]).save_to_disk(str(tmp_path / "notext"))
    with pytest.raises(InputError, match="no column 'text'"):
        load_documents(tmp_path / "notext")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="not a Hugging Face datasets folder"):
        load_documents(tmp_path / "empty_dir")


def test_records_come_one_at_a_time_and_errors_name_the_record(tmp_path):
    path = _write(
        tmp_path / "d.json", {"a": RECORDS[0], "b": RECORDS[1], "a2": {"document_id": "a", "text": "x"}}
    )
    documents = iter_documents(path)
    assert next(documents).document_id == "a"  # read before the bad record is reached
    assert next(documents).document_id == "b"
    with pytest.raises(InputError, match=r"d\.json \[record a\]: duplicate document id 'a'"):
        next(documents)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"0": {"text": "a"}, "1": {"text": ', r"malformed JSON after record 0: "),
        ('[{"text": "a"}, }', r"malformed JSON after record 0: "),
        ('{"0": {"title": "t"}}', r"\[record 0\]: missing field 'text'"),
        ('"just a string"', "expected a JSON object keyed by id or a JSON list"),
        ("", "expected a JSON object"),
        ("[]", "no documents found"),
        ('[{"text": "a", "title": 3}]', r"\[record 0\]: 'text' and 'title' must be strings"),
    ],
)
def test_bad_whole_json_is_one_line_naming_file_and_record(tmp_path, content, match):
    path = tmp_path / "docs.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=match) as caught:
        load_documents(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_not_utf8_and_missing_files(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"0": {"text": "caf\u00e9"}}'.encode("latin-1"))
    with pytest.raises(InputError, match="UTF-8|malformed JSON"):
        load_documents(path)
    with pytest.raises(InputError, match="file not found"):
        iter_documents(tmp_path / "missing.json")  # refused at once, not at the first record


_CAPPED_READER = textwrap.dedent(
    """
    import json, resource, sys
    from odqa.data.documents import iter_documents

    path, cap_mb, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open("/proc/self/status") as f:
        vm_kb = int(next(line for line in f if line.startswith("VmSize:")).split()[1])
    cap = vm_kb * 1024 + cap_mb * 2**20  # what the interpreter holds now, plus cap_mb
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        if mode == "stream":
            count = chars = 0
            last = None
            for doc in iter_documents(path):
                count, chars, last = count + 1, chars + len(doc.text), doc.document_id
            print(json.dumps({"count": count, "chars": chars, "last": last}))
        else:
            with open(path, encoding="utf-8") as f:
                print(json.dumps({"count": len(json.load(f))}))
    except MemoryError:
        print(json.dumps({"memory_error": True}))
    """
)


def test_whole_json_larger_than_a_memory_cap_streams(tmp_path):
    """A 60 MB wikipedia_documents.json read under a 16 MB address-space cap (above what the
    interpreter already holds): streaming returns every record; json.load under the same cap fails."""
    cap_mb, n_docs = 16, 24_000
    body = "세종대왕은 1443년에 훈민정음을 창제하였다. " * 40  # about 1,000 characters, 2.5 KB in UTF-8
    path = tmp_path / "wikipedia_documents.json"
    with open(path, "w", encoding="utf-8") as f:
        f.write("{")
        for i in range(n_docs):
            record = {"title": f"문서 {i}", "text": f"{i} {body}", "corpus_source": "위키피디아"}
            f.write(("," if i else "") + json.dumps(str(i)) + ":" + json.dumps(record, ensure_ascii=False))
        f.write("}")
    assert path.stat().st_size > 3 * cap_mb * 2**20
    expected_chars = sum(len(f"{i} {body}") for i in range(n_docs))

    def run(mode: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-c", _CAPPED_READER, str(path), str(cap_mb), mode],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert run("stream") == {"count": n_docs, "chars": expected_chars, "last": str(n_docs - 1)}
    assert run("json.load") == {"memory_error": True}  # the cap is real: the whole file does not fit
