"""The auditor's pages: the trail and its filters, verification, a person's access report."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from browsing import follow, release, serious_violations, sign_in, wrong_language
from test_admin import signed_in

from anjuka.audit.models import AuditEvent
from anjuka.core.db import db
from anjuka.core.time import local_today

NAME = "王小明"


@pytest.fixture
def registry(create_area, create_estate, create_dwelling, create_user, arrive, new_id_number):
    """An area with a resident, a supervisor who revealed them and a manager who looked them up."""
    create_area("A1", name="一区")
    estate = create_estate("A1")
    dwelling = create_dwelling("A1", estate_id=estate)
    manager = create_user("manager", [f"estate:{estate}"])
    supervisor = create_user("supervisor", ["area:A1"])
    number = new_id_number()
    arrived = arrive(manager["headers"], dwelling, number=number, name=NAME)
    assert arrived.status_code == 201, arrived.json
    person_id = arrived.json["person_id"]
    return {
        "number": number,
        "person_id": person_id,
        "manager": manager,
        "supervisor": supervisor,
        "other_number": new_id_number(),
    }


def reveal_and_look_up(client, registry: dict) -> None:
    shown = client.get(
        f"/api/v1/persons/{registry['person_id']}?reveal=true",
        headers=registry["supervisor"]["headers"],
    )
    assert shown.status_code == 200
    assert shown.json["name"] == NAME
    found = client.post(
        "/api/v1/persons/lookup",
        json={"document_number": registry["number"]},
        headers=registry["manager"]["headers"],
    )
    assert found.status_code == 200
    # Someone else's number, looked up by the supervisor: not in this person's report.
    other = client.post(
        "/api/v1/persons/lookup",
        json={"document_number": registry["other_number"]},
        headers=registry["supervisor"]["headers"],
    )
    assert other.status_code == 404


def lookups() -> int:
    db.session.expire_all()
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "person.lookup")
    )


def test_an_auditor_filters_the_trail_verifies_it_and_reads_an_access_report(
    client, create_user, registry, new_page, shot
):
    reveal_and_look_up(client, registry)
    auditor = create_user("auditor")
    page = new_page()
    sign_in(page, auditor)
    assert page.url.endswith("/audit")  # the auditor's home
    page.select_option("#action", "person.reveal")
    follow(page, "main form button[type=submit]")
    rows = page.locator("table.events tbody tr")
    assert rows.count() == 1
    assert rows.first.locator(".actor").inner_text() == registry["supervisor"]["username"]
    assert "明文查看身份信息" in rows.first.inner_text()
    # By actor, and by days of the registry's calendar.
    page.select_option("#action", "")
    page.fill("#actor", registry["manager"]["username"])
    page.fill("#since", local_today().isoformat())
    page.fill("#until", local_today().isoformat())
    follow(page, "main form button[type=submit]")
    actions = page.locator("table.events code.action").all_inner_texts()
    assert "person.lookup" in actions
    assert "residence.arrive" in actions
    assert set(page.locator("table.events .actor").all_inner_texts()) == {
        registry["manager"]["username"]
    }
    shot(page, "filtered")
    page.fill("#since", (local_today() + timedelta(days=1)).isoformat())
    page.fill("#until", (local_today() + timedelta(days=1)).isoformat())
    follow(page, "main form button[type=submit]")
    assert page.locator("table.events tbody tr").inner_text() == "没有事件。"

    follow(page, "nav.sections >> text=校验")
    assert page.locator("#verify-result").inner_text().startswith("✔ 审计记录完好")
    shot(page, "verified")

    follow(page, "nav.sections >> text=访问报告")
    page.fill("#document_number", registry["number"])
    follow(page, "main form button[type=submit]")
    assert (
        page.locator("#report-person").inner_text()
        == f"人员: 王** · {registry['number'][:4]}**********{registry['number'][-4:]}"
    )
    reveals = page.locator("#reveals tbody tr")
    assert reveals.count() == 1
    assert reveals.locator(".actor").inner_text() == registry["supervisor"]["username"]
    searchers = page.locator("#lookups .actor").all_inner_texts()
    # The manager's look-up, and the auditor's own, just made; never the other number's.
    assert searchers == [registry["manager"]["username"], auditor["username"]]
    content = page.content()
    assert registry["number"] not in content.replace(
        f'value="{registry["number"]}"', ""
    )  # masked only (the form field keeps what was typed until the page is left)
    assert NAME not in content
    shot(page, "access-report")


def test_the_verification_names_the_first_altered_event(client, create_user, registry):
    auditor = create_user("auditor")
    signed_in(client, auditor)
    assert "审计记录完好" in client.get("/audit/verify").get_data(as_text=True)
    release()
    victim = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "residence.arrive"))
    db.session.execute(
        sa.update(AuditEvent).where(AuditEvent.id == victim.id).values(actor_name="someone")
    )
    db.session.commit()
    broken = client.get("/audit/verify").get_data(as_text=True)
    assert f"审计记录在事件 {victim.id} 处断裂。" in broken
    assert "event content altered" in broken


def test_the_access_report_needs_the_csrf_token_and_a_valid_number(client, create_user, registry):
    auditor = create_user("auditor")
    csrf = signed_in(client, auditor)
    before = lookups()
    refused = client.post("/audit/access-report", data={"document_number": registry["number"]})
    assert refused.status_code == 403
    invalid = client.post(
        "/audit/access-report",
        data={"csrf_token": csrf, "document_type": "resident_id", "document_number": "12345"},
    )
    assert invalid.status_code == 422
    assert "身份证号码无效" in invalid.get_data(as_text=True)
    assert lookups() == before  # neither was looked up, so neither is in the trail
    done = client.post(
        "/audit/access-report",
        data={
            "csrf_token": csrf,
            "document_type": "resident_id",
            "document_number": registry["number"],
        },
    )
    assert done.status_code == 200
    assert lookups() == before + 1
    event = db.session.scalar(sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
    assert (event.action, event.actor_name, event.details["via"]) == (
        "person.lookup",
        auditor["username"],
        "audit.access_report",
    )
    assert registry["number"] not in str(event.details)


def test_access_report_look_ups_share_the_look_up_limit(app, client, create_user, registry):
    auditor = create_user("auditor")
    csrf = signed_in(client, auditor)
    limit = int(app.extensions["anjuka_config"].lookup_limit.split()[0])
    for _ in range(limit):
        ok = client.post(
            "/audit/access-report",
            data={"csrf_token": csrf, "document_number": registry["other_number"]},
        )
        assert ok.status_code == 200
    before = lookups()
    throttled = client.post(
        "/audit/access-report",
        data={"csrf_token": csrf, "document_number": registry["other_number"]},
    )
    assert throttled.status_code == 429
    assert "查询次数过多" in throttled.get_data(as_text=True)
    assert lookups() == before  # refused before the look-up


def test_an_auditor_reaches_no_admin_page_and_no_registry_api(client, create_user):
    auditor = create_user("auditor")
    signed_in(client, auditor)
    for url in ("/admin", "/admin/users", "/admin/keys", "/admin/readers"):
        assert client.get(url).status_code == 403, url
    assert client.get("/audit").status_code == 200


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_audit_pages_are_translated_and_accessible(
    client, create_user, registry, new_page, shot, locale
):
    reveal_and_look_up(client, registry)
    auditor = create_user("auditor")
    page = new_page(locale=locale)
    sign_in(page, auditor)
    for url in ("/audit", "/audit?action=person.lookup", "/audit/verify", "/audit/access-report"):
        page.goto(url)
        assert page.locator("html").get_attribute("lang") == locale
        assert wrong_language(page) == [], (url, wrong_language(page))
        assert serious_violations(page) == [], url
    page.fill("#document_number", registry["number"])
    follow(page, "main form button[type=submit]")
    assert page.locator("#reveals tbody tr").count() == 1
    assert wrong_language(page) == []
    assert serious_violations(page) == []
    shot(page, "report")


def test_the_trail_pages_through_older_events_and_filters_by_chain_and_area(
    client, create_user, create_area
):
    from anjuka.audit import operations as audit

    create_area("B7")
    for n in range(60):
        audit.record(
            "area.update", subject_type="area", subject_id="B7", area_code="B7", details={"n": n}
        )
    db.session.commit()
    auditor = create_user("auditor")
    signed_in(client, auditor)
    first = client.get("/audit?chain=area:B7").get_data(as_text=True)
    shown = [int(n) for n in re.findall(r'\{"n": (\d+)\}', first)]
    assert shown == list(range(59, 9, -1))  # the newest 50
    older = re.search(r'href="(/audit\?[^"]*before=[^"]*)"', first).group(1)
    rest = client.get(older.replace("&amp;", "&")).get_data(as_text=True)
    assert [int(n) for n in re.findall(r'\{"n": (\d+)\}', rest)] == list(range(9, -1, -1))
    assert "before=" not in rest.split("</table>")[1]  # no page after the last
    by_area = client.get("/audit?area_code=B7&action=area.create").get_data(as_text=True)
    assert by_area.count("data-event=") == 1
    elsewhere = client.get("/audit?area_code=Z9").get_data(as_text=True)
    assert elsewhere.count("data-event=") == 0
    bad_day = client.get("/audit?since=yesterday")
    assert bad_day.status_code == 422
    assert "请按“年-月-日”输入日期。" in bad_day.get_data(as_text=True)
