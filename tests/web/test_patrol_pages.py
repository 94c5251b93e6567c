"""The patrol page: checks online and offline on a phone, the queue, the forms' guards."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from browsing import PHONE, release, serious_violations, sign_in, untranslated

from anjuka.alerts.models import Alert
from anjuka.core.db import db
from anjuka.core.time import utcnow
from anjuka.verifications.bundle import build_bundle
from anjuka.verifications.models import Inspection

ADDRESS = "港湾路1号302室"


@pytest.fixture
def beat(client, create_area, create_dwelling, create_user, arrive, card_desk):
    """Area P with a dwelling, a resident with an active card and one whose card was lost."""
    create_area("P")
    create_area("Q")
    supervisor = create_user("supervisor", ["area:P"])
    home = create_dwelling("P", usable=40, rooms=2, address=ADDRESS)
    desk = card_desk(supervisor["headers"], "P")
    staying = arrive(supervisor["headers"], home, name="王小明")
    leaving = arrive(supervisor["headers"], home, name="李四")
    assert (staying.status_code, leaving.status_code) == (201, 201)
    valid = desk.issue(staying.json["id"])
    revoked = desk.issue(leaving.json["id"])
    desk.revoke(revoked.card_no, "lost")
    release()
    return {
        "officer": create_user("officer", ["area:P"]),
        "outsider": create_user("officer", ["area:Q"]),
        "home": home,
        "valid": valid,
        "revoked": revoked,
        "person_id": staying.json["person_id"],
    }


def inspections() -> list[SimpleNamespace]:
    """Every inspection recorded, oldest first, as plain values.

    Read, then released: on SQLite every transaction holds the write lock
    (BEGIN IMMEDIATE), so the test must not keep one open, nor reopen one by
    touching an expired object, while the browser talks to the server.
    """
    db.session.expire_all()
    columns = [c.key for c in Inspection.__table__.columns]
    found = [
        SimpleNamespace(**{name: getattr(i, name) for name in columns})
        for i in db.session.scalars(sa.select(Inspection).order_by(Inspection.id))
    ]
    release()
    return found


def ready(page) -> None:
    """Wait until patrol.js has fetched (or read) its bundle and shown the queue."""
    page.wait_for_selector("#patrol[data-ready=true]")


def check_card_no(page, card_no: str) -> None:
    page.check("input[name=kind][value=card_no]")
    page.fill("#card_no", card_no)
    page.click("button.check")


def check_chip(page, uid: str, record: str) -> None:
    page.check("input[name=kind][value=chip]")
    page.fill("#uid", uid)
    page.fill("#record", record)
    page.click("button.check")


def test_an_officer_checks_cards_online_then_offline_and_the_queue_uploads(beat, new_page, shot):
    page = new_page(viewport=PHONE)
    sign_in(page, beat["officer"])
    assert page.url.endswith("/patrol/")
    ready(page)
    assert page.get_attribute("#bundle-state", "data-state") == "fresh"
    # Installable: Chromium finds nothing missing (manifest, icon, service worker);
    # only that a test's browser context is a private one, where nothing installs.
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    cdp = page.context.new_cdp_session(page)
    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    assert [e["errorId"] for e in errors] == ["in-incognito"]
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["errors"] == []
    assert '"scope":"/patrol/"' in manifest["data"].replace(" ", "")
    cdp.detach()

    # Online: the registry answers, in colour and in words, and records the inspection.
    check_card_no(page, beat["valid"].card_no)
    page.wait_for_url(re.compile(r"/patrol/inspections/\d+$"))
    assert page.get_attribute("#result", "data-result") == "valid"
    assert page.inner_text("#result h2") == "有效"
    assert "王**" in page.inner_text("#result")
    assert ADDRESS in page.inner_text("#result")
    shot(page, "online-valid")
    check_card_no(page, beat["revoked"].card_no)
    page.wait_for_selector("#result[data-result=revoked]")
    assert page.inner_text("#result h2") == "已吊销"
    assert "挂失" in page.inner_text("#result")  # why: reported lost
    shot(page, "online-revoked")
    assert [(i.result, i.offline) for i in inspections()] == [
        ("valid", False),
        ("revoked", False),
    ]
    assert page.locator("ol.recent li").count() == 2

    # The service worker keeps the page: with the network cut, it still opens.
    page.goto("/patrol/")
    ready(page)
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    page.context.set_offline(True)
    page.reload()
    ready(page)
    assert page.get_attribute("#network", "data-online") == "false"
    assert page.get_attribute("#bundle-state", "data-state") == "fresh"

    check_card_no(page, beat["valid"].card_no)
    page.wait_for_selector("#offline-result[data-result=valid]")
    assert page.inner_text("#offline-result h2") == "有效"
    shot(page, "offline-valid")
    check_card_no(page, beat["revoked"].card_no)
    page.wait_for_selector("#offline-result[data-result=revoked]")
    assert page.inner_text("#offline-result h2") == "已吊销"
    shot(page, "offline-revoked")
    # The chip's record, verified in the browser for its UID (Ed25519, WebCrypto).
    card = beat["valid"]
    check_chip(page, card.uid, card.record.hex())
    page.wait_for_selector("#offline-result[data-result=valid]")
    assert card.card_no in page.inner_text("#offline-result")
    altered = bytearray(card.record)
    altered[50] ^= 1
    check_chip(page, card.uid, altered.hex())
    page.wait_for_selector("#offline-result[data-result=forged]")
    shot(page, "offline-forged")
    # A mistyped number is refused, as online, and queues nothing.
    check_card_no(page, card.card_no[:-1] + ("0" if card.card_no[-1] != "0" else "1"))
    page.wait_for_selector("#offline-refusal")
    assert page.get_attribute("#queue-state", "data-waiting") == "4"
    assert len(inspections()) == 2  # nothing reached the registry

    # Back online: the queue uploads, and the registry records each check once.
    page.context.set_offline(False)
    page.wait_for_selector("#queue-state[data-waiting='0']")
    recorded = inspections()[2:]
    assert [(i.input_kind, i.offline, i.offline_result, i.result) for i in recorded] == [
        ("card_no", True, "valid", "valid"),
        ("card_no", True, "revoked", "revoked"),
        ("chip", True, "valid", "valid"),
        ("chip", True, "forged", "forged"),
    ]
    assert all(i.officer_id == beat["officer"]["id"] for i in recorded)
    assert all(i.client_id.startswith("web-") for i in recorded)
    assert "已上传 4 条离线查验记录" in page.inner_text("#queue-state")
    page.wait_for_function("document.querySelectorAll('ol.recent li').length === 6")
    assert page.locator("ol.recent li[data-result=forged]").count() == 1
    shot(page, "uploaded")
    page.reload()
    ready(page)
    assert len(inspections()) == 6  # a second upload sends nothing again

    # Signing out forgets the page kept for offline use.
    assert page.evaluate("caches.has('anjuka-patrol-v1')")
    page.click("header form[action='/sign-out'] button")
    page.wait_for_url(re.compile(r"/sign-in$"))
    assert not page.evaluate("caches.has('anjuka-patrol-v1')")


def test_a_network_that_reaches_nothing_is_answered_from_the_bundle(beat, new_page, shot):
    page = new_page(viewport=PHONE)
    sign_in(page, beat["officer"])
    ready(page)
    # The phone says it is online, but the registry cannot be reached.
    page.route("**/patrol/verify", lambda route: route.abort("internetdisconnected"))
    check_card_no(page, beat["revoked"].card_no)
    page.wait_for_selector("#offline-result[data-result=revoked]")
    assert page.get_attribute("#network", "data-online") == "false"
    assert page.get_attribute("#queue-state", "data-waiting") == "1"
    shot(page, "unreachable")
    assert inspections() == []
    page.unroute("**/patrol/verify")
    page.click("#upload-queue")
    page.wait_for_selector("#queue-state[data-waiting='0']")
    [uploaded] = inspections()
    assert (uploaded.offline, uploaded.result) == (True, "revoked")
    # Reachable again, a refused check shows its reason, and nothing is recorded.
    check_card_no(page, "AJ000000010")
    page.wait_for_selector("#refusal")
    assert "校验码" in page.inner_text("#refusal")
    assert len(inspections()) == 1


def test_an_expired_bundle_is_refused_offline(beat, new_page, shot):
    stale = build_bundle(now=utcnow() - timedelta(hours=25))
    release()
    page = new_page(viewport=PHONE)
    page.context.route(
        "**/api/v1/offline-bundle*", lambda route: route.fulfill(json=stale, status=200)
    )
    sign_in(page, beat["officer"])
    ready(page)
    assert page.get_attribute("#bundle-state", "data-state") == "expired"
    page.context.set_offline(True)
    check_card_no(page, beat["valid"].card_no)
    refusal = page.wait_for_selector("#offline-refusal")
    assert "拒绝查验：离线数据包已于" in refusal.inner_text()
    assert page.locator("#offline-result .verdict").count() == 0
    assert page.get_attribute("#queue-state", "data-waiting") == "0"
    shot(page, "expired-bundle")


def test_a_bundle_whose_signature_fails_is_not_used(beat, new_page):
    forged = build_bundle()
    forged["revoked"] = []  # someone took the lost card off the list
    release()
    page = new_page(viewport=PHONE)
    page.context.route(
        "**/api/v1/offline-bundle*", lambda route: route.fulfill(json=forged, status=200)
    )
    sign_in(page, beat["officer"])
    ready(page)
    assert page.get_attribute("#bundle-state", "data-state") == "none"
    page.context.set_offline(True)
    check_card_no(page, beat["revoked"].card_no)
    page.wait_for_selector("#offline-refusal")
    assert page.locator("#offline-result .verdict").count() == 0


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_patrol_pages_are_translated_and_accessible(beat, new_page, locale, shot):
    page = new_page(locale=locale, viewport=PHONE)
    sign_in(page, beat["officer"])
    ready(page)
    states = []
    check_card_no(page, beat["valid"].card_no)
    page.wait_for_selector("#result")
    states.append(("result", page.inner_text("body")))
    assert serious_violations(page) == []
    page.check("input[name=kind][value=document]")
    page.fill("#document_number", "123")
    page.click("button.check")
    page.wait_for_selector("#refusal")
    states.append(("refusal", page.inner_text("body")))
    assert serious_violations(page) == []
    page.context.set_offline(True)
    check_card_no(page, beat["revoked"].card_no)
    page.wait_for_selector("#offline-result[data-result=revoked]")
    states.append(("offline", page.inner_text("body")))
    assert serious_violations(page) == []
    shot(page, f"offline-{locale}")
    for name, seen in states:
        text = seen.replace(beat["officer"]["username"], "")  # data, not the page's words
        if locale == "zh-CN":
            assert untranslated(text) == [], (name, untranslated(text))
        else:
            data = text.replace(ADDRESS, "").replace("王**", "")
            assert not re.search(r"[\u4e00-\u9fff]", data.replace("中文", "")), (name, data)


# -- the forms through the test client --------------------------------------------------


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def signed_in(client, user: dict) -> str:
    """Sign ``user`` in through the form; the session's CSRF token."""
    token = _csrf(client.get("/sign-in").get_data(as_text=True))
    answer = client.post(
        "/sign-in",
        data={"username": user["username"], "password": user["password"], "csrf_token": token},
    )
    assert answer.status_code == 302
    return _csrf(client.get("/patrol/").get_data(as_text=True))


