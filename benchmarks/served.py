"""Serving under gunicorn and loading it from concurrent clients, for ``benchmarks/run``.

``gunicorn(app, config, env, log)`` serves a WSGI app spec on a free port with
a gunicorn config (the shipped ``gunicorn.conf.py`` for Anjuka, or
``benchmarks/gunicorn_bare.py``: the same settings for the bare reference
app) and yields its base URL. ``load(...)`` sends requests from ``clients``
threads, one ``requests.Session`` each, and returns the rate and latencies.
The clients run on the same machine as the servers: their CPU is part of
both sides of each ratio alike.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
# The tests' launcher (tests/served.py), shared: the benchmark serves as the tests do.
sys.path.insert(0, str(REPO / "tests"))
from served import SHIPPED as SHIPPED  # noqa: E402
from served import serve  # noqa: E402

BARE = "python:benchmarks.gunicorn_bare"


@contextmanager
def gunicorn(app: str, config: str, env: dict[str, str], log: Path, ready: str) -> Iterator[str]:
    """Serve ``app`` with ``config``; its base URL once ``ready`` (a path) answers."""
    with serve(app, config, env, log, ready=ready, start_within=90) as base:
        yield base


def load(
    url: str,
    body: Callable[[int], dict],
    *,
    headers: dict[str, str] | None = None,
    clients: int,
    requests_total: int,
    warmup: int = 0,
) -> dict:
    """POST ``body(i)`` to ``url`` ``requests_total`` times from ``clients`` threads.

    Each client first sends ``warmup`` requests of its own (not timed: the
    workers' connections and first-request work). Returns requests per
    second over the timed part, the median and p99 latency in ms, and the
    count of each status code.
    """
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(10**9))
    start = threading.Barrier(clients + 1)
    remaining = [requests_total]
    resent = [0]

    def take() -> int | None:
        with lock:
            if remaining[0] <= 0:
                return None
            remaining[0] -= 1
            return next(counter)

    def client() -> None:
        with requests.Session() as session:
            session.headers.update(headers or {})
            for _ in range(warmup):
                with lock:
                    n = next(counter)
                session.post(url, json=body(n), timeout=60)
            start.wait()
            while (n := take()) is not None:
                began = time.perf_counter()
                try:
                    response = session.post(url, json=body(n), timeout=60)
                except requests.ConnectionError:
                    # A kept-alive connection the server closed while idle (gunicorn's
                    # keepalive, past the warm-up): sent again on a new one, as a client would.
                    with lock:
                        resent[0] += 1
                    response = session.post(url, json=body(n), timeout=60)
                took = time.perf_counter() - began
                with lock:
                    latencies.append(took)
                    statuses[response.status_code] += 1
                    if response.status_code >= 400 and not errors:
                        errors.append(response.text[:500])

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "rate": len(latencies) / seconds,
        "median_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "clients": clients,
        "first_error": errors[0] if errors else None,
        "resent": resent[0],
    }
