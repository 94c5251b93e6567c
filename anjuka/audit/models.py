"""Audit events, chained by hash, one chain per area."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from anjuka.core.db import Model
from anjuka.core.models import UTCDateTime
from anjuka.core.time import utcnow


class AuditEvent(Model):
    """Who did what to which subject, when and from where.

    ``hash`` covers every other column, the id included (hash version 2),
    and ``prev_hash``, the hash of the previous event of the same chain;
    editing, deleting or renumbering any event breaks the chain at that
    point. Ids increase along each chain, so the order a reader lists by is
    the order ``verify`` checks. Events of hash version 1 (written before ids
    were covered) keep verifying as they were written.
    """

    __tablename__ = "audit_events"
    __table_args__ = (sa.UniqueConstraint("chain", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chain: Mapped[str] = mapped_column(sa.String(64))
    seq: Mapped[int]
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_type: Mapped[str] = mapped_column(sa.String(16))
    actor_id: Mapped[int | None]
    actor_name: Mapped[str | None] = mapped_column(sa.String(80))
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    subject_type: Mapped[str | None] = mapped_column(sa.String(32))
    subject_id: Mapped[str | None] = mapped_column(sa.String(64))
    area_code: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    origin: Mapped[str | None] = mapped_column(sa.String(64))
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    details: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))
    #: 2: the id is inside the hash; 1: an event written before it was.
    hash_version: Mapped[int] = mapped_column(sa.SmallInteger, default=2)

    __mapper_args__ = {"eager_defaults": False}


class AuditChainHead(Model):
    """The tip of one chain; its row lock orders appends within the chain only."""

    __tablename__ = "audit_chain_heads"

    chain: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    hash: Mapped[str] = mapped_column(sa.String(64))
