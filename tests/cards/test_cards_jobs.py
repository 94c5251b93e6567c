"""The job queue itself: long poll, holders, leases, last seen."""

from __future__ import annotations

import threading
import time

from card_helpers import new_uid

from anjuka.cards.models import Reader
from anjuka.core.db import db


def test_long_poll_waits_then_answers_204_and_notes_the_reader_seen(desk):
    assert db.session.get(Reader, desk.reader_id).last_seen_at is None
    started = time.monotonic()
    response = desk.daemon.poll(wait=1)
    elapsed = time.monotonic() - started
    assert response.status_code == 204
    assert response.get_data() == b""
    assert 0.9 <= elapsed < 5
    db.session.expire_all()
    assert db.session.get(Reader, desk.reader_id).last_seen_at is not None
    listed = desk.client.get("/api/v1/readers", headers=_admin(desk)).json
    assert listed[0]["last_seen_at"] is not None


def test_long_poll_hands_out_a_job_that_arrives_while_it_waits(app, desk):
    from anjuka.cards.operations import issue_card
    from anjuka.cards.permissions import get_reader_or_404
    from anjuka.residences.models import Residence

    residence_id = desk.arrive_here()["id"]
    outcome: dict = {}

    def desk_issues_later() -> None:
        time.sleep(0.8)
        with app.app_context():
            try:
                reader = get_reader_or_404(desk.reader_id)
                residence = db.session.get(Residence, residence_id)
                card, job = issue_card(residence, reader)
                db.session.commit()
                outcome["job_id"] = job.id
            except Exception as exc:  # reported by the main thread
                outcome["error"] = exc

    worker = threading.Thread(target=desk_issues_later)
    worker.start()
    started = time.monotonic()
    response = desk.daemon.poll(wait=10)
    elapsed = time.monotonic() - started
    worker.join()
    assert "error" not in outcome, outcome
    assert response.status_code == 200
    assert response.json["id"] == outcome["job_id"]
    assert 0.7 <= elapsed < 5


def test_bad_poll_parameters_are_refused(desk):
    path = f"/api/v1/readers/{desk.reader_id}/jobs/next"
    for query in ({"wait": -1}, {"wait": "soon"}, {"holder": "a b"}, {"holder": "x" * 65}):
        response = desk.client.get(path, query_string=query, headers=desk.daemon.headers)
        assert response.status_code == 422, query
    # More than 30 s is cut to 30 s, not refused (nothing queued here, so wait 0).
    assert desk.daemon.poll(wait=0).status_code == 204


def test_a_held_job_goes_back_only_to_its_holder(desk):
    first = desk.issue(desk.arrive_here()["id"]).json["job_id"]
    second = desk.issue(desk.arrive_here()["id"]).json["job_id"]
    one = desk.make_daemon(holder="desk-pc-1")
    two = desk.make_daemon(holder="desk-pc-2")
    assert one.next_job()["id"] == first
    assert two.next_job()["id"] == second
    # Each gets its own back after a restart; a third holder gets nothing.
    assert one.next_job()["id"] == first
    assert two.next_job()["id"] == second
    assert desk.make_daemon(holder="desk-pc-3").poll().status_code == 204
    assert desk.make_daemon().poll().status_code == 204  # anonymous holds nothing either

    refused = two.send_uid(first, new_uid())
    assert (refused.status_code, refused.json["error"]) == (409, "job_held_elsewhere")
    refused = two.report(first, outcome="failed", error="x")
    assert (refused.status_code, refused.json["error"]) == (409, "job_held_elsewhere")
    assert one.send_uid(first, new_uid()).status_code == 200


def test_a_report_for_an_attempt_that_is_over_is_refused(desk):
    desk.issue(desk.arrive_here()["id"])
    job = desk.daemon.next_job()
    desk.daemon.report(job["id"], outcome="failed", error="reader error", attempt=1)
    job = desk.daemon.next_job()
    assert job["attempt"] == 2
    stale = desk.daemon.report(job["id"], outcome="failed", error="late news", attempt=1)
    assert (stale.status_code, stale.json["error"]) == (409, "stale_attempt")
    stale = desk.daemon.send_uid(job["id"], new_uid(), attempt=1)
    assert (stale.status_code, stale.json["error"]) == (409, "stale_attempt")
    assert desk.daemon.send_uid(job["id"], new_uid(), attempt=2).status_code == 200


def test_a_job_nobody_holds_takes_no_uid_or_failure(desk):
    job_id = desk.issue(desk.arrive_here()["id"]).json["job_id"]
    refused = desk.daemon.send_uid(job_id, new_uid())
    assert (refused.status_code, refused.json["error"]) == (409, "job_not_held")
    refused = desk.daemon.report(job_id, outcome="failed", error="x")
    assert (refused.status_code, refused.json["error"]) == (409, "job_not_held")


