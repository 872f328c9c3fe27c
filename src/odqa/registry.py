"""The model registry policy: every pipeline run registers a model version with alias `challenger`; it
takes alias `champion` only when its evaluation is complete and its metric beats the champion's on the
same evaluation set (sha256 of the eval QA file) by at least the margin. The read-compare-write of the
champion alias is serialised (see `registry_lock`): a file lock beside a SQLite/file store or at
$ODQA_REGISTRY_LOCK, and on a tracking server a lock held ON the server (`server_lock`), so promotions
from pods that share no volume still run one at a time and the best version ends as champion.

With per-question scores (the evaluate stage's question_scores.json), "beats" means a paired bootstrap
over the shared eval questions puts the one-sided lower bound of the improvement above the margin at
`confidence` (default 95 %): with EM near 4 on 1,152 questions a lucky seed moves the point estimate by a
point or more, which a point comparison would promote. The scores are logged as an artifact of the
version's run and their URI is a version tag, so the next challenger is compared with them; a champion
registered without them (an older odqa) falls back to the point comparison, and the reason says so.

The champion alias is the last registry write of a promotion (decision tags first), and a register
stage that fails after promoting withdraws it (`promotion`): no failed stage leaves a champion."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from filelock import FileLock
from pydantic import Field

from odqa import tracking
from odqa.config import StageConfig
from odqa.schema import QUESTION_SCORES_FILE

logger = logging.getLogger(__name__)

FINGERPRINT_TAG = "odqa.eval_fingerprint"
DECISION_TAG = "odqa.decision"
REASON_TAG = "odqa.decision_reason"
SCORES_URI_TAG = "odqa.question_scores_uri"  # where a version's per-question scores are
BOOTSTRAP_TAG_PREFIX = "odqa.bootstrap_"  # delta, lower, upper, confidence, resamples, questions, seed
QUESTION_SCORES_ARTIFACT_DIR = "odqa_eval"
CHAMPION = "champion"
CHALLENGER = "challenger"
# The server lock: a registered model of this name exists while a promotion holds the lock.
SERVER_LOCK_MODEL = "odqa-registry-lock"
SERVER_LOCK_LEASE_S = 120.0  # a holder older than this died: its lock is broken
SERVER_LOCK_WAIT_S = 300.0


def file_fingerprint(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes: two evaluations are comparable only on the same eval set."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class RegisterConfig(StageConfig):
    model_name: str = Field("odqa", description="registered model name in MLflow")
    metric: str = Field("exact_match", description="metric of metrics.json that decides promotion")
    margin: float = Field(0.0, ge=0, description="how much the metric must beat the champion's by")
    # A champion measured on another eval set is not comparable: keep it (a person decides, e.g. by
    # re-evaluating it) or let the new model take champion.
    promote_when_incomparable: bool = Field(
        False, description="promote over a champion that was evaluated on another eval set"
    )
    confidence: float = Field(
        0.95,
        gt=0.5,
        lt=1,
        description="paired bootstrap: the one-sided lower bound at this confidence of the per-question "
        "improvement must exceed the margin",
    )
    resamples: int = Field(2000, ge=100, description="paired bootstrap resamples of the eval questions")
    bootstrap_seed: int = Field(
        0, description="seed of the bootstrap resampling (a decision is reproducible)"
    )


@dataclass
class Evaluation:
    """What register needs to know about an evaluation to trust it."""

    metrics: dict[str, Any]
    fingerprint: str
    expected_total: int
    # {question id: {"exact_match": 0|100, "f1": 0..100}} (odqa.evaluation's question_scores.json);
    # None: promotion falls back to comparing the point estimates.
    question_scores: dict[str, dict[str, float]] | None = None

    def problem(self, metric: str) -> str | None:
        """Why this evaluation must not promote a model, or None when it is complete."""
        value = self.metrics.get(metric)
        if not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            return f"evaluation has no finite {metric!r}"
        total = self.metrics.get("total")
        if total != self.expected_total:
            return f"evaluation is partial: {total} of {self.expected_total} questions scored"
        if self.expected_total <= 0:
            return "evaluation set is empty"
        return None


@dataclass
class Bootstrap:
    """Paired bootstrap of the mean per-question improvement (challenger - champion), 0-100 scale."""

    delta: float
    lower: float  # one-sided lower bound at `confidence`
    upper: float  # one-sided upper bound at `confidence`
    confidence: float
    resamples: int
    questions: int
    seed: int

    def tags(self) -> dict[str, str]:
        return {f"{BOOTSTRAP_TAG_PREFIX}{k}": str(v) for k, v in asdict(self).items()}

    def describe(self, metric: str, margin: float) -> str:
        return (
            f"{metric} {self.delta:+.2f}, {self.confidence:.0%} lower bound {self.lower:+.2f} "
            f"(paired bootstrap, {self.resamples} resamples of {self.questions} shared questions; margin {margin})"
        )


def paired_bootstrap(
    challenger: list[float], champion: list[float], confidence: float, resamples: int, seed: int
) -> Bootstrap:
    """scipy's percentile bootstrap of the mean per-question difference (both systems resampled together,
    i.e. paired): `lower` is the one-sided bound at `confidence` that promotion checks, `upper` the
    matching quantile on the other side."""
    import numpy as np
    from scipy.stats import bootstrap

    diff = np.asarray(challenger, dtype=np.float64) - np.asarray(champion, dtype=np.float64)
    if diff.size == 0:
        raise ValueError("no shared questions to compare")
    result = bootstrap(
        (diff,),
        np.mean,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        alternative="greater",
        batch=256,  # bounded memory: 256 resamples x questions at a time
        rng=np.random.default_rng(seed),
    )
    return Bootstrap(
        float(diff.mean()),
        float(result.confidence_interval.low),
        float(np.quantile(result.bootstrap_distribution, confidence)),
        confidence,
        resamples,
        int(diff.size),
        seed,
    )


@dataclass
class PromotionDecision:
    model_name: str
    version: str
    promoted: bool
    reason: str
    metric: str
    value: float | None
    champion_version: str | None = None
    champion_value: float | None = None
    aliases: list[str] = field(default_factory=list)
    bootstrap: Bootstrap | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def store_question_scores(tracking_uri: str, run_id: str, scores: dict[str, dict[str, float]]) -> str:
    """Log per-question scores as an artifact of `run_id`; returns their runs:/ URI."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / QUESTION_SCORES_FILE
        path.write_text(json.dumps({"questions": scores}, ensure_ascii=False), encoding="utf-8")
        tracking.client(tracking_uri).log_artifact(run_id, str(path), QUESTION_SCORES_ARTIFACT_DIR)
    return f"runs:/{run_id}/{QUESTION_SCORES_ARTIFACT_DIR}/{QUESTION_SCORES_FILE}"


