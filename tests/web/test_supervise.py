"""The supervisor's pages: the alerts inbox, the dashboard and the lists behind its charts,
transfers; in a real browser, and their forms through the test client."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine
from browsing import follow, release, serious_violations, sign_in, untranslated

from anjuka.alerts.models import Alert
from anjuka.audit.models import AuditEvent
from anjuka.core.db import db
from anjuka.core.time import local_today, utcnow
from anjuka.transfers.models import Transfer

OVERRIDE = "家属临时照顾，已核实"


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def _sign_in_client(client, user: dict) -> str:
    """Sign ``user`` in through the form on the test client; the session's CSRF token."""
    token = _csrf(client.get("/sign-in").get_data(as_text=True))
    answer = client.post(
        "/sign-in",
        data={"username": user["username"], "password": user["password"], "csrf_token": token},
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    # Signing in starts a new session, with a token of its own.
    return _csrf(client.get("/account/password").get_data(as_text=True))


def _alert(kind: str, area_code: str) -> Alert:
    db.session.expire_all()
    return db.session.scalars(
        sa.select(Alert).where(Alert.kind == kind, Alert.area.has(code=area_code))
    ).one()


@pytest.fixture
def city(create_area, create_dwelling, create_user, arrive, new_id_number):
    """A city of two districts, a supervisor each, dwellings with residents and alerts.

    In 海曙区 (D1): a dwelling beyond capacity by a supervisor's override
    (an over-occupancy alert) and a late registration ten days ago (a late
    registration alert). In 江北区 (D2): another dwelling beyond capacity.
    """
    create_area(
        "C",
        name="宁波市",
        min_area_per_person_m2=5,
        area_basis="usable",
        max_persons_per_room=2,
        registration_deadline_days=3,
    )
    create_area("D1", "C", name="海曙区")
    create_area("D2", "C", name="江北区")
    create_area("S1", "D1", name="鼓楼派出所")
    create_area("S2", "D1", name="南门派出所")
    create_area("S3", "D2", name="甬江派出所")
    crowded = create_dwelling("S1", usable=10, rooms=1, address="鼓楼街1号101室")
    roomy = create_dwelling("S2", usable=20, rooms=2, address="南门路8号")
    other = create_dwelling("S3", usable=10, rooms=1, address="江北路3号")
    spare = create_dwelling("S3", usable=20, rooms=2, address="江北路5号")
    first = create_user("supervisor", ["area:D1"])
    second = create_user("supervisor", ["area:D2"])
    ten_days_ago = local_today() - timedelta(days=10)
    for name in ("张三", "李四"):
        assert arrive(first["headers"], crowded, name=name).status_code == 201
    assert (
        arrive(first["headers"], crowded, name="王五", override_reason=OVERRIDE).status_code == 201
    )
    late_number = new_id_number()
    late = arrive(
        first["headers"],
        roomy,
        name="赵六",
        number=late_number,
        arrived_on=ten_days_ago.isoformat(),
    )
    assert late.status_code == 201
    for name in ("钱七", "孙八"):
        assert arrive(second["headers"], other, name=name).status_code == 201
    assert (
        arrive(second["headers"], other, name="周九", override_reason=OVERRIDE).status_code == 201
    )
    db.session.commit()
    return {
        "first": first,
        "second": second,
        "dwellings": {"crowded": crowded, "roomy": roomy, "other": other, "spare": spare},
        "late_day": ten_days_ago,
        "late_number": late_number,
    }


# -- the forms through the test client ------------------------------------------------------


def test_the_alert_forms_need_the_csrf_token_and_a_note_to_resolve(client, city):
    alert = _alert("over_occupancy", "S1")
    token = _sign_in_client(client, city["first"])
    refused = client.post(f"/alerts/{alert.id}/acknowledge", data={"note": "去看了"})
    assert refused.status_code == 403
    assert "表单已过期" in refused.get_data(as_text=True)
    refused = client.post(f"/alerts/{alert.id}/resolve", data={"note": "已处理"})
    assert refused.status_code == 403
    assert _alert("over_occupancy", "S1").status == "open"
    # A resolution needs a note, as in the API.
    empty = client.post(f"/alerts/{alert.id}/resolve", data={"note": "  ", "csrf_token": token})
    assert empty.status_code == 422
    assert "请写下备注" in empty.get_data(as_text=True)
    assert _alert("over_occupancy", "S1").status == "open"
    done = client.post(
        f"/alerts/{alert.id}/acknowledge",
        data={"note": "明天上门核实", "csrf_token": token, "next": "/alerts?kind=over_occupancy"},
    )
    assert (done.status_code, done.headers["Location"]) == (302, "/alerts?kind=over_occupancy")
    acknowledged = _alert("over_occupancy", "S1")
    assert (acknowledged.status, acknowledged.note) == ("acknowledged", "明天上门核实")
    # A second acknowledgement is refused in words, as the API's 409.
    again = client.post(f"/alerts/{alert.id}/acknowledge", data={"csrf_token": token})
    assert again.status_code == 409
    assert "这条预警已有人确认" in again.get_data(as_text=True)
    resolved = client.post(
        f"/alerts/{alert.id}/resolve",
        data={"note": "已劝离一人，复查合格", "csrf_token": token},
    )
    assert resolved.status_code == 302
    closed = _alert("over_occupancy", "S1")
    assert (closed.status, closed.note, closed.resolved_by_id) == (
        "resolved",
        "已劝离一人，复查合格",
        city["first"]["id"],
    )
    actions = db.session.scalars(
        sa.select(AuditEvent.action).where(
            AuditEvent.subject_type == "alert", AuditEvent.subject_id == str(alert.id)
        )
    ).all()
    assert sorted(actions) == ["alert.acknowledge", "alert.resolve"]


def test_a_supervisor_reaches_no_other_districts_alerts_or_lists(client, city):
    theirs = _alert("over_occupancy", "S1")
    token = _sign_in_client(client, city["second"])
    for url in (
        f"/alerts/{theirs.id}",
        "/alerts?area=D1",
        "/dashboard?area=D1",
        "/dashboard/dwellings?area=S1",
        f"/dashboard/days/{city['late_day'].isoformat()}?area=S2",
    ):
        answer = client.get(url)
        assert answer.status_code == 404, url
    for action in ("acknowledge", "resolve"):
        answer = client.post(
            f"/alerts/{theirs.id}/{action}", data={"note": "不该看到", "csrf_token": token}
        )
        assert answer.status_code == 404
    assert _alert("over_occupancy", "S1").status == "open"
    inbox = client.get("/alerts").get_data(as_text=True)
    assert "江北路3号" in inbox
    assert "鼓楼街1号101室" not in inbox
    assert "南门路8号" not in inbox
    # The dashboard and its lists show only their own district.
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "江北区" in dashboard
    assert "海曙区" not in dashboard
    dwellings = client.get("/dashboard/dwellings").get_data(as_text=True)
    assert "江北路3号" in dwellings
    assert "鼓楼街1号101室" not in dwellings
    day = client.get(f"/dashboard/days/{city['late_day'].isoformat()}").get_data(as_text=True)
    assert "赵*" not in day


def test_the_pages_are_for_supervisors_and_transfers_for_every_desk(
    client, city, create_user, create_estate
):
    officer = create_user("officer", ["area:D1"])
    _sign_in_client(client, officer)
    for url in ("/alerts", "/dashboard", "/dashboard/dwellings", "/transfers"):
        assert client.get(url).status_code == 403, url
    manager = create_user("manager", [f"estate:{create_estate('S1', '鼓楼小区')}"])
    desk = client.application.test_client()
    _sign_in_client(desk, manager)
    for url in ("/alerts", "/dashboard", f"/dashboard/days/{city['late_day'].isoformat()}"):
        assert desk.get(url).status_code == 403, url
    assert desk.get("/transfers").status_code == 200


def _request_transfer(client, desk: dict, dwelling_id: int, number: str):
    return client.post(
        "/api/v1/transfers",
        json={
            "dwelling_id": dwelling_id,
            "arrived_on": local_today().isoformat(),
            "person": {"document_type": "resident_id", "document_number": number},
        },
        headers=desk["headers"],
    )


def test_transfer_forms_need_csrf_stay_in_scope_and_wait_for_the_deadline(
    client, create_area, create_dwelling, create_user, arrive, new_id_number
):
    create_area("C", name="宁波市", min_area_per_person_m2=5, registration_deadline_days=3)
    create_area("D1", "C", name="海曙区")
    create_area("D2", "C", name="江北区")
    old = create_dwelling("D1", address="鼓楼街2号")
    new = create_dwelling("D2", address="江北路9号")
    old_side = create_user("supervisor", ["area:D1"])
    new_side = create_user("supervisor", ["area:D2"])
    number = new_id_number()
    assert arrive(old_side["headers"], old, number=number, name="吴十").status_code == 201
    asked = _request_transfer(client, new_side, new, number)
    assert asked.status_code == 201, asked.json
    transfer_id = asked.json["id"]
    url = f"/transfers/{transfer_id}/complete"
    db.session.commit()

    token = _sign_in_client(client, new_side)
    page = client.get("/transfers").get_data(as_text=True)
    assert "江北路9号" in page
    assert "吴*" in page
    assert "鼓楼街2号" not in page  # the new side never learns the old dwelling
    assert "完成迁入" not in page  # not yet past the deadline
    early = client.post(url, data={"reason": "原登记点长期无人处理", "csrf_token": token})
    assert early.status_code == 409
    due_on = db.session.get(Transfer, transfer_id).due_on.isoformat()
    assert f"原服务台可在{due_on}前办理注销" in early.get_data(as_text=True)
    with time_machine.travel(utcnow() + timedelta(days=8), tick=True):
        late_client = client.application.test_client()
        token = _sign_in_client(late_client, new_side)
        assert "完成迁入" in late_client.get("/transfers").get_data(as_text=True)
        assert late_client.post(url, data={"reason": "原登记点长期无人处理"}).status_code == 403
        short = late_client.post(url, data={"reason": "无", "csrf_token": token})
        assert short.status_code == 422
        # The old side's supervisor sees it going out, and may not complete it.
        old_client = client.application.test_client()
        old_token = _sign_in_client(old_client, old_side)
        outgoing = old_client.get("/transfers").get_data(as_text=True)
        assert "鼓楼街2号" in outgoing
        assert "江北路9号" not in outgoing
        assert (
            old_client.post(
                url, data={"reason": "原登记点长期无人处理", "csrf_token": old_token}
            ).status_code
            == 404
        )
        db.session.expire_all()
        assert db.session.get(Transfer, transfer_id).status == "requested"
        done = late_client.post(url, data={"reason": "原登记点长期无人处理", "csrf_token": token})
        assert done.status_code == 302
        db.session.expire_all()
        transfer = db.session.get(Transfer, transfer_id)
        assert (transfer.status, transfer.completion, transfer.reason) == (
            "completed",
            "supervisor",
            "原登记点长期无人处理",
        )
        release()


def test_the_requesting_desk_withdraws_its_transfer_and_only_it(
    client, create_area, create_dwelling, create_estate, create_user, arrive, new_id_number
):
    create_area("C", name="宁波市", min_area_per_person_m2=5, registration_deadline_days=3)
    create_area("D1", "C", name="海曙区")
    create_area("D2", "C", name="江北区")
    old = create_dwelling("D1", address="鼓楼街2号")
    estate = create_estate("D2", "江北小区")
    new = create_dwelling("D2", address="江北路9号", estate_id=estate)
    old_side = create_user("supervisor", ["area:D1"])
    desk = create_user("manager", [f"estate:{estate}"])
    number = new_id_number()
    assert arrive(old_side["headers"], old, number=number, name="吴十").status_code == 201
    transfer_id = _request_transfer(client, desk, new, number).json["id"]
    db.session.commit()
    url = f"/transfers/{transfer_id}/cancel"

    old_client = client.application.test_client()
    old_token = _sign_in_client(old_client, old_side)
    assert old_client.post(url, data={"csrf_token": old_token}).status_code == 404
    token = _sign_in_client(client, desk)
    page = client.get("/transfers").get_data(as_text=True)
    assert "撤回申请" in page
    assert "完成迁入" not in page  # a desk never completes one
    assert client.post(url).status_code == 403
    assert (
        client.post(f"/transfers/{transfer_id}/complete", data={"csrf_token": token}).status_code
        == 403
    )
    db.session.expire_all()
    assert db.session.get(Transfer, transfer_id).status == "requested"
    done = client.post(url, data={"csrf_token": token})
    assert (done.status_code, done.headers["Location"]) == (302, "/transfers")
    assert "申请已撤回" in client.get("/transfers").get_data(as_text=True)
    again = client.post(url, data={"csrf_token": token})
    assert again.status_code == 409
    assert "该迁移申请已不再等待处理。" in again.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Transfer, transfer_id).status == "cancelled"


