"""Counting a dwelling's current residents (the dwellings domain asks through its counter)."""

from __future__ import annotations

import sqlalchemy as sa

from anjuka.core.db import db
from anjuka.dwellings.operations import Occupancy
from anjuka.residences.models import Residence


def occupancy_columns() -> tuple[sa.ColumnElement[int], ...]:
    """The aggregates of an ``Occupancy`` over current residences grouped by dwelling.

    Occupants, minors, those under the family exception, and minors among them.
    """
    family = Residence.family_relation.is_not(None)
    one = sa.literal(1)
    return (
        sa.func.count(),
        sa.func.count(sa.case((Residence.minor, one))),
        sa.func.count(sa.case((family, one))),
        sa.func.count(sa.case((sa.and_(Residence.minor, family), one))),
    )


def count_occupants(dwelling_ids: list[int]) -> dict[int, Occupancy]:
    """Current residents per dwelling, in one query."""
    rows = db.session.execute(
        sa.select(Residence.dwelling_id, *occupancy_columns())
        .where(Residence.dwelling_id.in_(dwelling_ids), Residence.departed_on.is_(None))
        .group_by(Residence.dwelling_id)
    )
    found = {row[0]: Occupancy(row[1], row[2], row[3], row[4]) for row in rows}
    return {dwelling_id: found.get(dwelling_id, Occupancy()) for dwelling_id in dwelling_ids}
