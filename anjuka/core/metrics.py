"""Request metrics and logs (Prometheus, ``prometheus_client``), kept as requests are answered.

Each process counts its own requests; under gunicorn, whose workers are
separate processes, ``prometheus_client``'s multiprocess mode adds them up
at scrape time: the shipped ``gunicorn.conf.py`` sets
``PROMETHEUS_MULTIPROC_DIR`` before the app is imported, and each worker
writes its figures there. What the database knows (card jobs, alerts,
webhook backlog, the sweep) is read at scrape time instead
(``anjuka.ops.metrics``), the same whichever worker answers.
"""

from __future__ import annotations

import os
import time

import sqlalchemy as sa
from flask import Flask, Response, g, request
from prometheus_client import Counter, Gauge, Histogram

from anjuka.core.db import db
from anjuka.core.logs import log_request

#: A desk daemon's long poll waits up to 30 s: the buckets reach past it.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter(
    "anjuka_http_requests",
    "Requests answered, by method, endpoint (the view's name) and status.",
    ["method", "endpoint", "status"],
)
LATENCY = Histogram(
    "anjuka_http_request_duration_seconds",
    "Time to answer a request, by method and endpoint.",
    ["method", "endpoint"],
    buckets=LATENCY_BUCKETS,
)
POOL_IN_USE = Gauge(
    "anjuka_db_pool_connections_in_use",
    "Database connections checked out of the pools (all live workers together).",
    multiprocess_mode="livesum",
)
POOL_CAPACITY = Gauge(
    "anjuka_db_pool_capacity",
    "Connections the pools may hold, overflow included (all live workers together).",
    multiprocess_mode="livesum",
)


def _endpoint() -> str:
    return request.endpoint or "unmatched"


def _start() -> None:
    g.started = time.perf_counter()


def _answered(response: Response) -> Response:
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    endpoint = _endpoint()
    REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
    LATENCY.labels(request.method, endpoint).observe(seconds)
    log_request(request.method, endpoint, response.status_code, seconds)
    return response


def _watch_pool(engine: sa.Engine) -> None:
    """Count checked-out connections; the capacity once per process, at its first checkout."""
    pool = engine.pool
    counted: set[int] = set()

    @sa.event.listens_for(engine, "checkout")
    def _checkout(*_args: object) -> None:
        # Not at start: the master process preloads the app and must not count a pool.
        if os.getpid() not in counted:
            counted.add(os.getpid())
            size = getattr(pool, "size", None)
            overflow = getattr(pool, "_max_overflow", 0)
            if callable(size):
                POOL_CAPACITY.inc(size() + max(overflow, 0))
        POOL_IN_USE.inc()

    @sa.event.listens_for(engine, "checkin")
    def _checkin(*_args: object) -> None:
        POOL_IN_USE.dec()


def init_app(app: Flask) -> None:
    """Time every request from the first hook on; count and log it when it is answered."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_answered)
    with app.app_context():
        _watch_pool(db.engine)
