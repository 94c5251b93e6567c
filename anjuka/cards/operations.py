"""The card lifecycle: issue, revoke, return, reissue; departure revokes at once."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from anjuka.audit import operations as audit
from anjuka.cards.models import (
    LIVE_CARD_STATUSES,
    OPEN_STATUSES,
    Card,
    CardChip,
    CardJob,
    CardSerial,
    CardStatus,
    JobKind,
    JobStatus,
    Reader,
    RevocationReason,
    WithdrawalReason,
)
from anjuka.cards.readers import reader_area_code, reader_serves
from anjuka.core import signals
from anjuka.core.db import db
from anjuka.core.errors import AppError, Conflict
from anjuka.core.time import utcnow
from anjuka.dwellings.models import Dwelling
from anjuka.residences.models import Residence
from cardreader.cardno import MAX_SERIAL, make_card_no
from cardreader.record import AREA_CODE_SIZE


def _area_code(card: Card) -> str:
    return card.residence.dwelling.area.code


def withdraw_records(job: CardJob, reason: WithdrawalReason, *, uid: str | None = None) -> None:
    """The job's signed records (or the one for chip ``uid``) can no longer become the card.

    Their chips may hold them whole, so the offline bundle lists them until
    they expire (docs/card-format.md, section 9). The caller holds the job.
    """
    stmt = sa.update(CardChip).where(
        CardChip.job_id == job.id,
        CardChip.activated_at.is_(None),
        CardChip.withdrawn_at.is_(None),
    )
    if uid is not None:
        stmt = stmt.where(CardChip.uid == uid)
    db.session.execute(stmt.values(withdrawn_at=utcnow(), withdrawn_reason=reason))


def lock_card(card_id: int) -> Card:
    """Lock a card for a write: its residence row first, then the card (see jobs.py, "Locks")."""
    residence_id = db.session.scalar(sa.select(Card.residence_id).where(Card.id == card_id))
    db.session.execute(
        sa.select(Residence.id).where(Residence.id == residence_id).with_for_update()
    ).scalar_one()
    return db.session.execute(
        sa.select(Card)
        .where(Card.id == card_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def next_card_no() -> str:
    """Take the next printed card number (the counter row stays locked until commit)."""
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    db.session.execute(
        insert(CardSerial).values(id=1, last_serial=0).on_conflict_do_nothing(index_elements=["id"])
    )
    counter = db.session.execute(
        sa.select(CardSerial)
        .where(CardSerial.id == 1)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if counter.last_serial >= MAX_SERIAL:
        raise AppError(
            "Every printable card number is used.", code="card_numbers_exhausted", status=503
        )
    counter.last_serial += 1
    return make_card_no(counter.last_serial)


def live_card_of(person_id: int) -> Card | None:
    """The person's pending or active card, if any."""
    return db.session.scalar(
        sa.select(Card).where(Card.person_id == person_id, Card.status.in_(LIVE_CARD_STATUSES))
    )


def open_job_of(card: Card, *, for_update: bool = False) -> CardJob | None:
    """The card's queued or running job, if any."""
    query = sa.select(CardJob).where(CardJob.card_id == card.id, CardJob.status.in_(OPEN_STATUSES))
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return db.session.scalar(query)


def _queue(card: Card, reader: Reader, kind: JobKind) -> CardJob:
    job = CardJob(
        reader_id=reader.id,
        card=card,
        kind=kind,
        status=JobStatus.QUEUED,
        uid=card.uid if kind == JobKind.ERASE else None,
        card_type=card.card_type if kind == JobKind.ERASE else None,
    )
    db.session.add(job)
    db.session.flush()
    return job


def _require_serving(reader: Reader, dwelling: Dwelling) -> None:
    if not reader_serves(reader, dwelling):
        raise Conflict(
            f"Reader {reader.name!r} does not serve this dwelling.", code="reader_not_serving"
        )


