"""MLflow tracking and model registry for pipeline runs.

One parent run per pipeline run; each stage (a KFP component, i.e. a separate process, possibly on
another machine) opens a nested run attached to the parent by its run id (tag `mlflow.parentRunId`),
so the same code works with the local runner and on a cluster: only the tracking URI and the parent
run id travel between components, as plain string parameters.
The registry policy (which version becomes champion) is odqa.registry.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
STAGE_TAG = "odqa.stage"
DURATION_METRIC = "duration_s"
MAX_PARAM_CHARS = 6000


def sqlite_uri(db_path: str | os.PathLike) -> str:
    return f"sqlite:///{Path(db_path).resolve()}"


def default_tracking_uri(runs_dir: str | os.PathLike = "runs") -> str:
    """`runs/mlflow.db`, shared by every `odqa pipeline run`: promotion compares against the champion of
    earlier runs, which a per-run database would never see."""
    return sqlite_uri(Path(runs_dir) / "mlflow.db")


def sqlite_path(tracking_uri: str) -> Path | None:
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///") :])
    return None


def default_artifact_location(tracking_uri: str) -> str | None:
    """Beside a SQLite database, `mlartifacts/`; a tracking server chooses its own (None)."""
    db = sqlite_path(tracking_uri)
    if db is None:
        return None
    return (db.parent / "mlartifacts").resolve().as_uri()


PROBE_TIMEOUT_S = 5.0  # a service that does not answer within this is reported, not retried for minutes
# MLflow's client retries a failing HTTP call 7 times with back-off (minutes for a dead server or a 500
# such as NoSuchBucket); a stage fails after seconds instead, unless the user set their own.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")


def probe_http(url: str, what: str, fix: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Refuse, in seconds, a service that does not answer at all (any HTTP answer, an error status
    included, means it is there: authentication is the client's business)."""
    import urllib.error
    import urllib.request

    from odqa.errors import InputError

    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise InputError(f"{what} at {url} does not answer ({reason}); {fix}") from None


def require_server(tracking_uri: str) -> None:
    """An http(s) tracking URI answers /health (exempt from MLflow's Host check) within seconds, or
    one InputError line naming it."""
    if tracking_uri.startswith(("http://", "https://")):
        probe_http(
            tracking_uri.rstrip("/") + "/health",
            "MLflow",
            "start the server (mlflow server ...) or pass another --tracking-uri, e.g. "
            "sqlite:///runs/mlflow.db",
        )


def client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str | None = None) -> str:
    """The experiment's id, creating it with an explicit artifact location (MLflow would otherwise fix
    `<cwd>/mlruns` at creation time)."""
    from mlflow.exceptions import MlflowException

    c = client(tracking_uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = artifact_location or default_artifact_location(tracking_uri)
    try:
        return c.create_experiment(name, artifact_location=location)
    except MlflowException:  # created meanwhile by another process
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def metric_key(name: str) -> str:
    """MLflow allows letters, digits and `_-. /:` in metric names: `recall@5` becomes `recall_at_5`."""
    name = name.replace("@", "_at_")
    return re.sub(r"[^\w\-. /:]", "_", name)


def flatten_params(params: dict[str, Any]) -> dict[str, str]:
    """Nested configs as dotted keys, values as strings within MLflow's length limit."""
    from odqa.reports import flatten

    return {
        name: (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str))[
            :MAX_PARAM_CHARS
        ]
        for name, value in flatten(params).items()
    }


