"""The desk's form handlers through the test client: CSRF, scope, refusals that write nothing."""

from __future__ import annotations

import re

import sqlalchemy as sa

from anjuka.audit.models import AuditEvent
from anjuka.cards.models import Card, CardJob
from anjuka.core.db import db
from anjuka.core.time import local_today
from anjuka.persons.models import Person
from anjuka.residences.models import Residence


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def _signed_in(client, user: dict) -> str:
    token = _csrf(client.get("/sign-in").get_data(as_text=True))
    answer = client.post(
        "/sign-in",
        data={"username": user["username"], "password": user["password"], "csrf_token": token},
    )
    assert answer.status_code == 302
    return _csrf(client.get("/desk").get_data(as_text=True))  # a new session, a new token


def _count(model: type) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def _desk(create_area, create_estate, create_dwelling, create_user, **dwelling):
    create_area("D1", min_area_per_person_m2=5, max_persons_per_room=2)
    estate = create_estate("D1", "Sunshine")
    dwelling_id = create_dwelling(
        "D1", estate_id=estate, address="Sunshine Road 1, room 101", **dwelling
    )
    manager = create_user("manager", scopes=[f"estate:{estate}"])
    return estate, dwelling_id, manager


def _arrival(token: str, number: str, name: str = "王小明", **extra: str) -> dict:
    return {
        "csrf_token": token,
        "document_type": "resident_id",
        "document_number": number,
        "name": name,
        "arrived_on": local_today().isoformat(),
        **extra,
    }


def test_an_arrival_needs_the_forms_token_and_a_full_dwelling_writes_nothing(
    client, create_area, create_estate, create_dwelling, create_user, new_id_number
):
    _estate, dwelling_id, manager = _desk(
        create_area, create_estate, create_dwelling, create_user, usable=10, rooms=1
    )
    token = _signed_in(client, manager)
    url = f"/desk/dwellings/{dwelling_id}/arrivals"
    refused = client.post(url, data=_arrival("", new_id_number()))
    assert refused.status_code == 403
    assert _count(Residence) == 0
    assert _count(Person) == 0
    for _ in range(2):
        done = client.post(url, data=_arrival(token, new_id_number()))
        assert done.status_code == 302, done.get_data(as_text=True)
    people, events = _count(Person), _count(AuditEvent)
    full = client.post(url, data=_arrival(token, new_id_number(), phone="13800001234"))
    html = full.get_data(as_text=True)
    assert full.status_code == 409
    assert "已满" in html
    assert "10" in html
    assert "5" in html
    assert (_count(Residence), _count(Person), _count(AuditEvent)) == (2, people, events)


def test_a_wrong_check_character_is_refused_by_the_server_too(
    client, create_area, create_estate, create_dwelling, create_user, new_id_number
):
    _estate, dwelling_id, manager = _desk(create_area, create_estate, create_dwelling, create_user)
    token = _signed_in(client, manager)
    number = new_id_number()
    wrong = number[:17] + ("0" if number[17] != "0" else "1")
    answer = client.post(f"/desk/dwellings/{dwelling_id}/arrivals", data=_arrival(token, wrong))
    assert answer.status_code == 422
    assert "身份证号码无效" in answer.get_data(as_text=True)
    assert _count(Person) == 0


def test_a_known_person_is_recognised_and_the_look_up_is_audited(
    client, create_area, create_estate, create_dwelling, create_user, new_id_number
):
    estate, dwelling_id, manager = _desk(create_area, create_estate, create_dwelling, create_user)
    other = create_dwelling("D1", estate_id=estate, address="Sunshine Road 1, room 102")
    token = _signed_in(client, manager)
    number = new_id_number()
    assert (
        client.post(
            f"/desk/dwellings/{dwelling_id}/arrivals", data=_arrival(token, number, "李四")
        ).status_code
        == 302
    )
    before = _count(AuditEvent)
    known = client.post(
        f"/desk/dwellings/{other}/lookup",
        data={"csrf_token": token, "document_type": "resident_id", "document_number": number},
        headers={"Accept": "application/json"},
    ).json
    assert known["found"] is True
    assert known["current"] is True
    assert known["here"] is False
    assert known["name"] == "李*"
    assert number not in str(known)
    assert _count(AuditEvent) == before + 1
    unknown = client.post(
        f"/desk/dwellings/{other}/lookup",
        data={
            "csrf_token": token,
            "document_type": "resident_id",
            "document_number": new_id_number(),
        },
        headers={"Accept": "application/json"},
    ).json
    assert unknown["found"] is False
    # Registering them at the other dwelling is a move, offered when it is refused.
    refused = client.post(f"/desk/dwellings/{other}/arrivals", data=_arrival(token, number))
    assert refused.status_code == 409
    assert 'name="move" value="1" id="move" checked' in refused.get_data(as_text=True)
    moved = client.post(f"/desk/dwellings/{other}/arrivals", data=_arrival(token, number, move="1"))
    assert moved.status_code == 302
    current = db.session.scalars(sa.select(Residence).where(Residence.departed_on.is_(None))).all()
    assert [r.dwelling_id for r in current] == [other]


