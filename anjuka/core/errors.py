"""One error shape for every failure, with a stable machine code."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import DataError, IntegrityError
from werkzeug.exceptions import HTTPException

from anjuka.core.db import db
from anjuka.core.transactions import finish_refusal, is_conflict, is_unavailable

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
    """A refusal the caller can act on: HTTP status, machine code, message.

    A refusal rolls back what the request wrote, unless ``keep_writes``:
    then those writes are the refusal's own record (a failed sign-in's audit
    event) and are committed.
    """

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        errors: dict[str, Any] | None = None,
        keep_writes: bool = False,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.errors = errors
        self.keep_writes = keep_writes
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


#: Seconds a client is asked to wait before sending a ``try_again`` request again.
RETRY_AFTER_CONFLICT = 1
RETRY_AFTER_UNAVAILABLE = 2


def rollback_request() -> None:
    """Undo whatever a failed request flushed: a refusal writes nothing.

    The session is also discarded at the end of the app context, but a
    caller that keeps its context (the CLI, a test client, a job runner)
    would otherwise commit the half-done work with its next request.
    """
    g.pop("kept_savepoint", None)
    try:
        db.session.rollback()
    except Exception:  # the original error matters more than a failed rollback
        log.exception("rollback after an error failed")


def try_again(message: str, retry_after: int) -> tuple[Any, int, dict[str, str]]:
    """503 ``try_again``: nothing was written, the same request may be sent again."""
    body = error_body(503, "try_again", message, retry_after=retry_after)
    return jsonify(body), 503, {"Retry-After": str(retry_after)}


def init_app(app: Flask) -> None:
    """Register the handlers for our errors and anything unexpected."""

    @app.errorhandler(AppError)
    def _app_error(exc: AppError) -> ResponseReturnValue:
        finish_refusal(exc.keep_writes)
        body = error_body(exc.status, exc.code, exc.message, exc.errors, **exc.extra)
        headers = {}
        if "retry_after" in exc.extra:
            headers["Retry-After"] = str(exc.extra["retry_after"])
        return jsonify(body), exc.status, headers

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> ResponseReturnValue:
        if isinstance(exc, HTTPException):
            return app.extensions["anjuka_api"].handle_http_exception(exc)
        rollback_request()
        if isinstance(exc, IntegrityError):
            # A database invariant caught what the operations did not check.
            log.warning("integrity error: %s", exc.orig)
            body = error_body(409, "conflict", "The change conflicts with the registry's state.")
            return jsonify(body), 409
        if isinstance(exc, DataError | OverflowError):
            # A value the schemas let through but no column can hold (an id
            # beyond the integer range, a string too long for its column).
            log.warning("unstorable value: %s", exc)
            body = error_body(422, "invalid_value", "A value is out of range for the registry.")
            return jsonify(body), 422
        if is_conflict(exc):
            log.warning("transaction conflict: %s", exc.orig)  # type: ignore[attr-defined]
            return try_again("The registry was busy; send the request again.", RETRY_AFTER_CONFLICT)
        if is_unavailable(exc):
            log.warning("database unavailable: %s", exc)
            return try_again(
                "The registry's database could not be reached; send the request again.",
                RETRY_AFTER_UNAVAILABLE,
            )
        log.exception("unhandled error")
        return jsonify(error_body(500, "internal_error", "Internal error.")), 500
