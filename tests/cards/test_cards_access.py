"""Who may touch cards, jobs and readers: roles, scopes, reader tokens."""

from __future__ import annotations

import pytest
from card_helpers import new_uid


@pytest.fixture
def cast(desk, create_user, create_area, create_estate):
    """Users of every role, in and out of the desk's scope, and one card of each status kind."""
    foreign_area = create_area()["code"]
    foreign_estate = create_estate(foreign_area)
    users = {
        "admin": create_user("admin"),
        "manager": desk.manager,
        "supervisor": create_user("supervisor", [f"area:{desk.area_code}"]),
        "officer": create_user("officer", [f"area:{desk.area_code}"]),
        "auditor": create_user("auditor"),
        "foreign_manager": create_user("manager", [f"estate:{foreign_estate}"]),
        "foreign_supervisor": create_user("supervisor", [f"area:{foreign_area}"]),
    }
    return users


def _card_requests(desk):  # type: ignore[no-untyped-def]
    """Each card endpoint as a callable(headers) -> response, on fresh records."""

    def issue(headers):  # type: ignore[no-untyped-def]
        return desk.issue(desk.arrive_here()["id"], headers=headers)

    def get(headers):  # type: ignore[no-untyped-def]
        card_no = desk.issue(desk.arrive_here()["id"]).json["card_no"]
        return desk.client.get(f"/api/v1/cards/{card_no}", headers=headers)

    def revoke(headers):  # type: ignore[no-untyped-def]
        card = desk.active_card()
        return desk.post(f"/cards/{card['card_no']}/revoke", {"reason": "lost"}, headers)

    def return_(headers):  # type: ignore[no-untyped-def]
        card = desk.active_card()
        return desk.post(f"/cards/{card['card_no']}/return", {}, headers)

    def retry(headers):  # type: ignore[no-untyped-def]
        card_no = desk.issue(desk.arrive_here()["id"]).json["card_no"]
        job = desk.daemon.next_job()
        _at_last_attempt(job["id"])
        answer = desk.daemon.report(job["id"], outcome="failed", error="no card was presented")
        assert answer.json["status"] == "failed", answer.json
        return desk.post(f"/cards/{card_no}/retry", {}, headers)

    def residence_cards(headers):  # type: ignore[no-untyped-def]
        residence = desk.arrive_here()
        desk.issue(residence["id"])
        return desk.client.get(f"/api/v1/residences/{residence['id']}/cards", headers=headers)

    def person_cards(headers):  # type: ignore[no-untyped-def]
        residence = desk.arrive_here()
        desk.issue(residence["id"])
        return desk.client.get(f"/api/v1/persons/{residence['person_id']}/cards", headers=headers)

    def job(headers):  # type: ignore[no-untyped-def]
        job_id = desk.issue(desk.arrive_here()["id"]).json["job_id"]
        return desk.client.get(f"/api/v1/jobs/{job_id}", headers=headers)

    return {
        "issue": (issue, 202),
        "get": (get, 200),
        "revoke": (revoke, 200),
        "return": (return_, 202),
        "retry": (retry, 202),
        "residence_cards": (residence_cards, 200),
        "person_cards": (person_cards, 200),
        "job": (job, 200),
    }


def _clear_queue() -> None:
    import sqlalchemy as sa

    from anjuka.cards.models import OPEN_STATUSES, Card, CardJob
    from anjuka.cards.operations import lock_card, revoke_card
    from anjuka.core.db import db
    from anjuka.core.time import utcnow

    for card_id in db.session.scalars(sa.select(Card.id).where(Card.status == "pending")):
        revoke_card(lock_card(card_id), "damaged")
    db.session.execute(
        sa.update(CardJob)
        .where(CardJob.status.in_(OPEN_STATUSES))
        .values(status="cancelled", finished_at=utcnow(), lease_expires_at=None)
    )
    db.session.commit()


