"""The Kubeflow pipeline as something to compile, run locally, submit or schedule. Heavy imports (kfp,
mlflow) happen inside functions so the CLI starts fast."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odqa.errors import InputError

logger = logging.getLogger(__name__)

# Where `odqa pipeline compile --target T` writes, relative to the checkout it runs in (both committed).
PIPELINE_YAMLS = {
    "cpu": Path("pipelines") / "odqa_pipeline_cpu.yaml",
    "gpu": Path("pipelines") / "odqa_pipeline_gpu.yaml",
}
# The target `submit`/`schedule` compile the installed pipeline for when no --target is given: the
# schedule job's ConfigMap sets it per overlay (manifests/overlays/gpu: gpu).
TARGET_ENV = "ODQA_PIPELINE_TARGET"
PIPELINE_NAME = "odqa"
# Old pipeline parameter names, accepted until 0.2 with a warning.
RENAMED_PARAMETERS = {"index_kind": "retriever_kind", "index_options": "retriever_options"}


def pipeline_arguments(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters under their current names (old ones renamed, with a warning)."""
    from odqa.config import warn_deprecated

    renamed = {}
    for name, value in params.items():
        new = RENAMED_PARAMETERS.get(name)
        if new is not None:
            if new in params:
                raise InputError(f"give pipeline parameter {new} only, not also its old name {name}")
            warn_deprecated(f"pipeline parameter {name}", new)
        renamed[new or name] = value
    return renamed


def load_pipeline(local: bool = False):
    """The pipeline function (imports kfp, so only when needed); `local`: the variant the kfp local runner
    runs (no retry policy)."""
    from odqa.pipeline.dag import build_pipeline, odqa_pipeline

    return build_pipeline("cpu", retries=False) if local else odqa_pipeline


def default_target() -> str:
    return os.environ.get(TARGET_ENV, "cpu") or "cpu"


def gpu_target_from_env(**given: Any):
    """GpuTarget from explicit options, else ODQA_GPUS_PER_NODE / ODQA_GPU_NODE_SELECTOR /
    ODQA_GPU_TOLERATION, else the defaults (what the GPU overlay's node pool offers)."""
    from odqa.pipeline.dag import GpuTarget

    env = {
        "gpus_per_node": os.environ.get("ODQA_GPUS_PER_NODE"),
        "node_selector": os.environ.get("ODQA_GPU_NODE_SELECTOR"),
        "toleration": os.environ.get("ODQA_GPU_TOLERATION"),
    }
    values = {k: v for k, v in env.items() if v} | {k: v for k, v in given.items() if v is not None}
    if "gpus_per_node" in values:
        try:
            values["gpus_per_node"] = int(values["gpus_per_node"])
        except ValueError:
            raise InputError(f"gpus_per_node must be an integer, got {values['gpus_per_node']!r}") from None
        if values["gpus_per_node"] < 1:
            raise InputError(f"gpus_per_node must be at least 1, got {values['gpus_per_node']}")
    if "=" not in values.get("node_selector", "key=value"):
        raise InputError(f"gpu node selector must be key=value, got {values['node_selector']!r}")
    return GpuTarget(**values)


def compile_pipeline(out_path: str | os.PathLike | None = None, target: str | None = None, gpu=None) -> Path:
    """Compile the pipeline for `target` (cpu | gpu; default ODQA_PIPELINE_TARGET, else cpu) into
    `out_path` (default: that target's file under pipelines/)."""
    from kfp import compiler

    from odqa.pipeline.dag import TARGETS, build_pipeline

    target = target or default_target()
    if target not in TARGETS:
        raise InputError(f"compile target must be one of {', '.join(TARGETS)}, not {target!r}")
    out_path = Path(out_path) if out_path is not None else PIPELINE_YAMLS[target]
    pipeline = build_pipeline(target, gpu if gpu is not None else gpu_target_from_env())
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".tmp-{out_path.name}")
    compiler.Compiler().compile(pipeline, str(tmp))
    if out_path.is_file() and _same_yaml(tmp, out_path):
        tmp.unlink()  # kfp orders the header comment's dicts at random: keep the file, not a noisy diff
    else:
        os.replace(tmp, out_path)
    return out_path