def test_a_check_without_the_forms_token_is_refused(client, beat):
    token = signed_in(client, beat["officer"])
    refused = client.post("/patrol/verify", data={"kind": "card_no", "card_no": "x"})
    assert refused.status_code == 403
    assert "表单已过期" in refused.get_data(as_text=True)
    assert inspections() == []
    done = client.post(
        "/patrol/verify",
        data={"kind": "card_no", "card_no": beat["valid"].card_no, "csrf_token": token},
    )
    assert done.status_code == 303
    [inspection] = inspections()
    assert done.headers["Location"] == f"/patrol/inspections/{inspection.id}"
    assert (inspection.result, inspection.officer_id) == ("valid", beat["officer"]["id"])
    # Signing in again after a lapsed session comes back to the form, not to a 405.
    again = client.get("/patrol/verify")
    assert (again.status_code, again.headers["Location"]) == (302, "/patrol/")


@pytest.mark.parametrize("role", ["manager", "auditor"])
def test_only_patrol_roles_reach_the_patrol_pages(client, beat, create_user, role):
    user = create_user(role, [f"dwelling:{beat['home']}"] if role == "manager" else [])
    token = _csrf(client.get("/sign-in").get_data(as_text=True))
    client.post(
        "/sign-in",
        data={"username": user["username"], "password": user["password"], "csrf_token": token},
    )
    assert client.get("/patrol/").status_code == 403
    token = _csrf(client.get("/account/password").get_data(as_text=True))
    refused = client.post(
        "/patrol/verify",
        data={"kind": "card_no", "card_no": beat["valid"].card_no, "csrf_token": token},
    )
    assert refused.status_code == 403
    assert inspections() == []


