"""Races on PostgreSQL: many desks at once never exceed capacity or register a person twice.

Each test thread is a desk with its own test client, hence its own app
context, session and connection; a barrier releases them together. The
database is one of this module's own, so the races do not share tables with
the rest of the session.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import date

import pytest
import sqlalchemy as sa
from flask import Flask
from registry_helpers import today
from sqlalchemy.exc import OperationalError
from throwaway_db import app_on_own_database

from anjuka.core.db import db
from anjuka.persons.identity import resident_id_check_char

pytestmark = pytest.mark.postgres

DESKS = 20
_codes = itertools.count(1)
_serials = itertools.count(1)


@pytest.fixture(scope="module")
def race_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """An app on a PostgreSQL database of its own, with a connection for every desk."""
    workdir = tmp_path_factory.mktemp("race")
    with app_on_own_database(workdir, "anjuka_race", pool_size=DESKS + 5) as app:
        yield app


def _number() -> str:
    first17 = f"320102{date(1988, 3, 4):%Y%m%d}{next(_serials) % 1000:03d}"
    return first17 + resident_id_check_char(first17)


@pytest.fixture
def admin(race_app: Flask) -> dict:
    from anjuka.auth.operations import create_user

    username = f"admin{next(_codes)}"
    with race_app.app_context():
        create_user(username, "admin", "race password 1")
        db.session.commit()
        db.session.remove()
    token = race_app.test_client().post(
        "/api/v1/auth/tokens", json={"username": username, "password": "race password 1"}
    )
    return {"Authorization": f"Bearer {token.json['token']}"}


def _area_with_dwellings(race_app: Flask, count: int, **measures) -> tuple[str, list[int]]:
    from anjuka.areas.operations import create_area
    from anjuka.dwellings.operations import create_dwelling

    code = f"R{next(_codes)}"
    with race_app.app_context():
        area = create_area(code, code, None, {})
        ids = [
            create_dwelling(area, None, {"address": f"{n} Race Road", **measures}).id
            for n in range(count)
        ]
        db.session.commit()
        db.session.remove()
    return code, ids


def _arrival(dwelling_id: int, number: str) -> dict:
    return {
        "dwelling_id": dwelling_id,
        "arrived_on": today().isoformat(),
        "person": {"document_type": "resident_id", "document_number": number, "name": "赵六"},
    }


def _race(race_app: Flask, headers: dict, bodies: list[dict]) -> list[tuple[int, str | None]]:
    """Send ``bodies`` from as many desks at once; each desk's (status, error code)."""
    barrier = threading.Barrier(len(bodies), timeout=60)
    outcomes: list[tuple[int, str | None] | None] = [None] * len(bodies)
    failures: list[BaseException] = []

    def desk(i: int) -> None:
        try:
            client = race_app.test_client()
            barrier.wait()
            response = client.post("/api/v1/residences", json=bodies[i], headers=headers)
            outcomes[i] = (response.status_code, (response.json or {}).get("error"))
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=desk, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert all(o is not None for o in outcomes), outcomes
    return outcomes  # type: ignore[return-value]


def _current_residents(race_app: Flask, dwelling_ids: list[int]) -> int:
    from anjuka.residences.models import Residence

    with race_app.app_context():
        count = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Residence)
            .where(Residence.dwelling_id.in_(dwelling_ids), Residence.departed_on.is_(None))
        )
        db.session.remove()
    return count


def test_many_desks_racing_for_the_last_three_places(race_app, admin):
    _, (dwelling_id,) = _area_with_dwellings(race_app, 1, usable_area_m2=50, rooms=5)  # 10
    client = race_app.test_client()
    for _ in range(7):
        assert (
            client.post(
                "/api/v1/residences", json=_arrival(dwelling_id, _number()), headers=admin
            ).status_code
            == 201
        )

    outcomes = _race(race_app, admin, [_arrival(dwelling_id, _number()) for _ in range(DESKS)])
    assert outcomes.count((201, None)) == 3, outcomes
    assert outcomes.count((409, "dwelling_full")) == DESKS - 3, outcomes
    assert _current_residents(race_app, [dwelling_id]) == 10
    view = client.get(f"/api/v1/dwellings/{dwelling_id}", headers=admin).json
    assert (view["capacity"], view["occupants"], view["over_capacity"]) == (10, 10, False)


