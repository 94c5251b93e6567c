"""Raising, repeating, acknowledging and resolving alerts.

Everything here runs in the caller's transaction and only flushes: an alert
raised by an event commits or rolls back with the event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from anjuka.alerts.models import ALERT_KINDS, LIVE_PREDICATE, LIVE_STATUSES, Alert, AlertStatus
from anjuka.audit import operations as audit
from anjuka.cards.models import Card, CardStatus
from anjuka.core import signals
from anjuka.core.db import db
from anjuka.core.errors import Conflict
from anjuka.core.security import Identity
from anjuka.core.time import local_date, utcnow
from anjuka.residences.models import Residence

#: What an automatic resolution writes in the note.
CAUSE_GONE = "resolved: cause gone"


@dataclass(frozen=True)
class Raised:
    """The live alert after a raise, and whether this raise created it."""

    alert: Alert
    created: bool


def merge_details(old: dict, new: dict) -> dict:
    """Later facts win, except ``causes``, which accumulate."""
    merged = {**old, **new}
    if "causes" in old or "causes" in new:
        merged["causes"] = sorted(set(old.get("causes", [])) | set(new.get("causes", [])))
    return merged


def raise_alert(
    kind: str,
    subject_type: str,
    subject_id: object,
    *,
    area_id: int | None,
    details: dict | None = None,
    occurrence: str | None = None,
    severity: str | None = None,
    at: datetime | None = None,
) -> Raised:
    """Open an alert, or repeat the live one of the same kind and subject.

    One ``INSERT .. ON CONFLICT`` against the partial unique index decides
    atomically, so two transactions raising the same alert at once end with
    one alert whose count is two, on PostgreSQL and SQLite alike.
    """
    if kind not in ALERT_KINDS:
        raise ValueError(f"unknown alert kind {kind!r}")
    now = at or utcnow()
    details = details or {}
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Alert).values(
        kind=kind,
        subject_type=subject_type,
        subject_id=str(subject_id),
        occurrence=occurrence,
        area_id=area_id,
        severity=severity or ALERT_KINDS[kind],
        status=AlertStatus.OPEN,
        details=details,
        first_seen_at=now,
        last_seen_at=now,
        count=1,
        auto_resolved=False,
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=["kind", "subject_type", "subject_id"],
        index_where=sa.text(LIVE_PREDICATE),
        set_={
            "count": Alert.__table__.c["count"] + 1,
            "last_seen_at": stmt.excluded.last_seen_at,
            "occurrence": stmt.excluded.occurrence,
            "area_id": stmt.excluded.area_id,
        },
    ).returning(Alert.__table__.c["id"], Alert.__table__.c["count"])
    alert_id, count = db.session.execute(upsert).one()
    alert = db.session.get_one(Alert, alert_id, populate_existing=True)
    created = count == 1
    if not created:
        alert.details = merge_details(alert.details or {}, details)
        db.session.flush()
    else:
        signals.alert_raised.send(alert)
    return Raised(alert, created)


def has_occurred(kind: str, subject_type: str, subject_id: object, occurrence: str) -> bool:
    """Whether this occurrence was ever raised (in any status)."""
    return (
        db.session.scalar(
            sa.select(Alert.id)
            .where(
                Alert.kind == kind,
                Alert.subject_type == subject_type,
                Alert.subject_id == str(subject_id),
                Alert.occurrence == occurrence,
            )
            .limit(1)
        )
        is not None
    )


def raise_once(
    kind: str,
    subject_type: str,
    subject_id: object,
    occurrence: str,
    *,
    area_id: int | None,
    details: dict | None = None,
    at: datetime | None = None,
) -> Raised | None:
    """Raise an occurrence that time alone triggers, unless it was raised before.

    A supervisor who resolved a card-not-returned alert does not see it come
    back on the next sweep; a new occurrence (another departure, a later
    expiry) is a new alert.
    """
    if has_occurred(kind, subject_type, subject_id, occurrence):
        return None
    return raise_alert(
        kind,
        subject_type,
        subject_id,
        area_id=area_id,
        details=details,
        occurrence=occurrence,
        at=at,
    )


def live_alert(kind: str, subject_type: str, subject_id: object) -> Alert | None:
    """The open or acknowledged alert of this kind and subject, if any."""
    return db.session.scalar(
        sa.select(Alert).where(
            Alert.kind == kind,
            Alert.subject_type == subject_type,
            Alert.subject_id == str(subject_id),
            Alert.status.in_(LIVE_STATUSES),
        )
    )


def auto_resolve(alert: Alert, why: str, *, at: datetime | None = None) -> Alert:
    """Resolve ``alert`` because its cause is gone, and say so."""
    alert.status = AlertStatus.RESOLVED
    alert.resolved_at = at or utcnow()
    alert.resolved_by_id = None
    alert.auto_resolved = True
    alert.note = f"{CAUSE_GONE}: {why}"
    db.session.flush()
    return alert


def resolve_if_live(
    kind: str, subject_type: str, subject_id: object, why: str, *, at: datetime | None = None
) -> Alert | None:
    """Automatically resolve the live alert of this kind and subject, if there is one."""
    alert = live_alert(kind, subject_type, subject_id)
    return auto_resolve(alert, why, at=at) if alert is not None else None


def _audit(alert: Alert, action: str, note: str | None) -> None:
    audit.record(
        action,
        subject_type="alert",
        subject_id=alert.id,
        area_code=alert.area.code if alert.area is not None else None,
        details={"kind": alert.kind, "status": alert.status, "note": note},
    )


def acknowledge(identity: Identity, alert: Alert, note: str | None) -> Alert:
    """A supervisor has seen the alert and is on it."""
    if alert.status != AlertStatus.OPEN:
        raise Conflict(f"The alert is {alert.status}.", code=f"alert_{alert.status}")
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_at = utcnow()
    alert.acknowledged_by_id = identity.id
    if note:
        alert.note = note
    db.session.flush()
    _audit(alert, "alert.acknowledge", note)
    return alert


def resolve(identity: Identity, alert: Alert, note: str) -> Alert:
    """A supervisor closes the alert with a note."""
    if alert.status == AlertStatus.RESOLVED:
        raise Conflict("The alert is already resolved.", code="alert_resolved")
    alert.status = AlertStatus.RESOLVED
    alert.resolved_at = utcnow()
    alert.resolved_by_id = identity.id
    alert.auto_resolved = False
    alert.note = note
    db.session.flush()
    _audit(alert, "alert.resolve", note)
    return alert


# -- shared by the event handlers and the sweep ------------------------------------


def raise_late_registration(residence: Residence) -> Raised | None:
    """``late_registration`` for a residence registered after its deadline (once)."""
    return raise_once(
        "late_registration",
        "residence",
        residence.id,
        occurrence=residence.arrived_on.isoformat(),
        area_id=residence.dwelling.area_id,
        details={
            "dwelling_id": residence.dwelling_id,
            "arrived_on": residence.arrived_on.isoformat(),
            "registration_deadline": residence.registration_deadline.isoformat()
            if residence.registration_deadline
            else None,
            "registered_on": local_date(residence.registered_at).isoformat()
            if residence.registered_at
            else None,
        },
    )


def cards_out(residence_ids: list[int]) -> dict[int, list[str]]:
    """Per residence, the numbers of handed-out cards not yet returned."""
    out: dict[int, list[str]] = {}
    rows = db.session.execute(
        sa.select(Card.residence_id, Card.card_no).where(
            Card.residence_id.in_(residence_ids),
            Card.activated_at.is_not(None),
            Card.status != CardStatus.RETURNED,
        )
    )
    for residence_id, card_no in rows:
        out.setdefault(residence_id, []).append(card_no)
    return out


def handed_out(residence_ids: list[int]) -> set[int]:
    return set(
        db.session.scalars(
            sa.select(Card.residence_id).where(
                Card.residence_id.in_(residence_ids), Card.activated_at.is_not(None)
            )
        )
    )


def resolve_returned(residence_ids: list[int] | None = None) -> int:
    """Resolve live card-not-returned alerts whose cards have all come back; how many."""
    stmt = sa.select(Alert).where(
        Alert.kind == "card_not_returned", Alert.status.in_(LIVE_STATUSES)
    )
    if residence_ids is not None:
        stmt = stmt.where(Alert.subject_id.in_([str(i) for i in residence_ids]))
    live = db.session.scalars(stmt).all()
    if not live:
        return 0
    ids = [int(a.subject_id) for a in live]
    out = cards_out(ids)
    handed = handed_out(ids)
    resolved = 0
    for alert in live:
        residence_id = int(alert.subject_id)
        if residence_id in handed and not out.get(residence_id):
            auto_resolve(alert, "the card was returned")
            resolved += 1
    return resolved
