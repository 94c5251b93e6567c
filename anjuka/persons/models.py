"""Persons (流动人口) and their identity documents."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from anjuka.core.models import UTCDateTime
from anjuka.core.time import utcnow
from anjuka.extensions import db

DOCUMENT_TYPES = (
    "resident_id",
    "passport",
    "hk_macao_permit",
    "taiwan_permit",
    "foreign_permanent_id",
)


class Person(db.Model):
    """A resident. The document number is never stored in clear."""

    __tablename__ = "persons"
    __table_args__ = (sa.CheckConstraint("sex IS NULL OR sex IN ('F', 'M')", name="sex_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_type: Mapped[str] = mapped_column(sa.String(32))
    #: AES-GCM ciphertext (see anjuka.core.protect).
    document_number_enc: Mapped[bytes] = mapped_column(sa.LargeBinary)
    #: Keyed blind index of type and number: the only way to find a person by document.
    document_index: Mapped[str] = mapped_column(sa.String(80), unique=True)
    #: What every response shows: first and last characters only.
    document_masked: Mapped[str] = mapped_column(sa.String(40))
    name: Mapped[str] = mapped_column(sa.String(200))
    sex: Mapped[str | None] = mapped_column(sa.String(1))
    birth_date: Mapped[date | None]
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    origin: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
