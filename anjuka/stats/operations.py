"""Keeping the figures as events happen, reading them back as series, rebuilding them.

Every arrival, departure, dwelling change and policy change moves its
area's figures in the event's own transaction (the handlers below), so a
report reads a few rows per area and day, never the residences. ``rebuild``
recomputes everything from the registry (after a bulk import, or to check
that nothing drifted: a test compares the two).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from anjuka.alerts.models import Alert
from anjuka.areas.models import Area
from anjuka.areas.operations import Policy, effective_policies, effective_policy
from anjuka.core import signals
from anjuka.core.db import Model, db
from anjuka.core.time import as_utc, local_date, local_today, start_of_day
from anjuka.dwellings.models import Dwelling
from anjuka.dwellings.operations import (
    Occupancy,
    compute_capacity,
    is_over_capacity,
    occupancies,
)
from anjuka.residences.models import Residence
from anjuka.stats.models import AreaDay, AreaTotal, DwellingFigure

_BATCH = 1000
INTERVALS = ("day", "week", "month")


def _insert(model: type[Model]) -> PgInsert | SqliteInsert:
    dialect = db.session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(model)


def _add_to(
    model: type[Model], keys: dict[str, object], changes: dict[str, int]
) -> PgInsert | SqliteInsert | None:
    """Adding ``changes`` to the row of ``model`` at ``keys`` (created at zero first), if any."""
    changes = {k: v for k, v in changes.items() if v}
    if not changes:
        return None
    table = model.__table__
    # Every column given (no defaults): a statement that runs as another's CTE
    # gets no Python-side defaults.
    zeros = {c.name: 0 for c in table.columns if c.name not in keys}
    stmt = _insert(model).values(**{**zeros, **keys, **changes})
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + stmt.excluded[name] for name in changes},
    )


def _record(area_id: int, day: date, **changes: int) -> None:
    """Count ``changes`` on ``day`` and, for the ``*_delta`` ones, in the area's totals.

    On PostgreSQL in one statement (the day's upsert runs as a data-modifying
    CTE of the totals' upsert); on SQLite, which has none, in two.
    """
    day_changes = _add_to(AreaDay, {"area_id": area_id, "day": day}, changes)
    totals = {
        name.removesuffix("_delta"): value
        for name, value in changes.items()
        if name.endswith("_delta")
    }
    total_changes = _add_to(AreaTotal, {"area_id": area_id}, totals)
    if day_changes is not None and total_changes is not None and isinstance(day_changes, PgInsert):
        db.session.execute(total_changes.add_cte(day_changes.cte("day_changes")))
        return
    for stmt in (day_changes, total_changes):
        if stmt is not None:
            db.session.execute(stmt)


def remeasure(
    dwellings: Iterable[Dwelling], *, counted: dict[int, Occupancy] | None = None
) -> None:
    """Bring the dwellings' capacity and over-capacity into their areas' figures.

    ``counted`` gives dwellings' residents already counted in this transaction
    (an arrival's, under the dwelling's row lock); the others are counted here.
    """
    dwellings = list(dwellings)
    policies: dict = {}
    today = local_today()
    for start in range(0, len(dwellings), _BATCH):
        batch = dwellings[start : start + _BATCH]
        ids = [d.id for d in batch]
        given = counted or {}
        occupied = {i: given[i] for i in ids} if all(i in given for i in ids) else occupancies(ids)
        known = {
            f.dwelling_id: f
            for f in db.session.scalars(
                sa.select(DwellingFigure).where(DwellingFigure.dwelling_id.in_(ids))
            )
        }
        for dwelling in batch:
            policy = effective_policy(dwelling.area, cache=policies)
            capacity = compute_capacity(dwelling, policy)
            over = is_over_capacity(capacity, occupied[dwelling.id], policy)
            figure = known.get(dwelling.id)
            if figure is None:
                figure = DwellingFigure(
                    dwelling_id=dwelling.id,
                    area_id=dwelling.area_id,
                    capacity=0,
                    over_capacity=False,
                )
                db.session.add(figure)
            _record(
                dwelling.area_id,
                today,
                capacity_delta=capacity.capacity - figure.capacity,
                over_capacity_delta=int(over) - int(figure.over_capacity),
            )
            figure.capacity, figure.over_capacity = capacity.capacity, over
        db.session.flush()


# -- the handlers of the registry's events ------------------------------------------------


def on_arrival(residence: Residence, occupancy: Occupancy | None = None, **_: object) -> None:
    """One more resident, counted on the day they arrived.

    ``occupancy`` is the dwelling's residents with this one, as the arrival
    counted them.
    """
    _record(residence.dwelling.area_id, residence.arrived_on, arrivals=1, residents_delta=1)
    counted = None if occupancy is None else {residence.dwelling_id: occupancy}
    remeasure([residence.dwelling], counted=counted)


def on_departure(residence: Residence, **_: object) -> None:
    """One resident fewer, counted on the day they left."""
    if residence.departed_on is None:
        return
    _record(residence.dwelling.area_id, residence.departed_on, departures=1, residents_delta=-1)
    remeasure([residence.dwelling])


def on_dwelling(dwelling: Dwelling, **_: object) -> None:
    """A new dwelling, or new measures, rooms or status."""
    remeasure([dwelling])


def on_policy_change(area: Area, **_: object) -> None:
    """Every dwelling below the area, measured against the new policy."""
    in_subtree = sa.select(Area.id).where(Area.path.startswith(area.path, autoescape=True))
    last = 0
    while True:
        batch = db.session.scalars(
            sa.select(Dwelling)
            .where(Dwelling.area_id.in_(in_subtree), Dwelling.id > last)
            .order_by(Dwelling.id)
            .limit(_BATCH)
        ).all()
        if not batch:
            return
        remeasure(batch)
        last = batch[-1].id


def connect() -> None:
    """Keep the figures as the registry changes."""
    signals.residence_arrived.connect(on_arrival)
    signals.residence_departed.connect(on_departure)
    signals.dwelling_created.connect(on_dwelling)
    signals.dwelling_changed.connect(on_dwelling)
    signals.policy_changed.connect(on_policy_change)


# -- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """An area's figures for one day, week or month (stocks at its last day)."""

    start: date
    end: date
    residents: int
    capacity: int
    arrivals: int
    departures: int
    over_capacity_dwellings: int
    open_alerts: int


def _periods(start: date, end: date, interval: str) -> list[tuple[date, date]]:
    """The days, weeks (Monday to Sunday) or calendar months from ``start`` to ``end``."""
    periods = []
    current = start
    while current <= end:
        if interval == "day":
            last = current
        elif interval == "week":
            last = current + timedelta(days=6 - current.weekday())
        else:
            following = date(current.year + current.month // 12, current.month % 12 + 1, 1)
            last = following - timedelta(days=1)
        last = min(last, end)
        periods.append((current, last))
        current = last + timedelta(days=1)
    return periods


def _open_alerts(area_ids: sa.Select, days: Sequence[date]) -> dict[date, int]:
    """Alerts live at the end of each of ``days`` (open or acknowledged then)."""
    first, last = min(days), max(days)
    rows = db.session.execute(
        sa.select(Alert.first_seen_at, Alert.resolved_at).where(
            Alert.area_id.in_(area_ids),
            Alert.first_seen_at < start_of_day(last + timedelta(days=1)),
            sa.or_(Alert.resolved_at.is_(None), Alert.resolved_at >= start_of_day(first)),
        )
    ).all()
    counts = dict.fromkeys(days, 0)
    for opened, resolved in rows:
        opened_on = local_date(as_utc(opened))
        closed_on = local_date(as_utc(resolved)) if resolved is not None else None
        for day in days:
            if opened_on <= day and (closed_on is None or closed_on > day):
                counts[day] += 1
    return counts


def series(area_ids: sa.Select, start: date, end: date, interval: str) -> list[Point]:
    """The figures of the areas ``area_ids`` (together) per period from ``start`` to ``end``."""
    totals = db.session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(AreaTotal.residents), 0),
            sa.func.coalesce(sa.func.sum(AreaTotal.capacity), 0),
            sa.func.coalesce(sa.func.sum(AreaTotal.over_capacity), 0),
        ).where(AreaTotal.area_id.in_(area_ids))
    ).one()
    rows = db.session.execute(
        sa.select(
            AreaDay.day,
            sa.func.sum(AreaDay.arrivals),
            sa.func.sum(AreaDay.departures),
            sa.func.sum(AreaDay.residents_delta),
            sa.func.sum(AreaDay.capacity_delta),
            sa.func.sum(AreaDay.over_capacity_delta),
        )
        .where(AreaDay.area_id.in_(area_ids), AreaDay.day >= start)
        .group_by(AreaDay.day)
    ).all()
    flows = {row[0]: row[1:] for row in rows}
    # A stock at the end of a day is the total now less every change after that day.
    after: dict[date, list[int]] = {}
    running = [0, 0, 0]
    for day in sorted((d for d in flows if d > start), reverse=True):
        running = [r + int(v or 0) for r, v in zip(running, flows[day][2:], strict=True)]
        after[day] = list(running)
    ordered_changes = sorted(after)

    def stocks(day: date) -> list[int]:
        later = [d for d in ordered_changes if d > day]
        change = after[later[0]] if later else [0, 0, 0]
        return [int(totals[0]) - change[0], int(totals[1]) - change[1], int(totals[2]) - change[2]]

    periods = _periods(start, end, interval)
    alerts = _open_alerts(area_ids, [last for _, last in periods])
    points = []
    for first, last in periods:
        residents, capacity, over = stocks(last)
        arrivals = sum(int(flows[d][0] or 0) for d in flows if first <= d <= last)
        departures = sum(int(flows[d][1] or 0) for d in flows if first <= d <= last)
        points.append(
            Point(first, last, residents, capacity, arrivals, departures, over, alerts[last])
        )
    return points