def test_malformed_reports_are_refused_without_effect(desk):
    desk.issue(desk.arrive_here()["id"])
    job = desk.daemon.next_job()
    for body in (
        {"uid": "zz", "card_type": "cpu"},
        {"uid": "abc", "card_type": "cpu"},
        {"uid": "00" * 33, "card_type": "cpu"},
        {"uid": "0a0b0c0d", "card_type": "desfire"},
        {"card_type": "cpu"},
    ):
        response = desk.client.post(
            f"/api/v1/readers/{desk.reader_id}/jobs/{job['id']}/uid",
            json=body,
            headers=desk.daemon.headers,
        )
        assert response.status_code == 422, body
    for body in (
        {"outcome": "maybe"},
        {"outcome": "done"},
        {"outcome": "done", "uid": "0a0b", "record": "xyz"},
        {"outcome": "failed", "error": 5},
    ):
        response = desk.client.post(
            f"/api/v1/readers/{desk.reader_id}/jobs/{job['id']}/result",
            json=body,
            headers=desk.daemon.headers,
        )
        assert response.status_code == 422, body
    erase_uid = desk.daemon.send_uid(job["id"], new_uid())
    assert erase_uid.status_code == 200
    view = desk.client.get(f"/api/v1/jobs/{job['id']}", headers=desk.headers).json
    assert (view["status"], view["attempt"], view["error"]) == ("awaiting_result", 1, None)


def test_an_erase_job_takes_no_uid(desk):
    card = desk.active_card()
    job_id = desk.post(f"/cards/{card['card_no']}/return").json["job_id"]
    desk.daemon.next_job()
    refused = desk.daemon.send_uid(job_id, card["uid"])
    assert (refused.status_code, refused.json["error"]) == (409, "not_an_issue")


def _admin(desk) -> dict:  # type: ignore[no-untyped-def]
    from anjuka.auth.operations import create_user, issue_token

    user = create_user(f"admin-{new_uid(3)}", "admin", "correct horse battery")
    token, _ = issue_token(user)
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_a_stopping_daemon_hands_back_what_it_claimed_but_has_not_begun(desk, make_reader):
    first, second = (desk.make_daemon(holder=h, run=f"{h}-run") for h in ("desk-a", "desk-b"))
    for _ in range(2):
        desk.issue(desk.arrive_here()["id"])
    claimed = first.next_job()
    begun = second.next_job()
    assert second.send_uid(begun["id"], new_uid()).status_code == 200
    answer = first.release()
    assert (answer.status_code, answer.json) == (200, {"released": [claimed["id"]]})
    # Its attempt is given back, and the next daemon takes it at once, as attempt 1.
    job = desk.client.get(f"/api/v1/jobs/{claimed['id']}", headers=desk.headers).json
    assert (job["status"], job["attempt"]) == ("queued", 0)
    third = desk.make_daemon(holder="desk-c")
    assert (third.next_job()["id"], third.next_job()["attempt"]) == (claimed["id"], 1)
    # A job with card work done stays with its daemon (its journal finishes it).
    assert second.release().json == {"released": []}
    job = desk.client.get(f"/api/v1/jobs/{begun['id']}", headers=desk.headers).json
    assert job["status"] == "awaiting_result"
    # Another reader's release is not found, as every other reader path.
    other_id, other_token = make_reader(estate_id=desk.estate_id)
    other = desk.make_daemon(other_id, other_token)
    foreign = desk.client.post(
        f"/api/v1/readers/{desk.reader_id}/jobs/release", json={}, headers=other.headers
    )
    assert (foreign.status_code, foreign.json["error"]) == (404, "reader_not_found")


def test_a_poll_of_a_run_that_is_over_claims_nothing(app, desk):
    """The release ends the stopping run's poll still open on the server, whatever comes."""
    from anjuka.cards import jobs

    stopping = desk.make_daemon(holder="desk-a", run="run-1")
    residence_id = desk.arrive_here()["id"]
    outcome: dict = {}

    def stop_then_issue() -> None:
        time.sleep(0.5)
        with app.app_context():
            try:
                outcome["released"] = jobs.release_jobs(desk.reader_id, "desk-a", "run-1")
                db.session.commit()
            except Exception as exc:  # reported by the main thread
                outcome["error"] = exc
        outcome["issued"] = desk.issue(residence_id).json

    worker = threading.Thread(target=stop_then_issue)
    worker.start()
    response = stopping.poll(wait=10)
    worker.join()
    assert "error" not in outcome, outcome
    assert response.status_code == 204
    assert outcome["released"] == []
    # The job that came waits for a daemon that is not stopping, even of the same holder.
    assert stopping.poll().status_code == 204
    job_id = outcome["issued"]["job_id"]
    restarted = desk.make_daemon(holder="desk-a", run="run-2")
    assert restarted.next_job()["id"] == job_id
