"""Bodies of the residence and person endpoints."""

import marshmallow as ma
from marshmallow import fields, validate

from anjuka.core.fields import Id, Masked, PersonalDate, PersonalString
from anjuka.core.privacy import mask_name
from anjuka.persons.models import DOCUMENT_TYPES
from anjuka.residences.models import FamilyRelation


class PersonInputSchema(ma.Schema):
    document_type = fields.String(required=True, validate=validate.OneOf(DOCUMENT_TYPES))
    document_number = fields.String(required=True, validate=validate.Length(1, 40))
    name = fields.String(required=True, validate=validate.Length(1, 200))
    phone = fields.String(allow_none=True, validate=validate.Regexp(r"^[0-9+\- ]{5,32}$"))
    origin = fields.String(allow_none=True, validate=validate.Length(1, 200))
    birth_date = fields.Date(allow_none=True)
    sex = fields.String(allow_none=True, validate=validate.OneOf(["F", "M"]))


class ArrivalSchema(ma.Schema):
    dwelling_id = Id(required=True, strict=True)
    arrived_on = fields.Date(required=True)
    person = fields.Nested(PersonInputSchema, required=True)
    move = fields.Boolean(load_default=False)
    override_reason = fields.String(allow_none=True, validate=validate.Length(1, 2000))
    family_relation = fields.String(
        allow_none=True, validate=validate.OneOf([r.value for r in FamilyRelation])
    )
    family_of_residence_id = fields.Integer(allow_none=True)


class DepartureSchema(ma.Schema):
    departed_on = fields.Date(required=True)
    card_returned = fields.Boolean(allow_none=True)


class PersonSchema(ma.Schema):
    """A person: masked, or in clear where the request revealed them (audited)."""

    id = fields.Integer()
    document_type = fields.String()
    document_number = PersonalString(
        masked="document_masked",
        allow_none=True,
        metadata={"description": "masked unless revealed; null once anonymised"},
    )
    document_masked = Masked()
    name = PersonalString(
        masked=lambda person: mask_name(person.name),
        allow_none=True,
        metadata={"description": "null once anonymised"},
    )
    sex = fields.String(allow_none=True)
    birth_date = PersonalDate(masked=lambda _person: None, allow_none=True)
    phone = PersonalString(masked="phone_masked", allow_none=True)
    origin = fields.String(allow_none=True)


class ResidenceSchema(ma.Schema):
    """A residence with its (masked) person and the dwelling's address."""

    id = fields.Integer()
    person_id = fields.Integer()
    dwelling_id = fields.Integer()
    address = fields.String(attribute="dwelling.address")
    arrived_on = fields.Date()
    departed_on = fields.Date(allow_none=True)
    current = fields.Boolean(attribute="is_current")
    registered_at = fields.DateTime()
    registration_deadline = fields.Date(allow_none=True)
    late = fields.Boolean()
    minor = fields.Boolean()
    family_relation = fields.String(allow_none=True)
    family_of_residence_id = Id(attribute="family_of_id", allow_none=True, strict=True)
    override_reason = fields.String(allow_none=True)
    card_returned = fields.Boolean(allow_none=True)
    person = fields.Nested(PersonSchema)


class PersonLookupSchema(ma.Schema):
    document_type = fields.String(
        load_default="resident_id", validate=validate.OneOf(DOCUMENT_TYPES)
    )
    document_number = fields.String(required=True, validate=validate.Length(1, 40))
    reveal = fields.Boolean(load_default=False)
