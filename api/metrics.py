"""Prometheus metrics: requests by route and status, their latency, checks, batches; the text
format for GET /metrics. A registry of the app's own (not the process-global one), so that two
apps in one process (tests) do not share counters."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("crosscheck_http_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("crosscheck_http_request_seconds", "time to answer, by route", ["method", "route"],
                                 buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                 registry=self.registry)
        self.checks = Counter("crosscheck_checks", "households checked through POST /checks", registry=self.registry)
        self.check_flags = Counter("crosscheck_check_flags", "flags found by POST /checks", registry=self.registry)
        # Why a check took what it took: the requests gathered with it (store.check_queue: one
        # engine call, or a few when their households overlap) and that group's time. Observed
        # once per check, so their means are per check.
        self.check_together = Histogram("crosscheck_check_together",
                                        "requests gathered with each POST /checks into one group of engine calls",
                                        buckets=(1, 2, 4, 8, 12, 16, 20, 24, 32, 48, 64), registry=self.registry)
        self.check_engine = Histogram("crosscheck_check_engine_seconds",
                                      "time of the group each POST /checks was gathered into, validation to flags",
                                      buckets=(0.002, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.03, 0.05, 0.1,
                                               0.25, 1),
                                      registry=self.registry)
        self.batches = Counter("crosscheck_batches", "uploaded batches finished, by status", ["status"],
                               registry=self.registry)
        self.open_flags = Gauge("crosscheck_open_flags", "flags needing a person, by rule", ["rule_id"],
                                registry=self.registry)
        self.snapshot_age = Gauge("crosscheck_snapshot_age_days", "age of the latest snapshot, by key", ["key"],
                                  registry=self.registry)

        self._answered: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def answered(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request answered: counted by method, route template and status, and timed. The
        labelled series are kept: finding one by its labels (a lock and their checks) costs
        more than the counting, on the event loop every request passes through."""
        key = (method, route, status)
        series = self._answered.get(key)
        if series is None:
            series = self._answered[key] = (self.requests.labels(method, route, str(status)),
                                            self.latency.labels(method, route))
        series[0].inc()
        series[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