def _same_yaml(a: Path, b: Path) -> bool:
    import yaml

    def load(path: Path) -> list:
        return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))

    return load(a) == load(b)


# KFP cron (robfig/cron with seconds): field name, lowest, highest, names accepted for the values.
_CRON_FIELDS = (
    ("seconds", 0, 59, ()),
    ("minutes", 0, 59, ()),
    ("hours", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def _cron_value(text: str, low: int, names: tuple[str, ...]) -> int | None:
    if text.isdigit():
        return int(text)
    if text.upper() in names:
        return names.index(text.upper()) + low
    return None


def _check_cron_field(expression: str, part: str, name: str, low: int, high: int, names: tuple) -> None:
    def bad(why: str) -> InputError:
        return InputError(f"--cron {expression!r}: {name} field {part!r}: {why}")

    for item in part.split(","):
        base, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) < 1):
            raise bad(f"step {step!r} must be a positive integer")
        if base in ("*", "?"):
            if base == "?" and name not in ("day of month", "day of week"):
                raise bad("'?' is allowed only for day of month and day of week")
            continue
        bounds = base.split("-")
        if len(bounds) > 2 or not all(bounds):
            raise bad("expected *, N, N-M, a list of those, each optionally /STEP")
        values = [_cron_value(b, low, names) for b in bounds]
        for text, value in zip(bounds, values, strict=True):
            if value is None or not low <= value <= high:
                allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
                raise bad(f"{text!r} is out of range ({allowed})")
        if len(values) == 2 and values[0] > values[1]:
            raise bad(f"range {base!r} runs backwards")


def validate_cron(expression: str) -> str:
    """KFP cron has six fields, seconds first ("0 0 3 * * *" = 03:00 daily); each value in its range,
    checked here so a typo fails before anything is sent to the cluster."""
    text = expression.strip()
    if text.startswith("@"):
        if text in _CRON_DESCRIPTORS or (text.startswith("@every ") and text[7:].strip()):
            return expression
        raise InputError(
            f"--cron {expression!r}: unknown descriptor; known: {', '.join(_CRON_DESCRIPTORS)}, @every D"
        )
    fields = text.split()
    if len(fields) == 5:
        raise InputError(
            f"--cron {expression!r} has 5 fields; Kubeflow Pipelines cron has 6, seconds first: "
            f"use '0 {expression}' to run at second 0 of those minutes"
        )
    if len(fields) != 6:
        raise InputError(
            f"--cron {expression!r} has {len(fields)} fields; expected 6 (sec min hour dom month dow)"
        )
    for part, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        _check_cron_field(expression, part, name, low, high, names)
    return expression


@dataclass
class LocalRunConfig:
    runs_dir: str = "runs"
    tracking_uri: str | None = None  # None: sqlite:///<runs_dir>/mlflow.db, shared by all local runs
    # Pipeline parameters (see odqa.pipeline.dag); unknown names are an InputError.
    params: dict[str, Any] = field(default_factory=dict)
    # subprocess: every component in this Python environment (fast, what `make run` uses);
    # docker: every component in its container image (ODQA_IMAGE), as on a cluster.
    runner: str = "subprocess"


RUNNERS = ("subprocess", "docker")


@dataclass
class LocalRunResult:
    run_dir: Path
    tracking_uri: str
    parent_run_id: str
    summary: str
    seconds: float


def _pipeline_parameters() -> dict[str, Any]:
    """Pipeline parameter name -> annotation."""
    import inspect

    return {n: p.annotation for n, p in inspect.signature(load_pipeline().pipeline_func).parameters.items()}


KFP_HEALTH_PATH = "/apis/v2beta1/healthz"
PIPELINE_LOG_FILE = "pipeline.log"  # runs/<timestamp>/: everything the stages printed


