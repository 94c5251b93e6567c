"""Bodies of the verification endpoints."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate, validates_schema

from anjuka.cards.schemas import Hex
from anjuka.core.fields import Id
from anjuka.persons.models import DOCUMENT_TYPES
from anjuka.verifications.models import RESULTS
from cardreader.record import MAX_UID_SIZE, RECORD_SIZE

#: A chip's record is at most what a layout slot holds.
MAX_RECORD_BYTES = 224


class VerificationSchema(ma.Schema):
    """One of: ``card_no``; ``uid`` + ``record``; ``document_number`` (+ ``document_type``)."""

    card_no = fields.String(validate=validate.Length(1, 16))
    uid = Hex(MAX_UID_SIZE, metadata={"description": "chip UID, hex"})
    record = Hex(
        MAX_RECORD_BYTES,
        validate=[
            validate.Length(0, 2 * MAX_RECORD_BYTES),
            validate.Regexp(r"^(?:[0-9a-fA-F]{2})*$", error="Not hex bytes."),
        ],
        metadata={
            "description": f"hex of the record the chip holds ({RECORD_SIZE} bytes; empty: blank)"
        },
    )
    challenge_id = fields.String(validate=validate.Regexp(r"^[0-9a-f]{32}$"))
    response = Hex(
        8,
        validate=[
            validate.Length(16, 16),
            validate.Regexp(r"^[0-9a-fA-F]{16}$", error="Not 8 hex bytes."),
        ],
        metadata={"description": "the CPU card's INTERNAL AUTHENTICATE answer (8 bytes, hex)"},
    )
    document_type = fields.String(
        load_default="resident_id", validate=validate.OneOf(DOCUMENT_TYPES)
    )
    document_number = fields.String(validate=validate.Length(1, 40))
    dwelling_id = Id(strict=True, metadata={"description": "where the officer stands"})
    observed_headcount = fields.Integer(strict=True, validate=validate.Range(0, 1000))
    latitude = fields.Decimal(places=6, validate=validate.Range(-90, 90), as_string=False)
    longitude = fields.Decimal(places=6, validate=validate.Range(-180, 180), as_string=False)
    offline = fields.Boolean(load_default=False)
    checked_at = fields.AwareDateTime(
        default_timezone=None, metadata={"description": "offline: when the card was checked"}
    )
    client_id = fields.String(
        validate=validate.Regexp(r"^[A-Za-z0-9_-]{8,64}$"),
        metadata={"description": "offline: the device's id for the inspection (idempotency)"},
    )
    offline_result = fields.String(
        validate=validate.OneOf(RESULTS), metadata={"description": "what the device answered"}
    )

    @validates_schema
    def _one_input(self, data: dict, **_: object) -> None:
        given = [
            name
            for name, present in (
                ("card_no", "card_no" in data),
                ("uid", "uid" in data or "record" in data),
                ("document_number", "document_number" in data),
            )
            if present
        ]
        if len(given) != 1:
            raise ma.ValidationError(
                "Give exactly one of card_no, uid with record, or document_number.", "_schema"
            )
        if ("uid" in data) != ("record" in data):
            raise ma.ValidationError("uid and record go together.", "record")
        if ("challenge_id" in data) != ("response" in data):
            raise ma.ValidationError("challenge_id and response go together.", "response")
        if "challenge_id" in data and "uid" not in data:
            raise ma.ValidationError("A challenge answer comes with a chip.", "challenge_id")
        if ("latitude" in data) != ("longitude" in data):
            raise ma.ValidationError("Give latitude and longitude together.", "longitude")
        if data.get("offline"):
            if "client_id" not in data:
                raise ma.ValidationError("Required when offline is true.", "client_id")
            if "challenge_id" in data:
                raise ma.ValidationError("No challenge offline.", "challenge_id")


class CardAnswerSchema(ma.Schema):
    card_no = fields.String()
    status = fields.String()
    expires_on = fields.String(allow_none=True)
    revocation_reason = fields.String(allow_none=True)
    chip_authenticated = fields.Boolean(allow_none=True)


class ResidentAnswerSchema(ma.Schema):
    name = fields.String(metadata={"description": "masked"})
    arrived_on = fields.String()
    current = fields.Boolean()


class DwellingAnswerSchema(ma.Schema):
    id = fields.Integer()
    address = fields.String()


class AlertRefSchema(ma.Schema):
    id = fields.Integer()
    kind = fields.String()


class VerificationResultSchema(ma.Schema):
    result = fields.String(validate=validate.OneOf(RESULTS))
    reason = fields.String(allow_none=True)
    inspection_id = fields.Integer()
    checked_at = fields.String()
    offline = fields.Boolean()
    card = fields.Nested(CardAnswerSchema, allow_none=True)
    resident = fields.Nested(
        ResidentAnswerSchema,
        allow_none=True,
        metadata={"description": "only when the residence is in the caller's scope"},
    )
    dwelling = fields.Nested(DwellingAnswerSchema, allow_none=True)
    details_withheld = fields.Boolean(
        metadata={"description": "a residence exists but lies outside the caller's scope"}
    )
    registered_headcount = fields.Integer(allow_none=True)
    alerts = fields.List(fields.Nested(AlertRefSchema))
    replayed = fields.Boolean(metadata={"description": "the same client_id was recorded before"})


class ChallengeSchema(ma.Schema):
    challenge_id = fields.String()
    challenge = fields.String(metadata={"description": "8 random bytes, hex"})
    expires_at = fields.DateTime()


class BundleQuerySchema(ma.Schema):
    since = fields.String(
        validate=validate.Length(1, 64),
        metadata={"description": "the cursor of the last bundle received: a delta since then"},
    )


class BundleKeySchema(ma.Schema):
    id = fields.Integer()
    algorithm = fields.String()
    public_key = fields.String(metadata={"description": "raw 32-byte Ed25519 key, base64"})


class BundleSchema(ma.Schema):
    format = fields.Integer()
    issued_at = fields.String()
    expires_at = fields.String()
    since = fields.String(allow_none=True)
    cursor = fields.String()
    keys = fields.List(fields.Nested(BundleKeySchema))
    revoked = fields.List(fields.String(), metadata={"description": "card numbers"})
    withdrawn = fields.List(
        fields.String(),
        metadata={
            "description": "SHA-256 (hex) of records signed for a chip but never made the card:"
            " refuse a chip holding one"
        },
    )
    timezone = fields.String(
        metadata={"description": "the registry's calendar (IANA zone) for a card's dates"}
    )
    signed_by = fields.Integer()
    signature = fields.String(metadata={"description": "Ed25519, base64 (docs/card-format.md)"})


class InspectionQuerySchema(ma.Schema):
    dwelling_id = Id()
    result = fields.String(validate=validate.OneOf(RESULTS))
    card_no = fields.String(validate=validate.Length(1, 16))


class InspectionSchema(ma.Schema):
    id = fields.Integer()
    officer_id = fields.Integer()
    dwelling_id = fields.Integer(allow_none=True)
    area_code = fields.String(allow_none=True)
    checked_at = fields.DateTime()
    recorded_at = fields.DateTime()
    input_kind = fields.String()
    card_no = fields.String(allow_none=True)
    result = fields.String()
    reason = fields.String(allow_none=True)
    observed_headcount = fields.Integer(allow_none=True)
    registered_headcount = fields.Integer(allow_none=True)
    offline = fields.Boolean()
    offline_result = fields.String(allow_none=True)
    chip_authenticated = fields.Boolean(allow_none=True)
