"""Arrival and departure: the registration rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from anjuka.areas.operations import Policy, effective_policy
from anjuka.audit import operations as audit
from anjuka.core import signals
from anjuka.core.db import db, insert_unless_taken
from anjuka.core.errors import AppError, Conflict, Forbidden, InvalidInput
from anjuka.core.security import Identity
from anjuka.core.time import add_working_days, local_today, utcnow
from anjuka.dwellings.models import Dwelling, DwellingStatus
from anjuka.dwellings.operations import Occupancy, compute_capacity, occupancies
from anjuka.dwellings.permissions import dwelling_filter
from anjuka.persons.identity import ParsedDocument
from anjuka.persons.models import Person
from anjuka.persons.operations import find_person, hold_person, record_person
from anjuka.residences.models import DepartureReason, FamilyRelation, Residence

OVERRIDE_ROLES = {"supervisor", "admin"}
#: Roles that register arrivals and departures (each within their scope).
DESK_ROLES = {"manager", "supervisor", "admin"}


def is_minor(birth_date: date | None, on: date) -> bool:
    """Under 18 on ``on``; unknown birth dates count as adults."""
    if birth_date is None:
        return False
    had_birthday = (on.month, on.day) >= (birth_date.month, birth_date.day)
    return on.year - birth_date.year - (0 if had_birthday else 1) < 18


def current_residence(person: Person, *, for_update: bool = False) -> Residence | None:
    query = sa.select(Residence).where(
        Residence.person_id == person.id, Residence.departed_on.is_(None)
    )
    if for_update:
        query = query.with_for_update()
    return db.session.scalar(query)


def _check_family(
    dwelling: Dwelling, relation: str | None, family_of_id: int | None, allowed: bool
) -> None:
    if relation is None and family_of_id is None:
        return
    if relation not in list(FamilyRelation) or family_of_id is None:
        raise InvalidInput(
            "The family exception needs family_relation (spouse, parent, child) and"
            " family_of_residence_id.",
            code="invalid_family_exception",
        )
    if not allowed:
        raise InvalidInput(
            "This area's policy has no family exception.", code="family_exception_not_allowed"
        )
    relative = db.session.get(Residence, family_of_id)
    if relative is None or relative.dwelling_id != dwelling.id or not relative.is_current:
        raise InvalidInput(
            "The family member must currently live in the same dwelling.",
            code="invalid_family_exception",
            errors={"family_of_residence_id": ["Not a current resident of this dwelling."]},
        )


@dataclass(frozen=True)
class Verdict:
    """Whether one more person fits a dwelling, and if not, why in words and numbers."""

    full: bool
    minor: bool
    message: str | None = None
    details: dict | None = None
    #: The dwelling's residents counted for the verdict (before this arrival).
    occupancy: Occupancy = field(default_factory=Occupancy)

    def refuse(self) -> None:
        """Raise ``dwelling_full`` with the numbers behind it, when full."""
        if self.full:
            raise AppError(
                self.message or "", code="dwelling_full", status=409, **(self.details or {})
            )


def capacity_verdict(
    dwelling: Dwelling,
    policy: Policy,
    *,
    birth_date: date | None,
    arrived_on: date,
    family_relation: str | None = None,
) -> Verdict:
    """Whether one more resident, born ``birth_date``, fits ``dwelling`` under ``policy``.

    Counts the way docs/occupancy.md says: minors per policy, the
    family exception exempt from the per-room limit only; a dwelling that
    may hold no one holds no minor either.
    """
    minor = is_minor(birth_date, arrived_on)
    capacity = compute_capacity(dwelling, policy)
    occupied = occupancies([dwelling.id])[dwelling.id]
    counts = policy.minors_count or not minor
    over_area = counts and occupied.counted(policy.minors_count) + 1 > capacity.area_limit
    over_rooms = (
        counts
        and family_relation is None
        and occupied.room_counted(policy.minors_count) + 1 > capacity.room_limit
    )
    not_rentable = dwelling.status != DwellingStatus.RENTABLE
    if not (not_rentable or over_area or over_rooms):
        return Verdict(full=False, minor=minor, occupancy=occupied)
    if not_rentable:
        message = f"This dwelling is {dwelling.status.replace('_', ' ')}: it may hold no one."
    elif over_area:
        message = (
            f"The dwelling is full: its area allows {capacity.area_limit} persons"
            f" at {policy.min_area_per_person_m2} m² {policy.area_basis} area each."
        )
    else:
        message = (
            f"The dwelling is full: {dwelling.rooms} rooms allow {capacity.room_limit}"
            f" persons at {policy.max_persons_per_room} per room."
        )
    details = {
        "capacity": capacity.capacity,
        "occupants": occupied.occupants,
        "limits": capacity.as_dict(),
        "rooms": dwelling.rooms,
        "policy": {
            "min_area_per_person_m2": str(policy.min_area_per_person_m2),
            "area_basis": policy.area_basis,
            "max_persons_per_room": policy.max_persons_per_room,
        },
    }
    return Verdict(full=True, minor=minor, message=message, details=details, occupancy=occupied)


def _check_override(identity: Identity, override_reason: str | None) -> None:
    if override_reason is None:
        return
    if identity.role not in OVERRIDE_ROLES:
        raise Forbidden(
            "Only a supervisor may register beyond capacity.", code="override_not_allowed"
        )
    if len(override_reason.strip()) < 5:
        raise InvalidInput(
            "An override needs a written reason.",
            errors={"override_reason": ["Give the reason in a few words."]},
        )


def check_arrival_date(arrived_on: date) -> date:
    """Refuse an arrival dated after the registry's today; return today."""
    today = local_today()
    if arrived_on > today:
        raise InvalidInput(
            "The arrival date is in the future.",
            code="arrival_in_future",
            errors={"arrived_on": ["Must not be in the future."]},
        )
    return today


