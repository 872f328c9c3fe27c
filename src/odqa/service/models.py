"""Which model answers: the registry alias it follows, loading a version beside the one serving, and
the one-reference swap that makes the new version answer every request after it.

Requests read `ModelHolder.current` once per reader call, so a call runs entirely on one version and
every answer names that version; the old model is freed when the last call holding it returns."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from odqa.errors import InputError

log = logging.getLogger(__name__)

_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


def resolve_tracking_uri(tracking_uri: str | None) -> str:
    """The flag, else $MLFLOW_TRACKING_URI, else the pipeline's default `sqlite:///runs/mlflow.db`."""
    from odqa import tracking

    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or tracking.default_tracking_uri()


@dataclass(frozen=True)
class ModelSource:
    """A model URI and the registry it lives in; `alias` set when the URI follows a registry alias."""

    uri: str
    tracking_uri: str
    name: str | None = None
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, uri: str, tracking_uri: str | None = None) -> ModelSource:
        uri = uri.strip()
        if not uri:
            raise InputError("--model: empty model URI (e.g. models:/odqa@champion)")
        tracking_uri = resolve_tracking_uri(tracking_uri)
        if m := _ALIAS_URI.match(uri):
            return cls(uri, tracking_uri, m["name"], alias=m["alias"])
        if m := _VERSION_URI.match(uri):
            return cls(uri, tracking_uri, m["name"], version=m["version"])
        if uri.startswith("models:/"):
            raise InputError(f"--model: {uri!r} is not models:/NAME@ALIAS nor models:/NAME/VERSION")
        return cls(uri, tracking_uri)

    def check_registry(self) -> None:
        """Refuse in seconds a registry that is not there: an http(s) server that does not answer, a
        SQLite database file that does not exist (MLflow would create an empty one)."""
        from odqa import tracking

        if not self.uri.startswith(("models:/", "runs:/")):
            return
        tracking.require_server(self.tracking_uri)
        db = tracking.sqlite_path(self.tracking_uri)
        if db is not None and not db.is_file():
            raise InputError(
                f"no MLflow database at {db} (--tracking-uri {self.tracking_uri}); run the pipeline first "
                "or pass the registry's URI"
            )

    def resolve(self) -> str:
        """The version to serve now (the alias's current version; the URI itself for runs:/ or a path)."""
        if self.alias is None:
            return self.version or self.uri
        from mlflow.exceptions import MlflowException

        from odqa import tracking

        try:
            found = tracking.client(self.tracking_uri).get_model_version_by_alias(self.name, self.alias)
        except MlflowException as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(
                f"{self.name}@{self.alias}: not found in the registry at {self.tracking_uri} ({first})"
            ) from None
        return str(found.version)

    def version_uri(self, version: str) -> str:
        """The URI that loads exactly `version` (never the alias, which may move while loading)."""
        return f"models:/{self.name}/{version}" if self.name else self.uri


@dataclass(frozen=True)
class LoadedModel:
    version: str
    uri: str
    model: Any  # has answer(questions: list[str], top_k: int | None) -> list[dict]
    loaded_at: float
    load_seconds: float


def load_odqa_model(
    uri: str, tracking_uri: str, num_threads: int | None = None, precision: str | None = None
) -> Any:
    """The OdqaModel inside an MLflow pyfunc (the pyfunc wrapper's DataFrame checks are skipped: the
    service validates requests itself and calls `answer` with a list)."""
    import mlflow.pyfunc

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(uri)
    try:
        model = pyfunc.unwrap_python_model()
    except Exception:  # noqa: BLE001 (a flavour without a python model: not ours)
        model = None
    if not callable(getattr(model, "answer", None)):
        raise InputError(f"{uri} is not an odqa model (its python model has no answer method)")
    if num_threads:
        model.predict_config = model.predict_config.replace(num_threads=num_threads)
    if precision:
        from odqa.reader.device import Placement

        # checked now, not at the first request: fp16 on a machine without CUDA refuses to load
        Placement.resolve(model.predict_config.device, precision)
        model.predict_config = model.predict_config.replace(precision=precision)
    return model


class ModelHolder:
    """The model serving now, and how the next one is found and loaded.

    `refresh()` resolves the source (the alias's version); when it differs from the one serving, the
    new version is loaded while the old keeps answering, then `current` is replaced in one assignment.
    A version that failed to load is not retried until the alias moves again."""

    def __init__(
        self,
        source: ModelSource,
        loader: Callable[[str], Any] | None = None,
        on_swap: Callable[[LoadedModel | None, LoadedModel], None] | None = None,
        on_load_failure: Callable[[str, BaseException], None] | None = None,
    ):
        self.source = source
        self._loader = loader or (lambda uri: load_odqa_model(uri, source.tracking_uri))
        self.on_swap = on_swap
        self.on_load_failure = on_load_failure
        self._current: LoadedModel | None = None
        self._refresh_lock = threading.Lock()  # one load at a time; reads never wait for it
        self._failed_version: str | None = None
        self.state = "loading"
        self.last_error: str | None = None

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def refresh(self) -> bool:
        """Serve the source's current version; True when a new one was swapped in. Raises when the
        source cannot be resolved or the version cannot be loaded (the old model keeps serving)."""
        with self._refresh_lock:
            try:
                version = self.source.resolve()
            except Exception as e:
                self._note_error(e)
                raise
            current = self._current
            if current is not None and current.version == version:
                return False
            if version == self._failed_version:
                raise InputError(f"version {version} failed to load before; waiting for the alias to move")
            uri = self.source.version_uri(version)
            log.info(
                "loading %s (version %s) beside %s", uri, version, current.version if current else "none"
            )
            t0 = time.perf_counter()
            try:
                model = self._loader(uri)
            except Exception as e:
                self._failed_version = version
                self._note_error(e)
                if self.on_load_failure:
                    self.on_load_failure(version, e)
                raise
            loaded = LoadedModel(version, uri, model, time.time(), time.perf_counter() - t0)
            self._current = loaded  # the swap: one reference, read once per reader call
            self._failed_version = None
            self.state, self.last_error = "ready", None
            log.info("serving version %s (loaded in %.1fs)", version, loaded.load_seconds)
            if self.on_swap:
                self.on_swap(current, loaded)
            return True

    def _note_error(self, e: BaseException) -> None:
        self.last_error = " ".join(str(e).split()) or type(e).__name__
        if self._current is None:
            self.state = "waiting" if isinstance(e, InputError) else "failed"


class ChampionWatcher:
    """A daemon thread that loads the first model, then checks the alias every `interval_s` seconds
    (0: only the first load; POST /admin/reload checks on demand)."""

    def __init__(self, holder: ModelHolder, interval_s: float):
        self.holder = holder
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="odqa-champion-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.holder.refresh()
            except Exception as e:  # noqa: BLE001 (logged; the model serving keeps serving)
                log.warning("model refresh failed: %s", " ".join(str(e).split()) or type(e).__name__)
            if self.interval_s <= 0 and self.holder.current is not None:
                return
            # Before the first model, retry on a short leash; afterwards on the configured interval.
            wait = self.interval_s if self.interval_s > 0 else 5.0
            if self._stop.wait(wait):
                return
