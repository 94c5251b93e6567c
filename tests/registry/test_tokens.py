"""Sign-in and bearer tokens: expiry, revocation, what is stored (throttles: elsewhere)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import sqlalchemy as sa
from registry_helpers import assert_error_shape

from anjuka.audit.models import AuditEvent
from anjuka.auth.models import ApiToken, User
from anjuka.config import Config
from anjuka.core.db import db
from anjuka.core.security import hash_token
from anjuka.core.time import utcnow


def _login(client, username, password):
    return client.post("/api/v1/auth/tokens", json={"username": username, "password": password})


def _me(client, token):
    return client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})


def _actions(user_id: int) -> list[str]:
    return list(
        db.session.scalars(
            sa.select(AuditEvent.action)
            .where(AuditEvent.chain == f"user:{user_id}")
            .order_by(AuditEvent.seq)
        )
    )


def test_a_token_works_until_it_expires(client, create_user):
    user = create_user("auditor")
    token = user["token"]
    me = _me(client, token)
    assert me.status_code == 200
    assert me.json == {
        "kind": "user",
        "id": user["id"],
        "name": user["username"],
        "role": "auditor",
    }

    row = db.session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    assert timedelta(hours=11, minutes=59) < row.expires_at - utcnow() <= timedelta(hours=12)
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert_error_shape(_me(client, token), 401, "unauthorized")


def test_the_token_lifetime_is_configured(app, client, create_user, monkeypatch):
    user = create_user("auditor")
    config = app.extensions["anjuka_config"]
    monkeypatch.setitem(
        app.extensions, "anjuka_config", dataclasses.replace(config, token_lifetime=timedelta(0))
    )
    issued = _login(client, user["username"], user["password"])
    assert issued.status_code == 201
    assert_error_shape(_me(client, issued.json["token"]), 401)

    monkeypatch.setenv("ANJUKA_TOKEN_HOURS", "0.5")
    assert Config.from_env().token_lifetime == timedelta(minutes=30)


def test_signing_out_revokes_only_that_token(client, create_user):
    user = create_user("officer")
    other = _login(client, user["username"], user["password"]).json["token"]
    revoked = client.delete("/api/v1/auth/tokens/current", headers=user["headers"])
    assert revoked.status_code == 204
    assert_error_shape(_me(client, user["token"]), 401)
    assert_error_shape(client.delete("/api/v1/auth/tokens/current", headers=user["headers"]), 401)
    assert _me(client, other).status_code == 200
    assert _actions(user["id"]) == ["user.create", "auth.login", "auth.login", "auth.logout"]


def test_unknown_users_and_wrong_passwords_read_the_same(client, create_user):
    user = create_user("auditor")
    unknown = _login(client, "nobody-here", "whatever password")
    wrong = _login(client, user["username"], "whatever password")
    assert_error_shape(unknown, 401, "invalid_credentials")
    assert_error_shape(wrong, 401, "invalid_credentials")
    assert unknown.json["message"] == wrong.json["message"]
    assert_error_shape(_login(client, "", "x"), 422)
    assert_error_shape(client.post("/api/v1/auth/tokens", json={"username": "x"}), 422)


def test_a_disabled_account_can_neither_sign_in_nor_use_its_tokens(client, create_user):
    user = create_user("officer")
    db.session.get(User, user["id"]).active = False
    db.session.commit()
    assert_error_shape(_me(client, user["token"]), 401)
    assert_error_shape(_login(client, user["username"], user["password"]), 401, "account_disabled")


def test_only_hashes_are_stored(client, create_user):
    user = create_user("auditor")
    account = db.session.get(User, user["id"])
    assert account.password_hash.startswith("$argon2id$")
    assert user["password"] not in account.password_hash
    tokens = db.session.scalars(sa.select(ApiToken)).all()
    assert [t.token_hash for t in tokens] == [hash_token(user["token"])]
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(sa.select(table)):
            assert user["token"] not in str(tuple(row)), table.name
            assert user["password"] not in str(tuple(row)), table.name
