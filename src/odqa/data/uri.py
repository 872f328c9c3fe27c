"""Where a user's data is: a URI turned into a local path the stages can read.

Local paths and file:// are used in place. s3:// (boto3: AWS or any S3-compatible endpoint, e.g. the
cluster's MinIO), https:// / http:// and gs:// (fsspec; gs:// needs gcsfs) are downloaded once into a
cache folder and read from there. A copy is keyed by the URI and the object's version (ETag, size,
Last-Modified), so a changed object is fetched again; a download lands under a temporary name and is
renamed into place, so a killed download never leaves a truncated file that looks complete.

Every remote failure (no such object or bucket, access denied, endpoint unreachable) is one InputError
line naming the URI, raised within about 30 s: connect/read timeouts and a bounded number of attempts,
never botocore's or fsspec's open-ended retries.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from odqa.errors import InputError
from odqa.io import atomic_path

CACHE_ENV = "ODQA_CACHE_DIR"
# The S3 endpoint, first set wins: the AWS SDK's own names, then fsspec's and MLflow's, so a pod that
# already has MLflow's S3 settings (the mlflow-s3 secret + MLFLOW_S3_ENDPOINT_URL) reads data too.
S3_ENDPOINT_ENVS = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "FSSPEC_S3_ENDPOINT_URL",
    "MLFLOW_S3_ENDPOINT_URL",
)
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 20.0
MAX_ATTEMPTS = 2  # botocore's total attempts (first try included)
MAX_FOLDER_OBJECTS = 10_000
REMOTE_SCHEMES = ("s3", "gs", "gcs", "http", "https")


def cache_dir() -> Path:
    """$ODQA_CACHE_DIR/data, else ~/.cache/odqa/data (XDG_CACHE_HOME honoured)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser() / "data"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "odqa" / "data"


def resolve_data_uri(uri: str, cache: str | os.PathLike | None = None) -> Path:
    """A user's data location as a local path: '' is KorQuAD 1.0 dev from ODQA_DATA_DIR; a path or
    file:// URI is used as is (on a cluster: a mounted volume); s3://, gs://, http(s):// are fetched into
    `cache` (default `cache_dir()`) and the local copy is returned."""
    from odqa import settings

    if not uri:
        return settings.korquad_dev_path()
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
        path = Path(parsed.path if scheme == "file" else uri).expanduser()
        if not path.exists():
            raise InputError("data not found", path=path)
        return path
    root = Path(cache) if cache is not None else cache_dir()
    if scheme == "s3":
        return _fetch_s3(uri, root)
    if scheme in ("http", "https", "gs", "gcs"):
        return _fetch_fsspec(uri, root)
    raise InputError(
        f"unsupported data URI scheme {parsed.scheme!r}: use a path, file://, s3://, gs:// or https://",
        path=uri,
    )


def _cache_path(root: Path, uri: str, version: str, name: str) -> Path:
    """<root>/<sha of uri>/<sha of version>/<name>: one folder per URI, one copy per object version."""
    uri_key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    version_key = hashlib.sha256(version.encode()).hexdigest()[:16]
    safe = re.sub(r"[^\w.\-]", "_", name) or "data"
    return root / uri_key / version_key / safe


def _download(dest: Path, write) -> Path:
    """Call write(tmp_path) and rename the result onto dest; an existing copy is reused."""
    if dest.exists():
        return dest
    with atomic_path(dest) as tmp:
        write(tmp)
    return dest


# --------------------------------------------------------------------------------------------- S3


def s3_endpoint() -> str | None:
    return next((os.environ[k] for k in S3_ENDPOINT_ENVS if os.environ.get(k)), None)


def s3_client():
    """A boto3 S3 client with short timeouts and bounded attempts; path-style addressing on a custom
    endpoint (MinIO and most S3-compatible servers)."""
    import boto3
    from botocore.config import Config

    endpoint = s3_endpoint()
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint else None,
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # a fresh session: the default one caches the credentials it found first
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region, config=config)


def _s3_error(uri: str, error: Exception) -> InputError:
    """One line for what went wrong talking to S3, with what to check."""
    from botocore.exceptions import ClientError, NoCredentialsError

    where = f" at {s3_endpoint()}" if s3_endpoint() else ""
    if isinstance(error, NoCredentialsError):
        return InputError(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(on the cluster: the mlflow-s3 secret, docs/deploy.md)",
            path=uri,
        )
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return InputError(f"S3 bucket {urlparse(uri).netloc!r} does not exist{where}", path=uri)
        if code in ("404", "NoSuchKey", "NotFound") or status == 404:
            return InputError(f"no such S3 object{where}", path=uri)
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch") or status == 403:
            return InputError(
                f"access denied by S3{where} ({code or status}): check the credentials "
                "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the bucket policy",
                path=uri,
            )
        return InputError(f"S3{where} answered {status} {code}", path=uri)
    # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ...
    return InputError(f"cannot reach S3{where}: {type(error).__name__}", path=uri)


