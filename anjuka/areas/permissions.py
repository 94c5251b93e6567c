"""Which areas a caller may see, as SQL filters and fetch-and-check helpers."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from anjuka.areas.models import Area
from anjuka.core.db import db
from anjuka.core.errors import NotFound
from anjuka.core.scope import scope_of
from anjuka.core.security import Identity, require_identity


def path_clause(column: sa.SQLColumnExpression[str], paths: tuple[str, ...]) -> ColumnElement[bool]:
    """``column`` (an area path) lies in one of the subtrees ``paths``."""
    return sa.or_(*(column.startswith(p, autoescape=True) for p in paths)) if paths else sa.false()


def areas_in_scope(identity: Identity) -> sa.Select:
    """The ids of the areas inside the caller's subtrees."""
    return sa.select(Area.id).where(path_clause(Area.path, scope_of(identity).area_paths))


def area_filter(identity: Identity) -> ColumnElement[bool]:
    """Areas the caller may see: their subtrees, and the ancestors above them."""
    scope = scope_of(identity)
    if scope.unrestricted:
        return sa.true()
    clauses = [path_clause(Area.path, scope.area_paths)]
    ancestor_codes = {c for p in scope.area_paths for c in p.split("/") if c}
    if ancestor_codes:
        clauses.append(Area.code.in_(ancestor_codes))
    return sa.or_(*clauses)


def area_in_scope(identity: Identity, area: Area) -> bool:
    """Whether ``area`` lies inside the caller's subtrees (not just above them)."""
    scope = scope_of(identity)
    return scope.unrestricted or any(area.path.startswith(p) for p in scope.area_paths)


def get_area_or_404(code: str) -> Area:
    """Fetch an area the caller may see, or 404."""
    identity = require_identity()
    area = db.session.scalar(sa.select(Area).where(Area.code == code, area_filter(identity)))
    if area is None:
        raise NotFound(f"No area {code!r}.", code="area_not_found")
    return area
