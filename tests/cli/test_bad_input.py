"""The README's promise, checked command by command through the real `odqa` executable: bad input
"stops with one line naming the file and the record, exit status 2, and no half-written output".

Every row of BAD_INPUTS runs `odqa ...` as a subprocess in a fresh folder and asserts: exit status 2,
exactly one line on stderr, no traceback, the named file/record/flag in that line, and the watched
output location (a user's file or folder included) byte-identical before and after. GOOD_INPUTS holds
the neighbouring cases that must now succeed (open-domain gold, NFD contexts, warnings instead of
errors). No case trains a model: the reader folders are fakes that fail before any model is loaded.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# About 2 s per case (a fresh interpreter each): not for the unit edit loop, always in `make test`.
pytestmark = pytest.mark.integration

ODQA = Path(sys.executable).with_name("odqa")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@dataclass
class Ctx:
    """Small inputs shared by every case (built once per module, never written by a case)."""

    qa: Path
    squad: Path
    passages: Path
    index: Path
    retrieved: Path
    no_passages: Path
    predictions: Path
    open_gold: Path


@dataclass
class Case:
    """argv, the path whose bytes must not change, and what the one stderr line must name."""

    argv: list[str]
    watched: Path
    needles: list[str]
    cwd: Path | None = None
    pipe: str = ""  # a shell pipe after the command, e.g. "| head -1"
    max_seconds: float | None = None
    env: dict[str, str] = field(default_factory=dict)


def run_odqa(argv: list[str], cwd: Path, pipe: str = "", env: dict | None = None):
    full_env = {**os.environ, "ODQA_PROGRESS_INTERVAL": "30", **(env or {})}
    if pipe:
        command = f"{shlex.quote(str(ODQA))} {shlex.join(argv)} {pipe}; echo rc=${{PIPESTATUS[0]}} >&2"
        return subprocess.run(
            ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, env=full_env, timeout=120
        )
    return subprocess.run(
        [str(ODQA), *argv], cwd=cwd, capture_output=True, text=True, env=full_env, timeout=120
    )


def snapshot(path: Path) -> object:
    """Names and bytes of a file or folder tree (None when absent)."""
    if path.is_symlink() or path.is_file():
        return ("file", path.read_bytes())
    if not path.exists():
        return None
    return sorted(
        (str(p.relative_to(path)), p.read_bytes() if p.is_file() else b"<dir>") for p in path.rglob("*")
    )


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, tiny_qa, tiny_squad, tiny_passages) -> Ctx:
    from odqa.io import write_json, write_jsonl
    from odqa.retrieval.base import build_index
    from odqa.retrieval.search import retrieve

    root = tmp_path_factory.mktemp("bad_input")
    index = build_index("bm25", {"analyzer": "whitespace"}, tiny_passages.passages_path, root / "index")
    retrieved = retrieve(index, tiny_qa, root / "retrieved.jsonl", top_k=2)
    rows = [json.loads(line) for line in retrieved.read_text(encoding="utf-8").splitlines()]
    write_jsonl(root / "no_passages.jsonl", ({**r, "passages": []} for r in rows))
    write_json(root / "predictions.json", {r["id"]: "한양" for r in rows})
    write_jsonl(
        root / "open_gold.jsonl",
        ({"id": r["id"], "question": r["question"], "answers": {"text": ["한양"]}} for r in rows),
    )
    return Ctx(
        tiny_qa,
        tiny_squad,
        tiny_passages.passages_path,
        index,
        retrieved,
        root / "no_passages.jsonl",
        root / "predictions.json",
        root / "open_gold.jsonl",
    )


# ---------------------------------------------------------------- helpers that make a case's folder


def user_folder(d: Path, name: str = "mine") -> Path:
    """A user's folder: a README and a subfolder with a file (nothing odqa wrote)."""
    folder = d / name
    (folder / "sub").mkdir(parents=True)
    (folder / "README.md").write_text("my notes\n")
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return folder


def user_file(d: Path, name: str = "important.txt") -> Path:
    path = d / name
    path.write_text("do not lose me\n")
    return path


