"""Transfer requests: a person registered outside the requesting desk's scope."""

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
from anjuka.residences.models import Residence


class TransferStatus(enum.StrEnum):
    """Where a transfer stands."""

    REQUESTED = "requested"
    #: The old residence ended and the new one began.
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    #: The old residence ended, but the new dwelling could no longer take the person.
    FAILED = "failed"


class TransferCompletion(enum.StrEnum):
    """How a completed transfer came about."""

    DEPARTURE = "departure"  # the old desk recorded the departure
    SUPERVISOR = "supervisor"  # a supervisor of the new area, after the deadline


class Transfer(Model):
    """A desk asks for a person registered elsewhere (outside its scope) to move in.

    The old dwelling's desk and the old area's supervisors see the request;
    it completes when they record the departure, or, once the old area's
    registration deadline has passed, when a supervisor of the new area
    completes it with a reason.
    """

    __tablename__ = "transfers"
    __table_args__ = (
        sa.CheckConstraint(sql_in("status", TransferStatus), name="status_known"),
        sa.CheckConstraint(
            f"completion IS NULL OR {sql_in('completion', TransferCompletion)}",
            name="completion_known",
        ),
        sa.CheckConstraint(
            f"(status = '{TransferStatus.REQUESTED}') = (closed_at IS NULL)",
            name="closed_when_not_requested",
        ),
        sa.CheckConstraint(
            f"(status = '{TransferStatus.COMPLETED}')"
            " = (to_residence_id IS NOT NULL AND completion IS NOT NULL)",
            name="completed_has_residence",
        ),
        # One open request per person: a second desk asking waits for the first.
        sa.Index(
            "uq_transfers_open_person",
            "person_id",
            unique=True,
            sqlite_where=sa.text(f"status = '{TransferStatus.REQUESTED}'"),
            postgresql_where=sa.text(f"status = '{TransferStatus.REQUESTED}'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(sa.ForeignKey("persons.id"), index=True)
    from_residence_id: Mapped[int] = mapped_column(sa.ForeignKey("residences.id"), index=True)
    to_dwelling_id: Mapped[int] = mapped_column(sa.ForeignKey("dwellings.id"), index=True)
    arrived_on: Mapped[date]
    status: Mapped[str] = mapped_column(sa.String(16), default=TransferStatus.REQUESTED)
    requested_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: After this registry day a supervisor of the new area may complete it.
    due_on: Mapped[date]
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    completion: Mapped[str | None] = mapped_column(sa.String(16))
    #: A supervisor's reason, a cancellation's, or why the arrival failed.
    reason: Mapped[str | None] = mapped_column(sa.Text)
    to_residence_id: Mapped[int | None] = mapped_column(sa.ForeignKey("residences.id"))

    person: Mapped[Person] = relationship()
    from_residence: Mapped[Residence] = relationship(foreign_keys=[from_residence_id])
    to_dwelling: Mapped[Dwelling] = relationship()
    to_residence: Mapped[Residence | None] = relationship(foreign_keys=[to_residence_id])