def fetch_question_scores(tracking_uri: str, uri: str) -> dict[str, dict[str, float]] | None:
    """A version's per-question scores from their artifact URI; None when they cannot be read."""
    import json
    import tempfile

    import mlflow

    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri
            )
            data = json.loads(Path(local).read_text(encoding="utf-8"))
    except Exception as e:  # a deleted run, a moved artifact store: the decision falls back and says so
        logger.warning(
            "cannot read the champion's question scores at %s: %s", uri, str(e).splitlines()[0][:200]
        )
        return None
    questions = data.get("questions") if isinstance(data, dict) else None
    return questions if isinstance(questions, dict) else None


def _lock_path(tracking_uri: str) -> Path | None:
    explicit = os.environ.get("ODQA_REGISTRY_LOCK")
    if explicit:
        return Path(explicit)
    db = tracking.sqlite_path(tracking_uri)
    if db is not None:
        return db.with_name(db.name + ".registry.lock")
    if urlparse(tracking_uri).scheme in ("", "file"):
        return Path(urlparse(tracking_uri).path or tracking_uri) / ".registry.lock"
    return None


def _is_server(tracking_uri: str) -> bool:
    return urlparse(tracking_uri).scheme in ("http", "https", "databricks")


@contextlib.contextmanager
def server_lock(
    tracking_uri: str, wait_s: float = SERVER_LOCK_WAIT_S, lease_s: float = SERVER_LOCK_LEASE_S
) -> Iterator[None]:
    """A mutex kept by the tracking server. MLflow has no compare-and-set on aliases, and re-reading
    after writing cannot fix that (a slow writer that decided against an old champion overwrites a
    better one after the better one checked). Creating a registered model IS atomic (the name is the
    store's primary key): whoever creates SERVER_LOCK_MODEL holds the lock, deleting it releases it.
    A holder that died leaves it behind; after `lease_s` (from the server's creation time) it is broken."""
    from mlflow.exceptions import MlflowException

    c = tracking.client(tracking_uri)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        try:
            c.create_registered_model(
                SERVER_LOCK_MODEL,
                tags={"odqa.holder": token},
                description="odqa promotion in progress (odqa.registry.server_lock); deleted when done",
            )
            break
        except MlflowException as e:
            # DOES_NOT_EXIST: the server's create raced the holder's delete and could not read back
            # what it wrote; whether ours landed is decided by the holder tag below, like a failed create.
            if e.error_code not in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                raise
        try:
            held = c.get_registered_model(SERVER_LOCK_MODEL)
        except MlflowException:
            continue  # released meanwhile
        if held.tags.get("odqa.holder") == token:
            break  # our create did land
        age_s = time.time() - held.creation_timestamp / 1000
        if age_s > lease_s:
            logger.warning("breaking the registry lock held for %.0f s by %s", age_s, held.tags)
            with contextlib.suppress(MlflowException):
                if c.get_registered_model(SERVER_LOCK_MODEL).tags == held.tags:
                    c.delete_registered_model(SERVER_LOCK_MODEL)
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"registry lock {SERVER_LOCK_MODEL!r} on {tracking_uri} held by another promotion for "
                f"more than {wait_s:.0f} s"
            )
        time.sleep(delay * (1 + random.random()))  # lock wait, with jitter so waiters spread out
        delay = min(delay * 2, 0.5)
    try:
        yield
    finally:
        with contextlib.suppress(MlflowException):
            if c.get_registered_model(SERVER_LOCK_MODEL).tags.get("odqa.holder") == token:
                c.delete_registered_model(SERVER_LOCK_MODEL)


