"""The stack manifests/ deploys, started on this machine: MLflow's server with the container command
and environment read from the kustomize build (`mlflow server` args, MLFLOW_SERVER_ALLOWED_HOSTS, the
S3 endpoint and credentials, the artifact bucket), on the local PostgreSQL (a fresh database) with
artifacts in moto's S3-compatible server, after the manifests' init step created the buckets.

    python -m odqa.deploy.stack [--overlay local]      # `make stack`; Ctrl-C stops it

What differs from the cluster, and only this: the executables come from this virtualenv; the servers
listen on 127.0.0.1 on free ports; the Service hosts in URLs (postgres, minio) point at the local
PostgreSQL and moto; the backend store uses the local PostgreSQL's user and a fresh database (the
manifests' credentials belong to the cluster's PostgreSQL); MLflow runs one worker. Elasticsearch is not
started (no server on this machine). tests/deploy/test_stack.py runs against it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

from odqa.deploy import manifests as m
from odqa.deploy.buckets import parser
from odqa.deploy.check import Deployed, service_host_forms
from odqa.errors import InputError

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Child side of Popen (Linux): SIGTERM when the process that started the stack dies, so a killed
    test run or `make stack` leaves no servers behind (the mlflow CLI passes SIGTERM to its workers)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _http_status(url: str, headers: dict[str, str] | None = None, timeout: float = 2.0) -> int | None:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, urllib.error.URLError):
        return None


def wait_http(
    url: str, deadline_s: float, proc: subprocess.Popen | None, log: Path | None, what: str
) -> None:
    """Poll url until it answers (any HTTP status); InputError with the log tail when the process exits
    or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while True:
        if _http_status(url) is not None:
            return
        if proc is not None and proc.poll() is not None:
            tail = _tail(log) if log else "(no log)"
            raise InputError(f"{what} exited with code {proc.returncode}; log tail:\n{tail}")
        if time.monotonic() >= deadline:
            tail = _tail(log) if log else "(no log)"
            raise InputError(f"{what} did not answer {url} within {deadline_s:g} s; log tail:\n{tail}")
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------------
# PostgreSQL


def _pg_connect(dbname: str = "postgres"):
    import psycopg2

    return psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, connect_timeout=3)


