"""Occupancy statistics by area over time (``GET /stats/occupancy``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa
from flask_smorest import Blueprint

from anjuka.areas.models import Area
from anjuka.areas.permissions import get_area_or_404, path_clause
from anjuka.core.db import db
from anjuka.core.errors import InvalidInput
from anjuka.core.replica import reads_replica
from anjuka.core.scope import scope_of
from anjuka.core.security import Identity, require_identity, requires
from anjuka.core.time import local_today
from anjuka.stats.operations import Point, series
from anjuka.stats.schemas import OccupancyQuerySchema, OccupancySchema

blp = Blueprint("stats", __name__, description="Occupancy statistics by area over time")
#: At most this many periods in one answer (a year and a day of days).
MAX_PERIODS = 367


@dataclass(frozen=True)
class AreaFigures:
    area: Area
    figures: Point


@dataclass(frozen=True)
class Occupancy:
    area_code: str | None
    interval: str
    start: date
    end: date
    series: list[Point]
    areas: list[AreaFigures]


def areas_within(identity: Identity, area: Area | None) -> sa.Select:
    """The ids of the areas under ``area`` (or everywhere) that the caller's scope reaches."""
    scope = scope_of(identity)
    clauses = []
    if area is not None:
        clauses.append(Area.path.startswith(area.path, autoescape=True))
    if not scope.unrestricted:
        clauses.append(path_clause(Area.path, scope.area_paths))
    return sa.select(Area.id).where(*clauses)


def areas_below(identity: Identity, area: Area | None) -> list[Area]:
    """The areas one level below ``area`` (or the caller's top areas) that the scope reaches."""
    scope = scope_of(identity)
    if area is not None:
        candidates = db.session.scalars(
            sa.select(Area).where(Area.parent_id == area.id).order_by(Area.code)
        ).all()
    elif scope.unrestricted:
        candidates = db.session.scalars(
            sa.select(Area).where(Area.parent_id.is_(None)).order_by(Area.code)
        ).all()
    else:
        candidates = db.session.scalars(
            sa.select(Area).where(Area.path.in_(scope.area_paths)).order_by(Area.code)
        ).all()
    if scope.unrestricted:
        return list(candidates)
    return [
        a
        for a in candidates
        if any(a.path.startswith(p) or p.startswith(a.path) for p in scope.area_paths)
    ]


@blp.route("/stats/occupancy", methods=["GET"])
@blp.arguments(OccupancyQuerySchema, location="query")
@blp.response(200, OccupancySchema)
@requires("supervisor", "officer")
@reads_replica
def occupancy(query: dict):
    """Residents, capacity, arrivals, departures, over-capacity dwellings and open alerts.

    Per day, week (Monday to Sunday) or month from ``from`` to ``to``, over
    the area's subtree as far as the caller's scope reaches, and for each
    area one level below on ``to``. Read from figures kept as events happen,
    not from the residences.
    """
    identity = require_identity()
    area = get_area_or_404(query["area_code"]) if "area_code" in query else None
    end = query.get("to") or local_today()
    start = query.get("from_") or end - timedelta(days=29)
    if start > end:
        raise InvalidInput("'from' is after 'to'.", errors={"from": ["After 'to'."]})
    if (end - start).days >= MAX_PERIODS and query["interval"] == "day":
        raise InvalidInput(
            f"At most {MAX_PERIODS} days at a time; ask for weeks or months.",
            errors={"from": ["Too far back for days."]},
        )
    return occupancy_report(identity, area, start, end, query["interval"])


def occupancy_report(
    identity: Identity, area: Area | None, start: date, end: date, interval: str
) -> Occupancy:
    """The figures of ``area`` (or all the caller's areas) and of each area one level below.

    What ``GET /stats/occupancy`` answers, for the pages to draw from too.
    """
    areas = [
        AreaFigures(child, series(areas_within(identity, child), end, end, "day")[0])
        for child in areas_below(identity, area)
    ]
    return Occupancy(
        area_code=area.code if area is not None else None,
        interval=interval,
        start=start,
        end=end,
        series=series(areas_within(identity, area), start, end, interval),
        areas=areas,
    )
