"""Webhook subscriptions (admin): create, list with their health, deactivate."""

from __future__ import annotations

import sqlalchemy as sa
from flask_smorest import Blueprint

from anjuka.areas.operations import find_area
from anjuka.core.db import db
from anjuka.core.dumping import set_dump_context
from anjuka.core.errors import NotFound
from anjuka.core.pagination import paginate
from anjuka.core.security import require_identity, requires
from anjuka.notifications import operations
from anjuka.notifications.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from anjuka.notifications.schemas import WebhookCreateSchema, WebhookSchema

blp = Blueprint("webhooks", __name__, description="Alerts pushed to webhook subscribers")


def with_health(subscriptions: list[WebhookSubscription]) -> list[WebhookSubscription]:
    """``subscriptions``, their pending and abandoned deliveries counted in one query."""
    ids = [s.id for s in subscriptions]
    counts: dict[tuple[int, str], int] = {}
    if ids:
        rows = db.session.execute(
            sa.select(WebhookDelivery.subscription_id, WebhookDelivery.status, sa.func.count())
            .where(
                WebhookDelivery.subscription_id.in_(ids),
                WebhookDelivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.ABANDONED)),
            )
            .group_by(WebhookDelivery.subscription_id, WebhookDelivery.status)
        )
        counts = {(sid, status): n for sid, status, n in rows}
    set_dump_context(webhook_counts=counts)
    return subscriptions


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
    set_dump_context(webhook_secret=secret)
    return with_health([subscription])[0]


@blp.route("/webhooks", methods=["GET"])
@blp.response(200, WebhookSchema(many=True))
@blp.paginate()
@requires("admin")
def list_webhooks(pagination_parameters):
    """Subscriptions with their last error and consecutive failures."""
    stmt = sa.select(WebhookSubscription).order_by(WebhookSubscription.id)
    return with_health(paginate(stmt, pagination_parameters))


@blp.route("/webhooks/<int:webhook_id>", methods=["GET"])
@blp.response(200, WebhookSchema)
@requires("admin")
def get_webhook(webhook_id: int):
    """One subscription and its health."""
    return with_health([_get_or_404(webhook_id)])[0]


@blp.route("/webhooks/<int:webhook_id>", methods=["DELETE"])
@blp.response(204)
@requires("admin")
def delete_webhook(webhook_id: int):
    """Deactivate a subscription; what it had pending is abandoned."""
    operations.deactivate_subscription(_get_or_404(webhook_id))
