"""Dwellings with their capacity and occupants; estates."""

from __future__ import annotations

import sqlalchemy as sa
from flask_smorest import Blueprint

from anjuka.areas.models import Area
from anjuka.areas.permissions import area_in_scope, get_area_or_404
from anjuka.core.db import db
from anjuka.core.dumping import set_dump_context, tell_revealed
from anjuka.core.errors import Forbidden, NotFound
from anjuka.core.pagination import paginate
from anjuka.core.privacy import RevealQuerySchema, check_reveal
from anjuka.core.replica import reads_replica
from anjuka.core.security import require_identity, requires
from anjuka.dwellings import operations
from anjuka.dwellings.models import Dwelling, DwellingStatus, Estate
from anjuka.dwellings.permissions import (
    dwelling_filter,
    estate_filter,
    get_dwelling_or_404,
    get_estate_or_404,
)
from anjuka.dwellings.schemas import (
    DwellingCreateSchema,
    DwellingPatchSchema,
    DwellingQuerySchema,
    DwellingSchema,
    EstateCreateSchema,
    EstateSchema,
)

blp = Blueprint("dwellings", __name__, description="Rental dwellings and estates")
READERS = ("supervisor", "officer", "manager")
WRITERS = ("supervisor", "manager")
#: Built once: given a class, webargs would build the schema again for every request.
REVEAL_QUERY = RevealQuerySchema()


def measured(dwellings: list[Dwelling], *, reveal: bool = False) -> list[Dwelling]:
    """``dwellings``, measured for their schema; with the landlords in clear if ``reveal``.

    Each unmasked dwelling is an audit event.
    """
    set_dump_context(dwelling_measures=operations.measure_dwellings(dwellings))
    if reveal:
        identity = require_identity()
        for dwelling in dwellings:
            tell_revealed(dwelling, operations.reveal_landlord(dwelling, identity))
    return dwellings


def _target_area(code: str) -> Area:
    """An area the caller may create records in (inside their subtree)."""
    identity = require_identity()
    area = get_area_or_404(code) if identity.role != "manager" else None
    if area is None:
        area = db.session.scalar(sa.select(Area).where(Area.code == code))
        if area is None:
            raise NotFound(f"No area {code!r}.", code="area_not_found")
    elif not area_in_scope(identity, area):
        raise NotFound(f"No area {code!r}.", code="area_not_found")
    return area


@blp.route("/dwellings", methods=["POST"])
@blp.arguments(DwellingCreateSchema)
@blp.response(201, DwellingSchema)
@requires(*WRITERS)
def create_dwelling(body: dict):
    """Register a rental dwelling. Managers add dwellings to their estates."""
    identity = require_identity()
    area = _target_area(body.pop("area_code"))
    estate_id = body.pop("estate_id", None)
    estate = get_estate_or_404(estate_id) if estate_id is not None else None
    if identity.role == "manager" and estate is None:
        raise NotFound("Managers add dwellings to one of their estates.", code="estate_not_found")
    dwelling = operations.create_dwelling(area, estate, body)
    return measured([dwelling])[0]


@blp.route("/dwellings", methods=["GET"])
@blp.arguments(DwellingQuerySchema, location="query")
@blp.response(200, DwellingSchema(many=True))
@blp.paginate()
@requires(*READERS)
@reads_replica
def list_dwellings(query: dict, pagination_parameters):
    """Dwellings the caller may see, by area, estate or address."""
    reveal = check_reveal(require_identity(), query.pop("reveal"))
    stmt = sa.select(Dwelling).where(dwelling_filter(require_identity())).order_by(Dwelling.id)
    if "area_code" in query:
        area = db.session.scalar(sa.select(Area).where(Area.code == query["area_code"]))
        if area is None:
            stmt = stmt.where(sa.false())  # an empty page, still with its X-Pagination
        else:
            in_subtree = sa.select(Area.id).where(Area.path.startswith(area.path, autoescape=True))
            stmt = stmt.where(Dwelling.area_id.in_(in_subtree))
    if "estate_id" in query:
        stmt = stmt.where(Dwelling.estate_id == query["estate_id"])
    if "address" in query:
        stmt = stmt.where(Dwelling.address.contains(query["address"], autoescape=True))
    if "status" in query:
        stmt = stmt.where(Dwelling.status == query["status"])
    return measured(paginate(stmt, pagination_parameters), reveal=reveal)


@blp.route("/dwellings/<int:dwelling_id>", methods=["GET"])
@blp.arguments(REVEAL_QUERY, location="query")
@blp.response(200, DwellingSchema)
@requires(*READERS)
def get_dwelling(query: dict, dwelling_id: int):
    """One dwelling with capacity and occupants; ``reveal=true`` unmasks the landlord (audited)."""
    reveal = check_reveal(require_identity(), query["reveal"])
    return measured([get_dwelling_or_404(dwelling_id)], reveal=reveal)[0]


@blp.route("/dwellings/<int:dwelling_id>", methods=["PATCH"])
@blp.arguments(DwellingPatchSchema)
@blp.response(200, DwellingSchema)
@requires(*WRITERS)
def patch_dwelling(body: dict, dwelling_id: int):
    """Change a dwelling's measures, rooms or status (occupants stay).

    Whether a structure is illegal (违法违建) is the authorities' finding: a
    manager may take a flat off the market and back, but neither declare
    nor lift illegality.
    """
    identity = require_identity()
    dwelling = get_dwelling_or_404(dwelling_id, for_update=True)
    status = body.get("status", dwelling.status)
    changes = status != dwelling.status
    touches_illegal = changes and DwellingStatus.ILLEGAL in (status, dwelling.status)
    if identity.role == "manager" and touches_illegal:
        raise Forbidden(
            "Only a supervisor may declare a dwelling illegal or lift it.",
            code="status_change_not_allowed",
        )
    operations.update_dwelling(dwelling, body)
    return measured([dwelling])[0]


@blp.route("/estates", methods=["POST"])
@blp.arguments(EstateCreateSchema)
@blp.response(201, EstateSchema)
@requires("supervisor")
def create_estate(body: dict):
    """Add an estate (supervisor of its area, or admin)."""
    area = _target_area(body["area_code"])
    estate = operations.create_estate(
        area, body["name"], body.get("address"), body.get("property_company")
    )
    return estate


@blp.route("/estates", methods=["GET"])
@blp.response(200, EstateSchema(many=True))
@blp.paginate()
@requires(*READERS)
@reads_replica
def list_estates(pagination_parameters):
    """Estates the caller may see."""
    stmt = sa.select(Estate).where(estate_filter(require_identity())).order_by(Estate.id)
    return paginate(stmt, pagination_parameters)
