"""Signing in and out of the pages, languages, CSRF, timeouts: the browser's view of accounts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine
from browsing import follow, serious_violations, sign_in, untranslated

from anjuka.auth.models import ApiToken, User
from anjuka.core.db import db
from anjuka.core.time import utcnow


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def test_a_visitor_is_sent_to_sign_in_in_chinese_unless_the_browser_asks_for_english(client):
    start = client.get("/")
    assert (start.status_code, start.headers["Location"]) == (302, "/sign-in")
    page = client.get("/sign-in")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert '<html lang="zh-CN">' in html
    assert "登录" in html
    text = re.sub(r"<[^>]+>", " ", html)
    assert untranslated(text.split("</head>")[-1]) == [], untranslated(text)
    english = client.get("/sign-in", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in english.get_data(as_text=True)
    assert "Sign in" in english.get_data(as_text=True)
    # A page behind sign-in sends the visitor to sign in, and back afterwards.
    behind = client.get("/account/password")
    assert (behind.status_code, behind.headers["Location"]) == (
        302,
        "/sign-in?next=/account/password",
    )


def test_forms_without_the_csrf_token_are_refused(client, create_user):
    user = create_user("officer")
    refused = client.post(
        "/sign-in", data={"username": user["username"], "password": user["password"]}
    )
    assert refused.status_code == 403
    assert "表单已过期" in refused.get_data(as_text=True)
    token = _csrf(client.get("/sign-in").get_data(as_text=True))
    signed = client.post(
        "/sign-in",
        data={"username": user["username"], "password": user["password"], "csrf_token": token},
    )
    assert signed.status_code == 302
    # Signed in, a change without the token is refused too (the session's token).
    assert client.post("/sign-out").status_code == 403


def test_sign_in_out_and_the_sessions_limits(client, create_user, new_page, shot):
    user = create_user("auditor")
    page = new_page()
    page.goto("/sign-in")
    page.fill("#username", user["username"])
    page.fill("#password", "not the password")
    follow(page, "form[action='/sign-in'] button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "用户名或密码错误。"
    shot(page, "wrong-password")
    sign_in(page, user)
    assert page.url.endswith("/audit")  # the auditor's home
    cookies = page.context.cookies()
    follow(page, "header form[action='/sign-out'] button")
    assert page.url.endswith("/sign-in")
    # The session's token was revoked: the copied cookie is dead as well.
    db.session.expire_all()
    assert db.session.scalars(
        sa.select(ApiToken.revoked_at).where(ApiToken.kind == "session")
    ).one()
    db.session.commit()
    copy = new_page()
    copy.context.add_cookies(cookies)
    copy.goto("/account/password")
    assert "/sign-in" in copy.url


def test_an_idle_session_is_signed_out(client, create_user):
    user = create_user("officer")
    token = _csrf(client.get("/sign-in").get_data(as_text=True))
    client.post(
        "/sign-in",
        data={"username": user["username"], "password": user["password"], "csrf_token": token},
    )
    assert client.get("/account/password").status_code == 200
    with time_machine.travel(utcnow() + timedelta(minutes=31), tick=False):
        assert client.get("/account/password").status_code == 302
    # Forgotten for good: back at the present the session is still gone.
    assert client.get("/account/password").status_code == 302


def test_the_language_is_remembered_for_the_user(client, create_user, new_page):
    user = create_user("officer")
    page = new_page()
    sign_in(page, user)
    page.select_option("#locale-switch", "en")
    follow(page, "form[action='/language'] button")
    assert page.locator("html").get_attribute("lang") == "en"
    db.session.expire_all()
    assert db.session.get(User, user["id"]).locale == "en"
    db.session.commit()
    elsewhere = new_page(locale="zh-CN")  # another browser, asking for Chinese
    sign_in(elsewhere, user)
    assert elsewhere.locator("html").get_attribute("lang") == "en"
    assert "Sign out" in elsewhere.locator("header").inner_text()


def test_changing_ones_own_password(client, create_user, new_page, shot):
    user = create_user("supervisor")
    page = new_page()
    sign_in(page, user)
    page.goto("/account/password")
    page.fill("#current_password", "wrong wrong wrong")
    page.fill("#new_password", "a new long password")
    page.fill("#new_password_again", "a new long password")
    follow(page, "main form button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "当前密码错误。"
    page.fill("#current_password", user["password"])
    page.fill("#new_password", "a new long password")
    page.fill("#new_password_again", "a new long password")
    follow(page, "main form button[type=submit]")
    assert "密码已修改" in page.locator("[role=status]").inner_text()
    shot(page, "changed")
    again = new_page()
    sign_in(again, {**user, "password": "a new long password"})
    assert again.url.endswith("/alerts")  # signed in: at the supervisor's home, the alerts


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_account_pages_have_no_serious_accessibility_faults(
    client, create_user, new_page, locale
):
    user = create_user("officer")
    page = new_page(locale=locale)
    page.goto("/sign-in")
    assert serious_violations(page) == []
    sign_in(page, user)
    page.goto("/account/password")
    assert serious_violations(page) == []
