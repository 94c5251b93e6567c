"""Moves across scopes: refused as a move, possible as a transfer the old desk completes."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine
from registry_helpers import days_before, today

from anjuka.alerts.models import Alert
from anjuka.audit.models import AuditEvent
from anjuka.cards.models import Card
from anjuka.core.db import db
from anjuka.core.time import utcnow
from anjuka.persons.models import Person
from anjuka.residences.models import Residence
from anjuka.transfers.models import Transfer


@pytest.fixture
def two_desks(create_area, create_estate, create_dwelling, create_user, card_desk):
    """Areas N and S; an estate in each with a manager; supervisors of each area."""
    create_area("N", registration_deadline_days=3)
    create_area("S", registration_deadline_days=3)
    estate_n, estate_s = create_estate("N"), create_estate("S")
    n_supervisor = create_user("supervisor", ["area:N"])
    s_supervisor = create_user("supervisor", ["area:S"])
    return {
        "north": create_dwelling("N", usable=40, rooms=4, estate_id=estate_n),
        "north_small": create_dwelling("N", usable=5, rooms=1, estate_id=estate_n),
        "south": create_dwelling("S", usable=40, rooms=4, estate_id=estate_s),
        "n_manager": create_user("manager", [f"estate:{estate_n}"]),
        "s_manager": create_user("manager", [f"estate:{estate_s}"]),
        "n_supervisor": n_supervisor,
        "s_supervisor": s_supervisor,
        "s_cards": card_desk(s_supervisor["headers"], "S"),
    }


def _person_row(person_id: int) -> tuple:
    db.session.expire_all()
    person = db.session.get(Person, person_id)
    return (person.name, person.phone, person.origin)


def _audit_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))


def _south_resident(arrive, two_desks, number: str) -> dict:
    response = arrive(
        two_desks["s_manager"]["headers"],
        two_desks["south"],
        number=number,
        arrived_on=days_before(30),
        phone="13800000001",
        origin="Anhui",
    )
    assert response.status_code == 201, response.json
    return response.json


@pytest.mark.parametrize("caller", ["n_manager", "n_supervisor"])
def test_a_move_may_not_end_a_residence_outside_the_callers_scope(
    client, arrive, new_id_number, two_desks, caller
):
    number = new_id_number()
    south = _south_resident(arrive, two_desks, number)
    card = two_desks["s_cards"].issue(south["id"])
    before = (_person_row(south["person_id"]), _audit_count())

    refused = arrive(
        two_desks[caller]["headers"],
        two_desks["north"],
        number=number,
        move=True,
        phone="13999999999",
        origin="Elsewhere",
    )

    assert refused.status_code == 409, refused.json
    assert refused.json["error"] == "registered_elsewhere"
    # It says nothing about where: no id, address, area of the other residence.
    text = refused.get_data(as_text=True)
    for secret in (str(two_desks["south"]), "S", str(south["id"])):
        assert f'"{secret}"' not in text
        assert f" {secret} " not in text
    assert set(refused.json) == {"status", "error", "message"}
    # Nothing changed: the residence, the card, the person, the trail.
    db.session.expire_all()
    assert db.session.get(Residence, south["id"]).departed_on is None
    assert db.session.scalar(sa.select(Card.status).where(Card.card_no == card.card_no)) == "active"
    assert (_person_row(south["person_id"]), _audit_count()) == before


def test_the_old_desk_completes_a_transfer_by_recording_the_departure(
    client, arrive, new_id_number, two_desks
):
    number = new_id_number()
    south = _south_resident(arrive, two_desks, number)
    card = two_desks["s_cards"].issue(south["id"])
    n_manager, s_manager = two_desks["n_manager"], two_desks["s_manager"]

    asked = client.post(
        "/api/v1/transfers",
        json={
            "dwelling_id": two_desks["north"],
            "arrived_on": today().isoformat(),
            "person": {"document_type": "resident_id", "document_number": number},
        },
        headers=n_manager["headers"],
    )
    assert asked.status_code == 201, asked.json
    transfer = asked.json
    assert transfer["status"] == "requested"
    assert transfer["sides"] == ["incoming"]
    # The asking side learns nothing of the old residence.
    assert transfer["from_residence_id"] is None
    assert transfer["from_address"] is None
    assert transfer["document_number"] != number
    assert "*" in transfer["name"]

    # The old desk sees it, with its own residence; not the new dwelling.
    [outgoing] = client.get("/api/v1/transfers?side=outgoing", headers=s_manager["headers"]).json
    assert outgoing["id"] == transfer["id"]
    assert outgoing["from_residence_id"] == south["id"]
    assert outgoing["to_dwelling_id"] is None
    assert outgoing["to_address"] is None
    assert client.get("/api/v1/transfers?side=incoming", headers=s_manager["headers"]).json == []
    # The old area's supervisors get an alert; the new area's do not.
    alerts = client.get(
        "/api/v1/alerts?kind=transfer_requested", headers=two_desks["s_supervisor"]["headers"]
    ).json
    assert [a["subject_id"] for a in alerts] == [str(transfer["id"])]
    assert (
        client.get(
            "/api/v1/alerts?kind=transfer_requested", headers=two_desks["n_supervisor"]["headers"]
        ).json
        == []
    )
    # A second request for the same person waits for the first.
    again = client.post(
        "/api/v1/transfers",
        json={
            "dwelling_id": two_desks["north"],
            "arrived_on": today().isoformat(),
            "person": {"document_type": "resident_id", "document_number": number},
        },
        headers=two_desks["n_supervisor"]["headers"],
    )
    assert (again.status_code, again.json["error"]) == (409, "transfer_pending")

    departed = client.post(
        f"/api/v1/residences/{south['id']}/departure",
        json={"departed_on": today().isoformat()},
        headers=s_manager["headers"],
    )
    assert departed.status_code == 200, departed.json

    done = client.get(f"/api/v1/transfers/{transfer['id']}", headers=n_manager["headers"]).json
    assert (done["status"], done["completion"]) == ("completed", "departure")
    new = client.get(f"/api/v1/residences/{done['to_residence_id']}", headers=n_manager["headers"])
    assert new.status_code == 200
    assert (new.json["dwelling_id"], new.json["current"]) == (two_desks["north"], True)
    assert new.json["person_id"] == south["person_id"]
    db.session.expire_all()
    assert (
        db.session.scalar(sa.select(Card.status).where(Card.card_no == card.card_no)) == "revoked"
    )
    [alert] = db.session.scalars(sa.select(Alert).where(Alert.kind == "transfer_requested"))
    assert (alert.status, alert.auto_resolved) == ("resolved", True)


def test_a_transfer_into_a_dwelling_that_filled_up_meanwhile_fails_and_frees_the_person(
    client, arrive, new_id_number, two_desks
):
    number = new_id_number()
    south = _south_resident(arrive, two_desks, number)
    small = two_desks["north_small"]  # capacity 1
    asked = client.post(
        "/api/v1/transfers",
        json={
            "dwelling_id": small,
            "arrived_on": today().isoformat(),
            "person": {"document_type": "resident_id", "document_number": number},
        },
        headers=two_desks["n_manager"]["headers"],
    )
    assert asked.status_code == 201, asked.json
    assert arrive(two_desks["n_manager"]["headers"], small).status_code == 201
    client.post(
        f"/api/v1/residences/{south['id']}/departure",
        json={"departed_on": today().isoformat()},
        headers=two_desks["s_manager"]["headers"],
    )
    failed = client.get(
        f"/api/v1/transfers/{asked.json['id']}", headers=two_desks["n_manager"]["headers"]
    ).json
    assert (failed["status"], failed["reason"]) == ("failed", "dwelling_full")
    # The person has left the old dwelling and may be registered wherever there is room.
    again = arrive(two_desks["n_manager"]["headers"], two_desks["north"], number=number)
    assert again.status_code == 201, again.json


def test_a_supervisor_of_the_new_area_completes_an_unanswered_transfer_after_the_deadline(
    client, arrive, new_id_number, two_desks
):
    number = new_id_number()
    south = _south_resident(arrive, two_desks, number)
    card = two_desks["s_cards"].issue(south["id"])
    asked = client.post(
        "/api/v1/transfers",
        json={
            "dwelling_id": two_desks["north"],
            "arrived_on": today().isoformat(),
            "person": {"document_type": "resident_id", "document_number": number},
        },
        headers=two_desks["n_manager"]["headers"],
    ).json
    url = f"/api/v1/transfers/{asked['id']}/complete"
    supervisor = two_desks["n_supervisor"]["headers"]
    early = client.post(url, json={"reason": "The old desk does not answer."}, headers=supervisor)
    assert (early.status_code, early.json["error"]) == (409, "transfer_not_due")
    assert early.json["due_on"] == asked["due_on"]
    # Not the manager, nor the old area's supervisor.
    assert (
        client.post(
            url, json={"reason": "x" * 10}, headers=two_desks["n_manager"]["headers"]
        ).status_code
        == 403
    )
    assert (
        client.post(
            url, json={"reason": "x" * 10}, headers=two_desks["s_supervisor"]["headers"]
        ).status_code
        == 404
    )

    with time_machine.travel(utcnow() + timedelta(days=8), tick=True):
        user = two_desks["n_supervisor"]
        signed_in = client.post(
            "/api/v1/auth/tokens", json={"username": user["username"], "password": user["password"]}
        )
        supervisor = {"Authorization": f"Bearer {signed_in.json['token']}"}
        short = client.post(url, json={"reason": "no"}, headers=supervisor)
        assert short.status_code == 422
        done = client.post(
            url, json={"reason": "The old desk does not answer."}, headers=supervisor
        )
        assert done.status_code == 200, done.json
    assert (done.json["status"], done.json["completion"]) == ("completed", "supervisor")
    db.session.expire_all()
    old = db.session.get(Residence, south["id"])
    assert old.departed_on == today()  # the day the transfer asked for
    assert (
        db.session.scalar(sa.select(Card.status).where(Card.card_no == card.card_no)) == "revoked"
    )
    # Audited on both areas' chains, with the reason.
    events = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "transfer.complete")
    ).all()
    assert sorted(e.chain for e in events) == ["area:N", "area:S"]
    assert {e.details["reason"] for e in events} == {"The old desk does not answer."}
    departs = db.session.scalars(
        sa.select(AuditEvent).where(
            AuditEvent.action == "residence.depart", AuditEvent.subject_id == str(south["id"])
        )
    ).all()
    assert [(e.chain, e.details["reason"]) for e in departs] == [("area:S", "transfer")]


def test_the_requester_cancels_and_a_move_by_the_old_desk_supersedes(
    client, arrive, new_id_number, two_desks, create_dwelling
):
    number = new_id_number()
    south = _south_resident(arrive, two_desks, number)
    body = {
        "dwelling_id": two_desks["north"],
        "arrived_on": today().isoformat(),
        "person": {"document_type": "resident_id", "document_number": number},
    }
    first = client.post("/api/v1/transfers", json=body, headers=two_desks["n_manager"]["headers"])
    # The old side cannot cancel a request it did not make.
    foreign = client.post(
        f"/api/v1/transfers/{first.json['id']}/cancel",
        json={},
        headers=two_desks["s_manager"]["headers"],
    )
    assert foreign.status_code == 404
    cancelled = client.post(
        f"/api/v1/transfers/{first.json['id']}/cancel",
        json={"reason": "asked by mistake"},
        headers=two_desks["n_manager"]["headers"],
    )
    assert cancelled.json["status"] == "cancelled"
    again = client.post(
        f"/api/v1/transfers/{first.json['id']}/cancel",
        json={},
        headers=two_desks["n_manager"]["headers"],
    )
    assert (again.status_code, again.json["error"]) == (409, "transfer_closed")

    second = client.post("/api/v1/transfers", json=body, headers=two_desks["n_manager"]["headers"])
    assert second.status_code == 201, second.json
    # The old desk moves the person within its own estate instead.
    other_south = create_dwelling(
        "S", estate_id=db.session.get(Residence, south["id"]).dwelling.estate_id
    )
    moved = arrive(two_desks["s_manager"]["headers"], other_south, number=number, move=True)
    assert moved.status_code == 201, moved.json
    db.session.expire_all()
    transfer = db.session.get(Transfer, second.json["id"])
    assert (transfer.status, transfer.reason) == ("cancelled", "superseded by a move")


def test_transfer_refusals_change_nothing(client, arrive, new_id_number, two_desks):
    number = new_id_number()
    unknown = client.post(
        "/api/v1/transfers",
        json={
            "dwelling_id": two_desks["north"],
            "arrived_on": today().isoformat(),
            "person": {"document_type": "resident_id", "document_number": number},
        },
        headers=two_desks["n_manager"]["headers"],
    )
    assert (unknown.status_code, unknown.json["error"]) == (409, "not_registered")
    south = _south_resident(arrive, two_desks, number)
    into_foreign = client.post(
        "/api/v1/transfers",
        json={
            "dwelling_id": two_desks["south"],
            "arrived_on": today().isoformat(),
            "person": {"document_type": "resident_id", "document_number": number},
        },
        headers=two_desks["n_manager"]["headers"],
    )
    assert into_foreign.status_code == 404
    before = _audit_count()
    future = client.post(
        "/api/v1/transfers",
        json={
            "dwelling_id": two_desks["north"],
            "arrived_on": (today() + timedelta(days=1)).isoformat(),
            "person": {"document_type": "resident_id", "document_number": number},
        },
        headers=two_desks["n_manager"]["headers"],
    )
    assert future.status_code == 422
    assert _audit_count() == before
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Transfer)) == 0
    assert db.session.get(Residence, south["id"]).departed_on is None
