"""Areas and their occupancy policy."""

from __future__ import annotations

import sqlalchemy as sa
from flask_smorest import Blueprint

from anjuka.areas import operations
from anjuka.areas.models import Area
from anjuka.areas.permissions import area_filter, get_area_or_404
from anjuka.areas.schemas import AreaCreateSchema, AreaPatchSchema, AreaQuerySchema, AreaSchema
from anjuka.core.pagination import paginate
from anjuka.core.security import require_identity, requires

blp = Blueprint("areas", __name__, description="The area tree and its policy")
READERS = ("supervisor", "officer")


@blp.route("/areas", methods=["POST"])
@blp.arguments(AreaCreateSchema)
@blp.response(201, AreaSchema)
@requires("admin")
def create_area(body: dict):
    """Add an area (admin)."""
    area = operations.create_area(
        body["code"],
        body["name"],
        body.get("parent_code"),
        {k: v for k, v in body["policy"].items() if v is not None},
    )
    return area


@blp.route("/areas", methods=["GET"])
@blp.arguments(AreaQuerySchema, location="query")
@blp.response(200, AreaSchema(many=True))
@blp.paginate()
@requires(*READERS)
def list_areas(query: dict, pagination_parameters):
    """Areas the caller may see."""
    stmt = sa.select(Area).where(area_filter(require_identity())).order_by(Area.path)
    if query.get("parent_code"):
        parent = get_area_or_404(query["parent_code"])
        stmt = stmt.where(Area.parent_id == parent.id)
    return paginate(stmt, pagination_parameters)


@blp.route("/areas/<code>", methods=["GET"])
@blp.response(200, AreaSchema)
@requires(*READERS)
def get_area(code: str):
    """One area with its effective policy."""
    return get_area_or_404(code)


@blp.route("/areas/<code>", methods=["PATCH"])
@blp.arguments(AreaPatchSchema)
@blp.response(200, AreaSchema)
@requires("admin")
def patch_area(body: dict, code: str):
    """Rename an area or change its policy (a null field inherits again)."""
    area = get_area_or_404(code)
    operations.update_area(area, name=body.get("name"), policy=body.get("policy"))
    return area
