"""Retries racing on PostgreSQL: one Idempotency-Key acts once, however many arrive together.

Each thread is a client retrying with its own test client (own session and
connection); a barrier releases them together. Without the unique
constraint on (caller, key) the losers would run the arrival themselves and
be refused ``already_registered``; with it, they wait for the winner and
get its answer.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import date

import pytest
import sqlalchemy as sa
from flask import Flask
from registry_helpers import today
from throwaway_db import app_on_own_database

from anjuka.core.db import db
from anjuka.persons.identity import resident_id_check_char

pytestmark = pytest.mark.postgres

RETRIES = 12
_serials = itertools.count(1)


@pytest.fixture(scope="module")
def race_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """An app on a PostgreSQL database of its own, with a connection for every retry."""
    workdir = tmp_path_factory.mktemp("idem-race")
    with app_on_own_database(workdir, "anjuka_idem", pool_size=RETRIES + 5) as app:
        yield app


@pytest.fixture
def desk(race_app: Flask) -> tuple[dict, int]:
    """A manager's headers and a roomy dwelling."""
    from anjuka.areas.operations import create_area
    from anjuka.auth.operations import create_user
    from anjuka.dwellings.operations import create_dwelling

    code = f"I{next(_serials)}"
    with race_app.app_context():
        area = create_area(code, code, None, {})
        dwelling = create_dwelling(
            area, None, {"address": "1 Retry Road", "usable_area_m2": 400, "rooms": 40}
        )
        db.session.flush()
        create_user(f"desk-{code}", "manager", "race password 1", [f"dwelling:{dwelling.id}"])
        db.session.commit()
        dwelling_id = dwelling.id
        db.session.remove()
    token = race_app.test_client().post(
        "/api/v1/auth/tokens", json={"username": f"desk-{code}", "password": "race password 1"}
    )
    return {"Authorization": f"Bearer {token.json['token']}"}, dwelling_id


def _number() -> str:
    first17 = f"320102{date(1991, 7, 8):%Y%m%d}{next(_serials) % 1000:03d}"
    return first17 + resident_id_check_char(first17)


def _arrival(dwelling_id: int, number: str) -> dict:
    return {
        "dwelling_id": dwelling_id,
        "arrived_on": today().isoformat(),
        "person": {"document_type": "resident_id", "document_number": number, "name": "孙八"},
    }


def _race(race_app: Flask, headers: dict, bodies: list[dict]) -> list[tuple[int, dict]]:
    """POST ``bodies`` to /residences all at once; each (status, body)."""
    barrier = threading.Barrier(len(bodies), timeout=60)
    outcomes: list[tuple[int, dict] | None] = [None] * len(bodies)
    failures: list[BaseException] = []

    def retry(i: int) -> None:
        try:
            client = race_app.test_client()
            barrier.wait()
            response = client.post("/api/v1/residences", json=bodies[i], headers=headers)
            outcomes[i] = (response.status_code, response.json)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=retry, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert all(o is not None for o in outcomes), outcomes
    return outcomes  # type: ignore[return-value]


def _residences_in(race_app: Flask, dwelling_id: int) -> int:
    from anjuka.residences.models import Residence

    with race_app.app_context():
        count = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Residence)
            .where(Residence.dwelling_id == dwelling_id)
        )
        db.session.remove()
    return count


def test_racing_retries_of_one_arrival_register_it_once_and_all_get_its_answer(race_app, desk):
    headers, dwelling_id = desk
    body = _arrival(dwelling_id, _number())
    outcomes = _race(race_app, {**headers, "Idempotency-Key": "race-arrival-1"}, [body] * RETRIES)
    assert {status for status, _ in outcomes} == {201}, outcomes
    assert len({answer["id"] for _, answer in outcomes}) == 1
    assert all(answer == outcomes[0][1] for _, answer in outcomes)
    assert _residences_in(race_app, dwelling_id) == 1


def test_racing_requests_that_share_a_key_but_not_a_body_act_once(race_app, desk):
    headers, dwelling_id = desk
    bodies = [_arrival(dwelling_id, _number()) for _ in range(RETRIES)]
    outcomes = _race(race_app, {**headers, "Idempotency-Key": "race-arrival-2"}, bodies)
    statuses = sorted(status for status, _ in outcomes)
    assert statuses == [201] + [422] * (RETRIES - 1), outcomes
    assert {a["error"] for s, a in outcomes if s == 422} == {"idempotency_key_reused"}
    assert _residences_in(race_app, dwelling_id) == 1
