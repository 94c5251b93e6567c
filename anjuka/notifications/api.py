"""Webhook subscriptions (admin): create, list with their health, deactivate."""

from __future__ import annotations

import sqlalchemy as sa
from flask_smorest import Blueprint

from anjuka.areas.operations import find_area
from anjuka.core.db import db
from anjuka.core.errors import NotFound
from anjuka.core.pagination import paginate
from anjuka.core.security import require_identity, requires
from anjuka.notifications import operations
from anjuka.notifications.models import WebhookDelivery, WebhookSubscription
from anjuka.notifications.schemas import WebhookCreateSchema, WebhookSchema

blp = Blueprint("webhooks", __name__, description="Alerts pushed to webhook subscribers")


def webhook_views(subscriptions: list[WebhookSubscription]) -> list[dict]:
    """Subscriptions with their delivery health, counted in one query."""
    ids = [s.id for s in subscriptions]
    counts: dict[tuple[int, str], int] = {}
    if ids:
        rows = db.session.execute(
            sa.select(WebhookDelivery.subscription_id, WebhookDelivery.status, sa.func.count())
            .where(
                WebhookDelivery.subscription_id.in_(ids),
                WebhookDelivery.status.in_(("pending", "abandoned")),
            )
            .group_by(WebhookDelivery.subscription_id, WebhookDelivery.status)
        )
        counts = {(sid, status): n for sid, status, n in rows}
    return [
        {
            "id": s.id,
            "area_code": s.area.code,
            "url": s.url,
            "kinds": s.kinds,
            "active": s.active,
            "created_at": s.created_at,
            "last_success_at": s.last_success_at,
            "last_failure_at": s.last_failure_at,
            "last_error": s.last_error,
            "consecutive_failures": s.consecutive_failures,
            "pending": counts.get((s.id, "pending"), 0),
            "abandoned": counts.get((s.id, "abandoned"), 0),
        }
        for s in subscriptions
    ]


def _get_or_404(webhook_id: int) -> WebhookSubscription:
    subscription = db.session.get(WebhookSubscription, webhook_id)
    if subscription is None:
        raise NotFound(f"No webhook {webhook_id}.", code="webhook_not_found")
    return subscription


@blp.route("/webhooks", methods=["POST"])
@blp.arguments(WebhookCreateSchema)
@blp.response(201, WebhookSchema)
@requires("admin")
def create_webhook(body: dict):
    """Subscribe a URL to the alerts of an area's subtree; the answer shows the secret once."""
    area = find_area(body["area_code"])
    subscription, secret = operations.create_subscription(
        require_identity(), area, body["url"], body.get("kinds")
    )
    return {**webhook_views([subscription])[0], "secret": secret}


@blp.route("/webhooks", methods=["GET"])
@blp.response(200, WebhookSchema(many=True))
@blp.paginate()
@requires("admin")
def list_webhooks(pagination_parameters):
    """Subscriptions with their last error and consecutive failures."""
    stmt = sa.select(WebhookSubscription).order_by(WebhookSubscription.id)
    return webhook_views(paginate(stmt, pagination_parameters))


@blp.route("/webhooks/<int:webhook_id>", methods=["GET"])
@blp.response(200, WebhookSchema)
@requires("admin")
def get_webhook(webhook_id: int):
    """One subscription and its health."""
    return webhook_views([_get_or_404(webhook_id)])[0]


@blp.route("/webhooks/<int:webhook_id>", methods=["DELETE"])
@blp.response(204)
@requires("admin")
def delete_webhook(webhook_id: int):
    """Deactivate a subscription; what it had pending is abandoned."""
    operations.deactivate_subscription(_get_or_404(webhook_id))
