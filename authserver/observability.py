"""Prometheus metrics (multiprocess-safe under gunicorn when PROMETHEUS_MULTIPROC_DIR is set)."""
from __future__ import annotations

import os
import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

REQUESTS = Counter("authserver_http_requests_total", "HTTP requests by endpoint and status", ["endpoint", "status"])
LATENCY = Histogram(
    "authserver_http_request_duration_seconds", "Request latency by endpoint", ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
TOKENS_ISSUED = Counter("authserver_tokens_issued_total", "Access tokens issued", ["auth_method"])
OAUTH_ERRORS = Counter("authserver_oauth_errors_total", "OAuth error responses by error code", ["error"])
CLIENT_AUTH_FAILURES = Counter("authserver_client_auth_failures_total", "Failed client authentications")


class Metrics:
    """Recording helpers; labelled children are looked up once and kept (labels() takes a lock)."""

    def __init__(self):
        self._children: dict[tuple, object] = {}

    def _child(self, metric, *labels):
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def token_issued(self, auth_method: str) -> None:
        self._child(TOKENS_ISSUED, auth_method or "unknown").inc()

    def oauth_error(self, error: str) -> None:
        self._child(OAUTH_ERRORS, error).inc()
        if error == "invalid_client":
            CLIENT_AUTH_FAILURES.inc()

    def observe_request(self, endpoint: str, status: int, started: float) -> None:
        self._child(REQUESTS, endpoint, str(status)).inc()
        self._child(LATENCY, endpoint).observe(time.perf_counter() - started)


SECRETS_EXPIRING = "authserver_client_secrets_expiring"


class StoredStateCollector:
    """Gauges read from the database at scrape time: the same number from every worker, with no
    process having to keep it current. A failed read leaves the gauge out of that scrape."""

    def __init__(self, count_expiring: Callable[[], int], window_days: int):
        self._count_expiring = count_expiring
        self._window_days = window_days

    def collect(self):
        try:
            expiring = self._count_expiring()
        except Exception as exc:  # the database is down: /metrics still answers with the process metrics
            from .outages import note_outage

            note_outage("database", exc)
            return
        yield GaugeMetricFamily(SECRETS_EXPIRING, f"Client secrets (not leaked) that expire within "
                                f"{self._window_days} days and have not expired yet", value=expiring)


def render_metrics(stored_state: StoredStateCollector | None = None) -> tuple[bytes, str]:
    """The process's (under gunicorn: every worker's) metrics, then the gauges of the stored state
    (read in the caller's application context)."""
    # prometheus_client's own variable, set by `authserver serve` for its workers: not a setting.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest()
    if stored_state is None:
        return body, CONTENT_TYPE_LATEST
    stored = CollectorRegistry(auto_describe=False)
    stored.register(stored_state)
    return body + generate_latest(stored), CONTENT_TYPE_LATEST