def _at_last_attempt(job_id: int) -> None:
    """Make the job's current attempt its last one."""
    from anjuka.cards.jobs import MAX_ATTEMPTS
    from anjuka.cards.models import CardJob
    from anjuka.core.db import db

    row = db.session.get(CardJob, job_id)
    db.session.refresh(row)
    row.attempt = MAX_ATTEMPTS
    db.session.commit()


EXPECTED = {
    "admin": "ok",
    "manager": "ok",
    "supervisor": "ok",
    "officer": 403,
    "auditor": 403,
    "foreign_manager": 404,
    "foreign_supervisor": 404,
}


def test_role_matrix_of_the_card_endpoints(desk, cast):
    requests = _card_requests(desk)
    seen = {}
    for name, (call, ok_status) in requests.items():
        for role, expected in EXPECTED.items():
            response = call(cast[role]["headers"])
            _clear_queue()  # the next call's daemon starts on an empty queue
            want = ok_status if expected == "ok" else expected
            seen[(name, role)] = response.status_code
            assert response.status_code == want, (name, role, response.get_json())
            if want in (403, 404):
                assert response.json["error"] in {
                    "forbidden",
                    "residence_not_found",
                    "card_not_found",
                    "person_not_found",
                    "job_not_found",
                }, (name, role, response.json)
        anonymous = call({})
        _clear_queue()
        assert anonymous.status_code == 401, name
        as_reader = call(desk.daemon.headers)
        _clear_queue()
        assert as_reader.status_code == 403, name
    assert len(seen) == len(requests) * len(EXPECTED)


def test_readers_are_administered_by_admins_only(desk, cast):
    body = {"name": "front-desk-2", "estate_id": desk.estate_id}
    for role in ("manager", "supervisor", "officer", "auditor"):
        headers = cast[role]["headers"]
        assert desk.client.get("/api/v1/readers", headers=headers).status_code == 403
        assert desk.post("/readers", body, headers).status_code == 403
        assert desk.post(f"/readers/{desk.reader_id}/revoke", {}, headers).status_code == 403
    admin = cast["admin"]["headers"]
    created = desk.post("/readers", body, admin)
    assert created.status_code == 201, created.json
    assert created.json["token"].startswith("ajr_")
    assert created.json["estate_id"] == desk.estate_id
    assert desk.post("/readers", body, admin).json["error"] == "reader_exists"
    listed = desk.client.get("/api/v1/readers", headers=admin).json
    assert [r["name"] for r in listed][-1] == "front-desk-2"
    assert all("token" not in r and "token_hash" not in r for r in listed)
    both = desk.post("/readers", {"name": "x", "estate_id": 1, "area_code": "C1"}, admin)
    assert both.status_code == 422


def test_a_reader_authenticates_with_its_token_and_sees_only_itself(desk, make_reader):
    me = desk.client.get("/api/v1/readers/me", headers=desk.daemon.headers)
    assert me.status_code == 200
    assert me.json["id"] == desk.reader_id
    assert desk.client.get("/api/v1/readers/me").status_code == 401
    wrong = {"Authorization": "Bearer ajr_not-a-token"}
    assert desk.client.get("/api/v1/readers/me", headers=wrong).status_code == 401
    # A user's token is no reader's.
    assert desk.client.get("/api/v1/readers/me", headers=desk.headers).status_code == 403
    poll = desk.client.get(f"/api/v1/readers/{desk.reader_id}/jobs/next", headers=desk.headers)
    assert poll.status_code == 403

    job_id = desk.issue(desk.arrive_here()["id"]).json["job_id"]
    other_id, other_token = make_reader()
    other = desk.make_daemon(other_id, other_token)
    # Another reader neither polls this reader's queue nor touches its jobs.
    foreign_poll = other.client.get(
        f"/api/v1/readers/{desk.reader_id}/jobs/next", headers=other.headers
    )
    assert (foreign_poll.status_code, foreign_poll.json["error"]) == (404, "reader_not_found")
    assert other.poll().status_code == 204
    for path, body in (
        ("uid", {"uid": new_uid(), "card_type": "cpu"}),
        ("result", {"outcome": "failed", "error": "x"}),
    ):
        own_path = other.client.post(
            f"/api/v1/readers/{other_id}/jobs/{job_id}/{path}", json=body, headers=other.headers
        )
        assert (own_path.status_code, own_path.json["error"]) == (404, "job_not_found")
        their_path = other.client.post(
            f"/api/v1/readers/{desk.reader_id}/jobs/{job_id}/{path}",
            json=body,
            headers=other.headers,
        )
        assert (their_path.status_code, their_path.json["error"]) == (404, "reader_not_found")
    assert desk.daemon.next_job()["id"] == job_id


