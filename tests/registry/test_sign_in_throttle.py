"""Sign-in throttling: per typed name and client address, per address; what it audits.

The attack it answers: five wrong passwords from anywhere used to lock the
account itself for 15 minutes, so anyone could lock out the admin; unknown
names were never locked, which told an attacker which names exist; and
every refused attempt wrote an audit row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from flask import Flask
from registry_helpers import assert_error_shape
from werkzeug.middleware.proxy_fix import ProxyFix

from anjuka import create_app
from anjuka.audit.models import AuditEvent
from anjuka.auth.models import ApiToken
from anjuka.core.db import db
from anjuka.core.security import hash_token

ATTACKER = "198.51.100.7"
OWNER = "203.0.113.9"


def _sign_in(client, username, password, address=ATTACKER, path="/api/v1/auth/tokens"):
    return client.post(
        path,
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def _events(**where) -> list[AuditEvent]:
    query = sa.select(AuditEvent).order_by(AuditEvent.id)
    for name, value in where.items():
        query = query.where(getattr(AuditEvent, name) == value)
    return list(db.session.scalars(query))


def test_a_locked_out_attacker_does_not_lock_out_the_owner(client, create_user):
    user = create_user("admin")
    for attempt in range(5):
        failed = _sign_in(client, user["username"], f"guess {attempt}")
        assert_error_shape(failed, 401, "invalid_credentials")
    # From the attacker's address even the right password is refused now ...
    refused = _sign_in(client, user["username"], user["password"])
    body = assert_error_shape(refused, 429, "sign_in_throttled")
    assert 0 < body["retry_after"] <= 15 * 60 + 1
    assert refused.headers["Retry-After"] == str(body["retry_after"])
    # ... while the owner, elsewhere, signs in as ever, and keeps the tokens they had.
    owner = _sign_in(client, user["username"], user["password"], address=OWNER)
    assert owner.status_code == 201, owner.json
    assert client.get("/api/v1/auth/me", headers=user["headers"]).status_code == 200
    row = db.session.scalar(
        sa.select(ApiToken).where(ApiToken.token_hash == hash_token(owner.json["token"]))
    )
    assert row.origin == OWNER

    failures = _events(action="auth.login_failed", chain=f"user:{user['id']}")
    assert len(failures) == 5
    assert {(e.actor_type, e.origin) for e in failures} == {("anonymous", ATTACKER)}
    (locked,) = _events(action="auth.login_locked")
    assert (locked.chain, locked.subject_id, locked.origin) == (
        f"user:{user['id']}",
        str(user["id"]),
        ATTACKER,
    )
    assert locked.details["failures"] == 5
    assert locked.details["retry_after"] == body["retry_after"]


def test_the_wait_audited_is_the_wait_answered_when_a_second_passes_between(
    client, create_user, monkeypatch
):
    """The lock's audit event and its 429 read the clock once: a slow commit between
    them (a second boundary crossed) cannot make them disagree."""
    from anjuka.core import limits

    class SlowClock:
        """``time`` whose every reading is a second after the last."""

        def __init__(self) -> None:
            self.now = float(int(limits.time.time()))

        def time(self) -> float:
            self.now += 1
            return self.now

    user = create_user("admin")
    for attempt in range(5):
        assert _sign_in(client, user["username"], f"guess {attempt}").status_code == 401
    monkeypatch.setattr(limits, "time", SlowClock())
    refused = _sign_in(client, user["username"], user["password"])
    body = assert_error_shape(refused, 429, "sign_in_throttled")
    (locked,) = _events(action="auth.login_locked")
    assert locked.details["retry_after"] == body["retry_after"]
    assert refused.headers["Retry-After"] == str(body["retry_after"])


def test_unknown_and_known_names_read_and_cost_the_same(app, client, create_user):
    user = create_user("auditor")
    from anjuka.auth import operations

    hashed: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash_, password):  # type: ignore[no-untyped-def]
            hashed.append(password)
            return super().verify(hash_, password)

    statements: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    def attempt(name: str):
        hashed.clear()
        statements.clear()
        sa.event.listen(db.engine, "before_cursor_execute", record)
        try:
            response = _sign_in(client, name, "not the password")
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", record)
        return response, len(hashed), list(statements)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            operations, "_hasher", CountingHasher(time_cost=1, memory_cost=1024, parallelism=1)
        )
        # Warm both audit chains up, so neither attempt is the first on its chain.
        _sign_in(client, user["username"], "warm up")
        _sign_in(client, "nobody-at-all", "warm up")
        known = attempt(user["username"])
        unknown = attempt("nobody-at-all")
    assert known[0].get_data() == unknown[0].get_data()
    assert known[0].status_code == unknown[0].status_code == 401
    assert known[1] == unknown[1] == 1  # one Argon2 verification each
    assert known[2] == unknown[2]  # the same statements, in the same order

    # Both are throttled alike after the same five failures.
    for name in (user["username"], "nobody-at-all"):
        for attempt_no in range(3):
            assert _sign_in(client, name, f"more {attempt_no}").status_code == 401
    known_refused = _sign_in(client, user["username"], "again")
    unknown_refused = _sign_in(client, "nobody-at-all", "again")
    for refused in (known_refused, unknown_refused):
        assert_error_shape(refused, 429, "sign_in_throttled")
    assert {k: v for k, v in known_refused.json.items() if k != "retry_after"} == {
        k: v for k, v in unknown_refused.json.items() if k != "retry_after"
    }
    # The unknown name is audited too, by a keyed hash of what was typed.
    (unknown_lock,) = _events(action="auth.login_locked", chain="system")
    assert unknown_lock.subject_id is None
    assert unknown_lock.actor_name is None
    assert "nobody-at-all" not in str(unknown_lock.details)
    assert unknown_lock.details["username_hash"] == operations.username_digest("nobody-at-all")


def test_a_thousand_attempts_leave_a_bounded_trail(client, create_user):
    user = create_user("manager", [])
    before = len(_events())
    statuses = [_sign_in(client, user["username"], f"guess {n}").status_code for n in range(1000)]
    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}
    added = _events()[before:]
    assert [e.action for e in added] == ["auth.login_failed"] * 5 + ["auth.login_locked"]
    assert added[-1].details["failures"] == 5


def test_one_address_cannot_spray_across_accounts(client, create_user):
    victims = [create_user("officer", []) for _ in range(3)]
    names = [f"guess-{n}" for n in range(27)] + [v["username"] for v in victims]
    for name in names:
        assert _sign_in(client, name, "Spring2026!").status_code == 401
    # Thirty failures from one address: it may not try a 31st name, not even rightly ...
    refused = _sign_in(client, victims[0]["username"], victims[0]["password"])
    assert_error_shape(refused, 429, "sign_in_throttled")
    assert_error_shape(_sign_in(client, "yet-another", "x"), 429, "sign_in_throttled")
    # ... while every account works from elsewhere.
    for victim in victims:
        assert _sign_in(client, victim["username"], victim["password"], OWNER).status_code == 201
    (throttled,) = _events(action="auth.address_throttled")
    assert (throttled.chain, throttled.origin, throttled.details["failures"]) == (
        "system",
        ATTACKER,
        30,
    )


def test_tokens_and_sessions_draw_on_one_allowance(client, create_user):
    user = create_user("auditor")
    for n in range(3):
        assert _sign_in(client, user["username"], f"t{n}").status_code == 401
    for n in range(2):
        failed = _sign_in(client, user["username"], f"s{n}", path="/api/v1/auth/session")
        assert failed.status_code == 401
    for path in ("/api/v1/auth/tokens", "/api/v1/auth/session"):
        assert_error_shape(_sign_in(client, user["username"], user["password"], path=path), 429)


def test_a_forged_forwarded_address_is_ignored_without_trusted_proxies(client, create_user):
    user = create_user("auditor")
    for n in range(5):
        forged = client.post(
            "/api/v1/auth/tokens",
            json={"username": user["username"], "password": f"guess {n}"},
            headers={"X-Forwarded-For": f"192.0.2.{n}"},
            environ_base={"REMOTE_ADDR": ATTACKER},
        )
        assert forged.status_code == 401
    # A new forwarded address every time did not buy new attempts.
    assert_error_shape(_sign_in(client, user["username"], user["password"]), 429)
    assert {e.origin for e in _events(action="auth.login_failed")} == {ATTACKER}


@pytest.fixture
def proxied_app(app: Flask) -> Iterator[Flask]:
    """The same registry served behind one trusted proxy (``ANJUKA_TRUSTED_PROXIES=1``)."""
    config = dataclasses.replace(app.extensions["anjuka_config"], trusted_proxies=1)
    proxied = create_app(config)
    yield proxied
    with proxied.app_context():
        db.session.remove()
        db.engine.dispose()


def test_behind_a_trusted_proxy_the_client_address_is_the_forwarded_one(proxied_app, create_user):
    assert isinstance(proxied_app.wsgi_app, ProxyFix)
    user = create_user("auditor")
    db.session.commit()  # end the test's own transaction: SQLite has one writer at a time
    client = proxied_app.test_client()

    def through_proxy(password: str, forwarded_for: str):
        # The proxy at 127.0.0.1 appends the address it saw to what the client sent.
        return client.post(
            "/api/v1/auth/tokens",
            json={"username": user["username"], "password": password},
            headers={"X-Forwarded-For": forwarded_for, "X-Request-Id": "proxied-0001"},
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        )

    for n in range(5):
        assert through_proxy(f"guess {n}", ATTACKER).status_code == 401
    # A client that puts another address in front of its own gains nothing.
    assert_error_shape(through_proxy(user["password"], f"{OWNER}, {ATTACKER}"), 429)
    signed_in = through_proxy(user["password"], OWNER)
    assert signed_in.status_code == 201, signed_in.json
    with proxied_app.app_context():
        failures = _events(action="auth.login_failed")
        assert {(e.origin, e.request_id) for e in failures} == {(ATTACKER, "proxied-0001")}
        token = db.session.scalar(
            sa.select(ApiToken).where(ApiToken.token_hash == hash_token(signed_in.json["token"]))
        )
        assert token.origin == OWNER
        (login,) = _events(action="auth.login", origin=OWNER)
        assert login.subject_id == str(user["id"])


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("desk-7.a_1234", True),
        ("x" * 64, True),
        ("short", False),
        ("x" * 65, False),
        ("has space inside", False),
        ("semi;colon-0001", False),
        ("ünicode-00001", False),
    ],
)
def test_a_client_request_id_is_kept_only_in_the_strict_shape(client, create_user, sent, kept):
    admin = create_user("admin")
    response = client.post(
        "/api/v1/areas",
        json={"code": "RQ", "name": "Request ids"},
        headers={**admin["headers"], "X-Request-Id": sent},
    )
    assert response.status_code == 201
    echoed = response.headers["X-Request-Id"]
    (event,) = _events(action="area.create")
    assert event.request_id == echoed
    if kept:
        assert echoed == sent
    else:
        assert echoed != sent
        assert len(echoed) == 32
        assert all(c in "0123456789abcdef" for c in echoed)
