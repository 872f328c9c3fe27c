"""Guard for stage output folders, which `odqa.io.atomic_dir` replaces as a whole."""

from __future__ import annotations

import os
from pathlib import Path

from odqa.errors import InputError


def check_replaceable(out_dir: str | os.PathLike, names: set[str]) -> Path:
    """Refuse an existing folder holding anything but this stage's own files, so that a mistyped
    `--out .` cannot wipe a checkout when the new output replaces the folder."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise InputError("output path exists and is not a folder", path=out_dir)
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in names)
        if foreign:
            raise InputError(
                f"output folder holds other files ({', '.join(foreign[:3])}...); choose a new or empty folder",
                path=out_dir,
            )
    return out_dir