def test_outside_their_area_an_officer_sees_no_details_and_no_dwelling(client, beat):
    token = signed_in(client, beat["outsider"])
    elsewhere = client.post(
        "/patrol/verify",
        data={
            "kind": "card_no",
            "card_no": beat["valid"].card_no,
            "dwelling_id": str(beat["home"]),
            "csrf_token": token,
        },
    )
    assert elsewhere.status_code == 404  # the dwelling is outside the officer's area
    assert "您的权限范围内没有这处房屋。" in elsewhere.get_data(as_text=True)
    assert inspections() == []
    done = client.post(
        "/patrol/verify",
        data={"kind": "card_no", "card_no": beat["valid"].card_no, "csrf_token": token},
    )
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert 'data-result="valid"' in page
    assert "王**" not in page
    assert ADDRESS not in page
    assert "详细信息不予显示" in page
    # Another officer's inspection outside one's area is not found.
    mine = inspections()[-1]
    insider = signed_in(client, beat["officer"])
    assert insider
    assert client.get(f"/patrol/inspections/{mine.id}").status_code == 404


def test_the_head_count_seen_is_recorded_and_alerts(client, beat):
    token = signed_in(client, beat["officer"])
    missing = client.post(
        "/patrol/verify",
        data={
            "kind": "card_no",
            "card_no": beat["valid"].card_no,
            "observed_headcount": "5",
            "csrf_token": token,
        },
    )
    assert missing.status_code == 422
    assert inspections() == []
    done = client.post(
        "/patrol/verify",
        data={
            "kind": "card_no",
            "card_no": beat["valid"].card_no,
            "dwelling_id": str(beat["home"]),
            "observed_headcount": "5",
            "csrf_token": token,
        },
    )
    assert done.status_code == 303
    [inspection] = inspections()
    assert (inspection.observed_headcount, inspection.registered_headcount) == (5, 2)
    assert db.session.scalar(sa.select(Alert.kind).where(Alert.kind == "over_occupancy"))
    release()
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "看到 5 人，登记 2 人" in page


