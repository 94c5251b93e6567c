"""Request and response bodies of the auth endpoints."""

import marshmallow as ma
from marshmallow import fields, validate

from anjuka.auth.models import ROLES


class TokenRequestSchema(ma.Schema):
    username = fields.String(required=True, validate=validate.Length(1, 80))
    password = fields.String(required=True, validate=validate.Length(1, 1024), load_only=True)


class TokenSchema(ma.Schema):
    token = fields.String(required=True)
    expires_at = fields.DateTime(required=True)


class SessionSchema(ma.Schema):
    csrf_token = fields.String(required=True)
    expires_at = fields.DateTime(required=True)
    username = fields.String(required=True)
    role = fields.String(required=True)


class UserCreateSchema(ma.Schema):
    username = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.-]{2,80}$"))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    password = fields.String(required=True, load_only=True, validate=validate.Length(10, 1024))
    display_name = fields.String(validate=validate.Length(max=200))
    scopes = fields.List(
        fields.String(validate=validate.Regexp(r"^(area|estate|dwelling):[A-Za-z0-9_-]+$")),
        load_default=list,
    )


class UserSchema(ma.Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String(allow_none=True)
    role = fields.String()
    active = fields.Boolean()
    scopes = fields.Method("_scopes")

    def _scopes(self, user) -> list[str]:  # type: ignore[no-untyped-def]
        """The scopes in the form they were given: area:CODE, estate:ID, dwelling:ID."""
        out = []
        for s in user.scopes:
            if s.area_id is not None:
                out.append(f"area:{s.area.code}")
            elif s.estate_id is not None:
                out.append(f"estate:{s.estate_id}")
            else:
                out.append(f"dwelling:{s.dwelling_id}")
        return out


class MeSchema(ma.Schema):
    kind = fields.String()
    id = fields.Integer()
    name = fields.String()
    role = fields.String(allow_none=True)
