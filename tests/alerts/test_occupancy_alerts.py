"""Alerts raised by registry events: policy changes, overrides, dwelling changes."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from anjuka.alerts.models import Alert
from anjuka.alerts.operations import raise_alert
from anjuka.core.db import db
from anjuka.core.time import local_today

OVERRIDE = "Emergency housing after a fire next door"


def alerts(**where: object) -> list[Alert]:
    db.session.expire_all()
    stmt = sa.select(Alert).order_by(Alert.id)
    for name, value in where.items():
        stmt = stmt.where(getattr(Alert, name) == value)
    return list(db.session.scalars(stmt))


@pytest.fixture
def city(create_area, create_dwelling, create_user, arrive):
    """Area A (5 m² usable, 2 per room) with a child that inherits and one that overrides."""
    create_area("A", min_area_per_person_m2=5, area_basis="usable", max_persons_per_room=2)
    create_area("A-IN", parent_code="A")
    create_area("A-OWN", parent_code="A", min_area_per_person_m2=5)
    create_area("B", min_area_per_person_m2=5, area_basis="usable", max_persons_per_room=2)
    supervisor = create_user("supervisor", ["area:A", "area:B"])
    admin = create_user("admin")

    def filled(area: str, usable: float, rooms: int, people: int) -> int:
        dwelling = create_dwelling(area, usable=usable, rooms=rooms)
        for _ in range(people):
            assert arrive(supervisor["headers"], dwelling).status_code == 201
        return dwelling

    return {
        "supervisor": supervisor,
        "admin": admin,
        # 20 m² with 4: over capacity once a person needs 10 m².
        "crowded": filled("A", 20, 4, 4),
        # 40 m² with 4: still fine at 10 m².
        "roomy": filled("A", 40, 4, 4),
        # Inherits A's policy: 20 m² with 3 is over at 10 m².
        "inherits": filled("A-IN", 20, 4, 3),
        # Sets its own 5 m²: unaffected by A's change.
        "own_policy": filled("A-OWN", 20, 4, 4),
        # Another tree altogether.
        "elsewhere": filled("B", 20, 4, 4),
    }


def patch_policy(client, admin, code: str, **policy: object):
    response = client.patch(
        f"/api/v1/areas/{code}", json={"policy": policy}, headers=admin["headers"]
    )
    assert response.status_code == 200, response.json
    return response


def test_lowering_a_policy_raises_one_alert_per_crowded_dwelling_and_restoring_resolves(
    client, city
):
    assert alerts() == []
    patch_policy(client, city["admin"], "A", min_area_per_person_m2=10)

    raised = alerts(kind="over_occupancy")
    assert sorted(int(a.subject_id) for a in raised) == sorted([city["crowded"], city["inherits"]])
    assert all(a.status == "open" and a.count == 1 for a in raised)
    assert {a.details["capacity"] for a in raised} == {2}
    assert all(a.details["causes"] == ["capacity"] for a in raised)
    assert alerts(kind="illegal_dwelling_occupied") == []

    listed = client.get(
        "/api/v1/alerts?kind=over_occupancy&status=open", headers=city["supervisor"]["headers"]
    )
    assert listed.status_code == 200
    assert {a["subject_id"] for a in listed.json} == {
        str(city["crowded"]),
        str(city["inherits"]),
    }
    assert {a["area_code"] for a in listed.json} == {"A", "A-IN"}

    patch_policy(client, city["admin"], "A", min_area_per_person_m2=5)
    resolved = alerts(kind="over_occupancy")
    assert len(resolved) == 2
    assert all(a.status == "resolved" and a.auto_resolved for a in resolved)
    assert all(a.note.startswith("resolved: cause gone") for a in resolved)
    assert all(a.resolved_by_id is None for a in resolved)

    # Lowering it again is a new episode: new alerts, the old ones stay resolved.
    patch_policy(client, city["admin"], "A", min_area_per_person_m2=10)
    assert len(alerts(kind="over_occupancy", status="open")) == 2
    assert len(alerts(kind="over_occupancy")) == 4


def test_a_policy_change_rolled_back_leaves_no_alert(app, city):
    from anjuka.areas.operations import find_area, update_area

    update_area(find_area("A"), name=None, policy={"min_area_per_person_m2": 10})
    assert len(alerts(kind="over_occupancy")) == 2
    db.session.rollback()
    assert alerts() == []


def test_override_repeats_the_live_alert_and_departure_resolves_it(
    client, create_area, create_dwelling, create_user, arrive
):
    create_area("A", min_area_per_person_m2=5, area_basis="usable", max_persons_per_room=2)
    supervisor = create_user("supervisor", ["area:A"])
    dwelling = create_dwelling("A", usable=10, rooms=1)
    residents = [arrive(supervisor["headers"], dwelling).json["id"] for _ in range(2)]
    assert arrive(supervisor["headers"], dwelling).json["error"] == "dwelling_full"
    assert alerts() == []

    extra = []
    for _ in range(2):
        response = arrive(supervisor["headers"], dwelling, override_reason=OVERRIDE)
        assert response.status_code == 201, response.json
        extra.append(response.json["id"])
    [alert] = alerts(kind="over_occupancy")
    assert (alert.status, alert.count) == ("open", 2)
    assert alert.details["trigger"] == "override"
    assert alert.last_seen_at >= alert.first_seen_at

    today = local_today().isoformat()
    for residence in extra[:1]:
        client.post(
            f"/api/v1/residences/{residence}/departure",
            json={"departed_on": today, "card_returned": True},
            headers=supervisor["headers"],
        )
    assert alerts()[0].status == "open"  # 3 people, capacity 2: still crowded
    client.post(
        f"/api/v1/residences/{extra[1]}/departure",
        json={"departed_on": today, "card_returned": True},
        headers=supervisor["headers"],
    )
    [alert] = alerts(kind="over_occupancy")
    assert alert.status == "resolved"
    assert alert.auto_resolved
    assert "within capacity 2" in alert.note
    assert len(residents) == 2


def test_an_occupied_illegal_dwelling_raises_its_own_alert(
    client, create_area, create_dwelling, create_user, arrive
):
    create_area("A")
    supervisor = create_user("supervisor", ["area:A"])
    dwelling = create_dwelling("A", usable=30, rooms=2, status="illegal")
    refused = arrive(supervisor["headers"], dwelling)
    assert refused.json["error"] == "dwelling_full"
    assert arrive(supervisor["headers"], dwelling, override_reason=OVERRIDE).status_code == 201

    [alert] = alerts()
    assert alert.kind == "illegal_dwelling_occupied"
    assert alert.severity == "critical"

    patched = client.patch(
        f"/api/v1/dwellings/{dwelling}", json={"status": "rentable"}, headers=supervisor["headers"]
    )
    assert patched.status_code == 200, patched.json
    [alert] = alerts()
    assert alert.status == "resolved"
    assert alert.auto_resolved
    assert "no longer marked illegal" in alert.note


def test_fewer_rooms_raise_over_occupancy(
    client, create_area, create_dwelling, create_user, arrive
):
    create_area("A", min_area_per_person_m2=5, area_basis="usable", max_persons_per_room=2)
    supervisor = create_user("supervisor", ["area:A"])
    dwelling = create_dwelling("A", usable=40, rooms=3)
    for _ in range(5):
        assert arrive(supervisor["headers"], dwelling).status_code == 201
    client.patch(f"/api/v1/dwellings/{dwelling}", json={"rooms": 2}, headers=supervisor["headers"])
    [alert] = alerts()
    assert (alert.kind, alert.subject_id) == ("over_occupancy", str(dwelling))
    assert alert.details["room_limit"] == 4
    assert alert.details["trigger"] == "dwelling_changed"


@pytest.mark.registry_clock
def test_a_late_registration_raises_an_alert_once(
    client, create_area, create_dwelling, create_user, arrive
):
    create_area("A", registration_deadline_days=3)
    supervisor = create_user("supervisor", ["area:A"])
    dwelling = create_dwelling("A")
    arrived = (local_today() - timedelta(days=20)).isoformat()
    response = arrive(supervisor["headers"], dwelling, arrived_on=arrived)
    assert response.json["late"] is True
    assert arrive(supervisor["headers"], dwelling).json["late"] is False
    [alert] = alerts()
    assert (alert.kind, alert.subject_type) == ("late_registration", "residence")
    assert alert.subject_id == str(response.json["id"])
    assert alert.details["arrived_on"] == arrived
    assert alert.details["registered_on"] == local_today().isoformat()


def test_concurrent_raises_of_one_alert_make_one_alert(app, create_area, create_dwelling):
    """Two transactions raising the same alert at once: one row, counted twice."""
    create_area("A")
    dwelling = create_dwelling("A")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def raise_in_own_transaction() -> None:
        try:
            with app.app_context():
                barrier.wait()
                raise_alert("over_occupancy", "dwelling", dwelling, area_id=None)
                db.session.commit()
        except BaseException as exc:  # report in the main thread
            errors.append(exc)

    db.session.commit()  # end the test's own transaction (SQLite: its write lock)
    threads = [threading.Thread(target=raise_in_own_transaction) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    [alert] = alerts()
    assert alert.count == 2
