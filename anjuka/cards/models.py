"""Cards, desk readers and the card jobs queued for them.

The rules the database can hold live here: one active and one pending card
per person (partial unique indexes on the denormalised ``person_id``), one
open job per card, one active card per chip, and CHECKs on every status.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from anjuka.areas.models import Area
from anjuka.core.db import Model, db
from anjuka.core.models import UTCDateTime, sql_in
from anjuka.core.time import utcnow
from anjuka.dwellings.models import Estate
from anjuka.residences.models import Residence


class CardStatus(enum.StrEnum):
    """Where a card stands: pending until its chip is written and verified."""

    PENDING = "pending"
    ACTIVE = "active"
    REVOKED = "revoked"
    RETURNED = "returned"


class RevocationReason(enum.StrEnum):
    """Why a card was revoked."""

    DEPARTED = "departed"
    LOST = "lost"
    DAMAGED = "damaged"
    REPLACED = "replaced"
    EXPIRED = "expired"


class CardType(enum.StrEnum):
    """The chips the desk daemon writes."""

    CPU = "cpu"
    MIFARE1K = "mifare1k"


class JobKind(enum.StrEnum):
    """What a card job does: write a card, or wipe a returned one."""

    ISSUE = "issue"
    ERASE = "erase"


class JobStatus(enum.StrEnum):
    """Where a card job stands."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    AWAITING_RESULT = "awaiting_result"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ReportOutcome(enum.StrEnum):
    """What a daemon reports a job did on the card (docs/job-protocol.md)."""

    DONE = "done"
    FAILED = "failed"
    #: The card left mid-write: the job stays open.
    UNKNOWN = "unknown"


class WithdrawalReason(enum.StrEnum):
    """Why a signed record can no longer become the card (``CardChip.withdrawn_reason``)."""

    REBOUND = "rebound"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Cards that count toward "one per person" (the live ones).
