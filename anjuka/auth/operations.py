"""Accounts, sign-in and bearer tokens; account control (disable, roles, passwords)."""

from __future__ import annotations

import contextlib
import functools
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy.orm import joinedload

from anjuka.areas.models import Area
from anjuka.audit import operations as audit
from anjuka.auth.models import ROLES, ApiToken, User, UserScope
from anjuka.core.db import db
from anjuka.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from anjuka.core.protect import blind_index
from anjuka.core.security import Identity, hash_token
from anjuka.core.time import utcnow
from anjuka.dwellings.models import Dwelling, Estate

USER_TOKEN_PREFIX = "aju_"  # noqa: S105 (a prefix, not a secret)
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """What an unknown name's password is verified against: a hash of the hasher in
    use, so that it costs what a real account's verification costs."""
    return hasher.hash("anjuka-no-such-user")


_dummy_hash(_hasher)  # made now, not on the first unknown name

MIN_PASSWORD_LENGTH = 10
_USERNAME_PURPOSE = "auth.username"

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


def user_chain(user_id: int) -> str:
    """The audit chain of one account: its sign-ins and every change made to it."""
    return f"user:{user_id}"


def username_digest(username: str) -> str:
    """A keyed hash of a username as typed, for throttle keys and the audit trail.

    A name typed into a sign-in form is sometimes a password typed into the
    wrong field, so the text itself is kept nowhere.
    """
    return blind_index(username.casefold(), _USERNAME_PURPOSE)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.", code="weak_password"
        )


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


def scope_specs(user: User) -> list[str]:
    """A user's scopes in the form they are given: area:CODE, estate:ID, dwelling:ID."""
    out = []
    for s in user.scopes:
        if s.area is not None:
            out.append(f"area:{s.area.code}")
        elif s.estate_id is not None:
            out.append(f"estate:{s.estate_id}")
        else:
            out.append(f"dwelling:{s.dwelling_id}")
    return out


def _scope_rows(role: str, scopes: Sequence[str]) -> list[UserScope]:
    """Scope rows for ``role``; a scope of the wrong kind is refused (422 ``invalid_scope``)."""
    if role not in ROLES:
        raise InvalidInput(f"Role must be one of {', '.join(ROLES)}.", code="unknown_role")
    allowed = SCOPE_KINDS_BY_ROLE[role]
    for spec in scopes:
        if spec.partition(":")[0] not in allowed:
            # A scope the role ignores would leave an account that silently sees nothing.
            raise InvalidInput(
                f"A {role} cannot be scoped to {spec!r}"
                + (f"; use {' or '.join(sorted(allowed))} scopes." if allowed else "."),
                code="invalid_scope",
                errors={"scopes": [f"Not a {role} scope: {spec}"]},
            )
    return [parse_scope(s) for s in scopes]


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
    _check_password(password)
    if db.session.scalar(sa.select(User.id).where(User.username == username)):
        raise Conflict(f"User {username!r} exists.", code="user_exists")
    user = User(
        username=username,
        role=role,
        display_name=display_name,
        password_hash=hash_password(password),
        scopes=_scope_rows(role, scopes or []),
    )
    db.session.add(user)
    db.session.flush()
    audit.record(
        "user.create",
        subject_type="user",
        subject_id=user.id,
        chain=user_chain(user.id),
        details={"role": role, "scopes": list(scopes or [])},
    )
    return user


# -- signing in ----------------------------------------------------------------------


def _by_name(username: str) -> User | None:
    # Scopes load only when used: a sign-in for a known name must run the
    # same statements as one for an unknown name.
    return db.session.scalar(
        sa.select(User).where(User.username == username).options(sa.orm.lazyload(User.scopes))
    )


def _wrong_credentials() -> Unauthorized:
    # The failure's audit event is the refusal's own record: it is kept.
    return Unauthorized("Wrong username or password.", code="invalid_credentials", keep_writes=True)


def _record_failure(user: User | None, username: str) -> None:
    """A failed sign-in on the account's chain; an unknown name's on the system chain.

    Both paths write one event, so an unknown name costs what a known one does.
    """
    audit.record(
        "auth.login_failed",
        subject_type="user",
        subject_id=None if user is None else user.id,
        chain="system" if user is None else user_chain(user.id),
        details={"username_hash": username_digest(username)},
        actor=("anonymous", None, None if user is None else user.username),
    )