def _queue_again(
    card: Card, reader: Reader, kind: JobKind, action: str, **details: object
) -> CardJob:
    """A job of ``kind`` for a card already made, at a reader that serves its dwelling; audited."""
    _require_serving(reader, card.residence.dwelling)
    job = _queue(card, reader, kind)
    audit.record(
        action,
        subject_type="card",
        subject_id=card.card_no,
        area_code=_area_code(card),
        details={"reader_id": reader.id, "job_id": job.id, **details},
    )
    return job


def issue_card(residence: Residence, reader: Reader) -> tuple[Card, CardJob]:
    """A pending card for a current residence and an issue job at ``reader``.

    The caller has locked the residence row, which serialises issuance for
    the person; the partial unique index on pending cards is the backstop.
    """
    if not residence.is_current:
        raise Conflict("This residence has ended: no card for it.", code="residence_ended")
    existing = live_card_of(residence.person_id)
    if existing is not None:
        raise Conflict(
            f"This person already has a {existing.status} card, {existing.card_no}.",
            code="card_exists",
            card_no=existing.card_no,
            card_status=existing.status,
        )
    dwelling = residence.dwelling
    _require_serving(reader, dwelling)
    area_code = dwelling.area.code
    if len(area_code) > AREA_CODE_SIZE:
        raise Conflict(
            f"Area code {area_code!r} is longer than the {AREA_CODE_SIZE} characters a card holds.",
            code="area_code_too_long",
        )
    card = Card(
        card_no=next_card_no(),
        residence_id=residence.id,
        person_id=residence.person_id,
        status=CardStatus.PENDING,
        issued_at=utcnow(),
    )
    try:
        with db.session.begin_nested():
            db.session.add(card)
    except IntegrityError:
        # Only a concurrent issuance that bypassed the residence lock gets here.
        raise Conflict("This person already has a pending card.", code="card_exists") from None
    card.residence = residence
    job = _queue(card, reader, JobKind.ISSUE)
    audit.record(
        "card.issue",
        subject_type="card",
        subject_id=card.card_no,
        area_code=area_code,
        details={
            "residence_id": residence.id,
            "person_id": residence.person_id,
            "reader_id": reader.id,
            "job_id": job.id,
        },
    )
    return card, job


def retry_issue(card: Card, reader: Reader) -> CardJob:
    """Queue a new issue job for a pending card whose last job failed or was cancelled."""
    if card.status != CardStatus.PENDING:
        raise Conflict(
            f"Card {card.card_no} is {card.status}, not pending.", code="card_not_pending"
        )
    running = open_job_of(card)
    if running is not None:
        raise Conflict(
            f"Job {running.id} for this card is still {running.status}.",
            code="job_in_progress",
            job_id=running.id,
        )
    return _queue_again(card, reader, JobKind.ISSUE, "card.issue_retry")


def revoke_card(card: Card, reason: str) -> Card:
    """Revoke at once (the caller has locked the card); a pending card's job is cancelled."""
    if card.status == CardStatus.REVOKED:
        raise Conflict(
            f"Card {card.card_no} is already revoked ({card.revocation_reason}).",
            code="card_revoked",
        )
    if card.status == CardStatus.RETURNED:
        raise Conflict(f"Card {card.card_no} has been returned.", code="card_returned")
    previous = card.status
    now = utcnow()
    card.status = CardStatus.REVOKED
    card.revocation_reason = reason
    card.revoked_at = now
    cancelled = None
    job = open_job_of(card, for_update=True)
    if job is not None and job.kind == JobKind.ISSUE:
        job.status = JobStatus.CANCELLED
        job.error = f"the card was revoked ({reason})"
        job.finished_at = now
        job.lease_expires_at = None
        withdraw_records(job, WithdrawalReason.CANCELLED)
        cancelled = job.id
    db.session.flush()
    audit.record(
        "card.revoke",
        subject_type="card",
        subject_id=card.card_no,
        area_code=_area_code(card),
        details={"reason": reason, "previous_status": previous, "cancelled_job_id": cancelled},
    )
    return card


