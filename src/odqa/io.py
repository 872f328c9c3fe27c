"""File I/O that never leaves half-written output: write to a temp file beside the target, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from odqa.errors import InputError
from odqa.schema import (
    ENSEMBLE_REPORT_FILE,
    NBEST_FILE,
    PASSAGES_FILE,
    READER_CONFIG_FILE,
    RETRIEVER_CONFIG_FILE,
    SPLIT_REPORT_FILE,
)

# Every odqa output folder carries this marker, so a later run knows it may replace the folder: an
# output is replaced only when it is empty or an odqa output of the same kind.
OUTPUT_MARKER = ".odqa-output.json"
# Folders written before the marker existed are recognised by the file only that kind writes (in this
# order: an ensemble folder also holds nbest.json).
_LEGACY_KIND_FILES = {
    "index": RETRIEVER_CONFIG_FILE,
    "reader": READER_CONFIG_FILE,
    "passages": PASSAGES_FILE,
    "split": SPLIT_REPORT_FILE,
    "ensemble": ENSEMBLE_REPORT_FILE,
    "predictions": NBEST_FILE,
}
_TEMP_TAG = ".odqa-"  # in every temp/backup name: `.{name}.odqa-{pid}-{random}.tmp` / `.old`


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove `.{name}.odqa-{pid}-*.tmp|.old` siblings of `target` left by a killed run (their pid is
    gone), so a crash never leaves hidden copies behind for good."""
    removed = []
    if not target.parent.is_dir():
        return removed
    prefix = f".{target.name}{_TEMP_TAG}"
    for sibling in target.parent.iterdir():
        if not sibling.name.startswith(prefix) or not sibling.name.endswith((".tmp", ".old")):
            continue
        pid_text = sibling.name[len(prefix) :].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
            if sibling.is_dir() and not sibling.is_symlink():
                shutil.rmtree(sibling, ignore_errors=True)
            else:
                sibling.unlink(missing_ok=True)
            removed.append(sibling)
    return removed


def _temp_name(target: Path, suffix: str) -> str:
    return f".{target.name}{_TEMP_TAG}{os.getpid()}-{os.urandom(4).hex()}{suffix}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path in the target's folder; rename it onto `path` only if the block succeeds.
    A folder at `path` is refused (a file output never replaces a folder)."""
    target = check_output_file(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    tmp_path = target.parent / _temp_name(target, ".tmp")
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.is_dir():
            shutil.rmtree(tmp_path, ignore_errors=True)
        elif tmp_path.exists():
            tmp_path.unlink()


def output_kind(folder: str | os.PathLike) -> str | None:
    """The kind of odqa output `folder` is (its marker, or a legacy stage file), None if it is none."""
    folder = Path(folder)
    marker = folder / OUTPUT_MARKER
    if marker.is_file():
        try:
            kind = json.loads(marker.read_text(encoding="utf-8")).get("kind")
        except (OSError, ValueError, AttributeError):
            return None
        if not isinstance(kind, str):
            return None
        return kind
    for kind, name in _LEGACY_KIND_FILES.items():
        if (folder / name).is_file():
            return kind
    return None


def _holds_cwd(target: Path) -> bool:
    """Whether `target` is the current folder or one of its parents (replacing it loses the checkout)."""
    try:
        here, there = Path.cwd().resolve(), target.resolve()
    except OSError:
        return False
    return here == there or there in here.parents


def check_output_dir(path: str | os.PathLike, kind: str, force: bool = False) -> Path:
    """Refuse, before any slow work, an output folder that must not be replaced: an existing file, or a
    folder holding anything that is not an odqa `kind` output (a typo like `--out .` must never wipe a
    checkout). `force` replaces any folder (never a file)."""
    target = Path(path)
    if target.name in ("", ".", "..") or _holds_cwd(target):
        raise InputError(
            "refusing to replace the current folder or one of its parents; name a new folder for this "
            "output (--force never replaces it)",
            path=path,
        )
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise InputError("exists and is not a folder; choose a new folder for this output", path=target)
        if any(target.iterdir()) and not force:
            found = output_kind(target)
            if found != kind:
                if found:
                    what = f"an odqa {found} output"
                else:
                    names = sorted(p.name for p in target.iterdir())
                    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
                    what = f"other files ({shown})"
                raise InputError(
                    f"holds {what}, not an odqa {kind} output; choose a new or empty folder "
                    "(or pass --force to replace it)",
                    path=target,
                )
    return target


def check_output_file(path: str | os.PathLike) -> Path:
    """Refuse, before any slow work, a file output that names a folder (`--out .`, an existing folder)."""
    target = Path(path)
    if target.name in ("", ".", "..") or target.is_dir():
        raise InputError("is a folder; give a file path for this output", path=path)
    return target


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, kind: str, force: bool = False) -> Iterator[Path]:
    """Yield a temp folder; it replaces `path` only if the block succeeds, and only when `path` is
    absent, empty or an odqa `kind` output (see check_output_dir). The new folder gets the marker."""
    target = check_output_dir(path, kind, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    tmp = target.parent / _temp_name(target, ".tmp")
    tmp.mkdir(mode=0o777 & ~_umask())
    old = target.parent / _temp_name(target, ".old")
    try:
        yield tmp
        (tmp / OUTPUT_MARKER).write_text(json.dumps({"kind": kind}) + "\n", encoding="utf-8")
        check_output_dir(target, kind, force)  # it may have changed while we worked
        if target.exists():
            os.replace(target, old)
            os.replace(tmp, target)
        else:
            os.replace(tmp, target)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


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


def require_file(path: str | os.PathLike) -> Path:
    """`path` as an existing file; a folder is named as one, not as "file not found"."""
    path = Path(path)
    if path.is_dir():
        raise InputError("is a folder, expected a file", path=path)
    if not path.is_file():
        raise InputError("file not found", path=path)
    return path


def _read_text(path: Path) -> str:
    require_file(path)
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
    path = require_file(path)
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
