"""Bodies of the webhook endpoints."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from anjuka.alerts.models import ALERT_KINDS


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


class WebhookSchema(ma.Schema):
    id = fields.Integer()
    area_code = fields.String()
    url = fields.String()
    kinds = fields.List(fields.String(), allow_none=True)
    active = fields.Boolean()
    created_at = fields.DateTime()
    secret = fields.String(
        metadata={"description": "HMAC-SHA256 signing secret; shown only in the creation answer"}
    )
    last_success_at = fields.DateTime(allow_none=True)
    last_failure_at = fields.DateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    consecutive_failures = fields.Integer()
    pending = fields.Integer(metadata={"description": "deliveries waiting to be sent"})
    abandoned = fields.Integer(metadata={"description": "deliveries given up after retries"})
