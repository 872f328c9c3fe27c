"""Running the app: `serve` (the foreground server `odqa serve` starts) and `BackgroundServer` (the same
server in a thread, for tests and the bench). Both bind the socket before the server starts, so a
client may connect as soon as they return: no waiting loop."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
from typing import Any

from odqa.service.config import ServeConfig

log = logging.getLogger(__name__)


class _JsonLines(logging.Formatter):
    """The access log's records are JSON already: one per line, nothing around them."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


def configure_access_log() -> None:
    """Request lines go to stderr as bare JSON (log collectors parse them), not through the CLI's
    `time level name: message` format."""
    logger = logging.getLogger("odqa.service.access")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port); IPv6 hosts too."""
    from odqa.errors import InputError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} (--host/--port): {e.strerror or e}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: Any):
    import uvicorn

    # No uvicorn access log: the app writes its own line per request (with the model version).
    # httptools and uvloop named, not "auto": auto falls back to h11 without them, whose keep-alive
    # responses wait on the client's delayed ACK (about 40 ms a request, measured in bench/serving.py).
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        http="httptools",
        loop="uvloop",
    )


def serve(config: ServeConfig, app: Any | None = None) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn finishes the requests in flight first)."""
    import uvicorn

    from odqa.service.app import create_app

    os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bar per reader call in the service log
    sock = bind(config.host, config.port)  # a port in use fails before anything loads
    configure_access_log()
    app = app or create_app(config)
    host, port = sock.getsockname()[:2]
    print(
        json.dumps({"event": "listening", "url": f"http://{host}:{port}", "model": config.model}), flush=True
    )
    uvicorn.Server(_uvicorn_config(app)).run(sockets=[sock])


class BackgroundServer:
    """The app served from a thread on 127.0.0.1 (tests, bench): `url` accepts connections as soon as
    the object exists; `stop()` shuts it down."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self._sock = bind(host, port)
        self.url = f"http://{host}:{self._sock.getsockname()[1]}"
        self.server = uvicorn.Server(_uvicorn_config(app))
        self.server.install_signal_handlers = lambda: None  # not the main thread
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, name="odqa-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(30)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
