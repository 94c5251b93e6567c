"""Dwellings and their capacity under the area's policy."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

import sqlalchemy as sa

from anjuka.areas.models import Area
from anjuka.areas.operations import Policy, effective_policy
from anjuka.audit import operations as audit
from anjuka.core import signals
from anjuka.core.errors import InvalidInput
from anjuka.dwellings.models import Dwelling, Estate
from anjuka.extensions import db


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
    measure, the other one stands in (documented in README, "Occupancy").
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
    if dwelling.status != "rentable":
        return Capacity(0, area_limit, room_limit, policy.area_basis, measured, dwelling.status)
    return Capacity(
        min(area_limit, room_limit), area_limit, room_limit, policy.area_basis, measured, None
    )


def capacity_of(dwelling: Dwelling, cache: dict | None = None) -> Capacity:
    return compute_capacity(dwelling, effective_policy(dwelling.area, cache=cache))


def occupant_counts(dwelling_ids: list[int]) -> dict[int, int]:
    """Current residents per dwelling."""
    from anjuka.residences.models import Residence  # residences build on dwellings

    if not dwelling_ids:
        return {}
    rows = db.session.execute(
        sa.select(Residence.dwelling_id, sa.func.count())
        .where(Residence.dwelling_id.in_(dwelling_ids), Residence.departed_on.is_(None))
        .group_by(Residence.dwelling_id)
    )
    counts = dict.fromkeys(dwelling_ids, 0)
    counts.update({dwelling_id: n for dwelling_id, n in rows})
    return counts


def _check_measures(values: dict) -> None:
    if values.get("building_area_m2") is None and values.get("usable_area_m2") is None:
        raise InvalidInput(
            "A dwelling needs its building or usable area.",
            errors={"usable_area_m2": ["Give building_area_m2 or usable_area_m2."]},
        )


def create_dwelling(area: Area, estate: Estate | None, values: dict) -> Dwelling:
    """Register a rental dwelling on a standard address."""
    _check_measures(values)
    if estate is not None and not area.path.startswith(estate.area.path):
        raise InvalidInput(
            "The dwelling's area is outside its estate's area.",
            errors={"area_code": ["Outside the estate's area."]},
        )
    dwelling = Dwelling(area=area, estate=estate, **values)
    db.session.add(dwelling)
    db.session.flush()
    audit.record(
        "dwelling.create",
        subject_type="dwelling",
        subject_id=dwelling.id,
        area_code=area.code,
        details={"status": dwelling.status, "rooms": dwelling.rooms},
    )
    return dwelling


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
        details={k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()},
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
