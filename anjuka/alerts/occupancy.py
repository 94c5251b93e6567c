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
from sqlalchemy.orm import aliased, selectinload

from anjuka.alerts.models import LIVE_STATUSES, Alert
from anjuka.alerts.operations import auto_resolve, merge_details, raise_alert
from anjuka.areas.models import Area
from anjuka.areas.operations import DEFAULT_POLICY, effective_policies, effective_policy
from anjuka.core.db import db
from anjuka.dwellings.models import Dwelling, DwellingStatus
from anjuka.dwellings.operations import (
    Occupancy,
    compute_capacity,
    is_over_capacity,
    occupancies,
)
from anjuka.residences.models import Residence
from anjuka.residences.occupancy import occupancy_columns

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


def evaluate(
    dwellings: Iterable[Dwelling],
    *,
    trigger: str,
    raise_new: bool = True,
    repeat: bool = True,
    counted: dict[int, Occupancy] | None = None,
) -> None:
    """Raise or resolve the occupancy alerts of ``dwellings`` after ``trigger``.

    With ``raise_new`` false (a departure) alerts are only resolved: one
    fewer resident never makes a dwelling more crowded. With ``repeat`` false
    (a reconciliation) an alert already live is not raised again: its count
    and last sighting stay, only its facts are brought up to date.
    ``counted`` gives dwellings' residents already counted in this
    transaction; the others are counted here.
    """
    dwellings = list(dwellings)
    cache: dict = {}
    for start in range(0, len(dwellings), _BATCH):
        batch = dwellings[start : start + _BATCH]
        ids = [d.id for d in batch]
        given = counted or {}
        occupied = {i: given[i] for i in ids if i in given}
        occupied.update(occupancies([i for i in ids if i not in given]))
        live = _live_alerts(ids)
        # Every area's policy in one query for the batch, not one per area.
        effective_policies({d.area_id: d.area for d in batch}.values(), cache=cache)
        for dwelling in batch:
            state = measure(dwelling, occupied[dwelling.id], cache)
            _apply(dwelling, state, live, trigger=trigger, raise_new=raise_new, repeat=repeat)


def _apply(
    dwelling: Dwelling,
    state: DwellingState,
    live: dict[tuple[str, int], Alert],
    *,
    trigger: str,
    raise_new: bool,
    repeat: bool = True,
) -> None:
    illegal = dwelling.status == DwellingStatus.ILLEGAL and state.occupants > 0
    over = dwelling.status != DwellingStatus.ILLEGAL and state.over
    details = {**state.as_details(), "status": dwelling.status, "trigger": trigger}

    occupied = live.get(("illegal_dwelling_occupied", dwelling.id))
    if illegal and occupied is not None and not repeat:
        _bring_up_to_date(occupied, dwelling, details)
    elif illegal and raise_new:
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
    if over and crowded is not None and not repeat:
        _bring_up_to_date(crowded, dwelling, {**details, "causes": ["capacity"]})
    elif over and raise_new:
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


def _bring_up_to_date(alert: Alert, dwelling: Dwelling, details: dict) -> None:
    """A live alert whose cause stands: its facts as now, written only if they changed.

    The trigger stays the one that raised it, so a reconciliation that finds
    nothing new writes nothing.
    """
    facts = {k: v for k, v in details.items() if k != "trigger"}
    merged = merge_details(alert.details or {}, facts)
    if merged != alert.details:
        alert.details = merged
    if alert.area_id != dwelling.area_id:
        alert.area_id = dwelling.area_id


def _policies() -> sa.CTE:
    """Each area's inherited capacity policy (area basis, m² per person, persons per room)."""
    roots = sa.select(
        Area.id.label("area_id"),
        Area.min_area_per_person_m2.label("per_person"),
        Area.area_basis.label("basis"),
        Area.max_persons_per_room.label("per_room"),
    ).where(Area.parent_id.is_(None))
    tree = roots.cte("policy", recursive=True)
    child = aliased(Area)
    return tree.union_all(
        sa.select(
            child.id,
            sa.func.coalesce(child.min_area_per_person_m2, tree.c.per_person),
            sa.func.coalesce(child.area_basis, tree.c.basis),
            sa.func.coalesce(child.max_persons_per_room, tree.c.per_room),
        ).join(tree, child.parent_id == tree.c.area_id)
    )


