"""After issuance: revoke, reissue, return with an erase, departure revokes at once."""

from __future__ import annotations

import sqlalchemy as sa
from card_helpers import new_uid

from anjuka.audit.models import AuditEvent
from anjuka.audit.operations import verify
from anjuka.core import signals
from anjuka.core.db import db
from anjuka.core.time import local_today


def _depart(desk, residence_id: int, **extra: object):  # type: ignore[no-untyped-def]
    body = {"departed_on": local_today().isoformat(), **extra}
    response = desk.post(f"/residences/{residence_id}/departure", body)
    assert response.status_code == 200, response.json
    return response


def test_revoke_is_immediate_and_a_lost_card_can_be_reissued(desk):
    card = desk.active_card()
    revoked = desk.post(f"/cards/{card['card_no']}/revoke", {"reason": "lost"})
    assert revoked.status_code == 200, revoked.json
    assert (revoked.json["status"], revoked.json["revocation_reason"]) == ("revoked", "lost")
    assert revoked.json["revoked_at"] is not None
    assert desk.card(card["card_no"])["status"] == "revoked"
    again = desk.post(f"/cards/{card['card_no']}/revoke", {"reason": "damaged"})
    assert (again.status_code, again.json["error"]) == (409, "card_revoked")

    reissued = desk.issue(card["residence_id"])
    assert reissued.status_code == 202, reissued.json
    assert reissued.json["card_no"] != card["card_no"]
    desk.daemon.issue()
    new = desk.card(reissued.json["card_no"])
    assert new["status"] == "active"
    listed = desk.client.get(
        f"/api/v1/residences/{card['residence_id']}/cards", headers=desk.headers
    ).json
    assert [(c["card_no"], c["status"]) for c in listed] == [
        (new["card_no"], "active"),
        (card["card_no"], "revoked"),
    ]
    by_person = desk.client.get(
        f"/api/v1/persons/{card['person_id']}/cards", headers=desk.headers
    ).json
    assert [c["card_no"] for c in by_person] == [new["card_no"], card["card_no"]]


def test_revoke_reasons_are_the_desks_own(desk):
    card = desk.active_card()
    for reason in ("departed", "expired", "stolen", ""):
        refused = desk.post(f"/cards/{card['card_no']}/revoke", {"reason": reason})
        assert refused.status_code == 422, reason
        assert "reason" in refused.json["errors"]
    assert desk.card(card["card_no"])["status"] == "active"


def test_revoking_a_pending_card_cancels_its_job(desk):
    residence = desk.arrive_here()
    issued = desk.issue(residence["id"]).json
    job = desk.daemon.next_job()
    uid = new_uid()
    record = desk.daemon.send_uid(job["id"], uid).json["record"]
    revoked = desk.post(f"/cards/{issued['card_no']}/revoke", {"reason": "damaged"})
    assert revoked.json["status"] == "revoked"
    assert revoked.json["job"]["status"] == "cancelled"
    # The daemon's late report cannot bring the card back.
    late = desk.daemon.report(job["id"], outcome="done", uid=uid, record=record)
    assert (late.status_code, late.json["error"]) == (409, "job_finished")
    assert late.json["job_status"] == "cancelled"
    assert desk.daemon.send_uid(job["id"], uid).json["error"] == "job_finished"
    assert desk.card(issued["card_no"])["status"] == "revoked"


def test_return_erases_the_chip_then_the_card_is_returned(desk):
    card = desk.active_card(card_type="mifare1k")
    returned = desk.post(f"/cards/{card['card_no']}/return")
    assert returned.status_code == 202, returned.json
    assert returned.json["status"] == "active"  # until the chip is wiped
    assert returned.json["reader_id"] == desk.reader_id
    # Asking again answers with the same erase job.
    assert desk.post(f"/cards/{card['card_no']}/return").json["job_id"] == returned.json["job_id"]

    job = desk.daemon.next_job()
    assert (job["id"], job["kind"]) == (returned.json["job_id"], "erase")
    assert (job["expected_uid"], job["card_type"]) == (card["uid"], "mifare1k")
    bound_keys = card["chip"]["bound"]["keys"]
    assert job["keys"] == bound_keys  # the same per-card keys that wrote it

    wrong = desk.daemon.report(job["id"], outcome="failed", uid=new_uid(), error="wrong_card")
    assert wrong.json["status"] == "claimed"
    assert wrong.json["error"].startswith("wrong_card")
    assert desk.card(card["card_no"])["status"] == "active"
    assert desk.daemon.next_job()["id"] == job["id"]  # still with this daemon

    returned_cards = []
    with signals.card_returned.connected_to(lambda c, **_: returned_cards.append(c.card_no)):
        done = desk.daemon.report(job["id"], outcome="done", uid=card["uid"])
    assert (done.json["status"], done.json["card_status"]) == ("done", "returned")
    assert returned_cards == [card["card_no"]]  # alerting hears of it in the same transaction
    final = desk.card(card["card_no"])
    assert final["status"] == "returned"
    assert final["returned_at"] is not None
    assert desk.post(f"/cards/{card['card_no']}/return").json["error"] == "card_returned"
    assert desk.post(f"/cards/{card['card_no']}/revoke", {"reason": "lost"}).status_code == 409
    # A returned card frees the person for a new one.
    assert desk.issue(card["residence_id"]).status_code == 202