def folder_with_file(d: Path) -> Path:
    folder = d / "D"
    folder.mkdir()
    (folder / "thesis.tex").write_text("\\section{x}\n")
    return folder


def legacy_reader(d: Path) -> Path:
    folder = d / "reader"
    folder.mkdir()
    (folder / "odqa_reader.json").write_text('{"max_length": 384}\n')
    (folder / "config.json").write_text("{}\n")
    return folder


def fake_reader(d: Path, model: bytes | None, config: str | None) -> Path:
    """A reader folder with odqa_reader.json and the given model/config bytes (None: file absent)."""
    folder = d / "reader"
    folder.mkdir()
    (folder / "odqa_reader.json").write_text('{"max_length": 128, "doc_stride": 32}\n')
    if model is not None:
        (folder / "model.safetensors").write_bytes(model)
    if config is not None:
        (folder / "config.json").write_text(config)
    return folder


def edited_index(ctx: Ctx, d: Path) -> Path:
    """The module's index copied, with retriever.json edited to another analyzer."""
    import shutil

    index = d / "index"
    shutil.copytree(ctx.index, index)
    saved = json.loads((index / "retriever.json").read_text())
    saved["analyzer"] = "bigram"
    (index / "retriever.json").write_text(json.dumps(saved))
    return index


def nbest(d: Path, name: str, ids: list[str]) -> Path:
    path = d / name
    path.write_text(
        json.dumps(
            {q: [{"text": "한양", "start_logit": 1.0, "end_logit": 1.0}] for q in ids}, ensure_ascii=False
        )
    )
    return path


def index_args(ctx: Ctx, out: Path | str, *extra: str) -> list[str]:
    return ["index", "--kind", "bm25", "--analyzer", "whitespace", "--passages", str(ctx.passages), "--out", str(out), *extra]  # fmt: skip


# ---------------------------------------------------------------- the table


def _index_onto(make: Callable[[Path], Path], *needles: str) -> Callable[[Ctx, Path], Case]:
    def build(ctx: Ctx, d: Path) -> Case:
        target = make(d)
        return Case(index_args(ctx, target), target, [target.name, *needles])

    return build


def _bm25_option(option: str, *needles: str) -> Callable[[Ctx, Path], Case]:
    def build(ctx: Ctx, d: Path) -> Case:
        return Case(index_args(ctx, d / "idx", "--option", option), d, ["--option", *needles])

    return build


def _file_out_onto_folder(command: Callable[[Ctx, Path], list[str]]) -> Callable[[Ctx, Path], Case]:
    def build(ctx: Ctx, d: Path) -> Case:
        folder = folder_with_file(d)
        return Case([*command(ctx, folder)], folder, [str(folder.name), "is a folder"])

    return build


def _evaluate(predictions: dict, *extra: str, needles=()) -> Callable[[Ctx, Path], Case]:
    def build(ctx: Ctx, d: Path) -> Case:
        pred = d / "pred.json"
        pred.write_text(json.dumps(predictions, ensure_ascii=False))
        argv = [
            "evaluate",
            "--data",
            str(ctx.qa),
            "--predictions",
            str(pred),
            "--out",
            str(d / "m.json"),
            *extra,
        ]
        return Case(argv, d, ["pred.json", *needles])

    return build


def _serve_fp16_without_cuda(ctx, d: Path) -> Case:
    import torch

    if torch.cuda.is_available():  # then fp16 is a valid choice and the server would start
        pytest.skip("this machine has CUDA")
    argv = ["serve", "--tracking-uri", f"sqlite:///{d}/mlflow.db", "--port", "0", "--precision", "fp16"]
    return Case(argv, d, ["--precision", "fp16", "CUDA"])


def _nfd_all_dropped(ctx: Ctx, d: Path) -> Case:
    """Every answer missing from its context: --fix-offsets would drop every record."""
    data = d / "bad.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"x{i}",
                    "question": "q?",
                    "context": "가나다",
                    "answers": {"answer_start": [0], "text": ["없음"]},
                },
                ensure_ascii=False,
            )
            + "\n"  # fmt: skip
            for i in range(3)
        )
    )
    return Case(["validate", "--data", str(data), "--fix-offsets", "--out", str(d / "fixed.jsonl")], d, ["bad.jsonl", "dropped", "record x0"])  # fmt: skip


