"""gunicorn settings for Anjuka (production: put a TLS proxy in front)."""

import multiprocessing
import os
import shutil
import tempfile

from anjuka.core.logs import LOGGING

bind = os.environ.get("ANJUKA_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("ANJUKA_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("ANJUKA_THREADS", 4))
# Desk daemons long-poll for up to 30 s.
timeout = 60
graceful_timeout = 30
# gunicorn's largest: any longer line gets gunicorn's own HTML 414 (docs/deployment.md).
limit_request_line = 8190
# One JSON object per line (anjuka/core/logs.py); the app logs each request itself.
logconfig_dict = LOGGING
forwarded_allow_ips = os.environ.get("ANJUKA_FORWARDED_ALLOW_IPS", "127.0.0.1")
# Load the app before forking so the keys file is created once.
preload_app = True
# Each worker counts its requests in files here, added up at scrape time (set
# before the app imports prometheus_client; docs/deployment.md).
_own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="anjuka-metrics-")


def on_starting(server):  # type: ignore[no-untyped-def]
    """Forget the figures of an earlier run left in a configured metrics directory."""
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], mode=0o700, exist_ok=True)
    for entry in os.scandir(os.environ["PROMETHEUS_MULTIPROC_DIR"]):
        if entry.name.endswith(".db"):
            os.unlink(entry.path)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """A gone worker's live gauges (pool use) no longer count."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # type: ignore[no-untyped-def]
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    """A forked worker opens its own database connections, never the master's."""
    from anjuka.core.db import db
    from anjuka.core.replica import router

    app = server.app.wsgi()
    with app.app_context():
        db.engine.dispose(close=False)
        replica = router()
        if replica is not None:
            replica.engine.dispose(close=False)


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Start what runs beside the requests in each worker (ANJUKA_WEBHOOK_WORKER=thread)."""
    from anjuka.notifications.operations import start_in_server_worker

    start_in_server_worker(worker.wsgi)


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    """Let the worker's webhook pass finish before it goes."""
    from anjuka.notifications.operations import stop_in_server_worker

    if worker.wsgi is not None:
        stop_in_server_worker(worker.wsgi)