def test_one_new_person_at_many_desks_is_registered_once(race_app, admin):
    _, dwellings = _area_with_dwellings(race_app, DESKS, usable_area_m2=50, rooms=5)
    number = _number()
    outcomes = _race(race_app, admin, [_arrival(d, number) for d in dwellings])
    assert outcomes.count((201, None)) == 1, outcomes
    assert outcomes.count((409, "already_registered")) == DESKS - 1, outcomes
    assert _current_residents(race_app, dwellings) == 1
    found = race_app.test_client().post(
        "/api/v1/persons/lookup", json={"document_number": number}, headers=admin
    )
    assert found.status_code == 200, found.json


def test_one_known_person_at_many_desks_is_registered_once(race_app, admin):
    _, dwellings = _area_with_dwellings(race_app, DESKS + 1, usable_area_m2=50, rooms=5)
    number = _number()
    client = race_app.test_client()
    first = client.post("/api/v1/residences", json=_arrival(dwellings[0], number), headers=admin)
    departed = client.post(
        f"/api/v1/residences/{first.json['id']}/departure",
        json={"departed_on": today().isoformat()},
        headers=admin,
    )
    assert departed.status_code == 200
    outcomes = _race(race_app, admin, [_arrival(d, number) for d in dwellings[1:]])
    assert outcomes.count((201, None)) == 1, outcomes
    assert outcomes.count((409, "already_registered")) == DESKS - 1, outcomes
    assert _current_residents(race_app, dwellings) == 1


def test_audit_appends_lock_only_their_own_chain(race_app):
    from anjuka.audit.operations import record

    with race_app.app_context():
        for code in ("CHAIN-A", "CHAIN-B"):
            record("test.start", area_code=code)
        db.session.commit()

        # One desk appends to area A's chain and keeps its transaction open ...
        record("test.held", area_code="CHAIN-A")
        with race_app.app_context():
            # ... another desk, in area B, is not held up at all ...
            db.session.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
            started = time.monotonic()
            record("test.other_area", area_code="CHAIN-B")
            db.session.commit()
            assert time.monotonic() - started < 2
            db.session.remove()
        with race_app.app_context():
            # ... while a third, in area A, has to wait for the first.
            db.session.execute(sa.text("SET LOCAL lock_timeout = '300ms'"))
            with pytest.raises(OperationalError) as waited:
                record("test.same_area", area_code="CHAIN-A")
            assert waited.value.orig.sqlstate == "55P03"  # lock_not_available
            db.session.rollback()
            db.session.remove()
        db.session.commit()

        from anjuka.audit.operations import verify

        assert verify().ok
        db.session.remove()


def test_moves_in_opposite_directions_do_not_deadlock(race_app, admin):
    """A move appends to two area chains; desks moving people both ways must not deadlock."""
    pairs = DESKS // 2
    _, east = _area_with_dwellings(race_app, pairs * 2, usable_area_m2=50, rooms=5)
    _, west = _area_with_dwellings(race_app, pairs * 2, usable_area_m2=50, rooms=5)
    client = race_app.test_client()
    bodies = []
    for i in range(pairs):
        going_west, going_east = _number(), _number()
        for number, home in ((going_west, east[i]), (going_east, west[i])):
            assert (
                client.post(
                    "/api/v1/residences", json=_arrival(home, number), headers=admin
                ).status_code
                == 201
            )
        bodies.append({**_arrival(west[pairs + i], going_west), "move": True})
        bodies.append({**_arrival(east[pairs + i], going_east), "move": True})
    outcomes = _race(race_app, admin, bodies)
    assert outcomes == [(201, None)] * len(bodies)
    assert _current_residents(race_app, east[:pairs] + west[:pairs]) == 0
    assert _current_residents(race_app, east[pairs:] + west[pairs:]) == len(bodies)


def _race_calls(
    race_app: Flask, headers: dict, calls: list[tuple[str, dict]]
) -> list[tuple[int, str | None]]:
    """POST each (path, body) from its own desk at once; each desk's (status, error code)."""
    barrier = threading.Barrier(len(calls), timeout=60)
    outcomes: list[tuple[int, str | None] | None] = [None] * len(calls)
    failures: list[BaseException] = []

    def desk(i: int) -> None:
        try:
            client = race_app.test_client()
            barrier.wait()
            path, body = calls[i]
            response = client.post(path, json=body, headers=headers)
            outcomes[i] = (response.status_code, (response.json or {}).get("error"))
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=desk, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert all(o is not None for o in outcomes), outcomes
    return outcomes  # type: ignore[return-value]