def _predict(retrieved: Callable[[Ctx, Path], Path], reader=None, *extra, needles=()) -> Callable:
    def build(ctx: Ctx, d: Path) -> Case:
        folder = reader(d) if reader else (d / "reader")
        folder.mkdir(exist_ok=True)
        source = retrieved(ctx, d)
        argv = [
            "predict",
            "--reader",
            str(folder),
            "--retrieved",
            str(source),
            "--out",
            str(d / "pred"),
            *extra,
        ]
        return Case(argv, d, list(needles))

    return build


def _pipeline(action: list[str], *needles: str, seconds: float | None = None) -> Callable[[Ctx, Path], Case]:
    def build(ctx: Ctx, d: Path) -> Case:
        argv = ["pipeline", *[a.replace("{d}", str(d)) for a in action]]
        return Case(argv, d, list(needles), max_seconds=seconds)

    return build


def _ensemble_weights(d: Path, weights: list[str], needles: list[str]) -> Case:
    """Two one-question members with the given --weights; nothing may be written to d."""
    members = [str(nbest(d, "a.json", ["q"])), str(nbest(d, "b.json", ["q"]))]
    return Case(["ensemble", "--nbest", *members, "--weights", *weights, "--out", str(d / "e")], d, needles)


BAD_INPUTS: dict[str, Callable[[Ctx, Path], Case] | tuple] = {
    # --out: a user's file or folder is never replaced (folders only with --force, files never)
    "train --out folder holding a user's file": lambda ctx, d: (
        lambda D: Case(["train", "--train", str(ctx.qa), "--out", str(D)], D, ["D", "--force"])
    )(folder_with_file(d)),
    "index --out folder holding a user's file": _index_onto(folder_with_file, "--force"),
    "index --out folder with a README and a subfolder": _index_onto(
        user_folder, "other files (README.md, sub)", "--force"
    ),
    "index --out a reader folder": _index_onto(legacy_reader, "odqa reader output"),
    "index --out important.txt": _index_onto(user_file, "not a folder"),
    "index --out important.txt --force": lambda ctx, d: (
        lambda f: Case(index_args(ctx, f, "--force"), f, ["important.txt", "not a folder"])
    )(user_file(d)),
    "index --out . (the current folder)": lambda ctx, d: (
        user_file(d),
        Case(index_args(ctx, "."), d, ["current folder"], cwd=d),
    )[1],
    "index --out .. --force (a parent)": lambda ctx, d: (
        user_file(d),
        (d / "sub").mkdir(),
        Case(index_args(ctx, "..", "--force"), d, ["current folder"], cwd=d / "sub"),
    )[2],
    "preprocess --out a user's folder": lambda ctx, d: (
        lambda D: Case(
            ["preprocess", "--documents", str(ctx.passages.parent.parent / "x"), "--out", str(D)], D, ["mine"]
        )  # fmt: skip
    )(user_folder(d)),
    "prepare-korquad --out a user's folder": lambda ctx, d: (
        lambda D: Case(
            ["prepare-korquad", "--squad", str(ctx.squad), "--out", str(D)], D, ["mine", "--force"]
        )
    )(user_folder(d)),
    "ensemble --out a user's folder": lambda ctx, d: (
        lambda D: Case(["ensemble", "--nbest", str(nbest(d, "a.json", ["q"])), "--out", str(D)], D, ["mine"])
    )(user_folder(d)),
    "predict --out a user's folder": lambda ctx, d: (
        lambda D: Case(
            [
                "predict",
                "--reader",
                str(legacy_reader(d)),
                "--retrieved",
                str(ctx.retrieved),
                "--out",
                str(D),
            ],
            D,
            ["mine"],
        )  # fmt: skip
    )(user_folder(d)),
    "eval-retrieval --out an existing file": lambda ctx, d: (
        lambda f: Case(
            ["eval-retrieval", "--retrieved", str(ctx.retrieved), "--data", str(ctx.qa), "--out", str(f)],
            f,
            ["important.txt", "not a folder"],
        )  # fmt: skip
    )(user_file(d)),
    # file outputs onto folders
    "validate --out an existing folder": _file_out_onto_folder(
        lambda ctx, D: ["validate", "--data", str(ctx.qa), "--out", str(D)]
    ),
    "retrieve --out an existing folder": _file_out_onto_folder(
        lambda ctx, D: ["retrieve", "--index", str(ctx.index), "--data", str(ctx.qa), "--out", str(D)]
    ),
    "augment --out an existing folder": _file_out_onto_folder(
        lambda ctx, D: ["augment", "--qa", str(ctx.qa), "--out", str(D)]
    ),
    "evaluate --out an existing folder": _file_out_onto_folder(
        lambda ctx, D: [
            "evaluate",
            "--data",
            str(ctx.qa),
            "--predictions",
            str(ctx.predictions),
            "--out",
            str(D),
        ]  # fmt: skip
    ),
    "validate --out .": lambda ctx, d: (
        user_file(d),
        Case(["validate", "--data", str(ctx.qa), "--out", "."], d, ["is a folder"], cwd=d),
    )[1],
    # data
    "validate --fix-offsets dropping every record": _nfd_all_dropped,
    "validate --data a missing file": lambda ctx, d: Case(
        ["validate", "--data", str(d / "nope.json")], d, ["nope.json", "not found"]
    ),  # fmt: skip
    "evaluate --predictions a folder": lambda ctx, d: (
        lambda D: Case(
            ["evaluate", "--data", str(ctx.qa), "--predictions", str(D), "--out", str(d / "m.json")],
            d,
            ["D", "is a folder, expected a file"],
        )  # fmt: skip
    )(folder_with_file(d)),
    "predict on questions without passages": _predict(
        lambda ctx, d: ctx.no_passages, needles=["no_passages.jsonl", "passage"]
    ),  # fmt: skip
    "predict --retrieved a QA file": _predict(
        lambda ctx, d: ctx.qa, needles=["tiny_qa.jsonl", "line 1", "passages"]
    ),  # fmt: skip
    "predict --reader a file": lambda ctx, d: Case(
        ["predict", "--reader", str(user_file(d)), "--retrieved", str(ctx.retrieved), "--out", str(d / "p")],
        d,
        ["important.txt", "--reader"],
    ),  # fmt: skip
    "predict --top-k-passages -1": _predict(
        lambda ctx, d: ctx.retrieved, None, "--top-k-passages", "-1", needles=["--top-k-passages"]
    ),  # fmt: skip
    "predict with an empty reader folder": _predict(
        lambda ctx, d: ctx.retrieved,
        lambda d: d / "empty_reader",
        needles=["empty_reader", "odqa_reader.json"],
    ),
    "predict with a truncated model.safetensors": _predict(
        lambda ctx, d: ctx.retrieved,
        lambda d: fake_reader(d, b"\x10\x00\x00\x00\x00\x00\x00\x00{", '{"model_type": "bert"}'),
        needles=["reader", "damaged reader"],
    ),
    "predict with a malformed config.json": _predict(
        lambda ctx, d: ctx.retrieved,
        lambda d: fake_reader(d, b"", "{not json"),
        needles=["config.json", "malformed JSON"],
    ),
    # flag values, checked before any work
    "index --option k1=abc": _bm25_option("k1=abc", "k1"),
    "index --option k1=nan": _bm25_option("k1=nan", "k1", "finite"),
    "index --option k1=-1": _bm25_option("k1=-1", "k1"),
    "index --option b=2": _bm25_option("b=2", "b"),
    "index --option method=nope": _bm25_option("method=nope", "method"),
    "index --kind nope (argparse)": lambda ctx, d: Case(
        ["index", "--kind", "nope", "--out", str(d / "i")], d, ["--kind", "nope"]
    ),  # fmt: skip
    "retrieve --top-k 0": lambda ctx, d: Case(
        [
            "retrieve",
            "--index",
            str(ctx.index),
            "--data",
            str(ctx.qa),
            "--top-k",
            "0",
            "--out",
            str(d / "r.jsonl"),
        ],
        d,
        ["--top-k"],
    ),  # fmt: skip
    "retrieve with retriever.json edited to another analyzer": lambda ctx, d: (
        lambda index: Case(
            ["retrieve", "--index", str(index), "--data", str(ctx.qa), "--out", str(d / "r.jsonl")],
            d / "r.jsonl",
            ["retriever.json", "rebuild"],
        )  # fmt: skip
    )(edited_index(ctx, d)),
    "ensemble --weights 1 nan": lambda ctx, d: _ensemble_weights(d, ["1", "nan"], ["--weights", "finite"]),
    "ensemble --weights 1 (two members)": lambda ctx, d: _ensemble_weights(
        d, ["1"], ["--weights", "2 ensemble members"]
    ),
    "evaluate --strict with unknown ids": _evaluate(
        {"tiny-0": "한양", "zzz": "x"}, "--strict", needles=["--strict", "zzz"]
    ),  # fmt: skip
    "evaluate --strict with {}": _evaluate({}, "--strict", needles=["--strict", "no prediction"]),
    "pipeline schedule --cron with 61 seconds": _pipeline(
        ["schedule", "--host", "http://127.0.0.1:9", "--cron", "61 0 3 * * *"], "--cron", "seconds"
    ),  # fmt: skip
    "pipeline schedule --cron with month 13": _pipeline(
        ["schedule", "--host", "http://127.0.0.1:9", "--cron", "0 0 3 * 13 *"], "--cron", "month"
    ),  # fmt: skip
    "pipeline schedule --cron with 5 fields": _pipeline(
        ["schedule", "--host", "http://127.0.0.1:9", "--cron", "0 3 * * *"], "--cron", "6"
    ),  # fmt: skip
    # the pipeline's data layout (odqa prepare-data runs the prepare_data stage alone)
    "prepare-data --train-uri without --corpus-uri": lambda ctx, d: Case(
        ["prepare-data", "--train-uri", str(ctx.qa), "--out", str(user_folder(d))],
        d,
        ["train_uri", "corpus_uri"],
    ),  # fmt: skip
    "prepare-data --test-uri holding answers": lambda ctx, d: Case(
        [
            "prepare-data",
            "--corpus-uri",
            str(FIXTURES / "tiny_documents.json"),
            "--train-uri",
            str(ctx.qa),
            "--eval-uri",
            str(ctx.qa),
            "--test-uri",
            str(ctx.qa),
            "--out",
            str(d / "data"),
        ],
        d,
        ["tiny_qa.jsonl", "holds answers"],
    ),  # fmt: skip
    "prepare-data --eval-split on a JSONL file": lambda ctx, d: Case(
        [
            "prepare-data",
            "--corpus-uri",
            str(FIXTURES / "tiny_documents.json"),
            "--train-uri",
            str(ctx.qa),
            "--eval-uri",
            str(ctx.qa),
            "--eval-split",
            "dev",
            "--out",
            str(d / "data"),
        ],
        d,
        ["eval_split", "DatasetDict"],
    ),  # fmt: skip
    "answer with a registry that does not exist": lambda ctx, d: Case(
        [
            "answer",
            "--model",
            "models:/odqa@champion",
            "--tracking-uri",
            f"sqlite:///{d}/mlflow.db",
            "--questions",
            str(ctx.qa),
            "--out",
            str(d / "answers"),
        ],
        d,
        ["--tracking-uri", "no MLflow database"],
    ),  # fmt: skip
    "serve --precision fp16 on a machine without CUDA": _serve_fp16_without_cuda,
    # services that do not answer: one line, in seconds
    "pipeline submit to an unreachable host": _pipeline(
        ["submit", "--host", "http://127.0.0.1:9"], "http://127.0.0.1:9", seconds=30
    ),  # fmt: skip
    "pipeline schedule to an unreachable host": _pipeline(
        ["schedule", "--host", "http://127.0.0.1:9", "--cron", "0 0 3 * * *"],
        "http://127.0.0.1:9",
        seconds=30,
    ),  # fmt: skip
    "pipeline run --local against an unreachable MLflow": _pipeline(
        ["run", "--local", "--runs-dir", "{d}/runs", "--tracking-uri", "http://127.0.0.1:9"],
        "127.0.0.1:9",
        "--tracking-uri",
        seconds=30,
    ),  # fmt: skip
}


