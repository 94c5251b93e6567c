"""The administrator's pages: areas and their inherited policy, users, readers, keys."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import sqlalchemy as sa
from browsing import follow, release, serious_violations, sign_in, wrong_language

from anjuka.areas.models import Area
from anjuka.audit.models import AuditEvent
from anjuka.auth.models import User
from anjuka.cards.readers import create_reader
from anjuka.core.db import db

ADMIN_PAGES = ("/admin", "/admin/areas/{area}", "/admin/users", "/admin/users/{user}")
ADMIN_PAGES += ("/admin/readers", "/admin/keys")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def signed_in(client, user: dict) -> str:
    """Sign ``user`` in on the test client; the session's CSRF token."""
    token = _csrf(client.get("/sign-in").get_data(as_text=True))
    answer = client.post(
        "/sign-in",
        data={"username": user["username"], "password": user["password"], "csrf_token": token},
    )
    assert answer.status_code == 302
    return _csrf(client.get("/account/password").get_data(as_text=True))


def events(action: str) -> int:
    db.session.expire_all()
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
    )


def policy_row(page, field: str):
    return page.locator(f"tr[data-field='{field}']")


def test_an_admin_changes_a_policy_and_sees_the_inheritance(
    client, create_user, create_area, new_page, shot
):
    create_area("3302", name="宁波市", max_persons_per_room=3)
    create_area("330203", parent_code="3302", name="海曙区")
    admin = create_user("admin")
    page = new_page()
    sign_in(page, admin)
    assert page.url.endswith("/admin")  # the admin's home
    follow(page, "text=宁波市")
    page.fill("#min_area_per_person_m2", "8")
    page.select_option("#family_exception", "no")
    follow(page, "main form button[type=submit]")
    assert page.locator("[role=status]").inner_text() == "区域规则已保存。"
    row = policy_row(page, "min_area_per_person_m2")
    assert row.locator(".value").inner_text() == "8"
    assert row.locator(".source").inner_text() == "本区域设定"
    shot(page, "parent")
    # The child inherits what the parent set, and says from where.
    follow(page, "main a:has-text('海曙区')")
    assert page.url.endswith("/admin/areas/330203")
    row = policy_row(page, "min_area_per_person_m2")
    assert row.locator(".value").inner_text() == "8"
    assert row.locator(".source").inner_text() == "继承自 宁波市 (3302)"
    assert policy_row(page, "family_exception").locator(".value").inner_text() == "否"
    assert policy_row(page, "max_persons_per_room").locator(".value").inner_text() == "3"
    assert policy_row(page, "card_validity_days").locator(".source").inner_text() == "系统默认值"
    assert page.input_value("#min_area_per_person_m2") == ""  # nothing set here
    shot(page, "child-inherits")
    # The child overrides one value; emptying the parent's field inherits the default again.
    page.fill("#max_persons_per_room", "1")
    follow(page, "main form button[type=submit]")
    assert policy_row(page, "max_persons_per_room").locator(".source").inner_text() == "本区域设定"
    page.goto("/admin/areas/3302")
    page.fill("#min_area_per_person_m2", "")
    follow(page, "main form button[type=submit]")
    page.goto("/admin/areas/330203")
    row = policy_row(page, "min_area_per_person_m2")
    assert (row.locator(".value").inner_text(), row.locator(".source").inner_text()) == (
        "5",
        "系统默认值",
    )
    release()
    db.session.expire_all()
    parent = db.session.scalar(sa.select(Area).where(Area.code == "3302"))
    child = db.session.scalar(sa.select(Area).where(Area.code == "330203"))
    assert (parent.min_area_per_person_m2, parent.family_exception) == (None, False)
    assert (child.max_persons_per_room, child.min_area_per_person_m2) == (1, None)


def test_a_disabled_users_open_session_is_sent_to_sign_in_and_a_role_changes(
    client, create_user, create_area, new_page, shot
):
    create_area("A1", name="一区")
    admin = create_user("admin")
    officer = create_user("officer", ["area:A1"])
    theirs = new_page()
    sign_in(theirs, officer)
    theirs.goto("/account/password")
    assert "/sign-in" not in theirs.url
    page = new_page()
    sign_in(page, admin)
    follow(page, "header nav >> text=系统管理")
    follow(page, "nav.sections >> text=用户")
    follow(page, f"main table a:text-is('{officer['username']}')")
    follow(page, "#disable")
    assert page.locator("[role=status]").inner_text() == "账号已停用。"
    assert page.locator("#current-state").inner_text() == "已停用"
    shot(page, "disabled")
    # The officer's open page, at its next request, is sent to sign in.
    theirs.reload()
    assert "/sign-in" in theirs.url
    theirs.fill("#username", officer["username"])
    theirs.fill("#password", officer["password"])
    follow(theirs, "form[action='/sign-in'] button[type=submit]")
    assert theirs.locator("[role=alert]").inner_text() == "该账号已停用，请联系管理员。"
    # Enabled again and made a supervisor of the same area.
    follow(page, "#enable")
    page.select_option("#role", "supervisor")
    page.fill("#scopes", "area:A1")
    follow(page, "form[action$='/role'] button[type=submit]")
    assert page.locator("#current-role").inner_text() == "主管"
    shot(page, "role-changed")
    release()
    db.session.expire_all()
    user = db.session.get(User, officer["id"])
    assert (user.role, user.active, [s.area.code for s in user.scopes]) == (
        "supervisor",
        True,
        ["A1"],
    )