def writer_of(card: Card) -> int | None:
    """The id of the reader that wrote the card's chip, if any."""
    return db.session.scalar(
        sa.select(CardJob.reader_id)
        .where(CardJob.card_id == card.id, CardJob.kind == JobKind.ISSUE, CardJob.uid == card.uid)
        .order_by(CardJob.id.desc())
        .limit(1)
    )


def return_card(card: Card, reader: Reader) -> CardJob:
    """Take a card back: queue the erase of its chip; it is returned once the erase is done.

    Asking again while the erase is queued or running answers with that job.
    """
    if card.status == CardStatus.RETURNED:
        raise Conflict(f"Card {card.card_no} has already been returned.", code="card_returned")
    if card.status == CardStatus.PENDING:
        raise Conflict(
            f"Card {card.card_no} is still pending: revoke it, then take it back.",
            code="card_pending",
        )
    if card.uid is None or card.card_type is None or card.card_key_id is None:
        raise Conflict(
            f"Card {card.card_no} was never written to a chip: nothing to erase.",
            code="card_not_written",
        )
    running = open_job_of(card)
    if running is not None and running.kind == JobKind.ERASE:
        return running
    return _queue_again(card, reader, JobKind.ERASE, "card.return_requested", uid=card.uid)


def take_back_on_departure(residence: Residence, reader: Reader) -> CardJob | None:
    """A departure with the card handed back: erase the residence's last written card.

    None when no card of the residence was ever written, or the last one is
    back already. The caller has locked the residence and recorded the
    departure (which revoked the card).
    """
    card = db.session.scalar(
        sa.select(Card)
        .where(Card.residence_id == residence.id, Card.uid.is_not(None))
        .order_by(Card.id.desc())
        .limit(1)
    )
    if card is None or card.status == CardStatus.RETURNED:
        return None
    return return_card(lock_card(card.id), reader)


def revoke_reader(reader: Reader) -> list[int]:
    """Disable a reader's token at once and cancel its open jobs; returns their ids.

    The caller has locked the reader row; each job is locked the way every
    card writer locks (residence, card, job), in residence order.
    """
    if not reader.active:
        raise Conflict(f"Reader {reader.name!r} is already revoked.", code="reader_revoked")
    now = utcnow()
    reader.active = False
    reader.revoked_at = now
    rows = db.session.execute(
        sa.select(CardJob.id, CardJob.card_id)
        .join(Card, CardJob.card_id == Card.id)
        .where(CardJob.reader_id == reader.id, CardJob.status.in_(OPEN_STATUSES))
        .order_by(Card.residence_id, CardJob.id)
    ).all()
    cancelled = []
    for job_id, card_id in rows:
        lock_card(card_id)
        job = db.session.execute(
            sa.select(CardJob)
            .where(CardJob.id == job_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()
        if job.status in OPEN_STATUSES:
            job.status = JobStatus.CANCELLED
            job.error = "the reader was revoked"
            job.finished_at = now
            job.lease_expires_at = None
            withdraw_records(job, WithdrawalReason.CANCELLED)
            cancelled.append(job.id)
    db.session.flush()
    audit.record(
        "reader.revoke",
        subject_type="reader",
        subject_id=reader.id,
        area_code=reader_area_code(reader),
        details={"name": reader.name, "cancelled_job_ids": cancelled},
    )
    return cancelled


def revoke_on_departure(residence: Residence, **_kwargs: object) -> None:
    """A departure revokes the residence's card at once (人走注销), in the same transaction."""
    cards = db.session.scalars(
        sa.select(Card)
        .where(Card.residence_id == residence.id, Card.status.in_(LIVE_CARD_STATUSES))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    for card in list(cards):
        revoke_card(card, RevocationReason.DEPARTED)


def connect() -> None:
    """Subscribe the card rules to the registry's signals."""
    signals.residence_departed.connect(revoke_on_departure)
