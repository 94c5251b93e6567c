"""Desk readers: registering a device, its token, what it serves."""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from anjuka.areas.models import Area
from anjuka.audit import operations as audit
from anjuka.cards.models import Reader
from anjuka.core.db import db
from anjuka.core.errors import Conflict, InvalidInput
from anjuka.core.security import Identity, hash_token
from anjuka.core.time import utcnow
from anjuka.dwellings.models import Dwelling, Estate

READER_TOKEN_PREFIX = "ajr_"  # noqa: S105 (a prefix, not a secret)


def reader_area_code(reader: Reader) -> str | None:
    """The area whose audit chain records the reader's events."""
    if reader.area is not None:
        return reader.area.code
    if reader.estate is not None:
        return reader.estate.area.code
    return None


def create_reader(
    name: str, *, area_code: str | None = None, estate_id: int | None = None
) -> tuple[Reader, str]:
    """Register a desk device serving an area subtree, an estate, or (neither) everything.

    Returns the reader and its token; only the token's hash is stored.
    """
    name = name.strip()
    if not 1 <= len(name) <= 80:
        raise InvalidInput("A reader name is 1-80 characters.", errors={"name": ["1-80 chars."]})
    if area_code is not None and estate_id is not None:
        raise InvalidInput("A reader serves an area or an estate, not both.", code="reader_scope")
    area = estate = None
    if area_code is not None:
        area = db.session.scalar(sa.select(Area).where(Area.code == area_code))
        if area is None:
            raise InvalidInput(f"No area {area_code!r}.", code="unknown_area")
    if estate_id is not None:
        estate = db.session.get(Estate, estate_id)
        if estate is None:
            raise InvalidInput(f"No estate {estate_id}.", code="unknown_estate")
    if db.session.scalar(sa.select(Reader.id).where(Reader.name == name)):
        raise Conflict(f"Reader {name!r} exists.", code="reader_exists")
    token = READER_TOKEN_PREFIX + secrets.token_urlsafe(32)
    reader = Reader(name=name, token_hash=hash_token(token), area=area, estate=estate)
    db.session.add(reader)
    db.session.flush()
    audit.record(
        "reader.create",
        subject_type="reader",
        subject_id=reader.id,
        area_code=reader_area_code(reader),
        details={"name": name, "area": area_code, "estate_id": estate_id},
    )
    return reader, token


def resolve_reader_token(token: str) -> Identity | None:
    """The identity of an active reader holding ``token``, or None."""
    reader = db.session.scalar(sa.select(Reader).where(Reader.token_hash == hash_token(token)))
    if reader is None or not reader.active:
        return None
    return Identity("reader", reader.id, reader.name, None, reader)


def reader_serves(reader: Reader, dwelling: Dwelling) -> bool:
    """Whether ``reader`` is a desk for ``dwelling``."""
    if reader.estate_id is not None:
        return dwelling.estate_id == reader.estate_id
    if reader.area is not None:
        return dwelling.area.path.startswith(reader.area.path)
    return True


def touch(reader_id: int) -> None:
    """Note that the reader's daemon was just heard from."""
    db.session.execute(
        sa.update(Reader).where(Reader.id == reader_id).values(last_seen_at=utcnow())
    )
