"""The job queue between the server and the desk daemons (docs/job-protocol.md).

A daemon claims a job with a lease; on PostgreSQL the claim is a
``SELECT ... FOR UPDATE SKIP LOCKED``, so two daemons never take one job. A
lease that runs out puts the job back for another attempt, up to
``MAX_ATTEMPTS``, after which it fails with a reason the desk can read.

Every step is idempotent by job id: the same UID gets the same record, the
same report gets the same answer.

Locks: every writer of a card or job takes the residence row, then the card,
then the job, and appends to the area's audit chain last. A departure locks
the residence, appends its own event, then revokes the card; taking the
residence first everywhere keeps that from deadlocking with a report. The
claim takes only job rows (SKIP LOCKED) and never waits on an audit chain.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from anjuka.areas.operations import effective_policy
from anjuka.audit import operations as audit
from anjuka.cards.models import (
    FINISHED_STATUSES,
    HELD_STATUSES,
    Card,
    CardChip,
    CardJob,
    CardStatus,
    JobKind,
    JobStatus,
    ReaderDaemon,
    ReportOutcome,
    WithdrawalReason,
)
from anjuka.cards.operations import lock_card, withdraw_records
from anjuka.cards.signing import SignedRecord, card_keys, sign_card_record
from anjuka.core import signals
from anjuka.core.db import db
from anjuka.core.errors import Conflict
from anjuka.core.keys import keyring
from anjuka.core.time import local_today, utcnow
from cardreader.offline import record_digest
from cardreader.record import RecordError, verify_record

LEASE = timedelta(seconds=120)
MAX_ATTEMPTS = 5
#: Longest long poll, in seconds, and how often it looks at the queue meanwhile.
MAX_WAIT = 30.0
POLL_INTERVAL = 0.5
MAX_ERROR_LENGTH = 500


def _area_code(card: Card) -> str:
    return card.residence.dwelling.area.code


class AttemptRefused(Conflict):
    """A refusal that also ends the daemon's attempt: the job's new state is kept."""

    def __init__(self, message: str, **kwargs: object) -> None:
        super().__init__(message, keep_writes=True, **kwargs)  # type: ignore[arg-type]


def _finish(job: CardJob, status: JobStatus, error: str | None = None) -> None:
    job.status = status
    job.finished_at = utcnow()
    job.lease_expires_at = None
    if error is not None:
        job.error = error


def _fail_attempt(job: CardJob, error: str) -> None:
    """Record a failed attempt: back in the queue, or failed for good after the last one.

    Not an audit event: the job row is the record, and the lease sweep inside
    ``claim_next`` must not wait on an area's audit chain while it holds a job
    row (see "Locks" in the module docstring).
    """
    job.error = error[:MAX_ERROR_LENGTH]
    if job.attempt >= MAX_ATTEMPTS:
        _finish(job, JobStatus.FAILED)
        withdraw_records(job, WithdrawalReason.FAILED)
        return
    job.status = JobStatus.QUEUED
    job.holder = None
    job.lease_expires_at = None


def claim_next(reader_id: int, holder: str | None) -> CardJob | None:
    """The job this daemon should work on now, leased to it; None when there is none.

    A job the same holder already holds (a daemon that restarted) is handed
    out again as it is; otherwise the oldest queued job, or one whose lease
    ran out, is claimed for another attempt.
    """
    now = utcnow()
    held = db.session.scalar(
        sa.select(CardJob)
        .where(
            CardJob.reader_id == reader_id,
            CardJob.status.in_(HELD_STATUSES),
            CardJob.lease_expires_at > now,
            CardJob.holder.is_not_distinct_from(holder),
        )
        .order_by(CardJob.id)
        .limit(1)
    )
    if held is not None:
        return held
    while True:
        job = db.session.scalar(
            sa.select(CardJob)
            .where(
                CardJob.reader_id == reader_id,
                sa.or_(
                    CardJob.status == JobStatus.QUEUED,
                    sa.and_(CardJob.status.in_(HELD_STATUSES), CardJob.lease_expires_at <= now),
                ),
            )
            .order_by(CardJob.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        if job is None:
            return None
        if job.status in HELD_STATUSES and job.attempt >= MAX_ATTEMPTS:
            _fail_attempt(
                job,
                f"The desk daemon did not finish the job within its lease {job.attempt} times.",
            )
            continue
        job.status = JobStatus.CLAIMED
        job.attempt += 1
        job.holder = holder
        job.claimed_at = now
        job.lease_expires_at = now + LEASE
        db.session.flush()
        return job


def _insert():
    return pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert


def register_run(reader_id: int, holder: str | None) -> None:
    """Make sure the daemon's row exists, so that :func:`run_is_over` has a row to lock."""
    db.session.execute(
        _insert()(ReaderDaemon)
        .values(reader_id=reader_id, holder=holder or "")
        .on_conflict_do_nothing(index_elements=["reader_id", "holder"])
    )


