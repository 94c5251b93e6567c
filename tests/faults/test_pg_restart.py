"""PostgreSQL restarted under a stream of arrivals, the app served as shipped.

A throwaway PostgreSQL cluster of the test's own (``tests/pg_cluster.py``:
initdb on a free port, run as the ``postgres`` user) serves the app under gunicorn with the shipped
``gunicorn.conf.py``; a few threads send arrivals while the cluster is
restarted (``pg_ctl restart -m fast``). Every arrival must have either
committed (201, and in the database) or failed retryably (503 ``try_again``
with ``Retry-After``, and not in the database); the counts add up, and the
same worker processes serve arrivals again afterwards. The shared server the
other tests use is never touched. When the cluster cannot be made, the test
fails.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import requests
from pg_cluster import Cluster, primary_cluster
from served import ANJUKA, gunicorn, migrate_with_admin

from anjuka.persons.identity import resident_id_check_char

PASSWORD = "restart correct horse"
DESKS = 4


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with primary_cluster() as made:
        yield made


def _id_numbers() -> Iterator[str]:
    """Distinct valid resident ID numbers."""
    birth = date(1980, 1, 1)
    while True:
        for serial in range(1000):
            first17 = f"330203{birth:%Y%m%d}{serial:03d}"
            yield first17 + resident_id_check_char(first17)
        birth += timedelta(days=1)


@dataclass
class Outcome:
    number: str
    status: int
    body: dict
    retry_after: str | None
    sent_at: float


@dataclass
class Stream:
    """Arrivals sent by several desks until told to stop."""

    base: str
    headers: dict
    dwellings: list[int]
    numbers: Iterator[str] = field(default_factory=_id_numbers)
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    #: Two days ago in UTC: past in the registry's calendar whatever its zone.
    arrived_on: str = field(
        default_factory=lambda: (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def desk(self, dwelling: int) -> None:
        session = requests.Session()
        for _ in range(180):  # below the dwelling's capacity
            if self.stop.is_set():
                return
            with self.lock:
                number = next(self.numbers)
            sent_at = time.monotonic()
            answer = session.post(
                f"{self.base}/api/v1/residences",
                json={
                    "dwelling_id": dwelling,
                    "arrived_on": self.arrived_on,
                    "person": {
                        "document_type": "resident_id",
                        "document_number": number,
                        "name": "流动",
                    },
                },
                headers=self.headers,
                timeout=60,
            )
            outcome = Outcome(
                number,
                answer.status_code,
                answer.json(),
                answer.headers.get("Retry-After"),
                sent_at,
            )
            with self.lock:
                self.outcomes.append(outcome)
            if answer.status_code == 503:
                time.sleep(0.05)

    def committed_since(self, instant: float) -> int:
        with self.lock:
            return sum(1 for o in self.outcomes if o.status == 201 and o.sent_at > instant)


def _worker_pids(port: int) -> set[int]:
    """gunicorn's master and workers serving ``port`` (the workers are forks of the master)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"gunicorn" in cmdline and f"127.0.0.1:{port}".encode() in cmdline:
                pids.add(int(entry.name))
    return pids


def _wait_until(condition, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.05)


def test_arrivals_through_a_postgresql_restart_commit_or_fail_retryably(
    cluster: Cluster, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANJUKA_", "FLASK_"))} | {
        "ANJUKA_DATABASE_URL": cluster.url,
        "ANJUKA_INSTANCE_PATH": str(tmp_path / "instance"),
        "ANJUKA_DB_POOL_SIZE": "2",
    }
    migrate_with_admin(env, PASSWORD)

    with gunicorn(env, tmp_path / "gunicorn.log", workers=2) as base:
        token = requests.post(
            f"{base}/api/v1/auth/tokens",
            json={"username": "admin", "password": PASSWORD},
            timeout=30,
        ).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        made = requests.post(
            f"{base}/api/v1/areas",
            json={"code": "PGR", "name": "重启"},
            headers=headers,
            timeout=30,
        )
        assert made.status_code == 201, made.text
        dwellings = []
        for i in range(DESKS):
            dwelling = requests.post(
                f"{base}/api/v1/dwellings",
                json={
                    "area_code": "PGR",
                    "address": f"Restart Road {i}",
                    "usable_area_m2": 2000,
                    "rooms": 200,
                    "status": "rentable",
                },
                headers=headers,
                timeout=30,
            )
            assert dwelling.status_code == 201, dwelling.text
            dwellings.append(dwelling.json()["id"])
        port = int(base.rsplit(":", 1)[1])
        pids_before = _worker_pids(port)
        assert len(pids_before) == 3, pids_before  # the master and two workers

        stream = Stream(base, headers, dwellings)
        desks = [threading.Thread(target=stream.desk, args=(d,)) for d in dwellings]
        for desk in desks:
            desk.start()
        try:
            _wait_until(lambda: stream.committed_since(0) >= 12, 60, "arrivals flow")
            cluster.restart()
            restarted_at = time.monotonic()
            _wait_until(
                lambda: stream.committed_since(restarted_at + 1) >= 12,
                90,
                "arrivals commit again after the restart",
            )
        finally:
            stream.stop.set()
            for desk in desks:
                desk.join(timeout=90)

        # The app serves again without a restart of its own.
        assert _worker_pids(port) == pids_before
        health = requests.get(f"{base}/api/v1/dwellings", headers=headers, timeout=30)
        assert health.status_code == 200

    outcomes = stream.outcomes
    committed = [o for o in outcomes if o.status == 201]
    refused = [o for o in outcomes if o.status == 503]
    others = [(o.status, o.body) for o in outcomes if o.status not in (201, 503)]
    assert others == [], others
    assert refused, "no arrival met the restart: the test proved nothing"
    for outcome in refused:
        assert outcome.body["error"] == "try_again", outcome.body
        assert outcome.retry_after is not None
        assert int(outcome.retry_after) >= 1

    with psycopg.connect(cluster.url) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM residences")}
        arrivals = conn.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'residence.arrive'"
        ).fetchone()[0]
        persons = conn.execute("SELECT count(*) FROM persons").fetchone()[0]
    # Every 201 is in the database, and nothing else is: the 503s left nothing.
    assert stored == {o.body["id"] for o in committed}
    assert len(committed) + len(refused) == len(outcomes)
    assert arrivals == len(committed)
    assert persons == len(committed)

    verified = subprocess.run(
        [ANJUKA, "audit", "verify"], env=env, capture_output=True, text=True, timeout=120
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
