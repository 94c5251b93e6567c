"""The real stack: the app behind a real HTTP server, the desk daemon, pcscd, vpcd, cards.

Per backend, one migrated database (``anjuka db upgrade``) and one server
process on 127.0.0.1 serve a module; each test registers its own reader, so
no test sees another's jobs. The daemon (``anjuka-cardreader``) and the
simulated cards (``anjuka-cardsim``, through the ``cardsim`` fixture of
tests/pcsc_fixtures.py) are subprocesses too. Nothing here skips: without
pcscd or PostgreSQL the tests fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from integration_stack import BIN, PASSWORD, READERS, Stack

# The PC/SC harness: importing the fixtures here is what makes pytest find them.
from pcsc_fixtures import cardsim, pcscd, wait_reader  # noqa: F401
from throwaway_db import throwaway_database

PG_ADMIN_URL = os.environ.get("ANJUKA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every integration test needs pcscd: mark them so ``-m 'not pcsc'`` leaves them out."""
    for item in items:
        if "/tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.pcsc)


def _database(backend: str, workdir: Path) -> Iterator[str]:
    with throwaway_database(backend, workdir, "anjuka_it") as url:
        yield url


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A migrated database with a small registry, served over HTTP."""
    workdir = tmp_path_factory.mktemp(f"stack-{backend}")
    databases = _database(backend, workdir)
    url = next(databases)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANJUKA_", "FLASK_"))}
    env.update(ANJUKA_DATABASE_URL=url, ANJUKA_INSTANCE_PATH=str(workdir / "instance"))
    stack = Stack(workdir, env)
    try:
        stack.command("db", "upgrade")
        stack.command(
            "users", "create", "admin", "--role", "admin", "--password-stdin", stdin=PASSWORD
        )
        stack.start_server()
        stack.tokens["admin"] = stack.sign_in("admin")
        assert stack.api("POST", "/areas", "admin", json={"code": "IT", "name": "Integration"}).ok
        estate = stack.api(
            "POST", "/estates", "admin", json={"area_code": "IT", "name": "Estate"}
        ).json()
        dwelling = stack.api(
            "POST",
            "/dwellings",
            "admin",
            json={
                "area_code": "IT",
                "estate_id": estate["id"],
                "address": "Integration Road 1",
                "usable_area_m2": 2000,
                "rooms": 200,
                "status": "rentable",
            },
        ).json()
        stack.ids.update(estate=estate["id"], dwelling=dwelling["id"])
        made = stack.api(
            "POST",
            "/users",
            "admin",
            json={
                "username": "manager",
                "role": "manager",
                "password": PASSWORD,
                "scopes": [f"estate:{estate['id']}"],
            },
        )
        assert made.status_code == 201, made.text
        stack.tokens["manager"] = stack.sign_in("manager")
        yield stack
    finally:
        stack.stop_server()
        next(databases, None)


@dataclass
class DaemonProcess:
    """A running ``anjuka-cardreader``."""

    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@pytest.fixture
def daemon(
    stack: Stack, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., DaemonProcess]]:
    """Factory: start the desk daemon for a reader on a vpcd reader; all stop at the end.

    It asks for ``cardsim`` so that the daemons stop before the test lets go of
    the vpcd readers (the fixture's machine lock).
    """
    request.getfixturevalue("cardsim")
    running: list[DaemonProcess] = []

    def start(
        token: str,
        reader_name: str = READERS[35963],
        card_timeout: float = 30,
        poll_wait: int = 2,
        server: str | None = None,
        home: Path | None = None,
    ) -> DaemonProcess:
        """``home``: the desk PC's state (journal, holder id), to start a daemon again on it."""
        # By default its own journal, so its own holder id.
        home = home or tmp_path / f"daemon-{len(running)}"
        home.mkdir(exist_ok=True)
        log = home / f"daemon-{len(running)}.log"
        args = [
            str(BIN / "anjuka-cardreader"),
            "--server",
            server or stack.url,
            "--reader",
            reader_name,
            "--journal",
            str(home / "journal.json"),
            "--card-timeout",
            str(card_timeout),
            "--poll-wait",
            str(poll_wait),
            "--backoff-max",
            "1",
        ]
        env = {**os.environ, "ANJUKA_READER_TOKEN": token}
        with log.open("wb") as out:
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        started = DaemonProcess(proc, log)
        running.append(started)
        return started

    yield start
    for process in running:
        if process.proc.poll() is None:
            process.proc.send_signal(signal.SIGTERM)
        try:
            process.proc.wait(15)
        except subprocess.TimeoutExpired:
            process.proc.kill()
            process.proc.wait()
