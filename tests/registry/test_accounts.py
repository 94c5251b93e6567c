"""Account control: admins disable, enable, re-role, re-scope and reset; users manage their own.

Before, nothing could disable a user, revoke another user's tokens, change a
role or scope or reset a password, and ``User.active`` was never set.
"""

from __future__ import annotations

import sqlalchemy as sa
from registry_helpers import assert_error_shape

from anjuka.audit.models import AuditEvent
from anjuka.auth.models import ApiToken, User
from anjuka.cli import users as users_command
from anjuka.core.db import db
from cardreader.cardno import make_card_no

NEW_PASSWORD = "a brand new passphrase"


def _me(client, headers):
    return client.get("/api/v1/auth/me", headers=headers)


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _sign_in(client, user, password=None):
    return client.post(
        "/api/v1/auth/tokens",
        json={"username": user["username"], "password": password or user["password"]},
    )


def _chain(user_id: int) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.chain == f"user:{user_id}")
            .order_by(AuditEvent.seq)
        )
    )


def _session_client(app, user):
    """A browser signed in with a session cookie; its CSRF header."""
    browser = app.test_client()
    signed_in = browser.post(
        "/api/v1/auth/session", json={"username": user["username"], "password": user["password"]}
    )
    assert signed_in.status_code == 201, signed_in.json
    return browser, {"X-CSRF-Token": signed_in.json["csrf_token"]}


def test_a_disabled_users_tokens_and_sessions_answer_401_on_the_next_request(
    app, client, create_user
):
    admin = create_user("admin")
    officer = create_user("officer", [])
    second = _sign_in(client, officer).json["token"]
    browser, _ = _session_client(app, officer)
    assert _me(client, officer["headers"]).status_code == 200
    assert browser.get("/api/v1/auth/me").status_code == 200

    disabled = client.post(f"/api/v1/users/{officer['id']}/disable", headers=admin["headers"])
    assert disabled.status_code == 200, disabled.json
    assert disabled.json["active"] is False
    assert db.session.get(User, officer["id"]).active is False

    for headers in (officer["headers"], _bearer(second)):
        assert_error_shape(_me(client, headers), 401, "unauthorized")
    assert_error_shape(browser.get("/api/v1/auth/me"), 401, "unauthorized")
    assert_error_shape(_sign_in(client, officer), 401, "account_disabled")
    event = _chain(officer["id"])[-1]
    assert (event.action, event.actor_id, event.details) == (
        "user.disable",
        admin["id"],
        {"tokens_revoked": 3},
    )

    enabled = client.post(f"/api/v1/users/{officer['id']}/enable", headers=admin["headers"])
    assert enabled.status_code == 200
    assert enabled.json["active"] is True
    assert _chain(officer["id"])[-1].action == "user.enable"
    # The old tokens stay dead; a new sign-in works.
    assert_error_shape(_me(client, officer["headers"]), 401)
    again = _sign_in(client, officer)
    assert again.status_code == 201
    assert _me(client, _bearer(again.json["token"])).status_code == 200


def test_the_last_active_admin_cannot_be_disabled_or_demoted(client, create_user):
    admin = create_user("admin")
    for path, body in (
        (f"/api/v1/users/{admin['id']}/disable", None),
        (f"/api/v1/users/{admin['id']}", {"role": "auditor"}),
    ):
        method = "PATCH" if body else "POST"
        refused = client.open(path, method=method, json=body, headers=admin["headers"])
        assert_error_shape(refused, 409, "last_admin")
    assert db.session.get(User, admin["id"]).active is True
    other = create_user("admin")
    assert (
        client.post(f"/api/v1/users/{admin['id']}/disable", headers=other["headers"]).status_code
        == 200
    )
    assert_error_shape(
        client.post(f"/api/v1/users/{other['id']}/disable", headers=other["headers"]),
        409,
        "last_admin",
    )