@contextlib.contextmanager
def registry_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise champion read-compare-write. SQLite/local stores: an flock beside the store. A tracking
    server: `server_lock`, plus the flock at $ODQA_REGISTRY_LOCK when set (a volume register pods share)."""
    path = _lock_path(tracking_uri)
    with contextlib.ExitStack() as stack:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(FileLock(path))
        if _is_server(tracking_uri):
            stack.enter_context(server_lock(tracking_uri))
        yield


def _tag_float(tags: dict[str, str], key: str) -> float | None:
    try:
        return float(tags[key])
    except (KeyError, ValueError):
        return None


def promote(
    tracking_uri: str, config: RegisterConfig, version: str, evaluation: Evaluation, run_id: str | None = None
) -> PromotionDecision:
    """Give `version` alias challenger, and champion when it earns it; record the decision as tags on
    the version (and on `run_id`)."""
    from mlflow.exceptions import MlflowException

    c = tracking.client(tracking_uri)
    name = config.model_name
    metric = config.metric
    problem = evaluation.problem(metric)
    value = None if problem and metric not in evaluation.metrics else evaluation.metrics.get(metric)
    scores_run = None
    if evaluation.question_scores is not None:  # stored with the run the version came from
        scores_run = run_id or c.get_model_version(name, version).run_id
    with registry_lock(tracking_uri):
        c.set_model_version_tag(name, version, FINGERPRINT_TAG, evaluation.fingerprint)
        if evaluation.question_scores is not None and scores_run:
            uri = store_question_scores(tracking_uri, scores_run, evaluation.question_scores)
            c.set_model_version_tag(name, version, SCORES_URI_TAG, uri)
        for key in ("exact_match", "f1", "total"):
            if key in evaluation.metrics:
                c.set_model_version_tag(name, version, f"odqa.{key}", str(evaluation.metrics[key]))
        c.set_registered_model_alias(name, CHALLENGER, version)
        try:
            champion = c.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            champion = None
        decision = PromotionDecision(name, str(version), False, "", metric, value)
        if champion is not None:
            decision.champion_version = str(champion.version)
            decision.champion_value = _tag_float(champion.tags, f"odqa.{metric}")
        if problem:
            decision.reason = f"not promoted: {problem}"
        elif champion is None:
            decision.promoted, decision.reason = True, "promoted: no champion yet"
        elif champion.tags.get(FINGERPRINT_TAG) != evaluation.fingerprint:
            if config.promote_when_incomparable:
                decision.promoted = True
                decision.reason = (
                    f"promoted: champion v{champion.version} was evaluated on another eval set "
                    "(promote_when_incomparable=True)"
                )
            else:
                decision.reason = (
                    f"not promoted: champion v{champion.version} was evaluated on another eval set; "
                    "re-evaluate it on this set or rerun with promote_when_incomparable"
                )
        elif decision.champion_value is None:
            decision.promoted = True
            decision.reason = f"promoted: champion v{champion.version} has no recorded {metric}"
        else:
            boot, why_not = _bootstrap(tracking_uri, config, evaluation, champion)
            decision.bootstrap = boot
            if boot is not None:
                decision.promoted = boot.lower > config.margin
                verb = "beats" if decision.promoted else "does not beat"
                decision.reason = (
                    f"{'promoted' if decision.promoted else 'not promoted'}: {metric} {float(value):.4f} {verb} "
                    f"champion v{champion.version} {decision.champion_value:.4f} by more than the margin "
                    f"with {config.confidence:.0%} confidence: {boot.describe(metric, config.margin)}"
                )
            elif (
                float(value) >= decision.champion_value + config.margin
                and float(value) > decision.champion_value
            ):
                decision.promoted = True
                decision.reason = (
                    f"promoted: {metric} {float(value):.4f} beats champion v{champion.version} "
                    f"{decision.champion_value:.4f} by >= margin {config.margin} (point comparison: {why_not})"
                )
            else:
                decision.reason = (
                    f"not promoted: {metric} {float(value):.4f} does not beat champion v{champion.version} "
                    f"{decision.champion_value:.4f} by margin {config.margin} (point comparison: {why_not})"
                )
        decision.aliases = [CHALLENGER] + ([CHAMPION] if decision.promoted else [])
        tags = {DECISION_TAG: "promoted" if decision.promoted else "kept", REASON_TAG: decision.reason}
        if decision.bootstrap is not None:
            tags.update(decision.bootstrap.tags())
        for k, v in tags.items():
            c.set_model_version_tag(name, version, k, v)
            if run_id:
                c.set_tag(run_id, k, v)
        if decision.promoted:  # the last write: a failure before it leaves no champion behind
            try:
                c.set_registered_model_alias(name, CHAMPION, version)
            except BaseException:
                with contextlib.suppress(Exception):
                    c.set_model_version_tag(name, version, DECISION_TAG, "failed")
                raise
    logger.info("%s v%s: %s", name, version, decision.reason)
    return decision


def _bootstrap(
    tracking_uri: str, config: RegisterConfig, evaluation: Evaluation, champion
) -> tuple[Bootstrap | None, str]:
    """The paired bootstrap against the champion's stored per-question scores, or (None, why not)."""
    if evaluation.question_scores is None:
        return None, "this evaluation has no per-question scores"
    uri = champion.tags.get(SCORES_URI_TAG)
    if not uri:
        return None, f"champion v{champion.version} has no per-question scores (registered by an older odqa)"
    theirs = fetch_question_scores(tracking_uri, uri)
    if theirs is None:
        return None, f"champion v{champion.version}'s per-question scores could not be read"
    ours = evaluation.question_scores
    shared = [q for q in ours if q in theirs]
    try:
        mine = [float(ours[q][config.metric]) for q in shared]
        other = [float(theirs[q][config.metric]) for q in shared]
    except (KeyError, TypeError, ValueError):
        return None, f"the per-question scores have no {config.metric!r}"
    if not shared:
        return None, "no question is scored in both evaluations"
    return paired_bootstrap(mine, other, config.confidence, config.resamples, config.bootstrap_seed), ""