def start_pipeline_run(
    tracking_uri: str,
    experiment: str,
    run_name: str,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Create the parent run (left RUNNING until `finish_pipeline_run`) and return its id."""
    from mlflow.entities import Param

    require_server(tracking_uri)
    c = client(tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, experiment)
    run = c.create_run(experiment_id, run_name=run_name, tags={"odqa.kind": "pipeline", **(tags or {})})
    if params:
        c.log_batch(run.info.run_id, params=[Param(k, v) for k, v in flatten_params(params).items()])
    return run.info.run_id


def finish_pipeline_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    client(tracking_uri).set_terminated(run_id, status)


@dataclass
class StageRun:
    """A nested run for one stage; methods log to it."""

    tracking_uri: str
    run_id: str
    parent_run_id: str
    stage: str

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten_params(params)
        if flat:
            client(self.tracking_uri).log_batch(self.run_id, params=[Param(k, v) for k, v in flat.items()])

    def log_metrics(self, metrics: dict[str, Any], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = [
            Metric(metric_key(k), float(v), now, step)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
        ]
        if values:
            c = client(self.tracking_uri)
            c.log_batch(self.run_id, metrics=values)
            # Mirrored on the pipeline run as "<stage>.<metric>", so the run list compares pipeline runs
            # (EM, F1, recall@k, seconds per stage) without opening each stage run.
            mirrored = [Metric(f"{self.stage}.{m.key}", m.value, m.timestamp, m.step) for m in values]
            c.log_batch(self.parent_run_id, metrics=mirrored)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        path = Path(path)
        c = client(self.tracking_uri)
        if path.is_dir():
            c.log_artifacts(self.run_id, str(path), artifact_path)
        elif path.is_file():
            c.log_artifact(self.run_id, str(path), artifact_path)
        else:
            logger.warning("not logging missing artifact %s", path)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        client(self.tracking_uri).log_dict(self.run_id, obj, artifact_file)

    def set_tags(self, tags: dict[str, Any]) -> None:
        c = client(self.tracking_uri)
        for k, v in tags.items():
            c.set_tag(self.run_id, k, str(v))


@contextlib.contextmanager
def stage_run(
    tracking_uri: str, parent_run_id: str, stage: str, params: dict[str, Any] | None = None
) -> Iterator[StageRun]:
    """Open a nested run under `parent_run_id`; logs its wall time. A failing stage marks its run and
    the parent run FAILED (tag `odqa.failed_stage`) before the exception propagates."""
    c = client(tracking_uri)
    parent = c.get_run(parent_run_id)
    run = c.create_run(
        parent.info.experiment_id,
        run_name=stage,
        tags={PARENT_TAG: parent_run_id, STAGE_TAG: stage},
    )
    sr = StageRun(tracking_uri, run.info.run_id, parent_run_id, stage)
    if params:
        sr.log_params(params)
    started = time.perf_counter()
    try:
        yield sr
    except BaseException:
        sr.log_metrics({DURATION_METRIC: time.perf_counter() - started})
        c.set_terminated(sr.run_id, "FAILED")
        c.set_tag(parent_run_id, "odqa.failed_stage", stage)
        c.set_terminated(parent_run_id, "FAILED")
        raise
    sr.log_metrics({DURATION_METRIC: time.perf_counter() - started})
    c.set_terminated(sr.run_id, "FINISHED")


def write_run_handle(path: str | os.PathLike, tracking_uri: str, parent_run_id: str) -> None:
    """The parent run as a small JSON file: KFP passes it between components as an artifact (the kfp
    2.17 local runner replaces task-output *parameters* fed into a ParallelFor with the loop item)."""
    from odqa.io import write_json

    write_json(path, {"tracking_uri": tracking_uri, "parent_run_id": parent_run_id})


def read_run_handle(path: str | os.PathLike) -> tuple[str, str]:
    from odqa.io import read_json

    handle = read_json(path)
    return handle["tracking_uri"], handle["parent_run_id"]


@contextlib.contextmanager
def tracked_stage(
    handle_path: str | os.PathLike, stage: str, params: dict[str, Any] | None = None
) -> Iterator[StageRun]:
    """`stage_run` under the parent run named by a run handle file."""
    tracking_uri, parent_run_id = read_run_handle(handle_path)
    with stage_run(tracking_uri, parent_run_id, stage, params) as sr:
        yield sr


def stage_runs(tracking_uri: str, parent_run_id: str) -> list:
    """Nested runs of a pipeline run, oldest first."""
    c = client(tracking_uri)
    parent = c.get_run(parent_run_id)
    runs = c.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
        max_results=1000,
    )
    return sorted(runs, key=lambda r: r.info.start_time)