def test_an_admin_creates_a_user_and_sets_a_password(
    client, create_user, create_estate, create_area
):
    create_area("A1")
    estate = create_estate("A1")
    admin = create_user("admin")
    csrf = signed_in(client, admin)
    made = client.post(
        "/admin/users",
        data={
            "csrf_token": csrf,
            "username": "desk7",
            "display_name": "前台七",
            "role": "manager",
            "password": "a long enough password",
            "scopes": f"estate:{estate}",
        },
    )
    user = db.session.scalar(sa.select(User).where(User.username == "desk7"))
    assert made.status_code == 302
    assert made.headers["Location"] == f"/admin/users/{user.id}"
    assert (user.role, user.display_name, [s.estate_id for s in user.scopes]) == (
        "manager",
        "前台七",
        [estate],
    )
    shown = client.get(made.headers["Location"]).get_data(as_text=True)
    assert "账号 desk7 已创建。" in shown
    set_to = client.post(
        f"/admin/users/{user.id}/password",
        data={
            "csrf_token": csrf,
            "password": "another long one",
            "password_again": "another long one",
        },
    )
    assert set_to.status_code == 302
    assert events("user.password_set") == 1


def test_forms_need_the_csrf_token_and_write_nothing_without_it(client, create_user, create_area):
    create_area("A1")
    admin = create_user("admin")
    officer = create_user("officer", ["area:A1"])
    signed_in(client, admin)
    before = events("area.update"), events("user.disable"), events("user.create")
    posts = {
        "/admin/areas/A1": {"name": "X", "max_persons_per_room": "9"},
        f"/admin/users/{officer['id']}/active": {"active": "0"},
        f"/admin/users/{officer['id']}/role": {"role": "supervisor", "scopes": "area:A1"},
        f"/admin/users/{officer['id']}/password": {
            "password": "x" * 12,
            "password_again": "x" * 12,
        },
        "/admin/users": {"username": "nobody", "role": "auditor", "password": "x" * 12},
    }
    for url, body in posts.items():
        refused = client.post(url, data=body)
        assert refused.status_code == 403, url
        assert "表单已过期" in refused.get_data(as_text=True)
        wrong = client.post(url, data={**body, "csrf_token": "not the token"})
        assert wrong.status_code == 403, url
    assert (events("area.update"), events("user.disable"), events("user.create")) == before
    db.session.expire_all()
    area = db.session.scalar(sa.select(Area).where(Area.code == "A1"))
    user = db.session.get(User, officer["id"])
    assert (area.name, area.max_persons_per_room) == ("Area A1", None)
    assert (user.active, user.role) == (True, "officer")
    assert db.session.scalar(sa.select(User).where(User.username == "nobody")) is None


def test_refusals_are_explained_and_leave_nothing_written(client, create_user, create_area):
    create_area("A1", card_validity_days=100)
    admin = create_user("admin")
    officer = create_user("officer", ["area:A1"])
    csrf = signed_in(client, admin)
    before = {a: events(a) for a in ("area.update", "user.update", "user.create", "user.disable")}

    bad_policy = client.post(
        "/admin/areas/A1",
        data={
            "csrf_token": csrf,
            "name": "新名",
            "max_persons_per_room": "0",
            "card_validity_days": "x",
        },
    )
    html = bad_policy.get_data(as_text=True)
    assert bad_policy.status_code == 422
    assert html.count("此处不允许该值。") == 2
    assert 'value="新名"' in html  # what was typed stays in the form
    wrong_scope = client.post(
        f"/admin/users/{officer['id']}/role",
        data={"csrf_token": csrf, "role": "manager", "scopes": "area:A1"},
    )
    assert wrong_scope.status_code == 422
    assert "该权限范围与角色不符。" in wrong_scope.get_data(as_text=True)
    last_admin = client.post(
        f"/admin/users/{admin['id']}/active", data={"csrf_token": csrf, "active": "0"}
    )
    assert last_admin.status_code == 409
    assert "最后一名管理员" in last_admin.get_data(as_text=True)
    weak = client.post(
        "/admin/users",
        data={"csrf_token": csrf, "username": "newbie", "role": "auditor", "password": "short"},
    )
    assert weak.status_code == 422
    assert 'value="newbie"' in weak.get_data(as_text=True)
    taken = client.post(
        "/admin/users",
        data={
            "csrf_token": csrf,
            "username": officer["username"],
            "role": "auditor",
            "password": "a long enough password",
        },
    )
    assert taken.status_code == 409
    differ = client.post(
        f"/admin/users/{officer['id']}/password",
        data={"csrf_token": csrf, "password": "a" * 12, "password_again": "b" * 12},
    )
    assert differ.status_code == 422
    assert "两次输入的密码不一致。" in differ.get_data(as_text=True)

    assert {a: events(a) for a in before} == before
    db.session.expire_all()
    area = db.session.scalar(sa.select(Area).where(Area.code == "A1"))
    assert (area.name, area.max_persons_per_room, area.card_validity_days) == ("Area A1", None, 100)
    user = db.session.get(User, officer["id"])
    assert (user.role, [s.area.code for s in user.scopes]) == ("officer", ["A1"])
    assert db.session.get(User, admin["id"]).active is True
    assert db.session.scalar(sa.select(User).where(User.username == "newbie")) is None
    assert events("user.password_set") == 0