def test_someone_outside_the_scope_reads_as_unknown(
    client, create_area, create_estate, create_dwelling, create_user, new_id_number, arrive
):
    _estate, dwelling_id, manager = _desk(create_area, create_estate, create_dwelling, create_user)
    elsewhere = create_estate("D1", "Riverside")
    far = create_dwelling("D1", estate_id=elsewhere)
    number = new_id_number()
    supervisor = create_user("supervisor", scopes=["area:D1"])
    assert arrive(supervisor["headers"], far, number=number).status_code == 201
    token = _signed_in(client, manager)
    known = client.post(
        f"/desk/dwellings/{dwelling_id}/lookup",
        data={"csrf_token": token, "document_type": "resident_id", "document_number": number},
        headers={"Accept": "application/json"},
    ).json
    assert known["found"] is False
    # A move is refused without naming where; a transfer is offered instead.
    answer = client.post(
        f"/desk/dwellings/{dwelling_id}/arrivals", data=_arrival(token, number, move="1")
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 409
    assert 'id="transfer"' in html
    transfer = client.post(
        f"/desk/dwellings/{dwelling_id}/transfers",
        data={
            "csrf_token": token,
            "document_type": "resident_id",
            "document_number": number,
            "arrived_on": local_today().isoformat(),
        },
    )
    assert transfer.status_code == 200
    assert "转移" in transfer.get_data(as_text=True)


def test_another_estates_pages_and_the_admin_pages_are_out_of_reach(
    client, create_area, create_estate, create_dwelling, create_user, arrive
):
    _estate, _dwelling_id, manager = _desk(create_area, create_estate, create_dwelling, create_user)
    elsewhere = create_estate("D1", "Riverside")
    far = create_dwelling("D1", estate_id=elsewhere)
    supervisor = create_user("supervisor", scopes=["area:D1"])
    residence = arrive(supervisor["headers"], far).json["id"]
    token = _signed_in(client, manager)
    assert client.get(f"/desk/dwellings/{far}").status_code == 404
    assert client.get(f"/desk/residences/{residence}").status_code == 404
    before = _count(Residence)
    posted = client.post(
        f"/desk/dwellings/{far}/arrivals", data=_arrival(token, "110101199003071234")
    )
    assert posted.status_code == 404
    assert (
        client.post(
            f"/desk/residences/{residence}/departure", data={"csrf_token": token}
        ).status_code
        == 404
    )
    assert _count(Residence) == before
    assert client.get("/api/v1/readers").status_code == 403


def test_issue_a_card_and_record_the_departure_with_its_return(
    client, create_area, create_estate, create_dwelling, create_user, new_id_number
):
    from anjuka.cards.readers import create_reader

    estate, dwelling_id, manager = _desk(create_area, create_estate, create_dwelling, create_user)
    reader, _token = create_reader("desk-1", estate_id=estate)
    db.session.commit()
    token = _signed_in(client, manager)
    client.post(f"/desk/dwellings/{dwelling_id}/arrivals", data=_arrival(token, new_id_number()))
    residence = db.session.scalar(sa.select(Residence))
    page = client.get(f"/desk/dwellings/{dwelling_id}").get_data(as_text=True)
    assert "签发" in page
    assert (
        client.post(
            f"/desk/residences/{residence.id}/card", data={"reader_id": reader.id}
        ).status_code
        == 403
    )
    issued = client.post(
        f"/desk/residences/{residence.id}/card", data={"csrf_token": token, "reader_id": reader.id}
    )
    assert issued.status_code == 302
    card = db.session.scalar(sa.select(Card))
    assert issued.headers["Location"] == f"/desk/cards/{card.card_no}"
    job = db.session.scalar(sa.select(CardJob))
    status = client.get(f"/desk/jobs/{job.id}").json
    assert (status["status"], status["open"], status["card_status"]) == ("queued", True, "pending")
    # A second card while one is pending is refused in words, and nothing is added.
    again = client.post(
        f"/desk/residences/{residence.id}/card", data={"csrf_token": token, "reader_id": reader.id}
    )
    assert again.status_code == 409
    assert _count(Card) == 1
    # Departure: the pending card is revoked at once, its job cancelled.
    left = client.post(
        f"/desk/residences/{residence.id}/departure",
        data={"csrf_token": token, "departed_on": local_today().isoformat()},
    )
    assert left.status_code == 302
    db.session.expire_all()
    assert db.session.get(Card, card.id).status == "revoked"
    assert db.session.get(CardJob, job.id).status == "cancelled"


def test_a_lost_card_is_revoked_and_a_new_one_issued(
    client, create_area, create_estate, create_dwelling, create_user, new_id_number, card_desk
):
    _estate, dwelling_id, manager = _desk(create_area, create_estate, create_dwelling, create_user)
    desk = card_desk(manager["headers"], "D1")
    token = _signed_in(client, manager)
    client.post(f"/desk/dwellings/{dwelling_id}/arrivals", data=_arrival(token, new_id_number()))
    residence = db.session.scalar(sa.select(Residence.id))
    issued = desk.issue(residence)
    # Without the form's token, or with a reason a desk may not give, nothing changes.
    assert (
        client.post(f"/desk/cards/{issued.card_no}/revoke", data={"reason": "lost"}).status_code
        == 403
    )
    odd = client.post(
        f"/desk/cards/{issued.card_no}/revoke", data={"csrf_token": token, "reason": "departed"}
    )
    assert odd.status_code == 422
    db.session.expire_all()
    assert db.session.scalar(sa.select(Card.status)) == "active"
    lost = client.post(
        f"/desk/cards/{issued.card_no}/revoke", data={"csrf_token": token, "reason": "lost"}
    )
    assert lost.headers["Location"] == f"/desk/residences/{residence}"
    page = client.get(f"/desk/residences/{residence}").get_data(as_text=True)
    assert "已作废 (遗失)" in page
    assert "签发安居e卡" in page
    again = client.post(
        f"/desk/residences/{residence}/card",
        data={"csrf_token": token, "reader_id": desk.reader_id},
    )
    assert again.status_code == 302
    db.session.expire_all()
    statuses = db.session.execute(sa.select(Card.card_no, Card.status).order_by(Card.id)).all()
    assert [s for _, s in statuses] == ["revoked", "pending"]
    assert statuses[1][0] != issued.card_no


def test_a_job_is_followed_only_within_the_scope(
    client, create_area, create_estate, create_dwelling, create_user, new_id_number, card_desk
):
    _estate, dwelling_id, manager = _desk(create_area, create_estate, create_dwelling, create_user)
    desk = card_desk(manager["headers"], "D1")
    token = _signed_in(client, manager)
    client.post(f"/desk/dwellings/{dwelling_id}/arrivals", data=_arrival(token, new_id_number()))
    residence = db.session.scalar(sa.select(Residence.id))
    client.post(
        f"/desk/residences/{residence}/card",
        data={"csrf_token": token, "reader_id": desk.reader_id},
    )
    job = db.session.scalar(sa.select(CardJob.id))
    card_no = db.session.scalar(sa.select(Card.card_no))
    assert client.get(f"/desk/jobs/{job}").json["sentence"].startswith("等待服务台读卡器")
    other = create_user("manager", scopes=[f"estate:{create_estate('D1', 'Riverside')}"])
    outsider = client.application.test_client()
    _signed_in(outsider, other)
    assert outsider.get(f"/desk/jobs/{job}").status_code == 404
    assert outsider.get(f"/desk/cards/{card_no}").status_code == 404
    # An officer has no desk.
    officer = client.application.test_client()
    _signed_in(officer, create_user("officer", scopes=["area:D1"]))
    assert officer.get("/desk").status_code == 403


def test_look_ups_from_the_desk_count_with_the_apis(
    client, create_area, create_estate, create_dwelling, create_user, new_id_number
):
    _estate, dwelling_id, manager = _desk(create_area, create_estate, create_dwelling, create_user)
    token = _signed_in(client, manager)
    url = f"/desk/dwellings/{dwelling_id}/lookup"
    for _ in range(29):
        answer = client.post(
            url,
            data={"csrf_token": token, "document_number": new_id_number()},
            headers={"Accept": "application/json"},
        )
        assert answer.status_code == 200
    api = client.post(
        "/api/v1/persons/lookup",
        json={"document_type": "resident_id", "document_number": new_id_number()},
        headers=manager["headers"],
    )
    assert api.status_code == 404  # the 30th: not found, and counted
    refused = client.post(url, data={"csrf_token": token, "document_number": new_id_number()})
    assert refused.status_code == 429
    assert "按证件号码查询次数过多" in refused.get_data(as_text=True)


def test_a_failed_write_is_explained_and_tried_again(
    client, create_area, create_estate, create_dwelling, create_user, new_id_number
):
    from anjuka.cards import jobs
    from anjuka.cards.readers import create_reader

    estate, dwelling_id, manager = _desk(create_area, create_estate, create_dwelling, create_user)
    reader, _token = create_reader("服务台", estate_id=estate)
    db.session.commit()
    token = _signed_in(client, manager)
    client.post(f"/desk/dwellings/{dwelling_id}/arrivals", data=_arrival(token, new_id_number()))
    residence = db.session.scalar(sa.select(Residence.id))
    client.post(
        f"/desk/residences/{residence}/card", data={"csrf_token": token, "reader_id": reader.id}
    )
    job = db.session.scalar(sa.select(CardJob))
    job.attempt = jobs.MAX_ATTEMPTS
    jobs._fail_attempt(job, "The card left the reader during the write.")
    db.session.commit()
    card_no = db.session.scalar(sa.select(Card.card_no))
    page = client.get(f"/desk/cards/{card_no}").get_data(as_text=True)
    assert "读卡器尝试 5 次仍未完成" in page
    assert "The card left the reader during the write." in page
    assert f'action="/desk/cards/{card_no}/retry"' in page
    retried = client.post(
        f"/desk/cards/{card_no}/retry", data={"csrf_token": token, "reader_id": reader.id}
    )
    assert retried.headers["Location"] == f"/desk/cards/{card_no}"
    db.session.expire_all()
    assert [j.status for j in db.session.scalars(sa.select(CardJob).order_by(CardJob.id))] == [
        "failed",
        "queued",
    ]
    # Asking again while the new job runs is refused in words, adding no job.
    again = client.post(
        f"/desk/cards/{card_no}/retry", data={"csrf_token": token, "reader_id": reader.id}
    )
    assert again.status_code == 409
    assert _count(CardJob) == 2


def test_the_family_exception_is_offered_when_only_the_rooms_are_full(
    client, create_area, create_estate, create_dwelling, create_user, new_id_number
):
    # 30 m² at 5 m² each allows 6; one room of 2 allows 2.
    _estate, dwelling_id, manager = _desk(
        create_area, create_estate, create_dwelling, create_user, usable=30, rooms=1
    )
    token = _signed_in(client, manager)
    url = f"/desk/dwellings/{dwelling_id}/arrivals"
    for _ in range(2):
        assert client.post(url, data=_arrival(token, new_id_number())).status_code == 302
    refused = client.post(url, data=_arrival(token, new_id_number(), name="王小红"))
    html = refused.get_data(as_text=True)
    assert refused.status_code == 409
    assert '<details open id="family">' in html
    first = db.session.scalar(sa.select(Residence.id).order_by(Residence.id))
    child = client.post(
        url,
        data=_arrival(
            token, new_id_number(), name="王小红", family_relation="child", family_of=str(first)
        ),
    )
    assert child.status_code == 302
    assert (
        db.session.scalar(
            sa.select(Residence.family_relation).where(Residence.family_of_id == first)
        )
        == "child"
    )


def test_a_supervisor_may_register_beyond_capacity_with_a_reason_a_manager_may_not(
    client, create_area, create_estate, create_dwelling, create_user, new_id_number
):
    _estate, dwelling_id, manager = _desk(
        create_area, create_estate, create_dwelling, create_user, usable=5, rooms=1
    )
    token = _signed_in(client, manager)
    url = f"/desk/dwellings/{dwelling_id}/arrivals"
    assert client.post(url, data=_arrival(token, new_id_number())).status_code == 302
    assert 'id="override_reason"' not in client.get(f"/desk/dwellings/{dwelling_id}").get_data(
        as_text=True
    )
    tried = client.post(
        url, data=_arrival(token, new_id_number(), override_reason="family emergency tonight")
    )
    assert tried.status_code == 403
    assert _count(Residence) == 1
    supervisor = client.application.test_client()
    token = _signed_in(supervisor, create_user("supervisor", scopes=["area:D1"]))
    assert 'id="override_reason"' in supervisor.get(f"/desk/dwellings/{dwelling_id}").get_data(
        as_text=True
    )
    done = supervisor.post(
        url, data=_arrival(token, new_id_number(), override_reason="family emergency tonight")
    )
    assert done.status_code == 302
    page = supervisor.get(done.headers["Location"]).get_data(as_text=True)
    assert "超员" in page  # 2 of 1: over capacity, in words beside the bar
