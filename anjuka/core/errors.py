"""One error shape for every failure, with a stable machine code."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class AppError(Exception):
    """A refusal the caller can act on: HTTP status, machine code, message."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        errors: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.errors = errors
        self.extra = extra


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class InvalidInput(AppError):
    status = 422
    code = "validation_error"


def error_body(status: int, code: str, message: str, errors: Any = None, **extra: Any) -> dict:
    """The JSON body of an error."""
    body: dict[str, Any] = {"status": status, "error": code, "message": message}
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


def http_error_code(error: HTTPException, errors: Any = None) -> str:
    """Stable machine code for a Werkzeug error."""
    if (
        error.code == 400
        and isinstance(errors, dict)
        and errors.get("json") == ["Invalid JSON body."]
    ):
        return "malformed_json"
    return _HTTP_CODES.get(error.code or 500, "http_error")


def init_app(app: Flask) -> None:
    """Register the handlers for our errors and anything unexpected."""

    @app.errorhandler(AppError)
    def _app_error(exc: AppError):  # type: ignore[no-untyped-def]
        body = error_body(exc.status, exc.code, exc.message, exc.errors, **exc.extra)
        return jsonify(body), exc.status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        if isinstance(exc, HTTPException):
            return app.extensions["anjuka_api"].handle_http_exception(exc)
        if isinstance(exc, IntegrityError):
            # A database invariant caught what the operations did not check.
            log.warning("integrity error: %s", exc.orig)
            body = error_body(409, "conflict", "The change conflicts with the registry's state.")
            return jsonify(body), 409
        log.exception("unhandled error")
        return jsonify(error_body(500, "internal_error", "Internal error.")), 500