def may_record_departure(identity: Identity, residence: Residence) -> bool:
    """Whether the caller could end ``residence`` themselves (a desk with it in scope)."""
    if identity.role not in DESK_ROLES:
        return False
    return (
        db.session.scalar(
            sa.select(Dwelling.id).where(
                Dwelling.id == residence.dwelling_id, dwelling_filter(identity)
            )
        )
        is not None
    )


def _check_previous(
    identity: Identity, previous: Residence, dwelling: Dwelling, arrived_on: date, move: bool
) -> None:
    """Refuse an arrival of someone living elsewhere, unless a lawful move ends that."""
    if previous.dwelling_id == dwelling.id:
        raise Conflict(
            "This person is already registered at this dwelling.",
            code="already_registered",
            residence_id=previous.id,
        )
    if not move:
        raise Conflict(
            "This person is registered at another dwelling; ask for a move to transfer.",
            code="already_registered",
        )
    if not may_record_departure(identity, previous):
        # Says nothing about where: the caller may not see that residence.
        raise Conflict(
            "This person is registered at a dwelling outside your scope: request a"
            " transfer (POST /api/v1/transfers), which that dwelling's desk completes.",
            code="registered_elsewhere",
        )
    if arrived_on < previous.arrived_on:
        raise InvalidInput(
            "A move cannot arrive before the previous arrival.",
            errors={"arrived_on": ["Before the previous residence began."]},
        )


def _move_out(identity: Identity, previous: Residence, dwelling: Dwelling, on: date) -> None:
    """End the mover's previous residence the day they arrive at ``dwelling``."""
    # Both areas' chains, in one order for every writer: a move writes to each.
    audit.lock_chains(
        audit.area_chain(previous.dwelling.area.code), audit.area_chain(dwelling.area.code)
    )
    end_residence(
        previous, identity, departed_on=on, card_returned=None, reason=DepartureReason.MOVE
    )


def register_arrival(
    identity: Identity,
    dwelling: Dwelling,
    document: ParsedDocument,
    *,
    name: str,
    arrived_on: date,
    phone: str | None = None,
    origin: str | None = None,
    birth_date: date | None = None,
    sex: str | None = None,
    move: bool = False,
    override_reason: str | None = None,
    family_relation: str | None = None,
    family_of_residence_id: int | None = None,
) -> Residence:
    """Register a person at ``dwelling`` (whose row the caller has locked).

    Refused with ``dwelling_full`` when the person would exceed the
    capacity, unless a supervisor overrides with a written reason; with
    ``already_registered`` when the person lives elsewhere, unless ``move``
    asks to depart the old residence in the same transaction, which only a
    desk that could record that departure may (``registered_elsewhere``
    otherwise). Nothing is written, the person included, until every check
    has passed.
    """
    check_arrival_date(arrived_on)
    _check_override(identity, override_reason)
    policy = effective_policy(dwelling.area)
    _check_family(dwelling, family_relation, family_of_residence_id, policy.family_exception)
    person = find_person(document)
    if person is not None:
        person = hold_person(person)
    previous = current_residence(person, for_update=True) if person is not None else None
    if previous is not None:
        _check_previous(identity, previous, dwelling, arrived_on, move)
    verdict = capacity_verdict(
        dwelling,
        policy,
        birth_date=(person.birth_date if person else None) or document.birth_date or birth_date,
        arrived_on=arrived_on,
        family_relation=family_relation,
    )
    if override_reason is None:
        verdict.refuse()
    person = record_person(
        person, document, name, phone=phone, origin=origin, birth_date=birth_date, sex=sex
    )
    if previous is not None:
        _move_out(identity, previous, dwelling, arrived_on)
    return settle_arrival(
        identity,
        person,
        dwelling,
        policy,
        verdict,
        arrived_on=arrived_on,
        family_relation=family_relation,
        family_of_residence_id=family_of_residence_id,
        override_reason=override_reason if verdict.full else None,
        details={"moved_from": previous.id if previous is not None else None},
    )


