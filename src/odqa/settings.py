"""Where real data lives. One setting, ODQA_DATA_DIR, read by the CLI, tests and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

from odqa.errors import InputError

# A source checkout (src/odqa/settings.py): its parent folder holds shared/ beside the repository.
_CHECKOUT = Path(__file__).resolve().parents[2]

KORQUAD_DEV_NAME = "korquad/KorQuAD_v1.0_dev.json"
KORQUAD_HINT = (
    "KorQuAD 1.0 dev is the official file KorQuAD_v1.0_dev.json from https://korquad.github.io "
    "(dataset/KorQuAD_v1.0_dev.json); put it at $ODQA_DATA_DIR/korquad/KorQuAD_v1.0_dev.json "
    "(ODQA_DATA_DIR defaults to ../shared/data next to the repository)"
)


def data_dir() -> Path:
    """ODQA_DATA_DIR; unset, ../shared/data beside the working directory, else beside the source
    checkout odqa runs from (an installed wheel has none, so set ODQA_DATA_DIR there)."""
    value = os.environ.get("ODQA_DATA_DIR")
    if value:
        return Path(value).expanduser().resolve()
    candidates = [Path.cwd().parent / "shared" / "data", _CHECKOUT.parent / "shared" / "data"]
    return next((c.resolve() for c in candidates if c.is_dir()), candidates[0].resolve())


def korquad_dev_path(required: bool = True) -> Path:
    path = data_dir() / KORQUAD_DEV_NAME
    if required and not path.is_file():
        raise InputError(f"KorQuAD 1.0 dev not found. {KORQUAD_HINT}", path=path)
    return path


def klue_dir() -> Path:
    return data_dir() / "klue"