# -- rebuilding from the registry ----------------------------------------------------------


@dataclass
class Rebuilt:
    """What ``rebuild`` found."""

    areas: int = 0
    days: int = 0
    dwellings: int = 0
    residents: int = 0
    by_area: dict[int, int] = field(default_factory=dict)


def rebuild() -> Rebuilt:
    """Recompute every figure from the registry (in the caller's transaction).

    Arrivals, departures and residents come back exactly; capacity and
    over-capacity are as they are now, each dwelling's capacity counted from
    the day it was created (earlier changes to it are not recorded anywhere).

    The flows are counted by the database (``INSERT … SELECT … GROUP BY``);
    the dwellings, whose capacity is the Python rule, are measured in
    batches of :data:`_BATCH`: memory holds a batch and a figure per area,
    whatever the size of the registry.
    """
    for model in (AreaDay, AreaTotal, DwellingFigure):
        db.session.execute(sa.delete(model))
    _rebuild_flows()
    over_today = _rebuild_dwellings()
    today = local_today()
    _add_many(
        AreaDay,
        ("area_id", "day"),
        [
            {"area_id": area_id, "day": today, "over_capacity_delta": n}
            for area_id, n in over_today.items()
            if n
        ],
    )
    _rebuild_totals()
    report = Rebuilt()
    report.by_area = {
        area_id: residents
        for area_id, residents in db.session.execute(
            sa.select(AreaTotal.area_id, AreaTotal.residents).where(AreaTotal.residents != 0)
        )
    }
    report.areas = db.session.scalar(sa.select(sa.func.count()).select_from(AreaTotal)) or 0
    report.days = db.session.scalar(sa.select(sa.func.count()).select_from(AreaDay)) or 0
    report.dwellings = (
        db.session.scalar(sa.select(sa.func.count()).select_from(DwellingFigure)) or 0
    )
    report.residents = sum(report.by_area.values())
    return report


