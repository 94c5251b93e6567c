"""Dwellings and their capacity under the area's policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from anjuka.areas.models import Area
from anjuka.areas.operations import Policy, effective_policies, effective_policy
from anjuka.audit import operations as audit
from anjuka.core import signals
from anjuka.core.db import db, locked_batches
from anjuka.core.errors import Conflict, InvalidInput
from anjuka.core.security import Identity
from anjuka.dwellings.models import PERSONAL_FIELDS, Dwelling, DwellingStatus, Estate


@dataclass(frozen=True)
class Capacity:
    """How many people a dwelling may hold, and why."""

    capacity: int
    area_limit: int
    room_limit: int
    basis: str
    area_used_m2: Decimal | None
    reason: str | None  # why it is zero, when it is

    def as_dict(self) -> dict:
        return {
            "capacity": self.capacity,
            "area_limit": self.area_limit,
            "room_limit": self.room_limit,
            "basis": self.basis,
            "area_used_m2": None if self.area_used_m2 is None else str(self.area_used_m2),
            "reason": self.reason,
        }


def compute_capacity(dwelling: Dwelling, policy: Policy) -> Capacity:
    """Capacity = min(floor(area / minimum per person), rooms × persons per room).

    The area is measured on the policy's basis; when the dwelling lacks that
    measure, the other one stands in (docs/occupancy.md).
    Illegal or not-for-rent dwellings hold no one.
    """
    if policy.area_basis == "building":
        measured = dwelling.building_area_m2 or dwelling.usable_area_m2
    else:
        measured = dwelling.usable_area_m2 or dwelling.building_area_m2
    area_limit = (
        int((Decimal(measured) / policy.min_area_per_person_m2).to_integral_value(ROUND_FLOOR))
        if measured
        else 0
    )
    room_limit = dwelling.rooms * policy.max_persons_per_room
    if dwelling.status != DwellingStatus.RENTABLE:
        return Capacity(0, area_limit, room_limit, policy.area_basis, measured, dwelling.status)
    return Capacity(
        min(area_limit, room_limit), area_limit, room_limit, policy.area_basis, measured, None
    )


def capacity_of(dwelling: Dwelling, cache: dict | None = None) -> Capacity:
    return compute_capacity(dwelling, effective_policy(dwelling.area, cache=cache))


@dataclass(frozen=True)
class Occupancy:
    """Who lives in a dwelling now, and who of them counts toward its limits."""

    occupants: int = 0
    minors: int = 0
    family: int = 0  # living there under the family exception
    minor_family: int = 0

    def counted(self, minors_count: bool) -> int:
        """Residents counting toward the area limit (minors per policy)."""
        return self.occupants - (0 if minors_count else self.minors)

    def room_counted(self, minors_count: bool) -> int:
        """Residents counting toward the per-room limit (the family exception is exempt)."""
        family = self.family - (0 if minors_count else self.minor_family)
        return self.counted(minors_count) - family

    def one_more(self, *, minor: bool, family: bool) -> Occupancy:
        """The occupancy once one more resident (a minor or not, family or not) arrived."""
        return Occupancy(
            self.occupants + 1,
            self.minors + minor,
            self.family + family,
            self.minor_family + (minor and family),
        )


#: Counts the current residents of dwellings. Residences sit above dwellings, so
#: the residences domain provides it (``anjuka.domains`` connects it at start).
OccupancyCounter = Callable[[list[int]], dict[int, Occupancy]]
_counter: list[OccupancyCounter] = []


def count_occupants_with(counter: OccupancyCounter) -> None:
    """Install the function that counts dwellings' current residents."""
    _counter[:] = [counter]


def occupancies(dwelling_ids: list[int]) -> dict[int, Occupancy]:
    """Current residents per dwelling, in one query."""
    if not dwelling_ids:
        return {}
    if not _counter:
        raise RuntimeError("no occupancy counter: the residences domain is not connected")
    return _counter[0](dwelling_ids)


def occupant_counts(dwelling_ids: list[int]) -> dict[int, int]:
    """Current residents per dwelling."""
    return {k: v.occupants for k, v in occupancies(dwelling_ids).items()}


def is_over_capacity(capacity: Capacity, occupancy: Occupancy, policy: Policy) -> bool:
    """Whether the residents exceed what the desk would register today.

    The same counting as an arrival: minors per policy, the family exception
    exempt from the per-room limit only. A dwelling that may hold no one is
    over capacity with anyone in it.
    """
    if capacity.reason is not None:
        return occupancy.occupants > 0
    return (
        occupancy.counted(policy.minors_count) > capacity.area_limit
        or occupancy.room_counted(policy.minors_count) > capacity.room_limit
    )


@dataclass(frozen=True)
class Measure:
    """A dwelling's capacity under its area's policy, and who lives there now."""

    capacity: Capacity
    occupancy: Occupancy
    over_capacity: bool


def measure_dwellings(dwellings: list[Dwelling]) -> dict[Dwelling, Measure]:
    """Capacity and occupants of each dwelling, in one query per kind for them all."""
    found = occupancies([d.id for d in dwellings])
    # One query for the dwellings' areas and one for their ancestors, not two per dwelling.
    area_ids = {d.area_id for d in dwellings}
    areas = list(db.session.scalars(sa.select(Area).where(Area.id.in_(area_ids))))
    policies = effective_policies(areas)
    by_id = {area.id: area for area in areas}
    measures = {}
    for dwelling in dwellings:
        # The response names each dwelling's area: hand it over, no lazy load per dwelling.
        set_committed_value(dwelling, "area", by_id[dwelling.area_id])
        policy = policies[dwelling.area_id]
        capacity = compute_capacity(dwelling, policy)
        occupancy = found[dwelling.id]
        measures[dwelling] = Measure(
            capacity, occupancy, is_over_capacity(capacity, occupancy, policy)
        )
    return measures


