"""The alert endpoints: scoping, filters, acknowledge and resolve (audited)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from anjuka.audit.models import AuditEvent
from anjuka.core.db import db
from anjuka.core.time import local_today, utcnow

OVERRIDE = "Temporary shelter ordered by the street office"


@pytest.fixture
def two_areas(create_area, create_dwelling, create_user, arrive):
    """One over-occupancy alert in area N1 (under N) and one in area S."""
    create_area("N")
    create_area("N1", parent_code="N")
    create_area("S")
    admin = create_user("admin")
    ids = {}
    for code in ("N1", "S"):
        supervisor = create_user("supervisor", [f"area:{code}"])
        dwelling = create_dwelling(code, usable=10, rooms=1)
        for _ in range(2):
            assert arrive(supervisor["headers"], dwelling).status_code == 201
        response = arrive(supervisor["headers"], dwelling, override_reason=OVERRIDE)
        assert response.status_code == 201
        ids[code] = dwelling
    return {
        "admin": admin,
        "dwellings": ids,
        "north_supervisor": create_user("supervisor", ["area:N"]),
        "north_officer": create_user("officer", ["area:N"]),
        "south_supervisor": create_user("supervisor", ["area:S"]),
        "manager": create_user("manager"),
        "auditor": create_user("auditor"),
    }


def listed(client, user, query: str = "") -> list[dict]:
    response = client.get(f"/api/v1/alerts{query}", headers=user["headers"])
    assert response.status_code == 200, response.json
    return response.json


def test_each_role_sees_the_alerts_of_its_areas(client, two_areas):
    everything = listed(client, two_areas["admin"])
    assert sorted(a["area_code"] for a in everything) == ["N1", "S"]
    assert [a["area_code"] for a in listed(client, two_areas["north_officer"])] == ["N1"]
    assert [a["area_code"] for a in listed(client, two_areas["south_supervisor"])] == ["S"]
    for role in ("manager", "auditor"):
        assert client.get("/api/v1/alerts", headers=two_areas[role]["headers"]).status_code == 403
    assert client.get("/api/v1/alerts").status_code == 401

    south = next(a for a in everything if a["area_code"] == "S")
    hidden = client.get(
        f"/api/v1/alerts/{south['id']}", headers=two_areas["north_supervisor"]["headers"]
    )
    assert hidden.status_code == 404
    assert hidden.json["error"] == "alert_not_found"
    first = everything[0]
    assert {"id", "kind", "status", "severity", "subject_type", "subject_id"} <= set(first)


@pytest.mark.registry_clock
def test_filters(client, two_areas):
    admin = two_areas["admin"]
    assert len(listed(client, admin, "?kind=over_occupancy&status=open")) == 2
    assert listed(client, admin, "?kind=card_not_returned") == []
    assert listed(client, admin, "?status=resolved") == []
    assert [a["area_code"] for a in listed(client, admin, "?area_code=N")] == ["N1"]
    hour_ago = (utcnow() - timedelta(hours=1)).isoformat()
    in_an_hour = (utcnow() + timedelta(hours=1)).isoformat()
    assert len(listed(client, admin, f"?since={hour_ago[:19]}Z")) == 2
    assert listed(client, admin, f"?since={in_an_hour[:19]}Z") == []
    assert listed(client, admin, f"?until={hour_ago[:10]}") == []
    # A bare date is the start of the registry's day, not of UTC's.
    assert len(listed(client, admin, f"?since={local_today().isoformat()}")) == 2
    assert listed(client, admin, f"?until={local_today().isoformat()}") == []
    dwelling = two_areas["dwellings"]["S"]
    [south] = listed(client, admin, f"?subject_type=dwelling&subject_id={dwelling}")
    assert south["area_code"] == "S"
    for bad in ("?status=closed", "?kind=nonsense", "?since=yesterday"):
        response = client.get(f"/api/v1/alerts{bad}", headers=admin["headers"])
        assert response.status_code == 422
        assert response.json["error"] == "validation_error"
    # Out of scope reads as not found, never as an empty success.
    response = client.get(
        "/api/v1/alerts?area_code=S", headers=two_areas["north_supervisor"]["headers"]
    )
    assert response.status_code == 404


def test_acknowledge_then_resolve_with_notes_audited(client, two_areas):
    supervisor = two_areas["north_supervisor"]
    [alert] = listed(client, supervisor)
    url = f"/api/v1/alerts/{alert['id']}"

    refused = client.post(
        f"{url}/acknowledge", json={"note": "on it"}, headers=two_areas["north_officer"]["headers"]
    )
    assert refused.status_code == 403
    elsewhere = client.post(
        f"{url}/acknowledge", json={}, headers=two_areas["south_supervisor"]["headers"]
    )
    assert elsewhere.status_code == 404

    acked = client.post(
        f"{url}/acknowledge", json={"note": "patrol sent"}, headers=supervisor["headers"]
    )
    assert acked.status_code == 200, acked.json
    assert (acked.json["status"], acked.json["note"]) == ("acknowledged", "patrol sent")
    assert acked.json["acknowledged_by"] == supervisor["id"]
    again = client.post(f"{url}/acknowledge", json={}, headers=supervisor["headers"])
    assert again.status_code == 409
    assert again.json["error"] == "alert_acknowledged"

    missing_note = client.post(f"{url}/resolve", json={}, headers=supervisor["headers"])
    assert missing_note.status_code == 422
    assert "note" in missing_note.json["errors"]
    resolved = client.post(
        f"{url}/resolve",
        json={"note": "two tenants moved out on inspection"},
        headers=supervisor["headers"],
    )
    assert resolved.status_code == 200
    assert resolved.json["status"] == "resolved"
    assert resolved.json["auto_resolved"] is False
    assert resolved.json["resolved_by"] == supervisor["id"]
    twice = client.post(f"{url}/resolve", json={"note": "x"}, headers=supervisor["headers"])
    assert twice.status_code == 409
    assert twice.json["error"] == "alert_resolved"

    events = db.session.scalars(
        sa.select(AuditEvent)
        .where(AuditEvent.subject_type == "alert", AuditEvent.subject_id == str(alert["id"]))
        .order_by(AuditEvent.id)
    ).all()
    assert [e.action for e in events] == ["alert.acknowledge", "alert.resolve"]
    assert events[1].details["note"] == "two tenants moved out on inspection"
    assert events[1].actor_id == supervisor["id"]
    assert events[1].area_code == "N1"


def test_a_resolved_alert_gives_way_to_a_new_one(client, two_areas, create_user, arrive):
    supervisor = two_areas["north_supervisor"]
    [alert] = listed(client, supervisor)
    client.post(
        f"/api/v1/alerts/{alert['id']}/resolve",
        json={"note": "seen"},
        headers=supervisor["headers"],
    )
    response = arrive(supervisor["headers"], two_areas["dwellings"]["N1"], override_reason=OVERRIDE)
    assert response.status_code == 201
    alerts = listed(client, supervisor)
    assert [a["status"] for a in alerts] == ["open", "resolved"]
    assert alerts[0]["count"] == 1