def test_readers_and_keys_show_ids_and_dates_never_key_material(
    app, client, create_user, create_area
):
    create_area("A1", name="一区")
    create_reader("前台读卡器", area_code="A1")
    db.session.commit()
    admin = create_user("admin")
    signed_in(client, admin)
    readers = client.get("/admin/readers").get_data(as_text=True)
    assert "前台读卡器" in readers
    assert "从未" in readers
    keys = client.get("/admin/keys").get_data(as_text=True)
    document = app.extensions["anjuka_keys"].document
    for family in ("encryption", "blind_index", "card_master"):
        ring = document[family]
        assert f">{ring['active']}</code>" in keys
        for material in ring["keys"].values():
            assert material not in keys
    for entry in document["signing"]["keys"].values():
        assert entry["private"] not in keys
        assert entry["public"] not in keys
    assert "使用中" in keys


@pytest.mark.parametrize("url", [*ADMIN_PAGES, "/audit", "/audit/verify", "/audit/access-report"])
def test_a_manager_reaches_no_admin_or_audit_page_by_url(
    client, create_user, create_area, create_estate, url
):
    create_area("A1")
    estate = create_estate("A1")
    manager = create_user("manager", [f"estate:{estate}"])
    csrf = signed_in(client, manager)
    answer = client.get(url.format(area="A1", user=manager["id"]))
    assert answer.status_code in (403, 404)
    assert answer.mimetype == "text/html"
    posted = client.post(url.format(area="A1", user=manager["id"]), data={"csrf_token": csrf})
    assert posted.status_code in (403, 404, 405)


def test_a_policy_with_decimals_is_kept_exactly(client, create_user, create_area):
    create_area("A1")
    admin = create_user("admin")
    csrf = signed_in(client, admin)
    saved = client.post(
        "/admin/areas/A1",
        data={"csrf_token": csrf, "name": "Area A1", "min_area_per_person_m2": "7.5"},
    )
    assert saved.status_code == 302
    db.session.expire_all()
    area = db.session.scalar(sa.select(Area).where(Area.code == "A1"))
    assert area.min_area_per_person_m2 == Decimal("7.5")
    assert events("area.update") == 1


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_admin_pages_are_translated_and_accessible(
    client, create_user, create_area, new_page, shot, locale
):
    create_area("3302", name="宁波市", max_persons_per_room=3)
    create_area("330203", parent_code="3302", name="海曙区")
    create_reader("前台读卡器", area_code="3302")
    db.session.commit()
    admin = create_user("admin")
    page = new_page(locale=locale)
    sign_in(page, admin)
    for url in ADMIN_PAGES:
        page.goto(url.format(area="330203", user=admin["id"]))
        assert page.locator("html").get_attribute("lang") == locale
        assert wrong_language(page) == [], (url, wrong_language(page))
        assert serious_violations(page) == [], url
        shot(page, url.strip("/").replace("/", "-").replace("{", "").replace("}", ""))


def test_the_section_of_the_page_is_marked_current(client, create_user, create_area):
    create_area("A1")
    admin = create_user("admin")
    signed_in(client, admin)
    current = re.compile(r'<a href="([^"]+)" aria-current="page">')
    for url, section in (
        ("/admin", "/admin"),
        ("/admin/areas/A1", "/admin"),
        ("/admin/users", "/admin/users"),
        (f"/admin/users/{admin['id']}", "/admin/users"),
        ("/admin/readers", "/admin/readers"),
        ("/admin/keys", "/admin/keys"),
        ("/audit/verify", "/audit/verify"),
    ):
        html = client.get(url).get_data(as_text=True)
        main = html.split('<main id="main"')[1]
        assert current.findall(main) == [section], url


def test_a_rotation_notes_when_the_new_key_was_made_active(tmp_path):
    import json

    from anjuka.core.keys import KeyRing, new_key_document, rotate, save_key_document

    path = tmp_path / "keys.json"
    document = new_key_document()
    del document["encryption"]["activated"]  # a file from before the record
    del document["signing"]["activated"]
    save_key_document(path, document)
    rotate(path, "encryption")
    ring = KeyRing(path, json.loads(path.read_text()))
    old, new = ring.key_ids("encryption")
    assert (old.key_id, old.active, old.activated_at) == ("e1", False, None)
    assert (new.key_id, new.active) == ("e2", True)
    assert new.activated_at is not None
    (signing,) = ring.key_ids("signing")
    assert signing.activated_at is not None  # a signing key's own creation time