def run_is_over(reader_id: int, holder: str | None, run: str) -> bool:
    """Whether the daemon said ``run`` is over; holds its row shared until commit.

    The shared lock orders a poll against a release: a release waits for the
    poll's claim to commit (and then hands that job back), or a poll that
    comes second sees the run over and claims nothing.
    """
    stopped = db.session.scalar(
        sa.select(ReaderDaemon.stopped_run)
        .where(ReaderDaemon.reader_id == reader_id, ReaderDaemon.holder == (holder or ""))
        .with_for_update(read=True)
    )
    return stopped == run


def release_jobs(reader_id: int, holder: str | None, run: str | None) -> list[int]:
    """A stopping daemon hands back the jobs it claimed but did no card work on.

    Each such job goes back to the queue with its attempt given back (it
    never started), so the next daemon takes it at once instead of after the
    lease. A job whose chip was already bound (``awaiting_result``) stays
    with its holder: its journal finishes it at restart, or the lease hands
    it on. With ``run``, that run's polls still open end and claim nothing.
    """
    if run is not None:
        stmt = _insert()(ReaderDaemon).values(
            reader_id=reader_id, holder=holder or "", stopped_run=run, stopped_at=utcnow()
        )
        db.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["reader_id", "holder"],
                set_={
                    "stopped_run": stmt.excluded.stopped_run,
                    "stopped_at": stmt.excluded.stopped_at,
                },
            )
        )
    rows = db.session.execute(
        sa.select(CardJob.id, Card.residence_id)
        .join(Card, CardJob.card_id == Card.id)
        .where(
            CardJob.reader_id == reader_id,
            CardJob.status == JobStatus.CLAIMED,
            CardJob.holder.is_not_distinct_from(holder),
        )
        .order_by(Card.residence_id, CardJob.id)
    ).all()
    released = []
    for job_id, _ in rows:
        job = lock_job(job_id)
        if job.status != JobStatus.CLAIMED or job.holder != holder:
            continue  # it moved on meanwhile
        job.status = JobStatus.QUEUED
        job.holder = None
        job.lease_expires_at = None
        job.attempt -= 1
        released.append(job.id)
    db.session.flush()
    return released


def is_erase(job: CardJob) -> bool:
    """Whether the job wipes a returned card (rather than writing one)."""
    return job.kind == JobKind.ERASE


def lease_seconds(job: CardJob) -> int:
    """Whole seconds left on the job's lease (0 when it holds none)."""
    remaining = (job.lease_expires_at - utcnow()).total_seconds() if job.lease_expires_at else 0
    return max(0, int(remaining))


def erase_keys(job: CardJob) -> dict[str, str] | None:
    """The chip's keys an erase needs to wipe it; None for an issue."""
    card = job.card
    if is_erase(job) and job.uid and job.card_type and card.card_key_id:
        return card_keys(bytes.fromhex(job.uid), job.card_type, card.card_key_id)
    return None


