"""Which estates and dwellings a caller may see, as SQL filters and fetch-and-check helpers."""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ColumnElement

from anjuka.areas.models import Area
from anjuka.areas.permissions import areas_in_scope
from anjuka.core.db import db
from anjuka.core.errors import NotFound
from anjuka.core.scope import scope_of
from anjuka.core.security import Identity, require_identity
from anjuka.dwellings.models import Dwelling, Estate


def dwelling_filter(identity: Identity) -> ColumnElement[bool]:
    """Dwellings the caller may see."""
    scope = scope_of(identity)
    if scope.unrestricted:
        return sa.true()
    clauses: list[ColumnElement[bool]] = []
    if scope.area_paths:
        clauses.append(Dwelling.area_id.in_(areas_in_scope(identity)))
    if scope.estate_ids:
        clauses.append(Dwelling.estate_id.in_(scope.estate_ids))
    if scope.dwelling_ids:
        clauses.append(Dwelling.id.in_(scope.dwelling_ids))
    return sa.or_(*clauses) if clauses else sa.false()


def estate_filter(identity: Identity) -> ColumnElement[bool]:
    """Estates the caller may see."""
    scope = scope_of(identity)
    if scope.unrestricted:
        return sa.true()
    clauses: list[ColumnElement[bool]] = []
    if scope.area_paths:
        clauses.append(Estate.area_id.in_(areas_in_scope(identity)))
    if scope.estate_ids:
        clauses.append(Estate.id.in_(scope.estate_ids))
    return sa.or_(*clauses) if clauses else sa.false()


@functools.cache
def _dwelling_with_area_path() -> sa.Select:
    """A dwelling (``:dwelling_id``) with the areas of its path: built once, then reused.

    Built afresh for each request, the recursive CTE's construction cost more
    Python than the rest of the look-up.
    """
    dwelling_id = sa.bindparam("dwelling_id", type_=sa.Integer)
    own = sa.select(Dwelling.area_id).where(Dwelling.id == dwelling_id).scalar_subquery()
    return sa.select(Dwelling, Area).join(Area, in_area_path(own)).where(Dwelling.id == dwelling_id)


def get_dwelling_or_404(dwelling_id: int, *, for_update: bool = False) -> Dwelling:
    """Fetch a dwelling the caller may see, or 404 (optionally locking its row)."""
    identity = require_identity()
    query = _dwelling_with_area_path().where(dwelling_filter(identity))
    if for_update:
        query = query.with_for_update(of=Dwelling).execution_options(populate_existing=True)
    rows = db.session.execute(query, {"dwelling_id": dwelling_id}).all()
    if not rows:
        raise NotFound(f"No dwelling {dwelling_id}.", code="dwelling_not_found")
    return keep_area_path(rows[0][0], [row[1] for row in rows])


def in_area_path(area_id: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
    """``Area`` rows from area ``area_id`` up to the root: a recursive CTE over parent_id.

    Joined to a dwelling's row, it brings the areas its inherited policy
    needs in the same statement; :func:`keep_area_path` then hangs them on the
    dwelling, and ``areas.operations.effective_policy`` reads them from there
    instead of fetching them again.
    """
    path = (
        sa.select(Area.id, Area.parent_id)
        .where(Area.id == area_id)
        .cte("area_path", recursive=True)
    )
    above = sa.orm.aliased(Area)
    path = path.union_all(sa.select(above.id, above.parent_id).where(above.id == path.c.parent_id))
    return Area.id.in_(sa.select(path.c.id))


def keep_area_path(dwelling: Dwelling, areas: list[Area]) -> Dwelling:
    """Hang the areas of ``dwelling``'s path on it (its area, each area's parent).

    The session holds objects weakly: hung there they stay, as if loaded by
    those relationships, for as long as the dwelling does.
    """
    by_id = {area.id: area for area in areas}
    set_committed_value(dwelling, "area", by_id[dwelling.area_id])
    for area in by_id.values():
        if area.parent_id in by_id:
            set_committed_value(area, "parent", by_id[area.parent_id])
    return dwelling


def get_estate_or_404(estate_id: int) -> Estate:
    """Fetch an estate the caller may see, or 404."""
    identity = require_identity()
    estate = db.session.scalar(
        sa.select(Estate).where(Estate.id == estate_id, estate_filter(identity))
    )
    if estate is None:
        raise NotFound(f"No estate {estate_id}.", code="estate_not_found")
    return estate
