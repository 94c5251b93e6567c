"""The supervisor's dashboard and the lists behind its charts: an area's dwellings, a day's
arrivals and departures.

The figures come from the statistics' report (kept as events happen), the
lists from the registry under the caller's scope. These pages decide
nothing: they read the replica where one is configured. Names are masked:
nothing here reveals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from flask import request, url_for
from flask_babel import lazy_gettext as l_
from sqlalchemy.orm import selectinload

from anjuka.alerts.models import ALERT_KINDS
from anjuka.areas.models import Area
from anjuka.areas.permissions import get_area_or_404
from anjuka.core.db import db
from anjuka.core.errors import NotFound
from anjuka.core.privacy import mask_name
from anjuka.core.replica import reads_replica
from anjuka.core.scope import scope_of
from anjuka.core.security import Identity, require_identity, requires
from anjuka.core.time import local_today
from anjuka.dwellings.models import Dwelling
from anjuka.dwellings.operations import capacity_of, occupancies
from anjuka.dwellings.permissions import dwelling_filter
from anjuka.residences.models import Residence
from anjuka.stats.api import AreaFigures, areas_below, areas_within, occupancy_report
from anjuka.stats.models import DwellingFigure
from anjuka.web import charts
from anjuka.web.pages import blp, render
from anjuka.web.supervise import KIND_NAMES, SUPERVISORS, AlertFilters, filtered_alerts, paged

#: How far back the dashboard looks, in days.
WINDOWS = (7, 30, 90)
DEFAULT_WINDOW = 30

DWELLING_STATUS_NAMES = {
    "rentable": l_("Rentable"),
    "illegal": l_("Illegal structure"),
    "not_for_rent": l_("Not for rent"),
}


def _window() -> int:
    try:
        days = int(request.args.get("days", DEFAULT_WINDOW))
    except ValueError:
        return DEFAULT_WINDOW
    return days if days in WINDOWS else DEFAULT_WINDOW


def _trail(identity: Identity, area: Area | None) -> list[Area]:
    """The areas from the caller's top down to ``area``, for the way back up."""
    if area is None:
        return []
    scope = scope_of(identity)
    codes = area.ancestor_codes
    found = {
        a.code: a for a in db.session.scalars(sa.select(Area).where(Area.code.in_(codes))).all()
    }
    trail = [found[c] for c in codes if c in found]
    if not scope.unrestricted:
        trail = [
            a for a in trail if any(a.path.startswith(p) for p in scope.area_paths) or a is area
        ]
    return trail


def alerts_by_kind(identity: Identity, area: Area | None) -> dict[str, int]:
    """Live alerts per kind, counted as the inbox lists them."""
    filters = AlertFilters(kind=None, status="live", severity=None, area=area)
    listed = filtered_alerts(identity, filters).order_by(None).subquery()
    rows = db.session.execute(
        sa.select(listed.c.kind, sa.func.count()).group_by(listed.c.kind)
    ).all()
    counts = {kind: int(count) for kind, count in rows}
    return {kind: counts[kind] for kind in ALERT_KINDS if counts.get(kind)}


@blp.route("/dashboard")
@requires(*SUPERVISORS)
@reads_replica
def dashboard() -> tuple[str, int]:
    """Occupancy against capacity by area, arrivals and departures per day, open alerts by
    kind and the over-capacity dwellings: each chart a way into the list behind it."""
    identity = require_identity()
    code = request.args.get("area") or None
    area = get_area_or_404(code) if code else None
    tops = areas_below(identity, None)
    if area is None and len(tops) == 1:
        area, code = tops[0], tops[0].code  # one district: start inside it
    days = _window()
    end = local_today()
    report = occupancy_report(identity, area, end - timedelta(days=days - 1), end, "day")
    now = report.series[-1]
    by_area = list(report.areas)
    if not by_area and area is not None:
        by_area = [AreaFigures(area, now)]  # a community has no areas below: itself
    here: dict[str, Any] = {"area": code} if code else {}
    occupancy_rows = [
        charts.Row(
            label=a.area.name,
            value=a.figures.residents,
            reference=a.figures.capacity,
            href=url_for("web.supervise_dwellings", area=a.area.code),
            caption=f"{a.figures.residents} / {a.figures.capacity}",
        )
        for a in by_area
    ]
    over_rows = [
        charts.Row(
            label=a.area.name,
            value=a.figures.over_capacity_dwellings,
            href=url_for("web.supervise_dwellings", area=a.area.code, over=1),
            caption=str(a.figures.over_capacity_dwellings),
        )
        for a in by_area
    ]
    kinds = alerts_by_kind(identity, area)
    kind_rows = [
        charts.Row(
            label=str(KIND_NAMES[kind]),
            value=count,
            href=url_for("web.supervise", kind=kind, status="live", **here),
            caption=str(count),
        )
        for kind, count in kinds.items()
    ]
    day_pairs = [
        charts.Pair(
            label=point.end.strftime("%m-%d"),
            first=point.arrivals,
            second=point.departures,
            href=url_for("web.supervise_day", day=point.end.isoformat(), **here),
        )
        for point in report.series
    ]
    return render(
        "web/supervise/dashboard.html",
        area=area,
        trail=_trail(identity, area),
        several_tops=len(tops) > 1,
        days=days,
        windows=WINDOWS,
        report=report,
        now=now,
        by_area=by_area,
        kinds=kinds,
        kind_names=KIND_NAMES,
        open_alerts=sum(kinds.values()),
        arrivals=sum(p.arrivals for p in report.series),
        departures=sum(p.departures for p in report.series),
        occupancy_chart=charts.horizontal_bars(occupancy_rows),
        over_chart=charts.horizontal_bars(over_rows, width=charts.HALF_WIDTH),
        kind_chart=charts.horizontal_bars(kind_rows, width=charts.HALF_WIDTH, label_width=170),
        day_chart=charts.paired_columns(day_pairs),
        here=here,
    )


