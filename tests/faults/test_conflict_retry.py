"""A registration that meets a deadlock or serialization failure is tried again inside the request.

The conflicts are raised where PostgreSQL raises them, in the middle of the
arrival's transaction (after its audit event and its signal handlers have
written), so a try that is rolled back must leave nothing behind and the try
that commits must have written everything once. A real deadlock against
another transaction is made on PostgreSQL at the end.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import time_machine
from flask import message_flashed
from flask.testing import FlaskClient
from sqlalchemy import exc as sa_exc

from anjuka.audit.models import AuditEvent
from anjuka.audit.operations import verify
from anjuka.auth.models import User
from anjuka.core import signals, transactions
from anjuka.core.db import db
from anjuka.core.time import local_today, utcnow
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


# ------------------------------------------------- every deciding POST, retried the same way


class StatementFaults:
    """Raise ``error()`` at the ``nth`` statement holding ``pattern`` of a try, ``times`` tries.

    "Holding": on PostgreSQL an audit event is inserted inside a ``WITH``
    that also moves its chain's head, so the pattern may not start it.

    A try ends with a rollback, which starts the count again; ``tries``
    counts the tries that reached the statement (the last one commits).
    """

    def __init__(self, pattern: str, nth: int, times: int) -> None:
        self.pattern, self.nth, self.times = pattern, nth, times
        self.seen = 0
        self.tries = 0

    def before_execute(self, _conn, _cursor, statement: str, *_: object) -> None:
        if self.pattern not in statement:
            return
        self.seen += 1
        if self.seen == self.nth:
            self.tries += 1
            if self.tries <= self.times:
                raise _deadlock()

    def rolled_back(self, _conn) -> None:
        self.seen = 0


@contextmanager
def conflicts_at(pattern: str, nth: int, times: int) -> Iterator[StatementFaults]:
    faults = StatementFaults(pattern, nth, times)
    sa.event.listen(db.engine, "before_cursor_execute", faults.before_execute)
    sa.event.listen(db.engine, "rollback", faults.rolled_back)
    try:
        yield faults
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", faults.before_execute)
        sa.event.remove(db.engine, "rollback", faults.rolled_back)


def _rows() -> dict[str, int]:
    """How many rows every table holds."""
    db.session.rollback()
    return {
        table.name: db.session.scalar(sa.select(sa.func.count()).select_from(table))
        for table in db.metadata.sorted_tables
    }


def _changed(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


@dataclass
class World:
    """Two areas with desks, a card reader in each, and helpers to make what a case needs."""

    client: FlaskClient
    arrive: Callable[..., Any]
    new_id_number: Callable[[], str]
    north: int
    south: int
    n_manager: dict
    n_supervisor: dict
    s_manager: dict
    s_cards: Any

    def south_resident(self) -> dict:
        """A resident arriving in the south today; ``number``: their document number."""
        number = self.new_id_number()
        answer = self.arrive(self.s_manager["headers"], self.south, number=number)
        assert answer.status_code == 201, answer.json
        return {**answer.json, "number": number}

    def post(self, path: str, body: dict, who: dict | None = None) -> Any:
        headers = (who or self.s_manager)["headers"]
        return self.client.post(f"/api/v1{path}", json=body, headers=headers)

    def request_transfer(self, number: str) -> Any:
        return self.post(
            "/transfers",
            {
                "dwelling_id": self.north,
                "arrived_on": local_today().isoformat(),
                "person": {"document_type": "resident_id", "document_number": number},
            },
            self.n_manager,
        )

    def failed_card(self) -> str:
        """A pending card whose job failed at every attempt (the desk may retry it)."""
        from anjuka.cards.jobs import MAX_ATTEMPTS

        queued = self.s_cards.queue(self.south_resident()["id"])
        reader = f"/api/v1/readers/{self.s_cards.reader_id}/jobs"
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if attempt > 1:
                polled = self.client.get(
                    f"{reader}/next?wait=0", headers=self.s_cards.reader_headers
                )
                assert polled.json["id"] == queued["job_id"]
            self.s_cards.report(queued["job_id"], outcome="failed", error="reader error")
        assert self.s_cards.card(queued["card_no"])["job"]["status"] == "failed"
        return str(queued["card_no"])


@pytest.fixture
def world(
    client,
    arrive,
    new_id_number,
    create_area,
    create_estate,
    create_dwelling,
    create_user,
    card_desk,
):
    create_area("N")
    create_area("S")
    estate_n, estate_s = create_estate("N"), create_estate("S")
    s_supervisor = create_user("supervisor", ["area:S"])
    return World(
        client=client,
        arrive=arrive,
        new_id_number=new_id_number,
        north=create_dwelling("N", usable=400, rooms=40, estate_id=estate_n),
        south=create_dwelling("S", usable=400, rooms=40, estate_id=estate_s),
        n_manager=create_user("manager", [f"estate:{estate_n}"]),
        n_supervisor=create_user("supervisor", ["area:N"]),
        s_manager=create_user("manager", [f"estate:{estate_s}"]),
        s_cards=card_desk(s_supervisor["headers"], "S"),
    )


def _transfer(w: World) -> int:
    asked = w.request_transfer(w.south_resident()["number"])
    assert asked.status_code == 201, asked.json
    return int(asked.json["id"])


# Each case: (make one subject, POST for a subject, the status it answers).
CASES: dict[str, tuple[Callable[[World], Any], Callable[[World, Any], Any], int]] = {
    "departure": (
        lambda w: w.south_resident()["id"],
        lambda w, rid: w.post(
            f"/residences/{rid}/departure", {"departed_on": local_today().isoformat()}
        ),
        200,
    ),
    "card issue": (
        lambda w: w.south_resident()["id"],
        lambda w, rid: w.post("/cards", {"residence_id": rid, "reader_id": w.s_cards.reader_id}),
        202,
    ),
    "card revoke": (
        lambda w: w.s_cards.issue(w.south_resident()["id"]).card_no,
        lambda w, no: w.post(f"/cards/{no}/revoke", {"reason": "lost"}),
        200,
    ),
    "card return": (
        lambda w: w.s_cards.issue(w.south_resident()["id"]).card_no,
        lambda w, no: w.post(f"/cards/{no}/return", {}),
        202,
    ),
    "card retry": (
        lambda w: w.failed_card(),
        lambda w, no: w.post(f"/cards/{no}/retry", {}),
        202,
    ),
    "verification": (
        lambda w: w.south_resident()["number"],
        lambda w, number: w.post(
            "/verifications",
            {"document_type": "resident_id", "document_number": number},
            w.n_supervisor,
        ),
        201,
    ),
    "transfer request": (
        lambda w: w.south_resident()["number"],
        lambda w, number: w.request_transfer(number),
        201,
    ),
    "transfer cancel": (
        _transfer,
        lambda w, tid: w.post(f"/transfers/{tid}/cancel", {}, w.n_manager),
        200,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_deciding_post_is_retried_on_a_conflict_and_acts_once(world, case, monkeypatch):
    """The conflict strikes at the request's last audit event, after all else it wrote.

    What the retried request leaves in the database (rows added, per table)
    is exactly what the same request leaves without a conflict; and when the
    conflict outlasts the tries, the answer is 503 ``try_again`` and not a
    row anywhere has changed.
    """
    monkeypatch.setattr(transactions, "CONFLICT_PAUSE", 0.001)
    make, send, status = CASES[case]
    warm_up, twin, retried, exhausted = (make(world) for _ in range(4))
    # The first of a kind may create what later ones share (a serial, a day's statistics).
    assert send(world, warm_up).status_code == status

    before = _rows()
    plain = send(world, twin)
    assert plain.status_code == status, plain.json
    expected = _changed(before, _rows())
    assert expected.get("audit_events", 0) >= 1

    before = _rows()
    with conflicts_at("INSERT INTO audit_events", expected["audit_events"], 2) as faults:
        answer = send(world, retried)
    assert answer.status_code == status, answer.json
    assert faults.tries == transactions.CONFLICT_TRIES
    assert _changed(before, _rows()) == expected

    before = _rows()
    with conflicts_at("INSERT INTO audit_events", expected["audit_events"], 99) as faults:
        refused = send(world, exhausted)
    assert (refused.status_code, refused.json["error"]) == (503, "try_again")
    assert int(refused.headers["Retry-After"]) >= 1
    assert faults.tries == transactions.CONFLICT_TRIES
    assert _changed(before, _rows()) == {}
    # Nothing was half done: the same request sent again goes through, once.
    assert send(world, exhausted).status_code == status
    assert verify().ok


def test_a_transfer_completed_by_the_supervisor_is_retried_and_acts_once(world, monkeypatch):
    monkeypatch.setattr(transactions, "CONFLICT_PAUSE", 0.001)
    twin, retried = _transfer(world), _transfer(world)
    with time_machine.travel(utcnow() + timedelta(days=8), tick=True):
        signed_in = world.client.post(
            "/api/v1/auth/tokens",
            json={
                "username": world.n_supervisor["username"],
                "password": world.n_supervisor["password"],
            },
        )
        supervisor = {"headers": {"Authorization": f"Bearer {signed_in.json['token']}"}}
        body = {"reason": "The old desk does not answer."}
        before = _rows()
        plain = world.post(f"/transfers/{twin}/complete", body, supervisor)
        assert plain.status_code == 200, plain.json
        expected = _changed(before, _rows())
        before = _rows()
        with conflicts_at("INSERT INTO audit_events", expected["audit_events"], 2) as faults:
            answer = world.post(f"/transfers/{retried}/complete", body, supervisor)
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "completed"
    assert faults.tries == transactions.CONFLICT_TRIES
    assert _changed(before, _rows()) == expected
    assert verify().ok


def test_a_retried_look_up_counts_once_toward_the_look_up_limit(world, app, monkeypatch):
    """The throttle judged the request at its first try; the tries after do not count again."""
    monkeypatch.setattr(transactions, "CONFLICT_PAUSE", 0.001)
    config = app.extensions["anjuka_config"]
    monkeypatch.setitem(
        app.extensions, "anjuka_config", dataclasses.replace(config, lookup_limit="2 per hour")
    )
    numbers = [world.south_resident()["number"] for _ in range(3)]

    def check(number: str) -> Any:
        return world.post(
            "/verifications",
            {"document_type": "resident_id", "document_number": number},
            world.n_supervisor,
        )

    with conflicts_at("INSERT INTO audit_events", 2, 2) as faults:
        assert check(numbers[0]).status_code == 201
    assert faults.tries == transactions.CONFLICT_TRIES
    assert check(numbers[1]).status_code == 201  # the second of two, not the fourth
    refused = check(numbers[2])
    assert (refused.status_code, refused.json["error"]) == (429, "too_many_lookups")


def _signed_in(client: FlaskClient, user: dict) -> str:
    """Sign ``user`` in through the form; the new session's CSRF token."""

    def csrf(path: str) -> str:
        html = client.get(path).get_data(as_text=True)
        return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]

    answer = client.post(
        "/sign-in",
        data={
            "username": user["username"],
            "password": user["password"],
            "csrf_token": csrf("/sign-in"),
        },
    )
    assert answer.status_code == 302
    return csrf("/account/password")


