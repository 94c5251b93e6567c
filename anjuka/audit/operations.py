"""Appending to and verifying the audit trail.

The trail is a set of hash chains, one per area (``area:<code>``) for
registry writes and one per user (``user:<id>``) for sign-ins. Appending
locks only that chain's head row, so desks in different areas never wait on
each other; within one area the appends are ordered, which is also the
order a reviewer wants to read them in. ``anjuka audit verify`` walks every
chain and reports the first event whose link or content no longer matches.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from flask import g, has_request_context, request
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from anjuka.audit.models import AuditChainHead, AuditEvent
from anjuka.core.db import db
from anjuka.core.time import utcnow

GENESIS = "0" * 64


#: The hash version new events are written with (the id inside the hash).
HASH_VERSION = 2


def _canonical(event: AuditEvent) -> bytes:
    payload: dict[str, Any] = {
        "chain": event.chain,
        "seq": event.seq,
        "occurred_at": event.occurred_at.isoformat(timespec="microseconds"),
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "action": event.action,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "area_code": event.area_code,
        "origin": event.origin,
        "request_id": event.request_id,
        "details": event.details or {},
        "prev_hash": event.prev_hash,
    }
    if event.hash_version >= 2:
        payload.update(id=event.id, v=event.hash_version)
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: AuditEvent) -> str:
    """The hash an event must carry."""
    return hashlib.sha256(_canonical(event)).hexdigest()


def _postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _lock_head(chain: str, *, take_id: bool = False) -> tuple[int, str, int | None]:
    """Lock ``chain``'s head (creating it at the genesis): its seq and hash, and a new event id.

    One statement, ``INSERT … ON CONFLICT (chain) DO UPDATE … RETURNING``:
    the no-op update takes the head's row lock as ``SELECT … FOR UPDATE``
    would, waiting for a concurrent append to commit and then reading its
    head. With ``take_id`` it also returns the id the next event will have,
    taken under that lock so that ids increase along a chain: PostgreSQL
    hands out the column's sequence; SQLite serialises writers, so the next
    rowid is one more than the largest.
    """
    dialect_insert = pg_insert if _postgresql() else sqlite_insert
    insert = dialect_insert(AuditChainHead).values(chain=chain, seq=0, hash=GENESIS)
    table = AuditChainHead.__table__
    insert = insert.on_conflict_do_update(index_elements=["chain"], set_={"seq": table.c.seq})
    returned: list[sa.ColumnElement] = [table.c.seq, table.c.hash]
    if take_id:
        returned.append(_next_id())
    row = db.session.execute(insert.returning(*returned)).one()
    return row[0], row[1], row[2] if take_id else None


def _next_id() -> sa.ColumnElement[int]:
    """The id the next event will have, as an expression (see :func:`_lock_head`)."""
    if _postgresql():
        return sa.func.nextval(sa.func.pg_get_serial_sequence("audit_events", "id"))
    events = AuditEvent.__table__
    return sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0) + 1).scalar_subquery()


def _append(event: AuditEvent) -> None:
    """Insert ``event`` and move its chain's head to it.

    One statement on PostgreSQL (the insert runs as a data-modifying CTE of
    the head's update); two on SQLite, which has none.
    """
    events = cast(sa.Table, AuditEvent.__table__)
    values = {
        column.key: getattr(event, column.key)
        for column in events.columns
        if column.key in event.__dict__
    }
    insert = sa.insert(events).values(**values)
    head = (
        sa.update(cast(sa.Table, AuditChainHead.__table__))
        .where(AuditChainHead.chain == event.chain)
        .values(seq=event.seq, hash=event.hash)
    )
    if _postgresql():
        db.session.execute(head.add_cte(insert.cte("appended")))
    else:
        db.session.execute(insert)
        db.session.execute(head)


def area_chain(area_code: str) -> str:
    """The chain of an area's registry events."""
    return f"area:{area_code}"


def lock_chains(*chains: str) -> None:
    """Lock several chains' heads, always in the same (sorted) order, before appending.

    A transaction that appends to two chains (a move between areas) would
    otherwise take the locks in its own order and deadlock against a move
    the other way.
    """
    for chain in sorted(set(chains)):
        _lock_head(chain)


def _actor() -> tuple[str, int | None, str | None]:
    identity = g.get("identity")
    if identity is not None:
        return identity.kind, identity.id, identity.name
    return "system", None, None


def record(
    action: str,
    *,
    subject_type: str | None = None,
    subject_id: Any = None,
    area_code: str | None = None,
    chain: str | None = None,
    details: dict | None = None,
    actor: tuple[str, int | None, str | None] | None = None,
) -> AuditEvent:
    """Append an event to its chain (in the caller's transaction): two statements on PostgreSQL.

    The event returned is not in the session (it was written with Core
    statements): read it, or load it by id.

    ``details`` must never carry a document number in clear.
    """
    chain = chain or (area_chain(area_code) if area_code else "system")
    actor_type, actor_id, actor_name = actor or _actor()
    seq, prev_hash, event_id = _lock_head(chain, take_id=True)
    event = AuditEvent(
        id=event_id,
        hash_version=HASH_VERSION,
        chain=chain,
        seq=seq + 1,
        occurred_at=utcnow(),
        actor_type=actor_type,
        actor_id=actor_id,
        actor_name=actor_name,
        action=action,
        subject_type=subject_type,
        subject_id=None if subject_id is None else str(subject_id),
        area_code=area_code,
        origin=request.remote_addr if has_request_context() else "cli",
        request_id=g.get("request_id") if has_request_context() else None,
        details=details or {},
        prev_hash=prev_hash,
    )
    event.hash = event_hash(event)
    _append(event)
    return event


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of walking every chain."""

    ok: bool
    events: int
    chains: int
    first_bad_event_id: int | None = None
    reason: str | None = None


def _check_link(
    event: AuditEvent, chain: str, seq: int, prev_hash: str, prev_id: int | None
) -> str | None:
    """Why ``event`` does not continue its chain where it should, if it does not."""
    if event.seq != seq:
        return f"chain {chain}: event missing before seq {event.seq}"
    if prev_id is not None and event.id <= prev_id:
        return f"chain {chain}: event {event.id} listed before the event it follows"
    if event.prev_hash != prev_hash:
        return f"chain {chain}: link to previous event broken"
    if event_hash(event) != event.hash:
        return f"chain {chain}: event content altered"
    return None


def verify(batch_size: int = 5000) -> VerifyResult:
    """Walk every chain; report the first broken event (lowest id)."""
    problems: list[tuple[int, str]] = []
    heads = {h.chain: h for h in db.session.scalars(sa.select(AuditChainHead))}
    chains = set(heads) | set(db.session.scalars(sa.select(AuditEvent.chain).distinct()))
    total = 0
    for chain in sorted(chains):
        expected_seq, expected_prev, last_id = 1, GENESIS, None
        query = (
            sa.select(AuditEvent)
            .where(AuditEvent.chain == chain)
            .order_by(AuditEvent.seq)
            .execution_options(yield_per=batch_size)
        )
        result = db.session.scalars(query)
        try:
            for event in result:
                total += 1
                problem = _check_link(event, chain, expected_seq, expected_prev, last_id)
                if problem:
                    problems.append((event.id, problem))
                    break
                expected_seq, expected_prev, last_id = event.seq + 1, event.hash, event.id
                db.session.expunge(event)  # a chain may be longer than memory
            else:
                head = heads.get(chain)
                if head is None or head.seq != expected_seq - 1 or head.hash != expected_prev:
                    at = last_id if last_id is not None else 0
                    problems.append((at, f"chain {chain}: events missing after the last one kept"))
        finally:
            result.close()  # a break leaves PostgreSQL's server-side cursor open
        db.session.expunge_all()
    if problems:
        event_id, reason = min(problems)
        return VerifyResult(False, total, len(chains), event_id, reason)
    return VerifyResult(True, total, len(chains))


def take_anchor() -> dict:
    """The head of every chain, to keep off this database (a daily export).

    The chains prove edits and deletions inside the table; an anchor kept
    elsewhere also proves that nobody rebuilt a chain from scratch.
    """
    heads = db.session.scalars(sa.select(AuditChainHead).order_by(AuditChainHead.chain))
    return {
        "format": 1,
        "taken_at": utcnow().isoformat(timespec="seconds"),
        "chains": {h.chain: {"seq": h.seq, "hash": h.hash} for h in heads},
    }


def check_anchor(anchor: dict) -> list[str]:
    """Chains that no longer hold the anchored event at the anchored place."""
    problems = []
    for chain, head in sorted(anchor.get("chains", {}).items()):
        if head["seq"] == 0:
            continue
        found = db.session.scalar(
            sa.select(AuditEvent.hash).where(
                AuditEvent.chain == chain, AuditEvent.seq == head["seq"]
            )
        )
        if found != head["hash"]:
            problems.append(
                f"chain {chain}: event {head['seq']} differs from the anchor taken"
                f" {anchor.get('taken_at')}"
            )
    return problems