def _check_measures(values: dict) -> None:
    if values.get("building_area_m2") is None and values.get("usable_area_m2") is None:
        raise InvalidInput(
            "A dwelling needs its building or usable area.",
            errors={"usable_area_m2": ["Give building_area_m2 or usable_area_m2."]},
        )


def _check_address_code(code: str | None, dwelling_id: int | None = None) -> None:
    """A standard address code (down to the room) names one dwelling."""
    if not code:
        return
    holder = db.session.scalar(sa.select(Dwelling.id).where(Dwelling.address_code == code))
    if holder is not None and holder != dwelling_id:
        raise Conflict(
            "Another dwelling has this standard address code.",
            code="address_code_taken",
            errors={"address_code": ["Taken by another dwelling."]},
        )


def create_dwelling(area: Area, estate: Estate | None, values: dict) -> Dwelling:
    """Register a rental dwelling on a standard address."""
    _check_measures(values)
    if estate is not None and not area.path.startswith(estate.area.path):
        raise InvalidInput(
            "The dwelling's area is outside its estate's area.",
            errors={"area_code": ["Outside the estate's area."]},
        )
    values = dict(values)
    _check_address_code(values.get("address_code"))
    phone = values.pop("landlord_phone", None)
    dwelling = Dwelling(area=area, estate=estate, **values)
    db.session.add(dwelling)
    db.session.flush()
    if phone:
        dwelling.landlord_phone = phone  # bound to the row, so after its id exists
    audit.record(
        "dwelling.create",
        subject_type="dwelling",
        subject_id=dwelling.id,
        area_code=area.code,
        details={
            "status": dwelling.status,
            "rooms": dwelling.rooms,
            "personal_fields": sorted(
                name
                for name, value in (
                    ("landlord_name", values.get("landlord_name")),
                    ("landlord_phone", phone),
                )
                if value
            ),
        },
    )
    signals.dwelling_created.send(dwelling)
    return dwelling


def _audit_details(values: dict) -> dict:
    """What changed, with the landlord's personal fields named but not valued."""
    details: dict = {
        k: str(v) if isinstance(v, Decimal) else v
        for k, v in values.items()
        if k not in PERSONAL_FIELDS
    }
    personal = sorted(k for k in values if k in PERSONAL_FIELDS)
    if personal:
        details["personal_fields"] = personal
    return details


def reveal_landlord(dwelling: Dwelling, identity: Identity) -> dict[str, str | None]:
    """The landlord's name and phone in clear, for a role that may see them; audited."""
    revealed = {"landlord_name": dwelling.landlord_name, "landlord_phone": dwelling.landlord_phone}
    audit.record(
        "dwelling.reveal",
        subject_type="dwelling",
        subject_id=dwelling.id,
        area_code=dwelling.area.code,
        details={
            "fields": sorted(k for k, v in revealed.items() if v is not None),
            "role": identity.role,
        },
    )
    return revealed


def update_dwelling(dwelling: Dwelling, values: dict) -> Dwelling:
    """Change a dwelling's measures, rooms or status; occupants stay."""
    merged = {
        "building_area_m2": dwelling.building_area_m2,
        "usable_area_m2": dwelling.usable_area_m2,
        **values,
    }
    _check_measures(merged)
    for name, value in values.items():
        setattr(dwelling, name, value)
    db.session.flush()
    audit.record(
        "dwelling.update",
        subject_type="dwelling",
        subject_id=dwelling.id,
        area_code=dwelling.area.code,
        details=_audit_details(values),
    )
    signals.dwelling_changed.send(dwelling)
    return dwelling


def create_estate(area: Area, name: str, address: str | None, company: str | None) -> Estate:
    """Add an estate (小区) managed by a property company."""
    estate = Estate(area=area, name=name, address=address, property_company=company)
    db.session.add(estate)
    db.session.flush()
    audit.record("estate.create", subject_type="estate", subject_id=estate.id, area_code=area.code)
    return estate


def landlords_to_examine() -> int:
    """How many dwellings :func:`reencrypt_landlords` looks at (those with a landlord's phone)."""
    return (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Dwelling)
            .where(Dwelling.landlord_phone_enc.is_not(None))
        )
        or 0
    )


def reencrypt_landlords(batch: int = 1000, *, done: Callable[[int], None] | None = None) -> int:
    """Rewrite landlords' phones under the active encryption key (after a rotation).

    Resumable and locked batch by batch as :func:`anjuka.persons.operations.reencrypt_all`.
    """
    from anjuka.core.protect import is_current

    changed = 0
    for rows in locked_batches(Dwelling, Dwelling.landlord_phone_enc.is_not(None), batch=batch):
        for dwelling in rows:
            if dwelling.landlord_phone_enc is not None and not is_current(
                dwelling.landlord_phone_enc
            ):
                dwelling.landlord_phone = dwelling.landlord_phone
                changed += 1
        db.session.flush()
        if done is not None:
            done(len(rows))
    return changed
