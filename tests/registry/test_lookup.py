"""The look-up by document number: no oracle, every search audited, a limit per user.

The attack: ``POST /persons/lookup`` answered "No person with that
document." for an unknown number but "No person 14." for a person outside
the caller's scope, so a manager holding a mask (``4115**********387X``)
recovered the full number by trying the candidates, unaudited and unlimited.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
import sqlalchemy as sa
from registry_helpers import assert_error_shape, today

from anjuka.alerts.models import Alert
from anjuka.audit.models import AuditEvent
from anjuka.core.db import db
from anjuka.persons.identity import resident_id_check_char
from cardreader.cardno import make_card_no

LOOKUP = "/api/v1/persons/lookup"


def make_id_number(birth: date, serial: int) -> str:
    """A valid resident ID number nobody in the test registry holds (another region)."""
    first17 = f"411502{birth:%Y%m%d}{serial:03d}"
    return first17 + resident_id_check_char(first17)


def _lookup(client, headers, number):
    return client.post(LOOKUP, json={"document_number": number}, headers=headers)


def _lookups_of(user_id: int) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.chain == f"user:{user_id}", AuditEvent.action == "person.lookup")
            .order_by(AuditEvent.seq)
        )
    )


def _statements_of(request):  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        response = request()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    return response, seen


@pytest.mark.parametrize("role", ["manager", "supervisor", "officer"])
def test_a_foreign_person_reads_exactly_like_an_unknown_one(client, world, role):
    headers = world.headers(role)
    unknown_number = make_id_number(date(1985, 3, 3), 777)
    # Warm the caller's audit chain up so both requests append to an existing one.
    assert _lookup(client, headers, world.number_a).status_code == 200
    foreign, foreign_statements = _statements_of(lambda: _lookup(client, headers, world.number_b))
    unknown, unknown_statements = _statements_of(lambda: _lookup(client, headers, unknown_number))
    body = assert_error_shape(foreign, 404, "person_not_found")
    assert foreign.get_data() == unknown.get_data()
    assert body["message"] == "No person with that document."

    def headers_of(response) -> dict:
        return {k: v for k, v in response.headers.items() if k != "X-Request-Id"}

    assert headers_of(foreign) == headers_of(unknown)
    assert foreign.headers["X-Request-Id"] != unknown.headers["X-Request-Id"]
    # The same work on both paths: the same statements, in the same order.
    assert foreign_statements == unknown_statements

    found, missed_b, missed_unknown = _lookups_of(world.users[role]["id"])
    assert found.details["outcome"] == "found"
    assert found.subject_id == str(world.ra["person_id"])
    assert missed_b.details["outcome"] == missed_unknown.details["outcome"] == "not_found"
    assert missed_b.subject_id is None
    assert missed_unknown.subject_id is None


def test_every_lookup_is_audited_by_a_keyed_hash_never_the_number(client, world):
    manager = world.users["manager"]
    numbers = [world.number_a, world.number_b, make_id_number(date(1970, 1, 1), 321)]
    for number in numbers + [world.number_a]:
        _lookup(client, manager["headers"], number)
    events = _lookups_of(manager["id"])
    assert len(events) == 4
    hashes = [e.details["document_hash"] for e in events]
    assert hashes[0] == hashes[3]  # the same search twice is recognisable ...
    assert len(set(hashes[:3])) == 3  # ... different searches are not alike
    for event in events:
        assert (event.actor_type, event.actor_id) == ("user", manager["id"])
        assert event.details["via"] == "persons.lookup"
        assert event.details["document_type"] == "resident_id"
    trail = [str(tuple(row)) for row in db.session.execute(sa.select(AuditEvent.__table__))]
    for number in numbers:
        for text in trail:
            assert number not in text
            assert number[6:14] not in text  # not even the birth date part


def test_a_burst_of_lookups_is_refused_and_raises_bulk_lookup(app, client, world, create_user):
    manager = world.users["manager"]
    limit = app.extensions["anjuka_config"].lookup_limit
    assert limit == "30 per minute"  # the documented figure
    # The attack: candidates for a masked number, one after another.
    candidates = [make_id_number(date(1990, 5, 17), serial) for serial in range(200, 240)]
    statuses = [_lookup(client, manager["headers"], n).status_code for n in candidates[:30]]
    assert set(statuses) == {404}
    refused = _lookup(client, manager["headers"], candidates[30])
    body = assert_error_shape(refused, 429, "too_many_lookups")
    assert 0 < body["retry_after"] <= 61
    assert refused.headers["Retry-After"] == str(body["retry_after"])
    for number in candidates[31:35]:
        assert _lookup(client, manager["headers"], number).status_code == 429
    # Each look-up made was audited; the refused ones looked nothing up.
    events = _lookups_of(manager["id"])
    assert len(events) == 30
    assert not any(n in str(e.details) for e in events for n in candidates)

    (alert,) = db.session.scalars(sa.select(Alert).where(Alert.kind == "bulk_lookup")).all()
    assert (alert.subject_type, alert.subject_id, alert.count) == ("user", str(manager["id"]), 5)
    assert alert.area.code == "RA"  # the manager's estate lies in RA
    assert alert.details["username"] == manager["username"]

    def visible_to(headers) -> list[int]:
        response = client.get("/api/v1/alerts?kind=bulk_lookup", headers=headers)
        assert response.status_code == 200, response.json
        return [a["id"] for a in response.json]

    other_supervisor = create_user("supervisor", ["area:RB"])
    assert visible_to(world.headers("supervisor")) == [alert.id]
    assert visible_to(world.headers("admin")) == [alert.id]
    assert visible_to(other_supervisor["headers"]) == []
    assert visible_to(world.headers("officer")) == []  # about a colleague: supervisors only
    # Other users are not affected by this user's limit.
    assert _lookup(client, world.headers("supervisor"), world.number_a).status_code == 200


def test_document_verifications_draw_on_the_same_limit_and_are_audited(app, client, world):
    officer = world.users["officer"]
    monkey_config = dataclasses.replace(
        app.extensions["anjuka_config"], lookup_limit="3 per minute"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(app.extensions, "anjuka_config", monkey_config)
        checked = client.post(
            "/api/v1/verifications",
            json={"document_number": world.number_b},
            headers=officer["headers"],
        )
        assert checked.status_code == 201, checked.json
        assert _lookup(client, officer["headers"], world.number_a).status_code == 200
        by_card = client.post(
            "/api/v1/verifications", json={"card_no": make_card_no(19)}, headers=officer["headers"]
        )
        assert by_card.status_code == 201  # a card check is no document look-up
        assert (
            client.post(
                "/api/v1/verifications",
                json={"document_number": make_id_number(date(1999, 9, 9), 111)},
                headers=officer["headers"],
            ).status_code
            == 201
        )
        refused = client.post(
            "/api/v1/verifications",
            json={"document_number": world.number_a},
            headers=officer["headers"],
        )
        assert_error_shape(refused, 429, "too_many_lookups")
        assert_error_shape(_lookup(client, officer["headers"], world.number_a), 429)
    events = _lookups_of(officer["id"])
    assert [(e.details["via"], e.details["outcome"]) for e in events] == [
        ("verifications", "found"),
        ("persons.lookup", "found"),
        ("verifications", "not_found"),
    ]
    assert events[0].subject_id == str(world.rb["person_id"])


def test_an_unscoped_users_burst_is_for_admins_only(app, client, world):
    admin = world.users["admin"]
    monkey_config = dataclasses.replace(
        app.extensions["anjuka_config"], lookup_limit="1 per minute"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(app.extensions, "anjuka_config", monkey_config)
        assert _lookup(client, admin["headers"], world.number_a).status_code == 200
        assert _lookup(client, admin["headers"], world.number_b).status_code == 429
    (alert,) = db.session.scalars(sa.select(Alert).where(Alert.kind == "bulk_lookup")).all()
    assert alert.area_id is None
    assert (
        client.get("/api/v1/alerts?kind=bulk_lookup", headers=world.headers("supervisor")).json
        == []
    )


def test_the_alert_area_covers_the_whole_scope(app, world, create_user):
    from anjuka.areas.models import Area
    from anjuka.auth.models import User
    from anjuka.auth.scope import home_area_id

    def area_of(scopes: list[str], role: str = "supervisor") -> str | None:
        user = db.session.get(User, create_user(role, scopes)["id"])
        area_id = home_area_id(user)
        return None if area_id is None else db.session.get(Area, area_id).code

    assert area_of(["area:RA"]) == "RA"
    assert area_of(["area:RA", "area:RB"]) == "R"
    assert area_of([f"estate:{world.eb}"], "manager") == "RB"
    assert area_of([f"dwelling:{world.da}", f"estate:{world.eb}"], "manager") == "R"
    assert area_of([], "admin") is None


def test_a_transfer_request_by_document_is_a_lookup_too(app, client, world):
    manager = world.users["manager"]

    def request_transfer(number: str):
        return client.post(
            "/api/v1/transfers",
            json={
                "dwelling_id": world.da,
                "arrived_on": today().isoformat(),
                "person": {"document_type": "resident_id", "document_number": number},
            },
            headers=manager["headers"],
        )

    unknown = make_id_number(date(1980, 8, 8), 555)
    monkey_config = dataclasses.replace(
        app.extensions["anjuka_config"], lookup_limit="2 per minute"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(app.extensions, "anjuka_config", monkey_config)
        assert_error_shape(request_transfer(unknown), 409, "not_registered")
        assert request_transfer(world.number_b).status_code == 201
        assert_error_shape(request_transfer(unknown), 429, "too_many_lookups")
    events = _lookups_of(manager["id"])
    assert [(e.details["via"], e.details["outcome"]) for e in events] == [
        ("transfers", "not_found"),
        ("transfers", "found"),
    ]
    assert not any(n in str(e.details) for e in events for n in (unknown, world.number_b))
