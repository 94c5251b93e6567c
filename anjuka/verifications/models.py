"""Inspections and the challenges of chip authentication."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from anjuka.auth.models import User
from anjuka.core.db import Model
from anjuka.core.models import UTCDateTime, sql_in
from anjuka.core.time import utcnow
from anjuka.dwellings.models import Dwelling


class VerificationResult(enum.StrEnum):
    """What an inspection found (the officer's answer)."""

    VALID = "valid"
    REVOKED = "revoked"
    EXPIRED = "expired"
    WRONG_DWELLING = "wrong_dwelling"
    UNKNOWN = "unknown"
    FORGED = "forged"
    CLONE_SUSPECTED = "clone_suspected"


RESULTS = tuple(r.value for r in VerificationResult)
INPUT_KINDS = ("card_no", "chip", "document")


class Inspection(Model):
    """One on-site check (查验): who checked what, where, when, with what result.

    Never holds a document number: a document check keeps the person's id,
    or nothing when no one matched.
    """

    __tablename__ = "inspections"
    __table_args__ = (
        sa.CheckConstraint(sql_in("input_kind", INPUT_KINDS), name="input_kind_known"),
        sa.CheckConstraint(sql_in("result", VerificationResult), name="result_known"),
        sa.CheckConstraint(
            "offline_result IS NULL OR " + sql_in("offline_result", VerificationResult),
            name="offline_result_known",
        ),
        sa.CheckConstraint(
            "observed_headcount IS NULL OR observed_headcount >= 0", name="headcount_not_negative"
        ),
        sa.CheckConstraint("(latitude IS NULL) = (longitude IS NULL)", name="position_whole"),
        sa.Index("ix_inspections_card_id_checked_at", "card_id", "checked_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Chosen by the client (offline uploads): the same id twice is one inspection.
    client_id: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    officer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    #: Where the officer stood, when they said.
    dwelling_id: Mapped[int | None] = mapped_column(sa.ForeignKey("dwellings.id"), index=True)
    #: For scoping: where the check happened (``operations.check_area``).
    area_id: Mapped[int | None] = mapped_column(sa.ForeignKey("areas.id"), index=True)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    input_kind: Mapped[str] = mapped_column(sa.String(16))
    card_id: Mapped[int | None] = mapped_column(sa.ForeignKey("cards.id"))
    person_id: Mapped[int | None] = mapped_column(sa.ForeignKey("persons.id"), index=True)
    residence_id: Mapped[int | None] = mapped_column(sa.ForeignKey("residences.id"))
    #: The chip UID presented (hex), for chip checks.
    uid: Mapped[str | None] = mapped_column(sa.String(64))
    result: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str | None] = mapped_column(sa.String(64))
    observed_headcount: Mapped[int | None]
    registered_headcount: Mapped[int | None]
    #: Checked on a patrol laptop against a bundle and uploaded later.
    offline: Mapped[bool] = mapped_column(default=False)
    offline_result: Mapped[str | None] = mapped_column(sa.String(16))
    #: INTERNAL AUTHENTICATE: true passed, false failed, null not asked.
    chip_authenticated: Mapped[bool | None]
    latitude: Mapped[Decimal | None] = mapped_column(sa.Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(sa.Numeric(9, 6))
    #: The answer the officer was given (masked), so a repeated upload gets the same.
    answer: Mapped[dict] = mapped_column(sa.JSON, default=dict)

    officer: Mapped[User] = relationship()
    dwelling: Mapped[Dwelling | None] = relationship()


class VerificationChallenge(Model):
    """A random challenge for a CPU card's INTERNAL AUTHENTICATE, good once, briefly."""

    __tablename__ = "verification_challenges"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    challenge: Mapped[bytes] = mapped_column(sa.LargeBinary)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
