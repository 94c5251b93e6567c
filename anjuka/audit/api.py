"""Reading the audit trail (auditors and admins)."""

from __future__ import annotations

import marshmallow as ma
import sqlalchemy as sa
from flask_smorest import Blueprint
from marshmallow import fields, validate

from anjuka.audit.models import AuditEvent
from anjuka.core.fields import Id
from anjuka.core.pagination import paginate
from anjuka.core.security import requires

blp = Blueprint("audit", __name__, description="The tamper-evident audit trail")


class AuditQuerySchema(ma.Schema):
    action = fields.String()
    actor_id = Id()
    subject_type = fields.String(validate=validate.Length(max=32))
    subject_id = fields.String(validate=validate.Length(max=64))
    area_code = fields.String(validate=validate.Length(max=32))
    since = fields.DateTime()
    until = fields.DateTime()


class AuditEventSchema(ma.Schema):
    id = fields.Integer()
    chain = fields.String()
    seq = fields.Integer()
    occurred_at = fields.DateTime()
    actor_type = fields.String()
    actor_id = fields.Integer(allow_none=True)
    actor_name = fields.String(allow_none=True)
    action = fields.String()
    subject_type = fields.String(allow_none=True)
    subject_id = fields.String(allow_none=True)
    area_code = fields.String(allow_none=True)
    origin = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    details = fields.Dict()
    hash = fields.String()


@blp.route("/audit", methods=["GET"])
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditEventSchema(many=True))
@blp.paginate()
@requires("auditor")
def list_audit_events(query: dict, pagination_parameters):
    """Audit events, newest first; ``action=person.reveal`` shows who saw whose identity."""
    stmt = sa.select(AuditEvent).order_by(AuditEvent.id.desc())
    for name in ("action", "actor_id", "subject_type", "subject_id", "area_code"):
        if name in query:
            stmt = stmt.where(getattr(AuditEvent, name) == query[name])
    if "since" in query:
        stmt = stmt.where(AuditEvent.occurred_at >= query["since"])
    if "until" in query:
        stmt = stmt.where(AuditEvent.occurred_at < query["until"])
    return paginate(stmt, pagination_parameters)
