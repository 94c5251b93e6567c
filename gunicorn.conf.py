"""gunicorn settings for Anjuka (production: put a TLS proxy in front)."""

import multiprocessing
import os

bind = os.environ.get("ANJUKA_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("ANJUKA_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("ANJUKA_THREADS", 4))
# Desk daemons long-poll for up to 30 s.
timeout = 60
graceful_timeout = 30
accesslog = "-"
forwarded_allow_ips = os.environ.get("ANJUKA_FORWARDED_ALLOW_IPS", "127.0.0.1")
# Load the app before forking so the keys file is created once.
preload_app = True


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    """A forked worker opens its own database connections, never the master's."""
    from anjuka.core.db import db

    app = server.app.wsgi()
    with app.app_context():
        db.engine.dispose(close=False)


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Start what runs beside the requests in each worker (ANJUKA_WEBHOOK_WORKER=thread)."""
    from anjuka.notifications.operations import start_in_server_worker

    start_in_server_worker(worker.wsgi)


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    """Let the worker's webhook pass finish before it goes."""
    from anjuka.notifications.operations import stop_in_server_worker

    if worker.wsgi is not None:
        stop_in_server_worker(worker.wsgi)
