"""Alerts: list, acknowledge, resolve."""

from __future__ import annotations

import sqlalchemy as sa
from flask_smorest import Blueprint

from anjuka.alerts import operations
from anjuka.alerts.models import Alert
from anjuka.alerts.schemas import AcknowledgeSchema, AlertQuerySchema, AlertSchema, ResolveSchema
from anjuka.areas.models import Area
from anjuka.areas.permissions import get_area_or_404
from anjuka.core.db import db
from anjuka.core.errors import NotFound
from anjuka.core.pagination import paginate
from anjuka.core.replica import reads_replica
from anjuka.core.scope import scope_of
from anjuka.core.security import Identity, require_identity, requires

blp = Blueprint("alerts", __name__, description="Alerts the registry raises by itself")
READERS = ("supervisor", "officer")
HANDLERS = ("supervisor",)
#: Alerts about users rather than the registry: for supervisors (and admins) only.
SUPERVISOR_ONLY_KINDS = ("bulk_lookup",)


def alert_filter(identity: Identity) -> sa.ColumnElement[bool]:
    """Alerts the caller may see: those of areas inside their subtrees."""
    scope = scope_of(identity)
    if scope.unrestricted:
        return sa.true()
    if not scope.area_paths:
        return sa.false()
    areas = sa.select(Area.id).where(
        sa.or_(*(Area.path.startswith(p, autoescape=True) for p in scope.area_paths))
    )
    if identity.role not in HANDLERS:
        return sa.and_(Alert.area_id.in_(areas), Alert.kind.not_in(SUPERVISOR_ONLY_KINDS))
    return Alert.area_id.in_(areas)


def get_alert_or_404(alert_id: int, *, for_update: bool = False) -> Alert:
    """An alert the caller may see, or 404."""
    query = sa.select(Alert).where(Alert.id == alert_id, alert_filter(require_identity()))
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    alert = db.session.scalar(query)
    if alert is None:
        raise NotFound(f"No alert {alert_id}.", code="alert_not_found")
    return alert


@blp.route("/alerts", methods=["GET"])
@blp.arguments(AlertQuerySchema, location="query")
@blp.response(200, AlertSchema(many=True))
@blp.paginate()
@requires(*READERS)
@reads_replica
def list_alerts(query: dict, pagination_parameters):
    """Alerts in the caller's areas, newest activity first.

    ``since`` keeps alerts seen at or after it; ``until`` those first seen
    at or before it: together, the alerts active during that window.
    """
    stmt = (
        sa.select(Alert)
        .where(alert_filter(require_identity()))
        .order_by(Alert.last_seen_at.desc(), Alert.id.desc())
    )
    for name in ("status", "kind", "severity", "subject_type", "subject_id"):
        if name in query:
            stmt = stmt.where(getattr(Alert, name) == query[name])
    if "area_code" in query:
        area = get_area_or_404(query["area_code"])
        stmt = stmt.where(
            Alert.area_id.in_(
                sa.select(Area.id).where(Area.path.startswith(area.path, autoescape=True))
            )
        )
    if "since" in query:
        stmt = stmt.where(Alert.last_seen_at >= query["since"])
    if "until" in query:
        stmt = stmt.where(Alert.first_seen_at <= query["until"])
    return paginate(stmt, pagination_parameters)


@blp.route("/alerts/<int:alert_id>", methods=["GET"])
@blp.response(200, AlertSchema)
@requires(*READERS)
def get_alert(alert_id: int):
    """One alert."""
    return get_alert_or_404(alert_id)


@blp.route("/alerts/<int:alert_id>/acknowledge", methods=["POST"])
@blp.arguments(AcknowledgeSchema)
@blp.response(200, AlertSchema)
@requires(*HANDLERS)
def acknowledge_alert(body: dict, alert_id: int):
    """Mark an open alert as being dealt with (audited); 409 if it is not open."""
    alert = get_alert_or_404(alert_id, for_update=True)
    operations.acknowledge(require_identity(), alert, body.get("note"))
    return alert


@blp.route("/alerts/<int:alert_id>/resolve", methods=["POST"])
@blp.arguments(ResolveSchema)
@blp.response(200, AlertSchema)
@requires(*HANDLERS)
def resolve_alert(body: dict, alert_id: int):
    """Close an alert with a note (audited); 409 ``alert_resolved`` if it already is."""
    alert = get_alert_or_404(alert_id, for_update=True)
    operations.resolve(require_identity(), alert, body["note"])
    return alert
