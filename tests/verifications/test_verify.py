"""POST /api/v1/verifications: results, inspections, alerts, scope."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa
from cardkit import new_uid
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from anjuka.alerts.models import Alert
from anjuka.areas.models import Area
from anjuka.audit.models import AuditEvent
from anjuka.core.db import db
from anjuka.core.time import local_today, utcnow
from anjuka.verifications.models import Inspection
from cardreader.protocol.cpu import internal_auth_response
from cardreader.record import decode_record, sign_record


@pytest.fixture
def patrol(client, create_area, create_dwelling, create_user, arrive, new_id_number, card_desk):
    """City P with districts P1 and P2, city Q; a resident of P1 with an active CPU card."""
    create_area("P")
    create_area("P1", parent_code="P")
    create_area("P2", parent_code="P")
    create_area("Q")
    supervisor = create_user("supervisor", ["area:P"])
    home = create_dwelling("P1", usable=40, rooms=2, address="1 Harbour Road, Room 302")
    other = create_dwelling("P2", usable=40, rooms=2)
    far = create_dwelling("Q", usable=40, rooms=2)
    number = new_id_number()
    arrived = arrive(supervisor["headers"], home, number=number, name="王小明")
    assert arrived.status_code == 201
    desk = card_desk(supervisor["headers"], "P")
    card = desk.issue(arrived.json["id"])
    return {
        "supervisor": supervisor,
        "officer": create_user("officer", ["area:P"]),
        "outsider": create_user("officer", ["area:Q"]),
        "home": home,
        "other": other,
        "far": far,
        "number": number,
        "residence_id": arrived.json["id"],
        "desk": desk,
        "card": card,
    }


def verify(client, user, expect: int = 201, **body: object) -> dict:
    response = client.post("/api/v1/verifications", json=body, headers=user["headers"])
    assert response.status_code == expect, response.json
    return response.json


def chip(card, **extra: object) -> dict:
    return {"uid": card.uid, "record": card.record.hex(), **extra}


def alerts_of(kind: str) -> list[Alert]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Alert).where(Alert.kind == kind).order_by(Alert.id)))


def test_a_valid_card_at_its_dwelling(client, patrol):
    answer = verify(client, patrol["officer"], **chip(patrol["card"], dwelling_id=patrol["home"]))
    assert answer["result"] == "valid"
    assert answer["reason"] is None
    assert answer["card"]["card_no"] == patrol["card"].card_no
    assert answer["card"]["status"] == "active"
    assert answer["resident"]["name"] == "王**"
    assert answer["dwelling"] == {"id": patrol["home"], "address": "1 Harbour Road, Room 302"}
    assert answer["registered_headcount"] == 1
    assert answer["alerts"] == []

    inspection = db.session.get(Inspection, answer["inspection_id"])
    assert (inspection.officer_id, inspection.dwelling_id) == (
        patrol["officer"]["id"],
        patrol["home"],
    )
    assert (inspection.input_kind, inspection.result) == ("chip", "valid")
    listed = client.get("/api/v1/inspections", headers=patrol["supervisor"]["headers"]).json
    assert [i["id"] for i in listed] == [inspection.id]
    assert listed[0]["card_no"] == patrol["card"].card_no

    by_number = verify(client, patrol["officer"], card_no=patrol["card"].card_no)
    assert by_number["result"] == "valid"


def test_the_wrong_dwelling(client, patrol):
    answer = verify(client, patrol["officer"], **chip(patrol["card"], dwelling_id=patrol["other"]))
    assert answer["result"] == "wrong_dwelling"
    assert answer["dwelling"]["id"] == patrol["home"]


def test_a_revoked_card_is_revoked_and_raises_an_alert(client, patrol):
    patrol["desk"].revoke(patrol["card"].card_no, "lost")
    for _ in range(2):
        answer = verify(
            client, patrol["officer"], **chip(patrol["card"], dwelling_id=patrol["other"])
        )
        assert answer["result"] == "revoked"
        assert answer["reason"] == "lost"
        assert answer["card"]["revocation_reason"] == "lost"
        assert [a["kind"] for a in answer["alerts"]] == ["revoked_card_presented"]
    [alert] = alerts_of("revoked_card_presented")
    assert (alert.subject_type, alert.subject_id) == ("card", patrol["card"].card_no)
    assert alert.count == 2
    assert alert.area.code == "P2"  # where it was presented
    by_number = verify(client, patrol["officer"], card_no=patrol["card"].card_no)
    assert by_number["result"] == "revoked"


def test_a_record_copied_onto_another_chip(client, patrol):
    answer = verify(client, patrol["officer"], uid=new_uid(), record=patrol["card"].record.hex())
    assert answer["result"] == "clone_suspected"
    assert answer["reason"] == "record_copied"
    [alert] = alerts_of("clone_suspected")
    assert alert.subject_id == patrol["card"].card_no
    assert alert.severity == "critical"


def test_forged_records(client, patrol):
    card = patrol["card"]
    tampered = bytearray(card.record)
    tampered[-1] ^= 0x01
    answer = verify(client, patrol["officer"], uid=card.uid, record=tampered.hex())
    assert (answer["result"], answer["reason"]) == ("forged", "bad_signature")

    decoded, _ = decode_record(card.record)
    longer = replace(decoded, valid_until=decoded.valid_until + timedelta(days=3650))
    foreign = sign_record(longer, bytes.fromhex(card.uid), Ed25519PrivateKey.generate())
    answer = verify(client, patrol["officer"], uid=card.uid, record=foreign.hex())
    assert (answer["result"], answer["reason"]) == ("forged", "bad_signature")

    garbage = verify(client, patrol["officer"], uid=card.uid, record="00" * 113)
    assert (garbage["result"], garbage["reason"]) == ("forged", "not_a_record")
    blank = verify(client, patrol["officer"], uid=card.uid, record="")
    assert (blank["result"], blank["reason"]) == ("unknown", "blank")
    # A fabricated record of a real card is reported on that card; garbage on nothing.
    assert len(alerts_of("clone_suspected")) == 1


def test_card_number_checks(client, patrol):
    bad = client.post(
        "/api/v1/verifications",
        json={"card_no": "AJ000000010"},
        headers=patrol["officer"]["headers"],
    )
    assert bad.status_code == 422
    assert bad.json["error"] == "invalid_card_no"
    from cardreader.cardno import make_card_no

    answer = verify(client, patrol["officer"], card_no=make_card_no(99999999))
    assert (answer["result"], answer["reason"]) == ("unknown", "no_such_card")
    assert answer["card"] is None


def test_document_checks_never_keep_the_number(client, patrol, new_id_number):
    officer = patrol["officer"]
    here = verify(client, officer, document_number=patrol["number"], dwelling_id=patrol["home"])
    assert here["result"] == "valid"
    assert here["card"]["card_no"] == patrol["card"].card_no
    elsewhere = verify(
        client, officer, document_number=patrol["number"], dwelling_id=patrol["other"]
    )
    assert elsewhere["result"] == "wrong_dwelling"
    stranger = verify(client, officer, document_number=new_id_number())
    assert (stranger["result"], stranger["reason"]) == ("unknown", "no_such_person")
    invalid = client.post(
        "/api/v1/verifications",
        json={"document_number": "110105194912310021"},
        headers=officer["headers"],
    )
    assert invalid.status_code == 422
    assert invalid.json["error"] == "invalid_id_number"

    db.session.expire_all()
    stored = [str(row) for row in db.session.execute(sa.select(Inspection.__table__)).all()]
    stored += [str(row) for row in db.session.execute(sa.select(AuditEvent.__table__)).all()]
    assert all(patrol["number"] not in row for row in stored)
    assert db.session.get(Inspection, here["inspection_id"]).person_id is not None


def test_a_head_count_above_the_registered_raises_over_occupancy(client, patrol):
    answer = verify(
        client,
        patrol["officer"],
        **chip(patrol["card"], dwelling_id=patrol["home"], observed_headcount=6),
    )
    assert answer["result"] == "valid"
    assert [a["kind"] for a in answer["alerts"]] == ["over_occupancy"]
    [alert] = alerts_of("over_occupancy")
    assert alert.details["causes"] == ["headcount"]
    assert (alert.details["observed_headcount"], alert.details["registered"]) == (6, 1)
    fine = verify(
        client,
        patrol["officer"],
        card_no=patrol["card"].card_no,
        dwelling_id=patrol["home"],
        observed_headcount=1,
    )
    assert fine["alerts"] == []
    # The registry's own numbers are fine, but the head count stands until someone resolves it.
    client.post(
        f"/api/v1/residences/{patrol['residence_id']}/departure",
        json={"departed_on": local_today().isoformat()},
        headers=patrol["supervisor"]["headers"],
    )
    assert alerts_of("over_occupancy")[0].status == "open"

    missing = client.post(
        "/api/v1/verifications",
        json={"card_no": patrol["card"].card_no, "observed_headcount": 3},
        headers=patrol["officer"]["headers"],
    )
    assert missing.status_code == 422
    assert "dwelling_id" in missing.json["errors"]


def test_internal_authenticate(client, patrol, create_user):
    officer = patrol["officer"]
    card = patrol["card"]

    def challenge() -> dict:
        response = client.post("/api/v1/verifications/challenges", headers=officer["headers"])
        assert response.status_code == 201
        return response.json

    good = challenge()
    response = internal_auth_response(
        bytes.fromhex(card.keys["internal_key"]), bytes.fromhex(good["challenge"])
    )
    answer = verify(
        client, officer, **chip(card, challenge_id=good["challenge_id"], response=response.hex())
    )
    assert answer["result"] == "valid"
    assert answer["card"]["chip_authenticated"] is True
    reused = client.post(
        "/api/v1/verifications",
        json=chip(card, challenge_id=good["challenge_id"], response=response.hex()),
        headers=officer["headers"],
    )
    assert reused.status_code == 422
    assert reused.json["error"] == "challenge_used"

    bad = challenge()
    answer = verify(
        client, officer, **chip(card, challenge_id=bad["challenge_id"], response="00" * 8)
    )
    assert (answer["result"], answer["reason"]) == (
        "clone_suspected",
        "internal_authenticate_failed",
    )
    assert answer["card"]["chip_authenticated"] is False
    assert len(alerts_of("clone_suspected")) == 1

    someone_else = create_user("officer", ["area:P"])
    theirs = client.post("/api/v1/verifications/challenges", headers=someone_else["headers"]).json
    stolen = client.post(
        "/api/v1/verifications",
        json=chip(card, challenge_id=theirs["challenge_id"], response="00" * 8),
        headers=officer["headers"],
    )
    assert stolen.status_code == 422
    assert stolen.json["error"] == "challenge_unknown"


def test_mifare_cards_have_no_challenge(client, patrol, arrive):
    resident = arrive(patrol["supervisor"]["headers"], patrol["other"])
    mifare = patrol["desk"].issue(resident.json["id"], card_type="mifare1k")
    officer = patrol["officer"]
    issued = client.post("/api/v1/verifications/challenges", headers=officer["headers"]).json
    refused = client.post(
        "/api/v1/verifications",
        json=chip(mifare, challenge_id=issued["challenge_id"], response="00" * 8),
        headers=officer["headers"],
    )
    assert refused.status_code == 422
    assert refused.json["error"] == "challenge_not_supported"
    assert verify(client, officer, **chip(mifare))["result"] == "valid"


def test_one_card_in_two_cities_at_once(client, patrol, create_user):
    card = patrol["card"]
    verify(client, patrol["officer"], **chip(card, dwelling_id=patrol["home"]))
    nearby = verify(client, patrol["officer"], **chip(card, dwelling_id=patrol["home"]))
    assert nearby["result"] == "valid"
    # Another district of the same city: areas are too coarse to call that impossible.
    district = verify(client, patrol["officer"], **chip(card, dwelling_id=patrol["other"]))
    assert district["result"] == "wrong_dwelling"
    admin = create_user("admin")
    answer = verify(client, admin, **chip(card, dwelling_id=patrol["far"]))
    assert (answer["result"], answer["reason"]) == ("clone_suspected", "impossible_travel")
    [alert] = alerts_of("clone_suspected")
    assert alert.details["other_inspection_id"] is not None


def test_positions_decide_when_given(client, patrol):
    card = patrol["card"]
    officer = patrol["officer"]
    # Ningbo's Tianyi Square, then 50 km away a minute later.
    assert (
        verify(client, officer, **chip(card, latitude=29.8737, longitude=121.5509))["result"]
        == "valid"
    )
    same_street = verify(client, officer, **chip(card, latitude=29.8740, longitude=121.5512))
    assert same_street["result"] == "valid"
    answer = verify(client, officer, **chip(card, latitude=30.2741, longitude=121.5509))
    assert (answer["result"], answer["reason"]) == ("clone_suspected", "impossible_travel")


def test_cities_decide_where_one_check_has_no_position(client, patrol, create_user):
    card = patrol["card"]
    admin = create_user("admin")
    # At the checkpoint, the same spot over and over: never too far from itself.
    for _ in range(3):
        at_home = verify(
            client,
            admin,
            **chip(card, dwelling_id=patrol["home"], latitude=29.87, longitude=121.55),
        )
        assert at_home["result"] == "valid"
    # Then a dwelling in another city, with no position: only the cities can tell.
    answer = verify(client, admin, **chip(card, dwelling_id=patrol["far"]))
    assert (answer["result"], answer["reason"]) == ("clone_suspected", "impossible_travel")
    [alert] = alerts_of("clone_suspected")
    assert alert.details["other_inspection_id"] == at_home["inspection_id"]
    # A position with no dwelling says nothing about cities, and is far from none.
    lone = verify(client, admin, **chip(card, latitude=29.87, longitude=121.55))
    assert lone["result"] != "clone_suspected"


def test_scope(client, patrol, create_user):
    outsider = patrol["outsider"]
    answer = verify(client, outsider, card_no=patrol["card"].card_no)
    assert answer["result"] == "valid"
    assert answer["details_withheld"] is True
    assert answer["resident"] is None
    assert answer["dwelling"] is None
    hidden = client.post(
        "/api/v1/verifications",
        json={"card_no": patrol["card"].card_no, "dwelling_id": patrol["home"]},
        headers=outsider["headers"],
    )
    assert hidden.status_code == 404
    assert (
        client.get("/api/v1/inspections", headers=outsider["headers"]).json[0]["officer_id"]
        == outsider["id"]
    )
    for role in ("manager", "auditor"):
        refused = client.post(
            "/api/v1/verifications",
            json={"card_no": patrol["card"].card_no},
            headers=create_user(role)["headers"],
        )
        assert refused.status_code == 403


def test_bodies_must_say_one_thing(client, patrol):
    officer = patrol["officer"]
    for body in (
        {},
        {"card_no": patrol["card"].card_no, "document_number": patrol["number"]},
        {"uid": patrol["card"].uid},
        {"card_no": patrol["card"].card_no, "latitude": 30},
        {"uid": "zz", "record": ""},
        {"card_no": patrol["card"].card_no, "offline": True},
    ):
        response = client.post("/api/v1/verifications", json=body, headers=officer["headers"])
        assert response.status_code == 422, body
        assert response.json["error"] == "validation_error"


@pytest.mark.registry_clock
def test_offline_uploads_are_judged_as_of_their_time_and_recorded_once(client, patrol, create_user):
    card = patrol["card"]
    officer = patrol["officer"]
    checked_at = (utcnow() - timedelta(hours=2)).isoformat()
    patrol["desk"].revoke(card.card_no, "lost")  # after the check
    body = chip(
        card,
        offline=True,
        checked_at=checked_at,
        client_id="laptop7-0001",
        offline_result="valid",
        dwelling_id=patrol["home"],
    )
    first = verify(client, officer, **body)
    assert first["result"] == "valid"  # the card was still good at the time
    assert first["offline"] is True
    again = verify(client, officer, expect=200, **body)
    assert again["replayed"] is True
    assert again["inspection_id"] == first["inspection_id"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Inspection)) == 1
    inspection = db.session.get(Inspection, first["inspection_id"])
    assert inspection.offline_result == "valid"
    assert inspection.checked_at.isoformat()[:16] == checked_at[:16]

    now = verify(
        client, officer, **{**body, "client_id": "laptop7-0002", "checked_at": utcnow().isoformat()}
    )
    assert now["result"] == "revoked"
    taken = client.post(
        "/api/v1/verifications",
        json=body,
        headers=create_user("officer", ["area:P"])["headers"],
    )
    assert taken.status_code == 409
    assert taken.json["error"] == "client_id_taken"
    future = client.post(
        "/api/v1/verifications",
        json={
            **body,
            "client_id": "laptop7-0003",
            "checked_at": (utcnow() + timedelta(days=1)).isoformat(),
        },
        headers=officer["headers"],
    )
    assert future.status_code == 422


def listed_alerts(client, user, kind: str = "clone_suspected") -> list[dict]:
    response = client.get(f"/api/v1/alerts?kind={kind}", headers=user["headers"])
    assert response.status_code == 200, response.json
    return response.json


def test_a_forged_record_of_another_areas_card_alerts_where_the_check_was(
    client, patrol, create_area, create_user
):
    """An officer of Q forging a record of P's card raises nothing in P, and sees what it raised."""
    card = patrol["card"]
    # P's own live alert on the card: a copy of its record found by P's officer.
    copied = verify(client, patrol["officer"], uid=new_uid(), record=card.record.hex())
    assert copied["result"] == "clone_suspected"
    [home_alert] = alerts_of("clone_suspected")
    assert (home_alert.area.code, home_alert.subject_id) == ("P1", card.card_no)

    decoded, _ = decode_record(card.record)
    forger = Ed25519PrivateKey.generate()
    outsider = patrol["outsider"]
    uid = new_uid()
    forged = sign_record(decoded, bytes.fromhex(uid), forger)
    answer = verify(client, outsider, uid=uid, record=forged.hex())
    assert (answer["result"], answer["reason"]) == ("forged", "bad_signature")
    assert answer["details_withheld"] is True

    alerts = alerts_of("clone_suspected")
    assert len(alerts) == 2
    home, raised = alerts
    # P's alert is untouched: same area, one sighting, nothing of Q's check in it.
    assert (home.area.code, home.count, home.subject_id) == ("P1", 1, card.card_no)
    assert home.details["officer_id"] == patrol["officer"]["id"]
    # Q's alert is in Q, about the chip Q's officer held, and Q's officer sees it.
    assert raised.area.code == "Q"
    assert (raised.subject_type, raised.subject_id) == ("chip", uid)
    assert raised.severity == "critical"
    assert [a["id"] for a in listed_alerts(client, outsider)] == [raised.id]
    assert [a["id"] for a in listed_alerts(client, patrol["supervisor"])] == [home.id]
    inspection = db.session.get(Inspection, answer["inspection_id"])
    assert db.session.get(Area, inspection.area_id).code == "Q"

    # An officer of two areas: the first of them by code, whatever order they were given in.
    create_area("R")
    two = create_user("officer", ["area:R", "area:Q"])
    other_uid = new_uid()
    verify(
        client,
        two,
        uid=other_uid,
        record=sign_record(decoded, bytes.fromhex(other_uid), forger).hex(),
    )
    [third] = [a for a in alerts_of("clone_suspected") if a.subject_id == other_uid]
    assert third.area.code == "Q"

    # An admin's scope is everything: the card's own area, on the card.
    admin = create_user("admin")
    verify(client, admin, uid=new_uid(), record=card.record.hex())
    db.session.expire_all()
    home = db.session.get(Alert, home.id)
    assert (home.area.code, home.count) == ("P1", 2)