# -- in the browser -------------------------------------------------------------------------


def test_a_supervisor_acknowledges_an_alert_and_resolves_one_with_a_note(city, new_page, shot):
    crowded, late = _alert("over_occupancy", "S1").id, _alert("late_registration", "S2").id
    release()
    page = new_page()
    sign_in(page, city["first"])
    assert page.url.endswith("/alerts")  # a supervisor's home
    rows = page.locator("table.alerts tbody tr")
    assert rows.count() == 2
    assert "江北路3号" not in page.inner_text("main")  # the other district's
    shot(page, "inbox")
    follow(page, f"#alert-{crowded} form button")
    assert page.locator("[role=status]").first.inner_text() == "预警已确认。"
    assert page.locator(f"#alert-{crowded} .badge.st-acknowledged").inner_text() == "已确认"
    follow(page, f"#alert-{late} a.button")
    assert f"/alerts/{late}" in page.url
    page.click("#resolve button[type=submit]")  # no note: the browser asks for one
    assert page.url.split("#")[0].endswith(f"/alerts/{late}?back=/alerts")
    page.fill("#resolve-note", "已核实：到达后第四天登记，已提醒物业按时登记")
    shot(page, "resolving")
    follow(page, "#resolve button[type=submit]")
    assert page.locator("[role=status]").first.inner_text() == "预警已处理完毕。"
    assert "已提醒物业按时登记" in page.inner_text("dl.facts")
    shot(page, "resolved")
    follow(page, "text=← 返回预警列表")
    assert page.locator("table.alerts tbody tr").count() == 1  # the resolved one left the inbox
    page.select_option("#f-status", "resolved")
    follow(page, "form.filters button[type=submit]")
    assert page.locator("table.alerts tbody tr").count() == 1
    assert page.locator(f"#alert-{late}").count() == 1
    db.session.expire_all()
    assert (db.session.get(Alert, crowded).status, db.session.get(Alert, late).status) == (
        "acknowledged",
        "resolved",
    )
    release()


