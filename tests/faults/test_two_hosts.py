"""Two app hosts over one PostgreSQL primary: one card job queue, one sweep lock, one outbox.

Two gunicorn servers with the shipped ``gunicorn.conf.py`` on two ports
stand for two hosts behind a load balancer; each runs one worker, which
also delivers webhooks (``ANJUKA_WEBHOOK_WORKER=thread``), so two delivery
threads, one per host, share the outbox. Against them:

* desk daemons claim card jobs through both hosts at once: every job is
  handed out once, to one holder;
* two sweeps start at once (``anjuka sweep``, as each host's timer would):
  one runs, the other finds the advisory lock taken and does nothing (the
  test holds a table the running sweep writes last, so it surely still
  holds the lock when the other tries);
* the sweep's alerts are delivered by both hosts' threads at once: every
  alert reaches every subscription once.

The database is a throwaway primary cluster with a streaming replica of its
own (``tests/pg_cluster.py``), as production runs them; the lists each
host serves at the end read the replica.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
import requests
from pg_cluster import primary_cluster, streaming_replica, wait_for_replay
from served import gunicorn

from anjuka.alerts.sweep import ADVISORY_LOCK_KEY
from anjuka.config import Config
from anjuka.persons.identity import resident_id_check_char

pytestmark = pytest.mark.postgres
ANJUKA = str(Path(sys.executable).with_name("anjuka"))
PASSWORD = "two hosts correct horse"
RESIDENTS = 40  # 80 deliveries: more than one delivery pass claims (50)
CARD_JOBS = 24
DAEMONS = 8


class Receiver:
    """A webhook receiver that records each delivery and how many arrive at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[str, int, str]] = []  # path, alert id, delivery key
        self.in_flight = 0
        self.most_at_once = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.in_flight += 1
                    receiver.most_at_once = max(receiver.most_at_once, receiver.in_flight)
                time.sleep(0.03)  # a receiver that takes its time: deliveries overlap
                with receiver.lock:
                    receiver.in_flight -= 1
                    receiver.received.append((self.path, body["alert"]["id"], body["delivery"]))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self) -> int:
        with self.lock:
            return len(self.received)


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def _id_number(serial: int) -> str:
    first17 = f"11010119900101{serial:03d}"
    return first17 + resident_id_check_char(first17)