def ensure_postgres(deadline_s: float = 30.0) -> None:
    """The local PostgreSQL answers, started with pg_ctlcluster when it is down."""
    import psycopg2

    try:
        _pg_connect().close()
        return
    except psycopg2.OperationalError:
        pass
    ctl = shutil.which("pg_ctlcluster")
    versions = (
        sorted(p.name for p in Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").is_dir() else []
    )
    if not ctl or not versions:
        raise InputError(
            f"PostgreSQL at {PG_HOST}:{PG_PORT} does not answer and no Debian cluster to start "
            "(pg_ctlcluster, /etc/postgresql): install postgresql or start one"
        )
    proc = subprocess.run(
        [ctl, "--skip-systemctl-redirect", versions[-1], "main", "start"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            _pg_connect().close()
            return
        except psycopg2.OperationalError as e:
            if time.monotonic() >= deadline:
                why = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [str(e).strip()]
                raise InputError(f"PostgreSQL at {PG_HOST}:{PG_PORT} did not start: {why[0]}") from None
            time.sleep(0.2)


DB_PREFIX = "odqa_stack_"


def drop_stale_databases() -> list[str]:
    """Databases of stacks whose process is gone (killed before it could drop them)."""
    conn = _pg_connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (DB_PREFIX + "%",))
            names = [r[0] for r in cur.fetchall()]
    finally:
        conn.close()
    stale = []
    for name in names:
        pid = name[len(DB_PREFIX) :].split("_")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            drop_database(name)
            stale.append(name)
    return stale


def _execute_autocommit(sql: str) -> None:
    """CREATE/DROP DATABASE cannot run inside a transaction."""
    conn = _pg_connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def create_database(name: str) -> None:
    _execute_autocommit(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    _execute_autocommit(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------------------------------
# The stack


@dataclass
class StackConfig:
    root: Path = m.REPO
    overlay: str = "local"
    startup_timeout: float = 120.0  # mlflow server: about 6 s alone, much more on a busy machine
    workdir: Path | None = None  # logs; default a temporary folder


@dataclass
class ServingCommand:
    """How the manifests start the service, made local (Stack.serving_command)."""

    argv: list[str]
    env: dict[str, str]
    readiness_path: str | None
    liveness_path: str | None


@dataclass
class Stack:
    """Start with start() (or `with Stack(...) as s:`); stop() ends every process it started (SIGTERM
    to the process group, then SIGKILL) and drops the database."""

    config: StackConfig = field(default_factory=StackConfig)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    database: str | None = None
    mlflow_port: int | None = None
    s3_port: int | None = None
    buckets: list[str] = field(default_factory=list)
    artifacts_destination: str | None = None
    allowed_hosts: list[str] = field(default_factory=list)
    readiness_probe: dict[str, Any] = field(default_factory=dict)
    service_name: str = "mlflow"
    service_port: int = 5000
    namespace: str = "odqa"
    s3_credentials: dict[str, str] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory | None = None
    _deployed: Deployed | None = None
    _local: dict[str, tuple[str, int]] = field(default_factory=dict)  # in-cluster host -> this machine

    def __repr__(self) -> str:
        return (
            f"Stack({self.config.overlay}, mlflow={self.mlflow_port}, s3={self.s3_port}, db={self.database})"
        )

    # -- what the manifests say -----------------------------------------------------------------------

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def artifacts_bucket(self) -> str | None:
        dest = self.artifacts_destination or ""
        return urlparse(dest).netloc if dest.startswith("s3://") else None

    def in_cluster_hosts(self) -> list[str]:
        """The Host headers in-cluster clients send to MLflow: every DNS form of its Service, with port."""
        return [f"{h}:{self.service_port}" for h in service_host_forms(self.service_name, self.namespace)]

    def readiness(self) -> int | None:
        """The MLflow container's readiness probe from the manifests (path, Host header), run against
        the local server: the HTTP status, None when nothing answers."""
        spec = self.readiness_probe
        headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
        return _http_status(f"{self.tracking_uri}{spec.get('path', '/')}", headers)

    # -- running it -----------------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _workdir(self) -> Path:
        if self.config.workdir is not None:
            self.config.workdir.mkdir(parents=True, exist_ok=True)
            return self.config.workdir
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="odqa-stack-")
        return Path(self._tmp.name)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = self._workdir() / f"{name}.log"
        self.logs[name] = log
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.processes[name] = proc
        return proc

    def start(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        cfg = self.config
        d = Deployed(cfg.overlay, m.build(cfg.root, cfg.overlay), {}, m.kustomization_dir(cfg.overlay))
        server = d.mlflow_server()
        if server is None:
            raise InputError(f"no `mlflow server` container in {m.kustomization_dir(cfg.overlay)}")
        svc = d.service_of(server)
        if svc is None:
            raise InputError(f"no Service selects {server.field}")
        self.namespace = d.namespace or "default"
        self.service_name = svc["metadata"]["name"]
        self.service_port = int(m.service_port(svc)["port"])
        env = m.environment(d.objects, server)
        argv = m.words(server, env)
        self.readiness_probe = (server.container.get("readinessProbe") or {}).get("httpGet") or {}
        self.allowed_hosts = [
            h.strip() for h in env.get("MLFLOW_SERVER_ALLOWED_HOSTS", "").split(",") if h.strip()
        ]
        self.artifacts_destination = m.option(argv, "--artifacts-destination") or m.option(
            argv, "--default-artifact-root"
        )

        # Which Services the local servers stand in for: the hosts MLflow's own URLs name.
        backend = m.option(argv, "--backend-store-uri") or ""
        if not backend.startswith("postgresql"):
            raise InputError(f"{server.field}: --backend-store-uri is not PostgreSQL: {backend!r}")
        s3_url = env.get("MLFLOW_S3_ENDPOINT_URL")
        if not s3_url:
            raise InputError(f"{server.field}: no MLFLOW_S3_ENDPOINT_URL")

        ensure_postgres()
        drop_stale_databases()
        self.database = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(3)}"
        create_database(self.database)

        self.s3_port = free_port()
        moto = self._spawn(
            "s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.s3_port)], dict(os.environ)
        )
        wait_http(f"{self.s3_endpoint}/", 30, moto, self.logs["s3"], "moto_server")
        self._deployed = d
        self._local = {
            urlparse(backend).hostname: (PG_HOST, PG_PORT),
            urlparse(s3_url).hostname: ("127.0.0.1", self.s3_port),
        }
        localize, base_env = self._localize, self._base_env()

        # The init step(s): the same command as the cluster's, against moto.
        for step in d.bucket_steps():
            step_env = {k: localize(v) for k, v in m.environment(d.objects, step).items()}
            step_argv = m.words(step, step_env)
            if Path(step_argv[0]).name.startswith("python"):
                step_argv[0] = sys.executable
            step_argv = m.replace_option(step_argv, "--wait", "20")
            proc = subprocess.run(
                step_argv,
                env={**base_env, **step_env},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if proc.returncode != 0:
                raise InputError(
                    f"init step {step.field} failed: {(proc.stderr or proc.stdout).strip()[-500:]}"
                )
            self.buckets += (
                parser().parse_args(step_argv[step_argv.index("odqa.deploy.buckets") + 1 :]).buckets
            )
            self.s3_credentials = {k: v for k, v in step_env.items() if k.startswith("AWS_")}

        # MLflow: the container's command, made local.
        pg = urlparse(backend)
        local_backend = urlunparse(
            pg._replace(netloc=f"{PG_USER}@{PG_HOST}:{PG_PORT}", path=f"/{self.database}")
        )
        self.mlflow_port = free_port()
        # MLflow's in-cluster names (what the serving pods and the pipeline call) are this server
        for host in service_host_forms(self.service_name, self.namespace):
            self._local[host] = ("127.0.0.1", self.mlflow_port)
        server_env = {k: localize(v) for k, v in env.items()}
        server_env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        argv = [str(BIN / "mlflow"), *argv[1:]]
        argv = m.replace_option(argv, "--backend-store-uri", local_backend)
        argv = m.replace_option(argv, "--host", "127.0.0.1")
        argv = m.replace_option(argv, "--port", str(self.mlflow_port))
        argv = m.replace_option(argv, "--workers", "1")
        proc = self._spawn("mlflow", argv, {**base_env, **server_env})
        wait_http(
            f"{self.tracking_uri}/health", cfg.startup_timeout, proc, self.logs["mlflow"], "mlflow server"
        )

    def _localize(self, value: str) -> str:
        """An http(s) URL naming an in-cluster service this stack stands in for, pointed at it."""
        p = urlparse(value)
        if p.scheme in ("http", "https") and p.hostname in self._local:
            host, port = self._local[p.hostname]
            return urlunparse(p._replace(netloc=f"{host}:{port}"))
        return value

    @staticmethod
    def _base_env() -> dict[str, str]:
        """This process's environment without MLflow or AWS settings (the manifests set those)."""
        return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}

    def serving_command(self, port: int) -> ServingCommand:
        """The serving container of the manifests (`odqa serve`: its args, env and Secret keys, probes),
        made local: this environment's odqa, MLflow's and MinIO's in-cluster names pointed at this
        stack, listening on 127.0.0.1:port. Everything else is the manifests' own."""
        if self._deployed is None:
            raise RuntimeError("start the stack first")
        serves = self._deployed.serve_containers()
        if not serves:
            raise InputError(f"no `odqa serve` container in {m.kustomization_dir(self.config.overlay)}")
        cref = serves[0]
        env = {k: self._localize(v) for k, v in m.environment(self._deployed.objects, cref).items()}
        argv = [self._localize(word) for word in m.words(cref, env)]
        argv[0] = str(BIN / "odqa")
        argv = m.replace_option(argv, "--host", "127.0.0.1")
        argv = m.replace_option(argv, "--port", str(port))
        probes = {
            name: ((cref.container.get(name) or {}).get("httpGet") or {}).get("path")
            for name in ("readinessProbe", "livenessProbe")
        }
        return ServingCommand(
            argv, {**self._base_env(), **env}, probes["readinessProbe"], probes["livenessProbe"]
        )

    def log_tail(self, name: str = "mlflow") -> str:
        return _tail(self.logs[name]) if name in self.logs else "(not started)"

    def stop(self) -> None:
        for name, proc in list(self.processes.items())[::-1]:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
            del self.processes[name]
        if self.database:
            with contextlib.suppress(Exception):
                drop_database(self.database)
            self.database = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m odqa.deploy.stack", description=__doc__.split("\n\n")[0])
    p.add_argument("--overlay", default="local")
    p.add_argument("--logs", default=None, help="folder for the servers' logs (default: a temporary one)")
    args = p.parse_args(argv)
    stack = Stack(StackConfig(overlay=args.overlay, workdir=Path(args.logs) if args.logs else None))

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        stack.start()
        print(f"MLflow      {stack.tracking_uri}  (MLFLOW_TRACKING_URI; database {stack.database})")
        print(f"S3 (moto)   {stack.s3_endpoint}  buckets: {', '.join(stack.buckets)}")
        print(f"allowed     {', '.join(stack.allowed_hosts)}")
        print(f"logs        {', '.join(str(p) for p in stack.logs.values())}")
        print("Ctrl-C stops the stack.", flush=True)
        code = stack.processes["mlflow"].wait()
        print(f"mlflow server exited with code {code}; log tail:\n{stack.log_tail()}", file=sys.stderr)
        return 1
    except InputError as e:
        print(f"stack: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