def _params() -> list:
    params = []
    for name, entry in BAD_INPUTS.items():
        build, *marks = entry if isinstance(entry, tuple) else (entry,)
        params.append(pytest.param(build, id=name, marks=marks))
    return params


@pytest.mark.parametrize("build", _params())
def test_bad_input_is_one_line_exit_2_and_nothing_lost(build, ctx, tmp_path):
    """Each bad input: exit 2, one stderr line naming what is wrong, the watched output untouched."""
    case = build(ctx, tmp_path)
    before = snapshot(case.watched)
    started = time.monotonic()
    result = run_odqa(case.argv, case.cwd or tmp_path, case.pipe, case.env)
    seconds = time.monotonic() - started
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("odqa "), line
    assert not line.rstrip(" .").endswith((" at", ":")), line
    for needle in case.needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert snapshot(case.watched) == before
    if case.max_seconds is not None:
        assert seconds < case.max_seconds


def test_table_size():
    """The report quotes this number; the table must not shrink silently."""
    assert len(BAD_INPUTS) >= 45


def test_broken_pipe_is_quiet(ctx, tmp_path):
    """`odqa validate ... | head -1`: no traceback, no 'Exception ignored' line; exit 0 or 2."""
    big = tmp_path / "big.jsonl"
    rows = [json.loads(line) for line in ctx.qa.read_text(encoding="utf-8").splitlines()]
    with open(big, "w", encoding="utf-8") as f:
        for i in range(3000):  # a report long enough to fill the pipe
            f.write(json.dumps({**rows[i % len(rows)], "id": f"r{i}", "answers": {"answer_start": [0], "text": ["없는답"]}}, ensure_ascii=False) + "\n")  # fmt: skip
    result = run_odqa(["validate", "--data", str(big), "--fix-offsets", "--max-problems", "100000"], tmp_path, pipe="| head -c 10 >/dev/null")  # fmt: skip
    rc_lines = [x for x in result.stderr.splitlines() if x.startswith("rc=")]
    assert rc_lines and rc_lines[-1] in ("rc=0", "rc=2"), result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr


