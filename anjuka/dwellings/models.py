"""Estates (小区) and rental dwellings (出租房屋)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from anjuka.areas.models import Area
from anjuka.core.models import UTCDateTime
from anjuka.core.time import utcnow
from anjuka.extensions import db

DWELLING_STATUSES = ("rentable", "illegal", "not_for_rent")


class Estate(db.Model):
    """A residential estate run by a property company; managers are scoped to it."""

    __tablename__ = "estates"

    id: Mapped[int] = mapped_column(primary_key=True)
    area_id: Mapped[int] = mapped_column(sa.ForeignKey("areas.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    address: Mapped[str | None] = mapped_column(sa.String(400))
    property_company: Mapped[str | None] = mapped_column(sa.String(200))

    area: Mapped[Area] = relationship()


class Dwelling(db.Model):
    """A rentable flat or room on a standard address."""

    __tablename__ = "dwellings"
    __table_args__ = (
        sa.CheckConstraint("rooms >= 1", name="rooms_positive"),
        sa.CheckConstraint(
            "building_area_m2 IS NULL OR building_area_m2 > 0", name="building_area_positive"
        ),
        sa.CheckConstraint(
            "usable_area_m2 IS NULL OR usable_area_m2 > 0", name="usable_area_positive"
        ),
        sa.CheckConstraint(
            "building_area_m2 IS NOT NULL OR usable_area_m2 IS NOT NULL", name="some_area"
        ),
        sa.CheckConstraint(
            "status IN ('rentable', 'illegal', 'not_for_rent')", name="status_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    area_id: Mapped[int] = mapped_column(sa.ForeignKey("areas.id"), index=True)
    estate_id: Mapped[int | None] = mapped_column(sa.ForeignKey("estates.id"), index=True)
    #: The standard address (一标三实) as the police address base writes it.
    address: Mapped[str] = mapped_column(sa.String(400), index=True)
    address_code: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    landlord_name: Mapped[str | None] = mapped_column(sa.String(200))
    landlord_phone: Mapped[str | None] = mapped_column(sa.String(32))
    building_area_m2: Mapped[Decimal | None] = mapped_column(sa.Numeric(8, 2))
    usable_area_m2: Mapped[Decimal | None] = mapped_column(sa.Numeric(8, 2))
    rooms: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(16), default="rentable")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    area: Mapped[Area] = relationship()
    estate: Mapped[Estate | None] = relationship()
