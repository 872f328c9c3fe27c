"""The HTTP app: the JSON contract over the dynamic batcher, health and readiness, Prometheus metrics,
one JSON log line per request, POST /admin/reload, and the page at /.

Every error is JSON `{"error": "...", "field": "..."}` with a 4xx for the client's mistakes (400 bad
JSON or bytes, 413 too large, 422 wrong values) and 503 while no model is loaded or the queue is full."""

# No `from __future__ import annotations`: FastAPI reads the request models (made per config, inside
# create_app) from the endpoint signatures at run time.

import asyncio
import hashlib
import json
import logging
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from odqa.service import api
from odqa.service.batcher import DynamicBatcher, QueueFull
from odqa.service.config import ServeConfig
from odqa.service.metrics import ServiceMetrics
from odqa.service.models import ChampionWatcher, ModelHolder, ModelSource, load_odqa_model

log = logging.getLogger(__name__)
access_log = logging.getLogger("odqa.service.access")

VERSION_HEADER = "X-Model-Version"
PAGE = "static/index.html"


class NotReady(Exception):
    """No model is loaded yet."""


def question_hash(question: str) -> str:
    return hashlib.sha256(question.encode("utf-8")).hexdigest()


def _field(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or None


def _describe(error: dict[str, Any]) -> tuple[int, str, str | None]:
    """(status, message, field) for the first validation error of a request."""
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    field = _field(tuple(error.get("loc") or ()))
    if kind == "json_invalid":
        return (
            400,
            f"invalid JSON: {ctx.get('error', 'cannot be parsed')} (at character {error['loc'][-1]})",
            None,
        )
    where = field or "body"
    if kind in ("string_too_long", "too_long"):
        return 413, f"{where}: {error['msg'].lower()}", field
    if kind == "missing":
        return 422, f"{where}: is required", field
    if kind == "extra_forbidden":
        return 422, f"{where}: unknown field", field
    if kind == "value_error":
        return 422, f"{where}: {ctx.get('error', error['msg'])}", field
    return 422, f"{where}: {error['msg'].lower()}", field


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse a body over `max_bytes` with 413: by its Content-Length before reading it, or, sent in
    chunks, as soon as the bytes read pass the limit (FastAPI then fails the parse; `http_error` maps
    it back to 413)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_bytes:
            message = f"the body is {declared} bytes, more than the {self.max_bytes} accepted"
            await _error(413, message, "body")(scope, receive, send)
            return
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(f"the body is more than the {self.max_bytes} bytes accepted")
            return message

        await self.app(scope, limited, send)


async def _not_utf8(request: Request) -> str | None:
    """Why the body is not UTF-8, if it is not (JSON parsers guess UTF-16/32 from the first bytes)."""
    try:
        (await request.body()).decode("utf-8")
    except UnicodeDecodeError as e:
        return f"the body is not UTF-8 (byte {e.start}: {e.reason})"
    except Exception:  # noqa: BLE001 (the body could not be read again: say nothing more)
        return None
    return None


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


def create_app(config: ServeConfig | None = None, holder: ModelHolder | None = None) -> FastAPI:
    """The service for `config`; `holder` defaults to the registry model config.model names."""
    config = config or ServeConfig()
    metrics = ServiceMetrics()
    if holder is None:
        source = ModelSource.parse(config.model, config.tracking_uri)
        holder = ModelHolder(
            source,
            loader=lambda uri: load_odqa_model(
                uri, source.tracking_uri, config.num_threads, config.precision
            ),
        )
    holder.on_swap = lambda old, new: metrics.serving(old.version if old else None, new.version)
    holder.on_load_failure = lambda version, e: metrics.load_failures.inc()
    if holder.current is not None:
        metrics.model_info.labels(version=holder.current.version).set(1)

    def run_batch(questions: list[str], top_k: int | None) -> tuple[str, list[dict[str, Any]]]:
        loaded = holder.current  # read once: the whole call runs on one version
        if loaded is None:
            raise NotReady()
        return loaded.version, loaded.model.answer(questions, top_k)

    batcher = DynamicBatcher(
        run_batch,
        max_batch_size=config.max_batch_size,
        max_wait_s=config.max_wait_ms / 1000,
        max_queue=config.max_queue,
        on_batch=metrics.batch_size.observe,
    )
    watcher = ChampionWatcher(holder, config.poll_interval_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        watcher.start()
        try:
            yield
        finally:
            watcher.stop()
            await batcher.stop()

    app = FastAPI(
        title="odqa",
        version="0.1.0",
        summary="Open-domain question answering: the registered champion, over HTTP",
        lifespan=lifespan,
    )
    app.state.holder, app.state.batcher, app.state.metrics, app.state.config = (
        holder,
        batcher,
        metrics,
        config,
    )
    AnswerRequest, BatchRequest = api.request_models(config)
    page = resources.files("odqa.service").joinpath(PAGE).read_text(encoding="utf-8")

    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)  # inside `observe`: counted, logged

    @app.middleware("http")
    async def observe(request: Request, call_next):
        t0 = time.perf_counter()
        request.state.log = {}
        try:
            response = await call_next(request)
        except Exception:  # noqa: BLE001 (an error no handler turned into a response: ours, a 500)
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            response = _error(500, "internal error (see the service log)")
        seconds = time.perf_counter() - t0
        route = request.scope.get("route")
        name = getattr(route, "path", None) or "unmatched"
        status = str(response.status_code)
        metrics.requests.labels(name, status).inc()
        metrics.latency.labels(name).observe(seconds)
        if response.status_code >= 400:
            metrics.errors.labels(name, status).inc()
        current = holder.current
        if current is not None and VERSION_HEADER not in response.headers:
            response.headers[VERSION_HEADER] = current.version
        if name not in ("/metrics", "/health", "/ready"):
            record = {
                "event": "request",
                "ts": round(time.time(), 3),
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "latency_ms": round(seconds * 1000, 2),
                "model_version": request.state.log.get("model_version")
                or (current.version if current else None),
                **{k: v for k, v in request.state.log.items() if k != "model_version"},
            }
            access_log.info(json.dumps(record, ensure_ascii=False))
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        status, message, field = _describe(exc.errors()[0])
        if status == 400:
            message = await _not_utf8(request) or message
        return _error(status, message, field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if isinstance(exc.__cause__, BodyTooLarge):
            return _error(413, str(exc.__cause__), "body")
        if exc.status_code == 400 and "parsing the body" in detail:
            detail = await _not_utf8(request) or "the body cannot be parsed as JSON"
        return _error(exc.status_code, detail, "body" if exc.status_code in (400, 413) else None)

    @app.exception_handler(NotReady)
    async def not_ready(request: Request, exc: NotReady):
        return _error(503, f"no model loaded yet ({holder.state}: {config.model})")

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull):
        return _error(503, f"overloaded: {exc}")

    def _log_questions(request: Request, questions: list[str]) -> None:
        request.state.log["questions"] = len(questions)
        request.state.log["question_sha256"] = [question_hash(q) for q in questions]
        if config.log_questions:
            request.state.log["question"] = questions

    async def _answer(request: Request, questions: list[str], top_k: int | None):
        _log_questions(request, questions)
        if holder.current is None:
            raise NotReady()
        version, records = await batcher.submit(questions, top_k)
        request.state.log["model_version"] = version
        metrics.questions.inc(len(questions))
        return version, records

    @app.post(
        "/v1/answer",
        response_model=api.AnswerResponse,
        responses=api.error_responses(400, 413, 422, 503),
        summary="answer one question",
    )
    async def answer(request: Request, body: AnswerRequest) -> dict[str, Any]:
        version, records = await _answer(request, [body.question], body.top_k)
        return {**records[0], "model_version": version}

    @app.post(
        "/v1/answers",
        response_model=api.BatchResponse,
        responses=api.error_responses(400, 413, 422, 503),
        summary="answer a batch of questions (one reader call)",
    )
    async def answers(request: Request, body: BatchRequest) -> dict[str, Any]:
        version, records = await _answer(request, list(body.questions), body.top_k)
        return {"model_version": version, "answers": records}

    @app.get("/health", summary="liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        response_model=api.ReadyResponse,
        responses={503: {"model": api.ReadyResponse}},
        summary="readiness: 200 once a model is loaded (which version), 503 while loading or waiting",
    )
    async def ready():
        current = holder.current
        if current is None:
            body = {"status": holder.state, "model": config.model, "error": holder.last_error}
            return JSONResponse(body, status_code=503)
        return {"status": "ready", "model": config.model, "model_version": current.version}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if config.admin_reload:

        @app.post(
            "/admin/reload",
            response_model=api.ReloadResponse,
            responses=api.error_responses(503),
            summary="check the registry alias now and swap in a new version",
        )
        async def reload() -> Any:
            try:
                changed = await asyncio.to_thread(holder.refresh)
            except Exception as e:  # noqa: BLE001 (the old model keeps serving; say why)
                return _error(503, f"reload failed: {' '.join(str(e).split()) or type(e).__name__}")
            current = holder.current
            return {"changed": changed, "model_version": current.version if current else None}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    return app