def test_role_and_scope_changes_are_checked_audited_and_apply_at_once(client, world):
    admin = world.headers("admin")
    officer = world.users["officer"]
    path = f"/api/v1/users/{officer['id']}"
    assert (
        client.get(f"/api/v1/dwellings/{world.da}", headers=officer["headers"]).status_code == 200
    )

    for body, code in (
        ({"scopes": [f"estate:{world.eb}"]}, "invalid_scope"),
        ({"role": "manager"}, "invalid_scope"),  # an area scope does not suit a manager
        ({"role": "auditor"}, "invalid_scope"),
        ({"scopes": ["area:nowhere"]}, "unknown_area"),
    ):
        assert_error_shape(client.patch(path, json=body, headers=admin), 422, code)
    assert_error_shape(client.patch("/api/v1/users/999999", json={}, headers=admin), 404)

    moved = client.patch(path, json={"scopes": ["area:RB"]}, headers=admin)
    assert moved.status_code == 200, moved.json
    assert moved.json["scopes"] == ["area:RB"]
    # The officer's very next request sees the new scope.
    assert (
        client.get(f"/api/v1/dwellings/{world.da}", headers=officer["headers"]).status_code == 404
    )
    assert (
        client.get(f"/api/v1/dwellings/{world.db}", headers=officer["headers"]).status_code == 200
    )

    made_manager = client.patch(
        path, json={"role": "manager", "scopes": [f"estate:{world.ea}"]}, headers=admin
    )
    assert made_manager.status_code == 200, made_manager.json
    assert made_manager.json["role"] == "manager"
    assert_error_shape(
        client.post(
            "/api/v1/verifications", json={"card_no": make_card_no(19)}, headers=officer["headers"]
        ),
        403,
    )
    events = [e for e in _chain(officer["id"]) if e.action == "user.update"]
    assert [e.details["after"] for e in events] == [
        {"role": "officer", "scopes": ["area:RB"]},
        {"role": "manager", "scopes": [f"estate:{world.ea}"]},
    ]
    assert events[0].details["before"] == {"role": "officer", "scopes": ["area:RA"]}


def test_an_admin_sets_a_new_password_and_every_token_dies(client, create_user):
    admin = create_user("admin")
    manager = create_user("manager", [])
    set_ = client.post(
        f"/api/v1/users/{manager['id']}/password",
        json={"password": NEW_PASSWORD},
        headers=admin["headers"],
    )
    assert set_.status_code == 200
    assert set_.json == {"tokens_revoked": 1}
    assert_error_shape(_me(client, manager["headers"]), 401)
    assert_error_shape(_sign_in(client, manager), 401, "invalid_credentials")
    assert _sign_in(client, manager, NEW_PASSWORD).status_code == 201
    assert_error_shape(
        client.post(
            f"/api/v1/users/{manager['id']}/password",
            json={"password": "short"},
            headers=admin["headers"],
        ),
        422,
    )
    actions = [e.action for e in _chain(manager["id"])]
    assert "user.password_set" in actions
    for event in _chain(manager["id"]):
        assert NEW_PASSWORD not in str(event.details)

    revoked = client.post(f"/api/v1/users/{manager['id']}/tokens/revoke", headers=admin["headers"])
    assert revoked.json == {"tokens_revoked": 1}
    assert _chain(manager["id"])[-1].action == "user.tokens_revoke"


def test_a_user_changes_their_own_password_with_the_current_one(client, create_user):
    user = create_user("auditor")
    other = _sign_in(client, user).json["token"]
    wrong = client.post(
        "/api/v1/auth/password",
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
        headers=user["headers"],
    )
    assert_error_shape(wrong, 403, "wrong_password")
    assert _chain(user["id"])[-1].action == "user.password_change_failed"
    changed = client.post(
        "/api/v1/auth/password",
        json={"current_password": user["password"], "new_password": NEW_PASSWORD},
        headers=user["headers"],
    )
    assert changed.status_code == 200
    assert changed.json == {"tokens_revoked": 1}
    # This token goes on; the other one is gone; the new password is the one.
    assert _me(client, user["headers"]).status_code == 200
    assert_error_shape(_me(client, _bearer(other)), 401)
    assert _sign_in(client, user, NEW_PASSWORD).status_code == 201
    assert_error_shape(_sign_in(client, user), 401)
    changes = [e for e in _chain(user["id"]) if e.action == "user.password_change"]
    assert [e.details for e in changes] == [{"tokens_revoked": 1}]


