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


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(env: dict[str, str], log: Path, *, workers: int = 2) -> Iterator[str]:
    """Serve the app under gunicorn (shipped config, ``workers`` processes); its base URL.

    ``env`` configures the app as production's environment does; gunicorn's
    output goes to ``log``, which a failure to start shows.
    """
    port = free_port()
    environment = {
        **os.environ,
        "ANJUKA_WORKERS": str(workers),
        "ANJUKA_THREADS": "2",
        **env,
    }
    with log.open("w") as output:
        server = subprocess.Popen(
            [
                GUNICORN,
                "-c",
                str(REPO / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{port}",
                "anjuka:create_app()",
            ],
            cwd=REPO,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {log.read_text()[-3000:]}")
            try:
                if requests.get(f"{base}/api/v1/openapi.json", timeout=2).status_code == 200:
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