def test_the_desks_arrival_form_is_retried_like_the_api(faults, desk_at, client, new_id_number):
    headers, dwelling = desk_at
    desk = db.session.scalar(sa.select(User).where(User.role == "supervisor"))
    token = _signed_in(client, {"username": desk.username, "password": "correct horse battery"})
    faults.times = transactions.CONFLICT_TRIES - 1
    form = {
        "csrf_token": token,
        "document_type": "resident_id",
        "document_number": new_id_number(),
        "name": "王小明",
        "arrived_on": local_today().isoformat(),
    }

    done = client.post(f"/desk/dwellings/{dwelling}/arrivals", data=form)

    assert done.status_code == 302, done.get_data(as_text=True)
    assert faults.tries == transactions.CONFLICT_TRIES
    assert (_count(Residence), _count(Person)) == (1, 1)
    assert _count(AuditEvent, AuditEvent.action == "residence.arrive") == 1


def test_a_page_that_flashed_before_its_conflict_says_it_once(world, monkeypatch):
    """The serialization failure comes at COMMIT, after the page flashed its message."""
    monkeypatch.setattr(transactions, "CONFLICT_PAUSE", 0.001)
    transfer = _transfer(world)
    page = world.client.application.test_client()
    token = _signed_in(page, world.n_manager)
    flashed: list[str] = []
    commits: list[int] = []

    def conflict_at_commit(_conn: object) -> None:
        commits.append(1)
        if len(commits) < transactions.CONFLICT_TRIES:
            raise _serialization_failure()

    def note(_app: object, message: str, **_: object) -> None:
        flashed.append(message)

    message_flashed.connect(note)
    sa.event.listen(db.engine, "commit", conflict_at_commit)
    try:
        done = page.post(f"/transfers/{transfer}/cancel", data={"csrf_token": token})
    finally:
        sa.event.remove(db.engine, "commit", conflict_at_commit)
        message_flashed.disconnect(note)

    assert done.status_code == 302, done.get_data(as_text=True)
    assert len(flashed) == len(commits) == transactions.CONFLICT_TRIES
    with page.session_transaction() as session:
        assert [message for _, message in session["_flashes"]] == [flashed[-1]]
    assert _count(AuditEvent, AuditEvent.action == "transfer.cancel") == 1
