"""Prometheus metrics of one service (a registry of its own, so two apps in one process, as in tests,
count separately). Scraped at GET /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Request latency buckets (seconds): the 150 ms target sits between two of them.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "odqa_requests",
            "HTTP requests answered, by route and status code",
            ["route", "status"],
            registry=r,
        )
        self.errors = Counter(
            "odqa_request_errors",
            "requests answered with an error status (4xx: the client's, 5xx: ours), by route and status",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "odqa_request_latency_seconds",
            "time from request to response, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.questions = Counter("odqa_questions", "questions answered", registry=r)
        self.batch_size = Histogram(
            "odqa_batch_questions", "questions per reader call", buckets=BATCH_BUCKETS, registry=r
        )
        self.model_info = Gauge("odqa_model_info", "1 for the model version serving", ["version"], registry=r)
        self.swaps = Counter("odqa_model_swaps", "times a new model version was swapped in", registry=r)
        self.load_failures = Counter(
            "odqa_model_load_failures", "model versions that failed to load", registry=r
        )

    def serving(self, old_version: str | None, new_version: str) -> None:
        if old_version is not None:
            self.model_info.remove(old_version)
        self.model_info.labels(version=new_version).set(1)
        self.swaps.inc()