def test_a_supervisor_follows_each_chart_to_the_list_behind_it(city, new_page, shot):
    release()
    page = new_page()
    sign_in(page, city["first"])
    page.goto("/dashboard")
    shot(page, "dashboard")
    # An area's bar: that area's dwellings.
    follow(page, "svg.capacity a[href='/dashboard/dwellings?area=S1']")
    assert page.url.endswith("/dashboard/dwellings?area=S1")
    listed = page.inner_text("table.dwellings")
    assert "鼓楼街1号101室" in listed
    assert "3 / 2 人" in listed
    assert "南门路8号" not in listed
    shot(page, "dwellings")
    # The over-capacity bar of the area: only the dwellings over capacity.
    page.go_back()
    follow(page, "svg.over a[href='/dashboard/dwellings?area=S2&over=1']")
    assert "这里没有超员的房屋" in page.inner_text("main")
    page.go_back()
    follow(page, "svg.over a[href='/dashboard/dwellings?area=S1&over=1']")
    assert page.locator("table.dwellings tbody tr").count() == 1
    # A kind of alert: the inbox filtered by that kind.
    page.goto("/dashboard")
    follow(page, "svg.alerts a[href*='kind=late_registration']")
    assert page.locator("#f-kind").input_value() == "late_registration"
    rows = page.locator("table.alerts tbody tr")
    assert rows.count() == 1
    assert "南门路8号" in rows.inner_text()
    # A day's columns: that day's arrivals, names and numbers masked.
    page.goto("/dashboard")
    day = city["late_day"].isoformat()
    follow(page, f"svg.columns a[href='/dashboard/days/{day}?area=D1']")
    assert page.url.endswith(f"/dashboard/days/{day}?area=D1")
    arrivals = page.inner_text("#arrivals")
    assert "赵*" in arrivals
    assert "南门路8号" in arrivals
    assert "赵六" not in page.content()
    shot(page, "day")
    # An area's name in the table opens its own dashboard, one level down.
    page.goto("/dashboard")
    follow(page, "table.figures a:text('鼓楼派出所')")
    assert page.url.endswith("/dashboard?area=S1&days=30")
    assert page.locator(".trail a[aria-current=page]").inner_text() == "鼓楼派出所"