def _fetch_s3(uri: str, root: Path) -> Path:
    """One object, or every object under a prefix (a dataset folder) when the key is not an object."""
    from botocore.exceptions import BotoCoreError, ClientError

    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket:
        raise InputError("an s3:// URI needs a bucket: s3://BUCKET/KEY", path=uri)
    client = s3_client()
    try:
        if key and not key.endswith("/"):
            try:
                head = client.head_object(Bucket=bucket, Key=key)
            except ClientError as e:
                if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                    raise
                _require_bucket(client, uri, bucket)
                head = None
            if head is not None:
                version = f"{head.get('ETag')}|{head.get('ContentLength')}|{head.get('LastModified')}"
                dest = _cache_path(root, uri, version, Path(key).name)
                return _download(dest, lambda tmp: client.download_file(bucket, key, str(tmp)))
        return _fetch_s3_folder(client, uri, bucket, key.rstrip("/") + "/" if key else "", root)
    except (ClientError, BotoCoreError) as e:
        raise _s3_error(uri, e) from None


def _require_bucket(client, uri: str, bucket: str) -> None:
    """A missing bucket says so, instead of "no such object" (HEAD answers a bare 404)."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as e:
        if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            where = f" at {s3_endpoint()}" if s3_endpoint() else ""
            raise InputError(f"S3 bucket {bucket!r} does not exist{where}", path=uri) from None
        raise


def _fetch_s3_folder(client, uri: str, bucket: str, prefix: str, root: Path) -> Path:
    objects: list[dict[str, Any]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects += [o for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        if len(objects) > MAX_FOLDER_OBJECTS:
            raise InputError(f"more than {MAX_FOLDER_OBJECTS} objects under this prefix", path=uri)
    if not objects:
        raise InputError("no such S3 object or folder", path=uri)
    version = "|".join(f"{o['Key']}:{o.get('ETag')}:{o.get('Size')}" for o in sorted(objects, key=str))
    dest = _cache_path(root, uri, version, Path(prefix.rstrip("/")).name or bucket)

    def write(tmp: Path) -> None:
        for o in objects:
            target = tmp / o["Key"][len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, o["Key"], str(target))

    return _download(dest, write)


# ---------------------------------------------------------------------------- fsspec: http(s), gs


def _fsspec_options(scheme: str) -> dict[str, Any]:
    if scheme in ("http", "https"):
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S)
        return {"client_kwargs": {"timeout": timeout}}
    # gcsfs: bounded retries and timeouts of its own requests
    return {"retries": MAX_ATTEMPTS, "timeout": READ_TIMEOUT_S}


def _fetch_fsspec(uri: str, root: Path) -> Path:
    import fsspec

    scheme = urlparse(uri).scheme.lower()
    try:
        fs, path = fsspec.core.url_to_fs(uri, **_fsspec_options(scheme))
    except (ImportError, ValueError) as e:
        hint = " (pip install gcsfs)" if scheme in ("gs", "gcs") else ""
        raise InputError(f"cannot read {scheme}:// URIs here{hint}: {e}".splitlines()[0], path=uri) from None
    try:
        info = fs.info(path)
        version = "|".join(
            str(info.get(k)) for k in ("ETag", "etag", "md5Hash", "size", "Last-Modified", "updated")
        )
        if info.get("type") == "directory":
            raise InputError("is a folder; point data_uri at a file", path=uri)
        name = Path(urlparse(uri).path).name or "data"
        # no ETag or size at all: fetch every time, under a fresh version key
        if not any(info.get(k) for k in ("ETag", "etag", "md5Hash", "size")):
            version += os.urandom(8).hex()
        return _download(_cache_path(root, uri, version, name), lambda tmp: fs.get_file(path, str(tmp)))
    except InputError:
        raise
    except PermissionError:
        raise InputError("access denied (403)", path=uri) from None
    except Exception as e:  # aiohttp / gcsfs errors: connection refused, DNS, timeouts, HTTP statuses
        # fsspec's HTTP info() turns every failure into FileNotFoundError; the cause has the status
        cause = e.__cause__ if isinstance(e, FileNotFoundError) and e.__cause__ is not None else e
        status = getattr(cause, "status", None) or getattr(cause, "code", None)
        if isinstance(e, FileNotFoundError) and (status == 404 or cause is e):
            raise InputError("no such file (404)", path=uri) from None
        e = cause
        what = f"answered {status}" if status else f"cannot be reached ({type(e).__name__})"
        if status in (401, 403):
            what = f"access denied ({status})"
        raise InputError(what, path=uri) from None
