"""Idempotency keys: a creating POST retried with the same key acts once.

A client that does not know whether its request arrived (a timeout, a
dropped connection) sends it again with the same ``Idempotency-Key``
header. The first request that completes keeps its answer (status and
body) under the key, for the caller who sent it; a retry with the same key
and the same request gets that answer again and changes nothing. The same
key with another request (another body or another path) is refused with
422 ``idempotency_key_reused``.

Only answers that were given (2xx) are kept: a refused request wrote
nothing, so its key is free for the next attempt.

The key is claimed before the view runs, in the request's own transaction,
with a unique constraint on (caller, key): a second request with the same
key waits on PostgreSQL for the first to commit or roll back, then replays
its answer or takes the claim over. The kept answer may hold personal data
(masked as its caller saw it) and is encrypted like every such column.
Keys live ``ANJUKA_IDEMPOTENCY_HOURS`` (24 by default); ``anjuka sweep``
deletes the expired ones.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Response, current_app, request
from flask_smorest import Blueprint
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from anjuka.core.db import Model, db
from anjuka.core.errors import AppError
from anjuka.core.models import UTCDateTime
from anjuka.core.protect import decrypt, encrypt
from anjuka.core.security import require_identity
from anjuka.core.time import utcnow

HEADER = "Idempotency-Key"
#: Printable ASCII without spaces, up to 255 characters (a UUID fits well).
KEY_PATTERN = re.compile(r"[!-~]{1,255}")
_PURPOSE = "idempotency_keys.answer"

F = TypeVar("F", bound=Callable[..., Any])


class IdempotencyKey(Model):
    """A caller's key and the answer its first completed request got."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        sa.UniqueConstraint("caller", "key"),
        sa.CheckConstraint("(status_code IS NULL) = (answer_enc IS NULL)", name="answer_whole"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: ``user:ID`` or ``reader:ID``: keys are each caller's own.
    caller: Mapped[str] = mapped_column(sa.String(40))
    key: Mapped[str] = mapped_column(sa.String(255))
    #: SHA-256 of the method, the path and the canonical JSON body.
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    #: Empty until the request's answer is known (and then only if it was given).
    status_code: Mapped[int | None]
    answer_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    @property
    def binding(self) -> str:
        return f"{self.caller}/{self.key}"


class KeyReused(AppError):
    status = 422
    code = "idempotency_key_reused"


def _fingerprint() -> str:
    """What makes two requests "the same": method, path and body (JSON compared as data)."""
    raw = request.get_data(cache=True)
    try:
        body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        body = raw
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _sent_key() -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not KEY_PATTERN.fullmatch(key):
        raise AppError(
            f"{HEADER} must be 1 to 255 printable ASCII characters without spaces.",
            code="invalid_idempotency_key",
            status=422,
            errors={HEADER: ["Not a valid key."]},
        )
    return key


def _locked(caller: str, key: str) -> IdempotencyKey | None:
    return db.session.scalar(
        sa.select(IdempotencyKey)
        .where(IdempotencyKey.caller == caller, IdempotencyKey.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _replay(row: IdempotencyKey) -> Response:
    response = Response(
        decrypt(row.answer_enc or b"", _PURPOSE, row.binding),
        status=row.status_code,
        mimetype="application/json",
    )
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _settle(row: IdempotencyKey | None, fingerprint: str) -> IdempotencyKey | Response | None:
    """What an existing row means for this request: its answer, a claim to take over, or none."""
    if row is None:
        return None
    if row.expires_at <= utcnow():
        db.session.delete(row)
        db.session.flush()
        return None
    if row.status_code is None:
        # Left by a refused attempt whose refusal kept its own record: free again.
        row.fingerprint = fingerprint
        return row
    if row.fingerprint != fingerprint:
        raise KeyReused(
            f"This {HEADER} was used for another request; send a new key for a new request.",
            errors={HEADER: ["Already used for another request."]},
        )
    return _replay(row)


def _claim(caller: str, key: str, fingerprint: str) -> IdempotencyKey | Response:
    """The caller's claim on ``key`` for this request, or the answer it already got."""
    settled = _settle(_locked(caller, key), fingerprint)
    if settled is not None:
        return settled
    lifetime = current_app.extensions["anjuka_config"].idempotency_lifetime
    now = utcnow()
    row = IdempotencyKey(
        caller=caller, key=key, fingerprint=fingerprint, created_at=now, expires_at=now + lifetime
    )
    try:
        # On PostgreSQL this waits while another request holds the same key.
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        settled = _settle(_locked(caller, key), fingerprint)
        if settled is None:
            raise
        return settled
    return row


def idempotent(view: F) -> F:
    """Honour ``Idempotency-Key`` on a creating POST (place it right under ``@blp.route``)."""

    @functools.wraps(view)
    def run(*args: Any, **kwargs: Any) -> Any:
        key = _sent_key()
        if key is None:
            return view(*args, **kwargs)
        identity = require_identity()
        claim = _claim(f"{identity.kind}:{identity.id}", key, _fingerprint())
        if isinstance(claim, Response):
            return claim
        response = current_app.make_response(view(*args, **kwargs))
        if 200 <= response.status_code < 300:
            claim.status_code = response.status_code
            claim.answer_enc = encrypt(response.get_data(as_text=True), _PURPOSE, claim.binding)
        else:
            db.session.delete(claim)
        db.session.flush()
        return response

    documented = Blueprint.doc(
        parameters=[
            {
                "in": "header",
                "name": HEADER,
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": (
                    "Send the same key again to retry safely: the first completed answer "
                    "is returned and nothing changes. The same key with another request is "
                    "422 `idempotency_key_reused`. Keys are kept 24 hours (configurable)."
                ),
            }
        ]
    )
    return documented(run)


def purge_expired(now: datetime | None = None) -> int:
    """Delete the keys past their lifetime; how many went."""
    result = db.session.execute(
        sa.delete(IdempotencyKey).where(IdempotencyKey.expires_at <= (now or utcnow()))
    )
    return result.rowcount or 0  # type: ignore[attr-defined]
