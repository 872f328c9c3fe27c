"""File I/O that never leaves half-written output: write to a temp file beside the target, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from odqa.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path in the target's folder; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder; it replaces `path` (removing an older one) only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def copy_file(src: str | os.PathLike, dest_dir: str | os.PathLike, name: str) -> Path:
    """Place `src` as `dest_dir/name` (an artifact folder with the standard file name)."""
    dest = Path(dest_dir) / name
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return dest


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=indent)
            f.write("\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> int:
    n = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False))
                f.write("\n")
                n += 1
    return n


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise InputError("file not found", path=path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte {e.start}): re-encode the file as UTF-8", path=path) from None


def max_json_bytes() -> int:
    """Largest whole-JSON file read into memory (ODQA_MAX_JSON_BYTES, default 4 GiB); JSONL is streamed
    and has no limit."""
    return int(os.environ.get("ODQA_MAX_JSON_BYTES", 4 << 30))


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if path.is_file() and path.stat().st_size > max_json_bytes():
        raise InputError(
            f"{path.stat().st_size / 2**30:.1f} GiB is too large to read as one JSON document "
            f"(limit {max_json_bytes() / 2**30:.1f} GiB, ODQA_MAX_JSON_BYTES): convert it to JSONL, which is streamed",
            path=path,
        )
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}", path=path) from None


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Yield one object per non-empty line; a bad line raises InputError naming the line number."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path=path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError:
                raise InputError(
                    "not UTF-8 text: re-encode the file as UTF-8", path=path, record=f"line {lineno}"
                ) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"malformed JSON: {e.msg}", path=path, record=f"line {lineno}") from None
            if not isinstance(obj, dict):
                raise InputError("each line must be a JSON object", path=path, record=f"line {lineno}")
            yield obj


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return list(iter_jsonl(path))