def settle_arrival(
    identity: Identity,
    person: Person,
    dwelling: Dwelling,
    policy: Policy,
    verdict: Verdict,
    *,
    arrived_on: date,
    family_relation: str | None = None,
    family_of_residence_id: int | None = None,
    override_reason: str | None = None,
    registered_by_id: int | None = None,
    details: dict | None = None,
) -> Residence:
    """Insert the residence of an arrival that passed every check, audit it, announce it."""
    deadline = add_working_days(arrived_on, policy.registration_deadline_days)
    new = Residence(
        person_id=person.id,
        dwelling_id=dwelling.id,
        arrived_on=arrived_on,
        registered_by_id=registered_by_id or (identity.id if identity.kind == "user" else None),
        late=local_today() > deadline,
        registration_deadline=deadline,
        minor=verdict.minor,
        family_relation=family_relation,
        family_of_id=family_of_residence_id,
        override_reason=override_reason,
    )
    # Another desk may register this person elsewhere at the same moment; the
    # partial unique index (one current residence per person) decides, and the
    # loser hears why.
    residence = insert_unless_taken(
        new, index=["person_id"], index_where=Residence.departed_on.is_(None)
    )
    if residence is None:
        raise Conflict(
            "This person was just registered at another dwelling.", code="already_registered"
        )
    set_committed_value(residence, "person", person)
    set_committed_value(residence, "dwelling", dwelling)
    audit.record(
        "residence.arrive",
        subject_type="residence",
        subject_id=residence.id,
        area_code=dwelling.area.code,
        details={
            "dwelling_id": dwelling.id,
            "person_id": person.id,
            "late": residence.late,
            "override": bool(residence.override_reason),
            **(details or {}),
        },
    )
    # The count behind the verdict, taken under the dwelling's row lock, and this
    # arrival: the handlers need not count the residents again.
    occupancy = verdict.occupancy.one_more(
        minor=residence.minor, family=residence.family_relation is not None
    )
    signals.residence_arrived.send(
        residence, overridden=bool(residence.override_reason), occupancy=occupancy
    )
    return residence


def end_residence(
    residence: Residence,
    identity: Identity,
    *,
    departed_on: date,
    card_returned: bool | None,
    reason: DepartureReason,
) -> None:
    """End ``residence`` (a departure, a move, a transfer), audit it and announce it."""
    residence.departed_on = departed_on
    residence.departure_registered_at = utcnow()
    residence.departed_by_id = identity.id if identity.kind == "user" else None
    residence.card_returned = card_returned
    db.session.flush()
    audit.record(
        "residence.depart",
        subject_type="residence",
        subject_id=residence.id,
        area_code=residence.dwelling.area.code,
        details={"reason": reason, "card_returned": card_returned},
    )
    signals.residence_departed.send(residence, card_returned=card_returned, reason=reason)


def record_departure(
    identity: Identity, residence: Residence, departed_on: date, card_returned: bool | None
) -> Residence:
    """End a residence (人走注销); the card is revoked by the cards domain."""
    if residence.departed_on is not None:
        raise Conflict("This residence has already ended.", code="already_departed")
    if departed_on < residence.arrived_on:
        raise InvalidInput(
            "The departure date is before the arrival.",
            errors={"departed_on": ["Before the arrival date."]},
        )
    if departed_on > local_today():
        raise InvalidInput(
            "The departure date is in the future.",
            errors={"departed_on": ["Must not be in the future."]},
        )
    end_residence(
        residence,
        identity,
        departed_on=departed_on,
        card_returned=card_returned,
        reason=DepartureReason.DEPARTURE,
    )
    return residence