def _run(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [ANJUKA, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _post(url: str, body: dict, headers: dict) -> dict:
    answer = requests.post(url, json=body, headers=headers, timeout=30)
    assert answer.status_code in (201, 202), answer.text
    return answer.json()


def _advisory_lock_held(conn: psycopg.Connection) -> bool:
    """Whether some session of this database holds the sweep's advisory lock."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
        " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
        " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
        (ADVISORY_LOCK_KEY,),
    ).fetchone()
    return row is not None and row[0] == 1


def _serve_both(stack: ExitStack, env: dict[str, str], tmp_path: Path) -> list[str]:
    """Start both hosts at once (each takes seconds to answer); their base URLs."""
    servers = [gunicorn(env, tmp_path / f"host{i}.log", workers=1) for i in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        starting = [pool.submit(server.__enter__) for server in servers]
    for server, started in zip(servers, starting, strict=True):
        if started.exception() is None:
            stack.push(server)
    return [started.result() for started in starting]


def test_two_hosts_share_the_job_queue_the_sweep_lock_and_the_outbox(tmp_path: Path) -> None:
    with ExitStack() as stack:
        primary = stack.enter_context(primary_cluster())
        replica = stack.enter_context(streaming_replica(primary))
        url = primary.url
        receiver = stack.enter_context(receiving())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANJUKA_", "FLASK_"))}
        env |= {
            "ANJUKA_DATABASE_URL": url,
            "ANJUKA_REPLICA_URL": replica.url,
            "ANJUKA_INSTANCE_PATH": str(tmp_path / "instance"),  # one keys file for both
            "ANJUKA_DB_POOL_SIZE": "4",
            "ANJUKA_WEBHOOK_WORKER": "thread",
            "ANJUKA_WEBHOOK_INTERVAL": "0.2",
            "ANJUKA_THREADS": "4",
        }
        _run(env, "db", "upgrade")
        with ThreadPoolExecutor(1) as pool:  # the account is made while the hosts start
            made = pool.submit(
                _run,
                env,
                "users",
                "create",
                "admin",
                "--role",
                "admin",
                "--password-stdin",
                stdin=PASSWORD,
            )
            hosts = _serve_both(stack, env, tmp_path)
            made.result()
        token = _post(
            f"{hosts[0]}/api/v1/auth/tokens", {"username": "admin", "password": PASSWORD}, {}
        )["token"]
        admin = {"Authorization": f"Bearer {token}"}
        _post(f"{hosts[1]}/api/v1/areas", {"code": "TWO", "name": "两台"}, admin)
        for path in ("/first", "/second"):
            _post(
                f"{hosts[0]}/api/v1/webhooks",
                {"area_code": "TWO", "url": receiver.url + path},
                admin,
            )
        dwelling = _post(
            f"{hosts[1]}/api/v1/dwellings",
            {
                "area_code": "TWO",
                "address": "Two Hosts Road 1",
                "usable_area_m2": 2000,
                "rooms": 200,
                "status": "rentable",
            },
            admin,
        )["id"]
        reader = _post(
            f"{hosts[0]}/api/v1/readers", {"name": "Desk of two", "area_code": "TWO"}, admin
        )
        today = datetime.now(ZoneInfo(Config().timezone)).date().isoformat()

        def arrive(serial: int) -> int:
            body = {
                "dwelling_id": dwelling,
                "arrived_on": today,
                "person": {
                    "document_type": "resident_id",
                    "document_number": _id_number(serial),
                    "name": "两台",
                },
            }
            return _post(f"{hosts[serial % 2]}/api/v1/residences", body, admin)["id"]

        with ThreadPoolExecutor(4) as pool:
            residences = list(pool.map(arrive, range(RESIDENTS)))
        jobs = {
            _post(
                f"{hosts[i % 2]}/api/v1/cards",
                {"residence_id": residence, "reader_id": reader["id"]},
                admin,
            )["job_id"]
            for i, residence in enumerate(residences[:CARD_JOBS])
        }
        assert len(jobs) == CARD_JOBS

        # -- the card job queue: daemons claim through both hosts at once --------------
        reader_headers = {"Authorization": f"Bearer {reader['token']}"}
        start = threading.Barrier(DAEMONS)

        def daemon(number: int) -> list[tuple[int, int]]:
            host = number % 2
            session = requests.Session()
            claimed = []
            start.wait()
            for claim in range(CARD_JOBS + 1):
                # A holder is handed its own job again until it reports: each claim is
                # another daemon's first, as a pool of desks would make them.
                answer = session.get(
                    f"{hosts[host]}/api/v1/readers/{reader['id']}/jobs/next",
                    params={"wait": 0, "holder": f"desk-{number}-{claim}"},
                    headers=reader_headers,
                    timeout=30,
                )
                if answer.status_code == 204:
                    return claimed
                assert answer.status_code == 200, answer.text
                claimed.append((answer.json()["id"], host))
            pytest.fail("a daemon was handed more jobs than there are")

        with ThreadPoolExecutor(DAEMONS) as pool:
            claims = [c for claimed in pool.map(daemon, range(DAEMONS)) for c in claimed]
        taken = Counter(job for job, _host in claims)
        assert set(taken) == jobs
        assert max(taken.values()) == 1, "a job was handed out twice"
        assert {host for _job, host in claims} == {0, 1}, "one host claimed every job"
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT status, attempt, holder FROM card_jobs").fetchall()
        assert len(rows) == CARD_JOBS
        assert all(status == "claimed" and attempt == 1 for status, attempt, _ in rows), rows

        # -- the sweep lock: two sweeps at once, one runs ----------------------------
        # The test holds the sweep's bookkeeping table: the sweep that takes the
        # advisory lock then waits there, holding it, whatever the other does.
        sweep = [ANJUKA, "sweep", "--expiring-days", "3650"]
        with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as watcher:
            holder.execute("LOCK TABLE sweep_cursors IN EXCLUSIVE MODE")
            sweeps = [
                subprocess.Popen(sweep, env=env, stdout=subprocess.PIPE, text=True)
                for _ in range(2)
            ]
            deadline = time.monotonic() + 120
            while all(s.poll() is None for s in sweeps):
                assert time.monotonic() < deadline, "neither sweep ended"
                time.sleep(0.05)
            # One ended while the table is still held: it never got the lock.
            assert _advisory_lock_held(watcher)
            assert [s.poll() is None for s in sweeps].count(True) == 1, "both sweeps ended"
            holder.rollback()
        outputs = [s.communicate(timeout=120)[0] for s in sweeps]
        assert [s.returncode for s in sweeps] == [0, 0]
        skipped = [o for o in outputs if "another sweep is running; nothing done" in o]
        ran = [o for o in outputs if f"raised registration_expiring {RESIDENTS}" in o]
        assert len(skipped) == 1, outputs
        assert len(ran) == 1, outputs
        with psycopg.connect(url) as conn:
            runs = conn.execute("SELECT DISTINCT runs FROM sweep_cursors").fetchall()
            alerts = {
                row[0]
                for row in conn.execute(
                    "SELECT id FROM alerts WHERE kind = 'registration_expiring'"
                )
            }
        assert runs == [(1,)]
        assert len(alerts) == RESIDENTS

        # -- the outbox: both hosts' delivery threads at once, each alert once --------
        deadline = time.monotonic() + 60
        while receiver.count() < 2 * RESIDENTS:
            assert time.monotonic() < deadline, f"{receiver.count()} deliveries arrived"
            time.sleep(0.1)
        time.sleep(1)  # room for a second, wrong delivery to arrive
        with receiver.lock:
            received = list(receiver.received)
        delivered = Counter((path, alert) for path, alert, _key in received)
        assert set(delivered) == {(p, a) for p in ("/first", "/second") for a in alerts}
        assert max(delivered.values()) == 1, "an alert reached a subscription twice"
        # One delivery thread per host, each sending one at a time: two at once
        # means both hosts were delivering.
        assert receiver.most_at_once >= 2
        with psycopg.connect(url) as conn:
            outbox = conn.execute("SELECT status, attempts FROM webhook_deliveries").fetchall()
        assert sorted(set(outbox)) == [("delivered", 1)]
        assert len(outbox) == 2 * RESIDENTS

        # -- the lists read the replica, on both hosts ----------------------------------
        wait_for_replay(primary, replica)
        for host in hosts:
            listed = requests.get(
                f"{host}/api/v1/alerts", params={"page_size": 100}, headers=admin, timeout=30
            )
            assert listed.status_code == 200, listed.text
            assert {a["id"] for a in listed.json()} == alerts
    for i in (1, 2):
        lines = [
            json.loads(line)
            for line in (tmp_path / f"host{i}.log").read_text().splitlines()
            if line.startswith("{")
        ]
        listed_from = [e.get("reads") for e in lines if e.get("endpoint") == "alerts.list_alerts"]
        assert listed_from == ["replica"], listed_from