def _rebuild_flows() -> None:
    """Arrivals and departures per area and day, counted by the database."""
    arrivals = (
        sa.select(
            Dwelling.area_id.label("area_id"),
            Residence.arrived_on.label("day"),
            sa.literal(1).label("arrived"),
            sa.literal(0).label("departed"),
        )
        .select_from(Residence)
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
    )
    departures = (
        sa.select(
            Dwelling.area_id.label("area_id"),
            Residence.departed_on.label("day"),
            sa.literal(0).label("arrived"),
            sa.literal(1).label("departed"),
        )
        .select_from(Residence)
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
        .where(Residence.departed_on.is_not(None))
    )
    flows = sa.union_all(arrivals, departures).subquery("flows")
    arrived, departed = sa.func.sum(flows.c.arrived), sa.func.sum(flows.c.departed)
    db.session.execute(
        sa.insert(AreaDay).from_select(
            [
                "area_id",
                "day",
                "arrivals",
                "departures",
                "residents_delta",
                "capacity_delta",
                "over_capacity_delta",
            ],
            sa.select(
                flows.c.area_id,
                flows.c.day,
                arrived,
                departed,
                arrived - departed,
                sa.literal(0),
                sa.literal(0),
            ).group_by(flows.c.area_id, flows.c.day),
        )
    )


