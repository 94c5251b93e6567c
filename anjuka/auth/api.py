"""Sign-in, tokens and accounts."""

from __future__ import annotations

import secrets

from flask import current_app, request, session
from flask_smorest import Blueprint

from anjuka.auth import operations
from anjuka.auth.schemas import (
    MeSchema,
    SessionSchema,
    TokenRequestSchema,
    TokenSchema,
    UserCreateSchema,
    UserSchema,
)
from anjuka.core.errors import AppError
from anjuka.core.security import current_token, public, require_identity, requires
from anjuka.extensions import db

blp = Blueprint("auth", __name__, description="Sign-in and accounts")


@blp.route("/auth/tokens", methods=["POST"])
@blp.arguments(TokenRequestSchema)
@blp.response(201, TokenSchema)
@public
def create_token(body: dict):
    """Exchange a username and password for a bearer token."""
    try:
        user = operations.authenticate(body["username"], body["password"])
    except AppError:
        db.session.commit()  # keep the failed-attempt count and its audit event
        raise
    token, expires_at = operations.issue_token(user, origin=request.remote_addr)
    db.session.commit()
    return {"token": token, "expires_at": expires_at}


@blp.route("/auth/tokens/current", methods=["DELETE"])
@blp.response(204)
@requires("supervisor", "manager", "officer", "auditor")
def revoke_current_token():
    """Revoke the token this request carries (sign out)."""
    token, _ = current_token()
    if token:
        operations.revoke_token(token)
    session.clear()
    db.session.commit()


@blp.route("/auth/session", methods=["POST"])
@blp.arguments(TokenRequestSchema)
@blp.response(201, SessionSchema)
@public
def create_session(body: dict):
    """Sign in a browser: a strict, HTTP-only session cookie instead of a bearer token.

    Changes made with the session must send the returned ``csrf_token`` in
    the ``X-CSRF-Token`` header.
    """
    try:
        user = operations.authenticate(body["username"], body["password"])
    except AppError:
        db.session.commit()  # keep the failed-attempt count and its audit event
        raise
    lifetime = current_app.config["PERMANENT_SESSION_LIFETIME"]
    token, expires_at = operations.issue_token(user, origin=request.remote_addr, lifetime=lifetime)
    db.session.commit()
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
@requires("supervisor", "manager", "officer", "auditor")
def whoami():
    """The caller's identity."""
    identity = require_identity()
    return {"kind": identity.kind, "id": identity.id, "name": identity.name, "role": identity.role}


@blp.route("/users", methods=["POST"])
@blp.arguments(UserCreateSchema)
@blp.response(201, UserSchema)
@requires("admin")
def create_user(body: dict):
    """Create an account (admin)."""
    user = operations.create_user(
        body["username"], body["role"], body["password"], body["scopes"], body.get("display_name")
    )
    db.session.commit()
    return user
