"""data_uri: local paths, s3:// against moto's S3 server (a real S3 HTTP API on loopback, started here),
https:// against a local http.server; every failure is one line naming the URI, within 30 s."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from odqa.data.uri import resolve_data_uri
from odqa.deploy.stack import BIN, free_port, wait_http
from odqa.errors import InputError

DATA = {"version": "KorQuAD_v1.0_dev", "data": [{"title": "서울", "paragraphs": []}]}
FAIL_WITHIN_S = 30


def _one_line_error(call, *needles: str) -> str:
    started = time.monotonic()
    with pytest.raises(InputError) as info:
        call()
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert "\n" not in message, message
    assert elapsed < FAIL_WITHIN_S, f"{elapsed:.1f} s: {message}"
    for needle in needles:
        assert needle in message, message
    return message


# ------------------------------------------------------------------------------------------ local


def test_local_path_and_file_uri_are_used_in_place(tmp_path):
    f = tmp_path / "dev.json"
    f.write_text("{}")
    assert resolve_data_uri(str(f)) == f
    assert resolve_data_uri(f.as_uri()) == f
    _one_line_error(lambda: resolve_data_uri(str(tmp_path / "nope.json")), "nope.json", "not found")
    _one_line_error(lambda: resolve_data_uri("ftp://host/x.json"), "ftp://host/x.json", "unsupported")


# ----------------------------------------------------------------------------------------- S3


def _moto(tmp_path: Path, env: dict[str, str]):
    port = free_port()
    log = tmp_path / f"moto-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{endpoint}/", 30, proc, log, "moto_server")
    except BaseException:
        proc.kill()
        raise
    return proc, endpoint


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    proc, endpoint = _moto(tmp_path_factory.mktemp("moto"), {})
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_env(moto, monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith(("AWS_", "FSSPEC_", "MLFLOW_S3")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "odqa-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "odqa-test-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    monkeypatch.setenv("ODQA_CACHE_DIR", str(tmp_path / "cache"))
    from odqa.data.uri import s3_client

    return s3_client()


def test_s3_object_is_fetched_into_the_cache_and_refetched_when_it_changes(s3_env, tmp_path):
    s3_env.create_bucket(Bucket="odqa-data")
    s3_env.put_object(Bucket="odqa-data", Key="korquad/dev.json", Body=json.dumps(DATA).encode())
    uri = "s3://odqa-data/korquad/dev.json"
    local = resolve_data_uri(uri)
    assert local.is_relative_to(tmp_path / "cache") and local.name == "dev.json"
    assert json.loads(local.read_text(encoding="utf-8")) == DATA
    assert not [p for p in local.parent.iterdir() if p.name.startswith(".")]  # no temp left behind
    assert resolve_data_uri(uri) == local  # cached: same copy
    s3_env.put_object(Bucket="odqa-data", Key="korquad/dev.json", Body=b'{"data": []}')
    changed = resolve_data_uri(uri)
    assert changed != local and json.loads(changed.read_text()) == {"data": []}


def test_s3_prefix_is_fetched_as_a_folder(s3_env):
    s3_env.create_bucket(Bucket="folders")
    for key in ("ds/a.json", "ds/sub/b.json"):
        s3_env.put_object(Bucket="folders", Key=key, Body=b"{}")
    local = resolve_data_uri("s3://folders/ds")
    assert sorted(str(p.relative_to(local)) for p in local.rglob("*.json")) == ["a.json", "sub/b.json"]


def test_s3_endpoint_from_fsspec_variable(s3_env, monkeypatch):
    s3_env.create_bucket(Bucket="viafsspec")
    s3_env.put_object(Bucket="viafsspec", Key="x.json", Body=b"{}")
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", endpoint)
    assert resolve_data_uri("s3://viafsspec/x.json").read_text() == "{}"


def test_s3_missing_object_and_bucket_are_one_line(s3_env):
    s3_env.create_bucket(Bucket="present")
    _one_line_error(
        lambda: resolve_data_uri("s3://present/nope.json"), "s3://present/nope.json", "no such S3 object"
    )
    _one_line_error(lambda: resolve_data_uri("s3://present/nofolder/"), "no such S3 object or folder")
    _one_line_error(
        lambda: resolve_data_uri("s3://no-such-bucket/k.json"),
        "s3://no-such-bucket/k.json",
        "bucket 'no-such-bucket' does not exist",
    )


def test_s3_unreachable_endpoint_is_one_line_fast(s3_env, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    _one_line_error(lambda: resolve_data_uri("s3://b/k.json"), "s3://b/k.json", "cannot reach S3")


def test_s3_without_credentials_is_one_line(s3_env, monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    _one_line_error(lambda: resolve_data_uri("s3://b/k.json"), "no S3 credentials", "mlflow-s3")


def test_s3_denied_is_one_line(tmp_path, monkeypatch):
    """moto with authentication on (INITIAL_NO_AUTH_ACTION_COUNT=0): unknown keys are refused."""
    proc, endpoint = _moto(tmp_path, {"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("ODQA_CACHE_DIR", str(tmp_path / "cache"))
        _one_line_error(lambda: resolve_data_uri("s3://odqa-data/k.json"), "s3://odqa-data/k.json", "denied")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------------------- https


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/secret"):
            self.send_error(403)
            return
        super().do_GET()

    do_HEAD = do_GET


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    root = tmp_path / "www"
    root.mkdir()
    monkeypatch.setenv("ODQA_CACHE_DIR", str(tmp_path / "cache"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Handler(*a, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_file_is_fetched_into_the_cache(http_root, tmp_path):
    root, url = http_root
    (root / "dev.json").write_text(json.dumps(DATA), encoding="utf-8")
    local = resolve_data_uri(f"{url}/dev.json")
    assert local.is_relative_to(tmp_path / "cache")
    assert json.loads(local.read_text(encoding="utf-8")) == DATA


def test_http_missing_denied_and_unreachable_are_one_line(http_root):
    _, url = http_root
    _one_line_error(lambda: resolve_data_uri(f"{url}/nope.json"), f"{url}/nope.json", "404")
    _one_line_error(lambda: resolve_data_uri(f"{url}/secret/x.json"), "denied")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _one_line_error(lambda: resolve_data_uri(f"http://127.0.0.1:{port}/x.json"), "cannot be reached")


def test_gs_without_gcsfs_says_what_to_install(monkeypatch):
    import importlib.util

    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed")
    _one_line_error(lambda: resolve_data_uri("gs://bucket/x.json"), "gs://bucket/x.json", "gcsfs")