def _rebuild_dwellings() -> dict[int, int]:
    """Each dwelling's figure, its capacity on the day it was created; over capacity per area."""
    policies: dict[int, Policy] = {}
    over: dict[int, int] = defaultdict(int)
    last = 0
    while True:
        batch = db.session.execute(
            sa.select(
                Dwelling.id,
                Dwelling.area_id,
                Dwelling.building_area_m2,
                Dwelling.usable_area_m2,
                Dwelling.rooms,
                Dwelling.status,
                Dwelling.created_at,
            )
            .where(Dwelling.id > last)
            .order_by(Dwelling.id)
            .limit(_BATCH)
        ).all()
        if not batch:
            return over
        missing = {d.area_id for d in batch} - set(policies)
        if missing:
            effective_policies(
                db.session.scalars(sa.select(Area).where(Area.id.in_(missing))), cache=policies
            )
        occupied = occupancies([d.id for d in batch])
        figures = []
        capacity_days: dict[tuple[int, date], int] = defaultdict(int)
        for dwelling in batch:
            policy = policies[dwelling.area_id]
            measured = compute_capacity(dwelling, policy)  # type: ignore[arg-type]
            is_over = is_over_capacity(measured, occupied[dwelling.id], policy)
            figures.append(
                {
                    "dwelling_id": dwelling.id,
                    "area_id": dwelling.area_id,
                    "capacity": measured.capacity,
                    "over_capacity": is_over,
                }
            )
            created = local_date(as_utc(dwelling.created_at))
            capacity_days[(dwelling.area_id, created)] += measured.capacity
            over[dwelling.area_id] += int(is_over)
        db.session.execute(sa.insert(DwellingFigure), figures)
        _add_many(
            AreaDay,
            ("area_id", "day"),
            [
                {"area_id": area_id, "day": day, "capacity_delta": n}
                for (area_id, day), n in capacity_days.items()
                if n
            ],
        )
        last = batch[-1].id


def _rebuild_totals() -> None:
    """Each area's totals: its current residents, and its dwellings' figures."""
    residents = (
        sa.select(
            Dwelling.area_id.label("area_id"),
            sa.literal(1).label("residents"),
            sa.literal(0).label("capacity"),
            sa.literal(0).label("over"),
        )
        .select_from(Residence)
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
        .where(Residence.departed_on.is_(None))
    )
    figures = sa.select(
        DwellingFigure.area_id.label("area_id"),
        sa.literal(0).label("residents"),
        DwellingFigure.capacity.label("capacity"),
        sa.case((DwellingFigure.over_capacity, 1), else_=0).label("over"),
    )
    both = sa.union_all(residents, figures).subquery("both")
    db.session.execute(
        sa.insert(AreaTotal).from_select(
            ["area_id", "residents", "capacity", "over_capacity"],
            sa.select(
                both.c.area_id,
                sa.func.sum(both.c.residents),
                sa.func.sum(both.c.capacity),
                sa.func.sum(both.c.over),
            ).group_by(both.c.area_id),
        )
    )


def _add_many(model: type[Model], keys: tuple[str, ...], rows: list[dict[str, object]]) -> None:
    """Add each row's figures to ``model``'s row at its keys (created at zero first)."""
    by_columns: dict[tuple[str, ...], list[dict[str, object]]] = defaultdict(list)
    for values in rows:
        by_columns[tuple(sorted(values))].append(values)
    table = model.__table__
    for names, group in by_columns.items():
        changed = [name for name in names if name not in keys]
        stmt = _insert(model)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: table.c[name] + stmt.excluded[name] for name in changed},
        )
        db.session.execute(stmt, group)
