"""The flask-smorest ``Api`` with the error shape of the contract, and the errors it documents.

Every operation of the OpenAPI document lists the error answers it can give
(no catch-all ``default``), derived from what the view declares rather than
written beside each one: who may call it (``core.security``), whether a
throttle guards it (``core.limits``), and what it takes (path, query, body).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import marshmallow as ma
from apispec import BasePlugin
from flask import Flask
from flask_smorest import Api as _SmorestApi
from flask_smorest.pagination import PaginationMetadataSchema
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, Rule

from anjuka.core.errors import error_body, http_error_code, rollback_request
from anjuka.core.limits import is_throttled
from anjuka.core.security import access_of


class ErrorSchema(ma.Schema):
    """Every failure: HTTP status, stable machine code, message, field errors.

    Some refusals add the facts behind them; those fields are listed here,
    and no others appear.
    """

    status = ma.fields.Integer(required=True)
    error = ma.fields.String(required=True, metadata={"description": "stable machine code"})
    message = ma.fields.String(required=True)
    errors = ma.fields.Dict(metadata={"description": "per-field messages (422)"})
    retry_after = ma.fields.Integer(
        metadata={"description": "seconds to wait before sending again (429, 503 `try_again`)"}
    )
    residence_id = ma.fields.Integer(
        metadata={"description": "the current residence (409 `already_registered`)"}
    )
    capacity = ma.fields.Integer(metadata={"description": "409 `dwelling_full`"})
    occupants = ma.fields.Integer(metadata={"description": "409 `dwelling_full`"})
    rooms = ma.fields.Integer(metadata={"description": "409 `dwelling_full`"})
    limits = ma.fields.Dict(
        metadata={"description": "the area and room limits (409 `dwelling_full`)"}
    )
    policy = ma.fields.Dict(
        metadata={"description": "the policy that set them (409 `dwelling_full`)"}
    )
    card_no = ma.fields.String(
        metadata={"description": "the card in the way (409 `card_exists`, `uid_in_use`)"}
    )
    card_status = ma.fields.String(metadata={"description": "409 `card_exists`"})
    job_id = ma.fields.Integer(metadata={"description": "the job still running (409)"})
    job_status = ma.fields.String(metadata={"description": "409 `job_finished`"})
    job_error = ma.fields.String(allow_none=True, metadata={"description": "409 `job_finished`"})
    due_on = ma.fields.Date(metadata={"description": "409 `transfer_not_due`"})


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": ErrorSchema}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {
                "description": "seconds to wait before sending the request again",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return response


#: The error answers, by status, as the document's shared responses.
ERROR_RESPONSES: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("MalformedJson", _error("`malformed_json`: the body is not JSON, or nested too deep")),
    401: ("Unauthorized", _error("`unauthorized`: no token, or an expired or unknown one")),
    403: (
        "Forbidden",
        _error("`forbidden`: the caller's role may not do this (or `csrf_failed`)"),
    ),
    404: (
        "NotFound",
        _error("no such record, or one outside the caller's scope (`not_found`, ...)"),
    ),
    409: ("Conflict", _error("the registry's state refuses the change (`conflict`, ...)")),
    413: ("PayloadTooLarge", _error("`payload_too_large`: the body is over the limit")),
    415: ("UnsupportedMediaType", _error("`unsupported_media_type`: a body that is not JSON")),
    422: (
        "Invalid",
        _error("the input is refused (`validation_error` with `errors` per field, ...)"),
    ),
    429: ("Throttled", _error("too many requests of this kind", retry_after=True)),
    503: (
        "TryAgain",
        _error(
            "`try_again`: nothing was written; send the same request again later",
            retry_after=True,
        ),
    ),
}
#: What the document says before its operations (``info.description``).
API_DESCRIPTION = """\
Every answer outside 2xx carries the `Error` body, `{"status", "error",
"message", "errors"?}` as `application/json`, with a stable machine code in
`error`; each operation lists the statuses it can answer (docs/api.md).

Operations with `x-callers` need `Authorization: Bearer <token>` of one of
those roles (the admin may do everything), or of a desk reader where it says
`reader`: no token is 401, another role or kind of caller is 403.

