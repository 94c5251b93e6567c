"""Bodies of the transfer endpoints."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from anjuka.core.dumping import dump_context
from anjuka.core.fields import Id
from anjuka.core.privacy import mask_name
from anjuka.persons.models import DOCUMENT_TYPES
from anjuka.transfers.models import Transfer, TransferStatus


class TransferPersonSchema(ma.Schema):
    document_type = fields.String(required=True, validate=validate.OneOf(DOCUMENT_TYPES))
    document_number = fields.String(required=True, validate=validate.Length(1, 40))


class TransferRequestSchema(ma.Schema):
    dwelling_id = Id(required=True, strict=True)
    arrived_on = fields.Date(required=True)
    person = fields.Nested(TransferPersonSchema, required=True)


class TransferQuerySchema(ma.Schema):
    status = fields.String(validate=validate.OneOf([s.value for s in TransferStatus]))
    side = fields.String(
        validate=validate.OneOf(["incoming", "outgoing"]),
        metadata={"description": "into the caller's dwellings, or out of them"},
    )


class CancelSchema(ma.Schema):
    reason = fields.String(allow_none=True, validate=validate.Length(1, 2000))


class CompleteSchema(ma.Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 2000))


def _sides(transfer: Transfer) -> frozenset[str]:
    return dump_context().get("transfer_sides", {}).get(transfer.id, frozenset())


def _outgoing(transfer: Transfer) -> bool:
    return "outgoing" in _sides(transfer)


def _incoming(transfer: Transfer) -> bool:
    return "incoming" in _sides(transfer)


class TransferSchema(ma.Schema):
    """A transfer as one side sees it: neither side learns the other's dwelling."""

    id = fields.Integer()
    status = fields.String()
    person_id = fields.Integer()
    document_type = fields.String(attribute="person.document_type")
    document_number = fields.String(
        attribute="person.document_masked", metadata={"description": "always masked"}
    )
    name = fields.Method("_name", metadata={"description": "masked"})
    arrived_on = fields.Date()
    requested_at = fields.DateTime()
    due_on = fields.Date(
        metadata={"description": "after this day a supervisor of the new area may complete it"}
    )
    closed_at = fields.DateTime(allow_none=True)
    completion = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    sides = fields.Method("_sides_list", metadata={"description": "incoming, outgoing"})
    to_dwelling_id = fields.Method("_to_dwelling_id", allow_none=True)
    to_address = fields.Method("_to_address", allow_none=True)
    to_residence_id = fields.Method("_to_residence_id", allow_none=True)
    to_area_code = fields.Method("_to_area_code", allow_none=True)
    from_residence_id = fields.Method("_from_residence_id", allow_none=True)
    from_address = fields.Method("_from_address", allow_none=True)

    def _name(self, transfer: Transfer) -> str:
        return mask_name(transfer.person.name)

    def _sides_list(self, transfer: Transfer) -> list[str]:
        return sorted(_sides(transfer))

    def _to_dwelling_id(self, transfer: Transfer) -> Any:
        return transfer.to_dwelling_id if _incoming(transfer) else None

    def _to_address(self, transfer: Transfer) -> Any:
        return transfer.to_dwelling.address if _incoming(transfer) else None

    def _to_residence_id(self, transfer: Transfer) -> Any:
        return transfer.to_residence_id if _incoming(transfer) else None

    def _to_area_code(self, transfer: Transfer) -> Any:
        return transfer.to_dwelling.area.code

    def _from_residence_id(self, transfer: Transfer) -> Any:
        return transfer.from_residence_id if _outgoing(transfer) else None

    def _from_address(self, transfer: Transfer) -> Any:
        return transfer.from_residence.dwelling.address if _outgoing(transfer) else None
