"""Accounts and bearer tokens."""

from __future__ import annotations

import contextlib
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from anjuka.areas.models import Area
from anjuka.audit import operations as audit
from anjuka.auth.models import ROLES, ApiToken, User, UserScope
from anjuka.core.errors import AppError, Conflict, InvalidInput, Unauthorized
from anjuka.core.security import Identity, hash_token
from anjuka.core.time import utcnow
from anjuka.dwellings.models import Dwelling, Estate
from anjuka.extensions import db

USER_TOKEN_PREFIX = "aju_"  # noqa: S105 (a prefix, not a secret)
_hasher = PasswordHasher()
# Verified against when the username is unknown, so timing does not tell.
_DUMMY_HASH = _hasher.hash("anjuka-no-such-user")

SCOPE_KINDS = {"area": Area, "estate": Estate, "dwelling": Dwelling}
#: What each role's scope is made of (admins and auditors are not scoped).
SCOPE_KINDS_BY_ROLE: dict[str, frozenset[str]] = {
    "admin": frozenset(),
    "auditor": frozenset(),
    "supervisor": frozenset({"area"}),
    "officer": frozenset({"area"}),
    "manager": frozenset({"estate", "dwelling"}),
}


def hash_password(password: str) -> str:
    """Argon2id hash of ``password``."""
    return _hasher.hash(password)


def parse_scope(spec: str) -> UserScope:
    """``area:CODE``, ``estate:ID`` or ``dwelling:ID`` to a scope row."""
    kind, _, ref = spec.partition(":")
    if kind not in SCOPE_KINDS or not ref:
        raise InvalidInput(f"Scope {spec!r} is not area:CODE, estate:ID or dwelling:ID.")
    if kind == "area":
        area = db.session.scalar(sa.select(Area).where(Area.code == ref))
        if area is None:
            raise InvalidInput(f"No area {ref!r}.", code="unknown_area")
        return UserScope(area_id=area.id)
    if not ref.isdigit() or db.session.get(SCOPE_KINDS[kind], int(ref)) is None:
        raise InvalidInput(f"No {kind} {ref!r}.", code=f"unknown_{kind}")
    return UserScope(**{f"{kind}_id": int(ref)})


def create_user(
    username: str,
    role: str,
    password: str,
    scopes: list[str] | None = None,
    display_name: str | None = None,
) -> User:
    """Create an account; managers need estate or dwelling scopes, officers areas."""
    if role not in ROLES:
        raise InvalidInput(f"Role must be one of {', '.join(ROLES)}.", code="unknown_role")
    if len(password) < 10:
        raise InvalidInput("Passwords need at least 10 characters.", code="weak_password")
    if db.session.scalar(sa.select(User.id).where(User.username == username)):
        raise Conflict(f"User {username!r} exists.", code="user_exists")
    allowed = SCOPE_KINDS_BY_ROLE[role]
    for spec in scopes or []:
        if spec.partition(":")[0] not in allowed:
            # A scope the role ignores would leave an account that silently sees nothing.
            raise InvalidInput(
                f"A {role} cannot be scoped to {spec!r}"
                + (f"; use {' or '.join(sorted(allowed))} scopes." if allowed else "."),
                code="invalid_scope",
                errors={"scopes": [f"Not a {role} scope: {spec}"]},
            )
    user = User(
        username=username,
        role=role,
        display_name=display_name,
        password_hash=hash_password(password),
        scopes=[parse_scope(s) for s in scopes or []],
    )
    db.session.add(user)
    db.session.flush()
    audit.record(
        "user.create",
        subject_type="user",
        subject_id=user.id,
        chain=f"user:{user.id}",
        details={"role": role, "scopes": list(scopes or [])},
    )
    return user


def authenticate(username: str, password: str) -> User:
    """Check a password; throttle repeated failures by locking the account a while."""
    config = current_app.extensions["anjuka_config"]
    user = db.session.scalar(sa.select(User).where(User.username == username).with_for_update())
    now = utcnow()
    if user is None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password)
        raise Unauthorized("Wrong username or password.", code="invalid_credentials")
    if user.locked_until and user.locked_until > now:
        audit.record(
            "auth.login_locked",
            subject_type="user",
            subject_id=user.id,
            chain=f"user:{user.id}",
            actor=("anonymous", None, username),
        )
        raise AppError(
            "Too many failed sign-ins; try again later.",
            code="account_locked",
            status=429,
            retry_after=int((user.locked_until - now).total_seconds()) + 1,
        )
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failed_logins += 1
        details = {"failed_logins": user.failed_logins}
        if user.failed_logins >= config.login_attempts:
            user.locked_until = now + config.login_lockout
            user.failed_logins = 0
            details["locked"] = True
        audit.record(
            "auth.login_failed",
            subject_type="user",
            subject_id=user.id,
            chain=f"user:{user.id}",
            details=details,
            actor=("anonymous", None, username),
        )
        raise Unauthorized("Wrong username or password.", code="invalid_credentials") from None
    if not user.active:
        raise Unauthorized("This account is disabled.", code="account_disabled")
    user.failed_logins = 0
    user.locked_until = None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def issue_token(
    user: User, origin: str | None = None, lifetime: timedelta | None = None
) -> tuple[str, datetime]:
    """A new bearer token for ``user``; only its hash is kept."""
    config = current_app.extensions["anjuka_config"]
    token = USER_TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = utcnow() + (lifetime or config.token_lifetime)
    db.session.add(
        ApiToken(
            user_id=user.id, token_hash=hash_token(token), expires_at=expires_at, origin=origin
        )
    )
    audit.record(
        "auth.login",
        subject_type="user",
        subject_id=user.id,
        chain=f"user:{user.id}",
        actor=("user", user.id, user.username),
        details={"expires_at": expires_at.isoformat(timespec="seconds")},
    )
    return token, expires_at


def revoke_token(token: str) -> None:
    """Revoke a bearer token at once."""
    row = db.session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(
            "auth.logout", subject_type="user", subject_id=row.user_id, chain=f"user:{row.user_id}"
        )


def resolve_user_token(token: str) -> Identity | None:
    """The identity behind a live user token, or None."""
    row = db.session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    user = row.user
    if not user.active:
        return None
    return Identity("user", user.id, user.username, user.role, user)