def test_a_pending_card_is_not_taken_back_and_an_unwritten_one_has_nothing_to_erase(desk):
    residence = desk.arrive_here()
    card_no = desk.issue(residence["id"]).json["card_no"]
    assert desk.post(f"/cards/{card_no}/return").json["error"] == "card_pending"
    desk.post(f"/cards/{card_no}/revoke", {"reason": "damaged"})
    refused = desk.post(f"/cards/{card_no}/return")
    assert (refused.status_code, refused.json["error"]) == (409, "card_not_written")


def test_departure_revokes_the_active_card_at_once(desk):
    card = desk.active_card()
    _depart(desk, card["residence_id"], card_returned=False)
    after = desk.card(card["card_no"])
    assert (after["status"], after["revocation_reason"]) == ("revoked", "departed")
    # The departed resident hands the card back later: erase, then returned.
    job_id = desk.post(f"/cards/{card['card_no']}/return").json["job_id"]
    job = desk.daemon.next_job()
    assert job["id"] == job_id
    desk.daemon.report(job_id, outcome="done", uid=card["uid"])
    final = desk.card(card["card_no"])
    assert (final["status"], final["revocation_reason"]) == ("returned", "departed")


def test_departure_cancels_a_pending_cards_job(desk):
    residence = desk.arrive_here()
    card_no = desk.issue(residence["id"]).json["card_no"]
    job = desk.daemon.next_job()
    _depart(desk, residence["id"])
    card = desk.card(card_no)
    assert (card["status"], card["revocation_reason"]) == ("revoked", "departed")
    assert card["job"]["status"] == "cancelled"
    refused = desk.daemon.send_uid(job["id"], new_uid())
    assert (refused.status_code, refused.json["error"]) == (409, "job_finished")
    assert desk.daemon.poll().status_code == 204


def test_a_move_revokes_the_card_of_the_old_residence(desk, create_dwelling, new_id_number):
    number = new_id_number()
    card = desk.active_card(desk.arrive_here(number=number)["id"])
    other_dwelling = create_dwelling(desk.area_code, usable=100, rooms=4, estate_id=desk.estate_id)
    moved = desk.arrive_here(other_dwelling, number=number, move=True)
    assert moved["person_id"] == card["person_id"]
    after = desk.card(card["card_no"])
    assert (after["status"], after["revocation_reason"]) == ("revoked", "departed")
    assert desk.issue(moved["id"]).status_code == 202


def test_every_card_write_is_in_the_areas_audit_chain(desk):
    card = desk.active_card()
    desk.post(f"/cards/{card['card_no']}/revoke", {"reason": "lost"})
    desk.post(f"/cards/{card['card_no']}/return")
    job = desk.daemon.next_job()
    desk.daemon.report(job["id"], outcome="done", uid=card["uid"])
    events = db.session.execute(
        sa.select(AuditEvent.action, AuditEvent.chain, AuditEvent.actor_type, AuditEvent.details)
        .where(AuditEvent.subject_type == "card", AuditEvent.subject_id == card["card_no"])
        .order_by(AuditEvent.id)
    ).all()
    assert [e.action for e in events] == [
        "card.issue",
        "card.sign",
        "card.activate",
        "card.revoke",
        "card.return_requested",
        "card.return",
    ]
    assert {e.chain for e in events} == {f"area:{desk.area_code}"}
    assert [e.actor_type for e in events] == ["user", "reader", "reader", "user", "user", "reader"]
    # No key material in the trail.
    text = repr([e.details for e in events])
    for key in card["chip"]["bound"]["keys"].values():
        assert key not in text
    assert verify().ok


def test_a_card_handed_back_at_departure_is_the_last_written_one_and_erased_once(desk):
    """What the desk's departure form queues when the card comes back with the resident."""
    from anjuka.cards.models import Reader
    from anjuka.cards.operations import take_back_on_departure
    from anjuka.residences.models import Residence

    reader = db.session.get(Reader, desk.reader_id)
    never_written = db.session.get(Residence, desk.arrive_here()["id"])
    assert take_back_on_departure(never_written, reader) is None
    card = desk.active_card()
    _depart(desk, card["residence_id"])
    assert desk.card(card["card_no"])["status"] == "revoked"  # at once, by the departure
    residence = db.session.get(Residence, card["residence_id"])
    job = take_back_on_departure(residence, reader)
    assert job is not None
    assert (job.kind, job.card.card_no, job.reader_id) == ("erase", card["card_no"], reader.id)
    db.session.commit()
    claimed = desk.daemon.next_job()
    assert claimed["id"] == job.id
    done = desk.daemon.report(claimed["id"], outcome="done", uid=card["uid"])
    assert done.json["card_status"] == "returned"
    db.session.expire_all()
    assert take_back_on_departure(db.session.get(Residence, residence.id), reader) is None
