"""The lifecycle: arrival until full, departure, moves, overrides, late, family, minors."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from registry_helpers import count_rows, days_before, today

from anjuka.core import signals
from anjuka.core.db import db
from anjuka.dwellings.operations import Occupancy
from anjuka.persons.models import Person
from anjuka.residences.models import Residence


def _depart(client, headers, residence_id, on=None):
    return client.post(
        f"/api/v1/residences/{residence_id}/departure",
        json={"departed_on": (on or today()).isoformat()},
        headers=headers,
    )


def _dwelling(client, headers, dwelling_id):
    response = client.get(f"/api/v1/dwellings/{dwelling_id}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_arrivals_until_full_then_departure_frees_a_place(
    client, create_area, create_estate, create_dwelling, create_user, arrive
):
    create_area("C1", min_area_per_person_m2=5, area_basis="usable", max_persons_per_room=2)
    estate = create_estate("C1")
    dwelling_id = create_dwelling("C1", usable=20, rooms=2, estate_id=estate)
    manager = create_user("manager", [f"estate:{estate}"])

    residence_ids = []
    for _ in range(4):
        response = arrive(manager["headers"], dwelling_id)
        assert response.status_code == 201, response.json
        residence_ids.append(response.json["id"])
        assert response.json["person_id"] > 0

    persons_before = count_rows(Person)
    refused = arrive(manager["headers"], dwelling_id)
    assert refused.status_code == 409
    assert refused.json["error"] == "dwelling_full"
    assert refused.json["capacity"] == 4
    assert refused.json["occupants"] == 4
    assert refused.json["message"]
    # The refused newcomer left no trace: no person, no residence.
    assert count_rows(Person) == persons_before
    assert count_rows(Residence) == 4

    dwelling = _dwelling(client, manager["headers"], dwelling_id)
    assert (dwelling["capacity"], dwelling["occupants"], dwelling["over_capacity"]) == (4, 4, False)

    departed = _depart(client, manager["headers"], residence_ids[0])
    assert departed.status_code == 200, departed.json
    assert departed.json["departed_on"] == today().isoformat()
    assert departed.json["current"] is False
    assert _dwelling(client, manager["headers"], dwelling_id)["occupants"] == 3
    assert arrive(manager["headers"], dwelling_id).status_code == 201
    assert arrive(manager["headers"], dwelling_id).json["error"] == "dwelling_full"


def test_document_numbers_are_masked_for_a_manager(
    client, create_area, create_estate, create_dwelling, create_user, arrive
):
    create_area("C1")
    estate = create_estate("C1")
    dwelling_id = create_dwelling("C1", estate_id=estate)
    manager = create_user("manager", [f"estate:{estate}"])
    response = arrive(manager["headers"], dwelling_id, number="11010519491231002X")
    assert response.status_code == 201
    person = response.json["person"]
    assert person["document_number"] == "1101**********002X"
    assert person["document_masked"] is True
    assert "11010519491231002X" not in response.get_data(as_text=True)
    refused = client.get(
        f"/api/v1/residences/{response.json['id']}?reveal=true", headers=manager["headers"]
    )
    assert refused.status_code == 403
    assert refused.json["error"] == "reveal_not_allowed"


def test_a_move_departs_the_old_residence_and_arrives_at_the_new_in_one_go(
    client, create_area, create_estate, create_dwelling, create_user, arrive, new_id_number
):
    create_area("C1")
    create_area("C2")
    estate = create_estate("C1")
    first = create_dwelling("C1", estate_id=estate)
    second = create_dwelling("C1", estate_id=estate)
    full = create_dwelling("C1", usable=5, rooms=1, estate_id=estate)  # capacity 1
    elsewhere = create_dwelling("C2")
    manager = create_user("manager", [f"estate:{estate}"])
    admin = create_user("admin")
    number = new_id_number()
    assert arrive(manager["headers"], full).status_code == 201

    old = arrive(manager["headers"], first, number=number, arrived_on=days_before(10))
    assert old.status_code == 201

    again = arrive(manager["headers"], first, number=number)
    assert again.status_code == 409
    assert again.json["error"] == "already_registered"

    refused = arrive(manager["headers"], second, number=number)
    assert refused.status_code == 409
    assert refused.json["error"] == "already_registered"

    # A move into a full dwelling fails as a whole: the old residence stays current.
    blocked = arrive(manager["headers"], full, number=number, move=True)
    assert blocked.status_code == 409
    assert blocked.json["error"] == "dwelling_full"
    assert db.session.get(Residence, old.json["id"]).departed_on is None

    # A move may not begin before the residence it ends.
    early = arrive(manager["headers"], second, number=number, move=True, arrived_on=days_before(20))
    assert early.status_code == 422
    assert db.session.get(Residence, old.json["id"]).departed_on is None

    moved = arrive(manager["headers"], second, number=number, move=True, arrived_on=days_before(2))
    assert moved.status_code == 201, moved.json
    assert moved.json["person_id"] == old.json["person_id"]
    ended = client.get(f"/api/v1/residences/{old.json['id']}", headers=manager["headers"]).json
    assert ended["departed_on"] == days_before(2)
    assert ended["current"] is False
    assert _dwelling(client, manager["headers"], first)["occupants"] == 0
    assert _dwelling(client, manager["headers"], second)["occupants"] == 1

    # Across areas the move is one transaction too (two audit chains).
    across = arrive(admin["headers"], elsewhere, number=number, move=True)
    assert across.status_code == 201, across.json
    current = db.session.scalars(
        sa.select(Residence).where(
            Residence.person_id == old.json["person_id"], Residence.departed_on.is_(None)
        )
    ).all()
    assert [r.id for r in current] == [across.json["id"]]

    history = client.get(
        f"/api/v1/persons/{old.json['person_id']}/residences", headers=admin["headers"]
    )
    assert history.status_code == 200
    assert [r["dwelling_id"] for r in history.json] == [elsewhere, second, first]


def test_a_supervisor_may_register_beyond_capacity_with_a_written_reason(
    client, create_area, create_estate, create_dwelling, create_user, arrive
):
    create_area("C1")
    estate = create_estate("C1")
    dwelling_id = create_dwelling("C1", usable=10, rooms=1, estate_id=estate)  # capacity 2
    manager = create_user("manager", [f"estate:{estate}"])
    supervisor = create_user("supervisor", ["area:C1"])
    for _ in range(2):
        assert arrive(manager["headers"], dwelling_id).status_code == 201

    refused = arrive(manager["headers"], dwelling_id, override_reason="family emergency, 3 days")
    assert refused.status_code == 403
    assert refused.json["error"] == "override_not_allowed"

    assert arrive(supervisor["headers"], dwelling_id).json["error"] == "dwelling_full"
    too_short = arrive(supervisor["headers"], dwelling_id, override_reason="  ok ")
    assert too_short.status_code == 422

    heard = []

    def on_arrival(residence, **kwargs):
        heard.append((residence.id, kwargs))

    with signals.residence_arrived.connected_to(on_arrival):
        overridden = arrive(
            supervisor["headers"], dwelling_id, override_reason="flood in the next building"
        )
    assert overridden.status_code == 201, overridden.json
    assert overridden.json["override_reason"] == "flood in the next building"
    # The signal carries the dwelling's residents with this arrival, as the desk counted them.
    assert heard == [
        (overridden.json["id"], {"overridden": True, "occupancy": Occupancy(occupants=3)})
    ]
    dwelling = _dwelling(client, supervisor["headers"], dwelling_id)
    assert (dwelling["capacity"], dwelling["occupants"], dwelling["over_capacity"]) == (2, 3, True)

    from anjuka.audit.models import AuditEvent

    event = db.session.scalar(
        sa.select(AuditEvent).where(
            AuditEvent.action == "residence.arrive",
            AuditEvent.subject_id == str(overridden.json["id"]),
        )
    )
    assert event.details["override"] is True
    assert event.actor_id == supervisor["id"]

    # A reason where none is needed is not recorded as an override.
    other = create_dwelling("C1", estate_id=estate)
    plain = arrive(supervisor["headers"], other, override_reason="just in case it fills")
    assert plain.status_code == 201
    assert plain.json["override_reason"] is None


@pytest.mark.registry_clock
def test_late_registration_is_counted_in_working_days(
    client, create_area, create_estate, create_dwelling, create_user, arrive
):
    create_area("C1", registration_deadline_days=3)
    estate = create_estate("C1")
    dwelling_id = create_dwelling("C1", usable=100, rooms=10, estate_id=estate)
    manager = create_user("manager", [f"estate:{estate}"])

    friday = arrive(manager["headers"], dwelling_id, arrived_on="2024-03-01")
    assert friday.status_code == 201
    # Friday + 3 working days: Monday, Tuesday, Wednesday.
    assert friday.json["registration_deadline"] == "2024-03-06"
    assert friday.json["late"] is True

    on_time = arrive(manager["headers"], dwelling_id)
    assert on_time.json["late"] is False

    # The earliest arrival still on time, and the day before it: late.
    from anjuka.core.time import add_working_days

    start = today()
    while add_working_days(start - timedelta(days=1), 3) >= today():
        start -= timedelta(days=1)
    assert today() - start >= timedelta(days=3)
    boundary = arrive(manager["headers"], dwelling_id, arrived_on=start.isoformat())
    assert boundary.json["registration_deadline"] == add_working_days(start, 3).isoformat()
    assert boundary.json["late"] is False, boundary.json
    before = arrive(
        manager["headers"], dwelling_id, arrived_on=(start - timedelta(days=1)).isoformat()
    )
    assert before.json["late"] is True

    future = arrive(manager["headers"], dwelling_id, arrived_on=days_before(-1))
    assert future.status_code == 422
    assert future.json["error"] == "arrival_in_future"


def test_the_family_exception_lifts_the_room_limit_but_not_the_area_limit(
    client, create_area, create_estate, create_dwelling, create_user, arrive
):
    create_area("C1", min_area_per_person_m2=5, max_persons_per_room=2)
    create_area("NOFAM", family_exception=False)
    estate = create_estate("C1")
    dwelling_id = create_dwelling("C1", usable=20, rooms=1, estate_id=estate)  # area 4, rooms 2
    elsewhere = create_dwelling("C1", estate_id=estate)
    manager = create_user("manager", [f"estate:{estate}"])
    admin = create_user("admin")

    first = arrive(manager["headers"], dwelling_id).json
    arrive(manager["headers"], dwelling_id)
    assert arrive(manager["headers"], dwelling_id).json["error"] == "dwelling_full"

    def family(of: int, relation: str = "spouse", dwelling: int = dwelling_id):
        return arrive(
            manager["headers"],
            dwelling,
            family_relation=relation,
            family_of_residence_id=of,
        )

    spouse = family(first["id"])
    assert spouse.status_code == 201, spouse.json
    assert spouse.json["family_relation"] == "spouse"
    assert spouse.json["family_of_residence_id"] == first["id"]
    child = family(first["id"], "child")
    assert child.status_code == 201, child.json
    over_area = family(first["id"], "parent")
    assert over_area.status_code == 409
    assert over_area.json["error"] == "dwelling_full"

    dwelling = _dwelling(client, manager["headers"], dwelling_id)
    # Four people where two rooms-worth would be two: lawful, so not over capacity.
    assert dwelling["occupants"] == 4
    assert dwelling["over_capacity"] is False

    wrong_dwelling = family(first["id"], dwelling=elsewhere)
    assert wrong_dwelling.status_code == 422
    assert wrong_dwelling.json["error"] == "invalid_family_exception"
    half = arrive(manager["headers"], elsewhere, family_relation="spouse")
    assert half.status_code == 422
    assert half.json["error"] == "invalid_family_exception"

    strict = create_dwelling("NOFAM", usable=20, rooms=1)
    resident = arrive(admin["headers"], strict).json
    not_allowed = arrive(
        admin["headers"], strict, family_relation="spouse", family_of_residence_id=resident["id"]
    )
    assert not_allowed.status_code == 422
    assert not_allowed.json["error"] == "family_exception_not_allowed"


def test_minors_do_not_count_where_the_policy_says_so(
    client, create_area, create_dwelling, create_user, arrive, new_id_number
):
    create_area("NB", minors_count=False, min_area_per_person_m2=5, max_persons_per_room=2)
    create_area("HZ", minors_count=True, min_area_per_person_m2=5, max_persons_per_room=2)
    admin = create_user("admin")
    child_birth = date(today().year - 8, 1, 15)

    excluded = create_dwelling("NB", usable=10, rooms=1)  # capacity 2
    counted = create_dwelling("HZ", usable=10, rooms=1)
    for dwelling_id in (excluded, counted):
        for _ in range(2):
            assert arrive(admin["headers"], dwelling_id).status_code == 201

    child = arrive(admin["headers"], excluded, number=new_id_number(child_birth))
    assert child.status_code == 201, child.json
    assert child.json["minor"] is True
    view = _dwelling(client, admin["headers"], excluded)
    assert (view["capacity"], view["occupants"], view["over_capacity"]) == (2, 3, False)
    assert arrive(admin["headers"], excluded).json["error"] == "dwelling_full"

    refused = arrive(admin["headers"], counted, number=new_id_number(child_birth))
    assert refused.status_code == 409
    assert refused.json["error"] == "dwelling_full"

    # Someone who turned 18 before arriving is an adult.
    adult = arrive(admin["headers"], excluded, number=new_id_number(date(today().year - 19, 1, 1)))
    assert adult.json["error"] == "dwelling_full"


def test_illegal_and_not_for_rent_dwellings_hold_no_one(
    client, create_area, create_dwelling, create_user, arrive, new_id_number
):
    create_area("NB", minors_count=False)
    admin = create_user("admin")
    supervisor = create_user("supervisor", ["area:NB"])
    child_birth = date(today().year - 5, 6, 1)
    for status in ("illegal", "not_for_rent"):
        dwelling_id = create_dwelling("NB", usable=100, rooms=5, status=status)
        view = _dwelling(client, admin["headers"], dwelling_id)
        assert view["capacity"] == 0
        assert view["limits"]["reason"] == status
        adult = arrive(admin["headers"], dwelling_id)
        assert adult.status_code == 409
        assert adult.json["error"] == "dwelling_full"
        assert adult.json["capacity"] == 0
        # Minors that would not count elsewhere do not make an illegal dwelling habitable.
        child = arrive(admin["headers"], dwelling_id, number=new_id_number(child_birth))
        assert child.status_code == 409, child.json
        assert child.json["error"] == "dwelling_full"

    # Declaring an inhabited dwelling illegal evicts no one: it shows over capacity.
    dwelling_id = create_dwelling("NB", usable=100, rooms=5)
    assert arrive(admin["headers"], dwelling_id).status_code == 201
    patched = client.patch(
        f"/api/v1/dwellings/{dwelling_id}",
        json={"status": "illegal"},
        headers=supervisor["headers"],
    )
    assert patched.status_code == 200, patched.json
    assert (patched.json["capacity"], patched.json["occupants"]) == (0, 1)
    assert patched.json["over_capacity"] is True


def test_only_supervisors_decide_whether_a_dwelling_is_illegal(
    client, create_area, create_estate, create_dwelling, create_user
):
    create_area("C1")
    estate = create_estate("C1")
    dwelling_id = create_dwelling("C1", estate_id=estate, status="illegal")
    manager = create_user("manager", [f"estate:{estate}"])
    supervisor = create_user("supervisor", ["area:C1"])

    lift = client.patch(
        f"/api/v1/dwellings/{dwelling_id}", json={"status": "rentable"}, headers=manager["headers"]
    )
    assert lift.status_code == 403
    assert lift.json["error"] == "status_change_not_allowed"
    assert _dwelling(client, manager["headers"], dwelling_id)["status"] == "illegal"

    lifted = client.patch(
        f"/api/v1/dwellings/{dwelling_id}",
        json={"status": "rentable"},
        headers=supervisor["headers"],
    )
    assert lifted.status_code == 200
    # A manager may still take their own flat off the market and back.
    for status in ("not_for_rent", "rentable"):
        changed = client.patch(
            f"/api/v1/dwellings/{dwelling_id}", json={"status": status}, headers=manager["headers"]
        )
        assert changed.status_code == 200, changed.json
        assert changed.json["status"] == status


@pytest.mark.registry_clock
def test_history_is_never_deleted(
    client, create_area, create_estate, create_dwelling, create_user, arrive, new_id_number
):
    create_area("C1")
    estate = create_estate("C1")
    first = create_dwelling("C1", estate_id=estate)
    second = create_dwelling("C1", estate_id=estate)
    manager = create_user("manager", [f"estate:{estate}"])
    number = new_id_number()

    stay = arrive(manager["headers"], first, number=number, arrived_on=days_before(30)).json
    assert (
        _depart(client, manager["headers"], stay["id"], on=today() - timedelta(days=31)).json[
            "error"
        ]
        == "validation_error"
    )
    assert (
        _depart(client, manager["headers"], stay["id"], on=today() + timedelta(days=1)).json[
            "error"
        ]
        == "validation_error"
    )
    assert _depart(client, manager["headers"], stay["id"], on=today() - timedelta(days=20)).json[
        "departed_on"
    ] == days_before(20)
    again = _depart(client, manager["headers"], stay["id"])
    assert again.status_code == 409
    assert again.json["error"] == "already_departed"

    back = arrive(manager["headers"], first, number=number, arrived_on=days_before(10)).json
    _depart(client, manager["headers"], back["id"], on=today() - timedelta(days=5))
    latest = arrive(manager["headers"], second, number=number).json

    history = client.get(
        f"/api/v1/persons/{stay['person_id']}/residences", headers=manager["headers"]
    )
    assert history.status_code == 200
    assert [r["id"] for r in history.json] == [latest["id"], back["id"], stay["id"]]
    assert [r["current"] for r in history.json] == [True, False, False]
    assert history.json[2]["departed_on"] == days_before(20)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Residence)) == 3

    residents = client.get(f"/api/v1/dwellings/{first}/residents", headers=manager["headers"])
    assert residents.json == []
    # The API has no way to delete a residence or a person.
    assert (
        client.delete(f"/api/v1/residences/{stay['id']}", headers=manager["headers"]).status_code
        == 405
    )


def test_a_known_person_keeps_the_recorded_name(
    client, create_area, create_dwelling, create_user, arrive, new_id_number
):
    create_area("C1")
    admin = create_user("admin")
    dwelling_id = create_dwelling("C1")
    number = new_id_number()
    first = arrive(admin["headers"], dwelling_id, number=number, name="李四").json
    _depart(client, admin["headers"], first["id"])
    second = arrive(admin["headers"], dwelling_id, number=number, name="李肆").json
    assert second["person_id"] == first["person_id"]
    person = client.get(
        f"/api/v1/persons/{first['person_id']}?reveal=true", headers=admin["headers"]
    )
    assert person.json["name"] == "李四"
    assert count_rows(Person) == 1
