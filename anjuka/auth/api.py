"""Sign-in, tokens and accounts.

Sign-in is throttled by the name typed and the client address together
(``ANJUKA_SIGN_IN_LIMIT``, 5 failures in 15 minutes), and by the address
across every name (``ANJUKA_SIGN_IN_ADDRESS_LIMIT``, 30 in 15 minutes):
someone guessing from one address is stopped there, and the account's owner
signing in from anywhere else is not. Only failures count, unknown names
exactly like known ones; a refusal is 429 ``sign_in_throttled`` with
``Retry-After``.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from flask import Response, current_app, request, session
from flask_limiter import RequestLimit
from flask_smorest import Blueprint

from anjuka.auth import operations
from anjuka.auth.models import User
from anjuka.auth.schemas import (
    MeSchema,
    PasswordChangeSchema,
    PasswordSetSchema,
    SessionSchema,
    TokenInfoSchema,
    TokenRequestSchema,
    TokenSchema,
    TokensRevokedSchema,
    UserCreateSchema,
    UserSchema,
    UserUpdateSchema,
)
from anjuka.core.api import ErrorSchema
from anjuka.core.db import db
from anjuka.core.errors import NotFound
from anjuka.core.limits import (
    client_address,
    configured,
    first_refusal,
    limiter,
    retry_after,
    throttle,
    throttled,
)
from anjuka.core.pagination import paginate
from anjuka.core.security import current_token, public, require_identity, requires

blp = Blueprint("auth", __name__, description="Sign-in and accounts")
EVERYONE = ("supervisor", "manager", "officer", "auditor")
SIGN_IN_REFUSED = "Too many failed sign-ins; try again later."
WRONG_CREDENTIALS = "`invalid_credentials` (a wrong username or password) or `account_disabled`"


# -- throttles -------------------------------------------------------------------------


def _typed_username() -> str:
    """The name a sign-in typed: in the API's JSON body, or the sign-in page's form."""
    body = request.get_json(silent=True)
    name = body.get("username") if isinstance(body, dict) else request.form.get("username")
    return name if isinstance(name, str) else ""


def _name_and_address() -> str:
    return f"{operations.username_digest(_typed_username())}@{client_address()}"


def _failed(response: Response) -> bool:
    return response.status_code == 401


def _name_locked(limit: RequestLimit) -> Response:
    seconds = retry_after(limit)
    if first_refusal(limit):
        operations.record_sign_in_locked(
            _typed_username(),
            failures=limit.limit.amount,
            limit=str(limit.limit),
            retry_after=seconds,
        )
    return throttled("sign_in_throttled", SIGN_IN_REFUSED, limit, seconds)


def _address_locked(limit: RequestLimit) -> Response:
    seconds = retry_after(limit)
    if first_refusal(limit):
        operations.record_address_throttled(
            failures=limit.limit.amount, limit=str(limit.limit), retry_after=seconds
        )
    return throttled("sign_in_throttled", SIGN_IN_REFUSED, limit, seconds)


# Shared by both ways of signing in, so a token and a session draw on one allowance.
per_name_and_address = throttle(
    limiter.shared_limit(
        configured("sign_in_limit"),
        scope="sign-in-name",
        key_func=_name_and_address,
        deduct_when=_failed,
        on_breach=_name_locked,
    )
)
per_address = throttle(
    limiter.shared_limit(
        configured("sign_in_address_limit"),
        scope="sign-in-address",
        key_func=client_address,
        deduct_when=_failed,
        on_breach=_address_locked,
    )
)


def _caller_key() -> str:
    return f"user:{require_identity().id}"


def _wrong_password(response: Response) -> bool:
    return response.status_code == 403


def _password_guesses_refused(limit: RequestLimit) -> Response:
    return throttled("too_many_attempts", "Too many wrong passwords; try again later.", limit)


# A stolen token must not become a way to guess the account's password.
password_guesses = throttle(
    limiter.limit(
        configured("sign_in_limit"),
        scope="password-change",
        key_func=_caller_key,
        deduct_when=_wrong_password,
        on_breach=_password_guesses_refused,
    )
)


# -- signing in and out ------------------------------------------------------------------


@blp.route("/auth/tokens", methods=["POST"])
@per_name_and_address
@per_address
@blp.arguments(TokenRequestSchema)
@blp.response(201, TokenSchema)
@blp.alt_response(401, schema=ErrorSchema, description=WRONG_CREDENTIALS)
@public
def create_token(body: dict):
    """Exchange a username and password for a bearer token.

    Repeated failures answer 429 ``sign_in_throttled`` with ``Retry-After``.
    """
    user = operations.authenticate(body["username"], body["password"])
    token, expires_at = operations.issue_token(user, origin=client_address())
    return {"token": token, "expires_at": expires_at}


@blp.route("/auth/tokens/current", methods=["DELETE"])
@blp.response(204)
@requires(*EVERYONE)
def revoke_current_token():
    """Revoke the token this request carries (sign out)."""
    token, _ = current_token()
    if token:
        operations.revoke_token(token)
    session.clear()


@blp.route("/auth/session", methods=["POST"])
@per_name_and_address
@per_address
@blp.arguments(TokenRequestSchema)
@blp.response(201, SessionSchema)
@blp.alt_response(401, schema=ErrorSchema, description=WRONG_CREDENTIALS)
@public
def create_session(body: dict):
    """Sign in a browser: a strict, HTTP-only session cookie instead of a bearer token.

    Changes made with the session must send the returned ``csrf_token`` in
    the ``X-CSRF-Token`` header. Throttled like ``POST /auth/tokens``.
    """
    user = operations.authenticate(body["username"], body["password"])
    lifetime = current_app.config["PERMANENT_SESSION_LIFETIME"]
    token, expires_at = operations.issue_token(
        user, origin=client_address(), lifetime=lifetime, kind="session"
    )
    session.clear()
    session.permanent = True
    session["token"] = token
    session["csrf"] = secrets.token_urlsafe(32)
    return {
        "csrf_token": session["csrf"],
        "expires_at": expires_at,
        "username": user.username,
        "role": user.role,
    }


@blp.route("/auth/me", methods=["GET"])
@blp.response(200, MeSchema)
@requires(*EVERYONE)
def whoami():
    """The caller's identity."""
    identity = require_identity()
    return {"kind": identity.kind, "id": identity.id, "name": identity.name, "role": identity.role}


