"""Sign-in, tokens and accounts."""

from __future__ import annotations

from flask import request
from flask_smorest import Blueprint

from anjuka.auth import operations
from anjuka.auth.schemas import (
    MeSchema,
    TokenRequestSchema,
    TokenSchema,
    UserCreateSchema,
    UserSchema,
)
from anjuka.core.errors import AppError
from anjuka.core.security import public, require_identity, requires
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
    token = request.headers["Authorization"].partition(" ")[2].strip()
    operations.revoke_token(token)
    db.session.commit()


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
