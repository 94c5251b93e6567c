"""Request and response bodies of the auth endpoints."""

import marshmallow as ma
from marshmallow import fields, validate

from anjuka.auth.models import ROLES
from anjuka.auth.operations import scope_specs

SCOPE_SPEC = validate.Regexp(r"^(area|estate|dwelling):[A-Za-z0-9_-]+$")
PASSWORD = validate.Length(10, 1024)


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
    password = fields.String(required=True, load_only=True, validate=PASSWORD)
    display_name = fields.String(validate=validate.Length(max=200))
    scopes = fields.List(fields.String(validate=SCOPE_SPEC), load_default=list)


class UserSchema(ma.Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String(allow_none=True)
    role = fields.String()
    active = fields.Boolean()
    scopes = fields.Method("_scopes")

    def _scopes(self, user) -> list[str]:
        """The scopes in the form they were given: area:CODE, estate:ID, dwelling:ID."""
        return scope_specs(user)


class UserUpdateSchema(ma.Schema):
    """Any of role, scopes (the whole new list), display name; checked as at creation."""

    role = fields.String(validate=validate.OneOf(ROLES))
    scopes = fields.List(fields.String(validate=SCOPE_SPEC))
    display_name = fields.String(allow_none=True, validate=validate.Length(max=200))


class PasswordSetSchema(ma.Schema):
    password = fields.String(required=True, load_only=True, validate=PASSWORD)


class PasswordChangeSchema(ma.Schema):
    current_password = fields.String(
        required=True, load_only=True, validate=validate.Length(1, 1024)
    )
    new_password = fields.String(required=True, load_only=True, validate=PASSWORD)


class TokensRevokedSchema(ma.Schema):
    tokens_revoked = fields.Integer(required=True)


class TokenInfoSchema(ma.Schema):
    """One of the caller's live tokens or browser sessions (never the token itself)."""

    id = fields.Integer()
    kind = fields.String(metadata={"description": "token (bearer) or session (browser)"})
    created_at = fields.DateTime()
    expires_at = fields.DateTime()
    origin = fields.String(allow_none=True, metadata={"description": "client address at sign-in"})
    current = fields.Boolean(metadata={"description": "the one this request carries"})


class MeSchema(ma.Schema):
    kind = fields.String()
    id = fields.Integer()
    name = fields.String()
    role = fields.String(allow_none=True)
