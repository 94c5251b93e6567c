"""Issuance: pending card, two-phase job, active only after a verified write."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from card_helpers import new_uid

from anjuka.cards.models import Card, CardJob
from anjuka.core.db import db
from anjuka.core.keys import keyring
from anjuka.core.time import local_today
from cardreader.cardno import is_valid_card_no
from cardreader.record import BadSignatureError, decode_record, verify_record


@pytest.mark.registry_clock
def test_issue_bind_write_report_makes_the_card_active_and_the_record_verifies(desk):
    residence = desk.arrive_here()
    issued = desk.issue(residence["id"])
    assert issued.status_code == 202, issued.json
    body = issued.json
    assert body["status"] == "pending"
    assert is_valid_card_no(body["card_no"])
    assert desk.card(body["card_no"])["status"] == "pending"

    job = desk.daemon.next_job()
    assert job["id"] == body["job_id"]
    assert (job["kind"], job["card_no"], job["attempt"]) == ("issue", body["card_no"], 1)
    assert job["expected_uid"] is None
    assert job["keys"] is None
    assert 0 < job["lease_seconds"] <= 120

    uid = new_uid()
    bound = desk.daemon.send_uid(job["id"], uid, "cpu")
    assert bound.status_code == 200, bound.json
    record = bytes.fromhex(bound.json["record"])
    assert set(bound.json["keys"]) == {"transport_key", "write_key", "internal_key"}
    # Signed but not yet written: the card is still pending.
    assert desk.card(body["card_no"])["status"] == "pending"

    done = desk.daemon.report(job["id"], outcome="done", uid=uid, record=record.hex())
    assert done.status_code == 200, done.json
    assert (done.json["status"], done.json["card_status"]) == ("done", "active")

    card = desk.card(body["card_no"])
    assert card["status"] == "active"
    assert card["uid"] == uid
    assert card["card_type"] == "cpu"
    assert card["residence_id"] == residence["id"]
    assert card["person_id"] == residence["person_id"]
    expected_end = local_today() + timedelta(days=365)
    assert card["expires_on"] == expected_end.isoformat()
    assert card["revocation_reason"] is None
    assert card["job"]["status"] == "done"

    on_chip = verify_record(record, bytes.fromhex(uid), keyring().signing_public_keys())
    assert on_chip.card_no == body["card_no"]
    assert on_chip.residence_id == residence["id"]
    assert on_chip.area_code == desk.area_code
    assert (on_chip.valid_from, on_chip.valid_until) == (local_today(), expected_end)
    assert on_chip.key_id == keyring().active_signing_key_id
    # The same bytes on another chip do not verify: a copy is detected.
    with pytest.raises(BadSignatureError):
        verify_record(record, bytes.fromhex(new_uid()), keyring().signing_public_keys())


@pytest.mark.registry_clock
def test_validity_follows_the_areas_effective_policy(
    client, create_area, create_estate, create_dwelling, create_user, arrive, make_reader
):
    from card_helpers import Daemon

    create_area("P", card_validity_days=30)
    create_area("PC", "P")  # inherits 30 days
    estate = create_estate("PC")
    dwelling = create_dwelling("PC", usable=100, rooms=5, estate_id=estate)
    manager = create_user("manager", [f"estate:{estate}"])
    reader_id, token = make_reader(area_code="P")
    residence = arrive(manager["headers"], dwelling).json
    issued = client.post(
        "/api/v1/cards",
        json={"residence_id": residence["id"], "reader_id": reader_id},
        headers=manager["headers"],
    )
    assert issued.status_code == 202, issued.json
    chip = Daemon(client, reader_id, token).issue()
    record, _ = decode_record(chip["record"])
    assert record.valid_until - record.valid_from == timedelta(days=30)
    assert record.area_code == "PC"


def test_wrong_read_back_never_activates(desk):
    residence = desk.arrive_here()
    card_no = desk.issue(residence["id"]).json["card_no"]
    job = desk.daemon.next_job()
    uid = new_uid()
    record = bytes.fromhex(desk.daemon.send_uid(job["id"], uid).json["record"])

    torn = bytearray(record)
    torn[-1] ^= 0x01
    answer = desk.daemon.report(job["id"], outcome="done", uid=uid, record=torn.hex())
    assert answer.status_code == 200
    assert answer.json["status"] == "queued"
    assert "does not match" in answer.json["error"]
    card = desk.card(card_no)
    assert card["status"] == "pending"
    assert "does not match" in card["job"]["error"]

    # Right record, wrong chip: also refused.
    job = desk.daemon.next_job()
    assert job["attempt"] == 2
    again = desk.daemon.send_uid(job["id"], uid)
    assert again.json["record"] == record.hex()
    other = desk.daemon.report(job["id"], outcome="done", uid=new_uid(), record=record.hex())
    assert other.json["status"] == "queued"
    assert "signed for" in other.json["error"]
    assert desk.card(card_no)["status"] == "pending"

    # A blank read-back (the marker never committed) is no better.
    job = desk.daemon.next_job()
    desk.daemon.send_uid(job["id"], uid)
    blank = desk.daemon.report(job["id"], outcome="done", uid=uid)
    assert blank.json["status"] == "queued"
    assert desk.card(card_no)["status"] == "pending"

    # The retry that writes the record properly succeeds.
    job = desk.daemon.next_job()
    assert job["attempt"] == 4
    desk.daemon.send_uid(job["id"], uid)
    good = desk.daemon.report(job["id"], outcome="done", uid=uid, record=record.hex())
    assert (good.json["status"], good.json["card_status"]) == ("done", "active")
    assert good.json["error"] is None


def test_another_uid_rebinds_the_job(desk):
    residence = desk.arrive_here()
    card_no = desk.issue(residence["id"]).json["card_no"]
    job = desk.daemon.next_job()
    first, second = new_uid(), new_uid(4)
    record_1 = desk.daemon.send_uid(job["id"], first, "cpu").json["record"]
    answer = desk.daemon.send_uid(job["id"], second, "mifare1k")
    assert answer.status_code == 200
    record_2 = answer.json["record"]
    assert record_1 != record_2
    assert set(answer.json["keys"]) == {"transport_key", "key_a", "key_b"}
    keys = keyring().signing_public_keys()
    verify_record(bytes.fromhex(record_2), bytes.fromhex(second), keys)
    assert desk.card(card_no)["uid"] == second

    # The first chip's write reported late is not the card any more.
    late = desk.daemon.report(job["id"], outcome="done", uid=first, record=record_1)
    assert late.json["status"] == "queued"
    assert desk.card(card_no)["status"] == "pending"
    job = desk.daemon.next_job()
    desk.daemon.send_uid(job["id"], second, "mifare1k")
    done = desk.daemon.report(job["id"], outcome="done", uid=second, record=record_2)
    assert done.json["card_status"] == "active"
    card = desk.card(card_no)
    assert (card["uid"], card["card_type"]) == (second, "mifare1k")


def test_every_step_is_idempotent_by_job_id(desk):
    residence = desk.arrive_here()
    card_no = desk.issue(residence["id"]).json["card_no"]
    job = desk.daemon.next_job()
    # A daemon that restarts before it answered gets the same job, same attempt.
    again = desk.daemon.next_job()
    assert (again["id"], again["attempt"]) == (job["id"], 1)
    uid = new_uid()
    first = desk.daemon.send_uid(job["id"], uid)
    second = desk.daemon.send_uid(job["id"], uid)
    assert first.json == second.json
    record = first.json["record"]

    failed = desk.daemon.report(job["id"], outcome="failed", uid=uid, error="SW 6982")
    repeated = desk.daemon.report(job["id"], outcome="failed", uid=uid, error="SW 6982")
    assert failed.json == repeated.json
    assert failed.json["status"] == "queued"
    assert failed.json["attempt"] == 1

    job = desk.daemon.next_job()
    assert job["attempt"] == 2
    desk.daemon.send_uid(job["id"], uid)
    done = desk.daemon.report(job["id"], outcome="done", uid=uid, record=record)
    again = desk.daemon.report(job["id"], outcome="done", uid=uid, record=record)
    assert done.json == again.json
    assert done.json["card_status"] == "active"
    # The UID again after the end: the same record, nothing new signed.
    assert desk.daemon.send_uid(job["id"], uid).json["record"] == record
    signs = db.session.scalar(
        sa.text("SELECT count(*) FROM audit_events WHERE action = 'card.sign'")
    )
    activations = db.session.scalar(
        sa.text("SELECT count(*) FROM audit_events WHERE action = 'card.activate'")
    )
    assert (signs, activations) == (1, 1)
    # Nothing more to do for the reader.
    assert desk.daemon.poll().status_code == 204
    assert desk.card(card_no)["status"] == "active"


def test_unknown_outcome_keeps_the_job_with_the_daemon_until_it_reconciles(desk):
    residence = desk.arrive_here()
    card_no = desk.issue(residence["id"]).json["card_no"]
    job = desk.daemon.next_job()
    uid = new_uid()
    record = desk.daemon.send_uid(job["id"], uid).json["record"]
    unknown = desk.daemon.report(
        job["id"], outcome="unknown", uid=uid, error="card removed during the write"
    )
    assert unknown.json["status"] == "awaiting_result"
    assert "card removed" in desk.card(card_no)["job"]["error"]
    # The card comes back: same UID, same record, written and reported.
    resumed = desk.daemon.next_job()
    assert (resumed["id"], resumed["attempt"]) == (job["id"], 1)
    assert desk.daemon.send_uid(job["id"], uid).json["record"] == record
    done = desk.daemon.report(job["id"], outcome="done", uid=uid, record=record)
    assert done.json["card_status"] == "active"


def test_attempts_run_out_with_a_readable_reason_and_the_desk_can_retry(desk):
    from anjuka.cards.jobs import MAX_ATTEMPTS

    residence = desk.arrive_here()
    card_no = desk.issue(residence["id"]).json["card_no"]
    for attempt in range(1, MAX_ATTEMPTS + 1):
        job = desk.daemon.next_job()
        assert job["attempt"] == attempt
        answer = desk.daemon.report(
            job["id"], outcome="failed", error=f"no card was presented within 60 s ({attempt})"
        )
    assert answer.json["status"] == "failed"
    assert desk.daemon.poll().status_code == 204
    job_view = desk.client.get(f"/api/v1/jobs/{job['id']}", headers=desk.headers).json
    assert job_view["status"] == "failed"
    assert job_view["error"].startswith("no card was presented")
    assert job_view["finished_at"] is not None
    card = desk.card(card_no)
    assert card["status"] == "pending"
    assert card["job"]["status"] == "failed"

    # The person still has a pending card: a second issuance is refused...
    refused = desk.issue(residence["id"])
    assert refused.status_code == 409
    assert (refused.json["error"], refused.json["card_no"]) == ("card_exists", card_no)
    # ...and the desk retries the same card instead.
    retried = desk.post(f"/cards/{card_no}/retry")
    assert retried.status_code == 202, retried.json
    assert retried.json["job_id"] != job["id"]
    assert desk.post(f"/cards/{card_no}/retry").json["error"] == "job_in_progress"
    desk.daemon.issue()
    assert desk.card(card_no)["status"] == "active"


def test_a_lease_that_runs_out_is_retried_then_failed(desk):
    from anjuka.cards.jobs import MAX_ATTEMPTS

    residence = desk.arrive_here()
    desk.issue(residence["id"])
    for attempt in range(1, MAX_ATTEMPTS + 1):
        job = desk.daemon.next_job()
        assert job["attempt"] == attempt
        _expire(job["id"])
    assert desk.daemon.poll().status_code == 204
    row = db.session.get(CardJob, job["id"])
    db.session.refresh(row)
    assert row.status == "failed"
    assert "did not finish the job within its lease" in row.error


def test_a_verified_write_counts_even_after_the_lease_ran_out(desk):
    residence = desk.arrive_here()
    card_no = desk.issue(residence["id"]).json["card_no"]
    job = desk.daemon.next_job()
    uid = new_uid()
    record = desk.daemon.send_uid(job["id"], uid).json["record"]
    _expire(job["id"])
    done = desk.daemon.report(job["id"], outcome="done", uid=uid, record=record)
    assert done.json["card_status"] == "active"
    assert desk.card(card_no)["status"] == "active"


def test_a_chip_that_carries_an_active_card_is_refused(desk):
    first = desk.active_card()
    uid = first["uid"]
    residence = desk.arrive_here()
    card_no = desk.issue(residence["id"]).json["card_no"]
    job = desk.daemon.next_job()
    refused = desk.daemon.send_uid(job["id"], uid)
    assert refused.status_code == 409
    assert (refused.json["error"], refused.json["card_no"]) == ("uid_in_use", first["card_no"])
    # The desk reads why.
    card = desk.card(card_no)
    assert first["card_no"] in card["job"]["error"]
    assert card["job"]["status"] == "queued"
    # Once the first card is revoked, the chip may carry the new one.
    desk.post(f"/cards/{first['card_no']}/revoke", {"reason": "replaced"})
    job = desk.daemon.next_job()
    assert job["attempt"] == 2
    bound = desk.daemon.send_uid(job["id"], uid)
    assert bound.status_code == 200
    done = desk.daemon.report(job["id"], outcome="done", uid=uid, record=bound.json["record"])
    assert done.json["card_status"] == "active"


def test_issue_refusals(desk, create_area, create_estate, create_dwelling, make_reader):
    residence = desk.arrive_here()
    assert desk.issue(residence["id"], reader_id=999_999).json["error"] == "reader_not_found"
    other_area = create_area()["code"]
    other_estate = create_estate(other_area)
    foreign_reader, _ = make_reader(estate_id=other_estate)
    refused = desk.issue(residence["id"], reader_id=foreign_reader)
    assert (refused.status_code, refused.json["error"]) == (404, "reader_not_found")
    # A reader for the whole area serves the estate in it; an unscoped one serves all.
    area_reader, _ = make_reader(area_code=desk.area_code)
    assert desk.issue(residence["id"], reader_id=area_reader).status_code == 202
    assert desk.issue(residence["id"]).json["error"] == "card_exists"

    departed = desk.arrive_here()
    desk.post(f"/residences/{departed['id']}/departure", {"departed_on": local_today().isoformat()})
    ended = desk.issue(departed["id"])
    assert (ended.status_code, ended.json["error"]) == (409, "residence_ended")

    bad = desk.client.post(
        "/api/v1/cards", json={"residence_id": "x", "reader_id": -1}, headers=desk.headers
    )
    assert bad.status_code == 422
    assert set(bad.json["errors"]) == {"residence_id", "reader_id"}
    missing = desk.issue(999_999)
    assert (missing.status_code, missing.json["error"]) == (404, "residence_not_found")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Card)) == 1


def test_card_numbers_are_sequential_with_a_check_character(desk):
    numbers = [desk.issue(desk.arrive_here()["id"]).json["card_no"] for _ in range(3)]
    assert all(is_valid_card_no(n) for n in numbers)
    serials = [int(n[2:10]) for n in numbers]
    assert serials == [serials[0], serials[0] + 1, serials[0] + 2]
    wrong_check = numbers[0][:-1] + ("0" if numbers[0][-1] != "0" else "1")
    for malformed in (wrong_check, "AJ1234", "XX000000010"):
        answer = desk.client.get(f"/api/v1/cards/{malformed}", headers=desk.headers)
        assert (answer.status_code, answer.json["error"]) == (422, "invalid_card_no")
    unknown_no = "AJ99999999" + _check("99999999")
    unknown = desk.client.get(f"/api/v1/cards/{unknown_no}", headers=desk.headers)
    assert (unknown.status_code, unknown.json["error"]) == (404, "card_not_found")


def _check(digits: str) -> str:
    from cardreader.cardno import card_number_check_char

    return card_number_check_char(digits)


def _expire(job_id: int) -> None:
    """Let a job's lease run out now."""
    from anjuka.core.time import utcnow

    db.session.execute(
        sa.update(CardJob)
        .where(CardJob.id == job_id)
        .values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
