"""Retention: residents departed longer than their area keeps them are anonymised.

After ``anjuka retention run`` nobody past the period can be found by
document number, the occupancy statistics are unchanged, the audit trail
still verifies, and a second run changes nothing.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from anjuka.audit.models import AuditEvent
from anjuka.audit.operations import verify
from anjuka.core.db import db
from anjuka.core.time import local_today
from anjuka.personal_data.commands import retention
from anjuka.personal_data.retention import years_before
from anjuka.persons.models import Person
from anjuka.residences.models import Residence
from anjuka.stats.operations import rebuild

LOOKUP = "/api/v1/persons/lookup"


def _day(value: date) -> str:
    return value.isoformat()


@pytest.fixture
def registry(client, create_area, create_dwelling, create_user, arrive, new_id_number):
    """Five residents: two past retention, three kept (recent, moved on, current)."""
    today = local_today()
    create_area("RT", name="三年")  # the default: 3 years
    create_area("RT1", parent_code="RT", retention_years=1)
    create_area("RT1K", parent_code="RT1")  # inherits 1 year
    old_home = create_dwelling("RT", usable=60, rooms=6)
    short_home = create_dwelling("RT1K", usable=60, rooms=6)
    new_home = create_dwelling("RT", usable=60, rooms=6)
    admin = create_user("admin")
    headers = admin["headers"]

    def stay(dwelling: int, number: str, arrived: date, departed: date | None, **extra) -> int:
        made = arrive(headers, dwelling, number=number, arrived_on=_day(arrived), **extra)
        assert made.status_code == 201, made.json
        if departed is not None:
            ended = client.post(
                f"/api/v1/residences/{made.json['id']}/departure",
                json={"departed_on": _day(departed)},
                headers=headers,
            )
            assert ended.status_code == 200, ended.json
        return made.json["person_id"]

    numbers = {k: new_id_number() for k in ("old", "short", "recent", "moved", "current")}
    people = {
        # Departed four years ago from a 3-year area: past retention.
        "old": stay(
            old_home,
            numbers["old"],
            today - timedelta(days=6 * 365),
            today - timedelta(days=4 * 365),
            phone="13900000001",
        ),
        # Departed 18 months ago from an area that inherits 1 year: past retention.
        "short": stay(
            short_home, numbers["short"], today - timedelta(days=900), today - timedelta(days=540)
        ),
        # Departed 18 months ago from a 3-year area: kept.
        "recent": stay(
            old_home, numbers["recent"], today - timedelta(days=900), today - timedelta(days=540)
        ),
        "current": stay(new_home, numbers["current"], today - timedelta(days=30), None),
    }
    # Left long ago, but lives here again: kept whole.
    people["moved"] = stay(
        old_home, numbers["moved"], today - timedelta(days=6 * 365), today - timedelta(days=5 * 365)
    )
    assert stay(new_home, numbers["moved"], today - timedelta(days=10), None) == people["moved"]
    return {"headers": headers, "numbers": numbers, "people": people, "today": today}


def _occupancy(client, headers) -> dict:
    today = local_today()
    response = client.get(
        "/api/v1/stats/occupancy",
        query_string={
            "area_code": "RT",
            "from": _day(today - timedelta(days=7 * 365)),
            "to": _day(today),
            "interval": "month",
        },
        headers=headers,
    )
    assert response.status_code == 200, response.json
    return response.json


def _found(client, headers, number: str) -> int:
    return client.post(LOOKUP, json={"document_number": number}, headers=headers).status_code


def _run(app, *args: str):  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(retention, ["run", *args])
    assert result.exit_code == 0, result.output
    return result


def test_retention_anonymises_only_those_past_their_areas_period(app, client, registry):
    headers, numbers, people = registry["headers"], registry["numbers"], registry["people"]
    before = _occupancy(client, headers)
    residences = db.session.scalar(sa.select(sa.func.count()).select_from(Residence))

    result = _run(app)

    assert "2 persons anonymised" in result.output
    assert "retention" in result.stderr  # the progress bar
    for key in ("old", "short"):
        assert _found(client, headers, numbers[key]) == 404, key
        person = db.session.get(Person, people[key])
        db.session.refresh(person)
        assert person.anonymised_on == local_today()
        assert person.name == ""
        assert person.document_masked == ""
        assert person.document_number_enc == b""
        assert person.document_index == f"anonymised:{person.id}"
        assert person.phone_enc is None
        assert person.phone_masked is None
        assert person.birth_date is None
        assert person.document_number is None
    for key in ("recent", "moved", "current"):
        assert _found(client, headers, numbers[key]) == 200, key
        assert db.session.get(Person, people[key]).anonymised_on is None
    # An anonymised person reads as no one in the API.
    shown = client.get(f"/api/v1/persons/{people['old']}?reveal=true", headers=headers)
    assert shown.status_code == 200, shown.json
    assert (shown.json["name"], shown.json["document_number"]) == (None, None)

    # History and statistics stay; the audit trail still verifies.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Residence)) == residences
    assert _occupancy(client, headers) == before
    rebuild()
    db.session.commit()
    assert _occupancy(client, headers) == before
    assert verify().ok
    [event] = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "retention.run")
    ).all()
    assert event.details["anonymised"] == 2
    assert event.actor_type == "operator"
    assert "document" not in str(event.details).replace("document_", "")


def test_retention_run_twice_changes_nothing_more(app, client, registry):
    _run(app)
    snapshot = [
        (p.id, p.name, p.document_index, p.anonymised_on)
        for p in db.session.scalars(sa.select(Person).order_by(Person.id))
    ]

    again = _run(app)

    assert "0 persons anonymised" in again.output
    db.session.expire_all()
    assert snapshot == [
        (p.id, p.name, p.document_index, p.anonymised_on)
        for p in db.session.scalars(sa.select(Person).order_by(Person.id))
    ]
    runs = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "retention.run").order_by(AuditEvent.id)
    ).all()
    assert [r.details["anonymised"] for r in runs] == [2, 0]
    assert verify().ok


def test_as_of_a_later_day_reaches_those_kept_today(app, client, registry):
    headers, numbers = registry["headers"], registry["numbers"]
    later = registry["today"] + timedelta(days=3 * 365)

    result = _run(app, "--as-of", _day(later))

    # Also "recent" (3-year area, departed 18 months before today) is past it then.
    assert "3 persons anonymised" in result.output
    assert _found(client, headers, numbers["recent"]) == 404
    assert _found(client, headers, numbers["current"]) == 200
    assert _found(client, headers, numbers["moved"]) == 200


def test_a_person_anonymised_arrives_again_as_a_new_record(
    app, client, registry, arrive, create_dwelling
):
    headers, numbers, people = registry["headers"], registry["numbers"], registry["people"]
    _run(app)
    again = arrive(headers, create_dwelling("RT"), number=numbers["old"], name="李四")
    assert again.status_code == 201, again.json
    assert again.json["person_id"] != people["old"]
    assert _found(client, headers, numbers["old"]) == 200


def test_the_retention_period_is_a_policy_field_inherited_down_the_tree(client, registry):
    headers = registry["headers"]
    leaf = client.get("/api/v1/areas/RT1K", headers=headers).json
    assert leaf["effective_policy"]["retention_years"] == 1
    assert leaf["effective_policy"]["sources"]["retention_years"] == "RT1"
    root = client.get("/api/v1/areas/RT", headers=headers).json
    assert root["effective_policy"]["retention_years"] == 3
    refused = client.patch(
        "/api/v1/areas/RT", json={"policy": {"retention_years": 0}}, headers=headers
    )
    assert refused.status_code == 422


def test_years_before_keeps_the_calendar_day():
    assert years_before(date(2026, 3, 1), 3) == date(2023, 3, 1)
    assert years_before(date(2028, 2, 29), 3) == date(2025, 2, 28)


@pytest.mark.postgres
def test_an_arrival_waiting_on_a_retention_run_records_a_new_person(
    app, backend, client, registry, arrive, create_dwelling
):
    """The run locks the person first: the arrival waits, then finds them gone and starts anew."""
    import threading
    import time

    import psycopg

    assert backend == "postgresql"
    headers, numbers, people = registry["headers"], registry["numbers"], registry["people"]
    dwelling = create_dwelling("RT")
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    run = psycopg.connect(url)
    run.execute("SELECT 1 FROM persons WHERE id = %s FOR UPDATE", [people["old"]])
    outcome: dict = {}

    def register() -> None:
        with app.app_context():
            outcome["response"] = arrive(headers, dwelling, number=numbers["old"], name="回来")

    desk = threading.Thread(target=register)
    desk.start()
    deadline = time.monotonic() + 20
    # Activity is read outside the run's transaction (it would see one snapshot).
    with psycopg.connect(url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            ).fetchone()
            if waiting and waiting[0] >= 1:
                break
            time.sleep(0.05)
        else:
            run.close()
            pytest.fail("the arrival never waited for the person's lock")
    run.execute(
        "UPDATE persons SET name = '', document_masked = '', document_number_enc = '',"
        " document_index = 'anonymised:' || id, anonymised_on = CURRENT_DATE WHERE id = %s",
        [people["old"]],
    )
    run.commit()
    run.close()
    desk.join(timeout=30)

    response = outcome["response"]
    assert response.status_code == 201, response.json
    assert response.json["person_id"] != people["old"]
    assert _found(client, headers, numbers["old"]) == 200
