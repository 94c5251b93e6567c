"""Transfers: the lawful path for a move across desks.

A desk may end only a residence it could record the departure of. A person
registered outside its scope moves in through a transfer request instead:

1. the new desk asks (``request_transfer``); nothing about the old residence
   is shown to it, and nothing of the person changes;
2. the old dwelling's desk sees the request in its transfers, and the old
   area's supervisors see a ``transfer_requested`` alert;
3. when the old desk records the departure, the transfer completes in the
   same transaction: the new residence begins (``on_departure``);
4. if nobody acts by the old area's registration deadline (``due_on``, in
   working days), a supervisor of the new area may complete it with a
   written reason (``complete_transfer``), audited on both areas' chains.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from anjuka.areas.operations import effective_policy
from anjuka.audit import operations as audit
from anjuka.core import signals
from anjuka.core.db import db
from anjuka.core.errors import AppError, Conflict, Forbidden, InvalidInput
from anjuka.core.security import Identity
from anjuka.core.time import add_working_days, local_today, utcnow
from anjuka.dwellings.models import Dwelling
from anjuka.dwellings.permissions import dwelling_filter
from anjuka.persons.identity import ParsedDocument
from anjuka.persons.operations import find_person
from anjuka.residences import operations as residences
from anjuka.residences.models import DepartureReason, Residence
from anjuka.transfers.models import Transfer, TransferCompletion, TransferStatus

#: Who may complete a transfer nobody acted on (within the new dwelling's scope).
COMPLETING_ROLES = {"supervisor", "admin"}
MIN_REASON = 5


def _visible_dwellings(identity: Identity) -> sa.Select:
    return sa.select(Dwelling.id).where(dwelling_filter(identity))


def incoming_filter(identity: Identity) -> sa.ColumnElement[bool]:
    """Transfers into dwellings the caller may see (the requesting side)."""
    return Transfer.to_dwelling_id.in_(_visible_dwellings(identity))


def outgoing_filter(identity: Identity) -> sa.ColumnElement[bool]:
    """Transfers out of residences in dwellings the caller may see (the old side)."""
    return Transfer.from_residence_id.in_(
        sa.select(Residence.id).where(Residence.dwelling_id.in_(_visible_dwellings(identity)))
    )


def request_transfer(
    identity: Identity, dwelling: Dwelling, document: ParsedDocument, *, arrived_on: date
) -> Transfer:
    """Ask for a person registered elsewhere to move into ``dwelling`` (row locked).

    Refused, changing nothing, when the person is not registered anywhere
    (``not_registered``: register an arrival), already lives here, has a
    request open, or the dwelling has no place for them now.
    """
    residences.check_arrival_date(arrived_on)
    person = find_person(document)
    previous = residences.current_residence(person, for_update=True) if person else None
    if person is None or previous is None:
        raise Conflict(
            "This person is not registered anywhere: register the arrival instead.",
            code="not_registered",
        )
    if previous.dwelling_id == dwelling.id:
        raise Conflict(
            "This person is already registered at this dwelling.", code="already_registered"
        )
    if arrived_on < previous.arrived_on:
        raise InvalidInput(
            "A move cannot arrive before the previous arrival.",
            errors={"arrived_on": ["Before the previous residence began."]},
        )
    policy = effective_policy(dwelling.area)
    residences.capacity_verdict(
        dwelling, policy, birth_date=person.birth_date, arrived_on=arrived_on
    ).refuse()
    old_policy = effective_policy(previous.dwelling.area)
    transfer = Transfer(
        person=person,
        from_residence=previous,
        to_dwelling=dwelling,
        arrived_on=arrived_on,
        status=TransferStatus.REQUESTED,
        requested_by_id=identity.id if identity.kind == "user" else None,
        due_on=add_working_days(local_today(), old_policy.registration_deadline_days),
    )
    try:
        with db.session.begin_nested():
            db.session.add(transfer)
    except IntegrityError:
        raise Conflict(
            "A transfer of this person is already waiting for the old desk.",
            code="transfer_pending",
        ) from None
    old_area, new_area = previous.dwelling.area.code, dwelling.area.code
    audit.lock_chains(audit.area_chain(old_area), audit.area_chain(new_area))
    for area_code in sorted({old_area, new_area}):
        audit.record(
            "transfer.request",
            subject_type="transfer",
            subject_id=transfer.id,
            area_code=area_code,
            details={
                "person_id": person.id,
                "from_residence_id": previous.id,
                "to_dwelling_id": dwelling.id,
                "due_on": transfer.due_on.isoformat(),
            },
        )
    signals.transfer_requested.send(transfer)
    return transfer


def _close(
    transfer: Transfer,
    identity: Identity | None,
    status: TransferStatus,
    *,
    reason: str | None = None,
    completion: TransferCompletion | None = None,
    residence: Residence | None = None,
) -> None:
    transfer.status = status
    transfer.closed_at = utcnow()
    transfer.closed_by_id = identity.id if identity and identity.kind == "user" else None
    transfer.reason = reason
    transfer.completion = completion
    transfer.to_residence = residence
    db.session.flush()
    signals.transfer_closed.send(transfer)


def _lock_dwelling(dwelling_id: int) -> Dwelling:
    return db.session.execute(
        sa.select(Dwelling)
        .where(Dwelling.id == dwelling_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def _move_in(identity: Identity, transfer: Transfer, arrived_on: date) -> Residence | str:
    """Register the transfer's arrival; the refusal's code when the dwelling cannot take it."""
    dwelling = _lock_dwelling(transfer.to_dwelling_id)
    policy = effective_policy(dwelling.area)
    verdict = residences.capacity_verdict(
        dwelling, policy, birth_date=transfer.person.birth_date, arrived_on=arrived_on
    )
    if verdict.full:
        return "dwelling_full"
    return residences.settle_arrival(
        identity,
        transfer.person,
        dwelling,
        policy,
        verdict,
        arrived_on=arrived_on,
        registered_by_id=transfer.requested_by_id,
        details={"transfer_id": transfer.id, "moved_from": transfer.from_residence_id},
    )


def open_transfer_of(residence: Residence) -> Transfer | None:
    """The request waiting on ``residence``, locked, if there is one."""
    return db.session.scalar(
        sa.select(Transfer)
        .where(
            Transfer.from_residence_id == residence.id,
            Transfer.status == TransferStatus.REQUESTED,
        )
        .with_for_update()
    )


def on_departure(residence: Residence, *, reason: DepartureReason, **_: object) -> None:
    """The old desk recorded the departure: the waiting transfer completes with it.

    A move by a desk that could end the residence itself supersedes the
    request; a transfer completed by a supervisor ends the residence itself.
    """
    if reason == DepartureReason.TRANSFER:
        return
    transfer = open_transfer_of(residence)
    if transfer is None:
        return
    from flask import g

    identity = g.get("identity")
    if reason != DepartureReason.DEPARTURE:
        _close(transfer, identity, TransferStatus.CANCELLED, reason=f"superseded by a {reason}")
        return
    departed_on = residence.departed_on or transfer.arrived_on
    outcome = _move_in(identity, transfer, max(transfer.arrived_on, departed_on))
    if isinstance(outcome, str):
        # The person has left; the new desk registers them once it has room.
        _close(transfer, identity, TransferStatus.FAILED, reason=outcome)
    else:
        _close(
            transfer,
            identity,
            TransferStatus.COMPLETED,
            completion=TransferCompletion.DEPARTURE,
            residence=outcome,
        )


def cancel_transfer(identity: Identity, transfer: Transfer, reason: str | None) -> Transfer:
    """The requesting side withdraws a request that is still waiting."""
    _require_open(transfer)
    _close(transfer, identity, TransferStatus.CANCELLED, reason=reason)
    audit.record(
        "transfer.cancel",
        subject_type="transfer",
        subject_id=transfer.id,
        area_code=transfer.to_dwelling.area.code,
        details={"reason_given": bool(reason)},
    )
    return transfer


def _require_open(transfer: Transfer) -> None:
    if transfer.status != TransferStatus.REQUESTED:
        raise Conflict(f"This transfer is {transfer.status}.", code="transfer_closed")


def complete_transfer(identity: Identity, transfer: Transfer, reason: str) -> Transfer:
    """A supervisor of the new area completes a request nobody acted on by ``due_on``.

    Ends the old residence (its card is revoked as on any departure) and
    begins the new one, audited on both areas' chains.
    """
    if identity.role not in COMPLETING_ROLES:
        raise Forbidden(
            "Only a supervisor of the new area may complete a transfer.",
            code="transfer_completion_not_allowed",
        )
    if len(reason.strip()) < MIN_REASON:
        raise InvalidInput(
            "Completing a transfer needs a written reason.",
            errors={"reason": ["Give the reason in a few words."]},
        )
    # The residence first, then the transfer: the order a departure takes.
    previous = db.session.execute(
        sa.select(Residence)
        .where(Residence.id == transfer.from_residence_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    db.session.refresh(transfer, with_for_update=True)
    _require_open(transfer)  # a departure may have completed it meanwhile
    today = local_today()
    if today <= transfer.due_on:
        raise AppError(
            f"The old desk has until {transfer.due_on.isoformat()} to record the departure.",
            code="transfer_not_due",
            status=409,
            due_on=transfer.due_on.isoformat(),
        )
    _lock_dwelling(transfer.to_dwelling_id)  # before the chains, as an arrival does
    old_area, new_area = previous.dwelling.area.code, transfer.to_dwelling.area.code
    audit.lock_chains(audit.area_chain(old_area), audit.area_chain(new_area))
    arrived_on = transfer.arrived_on
    residences.end_residence(
        previous,
        identity,
        departed_on=arrived_on,
        card_returned=None,
        reason=DepartureReason.TRANSFER,
    )
    outcome = _move_in(identity, transfer, arrived_on)
    if isinstance(outcome, str):
        raise AppError("The dwelling has no place for this person now.", code=outcome, status=409)
    _close(
        transfer,
        identity,
        TransferStatus.COMPLETED,
        reason=reason,
        completion=TransferCompletion.SUPERVISOR,
        residence=outcome,
    )
    for area_code in sorted({old_area, new_area}):
        audit.record(
            "transfer.complete",
            subject_type="transfer",
            subject_id=transfer.id,
            area_code=area_code,
            details={
                "completion": TransferCompletion.SUPERVISOR.value,
                "from_residence_id": previous.id,
                "to_residence_id": outcome.id,
                "due_on": transfer.due_on.isoformat(),
                "reason": reason,
            },
        )
    return transfer


def connect() -> None:
    """Complete or supersede waiting transfers when their residence ends."""
    signals.residence_departed.connect(on_departure)
