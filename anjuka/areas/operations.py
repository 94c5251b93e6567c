"""Creating areas and resolving their inherited policy."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from anjuka.areas.models import POLICY_FIELDS, Area
from anjuka.audit import operations as audit
from anjuka.core import signals
from anjuka.core.db import db
from anjuka.core.errors import Conflict, InvalidInput, NotFound

#: Where no area up the tree sets a field. 5 m² usable per person is the
#: Beijing and Shanghai figure; two persons per room the common rule; minors
#: count unless an area (Ningbo) says otherwise; 3 working days is Zhejiang's
#: registration deadline; a departed resident's identity is kept 3 years
#: (docs/privacy.md, "Retention").
DEFAULT_POLICY: dict[str, object] = {
    "min_area_per_person_m2": Decimal("5"),
    "area_basis": "usable",
    "max_persons_per_room": 2,
    "minors_count": True,
    "family_exception": True,
    "registration_deadline_days": 3,
    "card_return_grace_days": 7,
    "card_validity_days": 365,
    "retention_years": 3,
}

CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True)
class Policy:
    """The effective occupancy policy of an area, and where each field came from."""

    min_area_per_person_m2: Decimal
    area_basis: str
    max_persons_per_room: int
    minors_count: bool
    family_exception: bool
    registration_deadline_days: int
    card_return_grace_days: int
    card_validity_days: int
    retention_years: int
    sources: dict[str, str]


def _resolve(area: Area, nodes: dict[str, Area]) -> Policy:
    """``area``'s policy from its own fields, then its ancestors' (``nodes``), then defaults."""
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for code in reversed(area.ancestor_codes):  # nearest first
        node = nodes.get(code)
        if node is None:
            continue
        for name, value in node.own_policy().items():
            if name not in values:
                values[name] = value
                sources[name] = node.code
    for name in POLICY_FIELDS:
        if name not in values:
            values[name] = DEFAULT_POLICY[name]
            sources[name] = "default"
    values["min_area_per_person_m2"] = Decimal(values["min_area_per_person_m2"])  # type: ignore[arg-type]
    return Policy(**values, sources=sources)  # type: ignore[arg-type]


#: What :func:`_resolve` reads of an area.
_RESOLVED = {"code", "path", "parent_id", *POLICY_FIELDS}


def _loaded_area(area_id: int) -> Area | None:
    """The area ``area_id`` if the session holds it with every field loaded (no SQL)."""
    held = db.session.identity_map.get(sa.orm.util.identity_key(Area, area_id))
    if not isinstance(held, Area) or _RESOLVED & sa.inspect(held).unloaded:
        return None
    return held


def _ancestors_in_session(areas: Iterable[Area], codes: set[str]) -> dict[str, Area] | None:
    """The areas ``codes`` from the session, walking up parents, or None if one is not there.

    The session hands out these same objects to a query by code (it keeps an
    object's loaded state), so reading them from it changes nothing but the
    statement: a dwelling fetched with its area path (dwellings'
    ``get_dwelling_or_404``) then resolves its policy without another.
    """
    nodes: dict[str, Area] = {}
    for area in areas:
        node: Area | None = area
        while node is not None and node.code not in nodes:
            nodes[node.code] = node
            parent_id = node.parent_id
            if parent_id is None:
                break
            parent = node.__dict__.get("parent")  # loaded with the node, or None
            node = parent if isinstance(parent, Area) else _loaded_area(parent_id)
            if node is None:
                return None
    return nodes if codes <= nodes.keys() else None


def effective_policies(
    areas: Iterable[Area], *, cache: dict[int, Policy] | None = None
) -> dict[int, Policy]:
    """The effective policy of each of ``areas`` (by id), reading all their ancestors at once."""
    cache = {} if cache is None else cache
    missing = {area.id: area for area in areas if area.id not in cache}
    if missing:
        codes = {code for area in missing.values() for code in area.ancestor_codes}
        nodes = _ancestors_in_session(missing.values(), codes)
        if nodes is None:
            nodes = {
                a.code: a for a in db.session.scalars(sa.select(Area).where(Area.code.in_(codes)))
            }
        for area_id, area in missing.items():
            cache[area_id] = _resolve(area, nodes)
    return cache


def effective_policy(area: Area, *, cache: dict[int, Policy] | None = None) -> Policy:
    """Resolve ``area``'s policy: its own fields, then its ancestors', then defaults."""
    return effective_policies([area], cache=cache)[area.id]


def find_area(code: str) -> Area:
    area = db.session.scalar(sa.select(Area).where(Area.code == code))
    if area is None:
        raise NotFound(f"No area {code!r}.", code="area_not_found")
    return area


def _apply_policy(area: Area, policy: dict) -> None:
    for name, value in policy.items():
        if name not in POLICY_FIELDS:
            raise InvalidInput(f"Unknown policy field {name!r}.", errors={name: ["Unknown field."]})
        setattr(area, name, value)


def create_area(code: str, name: str, parent_code: str | None, policy: dict) -> Area:
    """Add an area under ``parent_code`` (or a root) with the policy it overrides."""
    if not CODE_PATTERN.match(code):
        raise InvalidInput(
            "Area codes are 1-32 letters, digits, '-' or '_'.",
            errors={"code": ["Invalid area code."]},
        )
    if db.session.scalar(sa.select(Area.id).where(Area.code == code)):
        raise Conflict(f"Area {code!r} exists.", code="area_exists")
    parent = None
    if parent_code:
        parent = db.session.scalar(sa.select(Area).where(Area.code == parent_code))
        if parent is None:
            raise InvalidInput(
                f"No parent area {parent_code!r}.",
                code="unknown_parent",
                errors={"parent_code": ["No such area."]},
            )
    area = Area(
        code=code,
        name=name,
        parent=parent,
        path=f"{parent.path if parent else '/'}{code}/",
    )
    _apply_policy(area, policy)
    db.session.add(area)
    db.session.flush()
    audit.record(
        "area.create",
        subject_type="area",
        subject_id=code,
        area_code=code,
        details={"parent": parent_code, "policy": _jsonable(policy)},
    )
    return area


def update_area(area: Area, *, name: str | None, policy: dict | None) -> Area:
    """Rename an area or change its policy; dwellings below are re-evaluated, never evicted."""
    changes: dict[str, object] = {}
    if name is not None and name != area.name:
        area.name = name
        changes["name"] = name
    if policy:
        _apply_policy(area, policy)
        changes["policy"] = _jsonable(policy)
    db.session.flush()
    audit.record(
        "area.update",
        subject_type="area",
        subject_id=area.code,
        area_code=area.code,
        details=changes,
    )
    if policy:
        signals.policy_changed.send(area)
    return area


def subtree_area_ids(area: Area) -> list[int]:
    """Ids of ``area`` and every area below it."""
    return list(
        db.session.scalars(
            sa.select(Area.id).where(Area.path.startswith(area.path, autoescape=True))
        )
    )


def _jsonable(policy: dict) -> dict:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in policy.items()}