def lock_job(job_id: int) -> CardJob:
    """Lock the job's residence, card and job rows, in the order every writer uses."""
    card_id = db.session.execute(
        sa.select(CardJob.card_id).where(CardJob.id == job_id)
    ).scalar_one()
    lock_card(card_id)
    return db.session.execute(
        sa.select(CardJob)
        .where(CardJob.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def _refuse_finished(job: CardJob) -> None:
    raise Conflict(
        f"Job {job.id} has ended ({job.status}).",
        code="job_finished",
        job_status=job.status,
        job_error=job.error,
    )


def _check_holder(job: CardJob, holder: str | None, attempt: int | None) -> None:
    if job.status not in HELD_STATUSES:
        raise Conflict(
            f"Job {job.id} is not held by a daemon; poll for it first.", code="job_not_held"
        )
    if holder is not None and job.holder is not None and holder != job.holder:
        raise Conflict(f"Job {job.id} is held by another daemon.", code="job_held_elsewhere")
    if attempt is not None and attempt != job.attempt:
        raise Conflict(
            f"Attempt {attempt} of job {job.id} is over; it is at attempt {job.attempt}.",
            code="stale_attempt",
        )


def _uid_answer(job: CardJob) -> dict:
    card = job.card
    uid, card_type, record = _bound_chip(job)
    return {
        "job_id": job.id,
        "card_no": card.card_no,
        "record": record.hex(),
        "keys": card_keys(uid, card_type, card.card_key_id),
        "key_id": card.key_id,
        "valid_until": card.expires_on,
    }


def bind_uid(
    job: CardJob, uid: str, card_type: str, *, holder: str | None, attempt: int | None
) -> dict:
    """Phase one of an issuance: sign the record for the chip the daemon found.

    The same UID gets the same record back; another UID (another card was
    inserted) binds the job to that chip instead.
    """
    if job.kind != JobKind.ISSUE:
        raise Conflict(f"Job {job.id} is an {job.kind} job: it takes no UID.", code="not_an_issue")
    if job.status == JobStatus.DONE and job.uid == uid:
        return _uid_answer(job)
    if job.status in FINISHED_STATUSES:
        _refuse_finished(job)
    card = job.card
    if card.status != CardStatus.PENDING:
        raise Conflict(f"Card {card.card_no} is {card.status}.", code="card_not_pending")
    _check_holder(job, holder, attempt)
    if job.uid == uid and job.record is not None:
        _renew_binding(job, card_type)
    else:
        _refuse_chip_in_use(job, uid)
        _bind_chip(job, uid, card_type)
    return _uid_answer(job)


def _renew_binding(job: CardJob, card_type: str) -> None:
    """The same chip again (a lost answer, a restarted daemon): same record, lease renewed."""
    job.card_type = job.card.card_type = card_type
    job.status = JobStatus.AWAITING_RESULT
    now = utcnow()
    job.lease_expires_at = max(job.lease_expires_at or now, now + LEASE)
    db.session.flush()


def _refuse_chip_in_use(job: CardJob, uid: str) -> None:
    """A chip that carries another active card ends the attempt (``uid_in_use``)."""
    in_use = db.session.scalar(
        sa.select(Card.card_no).where(
            Card.uid == uid, Card.status == CardStatus.ACTIVE, Card.id != job.card_id
        )
    )
    if in_use is not None:
        message = f"This chip carries active card {in_use}: return that card before reusing it."
        _fail_attempt(job, message)
        db.session.flush()
        raise AttemptRefused(message, code="uid_in_use", card_no=in_use)


def _bind_chip(job: CardJob, uid: str, card_type: str) -> None:
    """Sign a record for chip ``uid``, withdrawing the one signed for the chip before."""
    card = job.card
    area = card.residence.dwelling.area
    previous_uid = job.uid
    if previous_uid is not None:
        # The record for the chip before may be on it, whole: it must never read valid.
        withdraw_records(job, WithdrawalReason.REBOUND, uid=previous_uid)
    signed = _sign_anew(card, uid, effective_policy(area).card_validity_days)
    db.session.add(
        CardChip(
            card_id=card.id,
            job_id=job.id,
            uid=uid,
            record_digest=record_digest(signed.data),
            valid_until=signed.valid_until,
            signed_at=utcnow(),
        )
    )
    job.uid = card.uid = uid
    job.card_type = card.card_type = card_type
    job.record = signed.data
    card.key_id = signed.key_id
    card.card_key_id = keyring().card_master[0]
    card.expires_on = signed.valid_until
    job.status = JobStatus.AWAITING_RESULT
    job.lease_expires_at = utcnow() + LEASE
    db.session.flush()
    audit.record(
        "card.sign",
        subject_type="card",
        subject_id=card.card_no,
        area_code=area.code,
        details={
            "job_id": job.id,
            "uid": uid,
            "card_type": card_type,
            "key_id": signed.key_id,
            "valid_until": signed.valid_until.isoformat(),
            "rebound_from": previous_uid,
        },
    )


def _bound_chip(job: CardJob) -> tuple[bytes, str, bytes]:
    """The chip a job is bound to (its UID, its type) and the record signed for it.

    Asked only of a job whose UID was bound: a job without one here is a bug.
    """
    if job.uid is None or job.card_type is None or job.record is None:
        raise RuntimeError(f"job {job.id} is bound to no chip")
    return bytes.fromhex(job.uid), job.card_type, job.record


def _sign_anew(card: Card, uid: str, validity_days: int) -> SignedRecord:
    """Sign the card's record for chip ``uid``: never bytes signed before.

    Ed25519 is deterministic, so the same card on the same chip on the same
    day would sign exactly a record already withdrawn (a retry on the chip
    that holds it), which laptops refuse offline. One day less of validity
    makes it another record.
    """
    residence = card.residence
    area_code = residence.dwelling.area.code
    for days in range(validity_days, -1, -1):
        signed = sign_card_record(
            card.card_no, residence.id, area_code, bytes.fromhex(uid), local_today(), days
        )
        taken = db.session.scalar(
            sa.select(CardChip.id).where(CardChip.record_digest == record_digest(signed.data))
        )
        if taken is None:
            return signed
    raise Conflict(
        f"This chip was given card {card.card_no} too often today; use another chip.",
        code="chip_retries_exhausted",
    )


def _report_digest(report: dict) -> str:
    """A fingerprint of a report, to know it again when it is repeated."""
    canonical = json.dumps(report, sort_keys=True, default=str).encode()
    return hashlib.sha256(canonical).hexdigest()


def _activate(job: CardJob) -> None:
    card = job.card
    other = db.session.scalar(
        sa.select(Card.card_no).where(
            Card.uid == job.uid, Card.status == CardStatus.ACTIVE, Card.id != card.id
        )
    )
    if other is not None:
        _fail_attempt(job, f"The chip carries active card {other}; return that card first.")
        return
    uid, _, record = _bound_chip(job)
    try:
        verify_record(record, uid, keyring().signing_public_keys())
    except RecordError as exc:
        # Only a key removed from the ring since signing can get here.
        _fail_attempt(job, f"The signed record no longer verifies: {exc}")
        return
    now = utcnow()
    card.status = CardStatus.ACTIVE
    card.activated_at = now
    card.record = record
    db.session.execute(
        sa.update(CardChip)
        .where(CardChip.job_id == job.id, CardChip.record_digest == record_digest(record))
        .values(activated_at=now)
    )
    withdraw_records(
        job, WithdrawalReason.REBOUND
    )  # none should be left: each rebind withdrew its own
    _finish(job, JobStatus.DONE)
    job.error = None
    db.session.flush()
    audit.record(
        "card.activate",
        subject_type="card",
        subject_id=card.card_no,
        area_code=_area_code(card),
        details={"job_id": job.id, "uid": job.uid, "card_type": job.card_type},
    )


def _complete_erase(job: CardJob) -> None:
    card = job.card
    now = utcnow()
    previous = card.status
    card.status = CardStatus.RETURNED
    card.returned_at = now
    card.revoked_at = card.revoked_at or now
    _finish(job, JobStatus.DONE)
    job.error = None
    db.session.flush()
    audit.record(
        "card.return",
        subject_type="card",
        subject_id=card.card_no,
        area_code=_area_code(card),
        details={"job_id": job.id, "uid": job.uid, "previous_status": previous},
    )
    signals.card_returned.send(card)


def _keep_waiting(job: CardJob, error: str) -> None:
    """The job stays with its daemon (card gone mid-write, wrong card presented)."""
    job.error = error[:MAX_ERROR_LENGTH]
    job.lease_expires_at = max(job.lease_expires_at or utcnow(), utcnow() + LEASE)


def _matches(job: CardJob, uid: str | None, record: str | None) -> bool:
    """Whether a done report shows exactly what the job asked for on its chip."""
    if uid is None or uid != job.uid:
        return False
    return job.kind == JobKind.ERASE or (job.record is not None and record == job.record.hex())


def report_result(job: CardJob, report: dict, *, holder: str | None) -> CardJob:
    """Phase two: what the daemon did. The card becomes active only on a verified write.

    A verified write counts whenever it arrives while the job is open, even
    after its lease ran out: the chip holds what was signed for it. Other
    reports need the job held; a failure counts once per attempt.
    """
    outcome = report["outcome"]
    uid = report.get("uid")
    error = (report.get("error") or "").strip()
    attempt = report.get("attempt")
    if outcome == ReportOutcome.DONE and _matches(job, uid, report.get("record")):
        if job.status == JobStatus.DONE:
            return job  # the same success again
        if job.status in FINISHED_STATUSES:
            _refuse_finished(job)
        if job.kind == JobKind.ISSUE:
            _activate(job)
        else:
            _complete_erase(job)
        db.session.flush()
        return job
    # The attempt is part of the fingerprint: the same failure on the next attempt is news.
    fingerprint = {k: v for k, v in report.items() if k != "attempt"}
    digest = _report_digest({**fingerprint, "at": attempt or job.attempt})
    if job.report_digest == digest:
        return job  # the same report again: same answer, no second effect
    if job.status in FINISHED_STATUSES:
        _refuse_finished(job)
    _check_holder(job, holder, attempt)
    wrong_card = job.kind == JobKind.ERASE and (
        outcome == ReportOutcome.DONE or error.startswith("wrong_card")
    )
    if wrong_card:
        _keep_waiting(job, f"wrong_card: the card in the reader is not {job.uid}.")
    elif outcome == ReportOutcome.UNKNOWN:
        _keep_waiting(job, f"outcome unknown (the card left mid-write): {error or 'no detail'}")
    else:
        job.report_digest = digest
        if outcome == ReportOutcome.FAILED:
            reason = error or "The daemon reported a failure without a reason."
        elif job.uid is None:
            reason = "The daemon reported a write before it sent the chip's UID."
        elif uid != job.uid:
            reason = f"The daemon reported chip {uid}, but the record was signed for {job.uid}."
        else:
            reason = "The record read back does not match the record signed for the card."
        _fail_attempt(job, reason)
    db.session.flush()
    return job