def _transfer(dwelling_id: int, number: str) -> dict:
    return {
        "dwelling_id": dwelling_id,
        "arrived_on": today().isoformat(),
        "person": {"document_type": "resident_id", "document_number": number},
    }


def test_one_person_asked_for_by_many_desks_at_once_has_one_transfer(race_app, admin):
    _, (home, *wanted) = _area_with_dwellings(race_app, DESKS + 1, usable_area_m2=50, rooms=5)
    number = _number()
    client = race_app.test_client()
    assert (
        client.post("/api/v1/residences", json=_arrival(home, number), headers=admin).status_code
        == 201
    )
    outcomes = _race_calls(
        race_app, admin, [("/api/v1/transfers", _transfer(d, number)) for d in wanted]
    )
    assert outcomes.count((201, None)) == 1, outcomes
    assert outcomes.count((409, "transfer_pending")) == DESKS - 1, outcomes


def test_a_departure_racing_a_supervisors_completion_moves_the_person_once(race_app, admin):
    from anjuka.transfers.models import Transfer

    pairs = DESKS // 2
    _, homes = _area_with_dwellings(race_app, pairs, usable_area_m2=50, rooms=5)
    _, targets = _area_with_dwellings(race_app, pairs, usable_area_m2=50, rooms=5)
    client = race_app.test_client()
    calls, transfer_ids = [], []
    for home, target in zip(homes, targets, strict=True):
        number = _number()
        arrived = client.post("/api/v1/residences", json=_arrival(home, number), headers=admin)
        asked = client.post("/api/v1/transfers", json=_transfer(target, number), headers=admin)
        assert asked.status_code == 201, asked.json
        transfer_ids.append(asked.json["id"])
        with race_app.app_context():
            db.session.get(Transfer, asked.json["id"]).due_on = date(2000, 1, 1)
            db.session.commit()
            db.session.remove()
        calls.append(
            (
                f"/api/v1/residences/{arrived.json['id']}/departure",
                {"departed_on": today().isoformat()},
            )
        )
        calls.append(
            (f"/api/v1/transfers/{asked.json['id']}/complete", {"reason": "Nobody answered."})
        )
    outcomes = _race_calls(race_app, admin, calls)
    for departure, completion in zip(outcomes[::2], outcomes[1::2], strict=True):
        # One of the two wins; the other hears it came too late. Never a 5xx.
        assert sorted([departure, completion]) in (
            [(200, None), (409, "already_departed")],
            [(200, None), (409, "transfer_closed")],
        ), outcomes
    assert _current_residents(race_app, homes) == 0
    assert _current_residents(race_app, targets) == pairs
    with race_app.app_context():
        statuses = set(
            db.session.scalars(sa.select(Transfer.status).where(Transfer.id.in_(transfer_ids)))
        )
        db.session.remove()
    assert statuses == {"completed"}


def test_arrivals_and_departures_racing_in_one_dwelling_keep_the_figures_exact(race_app, admin):
    """Departures and arrivals at once in one dwelling: the kept figures equal a rebuild."""
    from anjuka.stats.models import AreaTotal, DwellingFigure
    from anjuka.stats.operations import rebuild

    code, (dwelling,) = _area_with_dwellings(race_app, 1, usable_area_m2=400, rooms=40)
    client = race_app.test_client()
    staying = []
    for _ in range(DESKS // 2):
        arrived = client.post(
            "/api/v1/residences", json=_arrival(dwelling, _number()), headers=admin
        )
        assert arrived.status_code == 201, arrived.json
        staying.append(arrived.json["id"])
    calls = [
        (f"/api/v1/residences/{rid}/departure", {"departed_on": today().isoformat()})
        for rid in staying
    ] + [("/api/v1/residences", _arrival(dwelling, _number())) for _ in range(DESKS // 2)]
    outcomes = _race_calls(race_app, admin, calls)
    assert sorted(outcomes) == sorted([(200, None)] * (DESKS // 2) + [(201, None)] * (DESKS // 2))

    def figures() -> tuple:
        db.session.expire_all()
        return (
            sorted(db.session.execute(sa.select(AreaTotal.area_id, AreaTotal.residents)).all()),
            sorted(
                db.session.execute(
                    sa.select(
                        DwellingFigure.dwelling_id,
                        DwellingFigure.capacity,
                        DwellingFigure.over_capacity,
                    )
                ).all()
            ),
        )

    with race_app.app_context():
        kept = figures()
        rebuild()
        db.session.commit()
        assert kept == figures()
        db.session.remove()
    assert _current_residents(race_app, [dwelling]) == DESKS // 2
