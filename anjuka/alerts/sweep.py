"""``anjuka sweep``: the alerts that time alone triggers.

Checks, each with its own cursor in ``sweep_cursors``:

``card_not_returned``
    A departure whose area's ``card_return_grace_days`` have passed
    (``as_of > departed_on + grace``) while a card that was handed out for
    the residence (activated) is not in status ``returned``. Without any
    such card, only a departure the desk recorded with
    ``card_returned: false`` (a card from before this system) counts.
``late_registration``
    A residence registered after its deadline (``late``). Raised at arrival
    already; the sweep is the backstop for imported or repaired records.
``registration_expiring``
    A current residence without an active card whose registration lapses
    (``arrived_on + card_validity_days``) within ``expiring_days``.
``card_expiring``
    An active card whose ``expires_on`` falls within ``expiring_days``.
``reader_offline``
    An active desk reader whose daemon has not been heard from (its last
    long poll, or its creation) for ``reader_silence``.

Incremental: a run reads only records that can have become due since the
previous run's ``as_of`` (the window is widened by the largest grace or
validity of any area), plus records written since the previous run began
(a departure recorded late, with a date in the past). The first run reads
everything once.

Idempotent: each alert carries its occurrence (the departure date, the
expiry date, the reader's last contact) and is raised only if that
occurrence never was, so a second run, or a run after a supervisor resolved
the alert, raises nothing. Live alerts whose cause is gone are resolved.

Safe on several hosts: the run is one transaction that first takes a
PostgreSQL transaction-level advisory lock (``pg_try_advisory_xact_lock``);
a concurrent run finds it taken and stops at once. On SQLite the write lock
taken at ``BEGIN IMMEDIATE`` makes a second run wait and then find nothing
new.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from anjuka.alerts.models import LIVE_STATUSES, Alert, SweepCursor
from anjuka.alerts.operations import (
    auto_resolve,
    cards_out,
    handed_out,
    raise_late_registration,
    raise_once,
    resolve_returned,
)
from anjuka.areas.models import Area
from anjuka.areas.operations import Policy, effective_policy
from anjuka.cards.models import Card, CardStatus, Reader
from anjuka.core.db import db
from anjuka.core.time import local_today, start_of_day, utcnow
from anjuka.dwellings.models import Dwelling, Estate
from anjuka.residences.models import Residence

#: Key of the advisory lock every sweep takes (``anjuka.sweep`` as a 63-bit number).
ADVISORY_LOCK_KEY = 0x616E6A756B612E73
#: Records written this long before the previous run began are read again:
#: a transaction still open when that run started commits within it.
WRITE_SLACK = timedelta(hours=1)
DEFAULT_EXPIRING_DAYS = 30
DEFAULT_READER_SILENCE = timedelta(hours=48)
_PAGE = 1000
CHECKS = (
    "card_not_returned",
    "late_registration",
    "registration_expiring",
    "card_expiring",
    "reader_offline",
)


@dataclass
class SweepReport:
    """What one run did."""

    as_of: date
    skipped: bool = False
    raised: Counter = field(default_factory=Counter)
    resolved: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        if self.skipped:
            return f"sweep as of {self.as_of}: another sweep is running; nothing done"
        raised = ", ".join(f"{k} {self.raised[k]}" for k in CHECKS if self.raised[k]) or "none"
        resolved = (
            ", ".join(f"{k} {self.resolved[k]}" for k in CHECKS if self.resolved[k]) or "none"
        )
        return f"sweep as of {self.as_of}: raised {raised}; resolved {resolved}"


@dataclass(frozen=True)
class _Window:
    """Since when a check must look again (None: from the beginning)."""

    last_as_of: date | None
    last_run_at: datetime | None

    def written_since(self) -> datetime | None:
        return None if self.last_run_at is None else self.last_run_at - WRITE_SLACK


def _take_lock() -> bool:
    if db.session.get_bind().dialect.name != "postgresql":
        return True  # SQLite: BEGIN IMMEDIATE already serialises writers
    return bool(db.session.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(ADVISORY_LOCK_KEY))))


def _window(name: str) -> _Window:
    cursor = db.session.get(SweepCursor, name)
    if cursor is None:
        return _Window(None, None)
    return _Window(cursor.last_as_of, cursor.last_run_at)


def _advance(name: str, as_of: date, started: datetime) -> None:
    cursor = db.session.get(SweepCursor, name)
    if cursor is None:
        cursor = SweepCursor(name=name, last_as_of=as_of, last_run_at=started, runs=0)
        db.session.add(cursor)
    cursor.last_as_of = as_of
    cursor.last_run_at = started
    cursor.runs += 1
    db.session.flush()


class _Policies:
    """Effective policies of every area, resolved once per run."""

    def __init__(self) -> None:
        self._areas = {a.id: a for a in db.session.scalars(sa.select(Area))}
        self._cache: dict[int, Policy] = {}

    def of(self, area_id: int) -> Policy:
        return effective_policy(self._areas[area_id], cache=self._cache)

    def all(self) -> list[Policy]:
        return [self.of(area_id) for area_id in self._areas]


def _pages(stmt: sa.Select, id_column: sa.SQLColumnExpression[int]) -> Iterator[sa.Row]:
    """Run ``stmt`` in keyset pages of ``_PAGE`` rows by ``id_column``."""
    last = 0
    while True:
        rows = db.session.execute(
            stmt.where(id_column > last).order_by(id_column).limit(_PAGE)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]


def _since_clause(
    date_column: sa.SQLColumnExpression[date | None],
    lower: date | None,
    written_column: sa.SQLColumnExpression[datetime | None],
    written_since: datetime | None,
) -> sa.ColumnElement[bool]:
    if lower is None or written_since is None:
        return sa.true()
    return sa.or_(date_column >= lower, written_column >= written_since)


# -- card_not_returned ----------------------------------------------------------


def _card_not_returned(as_of: date, policies: _Policies, report: SweepReport) -> None:
    window = _window("card_not_returned")
    max_grace = max((p.card_return_grace_days for p in policies.all()), default=0)
    lower = None if window.last_as_of is None else window.last_as_of - timedelta(max_grace + 1)
    stmt = (
        sa.select(
            Residence.id,
            Residence.departed_on,
            Residence.card_returned,
            Residence.dwelling_id,
            Dwelling.area_id,
        )
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
        .where(
            Residence.departed_on.is_not(None),
            Residence.departed_on < as_of,
            sa.or_(Residence.card_returned.is_(None), Residence.card_returned.is_(False)),
            _since_clause(
                Residence.departed_on,
                lower,
                Residence.departure_registered_at,
                window.written_since(),
            ),
        )
    )
    batch: list = []

    def flush_batch() -> None:
        ids = [row.id for row in batch]
        out = cards_out(ids)
        handed = handed_out(ids)
        for row in batch:
            grace = policies.of(row.area_id).card_return_grace_days
            due = row.departed_on + timedelta(days=grace)
            if as_of <= due:
                continue
            cards = out.get(row.id, [])
            if row.id in handed and not cards:
                continue  # every card handed out is back
            if row.id not in handed and row.card_returned is not False:
                continue  # no card was handed out: nothing to return
            raised = raise_once(
                "card_not_returned",
                "residence",
                row.id,
                row.departed_on.isoformat(),
                area_id=row.area_id,
                details={
                    "dwelling_id": row.dwelling_id,
                    "departed_on": row.departed_on.isoformat(),
                    "grace_days": grace,
                    "due_on": due.isoformat(),
                    "card_nos": sorted(cards),
                },
            )
            if raised is not None:
                report.raised["card_not_returned"] += 1
        batch.clear()

    for row in _pages(stmt, Residence.id):
        batch.append(row)
        if len(batch) >= _PAGE:
            flush_batch()
    flush_batch()
    report.resolved["card_not_returned"] += resolve_returned()


# -- late_registration ----------------------------------------------------------


def _late_registration(report: SweepReport) -> None:
    window = _window("late_registration")
    stmt = sa.select(Residence.id).where(Residence.late.is_(True))
    if window.written_since() is not None:
        stmt = stmt.where(Residence.registered_at >= window.written_since())
    for (residence_id,) in _pages(stmt, Residence.id):
        residence = db.session.get_one(Residence, residence_id)
        if raise_late_registration(residence) is not None:
            report.raised["late_registration"] += 1


# -- registration_expiring ------------------------------------------------------


def _has_active_card() -> sa.ColumnElement[bool]:
    return sa.exists(
        sa.select(Card.id).where(
            Card.residence_id == Residence.id, Card.status == CardStatus.ACTIVE
        )
    )


def _registration_expiring(
    as_of: date, days: int, policies: _Policies, report: SweepReport
) -> None:
    window = _window("registration_expiring")
    validities = [p.card_validity_days for p in policies.all()] or [0]
    horizon = as_of + timedelta(days=days)
    upper = horizon - timedelta(days=min(validities))
    lower = (
        None
        if window.last_as_of is None
        else window.last_as_of + timedelta(days=days - max(validities) - 1)
    )
    stmt = (
        sa.select(Residence.id, Residence.arrived_on, Residence.dwelling_id, Dwelling.area_id)
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
        .where(
            Residence.departed_on.is_(None),
            Residence.arrived_on <= upper,
            ~_has_active_card(),
            _since_clause(
                Residence.arrived_on, lower, Residence.registered_at, window.written_since()
            ),
        )
    )
    for row in _pages(stmt, Residence.id):
        validity = policies.of(row.area_id).card_validity_days
        expires = row.arrived_on + timedelta(days=validity)
        if expires > horizon:
            continue
        raised = raise_once(
            "registration_expiring",
            "residence",
            row.id,
            expires.isoformat(),
            area_id=row.area_id,
            details={
                "dwelling_id": row.dwelling_id,
                "arrived_on": row.arrived_on.isoformat(),
                "expires_on": expires.isoformat(),
                "expired": expires < as_of,
            },
        )
        if raised is not None:
            report.raised["registration_expiring"] += 1
    # A departure or a new card ends the concern.
    live = db.session.scalars(
        sa.select(Alert)
        .join(Residence, sa.cast(Residence.id, sa.String) == Alert.subject_id)
        .where(
            Alert.kind == "registration_expiring",
            Alert.status.in_(LIVE_STATUSES),
            sa.or_(Residence.departed_on.is_not(None), _has_active_card()),
        )
    ).all()
    for alert in live:
        auto_resolve(alert, "the resident left or holds an active card")
        report.resolved["registration_expiring"] += 1


# -- card_expiring --------------------------------------------------------------


def _card_expiring(as_of: date, days: int, report: SweepReport) -> None:
    window = _window("card_expiring")
    horizon = as_of + timedelta(days=days)
    lower = None if window.last_as_of is None else window.last_as_of + timedelta(days=days)
    stmt = (
        sa.select(Card.id, Card.card_no, Card.expires_on, Card.residence_id, Dwelling.area_id)
        .join(Residence, Card.residence_id == Residence.id)
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
        .where(
            Card.status == CardStatus.ACTIVE,
            Card.expires_on.is_not(None),
            Card.expires_on <= horizon,
            _since_clause(Card.expires_on, lower, Card.activated_at, window.written_since()),
        )
    )
    for row in _pages(stmt, Card.id):
        raised = raise_once(
            "card_expiring",
            "card",
            row.card_no,
            row.expires_on.isoformat(),
            area_id=row.area_id,
            details={
                "residence_id": row.residence_id,
                "expires_on": row.expires_on.isoformat(),
                "expired": row.expires_on < as_of,
            },
        )
        if raised is not None:
            report.raised["card_expiring"] += 1
    live = db.session.scalars(
        sa.select(Alert)
        .join(Card, Card.card_no == Alert.subject_id)
        .where(
            Alert.kind == "card_expiring",
            Alert.status.in_(LIVE_STATUSES),
            Card.status != CardStatus.ACTIVE,
        )
    ).all()
    for alert in live:
        auto_resolve(alert, "the card is no longer in use")
        report.resolved["card_expiring"] += 1


# -- reader_offline -------------------------------------------------------------


def _reader_offline(instant: datetime, silence: timedelta, report: SweepReport) -> None:
    cutoff = instant - silence
    readers = db.session.execute(
        sa.select(Reader, sa.func.coalesce(Reader.area_id, Estate.area_id))
        .outerjoin(Estate, Reader.estate_id == Estate.id)
        .where(Reader.active.is_(True))
    ).all()
    for reader, area_id in readers:
        last = reader.last_seen_at or reader.created_at
        silent = last < cutoff
        live = db.session.scalar(
            sa.select(Alert).where(
                Alert.kind == "reader_offline",
                Alert.subject_type == "reader",
                Alert.subject_id == str(reader.id),
                Alert.status.in_(LIVE_STATUSES),
            )
        )
        if silent:
            raised = raise_once(
                "reader_offline",
                "reader",
                reader.id,
                last.isoformat(timespec="seconds"),
                area_id=area_id,
                details={
                    "name": reader.name,
                    "last_seen_at": None
                    if reader.last_seen_at is None
                    else reader.last_seen_at.isoformat(timespec="seconds"),
                    "silent_hours": int((instant - last).total_seconds() // 3600),
                },
            )
            if raised is not None:
                report.raised["reader_offline"] += 1
        elif live is not None:
            auto_resolve(live, "the reader was heard from again")
            report.resolved["reader_offline"] += 1
    revoked = db.session.scalars(
        sa.select(Alert)
        .join(Reader, sa.cast(Reader.id, sa.String) == Alert.subject_id)
        .where(
            Alert.kind == "reader_offline",
            Alert.status.in_(LIVE_STATUSES),
            Reader.active.is_(False),
        )
    ).all()
    for alert in revoked:
        auto_resolve(alert, "the reader was revoked")
        report.resolved["reader_offline"] += 1


# -- the run --------------------------------------------------------------------


def run_sweep(
    as_of: date | None = None,
    *,
    expiring_days: int = DEFAULT_EXPIRING_DAYS,
    reader_silence: timedelta = DEFAULT_READER_SILENCE,
    now: datetime | None = None,
) -> SweepReport:
    """Raise and resolve the time-triggered alerts as of ``as_of`` (default: today).

    Runs in the caller's transaction, which must be committed afterwards;
    returns at once (``skipped``) when another sweep holds the lock.
    """
    started = now or utcnow()
    as_of = as_of or local_today()
    report = SweepReport(as_of)
    if not _take_lock():
        report.skipped = True
        return report
    # Reader silence is measured now, or from the start of an --as-of day in the future.
    future = start_of_day(as_of)
    instant = max(started, future)
    policies = _Policies()
    _card_not_returned(as_of, policies, report)
    _late_registration(report)
    _registration_expiring(as_of, expiring_days, policies, report)
    _card_expiring(as_of, expiring_days, report)
    _reader_offline(instant, reader_silence, report)
    for name in CHECKS:
        _advance(name, as_of, started)
    return report
