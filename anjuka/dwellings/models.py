"""Estates (小区) and rental dwellings (出租房屋)."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from anjuka.areas.models import Area
from anjuka.core.db import Model
from anjuka.core.models import UTCDateTime, sql_in
from anjuka.core.privacy import mask
from anjuka.core.protect import decrypt, encrypt
from anjuka.core.time import utcnow

LANDLORD_PHONE_PURPOSE = "dwelling.landlord_phone"
#: The landlord's personal data: masked in responses, named (never valued) in audit details.
PERSONAL_FIELDS = ("landlord_name", "landlord_phone")


class DwellingStatus(enum.StrEnum):
    """Whether a dwelling may be let; illegality (违法违建) is the authorities' finding."""

    RENTABLE = "rentable"
    ILLEGAL = "illegal"
    NOT_FOR_RENT = "not_for_rent"


class Estate(Model):
    """A residential estate run by a property company; managers are scoped to it."""

    __tablename__ = "estates"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The legacy registry's code for the estate (what imported dwellings refer to).
    code: Mapped[str | None] = mapped_column(sa.String(32), index=True, unique=True)
    area_id: Mapped[int] = mapped_column(sa.ForeignKey("areas.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    address: Mapped[str | None] = mapped_column(sa.String(400))
    property_company: Mapped[str | None] = mapped_column(sa.String(200))

    area: Mapped[Area] = relationship()


class Dwelling(Model):
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
        sa.CheckConstraint(sql_in("status", DwellingStatus), name="status_known"),
        # The address search matches a substring: trigrams on PostgreSQL (migration
        # 0020, which creates pg_trgm; docs/benchmarks.md), nothing on SQLite.
        sa.Index(
            "ix_dwellings_address_trgm",
            "address",
            postgresql_using="gin",
            postgresql_ops={"address": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    area_id: Mapped[int] = mapped_column(sa.ForeignKey("areas.id"), index=True)
    estate_id: Mapped[int | None] = mapped_column(sa.ForeignKey("estates.id"), index=True)
    #: The standard address (一标三实) as the police address base writes it.
    address: Mapped[str] = mapped_column(sa.String(400), index=True)
    #: The standard address down to the room: one dwelling each (imports refer to it).
    address_code: Mapped[str | None] = mapped_column(sa.String(64), index=True, unique=True)
    landlord_name: Mapped[str | None] = mapped_column(sa.String(200))
    #: AES-GCM ciphertext bound to this row; read and set through ``landlord_phone``.
    landlord_phone_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    landlord_phone_masked: Mapped[str | None] = mapped_column(sa.String(32))
    building_area_m2: Mapped[Decimal | None] = mapped_column(sa.Numeric(8, 2))
    usable_area_m2: Mapped[Decimal | None] = mapped_column(sa.Numeric(8, 2))
    rooms: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(16), default=DwellingStatus.RENTABLE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    area: Mapped[Area] = relationship()
    estate: Mapped[Estate | None] = relationship()

    @property
    def binding(self) -> str:
        """What ties this row's ciphertexts to it (the row needs its id: flush first)."""
        if self.id is None:
            raise RuntimeError("a dwelling's personal data is sealed after its row is flushed")
        return f"dwellings:{self.id}"

    @property
    def landlord_phone(self) -> str | None:
        """The landlord's phone in clear (decrypted when read)."""
        if self.landlord_phone_enc is None:
            return None
        return decrypt(self.landlord_phone_enc, LANDLORD_PHONE_PURPOSE, self.binding)

    @landlord_phone.setter
    def landlord_phone(self, value: str | None) -> None:
        self.landlord_phone_enc = (
            encrypt(value, LANDLORD_PHONE_PURPOSE, self.binding) if value else None
        )
        self.landlord_phone_masked = mask(value, start=1, end=4) if value else None


# create_all (tests, the demo) makes the trigram index too: its operator class first.
sa.event.listen(
    Dwelling.__table__,
    "before_create",
    sa.DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"),
)