# ---------------------------------------------------------------- what must now succeed


def test_nfd_contexts_with_nfc_answers_are_kept(ctx, tmp_path):
    """Contexts in NFD (Hangul as jamo) and answers in NFC: all records are kept, in NFC."""
    rows = [json.loads(line) for line in ctx.qa.read_text(encoding="utf-8").splitlines()]
    nfd = tmp_path / "nfd.jsonl"
    nfd.write_text("".join(json.dumps({**r, "context": unicodedata.normalize("NFD", r["context"])}, ensure_ascii=False) + "\n" for r in rows))  # fmt: skip
    out = tmp_path / "fixed.jsonl"
    result = run_odqa(["validate", "--data", str(nfd), "--fix-offsets", "--out", str(out)], tmp_path)
    assert result.returncode == 0, result.stderr
    fixed = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(fixed) == len(rows)
    for row, got in zip(rows, fixed, strict=True):
        assert got["context"] == unicodedata.normalize("NFC", row["context"])
        for start, text in zip(got["answers"]["answer_start"], got["answers"]["text"], strict=True):
            assert got["context"][start : start + len(text)] == text


def test_open_domain_gold_is_accepted_by_retrieve_and_evaluate(ctx, tmp_path):
    """{id, question, answers: {text}} without context nor answer_start: enough for both stages."""
    retrieved = tmp_path / "r.jsonl"
    result = run_odqa(["retrieve", "--index", str(ctx.index), "--data", str(ctx.open_gold), "--out", str(retrieved)], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(retrieved.read_text(encoding="utf-8").splitlines()) == 10
    result = run_odqa(["evaluate", "--data", str(ctx.open_gold), "--predictions", str(ctx.predictions), "--out", str(tmp_path / "m.json")], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["exact_match"] == 100.0


@pytest.mark.parametrize(
    ("predictions", "unknown", "missing"),
    [({"tiny-0": "한양", "zzz": "x"}, 1, 9), ({}, 0, 10)],
    ids=["unknown ids", "empty {}"],
)
def test_evaluate_counts_and_warns_about_ids(ctx, tmp_path, predictions, unknown, missing):
    """Without --strict, unknown and missing ids are counted in metrics.json and warned about."""
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(predictions))
    result = run_odqa(["evaluate", "--data", str(ctx.qa), "--predictions", str(pred), "--out", str(tmp_path / "m.json")], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert (metrics["unknown_ids"], metrics["missing_ids"]) == (unknown, missing)
    assert "WARNING" in result.stderr and "no prediction" in result.stderr


def test_ensemble_warns_on_disjoint_and_empty_members(tmp_path):
    """Members that answer different questions, or none, are named in a warning; scores stay finite."""
    a, b = nbest(tmp_path, "a.json", ["q1"]), nbest(tmp_path, "b.json", ["q2"])
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    result = run_odqa(["ensemble", "--nbest", str(a), str(b), str(empty), "--out", str(tmp_path / "e")], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "empty.json: empty n-best file" in result.stderr
    assert "a.json: answers 1 of the 2 questions" in result.stderr
    text = (tmp_path / "e" / "nbest.json").read_text()
    assert "NaN" not in text and "Infinity" not in text


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "must be > 0.0"), ("nan", "must be a finite number"), ("-1", "must be > 0.0")],
)
def test_ensemble_refuses_a_pick_temperature_that_is_not_positive_and_finite(tmp_path, value, message):
    """One line naming the flag, exit 2, no output folder."""
    a = nbest(tmp_path, "a.json", ["q1"])
    out = tmp_path / "e"
    result = run_odqa(["ensemble", "--nbest", str(a), "--out", str(out), "--pick-temperature", value], tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"odqa ensemble: error: --pick-temperature: {message}, got '{value}'"
    ]
    assert not out.exists()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"text": 5}, "n-best 'text' must be a string, got 5"),
        ({"text": "한양", "log_score": "x"}, "n-best 'log_score' must be a finite number, got 'x'"),
        (
            {"text": "한양", "start_logit": float("nan")},
            "n-best 'start_logit' must be a finite number, got nan",
        ),
    ],
)
def test_ensemble_refuses_an_nbest_entry_it_cannot_read(tmp_path, entry, message):
    """A member's entry whose text is no string or whose score is no finite number: one line naming the
    file and question, exit 2, no output folder (combine would normalise the text and rank by the score)."""
    member = tmp_path / "a.json"
    text = json.dumps({"q1": [entry]})
    member.write_text(text)
    out = tmp_path / "e"
    result = run_odqa(["ensemble", "--nbest", str(member), "--out", str(out)], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"odqa ensemble: error: {member} [record q1]: {message}"]
    assert not out.exists() and member.read_text() == text


def test_force_replaces_a_user_folder_and_same_kind_needs_no_force(ctx, tmp_path):
    """--force is the one way to replace a user's folder; an earlier index is replaced without it."""
    mine = user_folder(tmp_path)
    result = run_odqa(index_args(ctx, mine, "--force"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert (mine / "retriever.json").is_file() and not (mine / "README.md").exists()
    result = run_odqa(index_args(ctx, mine), tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.integration
def test_a_failing_stage_of_a_local_run_ends_with_its_own_error(tmp_path):
    """`pipeline run --local` with data the first stage refuses: the last stderr line names the stage,
    the stage's own one-line error and the log, with no orchestrator traceback (about 25 s)."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": 5}')
    result = run_odqa(["pipeline", "run", "--local", "--runs-dir", str(tmp_path / "runs"), "--data-uri", str(bad)], tmp_path)  # fmt: skip
    last = result.stderr.splitlines()[-1]
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert last.startswith("odqa pipeline run: error: stage prepare-data failed: ")
    assert f"{bad}: expected a JSON list of records" in last
    log = Path(last.rsplit("(log: ", 1)[1].rstrip(")"))
    assert log.is_file() and "expected a JSON list of records" in log.read_text(encoding="utf-8")
