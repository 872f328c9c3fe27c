"""Create S3 buckets if they are missing: MLflow never creates its artifact bucket, and the first
`log_artifact` into a missing one fails (NoSuchBucket).

    python -m odqa.deploy.buckets [--wait SECONDS] BUCKET...

The endpoint is $MLFLOW_S3_ENDPOINT_URL (else AWS_ENDPOINT_URL, else AWS itself), the credentials the
usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. It waits up to --wait seconds for the endpoint to
answer (MinIO may start after this step), so it can run as the MLflow pod's init container; the same
command starts the local stack's buckets (odqa.deploy.stack)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from odqa.errors import InputError

ENDPOINT_ENVS = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m odqa.deploy.buckets", description=__doc__.split("\n\n")[0])
    p.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the endpoint (default 120)")
    p.add_argument("buckets", nargs="+", metavar="BUCKET")
    return p


def endpoint(env: dict[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return next((env[k] for k in ENDPOINT_ENVS if env.get(k)), None)


def ensure_buckets(buckets: list[str], wait: float = 120.0, endpoint_url: str | None = None) -> list[str]:
    """Create each missing bucket; returns the ones created. InputError in one line when the endpoint
    does not answer within `wait` seconds or refuses a bucket."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    endpoint_url = endpoint_url or endpoint()
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        # MinIO and other S3-compatible stores want path-style URLs (no bucket.host DNS names).
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}, connect_timeout=5),
    )
    where = endpoint_url or "AWS S3"
    deadline = time.monotonic() + wait
    while True:
        try:
            existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
            break
        except (BotoCoreError, ClientError) as e:
            if time.monotonic() >= deadline:
                raise InputError(f"S3 endpoint {where} did not answer within {wait:g} s: {e}") from None
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    created = []
    for bucket in buckets:
        if bucket in existing:
            continue
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                continue
            raise InputError(f"cannot create bucket {bucket!r} at {where}: {code or e}") from None
        created.append(bucket)
    return created


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        created = ensure_buckets(args.buckets, wait=args.wait)
    except InputError as e:
        print(f"odqa.deploy.buckets: error: {e}", file=sys.stderr)
        return 2
    for bucket in args.buckets:
        print(f"bucket {bucket}: {'created' if bucket in created else 'exists'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
