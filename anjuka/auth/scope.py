"""Users' scopes, loaded for ``anjuka.core.scope`` (each domain filters by it itself)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from anjuka.areas.models import Area
from anjuka.core.db import db
from anjuka.core.scope import Scope
from anjuka.core.security import Identity
from anjuka.dwellings.models import Dwelling, Estate

if TYPE_CHECKING:
    from anjuka.auth.models import User

AREA_ROLES = {"supervisor", "officer"}


def load_scope(identity: Identity) -> Scope:
    """The scope of a (non-admin) user identity, from the user's scope rows."""
    user = identity.subject
    paths: tuple[str, ...] = ()
    if identity.role in AREA_ROLES:
        # The token's resolver loaded each scope's area with the user (one statement).
        paths = tuple(s.area.path for s in user.scopes if s.area is not None)
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
    return scope


def home_area_id(user: User) -> int | None:
    """The one area that covers everything a user's scope reaches, or None.

    The area itself for a single area scope, an estate's or a dwelling's area
    for a manager, and the lowest common ancestor when there are several.
    Unscoped users (admins) and scopes in separate trees have none: what
    concerns them is for admins only.
    """
    area_ids: set[int] = set()
    for s in user.scopes:
        if s.area_id is not None:
            area_ids.add(s.area_id)
        elif s.estate_id is not None:
            area_ids.add(db.session.get_one(Estate, s.estate_id).area_id)
        elif s.dwelling_id is not None:
            area_ids.add(db.session.get_one(Dwelling, s.dwelling_id).area_id)
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
