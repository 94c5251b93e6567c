"""Bodies of the dwelling and estate endpoints."""

import marshmallow as ma
from marshmallow import fields, validate

from anjuka.core.dumping import dump_context
from anjuka.core.fields import Id, Measure, PersonalString, computed
from anjuka.core.privacy import RevealQuerySchema, mask_name
from anjuka.dwellings.models import Dwelling, DwellingStatus
from anjuka.dwellings.operations import Measure as DwellingMeasure

DWELLING_STATUSES = [s.value for s in DwellingStatus]

_AREA = validate.Range(min=0, min_inclusive=False, max=100000)


class DwellingCreateSchema(ma.Schema):
    area_code = fields.String(required=True, validate=validate.Length(1, 32))
    estate_id = Id(allow_none=True, strict=True)
    address = fields.String(required=True, validate=validate.Length(1, 400))
    address_code = fields.String(allow_none=True, validate=validate.Length(1, 64))
    landlord_name = fields.String(allow_none=True, validate=validate.Length(1, 200))
    landlord_phone = fields.String(allow_none=True, validate=validate.Regexp(r"^[0-9+\- ]{5,32}$"))
    building_area_m2 = Measure(allow_none=True, validate=_AREA)
    usable_area_m2 = Measure(allow_none=True, validate=_AREA)
    rooms = fields.Integer(required=True, strict=True, validate=validate.Range(1, 1000))
    status = fields.String(
        load_default=DwellingStatus.RENTABLE.value, validate=validate.OneOf(DWELLING_STATUSES)
    )


class DwellingPatchSchema(ma.Schema):
    address = fields.String(validate=validate.Length(1, 400))
    landlord_name = fields.String(allow_none=True, validate=validate.Length(1, 200))
    landlord_phone = fields.String(allow_none=True, validate=validate.Regexp(r"^[0-9+\- ]{5,32}$"))
    building_area_m2 = Measure(allow_none=True, validate=_AREA)
    usable_area_m2 = Measure(allow_none=True, validate=_AREA)
    rooms = fields.Integer(strict=True, validate=validate.Range(1, 1000))
    status = fields.String(validate=validate.OneOf(DWELLING_STATUSES))


class LimitsSchema(ma.Schema):
    """Why a dwelling holds as many as it does (dumps its ``Capacity``)."""

    capacity = fields.Integer()
    area_limit = fields.Integer()
    room_limit = fields.Integer()
    basis = fields.String()
    area_used_m2 = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


def _measure(dwelling: Dwelling) -> DwellingMeasure:
    measures: dict[Dwelling, DwellingMeasure] = dump_context()["dwelling_measures"]
    return measures[dwelling]


class DwellingSchema(ma.Schema):
    """A dwelling with capacity and occupants (the view measures them: ``measure_dwellings``).

    The landlord's name and phone are masked unless the request revealed them.
    """

    id = fields.Integer()
    area_code = fields.String(attribute="area.code")
    estate_id = fields.Integer(allow_none=True)
    address = fields.String()
    address_code = fields.String(allow_none=True)
    landlord_name = PersonalString(
        masked=lambda d: mask_name(d.landlord_name) if d.landlord_name else None,
        allow_none=True,
        metadata={"description": "masked unless revealed"},
    )
    landlord_phone = PersonalString(
        masked="landlord_phone_masked",
        allow_none=True,
        metadata={"description": "masked unless revealed"},
    )
    building_area_m2 = Measure(allow_none=True)
    usable_area_m2 = Measure(allow_none=True)
    rooms = fields.Integer()
    status = fields.String()
    capacity = computed(fields.Integer, lambda d: _measure(d).capacity.capacity)
    occupants = computed(fields.Integer, lambda d: _measure(d).occupancy.occupants)
    over_capacity = computed(fields.Boolean, lambda d: _measure(d).over_capacity)
    limits = computed(fields.Nested, lambda d: _measure(d).capacity, LimitsSchema)


class DwellingQuerySchema(RevealQuerySchema):
    area_code = fields.String()
    estate_id = Id()
    address = fields.String(validate=validate.Length(1, 200))
    status = fields.String(validate=validate.OneOf(DWELLING_STATUSES))


class EstateCreateSchema(ma.Schema):
    area_code = fields.String(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    address = fields.String(allow_none=True, validate=validate.Length(1, 400))
    property_company = fields.String(allow_none=True, validate=validate.Length(1, 200))


class EstateSchema(ma.Schema):
    id = fields.Integer()
    area_code = fields.Function(lambda e: e.area.code)
    name = fields.String()
    address = fields.String(allow_none=True)
    property_company = fields.String(allow_none=True)