def authenticate(username: str, password: str) -> User:
    """Check a password; an unknown name does the same work and reads the same.

    Repeated failures are throttled before this is reached (Flask-Limiter,
    per typed name and client address, and per address: ``auth/api.py``), so
    a wrong guess here never locks the account itself.
    """
    user = _by_name(username)
    if user is None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_dummy_hash(_hasher), password)
        _record_failure(None, username)
        raise _wrong_credentials()
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        _record_failure(user, username)
        raise _wrong_credentials() from None
    if not user.active:
        raise Unauthorized("This account is disabled.", code="account_disabled")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def record_sign_in_locked(username: str, *, failures: int, limit: str, retry_after: int) -> None:
    """The one audit event of a lock period: sign-ins of a name from an address are refused.

    Written at the first refused attempt; the attempts after it within the
    period are refused without a trace of their own, so a flood cannot
    flood the trail.
    """
    user = _by_name(username)
    audit.record(
        "auth.login_locked",
        subject_type="user",
        subject_id=None if user is None else user.id,
        chain="system" if user is None else user_chain(user.id),
        details={
            "username_hash": username_digest(username),
            "failures": failures,
            "limit": limit,
            "retry_after": retry_after,
        },
        actor=("anonymous", None, None if user is None else user.username),
    )


def record_address_throttled(*, failures: int, limit: str, retry_after: int) -> None:
    """The one audit event of a period in which an address may not sign in to any account."""
    audit.record(
        "auth.address_throttled",
        chain="system",
        details={"failures": failures, "limit": limit, "retry_after": retry_after},
        actor=("anonymous", None, None),
    )


def issue_token(
    user: User, origin: str | None = None, lifetime: timedelta | None = None, kind: str = "token"
) -> tuple[str, datetime]:
    """A new bearer token (or a browser session's token) for ``user``; only its hash is kept."""
    config = current_app.extensions["anjuka_config"]
    token = USER_TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = utcnow() + (lifetime or config.token_lifetime)
    db.session.add(
        ApiToken(
            user_id=user.id,
            token_hash=hash_token(token),
            expires_at=expires_at,
            origin=origin,
            kind=kind,
        )
    )
    audit.record(
        "auth.login",
        subject_type="user",
        subject_id=user.id,
        chain=user_chain(user.id),
        actor=("user", user.id, user.username),
        details={"expires_at": expires_at.isoformat(timespec="seconds"), "kind": kind},
    )
    return token, expires_at


def revoke_token(token: str) -> None:
    """Revoke a bearer token at once."""
    row = db.session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(
            "auth.logout",
            subject_type="user",
            subject_id=row.user_id,
            chain=user_chain(row.user_id),
        )


def resolve_user_token(token: str) -> Identity | None:
    """The identity behind a live user token, or None."""
    # One statement: the token, its user, the user's scopes and their areas (for the
    # scope's paths). Read at every request, so a revoked token or a disabled user
    # is refused at once.
    row = (
        db.session.scalars(
            sa.select(ApiToken)
            .where(ApiToken.token_hash == hash_token(token))
            .options(joinedload(ApiToken.user).joinedload(User.scopes).joinedload(UserScope.area))
        )
        .unique()
        .one_or_none()
    )
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    user = row.user
    if not user.active:
        return None
    return Identity("user", user.id, user.username, user.role, user, extra={"token_id": row.id})


# -- account control ------------------------------------------------------------------