def test_guessing_the_current_password_with_a_stolen_token_is_throttled(client, create_user):
    user = create_user("officer", [])
    for n in range(5):
        guess = client.post(
            "/api/v1/auth/password",
            json={"current_password": f"guess {n}", "new_password": NEW_PASSWORD},
            headers=user["headers"],
        )
        assert_error_shape(guess, 403, "wrong_password")
    refused = client.post(
        "/api/v1/auth/password",
        json={"current_password": user["password"], "new_password": NEW_PASSWORD},
        headers=user["headers"],
    )
    body = assert_error_shape(refused, 429, "too_many_attempts")
    assert refused.headers["Retry-After"] == str(body["retry_after"])


def test_users_list_and_revoke_their_own_tokens_and_sessions(app, client, create_user):
    user = create_user("supervisor", [])
    stranger = create_user("officer", [])
    second = _sign_in(client, user).json["token"]
    _session_client(app, user)
    listed = client.get("/api/v1/auth/tokens", headers=user["headers"])
    assert listed.status_code == 200
    tokens = listed.json
    assert sorted(t["kind"] for t in tokens) == ["session", "token", "token"]
    assert [t["current"] for t in tokens].count(True) == 1
    assert {t["origin"] for t in tokens} == {"127.0.0.1"}
    assert set(tokens[0]) == {"id", "kind", "created_at", "expires_at", "origin", "current"}
    assert user["token"] not in listed.get_data(as_text=True)

    stranger_token = db.session.scalar(
        sa.select(ApiToken.id).where(ApiToken.user_id == stranger["id"])
    )
    assert_error_shape(
        client.delete(f"/api/v1/auth/tokens/{stranger_token}", headers=user["headers"]),
        404,
        "token_not_found",
    )
    assert _me(client, stranger["headers"]).status_code == 200
    # The fixture's token, the one these requests carry, is the user's oldest.
    oldest = db.session.scalar(
        sa.select(sa.func.min(ApiToken.id)).where(ApiToken.user_id == user["id"])
    )
    assert [t["id"] for t in tokens if t["current"]] == [oldest]
    others = [t["id"] for t in tokens if not t["current"]]
    for token_id in others:
        assert (
            client.delete(f"/api/v1/auth/tokens/{token_id}", headers=user["headers"]).status_code
            == 204
        )
    assert_error_shape(_me(client, _bearer(second)), 401)
    assert [
        t["current"] for t in client.get("/api/v1/auth/tokens", headers=user["headers"]).json
    ] == [True]
    revokes = [e for e in _chain(user["id"]) if e.action == "auth.token_revoke"]
    assert sorted(e.details["token_id"] for e in revokes) == sorted(others)


def test_the_operators_users_commands(app, client, create_user):
    officer = create_user("officer", [])
    runner = app.test_cli_runner()

    disabled = runner.invoke(users_command, ["disable", officer["username"]])
    assert disabled.exit_code == 0, disabled.output
    assert "disabled" in disabled.output
    assert "1 token" in disabled.output
    assert_error_shape(_me(client, officer["headers"]), 401)
    event = _chain(officer["id"])[-1]
    assert (event.action, event.actor_type, event.origin) == ("user.disable", "system", "cli")

    enabled = runner.invoke(users_command, ["enable", officer["username"]])
    assert enabled.exit_code == 0, enabled.output
    assert _sign_in(client, officer).status_code == 201

    listed = runner.invoke(users_command, ["list"])
    assert officer["username"] in listed.output
    assert "active" in listed.output

    updated = runner.invoke(
        users_command, ["update", officer["username"], "--role", "manager", "--scope", "area:X"]
    )
    assert updated.exit_code != 0
    assert "invalid_scope" in updated.output

    reset = runner.invoke(
        users_command, ["set-password", officer["username"], "--password-stdin"], input=NEW_PASSWORD
    )
    assert reset.exit_code == 0, reset.output
    assert _sign_in(client, officer, NEW_PASSWORD).status_code == 201

    unknown = runner.invoke(users_command, ["disable", "no-such-user"])
    assert unknown.exit_code != 0
    assert "user_not_found" in unknown.output
