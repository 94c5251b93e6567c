"""Residences (居住登记): a person at a dwelling from arrival to departure."""

from __future__ import annotations

import enum
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from anjuka.core.db import Model
from anjuka.core.models import UTCDateTime, sql_in
from anjuka.core.time import utcnow
from anjuka.dwellings.models import Dwelling
from anjuka.persons.models import Person


class FamilyRelation(enum.StrEnum):
    """The family exception: whom a resident shares a room with and must support."""

    SPOUSE = "spouse"
    PARENT = "parent"
    CHILD = "child"


class DepartureReason(enum.StrEnum):
    """How a residence ended."""

    #: The desk recorded the departure (人走注销).
    DEPARTURE = "departure"
    #: The person moved to a dwelling the same desk serves.
    MOVE = "move"
    #: A transfer requested by another desk moved the person.
    TRANSFER = "transfer"


class Residence(Model):
    """One registration; history is never deleted, a departure only ends it."""

    __tablename__ = "residences"
    __table_args__ = (
        sa.CheckConstraint(
            "departed_on IS NULL OR departed_on >= arrived_on", name="departure_after_arrival"
        ),
        sa.CheckConstraint(
            f"family_relation IS NULL OR {sql_in('family_relation', FamilyRelation)}",
            name="family_relation_known",
        ),
        sa.CheckConstraint(
            "(family_relation IS NULL) = (family_of_id IS NULL)", name="family_pair"
        ),
        # At most one current residence per person, held by the database.
        sa.Index(
            "uq_residences_current_person",
            "person_id",
            unique=True,
            sqlite_where=sa.text("departed_on IS NULL"),
            postgresql_where=sa.text("departed_on IS NULL"),
        ),
        sa.Index(
            "ix_residences_current_dwelling",
            "dwelling_id",
            sqlite_where=sa.text("departed_on IS NULL"),
            postgresql_where=sa.text("departed_on IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(sa.ForeignKey("persons.id"), index=True)
    dwelling_id: Mapped[int] = mapped_column(sa.ForeignKey("dwellings.id"), index=True)
    arrived_on: Mapped[date]
    departed_on: Mapped[date | None]
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    departure_registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    registered_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    departed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    #: Registered after the area's deadline (working days after arrival).
    late: Mapped[bool] = mapped_column(default=False)
    registration_deadline: Mapped[date | None]
    #: A minor when registered; counts toward the limit only if the policy says so.
    minor: Mapped[bool] = mapped_column(default=False)
    #: Family exception: shares a room with a person they must support.
    family_relation: Mapped[str | None] = mapped_column(sa.String(16))
    family_of_id: Mapped[int | None] = mapped_column(sa.ForeignKey("residences.id"))
    #: A supervisor registered beyond capacity: the written reason.
    override_reason: Mapped[str | None] = mapped_column(sa.Text)
    card_returned: Mapped[bool | None]

    person: Mapped[Person] = relationship()
    dwelling: Mapped[Dwelling] = relationship()

    @property
    def is_current(self) -> bool:
        return self.departed_on is None
