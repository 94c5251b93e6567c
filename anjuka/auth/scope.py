"""What a caller may see: their scope as SQL filters and fetch-and-check helpers.

Admins see everything. Supervisors and officers see the area subtrees they
are scoped to; managers the estates and dwellings they are scoped to;
auditors see no registry records, only the audit trail. A record outside
the caller's scope reads as 404, never as a leak.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from anjuka.areas.models import Area
from anjuka.core.db import db
from anjuka.core.errors import NotFound
from anjuka.core.security import Identity, require_identity
from anjuka.dwellings.models import Dwelling, Estate

AREA_ROLES = {"supervisor", "officer"}


@dataclass(frozen=True)
class Scope:
    """A user's reach, loaded once per request."""

    unrestricted: bool
    area_paths: tuple[str, ...] = ()
    estate_ids: tuple[int, ...] = ()
    dwelling_ids: tuple[int, ...] = ()


def scope_of(identity: Identity) -> Scope:
    """Load the scope of a user identity."""
    if identity.is_admin:
        return Scope(unrestricted=True)
    if identity.kind != "user":
        return Scope(unrestricted=False)
    cached = identity.extra.get("scope")
    if cached is not None:
        return cached
    user = identity.subject
    area_ids = [s.area_id for s in user.scopes if s.area_id is not None]
    paths: tuple[str, ...] = ()
    if identity.role in AREA_ROLES and area_ids:
        paths = tuple(db.session.scalars(sa.select(Area.path).where(Area.id.in_(area_ids))))
    scope = Scope(
        unrestricted=False,
        area_paths=paths,
        estate_ids=tuple(s.estate_id for s in user.scopes if s.estate_id is not None)
        if identity.role == "manager"
        else (),
        dwelling_ids=tuple(s.dwelling_id for s in user.scopes if s.dwelling_id is not None)
        if identity.role == "manager"
        else (),
    )
    identity.extra["scope"] = scope
    return scope


def home_area_id(user: object) -> int | None:
    """The one area that covers everything a user's scope reaches, or None.

    The area itself for a single area scope, an estate's or a dwelling's area
    for a manager, and the lowest common ancestor when there are several.
    Unscoped users (admins) and scopes in separate trees have none: what
    concerns them is for admins only.
    """
    area_ids: set[int] = set()
    for s in user.scopes:  # type: ignore[attr-defined]
        if s.area_id is not None:
            area_ids.add(s.area_id)
        elif s.estate_id is not None:
            area_ids.add(db.session.get(Estate, s.estate_id).area_id)  # type: ignore[union-attr]
        elif s.dwelling_id is not None:
            area_ids.add(db.session.get(Dwelling, s.dwelling_id).area_id)  # type: ignore[union-attr]
    if not area_ids:
        return None
    paths = [
        [c for c in p.split("/") if c]
        for p in db.session.scalars(sa.select(Area.path).where(Area.id.in_(area_ids)))
    ]
    common: list[str] = []
    for codes in zip(*paths, strict=False):
        if len(set(codes)) != 1:
            break
        common.append(codes[0])
    if not common:
        return None
    return db.session.scalar(sa.select(Area.id).where(Area.code == common[-1]))


def _path_clause(column: ColumnElement, paths: tuple[str, ...]) -> ColumnElement[bool]:
    return sa.or_(*(column.startswith(p, autoescape=True) for p in paths)) if paths else sa.false()


def area_filter(identity: Identity) -> ColumnElement[bool]:
    """Areas the caller may see: their subtrees, and the ancestors above them."""
    scope = scope_of(identity)
    if scope.unrestricted:
        return sa.true()
    clauses = [_path_clause(Area.path, scope.area_paths)]
    ancestor_codes = {c for p in scope.area_paths for c in p.split("/") if c}
    if ancestor_codes:
        clauses.append(Area.code.in_(ancestor_codes))
    return sa.or_(*clauses)


def area_in_scope(identity: Identity, area: Area) -> bool:
    """Whether ``area`` lies inside the caller's subtrees (not just above them)."""
    scope = scope_of(identity)
    return scope.unrestricted or any(area.path.startswith(p) for p in scope.area_paths)


def dwelling_filter(identity: Identity) -> ColumnElement[bool]:
    """Dwellings the caller may see."""
    scope = scope_of(identity)
    if scope.unrestricted:
        return sa.true()
    clauses: list[ColumnElement[bool]] = []
    if scope.area_paths:
        in_areas = sa.select(Area.id).where(_path_clause(Area.path, scope.area_paths))
        clauses.append(Dwelling.area_id.in_(in_areas))
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
        in_areas = sa.select(Area.id).where(_path_clause(Area.path, scope.area_paths))
        clauses.append(Estate.area_id.in_(in_areas))
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


def get_area_or_404(code: str) -> Area:
    """Fetch an area the caller may see, or 404."""
    identity = require_identity()
    area = db.session.scalar(sa.select(Area).where(Area.code == code, area_filter(identity)))
    if area is None:
        raise NotFound(f"No area {code!r}.", code="area_not_found")
    return area


def get_estate_or_404(estate_id: int) -> Estate:
    """Fetch an estate the caller may see, or 404."""
    identity = require_identity()
    estate = db.session.scalar(
        sa.select(Estate).where(Estate.id == estate_id, estate_filter(identity))
    )
    if estate is None:
        raise NotFound(f"No estate {estate_id}.", code="estate_not_found")
    return estate