One answer is not the app's: a request line (method, path and query) longer
than 8190 bytes is refused by gunicorn, in front of the app, with `414` as
`text/html` (docs/deployment.md). No operation needs a URL near that size.
"""
UNSAFE_METHODS = {"post", "put", "patch", "delete"}
BODY_METHODS = {"post", "put", "patch"}
PAGE_PARAMETERS = {"page", "page_size"}


def error_statuses(
    method: str, operation: dict[str, Any], rule: Rule, access: tuple | None
) -> set[int]:
    """The error statuses an operation can answer, from what its view declares.

    - 400, 413 and 415 when it can take a body; 422 when it takes input (a
      query, a body, a header, text in the path) or changes something;
    - unless it is public: 401 and 403 (403 also for a user on a desk
      reader's endpoint, and the reverse); 404 when it names records, by
      path, query or body (out of scope reads as not found); 409 when it
      changes something;
    - 503 always: the database could not be reached or the transaction met
      another (``try_again``). The plugin adds 429 under a throttle.
    """
    statuses = {503}
    query = {p.get("name") for p in operation.get("parameters", []) if p.get("in") == "query"}
    takes_body = "requestBody" in operation
    # An id in the path that is no id matches no route (404); a text one is judged (422).
    text_in_path = any(
        not isinstance(converter, IntegerConverter) for converter in rule._converters.values()
    )
    if method in BODY_METHODS:
        statuses |= {400, 413, 415}
    if method in UNSAFE_METHODS or takes_body or operation.get("parameters") or text_in_path:
        statuses.add(422)
    if access == ("public",):
        return statuses  # signing in: it declares its own 401
    statuses |= {401, 403}
    if rule.arguments or query - PAGE_PARAMETERS or takes_body:
        statuses.add(404)
    if method in UNSAFE_METHODS:
        statuses.add(409)
    return statuses


class ErrorResponses(BasePlugin):
    """An apispec plugin: each operation's error answers, callers and bearer security."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        view = self.app.view_functions.get(rule.endpoint)
        access = access_of(view)
        for method, operation in operations.items():
            if method == "parameters":
                continue
            responses = operation.setdefault("responses", {})
            given = {str(status) for status in responses}
            statuses = error_statuses(method, operation, rule, access)
            if is_throttled(view):
                statuses.add(429)
            for status in sorted(statuses):
                if str(status) not in given:
                    responses[str(status)] = ERROR_RESPONSES[status][0]
            if access is None or access[0] == "public":
                continue
            operation["security"] = [{"bearer": []}]
            operation["x-callers"] = ["reader"] if access[0] == "reader" else sorted(access[1])


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
    # No catch-all: each operation lists its errors (ErrorResponses).
    DEFAULT_ERROR_RESPONSE_NAME = None  # type: ignore[assignment]  # None is documented: no default

    def init_app(self, app: Flask, *, spec_kwargs: dict[str, Any] | None = None) -> None:
        """Bind to ``app``, document each operation's errors, and write numeric bounds
        as numbers."""
        spec_kwargs = dict(spec_kwargs or {})
        spec_kwargs["extra_plugins"] = [*spec_kwargs.get("extra_plugins", ()), ErrorResponses(app)]
        spec_kwargs.setdefault("info", {"description": API_DESCRIPTION})
        super().init_app(app, spec_kwargs=spec_kwargs)
        converter = self.ma_plugin.converter
        if converter is None:  # apispec makes it when the spec is set up, just above
            raise RuntimeError("the OpenAPI spec has no marshmallow converter")
        converter.add_attribute_function(_json_number_bounds)
        for name, response in ERROR_RESPONSES.values():
            self.spec.components.response(name, response)
        self.spec.components.security_scheme(
            "bearer",
            {
                "type": "http",
                "scheme": "bearer",
                "description": "a user's token (`POST /auth/tokens`) or a desk reader's",
            },
        )

    def _register_pagination_header(self) -> None:
        """``X-Pagination`` holds a JSON object: documented as JSON content, not a schema
        (which would mean OpenAPI's comma-separated ``simple`` style)."""
        self.spec.components.header(
            "PAGINATION",
            {
                "description": "Pagination metadata",
                "content": {"application/json": {"schema": PaginationMetadataSchema}},
            },
            lazy=True,
        )

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