def withdraw(tracking_uri: str, decision: PromotionDecision, why: str) -> None:
    """Undo a promotion whose stage failed afterwards: give champion back to the version that held it
    (or remove the alias when there was none), if it still points at this version."""
    from mlflow.exceptions import MlflowException

    c = tracking.client(tracking_uri)
    name, version = decision.model_name, decision.version
    with registry_lock(tracking_uri):
        try:
            current = str(c.get_model_version_by_alias(name, CHAMPION).version)
        except MlflowException:
            current = None
        if current == version:
            if decision.champion_version:
                c.set_registered_model_alias(name, CHAMPION, decision.champion_version)
            else:
                c.delete_registered_model_alias(name, CHAMPION)
        c.set_model_version_tag(name, version, DECISION_TAG, "withdrawn")
        c.set_model_version_tag(name, version, REASON_TAG, f"withdrawn: the register stage failed: {why}")
    logger.warning("%s v%s: promotion withdrawn (%s)", name, version, why)


@contextlib.contextmanager
def promotion(
    tracking_uri: str, config: RegisterConfig, version: str, evaluation: Evaluation, run_id: str | None = None
) -> Iterator[PromotionDecision]:
    """`promote`, then the caller's remaining steps; if any of them fails, the promotion is withdrawn
    (champion restored) before the error propagates."""
    decision = promote(tracking_uri, config, version, evaluation, run_id=run_id)
    try:
        yield decision
    except BaseException as e:
        if decision.promoted:
            with contextlib.suppress(Exception):
                withdraw(tracking_uri, decision, f"{type(e).__name__}: {e}".splitlines()[0][:300])
        raise


def register_version(
    tracking_uri: str,
    model_name: str,
    model_uri: str,
    run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Register `model_uri` as a new version of `model_name` and return the version number.

    `tags` are set when the version is created (e.g. `odqa.index`, the Elasticsearch index it searches:
    a version never exists without it, so `prune_indexes` cannot take its index in between).
    `mlflow.register_model` (not the client call) links MLflow 3 logged models (`models:/m-...`)
    by model id, which a tracking server requires. `run_id` is implied by the model URI."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    with registry_lock(tracking_uri):
        version = mlflow.register_model(model_uri, model_name, tags=tags or None)
    return str(version.version)
