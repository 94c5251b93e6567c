"""The offline bundle: public keys and revocations for patrol laptops, signed.

A full bundle lists every card revoked or returned whose validity has not
run out (an expired card is refused by its own record's date, so it need
not be listed), and every record signed for a chip but withdrawn before it
became the card (its job bound another chip, failed or was cancelled), by
the SHA-256 of its bytes, until it expires: such a chip holds a record
signed for its own UID, which nothing else would refuse offline. A delta
(``since`` = an earlier bundle's cursor) lists what was revoked or
withdrawn since then. The cursor is the issue time; a delta reaches
``CURSOR_OVERLAP`` further back so that a revocation committed a moment
after a bundle was cut, but stamped before it, is not missed (repeats are
harmless: the laptop keeps a set). Every bundle expires after
``BUNDLE_LIFETIME``; ``cardreader.offline`` refuses a stale one.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

import sqlalchemy as sa

from anjuka.cards.models import Card, CardChip, CardStatus
from anjuka.core.db import db
from anjuka.core.errors import InvalidInput
from anjuka.core.keys import keyring
from anjuka.core.time import local_date, registry_zone, utcnow
from cardreader.offline import ALGORITHM, FORMAT, canonical_bytes, format_time

BUNDLE_LIFETIME = timedelta(hours=24)
CURSOR_OVERLAP = timedelta(minutes=10)


def parse_cursor(cursor: str) -> datetime:
    """A cursor is the ISO 8601 UTC time its bundle was cut (opaque to clients)."""
    try:
        moment = datetime.fromisoformat(cursor.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(
            "Not a cursor from an earlier bundle.",
            code="invalid_cursor",
            errors={"since": ["Not a cursor."]},
        )
    if moment > utcnow() + timedelta(minutes=5):
        raise InvalidInput(
            "The cursor is in the future.", code="invalid_cursor", errors={"since": ["Future."]}
        )
    return moment


def _cursor(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def revoked_card_numbers(since: datetime | None, now: datetime) -> list[str]:
    """Card numbers revoked or returned (since ``since``) whose cards are still in date."""
    oldest_valid = local_date(now) - timedelta(days=1)
    stmt = sa.select(Card.card_no).where(
        Card.status.in_((CardStatus.REVOKED, CardStatus.RETURNED)),
        Card.uid.is_not(None),  # never signed for a chip: nothing to present
        sa.or_(Card.expires_on.is_(None), Card.expires_on >= oldest_valid),
    )
    if since is not None:
        # Two indexed comparisons rather than one coalesce(), so that a delta
        # reads the cards withdrawn since the cursor, not the whole table.
        after = since - CURSOR_OVERLAP
        stmt = stmt.where(sa.or_(Card.revoked_at >= after, Card.returned_at >= after))
    return sorted(db.session.scalars(stmt))


def withdrawn_records(since: datetime | None, now: datetime) -> list[str]:
    """Digests of records withdrawn (since ``since``) that are still in date."""
    oldest_valid = local_date(now) - timedelta(days=1)
    stmt = sa.select(CardChip.record_digest).where(
        CardChip.withdrawn_at.is_not(None), CardChip.valid_until >= oldest_valid
    )
    if since is not None:
        stmt = stmt.where(CardChip.withdrawn_at >= since - CURSOR_OVERLAP)
    return sorted(db.session.scalars(stmt))


def build_bundle(since: str | None = None, *, now: datetime | None = None) -> dict:
    """A signed bundle (full, or a delta after cursor ``since``)."""
    now = now or utcnow()
    since_time = parse_cursor(since) if since else None
    ring = keyring()
    signer = ring.active_signing_key_id
    bundle = {
        "format": FORMAT,
        "issued_at": format_time(now),
        "expires_at": format_time(now + BUNDLE_LIFETIME),
        "since": since,
        "cursor": _cursor(now),
        "keys": [
            {"id": kid, "algorithm": ALGORITHM, "public_key": base64.b64encode(raw).decode()}
            for kid, raw in sorted(ring.signing_public_keys_raw().items())
        ],
        "revoked": revoked_card_numbers(since_time, now),
        "withdrawn": withdrawn_records(since_time, now),
        "timezone": registry_zone().key,
        "signed_by": signer,
    }
    signature = ring.signing_private_key(signer).sign(canonical_bytes(bundle))
    bundle["signature"] = base64.b64encode(signature).decode()
    return bundle