LIVE_CARD_STATUSES = (CardStatus.PENDING, CardStatus.ACTIVE)
#: What a desk may give as the reason when it revokes a card by hand.
DESK_REVOCATION_REASONS = (
    RevocationReason.LOST,
    RevocationReason.DAMAGED,
    RevocationReason.REPLACED,
)
#: A daemon holds a lease on these.
HELD_STATUSES = (JobStatus.CLAIMED, JobStatus.AWAITING_RESULT)
OPEN_STATUSES = (JobStatus.QUEUED, *HELD_STATUSES)
FINISHED_STATUSES = (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


class Reader(Model):
    """A desk device: its own credential and the dwellings it serves.

    A reader scoped to an estate serves that estate's dwellings; one scoped
    to an area serves the dwellings of that area's subtree; an unscoped
    reader (a central desk) serves every dwelling.
    """

    __tablename__ = "readers"
    __table_args__ = (
        sa.CheckConstraint("area_id IS NULL OR estate_id IS NULL", name="one_scope"),
        sa.CheckConstraint("name <> ''", name="name_not_empty"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    #: SHA-256 of the device token; the token itself is printed once.
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    area_id: Mapped[int | None] = mapped_column(sa.ForeignKey("areas.id"), index=True)
    estate_id: Mapped[int | None] = mapped_column(sa.ForeignKey("estates.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Last long poll from its daemon (for a reader_offline alert).
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    area: Mapped[Area | None] = relationship()
    estate: Mapped[Estate | None] = relationship()


class ReaderDaemon(Model):
    """A desk daemon of a reader (by its ``holder``) and the last of its runs that ended.

    A daemon names its run (a fresh id at each start) in its long polls. When
    it stops it hands its jobs back and says which run is over; a poll of that
    run still open on the server then ends and claims nothing, so a stopping
    daemon is never handed a job it will not work on.
    """

    __tablename__ = "reader_daemons"
    __table_args__ = (sa.UniqueConstraint("reader_id", "holder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(sa.ForeignKey("readers.id"))
    #: The daemon's ``holder``; empty for the reader's anonymous daemon.
    holder: Mapped[str] = mapped_column(sa.String(64), default="")
    stopped_run: Mapped[str | None] = mapped_column(sa.String(64))
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CardSerial(Model):
    """The last printed card serial handed out: one row, locked while a number is taken."""

    __tablename__ = "card_serials"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_serial: Mapped[int] = mapped_column(default=0)


class Card(Model):
    """An Anju e-Card for one residence; pending until its chip is written and verified."""

    __tablename__ = "cards"
    __table_args__ = (
        sa.CheckConstraint(sql_in("status", CardStatus), name="status_known"),
        sa.CheckConstraint(
            "revocation_reason IS NULL OR " + sql_in("revocation_reason", RevocationReason),
            name="revocation_reason_known",
        ),
        sa.CheckConstraint(
            "card_type IS NULL OR " + sql_in("card_type", CardType), name="card_type_known"
        ),
        sa.CheckConstraint("length(card_no) = 11", name="card_no_length"),
        sa.CheckConstraint(
            "uid IS NULL OR (length(uid) BETWEEN 2 AND 64 AND length(uid) % 2 = 0)",
            name="uid_hex_length",
        ),
        sa.CheckConstraint(
            f"status <> '{CardStatus.REVOKED}'"
            " OR (revocation_reason IS NOT NULL AND revoked_at IS NOT NULL)",
            name="revoked_has_reason",
        ),
        sa.CheckConstraint(
            f"status NOT IN ('{CardStatus.PENDING}', '{CardStatus.ACTIVE}')"
            " OR revocation_reason IS NULL",
            name="live_has_no_reason",
        ),
        sa.CheckConstraint(
            f"status <> '{CardStatus.ACTIVE}' OR (uid IS NOT NULL AND card_type IS NOT NULL"
            " AND record IS NOT NULL AND activated_at IS NOT NULL)",
            name="active_is_written",
        ),
        sa.CheckConstraint(
            f"status <> '{CardStatus.RETURNED}' OR returned_at IS NOT NULL",
            name="returned_has_time",
        ),
        # At most one active card per person, and one pending, held by the database.
        sa.Index(
            "uq_cards_active_person",
            "person_id",
            unique=True,
            sqlite_where=sa.text(f"status = '{CardStatus.ACTIVE}'"),
            postgresql_where=sa.text(f"status = '{CardStatus.ACTIVE}'"),
        ),
        sa.Index(
            "uq_cards_pending_person",
            "person_id",
            unique=True,
            sqlite_where=sa.text(f"status = '{CardStatus.PENDING}'"),
            postgresql_where=sa.text(f"status = '{CardStatus.PENDING}'"),
        ),
        # One chip carries at most one active card.
        sa.Index(
            "uq_cards_active_uid",
            "uid",
            unique=True,
            sqlite_where=sa.text(f"status = '{CardStatus.ACTIVE}'"),
            postgresql_where=sa.text(f"status = '{CardStatus.ACTIVE}'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Printed number: "AJ" + 8 digits + ISO 7064 MOD 37,36 check character.
    card_no: Mapped[str] = mapped_column(sa.String(16), unique=True)
    residence_id: Mapped[int] = mapped_column(sa.ForeignKey("residences.id"), index=True)
    #: The residence's person, copied so the database can hold "one active card per person".
    person_id: Mapped[int] = mapped_column(sa.ForeignKey("persons.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default=CardStatus.PENDING)
    card_type: Mapped[str | None] = mapped_column(sa.String(16))
    #: Chip UID, lowercase hex: the chip the record is signed for.
    uid: Mapped[str | None] = mapped_column(sa.String(64))
    #: Signing key id of the record (the record carries it too).
    key_id: Mapped[int | None]
    #: Card master key id the per-card keys were derived from (an erase needs the same).
    card_key_id: Mapped[str | None] = mapped_column(sa.String(16))
    #: The signed record (docs/card-format.md) for ``uid``.
    record: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    revocation_reason: Mapped[str | None] = mapped_column(sa.String(16))
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    #: Last day the record is valid (its ``valid_until``).
    expires_on: Mapped[date | None]

    residence: Mapped[Residence] = relationship()

    @property
    def latest_job(self) -> CardJob | None:
        """The card's newest job (its issue, a retry, or its erase), if any."""
        return db.session.scalar(
            sa.select(CardJob)
            .where(CardJob.card_id == self.id)
            .order_by(CardJob.id.desc())
            .limit(1)
        )


class CardJob(Model):
    """Work for a desk reader: write a card (issue) or wipe a returned one (erase)."""

    __tablename__ = "card_jobs"
    __table_args__ = (
        sa.CheckConstraint(sql_in("kind", JobKind), name="kind_known"),
        sa.CheckConstraint(sql_in("status", JobStatus), name="status_known"),
        sa.CheckConstraint(
            "card_type IS NULL OR " + sql_in("card_type", CardType), name="card_type_known"
        ),
        sa.CheckConstraint("attempt >= 0", name="attempt_not_negative"),
        sa.CheckConstraint(
            "uid IS NULL OR (length(uid) BETWEEN 2 AND 64 AND length(uid) % 2 = 0)",
            name="uid_hex_length",
        ),
        sa.CheckConstraint(
            f"({sql_in('status', FINISHED_STATUSES)}) = (finished_at IS NOT NULL)",
            name="finished_when_final",
        ),
        sa.CheckConstraint(
            f"NOT ({sql_in('status', HELD_STATUSES)}) OR lease_expires_at IS NOT NULL",
            name="held_has_lease",
        ),
        sa.CheckConstraint(f"kind <> '{JobKind.ERASE}' OR uid IS NOT NULL", name="erase_knows_uid"),
        # One open job per card: a second issue or erase waits for the first to end.
        sa.Index(
            "uq_card_jobs_open_card",
            "card_id",
            unique=True,
            sqlite_where=sa.text(f"{sql_in('status', OPEN_STATUSES)}"),
            postgresql_where=sa.text(f"{sql_in('status', OPEN_STATUSES)}"),
        ),
        sa.Index("ix_card_jobs_reader_id_status", "reader_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(sa.ForeignKey("readers.id"))
    card_id: Mapped[int] = mapped_column(sa.ForeignKey("cards.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(8))
    status: Mapped[str] = mapped_column(sa.String(16), default=JobStatus.QUEUED)
    #: How many times a daemon has claimed the job.
    attempt: Mapped[int] = mapped_column(default=0)
    #: Which daemon process holds it (the ``holder`` it polls with), if it said.
    holder: Mapped[str | None] = mapped_column(sa.String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Issue: the chip the record was signed for. Erase: the chip that must be wiped.
    uid: Mapped[str | None] = mapped_column(sa.String(64))
    card_type: Mapped[str | None] = mapped_column(sa.String(16))
    #: Issue: the signed record handed out for ``uid``.
    record: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    #: Fingerprint of the last report applied, so a repeated report has no second effect.
    report_digest: Mapped[str | None] = mapped_column(sa.String(64))
    #: The last failure, readable by the desk.
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    reader: Mapped[Reader] = relationship()
    card: Mapped[Card] = relationship()

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class CardChip(Model):
    """A record the server signed for one chip: the card once activated, else withdrawn.

    Every signing is a row. A record that can no longer become the card (its
    job bound another chip, failed for good, or was cancelled) is withdrawn:
    its chip may hold it whole, signed for that chip, so the offline bundle
    lists it (``withdrawn``) until it expires. The digest is unique: a record
    once withdrawn is never signed again (the signature is deterministic, so
    the server varies the record instead, see ``jobs.bind_uid``).
    """

    __tablename__ = "card_chips"
    __table_args__ = (
        sa.CheckConstraint(
            "withdrawn_reason IS NULL OR " + sql_in("withdrawn_reason", WithdrawalReason),
            name="withdrawn_reason_known",
        ),
        sa.CheckConstraint(
            "(withdrawn_at IS NULL) = (withdrawn_reason IS NULL)", name="withdrawn_has_reason"
        ),
        sa.CheckConstraint(
            "activated_at IS NULL OR withdrawn_at IS NULL", name="activated_or_withdrawn"
        ),
        sa.CheckConstraint(
            "length(uid) BETWEEN 2 AND 64 AND length(uid) % 2 = 0", name="uid_hex_length"
        ),
        sa.CheckConstraint("length(record_digest) = 64", name="record_digest_length"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    card_id: Mapped[int] = mapped_column(sa.ForeignKey("cards.id"), index=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("card_jobs.id"), index=True)
    #: The chip the record is signed for, lowercase hex.
    uid: Mapped[str] = mapped_column(sa.String(64))
    #: SHA-256 of the whole signed record (113 bytes), lowercase hex: what the bundle lists.
    record_digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    valid_until: Mapped[date]
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    withdrawn_reason: Mapped[str | None] = mapped_column(sa.String(16))
