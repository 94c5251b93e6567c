"""Reads that may lag go to a real streaming replica; arrivals to the primary; fallbacks.

A throwaway primary cluster and a hot standby made from it with
``pg_basebackup -R`` (``tests/pg_cluster.py``): PostgreSQL's own streaming
replication, nothing standing in for it. The replica's replay is paused
with ``pg_wal_replay_pause()`` to prove which backend answered: while it is
paused, the statistics and the lists show the replica's older state, and a
read of the primary would show the new arrival. Each request's log line
says which backend answered (``reads``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pg_cluster import Cluster, primary_cluster, streaming_replica, wait_for_replay

from anjuka import create_app
from anjuka.config import Config
from anjuka.core.db import db
from anjuka.core.replica import ReplicaRouter
from anjuka.core.time import local_today

# One pair of clusters for the module: its tests run in one pytest process.
pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("replica")]
PASSWORD = "replica correct horse"


@dataclass
class Setup:
    primary: Cluster
    replica: Cluster
    app: Flask
    headers: dict
    dwelling: int

    @property
    def router(self) -> ReplicaRouter:
        return self.app.extensions["anjuka_replica"]

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def arrive(self, number: str) -> int:
        answer = self.client().post(
            "/api/v1/residences",
            json={
                "dwelling_id": self.dwelling,
                "arrived_on": self.today,
                "person": {
                    "document_type": "resident_id",
                    "document_number": number,
                    "name": "副本",
                },
            },
            headers=self.headers,
        )
        assert answer.status_code == 201, answer.json
        return answer.json["id"]

    @property
    def today(self) -> str:
        with self.app.app_context():
            return local_today().isoformat()

    def residents_in_stats(self) -> int:
        answer = self.client().get(
            "/api/v1/stats/occupancy",
            query_string={"area_code": "REP", "from": self.today, "to": self.today},
            headers=self.headers,
        )
        assert answer.status_code == 200, answer.json
        return answer.json["series"][-1]["residents"]

    def listed_residents(self) -> set[int]:
        answer = self.client().get(
            f"/api/v1/dwellings/{self.dwelling}/residents", headers=self.headers
        )
        assert answer.status_code == 200, answer.json
        return {r["id"] for r in answer.json}

    def pause_replay(self) -> None:
        with self.replica.connect() as conn:
            conn.execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        with self.replica.connect() as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
        wait_for_replay(self.primary, self.replica)

    def in_primary(self, residence: int) -> bool:
        with self.primary.connect() as conn:
            row = conn.execute("SELECT count(*) FROM residences WHERE id = %s", (residence,))
            return row.fetchone() == (1,)

    def in_replica(self, residence: int) -> bool:
        with self.replica.connect() as conn:
            row = conn.execute("SELECT count(*) FROM residences WHERE id = %s", (residence,))
            return row.fetchone() == (1,)


def _id_number(serial: int) -> str:
    from anjuka.persons.identity import resident_id_check_char

    first17 = f"33020319850301{serial:03d}"
    return first17 + resident_id_check_char(first17)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    from anjuka.auth.operations import create_user

    instance = tmp_path_factory.mktemp("replica-instance")
    with primary_cluster() as primary, streaming_replica(primary) as replica:
        config = Config(
            instance_path=instance,
            database_url=primary.url,
            replica_url=replica.url,
            replica_max_lag=60,
            keys_file=instance / "keys.json",
            testing=True,
        )
        app = create_app(config)
        with app.app_context():
            db.create_all()
            create_user("admin", "admin", PASSWORD, [])
            db.session.commit()
        client = app.test_client()
        token = client.post(
            "/api/v1/auth/tokens", json={"username": "admin", "password": PASSWORD}
        ).json["token"]
        headers = {"Authorization": f"Bearer {token}"}
        made = client.post("/api/v1/areas", json={"code": "REP", "name": "副本区"}, headers=headers)
        assert made.status_code == 201, made.json
        dwelling = client.post(
            "/api/v1/dwellings",
            json={
                "area_code": "REP",
                "address": "Replica Road 1",
                "usable_area_m2": 500,
                "rooms": 50,
                "status": "rentable",
            },
            headers=headers,
        )
        assert dwelling.status_code == 201, dwelling.json
        wait_for_replay(primary, replica)
        yield Setup(primary, replica, app, headers, dwelling.json["id"])
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        app.extensions["anjuka_replica"].engine.dispose()


@pytest.fixture
def reads(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Which backend answered each replicated request, from the request log lines."""
    answered: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            backend = getattr(record, "reads", None)
            if backend is not None:
                answered.append(backend)

    handler = Collect()
    requests_log = logging.getLogger("anjuka.requests")
    requests_log.addHandler(handler)
    previous = requests_log.level
    requests_log.setLevel(logging.INFO)
    try:
        yield answered
    finally:
        requests_log.removeHandler(handler)
        requests_log.setLevel(previous)


