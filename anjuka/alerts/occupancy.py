"""Over-occupancy and illegal occupation, re-evaluated when their inputs change.

A dwelling is over capacity when its residents exceed what the registration
desk would accept today (``anjuka.dwellings.operations.is_over_capacity``:
minors per policy, the family exception exempt from the per-room limit only,
anyone at all in a dwelling that may hold no one). A dwelling marked
illegal with anyone in it raises ``illegal_dwelling_occupied`` instead of
``over_occupancy``: the more specific alert, not two about one cause.

An ``over_occupancy`` alert lists its causes: ``capacity`` (the registry's
own numbers) and ``headcount`` (an officer saw more people than are
registered). The registry resolves the alert by itself only when no cause is
left; a head count is resolved by a supervisor after a visit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from anjuka.alerts.models import LIVE_STATUSES, Alert
from anjuka.alerts.operations import auto_resolve, raise_alert
from anjuka.areas.models import Area
from anjuka.areas.operations import effective_policy
from anjuka.core.db import db
from anjuka.dwellings.models import Dwelling, DwellingStatus
from anjuka.dwellings.operations import (
    Occupancy,
    compute_capacity,
    is_over_capacity,
    occupancies,
)
from anjuka.residences.models import Residence

OCCUPANCY_KINDS = ("over_occupancy", "illegal_dwelling_occupied")
_BATCH = 1000


@dataclass(frozen=True)
class DwellingState:
    """A dwelling's occupants measured against its capacity."""

    occupants: int
    counted: int
    capacity: int
    area_limit: int
    room_limit: int
    over: bool

    def as_details(self) -> dict:
        return {
            "occupants": self.occupants,
            "counted": self.counted,
            "capacity": self.capacity,
            "area_limit": self.area_limit,
            "room_limit": self.room_limit,
        }


def measure(dwelling: Dwelling, occupancy: Occupancy, cache: dict) -> DwellingState:
    """Count ``dwelling``'s residents the way the registration desk does."""
    policy = effective_policy(dwelling.area, cache=cache)
    capacity = compute_capacity(dwelling, policy)
    return DwellingState(
        occupants=occupancy.occupants,
        counted=occupancy.counted(policy.minors_count),
        capacity=capacity.capacity,
        area_limit=capacity.area_limit,
        room_limit=capacity.room_limit,
        over=is_over_capacity(capacity, occupancy, policy),
    )


def _live_alerts(dwelling_ids: list[int]) -> dict[tuple[str, int], Alert]:
    alerts = db.session.scalars(
        sa.select(Alert).where(
            Alert.kind.in_(OCCUPANCY_KINDS),
            Alert.subject_type == "dwelling",
            Alert.subject_id.in_([str(i) for i in dwelling_ids]),
            Alert.status.in_(LIVE_STATUSES),
        )
    )
    return {(a.kind, int(a.subject_id)): a for a in alerts}


def evaluate(dwellings: Iterable[Dwelling], *, trigger: str, raise_new: bool = True) -> None:
    """Raise or resolve the occupancy alerts of ``dwellings`` after ``trigger``.

    With ``raise_new`` false (a departure) alerts are only resolved: one
    fewer resident never makes a dwelling more crowded.
    """
    dwellings = list(dwellings)
    cache: dict = {}
    for start in range(0, len(dwellings), _BATCH):
        batch = dwellings[start : start + _BATCH]
        ids = [d.id for d in batch]
        occupied = occupancies(ids)
        live = _live_alerts(ids)
        for dwelling in batch:
            state = measure(dwelling, occupied[dwelling.id], cache)
            _apply(dwelling, state, live, trigger=trigger, raise_new=raise_new)


def _apply(
    dwelling: Dwelling,
    state: DwellingState,
    live: dict[tuple[str, int], Alert],
    *,
    trigger: str,
    raise_new: bool,
) -> None:
    illegal = dwelling.status == DwellingStatus.ILLEGAL and state.occupants > 0
    over = dwelling.status != DwellingStatus.ILLEGAL and state.over
    details = {**state.as_details(), "status": dwelling.status, "trigger": trigger}

    occupied = live.get(("illegal_dwelling_occupied", dwelling.id))
    if illegal and raise_new:
        raise_alert(
            "illegal_dwelling_occupied",
            "dwelling",
            dwelling.id,
            area_id=dwelling.area_id,
            details=details,
        )
    elif not illegal and occupied is not None:
        why = (
            "the dwelling is no longer marked illegal"
            if dwelling.status != DwellingStatus.ILLEGAL
            else "no one lives there any more"
        )
        auto_resolve(occupied, why)

    crowded = live.get(("over_occupancy", dwelling.id))
    if over and raise_new:
        raise_alert(
            "over_occupancy",
            "dwelling",
            dwelling.id,
            area_id=dwelling.area_id,
            details={**details, "causes": ["capacity"]},
        )
    elif not over and crowded is not None:
        causes = set(crowded.details.get("causes", ["capacity"])) - {"capacity"}
        if causes:
            crowded.details = {**crowded.details, **details, "causes": sorted(causes)}
            db.session.flush()
        else:
            auto_resolve(
                crowded,
                f"{state.counted} counted residents within capacity {state.capacity}",
            )


def evaluate_subtree(area: Area, *, trigger: str) -> int:
    """Re-evaluate every dwelling below ``area`` that has residents or a live alert.

    Dwellings with neither cannot be over capacity and have nothing to
    resolve, so a policy change reads only the occupied part of the subtree.
    """
    in_subtree = sa.select(Area.id).where(Area.path.startswith(area.path, autoescape=True))
    occupied = (
        sa.select(Residence.dwelling_id)
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
        .where(Residence.departed_on.is_(None), Dwelling.area_id.in_(in_subtree))
        .distinct()
    )
    ids = set(db.session.scalars(occupied))
    alerted = db.session.scalars(
        sa.select(Alert.subject_id).where(
            Alert.kind.in_(OCCUPANCY_KINDS),
            Alert.subject_type == "dwelling",
            Alert.status.in_(LIVE_STATUSES),
            Alert.area_id.in_(in_subtree),
        )
    )
    ids.update(int(i) for i in alerted)
    ordered = sorted(ids)
    for start in range(0, len(ordered), _BATCH):
        chunk = ordered[start : start + _BATCH]
        dwellings = db.session.scalars(
            sa.select(Dwelling).where(Dwelling.id.in_(chunk)).order_by(Dwelling.id)
        ).all()
        evaluate(dwellings, trigger=trigger)
    return len(ordered)


def record_headcount(
    dwelling: Dwelling, observed: int, registered: int, inspection_id: int
) -> Alert:
    """An officer saw more people than are registered: ``over_occupancy`` (headcount)."""
    return raise_alert(
        "over_occupancy",
        "dwelling",
        dwelling.id,
        area_id=dwelling.area_id,
        details={
            "causes": ["headcount"],
            "observed_headcount": observed,
            "registered": registered,
            "inspection_id": inspection_id,
        },
    ).alert
