"""Concurrency: daemons racing for jobs, desks racing to issue, departures racing reports.

Each thread has its own test client, so its own application context,
session and database connection, as separate gunicorn workers would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from card_helpers import Daemon, new_uid

from anjuka.cards.models import Card, CardJob
from anjuka.core.db import db
from anjuka.core.time import local_today


def _in_threads(count: int, work: Callable[[int], object]) -> list:
    """Run ``work(i)`` in ``count`` threads released together; results in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # the main thread asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.postgres
def test_two_daemons_polling_one_queue_never_take_the_same_job(app, desk, backend):
    assert backend == "postgresql"
    job_ids = {desk.issue(desk.arrive_here()["id"]).json["job_id"] for _ in range(12)}

    def daemon_loop(i: int) -> list[int]:
        daemon = Daemon(app.test_client(), desk.reader_id, desk.daemon.token, holder=f"pc-{i}")
        taken = []
        while True:
            response = daemon.poll()
            if response.status_code == 204:
                return taken
            assert response.status_code == 200, response.get_data(as_text=True)
            job = response.json
            assert job["id"] not in taken, "a finished job was handed out again"
            taken.append(job["id"])
            uid = new_uid()
            bound = daemon.send_uid(job["id"], uid)
            assert bound.status_code == 200, bound.json
            done = daemon.report(job["id"], outcome="done", uid=uid, record=bound.json["record"])
            assert done.json["card_status"] == "active", done.json

    first, second = _in_threads(2, daemon_loop)
    assert isinstance(first, list), first
    assert isinstance(second, list), second
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(job_ids)
    db.session.expire_all()
    statuses = db.session.scalars(sa.select(Card.status)).all()
    assert statuses == ["active"] * 12
    assert all(j.attempt == 1 for j in db.session.scalars(sa.select(CardJob)))


@pytest.mark.postgres
def test_sixteen_desks_issuing_for_one_person_make_one_pending_card(app, desk, backend):
    assert backend == "postgresql"
    residence = desk.arrive_here()

    def issue(_i: int) -> tuple[int, str]:
        response = app.test_client().post(
            "/api/v1/cards",
            json={"residence_id": residence["id"], "reader_id": desk.reader_id},
            headers=desk.headers,
        )
        body = response.get_json()
        return response.status_code, body["error" if response.status_code >= 400 else "card_no"]

    results = _in_threads(16, issue)
    assert all(isinstance(r, tuple) for r in results), results
    accepted = [card_no for status, card_no in results if status == 202]
    refused = [code for status, code in results if status != 202]
    assert len(accepted) == 1, results
    assert refused == ["card_exists"] * 15
    db.session.expire_all()
    cards = db.session.scalars(sa.select(Card)).all()
    assert [(c.card_no, c.status) for c in cards] == [(accepted[0], "pending")]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CardJob)) == 1


@pytest.mark.postgres
def test_departures_racing_reports_neither_deadlock_nor_leave_a_card_active(app, desk, backend):
    assert backend == "postgresql"
    cases = []
    for i in range(6):
        residence = desk.arrive_here()
        card_no = desk.issue(residence["id"]).json["card_no"]
        daemon = desk.make_daemon(holder=f"pc-{i}")  # one daemon per job in hand
        job = daemon.next_job()
        uid = new_uid()
        record = daemon.send_uid(job["id"], uid).json["record"]
        cases.append((residence["id"], card_no, job["id"], uid, record))
    for residence_id, card_no, job_id, uid, record in cases:

        def act(i: int, residence_id=residence_id, job_id=job_id, uid=uid, record=record):  # type: ignore[no-untyped-def]
            client = app.test_client()
            if i == 0:
                return client.post(
                    f"/api/v1/residences/{residence_id}/departure",
                    json={"departed_on": local_today().isoformat()},
                    headers=desk.headers,
                ).status_code
            return client.post(
                f"/api/v1/readers/{desk.reader_id}/jobs/{job_id}/result",
                json={"outcome": "done", "uid": uid, "record": record},
                headers=desk.daemon.headers,
            ).status_code

        departure, report = _in_threads(2, act)
        assert departure == 200, departure
        assert report in (200, 409), report  # 409 job_finished when the departure came first
        card = desk.card(card_no)
        assert (card["status"], card["revocation_reason"]) == ("revoked", "departed")
