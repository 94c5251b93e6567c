"""Which estates and dwellings a caller may see, as SQL filters and fetch-and-check helpers."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

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


def get_dwelling_or_404(dwelling_id: int, *, for_update: bool = False) -> Dwelling:
    """Fetch a dwelling the caller may see, or 404 (optionally locking its row)."""
    identity = require_identity()
    query = sa.select(Dwelling).where(Dwelling.id == dwelling_id, dwelling_filter(identity))
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    dwelling = db.session.scalar(query)
    if dwelling is None:
        raise NotFound(f"No dwelling {dwelling_id}.", code="dwelling_not_found")
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
