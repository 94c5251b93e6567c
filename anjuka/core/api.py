"""The flask-smorest ``Api`` with the error shape of the contract."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import marshmallow as ma
from flask import Flask
from flask_smorest import Api as _SmorestApi
from werkzeug.exceptions import HTTPException

from anjuka.core.errors import error_body, http_error_code, rollback_request


class ErrorSchema(ma.Schema):
    """Every failure: HTTP status, stable machine code, message, field errors."""

    status = ma.fields.Integer(required=True)
    error = ma.fields.String(required=True, metadata={"description": "stable machine code"})
    message = ma.fields.String(required=True)
    errors = ma.fields.Dict(metadata={"description": "per-field messages (422)"})


def _json_number_bounds(
    self: Any, field: ma.fields.Field, ret: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    """Bounds written as numbers: apispec copies a Decimal ``Range`` as is, and JSON
    renders a Decimal as a string, which makes the OpenAPI document invalid."""
    return {
        key: int(value) if value == value.to_integral_value() else float(value)
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
        if isinstance(value := ret.get(key), Decimal)
    }


class Api(_SmorestApi):
    """flask-smorest's Api answering errors as ``{"status", "error", "message", "errors"}``."""

    # flask-smorest types this as its own error schema, though any schema will do.
    ERROR_SCHEMA = ErrorSchema  # type: ignore[assignment]

    def init_app(self, app: Flask, *, spec_kwargs: dict[str, Any] | None = None) -> None:
        """Bind to ``app`` and teach the OpenAPI converter to write numeric bounds as numbers."""
        super().init_app(app, spec_kwargs=spec_kwargs)
        converter = self.ma_plugin.converter
        if converter is None:  # apispec makes it when the spec is set up, just above
            raise RuntimeError("the OpenAPI spec has no marshmallow converter")
        converter.add_attribute_function(_json_number_bounds)

    def handle_http_exception(self, error: HTTPException):
        """Render a Werkzeug/webargs HTTP error in the contract's shape."""
        rollback_request()
        data = getattr(error, "data", None) or {}
        errors = data.get("errors") or data.get("messages")
        if isinstance(errors, dict) and set(errors) <= {"json", "query", "view_args"}:
            # webargs groups messages by location; clients want them by field.
            flat: dict = {}
            for location_errors in errors.values():
                flat.update(location_errors if isinstance(location_errors, dict) else {})
            if flat:
                errors = flat
        code = http_error_code(error, errors)
        message = data.get("message") or error.description or error.name
        if code == "malformed_json":
            message = "The request body is not valid JSON."
        elif code == "validation_error":
            message = "The request has invalid fields."
        headers = dict(data.get("headers") or {})
        valid_methods = getattr(error, "valid_methods", None)
        if valid_methods:
            headers["Allow"] = ", ".join(valid_methods)
        body = error_body(error.code or 500, code, message, errors)
        return body, error.code, headers