def candidate_occupancies(area: Area) -> dict[int, Occupancy | None]:
    """The dwellings below ``area`` that the capacity rule may flag, or that hold a live alert.

    Each with its current residents as counted in the same statement (None
    for a dwelling found by its alert alone: it is counted when measured).
    One statement. A dwelling is a candidate when it holds anyone and may
    hold no one (illegal, not for rent), or when its current residents
    exceed the smaller of its area and room limits under the inherited
    policy. Every resident is counted: leaving out minors and the family
    exception only lowers the count, so the Python rule (``measure``) decides
    among the candidates and no over-capacity dwelling is missed. The area
    limit is compared as ``residents × m² per person > area`` rather than
    floored, which is the same for whole numbers of residents. PostgreSQL's
    numeric is exact; on SQLite (floating point) the measures are in
    hundredths of a m², so a product over its area is over by at least 0.01,
    far beyond rounding.
    """
    in_subtree = sa.select(Area.id).where(Area.path.startswith(area.path, autoescape=True))
    policy = _policies()
    occupied = (
        sa.select(
            Residence.dwelling_id,
            *(
                column.label(name)
                for column, name in zip(
                    occupancy_columns(),
                    ("residents", "minors", "family", "minor_family"),
                    strict=True,
                )
            ),
        )
        .where(Residence.departed_on.is_(None))
        .group_by(Residence.dwelling_id)
        .subquery("occupied")
    )
    per_person = sa.func.coalesce(policy.c.per_person, DEFAULT_POLICY["min_area_per_person_m2"])
    per_room = sa.func.coalesce(policy.c.per_room, DEFAULT_POLICY["max_persons_per_room"])
    basis = sa.func.coalesce(policy.c.basis, DEFAULT_POLICY["area_basis"])
    measured = sa.case(
        (basis == "building", sa.func.coalesce(Dwelling.building_area_m2, Dwelling.usable_area_m2)),
        else_=sa.func.coalesce(Dwelling.usable_area_m2, Dwelling.building_area_m2),
    )
    residents = occupied.c.residents
    crowded = (
        sa.select(
            Dwelling.id,
            occupied.c.residents,
            occupied.c.minors,
            occupied.c.family,
            occupied.c.minor_family,
        )
        .join(occupied, occupied.c.dwelling_id == Dwelling.id)
        .join(policy, policy.c.area_id == Dwelling.area_id)
        .where(
            Dwelling.area_id.in_(in_subtree),
            sa.or_(
                Dwelling.status != DwellingStatus.RENTABLE,
                residents > Dwelling.rooms * per_room,
                residents * per_person > sa.func.coalesce(measured, 0),
            ),
        )
    )
    alerted = sa.select(Alert.subject_id).where(
        Alert.kind.in_(OCCUPANCY_KINDS),
        Alert.subject_type == "dwelling",
        Alert.status.in_(LIVE_STATUSES),
        Alert.area_id.in_(in_subtree),
    )
    found: dict[int, Occupancy | None] = {
        row[0]: Occupancy(row[1], row[2], row[3], row[4]) for row in db.session.execute(crowded)
    }
    for subject_id in db.session.scalars(alerted):
        found.setdefault(int(subject_id), None)
    return found


def candidates(area: Area) -> list[int]:
    """The ids of :func:`candidate_occupancies`, in order."""
    return sorted(candidate_occupancies(area))


def evaluate_subtree(area: Area, *, trigger: str) -> int:
    """Reconcile the occupancy alerts of every dwelling below ``area``; how many were examined.

    One SQL statement finds the candidates (``candidate_occupancies``): the
    dwellings that may be over capacity, with their residents counted on the
    way, and those with a live alert. Only they are loaded and measured by
    the desk's rule, and an alert is raised for a
    candidate over capacity without one and resolved for one whose cause is
    gone; a live alert whose cause stands is not raised again
    (docs/alerts.md, "Reconciliation").
    """
    found = candidate_occupancies(area)
    counted = {i: occupancy for i, occupancy in found.items() if occupancy is not None}
    ordered = sorted(found)
    for start in range(0, len(ordered), _BATCH):
        chunk = ordered[start : start + _BATCH]
        dwellings = db.session.scalars(
            sa.select(Dwelling)
            .where(Dwelling.id.in_(chunk))
            .order_by(Dwelling.id)
            .options(selectinload(Dwelling.area))
        ).all()
        evaluate(dwellings, trigger=trigger, repeat=False, counted=counted)
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