def test_statistics_and_lists_read_the_replica_and_arrivals_the_primary(
    setup: Setup, reads: list[str]
) -> None:
    setup.router.forget()
    before, listed = setup.residents_in_stats(), setup.listed_residents()
    setup.pause_replay()
    try:
        residence = setup.arrive(_id_number(1))
        # The arrival was decided and written on the primary; the paused replica lacks it.
        assert setup.in_primary(residence)
        assert not setup.in_replica(residence)
        # A read that decides nothing shows the replica's older state: the replica answered.
        assert setup.residents_in_stats() == before
        assert setup.listed_residents() == listed
        # The dashboard page and the offline bundle read the replica too.
        page = setup.client().get("/dashboard", headers=setup.headers)
        assert page.status_code == 200
        bundle = setup.client().get("/api/v1/offline-bundle", headers=setup.headers)
        assert bundle.status_code == 200, bundle.json
        # A record's own page is not a list: it reads the primary.
        own = setup.client().get(f"/api/v1/residences/{residence}", headers=setup.headers)
        assert own.status_code == 200, own.json
    finally:
        setup.resume_replay()
    assert setup.residents_in_stats() == before + 1
    assert setup.listed_residents() == listed | {residence}
    assert reads == ["replica"] * 8


def test_a_reveal_reads_the_primary(setup: Setup, reads: list[str]) -> None:
    setup.router.forget()
    setup.pause_replay()
    try:
        residence = setup.arrive(_id_number(2))
        revealed = setup.client().get(
            f"/api/v1/dwellings/{setup.dwelling}/residents",
            query_string={"reveal": "true"},
            headers=setup.headers,
        )
        assert revealed.status_code == 200, revealed.json
        assert residence in {r["id"] for r in revealed.json}
        # Without a reveal the same list still comes from the (paused) replica.
        assert residence not in setup.listed_residents()
    finally:
        setup.resume_replay()
    assert reads == ["primary", "replica"]


def test_a_replica_lagging_past_the_bound_leaves_the_reads_to_the_primary(
    setup: Setup, reads: list[str]
) -> None:
    setup.router.forget()
    setup.router.max_lag = 0.5
    setup.pause_replay()
    try:
        residence = setup.arrive(_id_number(3))
        time.sleep(1.0)  # the replica's last replayed commit is now older than the bound
        assert residence in setup.listed_residents()
    finally:
        setup.router.max_lag = 60
        setup.resume_replay()
    setup.router.forget()
    assert residence in setup.listed_residents()
    assert reads == ["primary", "replica"]


def test_a_stopped_replica_leaves_the_reads_to_the_primary(setup: Setup, reads: list[str]) -> None:
    # The verdict is kept: the first read after the stop meets a replica it
    # believed in, fails on it, and is answered from the primary in the same request.
    setup.router.forget()
    setup.router.check_every = 3600
    before = setup.residents_in_stats()
    setup.replica.stop()
    try:
        residence = setup.arrive(_id_number(4))
        assert residence in setup.listed_residents()
        # Until the next check the replica is left out; the check finds it down.
        assert residence in setup.listed_residents()
        setup.router.forget()
        assert setup.residents_in_stats() == before + 1
        assert not setup.router.usable()
    finally:
        setup.router.check_every = 2.0
        setup.replica.start()
    wait_for_replay(setup.primary, setup.replica)
    setup.router.forget()
    assert residence in setup.listed_residents()
    assert reads == ["replica", "primary", "primary", "primary", "replica"]


def test_a_replica_is_read_from_the_environment_and_checked_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.setenv("ANJUKA_REPLICA_URL", "postgresql://anjuka@replica.invalid/anjuka")
    monkeypatch.setenv("ANJUKA_REPLICA_MAX_LAG", "2.5")
    config = Config.from_env()
    assert config.resolved_replica_url == "postgresql+psycopg://anjuka@replica.invalid/anjuka"
    assert config.replica_max_lag == 2.5
    instance = tmp_path_factory.mktemp("replica-checks")
    primary = "postgresql://anjuka@primary.invalid/anjuka"
    for database_url, max_lag in ((None, 10.0), (primary, 0.0), (primary, 301.0)):
        with pytest.raises(RuntimeError, match="ANJUKA_REPLICA"):
            create_app(
                Config(
                    instance_path=instance,
                    database_url=database_url,
                    replica_url=config.replica_url,
                    replica_max_lag=max_lag,
                    keys_file=instance / "keys.json",
                    testing=True,
                )
            )
