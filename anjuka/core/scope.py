"""A caller's reach: which areas, estates and dwellings their role applies to.

Admins reach everything. Supervisors and officers reach the area subtrees
they are scoped to; managers the estates and dwellings they are scoped to;
auditors and desk readers no registry records. Each domain turns a scope
into filters on its own records (``areas/permissions.py``,
``dwellings/permissions.py``, ...): a record outside reads as 404.

The accounts domain, which knows users' scopes, loads them
(:func:`set_scope_loader`); this module only holds the result, once per
request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from anjuka.core.security import Identity


@dataclass(frozen=True)
class Scope:
    """A user's reach, loaded once per request."""

    unrestricted: bool
    area_paths: tuple[str, ...] = ()
    estate_ids: tuple[int, ...] = ()
    dwelling_ids: tuple[int, ...] = ()


NOTHING = Scope(unrestricted=False)
_loader: list[Callable[[Identity], Scope]] = []


def set_scope_loader(loader: Callable[[Identity], Scope]) -> None:
    """Let the accounts domain load a user's scope (once, at registration)."""
    _loader[:] = [loader]


def scope_of(identity: Identity) -> Scope:
    """The caller's scope (cached on the identity for the request)."""
    if identity.is_admin:
        return Scope(unrestricted=True)
    if identity.kind != "user" or not _loader:
        return NOTHING
    cached = identity.extra.get("scope")
    if cached is None:
        cached = identity.extra["scope"] = _loader[0](identity)
    return cached
