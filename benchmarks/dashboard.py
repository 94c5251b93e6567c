"""The dashboard row of ``benchmarks/run``: the supervisor dashboard's queries over the city.

The app side is what ``GET /supervise/dashboard`` asks of the database for
an admin at the city: ``stats.api.occupancy_report`` (the city's 30-day
series by day, and each district's figures today, from the figures kept as
events happen) and the live alerts per kind as the inbox counts them. The
reference computes the same figures from the registry's own tables in
hand-written SQL: each district's residents, capacity and over-capacity
dwellings (policy inherited down the tree; minors and the family exception
left out), the city's arrivals and departures per day, the live alerts per
kind.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import psycopg
from flask import Flask

from benchmarks.under_gunicorn import POLICY_CTE

DISTRICTS_SQL = (
    POLICY_CTE  # noqa: S608 (constants only)
    + """
, occupied AS (
    SELECT dwelling_id, count(*) AS n FROM residences
    WHERE departed_on IS NULL GROUP BY dwelling_id
)
SELECT split_part(a.path, '/', 3) AS district,
       sum(COALESCE(o.n, 0)) AS residents,
       sum(CASE WHEN c.status = 'rentable' THEN LEAST(c.area_limit, c.room_limit) ELSE 0 END),
       count(*) FILTER (WHERE o.n > CASE WHEN c.status = 'rentable'
                                        THEN LEAST(c.area_limit, c.room_limit) ELSE 0 END)
FROM capacity c
JOIN dwellings d ON d.id = c.id
JOIN areas a ON a.id = d.area_id
LEFT JOIN occupied o ON o.dwelling_id = c.id
GROUP BY 1 ORDER BY 1
"""
)

ALERTS_SQL = """
SELECT kind, count(*) FROM alerts WHERE status IN ('open', 'acknowledged') GROUP BY kind
"""


def dashboard(app: Flask, url: str, timed: Callable[..., float], stats_sql: str) -> dict:
    """Median seconds of each side (5 runs) and the figures both found."""
    import sqlalchemy as sa

    from anjuka.areas.models import Area
    from anjuka.core.db import db
    from anjuka.core.security import Identity
    from anjuka.core.time import local_today
    from anjuka.stats.api import occupancy_report
    from anjuka.web.dashboard import alerts_by_kind

    end = local_today()
    start = end - timedelta(days=29)
    admin = Identity(kind="user", id=0, name="benchmark", role="admin")
    found: dict = {}

    def app_side() -> None:
        root = db.session.scalar(
            sa.select(Area).where(Area.parent_id.is_(None)).order_by(Area.id).limit(1)
        )
        report = occupancy_report(admin, root, start, end, "day")
        kinds = alerts_by_kind(admin, root)
        found["residents"] = report.series[-1].residents
        found["districts"] = len(report.areas)
        found["district_residents"] = sum(a.figures.residents for a in report.areas)
        found["alerts"] = sum(kinds.values())
        db.session.rollback()

    def by_hand() -> None:
        with psycopg.connect(url) as conn:
            districts = conn.execute(DISTRICTS_SQL).fetchall()
            flows = conn.execute(stats_sql, {"start": start}).fetchall()
            kinds = conn.execute(ALERTS_SQL).fetchall()
        found["sql_districts"] = sum(1 for d in districts if d[0])
        found["sql_residents"] = int(sum(d[1] for d in districts))
        found["sql_flow_days"] = len(flows)
        found["sql_alerts"] = sum(k[1] for k in kinds)

    with app.app_context():
        result = {"app": timed(app_side, repeat=5), "reference": timed(by_hand, repeat=5)}
        db.session.remove()
    return {**result, **found}
