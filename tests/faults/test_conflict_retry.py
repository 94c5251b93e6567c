"""A registration that meets a deadlock or serialization failure is tried again inside the request.

The conflicts are raised where PostgreSQL raises them, in the middle of the
arrival's transaction (after its audit event and its signal handlers have
written), so a try that is rolled back must leave nothing behind and the try
that commits must have written everything once. A real deadlock against
another transaction is made on PostgreSQL at the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from anjuka.audit.models import AuditEvent
from anjuka.audit.operations import verify
from anjuka.core import signals, transactions
from anjuka.core.db import db
from anjuka.persons.models import Person
from anjuka.residences.models import Residence
from anjuka.stats.models import AreaDay


def _count(model: type, *where: object) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


class Faults:
    """Raise ``error()`` from the arrival's own transaction, the first ``times`` tries."""

    def __init__(self) -> None:
        self.times = 0
        self.tries = 0
        self.error = _deadlock

    def __call__(self, _residence: Residence, **_: object) -> None:
        self.tries += 1
        if self.tries <= self.times:
            raise self.error()


def _deadlock() -> sa_exc.DBAPIError:
    return sa_exc.OperationalError(
        "INSERT INTO residences ...", {}, psycopg.errors.DeadlockDetected("deadlock detected")
    )


def _serialization_failure() -> sa_exc.DBAPIError:
    return sa_exc.OperationalError(
        "UPDATE stats_area_days ...",
        {},
        psycopg.errors.SerializationFailure("could not serialize access"),
    )


def _lost_connection() -> sa_exc.DBAPIError:
    return sa_exc.OperationalError(
        "COMMIT",
        {},
        psycopg.OperationalError("server closed the connection unexpectedly"),
        connection_invalidated=True,
    )


@pytest.fixture
def faults(app, monkeypatch) -> Iterator[Faults]:
    monkeypatch.setattr(transactions, "CONFLICT_PAUSE", 0.001)
    injected = Faults()
    # Connected last: the stats and alerts handlers have written when it raises.
    signals.residence_arrived.connect(injected)
    yield injected
    signals.residence_arrived.disconnect(injected)


@pytest.fixture
def desk_at(create_area, create_dwelling, create_user) -> tuple[dict, int]:
    create_area("R")
    desk = create_user("supervisor", ["area:R"])
    return desk["headers"], create_dwelling("R", usable=40, rooms=4)


@pytest.mark.parametrize("error", [_deadlock, _serialization_failure])
def test_a_conflict_is_retried_and_its_effects_happen_once(faults, desk_at, arrive, error):
    headers, dwelling = desk_at
    faults.error, faults.times = error, transactions.CONFLICT_TRIES - 1

    done = arrive(headers, dwelling, phone="13800001234")

    assert done.status_code == 201, done.json
    assert faults.tries == transactions.CONFLICT_TRIES
    assert _count(Residence) == 1
    assert _count(Person) == 1
    assert _count(AuditEvent, AuditEvent.action == "residence.arrive") == 1
    # The kept statistics counted the arrival once, not once per try.
    assert db.session.scalar(sa.select(sa.func.sum(AreaDay.arrivals))) == 1
    assert verify().ok


def test_a_conflict_on_every_try_answers_try_again_and_writes_nothing(faults, desk_at, arrive):
    headers, dwelling = desk_at
    events = _count(AuditEvent)
    faults.times = 99

    refused = arrive(headers, dwelling)

    assert refused.status_code == 503
    assert refused.json["error"] == "try_again"
    assert int(refused.headers["Retry-After"]) >= 1
    assert faults.tries == transactions.CONFLICT_TRIES
    assert (_count(Residence), _count(Person), _count(AuditEvent)) == (0, 0, events)
    assert db.session.scalar(sa.select(sa.func.sum(AreaDay.arrivals))) in (None, 0)


def test_a_lost_connection_is_not_retried_inside_the_request(faults, desk_at, arrive):
    headers, dwelling = desk_at
    faults.error, faults.times = _lost_connection, 1

    refused = arrive(headers, dwelling)

    assert (refused.status_code, refused.json["error"]) == (503, "try_again")
    assert refused.headers["Retry-After"] == str(refused.json["retry_after"])
    assert faults.tries == 1
    assert _count(Residence) == 0
    # The same request sent again goes through.
    assert arrive(headers, dwelling).status_code == 201


def test_a_view_not_marked_for_retry_answers_a_conflict_at_once(app, client, create_user):
    viewer = create_user("supervisor")
    calls = []

    def conflict(*_: object, **__: object) -> None:
        calls.append(1)
        raise _deadlock()

    sa.event.listen(db.engine, "before_cursor_execute", conflict)
    try:
        answer = client.get("/api/v1/alerts", headers=viewer["headers"])
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", conflict)
    assert (answer.status_code, answer.json["error"]) == (503, "try_again")
    assert len(calls) == 1


@pytest.mark.postgres
def test_a_real_deadlock_with_another_transaction_is_retried_not_surfaced(
    app, backend, desk_at, arrive, caplog
):
    """Another transaction holds the area's audit chain and then wants the dwelling.

    The arrival locks the dwelling first and then waits for the chain: a
    deadlock, which PostgreSQL breaks by aborting the arrival (it waited
    first). The retry then finds the way free once the other commits.
    """
    assert backend == "postgresql"
    headers, dwelling = desk_at
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    holder = psycopg.connect(url)
    holder.execute(
        "INSERT INTO audit_chain_heads (chain, seq, hash) VALUES ('area:R', 0, %s)"
        " ON CONFLICT (chain) DO NOTHING",
        ["0" * 64],
    )
    holder.commit()
    holder.execute("SELECT 1 FROM audit_chain_heads WHERE chain = 'area:R' FOR UPDATE")
    outcome: dict[str, object] = {}

    def register() -> None:
        with app.app_context():
            outcome["response"] = arrive(headers, dwelling)

    desk = threading.Thread(target=register)
    desk.start()
    watcher = psycopg.connect(url, autocommit=True)
    deadline = time.monotonic() + 20
    # Wait until the arrival holds the dwelling and waits for the chain.
    while time.monotonic() < deadline:
        waiting = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database() AND pid <> %s",
            [holder.info.backend_pid],
        ).fetchone()
        if waiting and waiting[0] >= 1:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the arrival never waited for the audit chain")
    time.sleep(0.1)
    holder.execute("SELECT 1 FROM dwellings WHERE id = %s FOR UPDATE", [dwelling])
    holder.commit()
    holder.close()
    watcher.close()
    desk.join(timeout=30)

    response = outcome["response"]
    assert response.status_code == 201, response.json
    assert "transaction conflict (40P01), try 1 of" in caplog.text
    assert _count(Residence) == 1
    assert _count(AuditEvent, AuditEvent.action == "residence.arrive") == 1
    assert verify().ok