def test_a_supervisor_of_one_district_sees_nothing_of_another_by_url(city, new_page, shot):
    theirs = _alert("over_occupancy", "S1").id
    release()
    page = new_page()
    sign_in(page, city["second"])
    response = page.goto(f"/alerts/{theirs}")
    assert response.status == 404
    assert "您的辖区内没有这条预警。" in page.inner_text("main")
    shot(page, "other-alert")
    assert page.goto("/alerts?area=D1").status == 404
    assert page.goto("/dashboard/dwellings?area=S1&over=1").status == 404
    page.goto("/alerts")
    assert page.locator("table.alerts tbody tr").count() == 1
    assert "江北路3号" in page.inner_text("table.alerts")
    area_choices = page.locator("#f-area option").all_inner_texts()
    assert not any("海曙区" in choice or "鼓楼" in choice for choice in area_choices)


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_every_supervisor_page_is_translated_and_has_no_serious_accessibility_fault(
    client, city, new_page, shot, locale
):
    crowded = _alert("over_occupancy", "S1").id
    late = _alert("late_registration", "S2").id
    moving = _request_transfer(
        client, city["second"], city["dwellings"]["spare"], city["late_number"]
    )
    assert moving.status_code == 201, moving.json
    day = city["late_day"].isoformat()
    release()
    walks = {
        "first": [
            ("inbox", "/alerts"),
            ("inbox-filtered", "/alerts?kind=over_occupancy&status=all&severity=warning&area=S1"),
            ("alert", f"/alerts/{crowded}"),
            ("alert-late", f"/alerts/{late}"),
            ("dashboard", "/dashboard"),
            ("dashboard-area", "/dashboard?area=S1&days=7"),
            ("dwellings", "/dashboard/dwellings?area=D1"),
            ("over-none", "/dashboard/dwellings?area=S2&over=1"),
            ("day", f"/dashboard/days/{day}?area=D1"),
            ("transfers-outgoing", "/transfers"),
        ],
        "second": [("transfers-incoming", "/transfers"), ("empty", "/alerts?kind=bulk_lookup")],
    }
    # Past the old desk's deadline, so the new side's page offers to complete the move.
    with time_machine.travel(utcnow() + timedelta(days=8), tick=True):
        for who, urls in walks.items():
            page = new_page(locale=locale)
            sign_in(page, city[who])
            for name, url in urls:
                response = page.goto(url)
                assert response.status == 200, url
                lang = page.locator("html").get_attribute("lang")
                assert lang == ("zh-CN" if locale == "zh-CN" else "en")
                if locale == "zh-CN":
                    text = page.title() + "\n" + page.inner_text("body")
                    text = text.replace(city[who]["username"], "")
                    assert untranslated(text) == [], (url, untranslated(text))
                assert serious_violations(page) == [], url
                shot(page, f"{who}-{name}")
            if who == "second":
                assert page.goto("/transfers").ok
                assert page.locator("form.complete textarea").count() == 1
        release()


def test_the_area_filter_offers_two_levels_below_the_callers_own(client, city, create_area):
    create_area("Q1", "S1", name="鼓楼社区")
    create_area("G1", "Q1", name="鼓楼一组")
    _sign_in_client(client, city["first"])
    page = client.get("/alerts").get_data(as_text=True)
    offered = re.findall(r'<option value="([A-Z0-9]+)"', page)
    assert offered == ["D1", "S1", "Q1", "S2"]  # in tree order, not G1 three levels down
    deeper = client.get("/alerts?area=G1").get_data(as_text=True)
    assert re.search(r'<option value="G1" selected[ >]', deeper)
