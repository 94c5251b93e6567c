"""Alerts and the sweep's cursor."""

from __future__ import annotations

import enum
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from anjuka.areas.models import Area
from anjuka.core.db import Model
from anjuka.core.models import UTCDateTime, sql_in
from anjuka.core.time import utcnow


class Severity(enum.StrEnum):
    """How urgent an alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(enum.StrEnum):
    """Where an alert stands."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


#: Every kind of alert, with its default severity.
ALERT_KINDS: dict[str, Severity] = {
    "over_occupancy": Severity.WARNING,
    "illegal_dwelling_occupied": Severity.CRITICAL,
    "revoked_card_presented": Severity.WARNING,
    "clone_suspected": Severity.CRITICAL,
    "card_not_returned": Severity.INFO,
    "late_registration": Severity.INFO,
    "registration_expiring": Severity.INFO,
    "card_expiring": Severity.INFO,
    "reader_offline": Severity.WARNING,
    "transfer_requested": Severity.INFO,
    "bulk_lookup": Severity.WARNING,
}
#: Statuses in which an alert is still "open" for the one-per-subject rule.
LIVE_STATUSES = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)
LIVE_PREDICATE = sql_in("status", LIVE_STATUSES)


class Alert(Model):
    """Something the registry noticed by itself, about one subject.

    At most one live (open or acknowledged) alert per kind and subject,
    held by a partial unique index; a repeat updates it (``count``,
    ``last_seen_at``) instead of adding another.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        sa.CheckConstraint(sql_in("kind", ALERT_KINDS), name="kind_known"),
        sa.CheckConstraint(sql_in("severity", Severity), name="severity_known"),
        sa.CheckConstraint(sql_in("status", AlertStatus), name="status_known"),
        sa.CheckConstraint("count >= 1", name="count_positive"),
        sa.CheckConstraint(
            f"(status = '{AlertStatus.RESOLVED}') = (resolved_at IS NOT NULL)",
            name="resolved_has_time",
        ),
        sa.CheckConstraint(
            f"status <> '{AlertStatus.ACKNOWLEDGED}' OR acknowledged_at IS NOT NULL",
            name="acknowledged_has_time",
        ),
        sa.CheckConstraint(
            f"NOT auto_resolved OR status = '{AlertStatus.RESOLVED}'", name="auto_only_resolved"
        ),
        sa.Index(
            "uq_alerts_live_subject",
            "kind",
            "subject_type",
            "subject_id",
            unique=True,
            sqlite_where=sa.text(LIVE_PREDICATE),
            postgresql_where=sa.text(LIVE_PREDICATE),
        ),
        sa.Index("ix_alerts_subject", "subject_type", "subject_id", "kind"),
        sa.Index("ix_alerts_status_last_seen_at", "status", "last_seen_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    #: What the alert is about: "dwelling", "residence", "card", "reader", "user".
    subject_type: Mapped[str] = mapped_column(sa.String(32))
    subject_id: Mapped[str] = mapped_column(sa.String(64))
    #: For alerts the sweep raises: which occurrence (a departure date, an
    #: expiry date, a reader's last contact), so a rerun never raises it twice.
    occurrence: Mapped[str | None] = mapped_column(sa.String(64))
    #: Scoping: supervisors and officers see alerts of their area subtrees.
    area_id: Mapped[int | None] = mapped_column(sa.ForeignKey("areas.id"), index=True)
    severity: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16), default=AlertStatus.OPEN)
    details: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    count: Mapped[int] = mapped_column(default=1)
    #: The last note written by whoever acknowledged or resolved it.
    note: Mapped[str | None] = mapped_column(sa.Text)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    #: Resolved by the registry itself because the cause is gone.
    auto_resolved: Mapped[bool] = mapped_column(default=False)

    area: Mapped[Area | None] = relationship()

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


class SweepCursor(Model):
    """Where the time sweep got to, per check, so a run scans only what is new."""

    __tablename__ = "sweep_cursors"

    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    #: The ``--as-of`` day of the last run.
    last_as_of: Mapped[date]
    #: Wall-clock start of the last run: records written since then are new.
    last_run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    runs: Mapped[int] = mapped_column(default=0)
