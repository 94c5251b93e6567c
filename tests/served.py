"""The app as shipped: gunicorn with the repository's ``gunicorn.conf.py``, on a free port.

For what depends on how the app is served (forks, preloading, workers), so
it is tested the way production runs it, not only in process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
ANJUKA = str(Path(sys.executable).with_name("anjuka"))
SHIPPED = REPO / "gunicorn.conf.py"


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def migrate_with_admin(env: dict[str, str], password: str) -> None:
    """Migrate the database ``env`` names and make its ``admin``, as an operator does.

    Both through the ``anjuka`` command, with the shipped password hashing.
    """
    for args, stdin in (
        (["db", "upgrade"], None),
        (["users", "create", "admin", "--role", "admin", "--password-stdin"], password),
    ):
        done = subprocess.run(  # noqa: S603 (this virtualenv's command)
            [ANJUKA, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr


@contextmanager
def gunicorn(env: dict[str, str], log: Path, *, workers: int = 2) -> Iterator[str]:
    """Serve the app under gunicorn (shipped config, ``workers`` processes); its base URL.

    ``env`` configures the app as production's environment does; gunicorn's
    output goes to ``log``, which a failure to start shows.
    """
    environment = {"ANJUKA_WORKERS": str(workers), "ANJUKA_THREADS": "2", **env}
    with serve("anjuka:create_app()", SHIPPED, environment, log) as base:
        yield base


@contextmanager
def serve(
    app: str,
    config: Path | str,
    env: dict[str, str],
    log: Path,
    *,
    ready: str = "/api/v1/openapi.json",
    start_within: float = 60,
) -> Iterator[str]:
    """Serve the WSGI ``app`` with the gunicorn ``config`` on a free port; its base URL.

    The URL is given once ``ready`` (a path) answers without a server error,
    and gunicorn is stopped (SIGTERM, then SIGKILL after 40 s) afterwards.
    ``benchmarks/`` serves its bare reference endpoints with it too.
    """
    port = free_port()
    with log.open("w") as output:
        server = subprocess.Popen(  # noqa: S603 (this virtualenv's gunicorn)
            [GUNICORN, "-c", str(config), "--bind", f"127.0.0.1:{port}", app],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_within
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {log.read_text()[-3000:]}")
            try:
                if requests.get(f"{base}{ready}", timeout=2).status_code < 500:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
