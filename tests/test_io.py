"""Outputs never destroy what the user had: folders are replaced only when they are odqa outputs of the
same kind, files never replace folders, temp copies never outlive a killed run, modes follow umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from odqa.errors import InputError
from odqa.io import OUTPUT_MARKER, atomic_dir, atomic_path, output_kind, remove_stale_temps, write_text


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }


def test_new_folder_gets_marker_and_normal_modes(tmp_path: Path):
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "out", kind="index") as tmp:
            (tmp / "a.txt").write_text("x")
        write_text(tmp_path / "f.txt", "y")
    finally:
        os.umask(old)
    assert output_kind(tmp_path / "out") == "index"
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", "out"]


def test_same_kind_is_replaced_other_kind_and_user_folders_are_refused(tmp_path: Path):
    with atomic_dir(tmp_path / "out", kind="index") as tmp:
        (tmp / "v1").write_text("1")
    with atomic_dir(tmp_path / "out", kind="index") as tmp:
        (tmp / "v2").write_text("2")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [OUTPUT_MARKER, "v2"]

    with pytest.raises(InputError, match="holds an odqa index output, not an odqa reader output"):
        with atomic_dir(tmp_path / "out", kind="reader"):
            pytest.fail("the block must not run")

    user = tmp_path / "mine"
    (user / "sub").mkdir(parents=True)
    (user / "README").write_text("keep me")
    (user / "sub" / "notes.txt").write_text("and me")
    before = _snapshot(user)
    with pytest.raises(
        InputError, match=r"mine: holds other files \(.*\), not an odqa index output.*--force"
    ):
        with atomic_dir(user, kind="index"):
            pass
    assert _snapshot(user) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "out"]


def test_force_replaces_a_folder_but_never_a_file(tmp_path: Path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "old.txt").write_text("x")
    with atomic_dir(user, kind="index", force=True) as tmp:
        (tmp / "new.txt").write_text("y")
    assert sorted(p.name for p in user.iterdir()) == [OUTPUT_MARKER, "new.txt"]

    (tmp_path / "important.txt").write_text("precious")
    for force in (False, True):
        with pytest.raises(InputError, match="important.txt: exists and is not a folder"):
            with atomic_dir(tmp_path / "important.txt", kind="index", force=force):
                pass
    assert (tmp_path / "important.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["important.txt", "mine"]


def test_current_folder_and_parent_are_refused(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("x")
    for out in (".", "..", str(tmp_path)):
        with pytest.raises(InputError, match="refusing to replace the current folder"):
            with atomic_dir(out, kind="index"):
                pass
    assert (tmp_path / "keep.txt").read_text() == "x"


def test_a_failing_block_leaves_the_old_output_and_no_temp(tmp_path: Path):
    with atomic_dir(tmp_path / "out", kind="index") as tmp:
        (tmp / "v1").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "out", kind="index") as tmp:
            (tmp / "v2").write_text("2")
            raise RuntimeError("stage failed")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [OUTPUT_MARKER, "v1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_file_output_refuses_a_folder(tmp_path: Path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(InputError, match="dir: is a folder; give a file path"):
        with atomic_path(tmp_path / "dir"):
            pass
    assert (tmp_path / "dir").is_dir() and not any((tmp_path / "dir").iterdir())


def test_temps_of_a_killed_run_are_removed_by_the_next_run(tmp_path: Path):
    """A process killed inside atomic_dir (SIGKILL: no finally runs) leaves its temp folder; the next
    output to the same place removes it, and a live process's temp is left alone."""
    code = (
        "import os, signal, sys\n"
        "from odqa.io import atomic_dir\n"
        "with atomic_dir(sys.argv[1], kind='reader') as tmp:\n"
        "    (tmp / 'half').write_text('x')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "reader")], check=False)
    assert proc.returncode == -9
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".reader.odqa-") and leftovers[0].endswith(".tmp")

    live = tmp_path / f".reader.odqa-{os.getppid()}-beef.tmp"  # our parent is alive
    live.mkdir()
    removed = remove_stale_temps(tmp_path / "reader")
    assert [p.name for p in removed] == leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]