def test_a_check_by_id_number_records_no_number(client, beat, new_id_number):
    from anjuka.persons.models import Person

    person = db.session.get(Person, beat["person_id"])
    release()
    assert person is not None
    token = signed_in(client, beat["officer"])
    unknown = new_id_number()
    done = client.post(
        "/patrol/verify",
        data={"kind": "document", "document_number": unknown, "csrf_token": token},
    )
    assert done.status_code == 303
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert 'data-result="unknown"' in page
    assert unknown not in page
    [inspection] = inspections()
    assert (inspection.input_kind, inspection.result, inspection.reason) == (
        "document",
        "unknown",
        "no_such_person",
    )
    bad = client.post(
        "/patrol/verify",
        data={"kind": "document", "document_number": "123", "csrf_token": token},
    )
    assert bad.status_code == 422
    assert 'value="123"' not in bad.get_data(as_text=True)  # never echoed back


def test_the_app_shell_is_served_for_the_patrol_scope(client):
    worker = client.get("/patrol/sw.js")
    assert worker.status_code == 200
    assert worker.mimetype == "text/javascript"
    assert "anjuka-patrol" in worker.get_data(as_text=True)
    manifest = client.get("/patrol/manifest.webmanifest")
    assert manifest.mimetype == "application/manifest+json"
    assert (manifest.json["scope"], manifest.json["start_url"]) == ("/patrol/", "/patrol/")
    assert manifest.json["display"] == "standalone"
    # The page itself is behind sign-in.
    assert client.get("/patrol/").status_code == 302


def test_id_number_checks_draw_on_the_api_look_up_limit(app, client, beat, new_id_number):
    token = signed_in(client, beat["officer"])
    limited = dataclasses.replace(app.extensions["anjuka_config"], lookup_limit="2 per minute")

    def by_document() -> int:
        return client.post(
            "/patrol/verify",
            data={"kind": "document", "document_number": new_id_number(), "csrf_token": token},
        ).status_code

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(app.extensions, "anjuka_config", limited)
        assert by_document() == 303
        by_card = client.post(
            "/patrol/verify",
            data={"kind": "card_no", "card_no": beat["valid"].card_no, "csrf_token": token},
        )
        assert by_card.status_code == 303  # a card check is no look-up
        api = client.post(
            "/api/v1/verifications",
            json={"document_number": new_id_number()},
            headers=beat["officer"]["headers"],
        )
        assert api.status_code == 201
        refused = client.post(
            "/patrol/verify",
            data={"kind": "document", "document_number": new_id_number(), "csrf_token": token},
        )
        assert refused.status_code == 429
        assert "按证件号码查询次数过多" in refused.get_data(as_text=True)
    assert [i.input_kind for i in inspections()] == ["document", "card_no", "document"]


@pytest.mark.parametrize("role", ["supervisor", "admin"])
def test_supervisors_and_admins_patrol_too(client, beat, create_user, role):
    user = create_user(role, ["area:P"] if role == "supervisor" else [])
    token = signed_in(client, user)
    done = client.post(
        "/patrol/verify",
        data={"kind": "card_no", "card_no": beat["revoked"].card_no, "csrf_token": token},
    )
    assert done.status_code == 303
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert 'data-result="revoked"' in page
    assert "李*" in page  # in their scope: the masked name, as the API shows it
