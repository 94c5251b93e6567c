"""Bodies of the area endpoints."""

import marshmallow as ma
from marshmallow import fields, validate

from anjuka.areas.operations import effective_policy
from anjuka.core.fields import Measure, computed


class PolicySchema(ma.Schema):
    """Any subset of the occupancy policy; unset fields are inherited."""

    min_area_per_person_m2 = Measure(
        allow_none=True, validate=validate.Range(min=0, min_inclusive=False, max=1000)
    )
    area_basis = fields.String(allow_none=True, validate=validate.OneOf(["building", "usable"]))
    max_persons_per_room = fields.Integer(
        allow_none=True, strict=True, validate=validate.Range(1, 50)
    )
    minors_count = fields.Boolean(allow_none=True)
    family_exception = fields.Boolean(allow_none=True)
    registration_deadline_days = fields.Integer(
        allow_none=True, strict=True, validate=validate.Range(0, 365)
    )
    card_return_grace_days = fields.Integer(
        allow_none=True, strict=True, validate=validate.Range(0, 365)
    )
    card_validity_days = fields.Integer(
        allow_none=True, strict=True, validate=validate.Range(1, 3650)
    )
    retention_years = fields.Integer(
        allow_none=True,
        strict=True,
        validate=validate.Range(1, 100),
        metadata={"description": "years after a departure before the identity is anonymised"},
    )


class AreaCreateSchema(ma.Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,32}$"))
    name = fields.String(required=True, validate=validate.Length(1, 200))
    parent_code = fields.String(allow_none=True, validate=validate.Length(1, 32))
    policy = fields.Nested(PolicySchema, load_default=dict)


class AreaPatchSchema(ma.Schema):
    name = fields.String(validate=validate.Length(1, 200))
    policy = fields.Nested(PolicySchema)


class EffectivePolicySchema(ma.Schema):
    min_area_per_person_m2 = Measure()
    area_basis = fields.String()
    max_persons_per_room = fields.Integer()
    minors_count = fields.Boolean()
    family_exception = fields.Boolean()
    registration_deadline_days = fields.Integer()
    card_return_grace_days = fields.Integer()
    card_validity_days = fields.Integer()
    retention_years = fields.Integer()
    sources = fields.Dict(keys=fields.String(), values=fields.String())


class AreaSchema(ma.Schema):
    """An area with its own and its effective policy."""

    code = fields.String()
    name = fields.String()
    parent_code = computed(
        fields.String, lambda area: area.parent.code if area.parent else None, allow_none=True
    )
    policy = computed(
        fields.Nested,
        lambda area: area.own_policy(),
        PolicySchema,
        metadata={"description": "fields this area sets"},
    )
    effective_policy = computed(fields.Nested, effective_policy, EffectivePolicySchema)


class AreaQuerySchema(ma.Schema):
    parent_code = fields.String()
