"""Bodies of the alert endpoints."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from anjuka.alerts.models import ALERT_KINDS, AlertStatus, Severity
from anjuka.core.fields import computed
from anjuka.core.time import start_of_day


class Instant(fields.Field):
    """An ISO 8601 date-time, or a date meaning its start in the registry's calendar."""

    default_error_messages = {"invalid": "Not an ISO 8601 date or date-time."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            if len(value) == 10:
                return start_of_day(date.fromisoformat(value))
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise self.make_error("invalid") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class AlertQuerySchema(ma.Schema):
    status = fields.String(validate=validate.OneOf([s.value for s in AlertStatus]))
    kind = fields.String(validate=validate.OneOf(list(ALERT_KINDS)))
    severity = fields.String(validate=validate.OneOf([s.value for s in Severity]))
    area_code = fields.String(
        validate=validate.Length(1, 32), metadata={"description": "the area and its subtree"}
    )
    subject_type = fields.String(validate=validate.Length(1, 32))
    subject_id = fields.String(validate=validate.Length(1, 64))
    since = Instant(metadata={"description": "seen at or after (last_seen_at)"})
    until = Instant(metadata={"description": "first seen at or before (first_seen_at)"})


class AcknowledgeSchema(ma.Schema):
    note = fields.String(allow_none=True, validate=validate.Length(1, 2000))


class ResolveSchema(ma.Schema):
    note = fields.String(required=True, validate=validate.Length(1, 2000))


class AlertSchema(ma.Schema):
    """An alert as the API shows it."""

    id = fields.Integer()
    kind = fields.String()
    status = fields.String()
    severity = fields.String()
    subject_type = fields.String()
    subject_id = fields.String()
    area_code = computed(
        fields.String, lambda alert: alert.area.code if alert.area else None, allow_none=True
    )
    details = computed(fields.Dict, lambda alert: alert.details or {})
    count = fields.Integer(metadata={"description": "how often it was seen while live"})
    first_seen_at = fields.DateTime()
    last_seen_at = fields.DateTime()
    note = fields.String(allow_none=True)
    acknowledged_at = fields.DateTime(allow_none=True)
    acknowledged_by = fields.Integer(attribute="acknowledged_by_id", allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    resolved_by = fields.Integer(attribute="resolved_by_id", allow_none=True)
    auto_resolved = fields.Boolean(
        metadata={"description": "resolved by the registry because the cause is gone"}
    )