# -- the caller's own account ------------------------------------------------------------


@blp.route("/auth/tokens", methods=["GET"])
@blp.response(200, TokenInfoSchema(many=True))
@requires(*EVERYONE)
def list_own_tokens():
    """The caller's live tokens and browser sessions; ``current`` marks this request's."""
    identity = require_identity()
    current = identity.extra.get("token_id")
    return [
        {
            "id": t.id,
            "kind": t.kind,
            "created_at": t.created_at,
            "expires_at": t.expires_at,
            "origin": t.origin,
            "current": t.id == current,
        }
        for t in operations.own_tokens(identity)
    ]


@blp.route("/auth/tokens/<int:token_id>", methods=["DELETE"])
@blp.response(204)
@requires(*EVERYONE)
def revoke_own_token(token_id: int):
    """Revoke one of the caller's tokens or sessions (audited); another's is 404."""
    identity = require_identity()
    operations.revoke_own_token(identity, token_id)
    if token_id == identity.extra.get("token_id"):
        session.clear()


@blp.route("/auth/password", methods=["POST"])
@password_guesses
@blp.arguments(PasswordChangeSchema)
@blp.response(200, TokensRevokedSchema)
@requires(*EVERYONE)
def change_own_password(body: dict):
    """Change the caller's password (the current one is required: 403 ``wrong_password``).

    Every other token and session of the caller is revoked; this one goes on.
    """
    revoked = operations.change_own_password(
        require_identity(), body["current_password"], body["new_password"]
    )
    return {"tokens_revoked": revoked}


# -- accounts (admin) ---------------------------------------------------------------------


@blp.route("/users", methods=["POST"])
@blp.arguments(UserCreateSchema)
@blp.response(201, UserSchema)
@requires("admin")
def create_user(body: dict):
    """Create an account (admin)."""
    user = operations.create_user(
        body["username"], body["role"], body["password"], body["scopes"], body.get("display_name")
    )
    return user


@blp.route("/users", methods=["GET"])
@blp.response(200, UserSchema(many=True))
@blp.paginate()
@requires("admin")
def list_users(pagination_parameters):
    """Every account, active or disabled (admin)."""
    return paginate(sa.select(User).order_by(User.id), pagination_parameters)


@blp.route("/users/<int:user_id>", methods=["GET"])
@blp.response(200, UserSchema)
@requires("admin")
def get_user(user_id: int):
    """One account (admin)."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user {user_id}.", code="user_not_found")
    return user


@blp.route("/users/<int:user_id>", methods=["PATCH"])
@blp.arguments(UserUpdateSchema)
@blp.response(200, UserSchema)
@requires("admin")
def update_user(body: dict, user_id: int):
    """Change role, scopes (the whole new list) or display name (admin; audited).

    Scopes must suit the role (422 ``invalid_scope``); the last active admin
    keeps the role (409 ``last_admin``).
    """
    user = operations.get_user_or_404(user_id)
    kwargs = {"display_name": body["display_name"]} if "display_name" in body else {}
    operations.update_user(user, role=body.get("role"), scopes=body.get("scopes"), **kwargs)
    return user


@blp.route("/users/<int:user_id>/disable", methods=["POST"])
@blp.response(200, UserSchema)
@requires("admin")
def disable_user(user_id: int):
    """Disable an account: every token and session answers 401 from now on (audited)."""
    user = operations.get_user_or_404(user_id)
    operations.disable_user(user)
    return user


@blp.route("/users/<int:user_id>/enable", methods=["POST"])
@blp.response(200, UserSchema)
@requires("admin")
def enable_user(user_id: int):
    """Let a disabled account sign in again; its old tokens stay revoked (audited)."""
    user = operations.get_user_or_404(user_id)
    operations.enable_user(user)
    return user


@blp.route("/users/<int:user_id>/password", methods=["POST"])
@blp.arguments(PasswordSetSchema)
@blp.response(200, TokensRevokedSchema)
@requires("admin")
def set_password(body: dict, user_id: int):
    """Set a new password for an account; all its tokens and sessions are revoked (audited)."""
    revoked = operations.set_password(operations.get_user_or_404(user_id), body["password"])
    return {"tokens_revoked": revoked}


@blp.route("/users/<int:user_id>/tokens/revoke", methods=["POST"])
@blp.response(200, TokensRevokedSchema)
@requires("admin")
def revoke_user_tokens(user_id: int):
    """Revoke every token and session of an account, e.g. after a lost phone (audited)."""
    revoked = operations.revoke_user_tokens(operations.get_user_or_404(user_id))
    return {"tokens_revoked": revoked}