def get_user_or_404(user_id: int) -> User:
    """An account by id, its row locked for the change at hand; 404 ``user_not_found``."""
    user = db.session.scalar(
        sa.select(User)
        .where(User.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if user is None:
        raise NotFound(f"No user {user_id}.", code="user_not_found")
    return user


def find_user(username: str) -> User:
    """An account by name (the operator's commands); 404 ``user_not_found``."""
    user_id = db.session.scalar(sa.select(User.id).where(User.username == username))
    if user_id is None:
        raise NotFound(f"No user {username!r}.", code="user_not_found")
    return get_user_or_404(user_id)


def _live_tokens(user_id: int) -> sa.Select:
    return sa.select(ApiToken).where(
        ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > utcnow()
    )


def _revoke_tokens(user: User, *, keep_token_id: int | None = None) -> int:
    """Revoke every live token and session of ``user`` (but ``keep_token_id``); how many."""
    now = utcnow()
    query = _live_tokens(user.id).with_for_update()
    if keep_token_id is not None:
        query = query.where(ApiToken.id != keep_token_id)
    rows = db.session.scalars(query).all()
    for row in rows:
        row.revoked_at = now
    db.session.flush()
    return len(rows)


def _keep_an_admin(user: User, *, losing_admin: bool) -> None:
    """Refuse a change that would leave no active admin: nobody could manage accounts then.

    The active admins' rows are locked in id order, so two admins demoting or
    disabling each other at once are decided one after the other.
    """
    if not losing_admin or user.role != "admin" or not user.active:
        return
    admins = db.session.scalars(
        sa.select(User.id)
        .where(User.role == "admin", User.active.is_(True))
        .order_by(User.id)
        .with_for_update()
    ).all()
    if not set(admins) - {user.id}:
        raise Conflict(
            "This is the last active admin; give another account the admin role first.",
            code="last_admin",
        )


def _record_change(user: User, action: str, details: dict | None = None) -> None:
    audit.record(
        action,
        subject_type="user",
        subject_id=user.id,
        chain=user_chain(user.id),
        details=details or {},
    )


def disable_user(user: User) -> int:
    """Disable an account: it cannot sign in, and every token and session dies at once.

    Returns how many tokens were revoked. Disabling a disabled account changes nothing.
    """
    if not user.active:
        return 0
    _keep_an_admin(user, losing_admin=True)
    user.active = False
    revoked = _revoke_tokens(user)
    _record_change(user, "user.disable", {"tokens_revoked": revoked})
    return revoked


def enable_user(user: User) -> None:
    """Let a disabled account sign in again (its old tokens stay revoked)."""
    if user.active:
        return
    user.active = True
    db.session.flush()
    _record_change(user, "user.enable")


_UNSET: object = object()


def update_user(
    user: User,
    *,
    role: str | None = None,
    scopes: Sequence[str] | None = None,
    display_name: object = _UNSET,
) -> User:
    """Change an account's role, scopes or display name; checked as at creation.

    Without ``scopes`` the account keeps its own, which must then suit the
    new role. Role and scope apply from the account's next request.
    """
    before = {"role": user.role, "scopes": scope_specs(user)}
    new_role = role or user.role
    _keep_an_admin(user, losing_admin=new_role != "admin")
    specs = list(scopes) if scopes is not None else before["scopes"]
    rows = _scope_rows(new_role, specs)
    user.role = new_role
    if scopes is not None:
        user.scopes = rows
    changed: dict = {}
    if display_name is not _UNSET and display_name != user.display_name:
        user.display_name = display_name  # type: ignore[assignment]
        changed["display_name"] = True
    db.session.flush()
    after = {"role": user.role, "scopes": scope_specs(user)}
    _record_change(user, "user.update", {"before": before, "after": after, **changed})
    return user


def set_password(user: User, password: str) -> int:
    """An admin sets a new password; every token and session of the account is revoked."""
    _check_password(password)
    user.password_hash = hash_password(password)
    revoked = _revoke_tokens(user)
    _record_change(user, "user.password_set", {"tokens_revoked": revoked})
    return revoked


def check_current_password(user: User, password: str) -> None:
    """Refuse (403 ``wrong_password``, audited) unless ``password`` is the account's."""
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        _record_change(user, "user.password_change_failed")
        raise Forbidden(
            "The current password is wrong.", code="wrong_password", keep_writes=True
        ) from None


def change_own_password(identity: Identity, current: str, new: str) -> int:
    """A user changes their own password; their other tokens and sessions are revoked."""
    user = get_user_or_404(identity.id)
    check_current_password(user, current)
    _check_password(new)
    user.password_hash = hash_password(new)
    revoked = _revoke_tokens(user, keep_token_id=identity.extra.get("token_id"))
    _record_change(user, "user.password_change", {"tokens_revoked": revoked})
    return revoked


def revoke_user_tokens(user: User) -> int:
    """An admin revokes every token and session of an account (a lost phone); how many."""
    revoked = _revoke_tokens(user)
    _record_change(user, "user.tokens_revoke", {"tokens_revoked": revoked})
    return revoked


def own_tokens(identity: Identity) -> list[ApiToken]:
    """The caller's live tokens and sessions, newest first."""
    return list(
        db.session.scalars(
            _live_tokens(identity.id).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )


def revoke_own_token(identity: Identity, token_id: int) -> ApiToken:
    """Revoke one of the caller's live tokens or sessions; another's reads as unknown (404)."""
    row = db.session.scalar(
        _live_tokens(identity.id).where(ApiToken.id == token_id).with_for_update()
    )
    if row is None:
        raise NotFound(f"No token {token_id}.", code="token_not_found")
    row.revoked_at = utcnow()
    db.session.flush()
    audit.record(
        "auth.token_revoke",
        subject_type="user",
        subject_id=identity.id,
        chain=user_chain(identity.id),
        details={"token_id": row.id, "kind": row.kind},
    )
    return row