def test_a_revoked_reader_is_locked_out_and_its_jobs_cancelled(desk, cast):
    issued = desk.issue(desk.arrive_here()["id"]).json
    job = desk.daemon.next_job()
    revoked = desk.post(f"/readers/{desk.reader_id}/revoke", {}, cast["admin"]["headers"])
    assert revoked.status_code == 200, revoked.json
    assert revoked.json["active"] is False
    assert desk.daemon.poll().status_code == 401
    assert desk.daemon.send_uid(job["id"], new_uid()).status_code == 401
    card = desk.card(issued["card_no"])
    assert card["job"]["status"] == "cancelled"
    assert card["job"]["error"] == "the reader was revoked"
    # The desk is told no more than for a reader that never existed; an admin is told why.
    refused = desk.issue(desk.arrive_here()["id"])
    assert (refused.status_code, refused.json["error"]) == (404, "reader_not_found")
    told = desk.issue(desk.arrive_here()["id"], headers=cast["admin"]["headers"])
    assert (told.status_code, told.json["error"]) == (409, "reader_revoked")
    again = desk.post(f"/readers/{desk.reader_id}/revoke", {}, cast["admin"]["headers"])
    assert again.json["error"] == "reader_revoked"


def test_a_reader_the_desk_cannot_use_reads_as_an_unknown_one(
    desk, cast, create_estate, make_reader
):
    """Another desk's reader, or a revoked one, is refused exactly like a made-up id."""
    other_estate = create_estate(desk.area_code, name="Other estate")
    other_reader, _ = make_reader(estate_id=other_estate, name="desk-B")
    revoked_reader, _ = make_reader(estate_id=desk.estate_id, name="desk-gone")
    revoked = desk.post(f"/readers/{revoked_reader}/revoke", {}, cast["admin"]["headers"])
    assert revoked.status_code == 200, revoked.json
    unknown_id = 999_999

    def unknown_like(reader_id: int) -> dict:
        answer = desk.issue(desk.arrive_here()["id"], reader_id=unknown_id)
        assert answer.status_code == 404, answer.json
        body = dict(answer.json)
        body["message"] = body["message"].replace(str(unknown_id), str(reader_id))
        return body

    for reader_id, name in ((other_reader, "desk-B"), (revoked_reader, "desk-gone")):
        refused = desk.issue(desk.arrive_here()["id"], reader_id=reader_id)
        assert refused.status_code == 404, refused.json
        assert refused.json == unknown_like(reader_id)
        assert name not in refused.get_data(as_text=True)

    # Retry and return, naming the other desk's reader, answer the same.
    active = desk.active_card()
    desk.post(f"/cards/{active['card_no']}/revoke", {"reason": "lost"})
    taken_back = desk.post(f"/cards/{active['card_no']}/return", {"reader_id": other_reader})
    assert taken_back.status_code == 404
    assert taken_back.json == unknown_like(other_reader)

    # An admin may list every reader anyway, so an admin is told why.
    admin = cast["admin"]["headers"]
    residence = desk.arrive_here()
    told = desk.issue(residence["id"], reader_id=other_reader, headers=admin)
    assert (told.status_code, told.json["error"]) == (409, "reader_not_serving")
    assert "desk-B" in told.json["message"]