def check_kfp_host(host: str) -> None:
    """The Kubeflow Pipelines API must answer before anything is compiled or sent."""
    if not host.startswith(("http://", "https://")):
        raise InputError(f"--host {host!r}: give the KFP API endpoint as a URL, e.g. http://localhost:8080")
    from odqa.tracking import probe_http

    probe_http(
        host.rstrip("/") + KFP_HEALTH_PATH,
        "Kubeflow Pipelines",
        "check --host (e.g. kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80) and that the "
        "cluster is up",
    )


class _LogTee:
    """stdout that also goes to a log file, keeping the last lines to find a failed stage's error. A
    stage's traceback goes to the log only: the user gets its last line, once, from the CLI."""

    def __init__(self, stream, log_path: Path, keep: int = 400):
        import collections

        self.stream = stream
        self.log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._partial = ""
        self._in_traceback = False

    def write(self, text: str) -> int:
        self.log.write(text)
        self._partial += text
        *done, self._partial = self._partial.split("\n")
        self.lines.extend(done)
        for line in done:
            self._show(line)
        return len(text)

    def _show(self, line: str) -> None:
        import re

        bare = re.sub(_ANSI, "", line).strip()
        if bare.startswith("Traceback (most recent call last):"):
            self._in_traceback = True
        if not self._in_traceback:
            self.stream.write(line + "\n")
        elif re.match(_ERROR_LINE, bare):
            self._in_traceback = False

    def flush(self) -> None:
        self.stream.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        self.log.close()


_ANSI = "\x1b\\[[0-9;]*m"
_ERROR_LINE = r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Interrupt|Exit)): (.+)$"


def stage_failure(message: str, lines: list[str]) -> tuple[str, str]:
    """(failed task, its one-line error) from the kfp local runner's RuntimeError and the stage output:
    the last `SomethingError: text` line of its traceback, or its last non-empty line."""
    import re

    clean = re.sub(_ANSI, "", message)
    found = re.search(r"Inner task failed: '([^']+)'", clean)
    task = found.group(1) if found else "?"
    error = ""
    for line in reversed([re.sub(_ANSI, "", x).strip() for x in lines]):
        match = re.match(_ERROR_LINE, line)
        if match:
            name, text = match.groups()
            error = text if name == "InputError" else f"{name}: {text}"
            break
    return task, error or "see the log"


DATA_URI_PARAMETERS = ("data_uri", "corpus_uri", "train_uri", "eval_uri", "test_uri")


def _absolute_data_paths(params: dict[str, Any]) -> dict[str, str]:
    """Local paths among the data parameters as absolute paths: the stages do not run in the caller's
    working directory. URIs (s3://, https://, file://) stay as given."""
    from urllib.parse import urlparse

    return {
        name: str(Path(value).expanduser().resolve())
        for name in DATA_URI_PARAMETERS
        if isinstance(value := params.get(name), str) and value and not urlparse(value).scheme
    }