@dataclass(frozen=True)
class DwellingLine:
    dwelling: Dwelling
    occupants: int
    capacity: int
    over: bool

    @property
    def percent(self) -> int:
        if self.capacity <= 0:
            return 100 if self.occupants else 0
        return min(100, round(100 * self.occupants / self.capacity))


@blp.route("/dashboard/dwellings")
@requires(*SUPERVISORS)
@reads_replica
def supervise_dwellings() -> tuple[str, int]:
    """An area's dwellings with their occupants against capacity (or only those over it)."""
    identity = require_identity()
    code = request.args.get("area") or None
    area = get_area_or_404(code) if code else None
    over = request.args.get("over") == "1"
    stmt = (
        sa.select(Dwelling)
        .outerjoin(DwellingFigure, DwellingFigure.dwelling_id == Dwelling.id)
        .where(Dwelling.area_id.in_(areas_within(identity, area)), dwelling_filter(identity))
        .options(selectinload(Dwelling.area))
    )
    if over:
        stmt = stmt.where(DwellingFigure.over_capacity.is_(True))
    stmt = stmt.order_by(
        sa.func.coalesce(DwellingFigure.over_capacity, False).desc(), Dwelling.address, Dwelling.id
    )
    listed = paged(stmt, "web.supervise_dwellings", {"area": code, "over": "1" if over else None})
    occupied = occupancies([d.id for d in listed.items])
    figures = {
        f.dwelling_id: f
        for f in db.session.scalars(
            sa.select(DwellingFigure).where(
                DwellingFigure.dwelling_id.in_([d.id for d in listed.items])
            )
        )
    }
    cache: dict = {}
    lines = []
    for dwelling in listed.items:
        figure = figures.get(dwelling.id)
        lines.append(
            DwellingLine(
                dwelling=dwelling,
                occupants=occupied[dwelling.id].occupants,
                capacity=capacity_of(dwelling, cache).capacity,
                over=bool(figure and figure.over_capacity),
            )
        )
    return render(
        "web/supervise/dwellings.html",
        area=area,
        over=over,
        listed=listed,
        lines=lines,
        dwelling_status_names=DWELLING_STATUS_NAMES,
    )


@blp.route("/dashboard/days/<day>")
@requires(*SUPERVISORS)
@reads_replica
def supervise_day(day: str) -> tuple[str, int]:
    """The arrivals and departures of one day in an area (the day's columns on the chart)."""
    identity = require_identity()
    try:
        chosen = date.fromisoformat(day)
    except ValueError:
        raise NotFound("No such day.", code="not_found") from None
    code = request.args.get("area") or None
    area = get_area_or_404(code) if code else None
    visible = (
        sa.select(Residence)
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
        .where(Dwelling.area_id.in_(areas_within(identity, area)), dwelling_filter(identity))
        .options(selectinload(Residence.person), selectinload(Residence.dwelling))
    )
    args = {"day": day, "area": code}
    arrivals = paged(
        visible.where(Residence.arrived_on == chosen).order_by(Residence.id),
        "web.supervise_day",
        args,
    )
    departures = paged(
        visible.where(Residence.departed_on == chosen).order_by(Residence.id),
        "web.supervise_day",
        args,
    )
    return render(
        "web/supervise/day.html",
        day=chosen,
        area=area,
        arrivals=arrivals,
        departures=departures,
        mask_name=mask_name,
        previous_day=url_for(
            "web.supervise_day", day=(chosen - timedelta(days=1)).isoformat(), area=code
        ),
        next_day=url_for(
            "web.supervise_day", day=(chosen + timedelta(days=1)).isoformat(), area=code
        )
        if chosen < local_today()
        else None,
    )
