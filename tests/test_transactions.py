"""One commit per request: a request that returns commits once, one that raises writes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from anjuka.audit.models import AuditEvent
from anjuka.core.db import db
from anjuka.persons.models import Person
from anjuka.residences.models import Residence


@pytest.fixture
def commits(app) -> Iterator[list[object]]:
    """Every commit the database is sent from here on (savepoints are not commits)."""
    seen: list[object] = []

    def count(connection: object) -> None:
        seen.append(connection)

    sa.event.listen(db.engine, "commit", count)
    yield seen
    sa.event.remove(db.engine, "commit", count)


def _count(model: type) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_a_request_that_returns_commits_once_and_one_that_is_refused_writes_nothing(
    client, create_area, create_dwelling, create_user, arrive, new_id_number, commits
):
    create_area("T")
    desk = create_user("supervisor", ["area:T"])
    small = create_dwelling("T", usable=5, rooms=1)  # room for one
    events = _count(AuditEvent)
    commits.clear()

    done = arrive(desk["headers"], small, number=new_id_number(), phone="13800001111")
    assert done.status_code == 201, done.json
    assert len(commits) == 1
    assert _count(AuditEvent) == events + 1

    commits.clear()
    before = (_count(Person), _count(Residence), _count(AuditEvent))
    refused = arrive(desk["headers"], small, number=new_id_number(), phone="13800002222")
    assert (refused.status_code, refused.json["error"]) == (409, "dwelling_full")
    assert commits == []
    assert (_count(Person), _count(Residence), _count(AuditEvent)) == before


def test_a_refusal_whose_writes_are_its_record_keeps_them(client, create_user, commits):
    user = create_user("officer")
    events = _count(AuditEvent)
    commits.clear()
    wrong = client.post(
        "/api/v1/auth/tokens", json={"username": user["username"], "password": "not it at all"}
    )
    assert (wrong.status_code, wrong.json["error"]) == (401, "invalid_credentials")
    assert len(commits) == 1
    [event] = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.id > 0).order_by(AuditEvent.id.desc()).limit(1)
    )
    assert event.action == "auth.login_failed"
    assert _count(AuditEvent) == events + 1