def _orchestrator_log_to(log) -> Callable[[], None]:
    """Route the kfp local orchestrator's own log records ("Skipping task ...", workspace clean-up: it logs
    on the root logger) to the run's log file instead of the terminal; returns the undo."""
    import logging

    def from_kfp(record: logging.LogRecord) -> bool:
        return f"{os.sep}kfp{os.sep}local{os.sep}" in record.pathname

    class _Quiet(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not from_kfp(record)

    class _ToLog(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if from_kfp(record):
                log.write(self.format(record) + "\n")

    root = logging.getLogger()
    quiet, to_log = _Quiet(), _ToLog()
    handlers = list(root.handlers)
    for handler in handlers:
        handler.addFilter(quiet)
    root.addHandler(to_log)

    def undo() -> None:
        root.removeHandler(to_log)
        for handler in handlers:
            handler.removeFilter(quiet)

    return undo


def run_local(config: LocalRunConfig) -> LocalRunResult:
    """Run the whole DAG with the kfp local runner; everything lands in runs/<timestamp>/."""
    from kfp import local

    from odqa import tracking

    if config.runner not in RUNNERS:
        raise InputError(f"--runner must be one of {', '.join(RUNNERS)}, not {config.runner!r}")
    types = _pipeline_parameters()
    named = pipeline_arguments(config.params)
    unknown = sorted(set(named) - set(types))
    if unknown:
        raise InputError(f"unknown pipeline parameter(s) {unknown}; known: {sorted(types)}")
    # KFP checks argument types strictly: an int given for a float parameter is an error there.
    given = {k: float(v) if types[k] is float and isinstance(v, int) else v for k, v in named.items()}
    given.update(_absolute_data_paths(given))
    runs_dir = Path(config.runs_dir).resolve()
    if runs_dir.exists() and not runs_dir.is_dir():
        raise InputError("--runs-dir: exists and is not a folder", path=config.runs_dir)
    tracking_uri = config.tracking_uri or tracking.default_tracking_uri(runs_dir)
    tracking.require_server(tracking_uri)  # before a run folder exists
    if config.runner == "docker":
        kfp_runner("docker", runs_dir)  # fails fast, before a run folder exists, without a Docker engine
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = runs_dir / stamp
    run_dir.mkdir(parents=True, exist_ok=False)
    params = {
        **given,
        "tracking_uri": tracking_uri,
        "run_name": given.get("run_name") or stamp,
    }
    local.init(runner=kfp_runner(config.runner, runs_dir), pipeline_root=str(run_dir / "artifacts"))
    started = time.perf_counter()
    log_path = run_dir / PIPELINE_LOG_FILE
    tee = _LogTee(sys.stdout, log_path)
    orchestrator_log = _orchestrator_log_to(tee.log)
    try:
        with contextlib.redirect_stdout(tee), warnings.catch_warnings():
            # kfp's local runner warns, for every task, that resources and the image are ignored locally.
            warnings.filterwarnings("ignore", module=r"kfp\.local\..*")
            load_pipeline(local=True)(**params)
    except RuntimeError as e:
        if "finished with status" not in str(e):
            raise
        task, error = stage_failure(str(e), list(tee.lines))
        raise InputError(f"stage {task} failed: {error} (log: {log_path})") from None
    finally:
        orchestrator_log()
        tee.close()
    seconds = time.perf_counter() - started
    parent = _find_parent_run(tracking_uri, params.get("experiment", "odqa"), params["run_name"])
    summary = run_summary(tracking_uri, parent, seconds)
    from odqa.io import write_text
    from odqa.schema import RUN_SUMMARY_FILE

    write_text(run_dir / RUN_SUMMARY_FILE, summary)
    return LocalRunResult(run_dir, tracking_uri, parent, summary, seconds)


def kfp_runner(kind: str, runs_dir: Path):
    """The kfp local runner for `kind`. Docker: each component in the odqa image, with the runs folder
    (pipeline root and the SQLite tracking store) and the data folder mounted at the same paths."""
    from kfp import local

    if kind == "subprocess":
        return local.SubprocessRunner(use_venv=False)
    from odqa import settings
    from odqa.pipeline.components import IMAGE

    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as e:  # docker raises DockerException, requests' errors, or FileNotFoundError
        raise InputError(
            f"--runner docker needs a running Docker engine ({type(e).__name__}: {str(e).splitlines()[0]}); "
            "start Docker or use --runner subprocess"
        ) from None
    try:
        client.images.get(IMAGE)
    except Exception:
        raise InputError(
            f"--runner docker: image {IMAGE} is not built; run `docker build -f components/Dockerfile "
            f"-t {IMAGE} .` (or set ODQA_IMAGE)"
        ) from None
    return local.DockerRunner(**docker_run_args(runs_dir, settings.data_dir()))


def docker_run_args(runs_dir: Path, data_dir: Path) -> dict[str, Any]:
    """kfp mounts only the pipeline root (runs/<stamp>/artifacts); the SQLite tracking store beside it
    and the data folder are mounted at the same paths, so paths in parameters mean the same inside."""
    from docker.types import Mount

    runs_dir.mkdir(parents=True, exist_ok=True)
    mounts = [Mount(str(runs_dir), str(runs_dir), type="bind")]
    if data_dir.is_dir():
        mounts.append(Mount(str(data_dir), str(data_dir), type="bind", read_only=True))
    return {"mounts": mounts, "environment": {"ODQA_DATA_DIR": str(data_dir)}}


def _find_parent_run(tracking_uri: str, experiment: str, run_name: str) -> str:
    from odqa import tracking

    c = tracking.client(tracking_uri)
    exp = c.get_experiment_by_name(experiment)
    runs = c.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`odqa.kind` = 'pipeline' and attributes.run_name = '{run_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise RuntimeError(f"no pipeline run named {run_name!r} in experiment {experiment!r}")
    return runs[0].info.run_id


def run_summary(tracking_uri: str, parent_run_id: str, wall_seconds: float | None = None) -> str:
    """A plain-text table of a pipeline run: stage times, recall@k, EM/F1 and the registry decision."""
    from odqa import registry, tracking

    c = tracking.client(tracking_uri)
    parent = c.get_run(parent_run_id)
    lines = [f"pipeline run {parent.info.run_name} ({parent_run_id}), status {parent.info.status}", ""]
    lines.append(f"{'stage':<22} {'seconds':>8}  metrics")
    for run in tracking.stage_runs(tracking_uri, parent_run_id):
        m = run.data.metrics
        shown = {
            k: v
            for k, v in m.items()
            if k.startswith(("by_document.recall", "exact_match", "f1")) and "." not in k[3:]
        }
        shown.update({k: v for k, v in m.items() if k.startswith("by_document.recall_at_")})
        text = "  ".join(f"{k.replace('by_document.', '')}={v:.3f}" for k, v in sorted(shown.items()))
        lines.append(f"{run.info.run_name:<22} {m.get(tracking.DURATION_METRIC, float('nan')):>8.1f}  {text}")
    tags = parent.data.tags
    lines += [
        "",
        f"registry: {tags.get('odqa.model_name', '?')} v{tags.get('odqa.model_version', '?')} "
        f"-> {tags.get(registry.DECISION_TAG, 'no decision (register did not run)')}",
        f"reason:   {tags.get(registry.REASON_TAG, '-')}",
    ]
    if wall_seconds is not None:
        lines.append(f"wall time: {wall_seconds:.0f} s")
    lines.append(f"tracking:  {tracking_uri}")
    return "\n".join(lines) + "\n"


def client_for(host: str):
    import kfp

    return kfp.Client(host=host)


@contextlib.contextmanager
def _package(package: str | os.PathLike | None) -> Iterator[Path]:
    """The given compiled YAML, or the installed pipeline compiled into a temp file (an image or a wheel
    has no checkout to read pipelines/ from)."""
    if package is not None:
        yield Path(package)
        return
    with tempfile.TemporaryDirectory(prefix="odqa-pipeline-") as tmp:
        yield compile_pipeline(Path(tmp) / "odqa_pipeline.yaml")


def submit(
    host: str, params: dict[str, Any], experiment: str = "odqa", package: str | os.PathLike | None = None
) -> str:
    """Submit the pipeline to a Kubeflow Pipelines endpoint; returns the KFP run id."""
    check_kfp_host(host)
    with _package(package) as path:
        run = client_for(host).create_run_from_pipeline_package(
            str(path), arguments=pipeline_arguments(params), experiment_name=experiment, enable_caching=None
        )
    return run.run_id


def schedule(
    host: str,
    cron: str,
    params: dict[str, Any],
    job_name: str = "odqa-nightly",
    experiment: str = "odqa",
    package: str | os.PathLike | None = None,
) -> str:
    """A recurring run (max_concurrency 1: runs never race each other for the champion alias)."""
    validate_cron(cron)
    check_kfp_host(host)
    c = client_for(host)
    exp = c.create_experiment(experiment)
    with _package(package) as path:
        job = c.create_recurring_run(
            experiment_id=exp.experiment_id,
            job_name=job_name,
            cron_expression=cron,
            max_concurrency=1,
            pipeline_package_path=str(path),
            params=pipeline_arguments(params),
            no_catchup=True,
        )
    return job.recurring_run_id
