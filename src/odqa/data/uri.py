"""Where a user's data is: a URI turned into a local path the stages can read."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from odqa.errors import InputError


def resolve_data_uri(uri: str) -> Path:
    """A user's data location as a local path: '' is KorQuAD 1.0 dev from ODQA_DATA_DIR; a path or
    file:// URI is used as is (on a cluster: a mounted volume, or a gcs/s3 fuse path)."""
    from odqa import settings

    if not uri:
        return settings.korquad_dev_path()
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme == "file" else uri).expanduser()
        if not path.exists():
            raise InputError("data not found", path=path)
        return path
    raise InputError(f"unsupported data URI scheme {parsed.scheme!r}: use a path or file:// URI", path=uri)
