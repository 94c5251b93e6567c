"""Bodies of the webhook endpoints."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, missing, validate

from anjuka.alerts.models import ALERT_KINDS
from anjuka.core.dumping import dump_context
from anjuka.core.fields import computed
from anjuka.notifications.models import DeliveryStatus, WebhookSubscription


class WebhookCreateSchema(ma.Schema):
    area_code = fields.String(required=True, validate=validate.Length(1, 32))
    url = fields.Url(
        required=True,
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(1, 2000),
    )
    kinds = fields.List(
        fields.String(validate=validate.OneOf(list(ALERT_KINDS))),
        allow_none=True,
        validate=validate.Length(min=1),
        metadata={"description": "alert kinds to send; omitted or null: every kind"},
    )


def _health(subscription: WebhookSubscription, status: DeliveryStatus) -> int:
    counts: dict[tuple[int, str], int] = dump_context()["webhook_counts"]
    return counts.get((subscription.id, status), 0)


class WebhookSchema(ma.Schema):
    """A subscription with its delivery health (the view counts it: ``with_health``)."""

    id = fields.Integer()
    area_code = fields.String(attribute="area.code")
    url = fields.String()
    kinds = fields.List(fields.String(), allow_none=True)
    active = fields.Boolean()
    created_at = fields.DateTime()
    secret = computed(
        fields.String,
        lambda _subscription: dump_context().get("webhook_secret", missing),
        metadata={"description": "HMAC-SHA256 signing secret; shown only in the creation answer"},
    )
    last_success_at = fields.DateTime(allow_none=True)
    last_failure_at = fields.DateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    consecutive_failures = fields.Integer()
    pending = computed(
        fields.Integer,
        lambda s: _health(s, DeliveryStatus.PENDING),
        metadata={"description": "deliveries waiting to be sent"},
    )
    abandoned = computed(
        fields.Integer,
        lambda s: _health(s, DeliveryStatus.ABANDONED),
        metadata={"description": "deliveries given up after retries"},
    )
