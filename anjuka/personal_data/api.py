"""A person's data export over the API, for admins and auditors."""

from __future__ import annotations

import marshmallow as ma
from flask import Response
from flask_smorest import Blueprint
from marshmallow import fields, validate

from anjuka.core.security import require_identity, requires
from anjuka.personal_data.export import export_person
from anjuka.personal_data.pdf import render_pdf
from anjuka.persons.identity import parse_document
from anjuka.persons.limits import document_lookups
from anjuka.persons.models import DOCUMENT_TYPES

blp = Blueprint(
    "personal_data", __name__, description="A person's data export for a lawful request"
)
ROLES = ("auditor",)


class ExportRequestSchema(ma.Schema):
    document_type = fields.String(
        load_default="resident_id", validate=validate.OneOf(DOCUMENT_TYPES)
    )
    document_number = fields.String(required=True, validate=validate.Length(1, 40))


class ExportSchema(ma.Schema):
    format = fields.Integer()
    generated_at = fields.String()
    person = fields.Dict()
    residences = fields.List(fields.Dict())
    cards = fields.List(fields.Dict())
    inspections = fields.List(fields.Dict())
    transfers = fields.List(fields.Dict())
    access_report = fields.List(
        fields.Dict(), metadata={"description": "unmasked views, look-ups and exports"}
    )


def _export(body: dict, form: str) -> dict:
    identity = require_identity()
    document = parse_document(body["document_type"], body["document_number"])
    return export_person(document, form=form, chain=f"user:{identity.id}")


@blp.route("/persons/export", methods=["POST"])
@document_lookups
@blp.arguments(ExportRequestSchema)
@blp.response(200, ExportSchema)
@requires(*ROLES)
def export_json(body: dict):
    """Everything held about the holder of a document, with the access report; audited.

    404 ``person_not_found`` when nobody holds it (an anonymised person too).
    Counts toward the caller's look-ups by document number.
    """
    return _export(body, "json")


@blp.route("/persons/export/pdf", methods=["POST"])
@document_lookups
@blp.arguments(ExportRequestSchema)
@blp.response(200)
@blp.doc(  # flask-smorest writes a schemaless response without its content type
    responses={
        "200": {
            "description": "The export as a PDF document",
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        }
    }
)
@requires(*ROLES)
def export_pdf(body: dict):
    """The same export as a PDF document; audited."""
    return Response(render_pdf(_export(body, "pdf")), mimetype="application/pdf")
