"""The throttle on look-ups by document number (Flask-Limiter), per user.

A mask such as ``4115**********387X`` leaves few candidates, and each
look-up answers whether one of them is registered: so look-ups by document
number, through ``POST /persons/lookup``, document verifications and
transfer requests together, are limited per user (``ANJUKA_LOOKUP_LIMIT``, 30 a minute). A
refusal answers 429 ``too_many_lookups`` with ``Retry-After`` and raises the
``bulk_lookup`` alert for the user's supervisors (or the admins).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Response, request
from flask_limiter import RequestLimit, RouteLimit

from anjuka.core import signals
from anjuka.core.limits import configured, limiter, throttle, throttled
from anjuka.core.security import require_identity


def _caller_key() -> str:
    return f"user:{require_identity().id}"


def _not_by_document() -> bool:
    """Whether the request names no document number (top level, or its ``person``'s)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return True
    person = body.get("person")
    return "document_number" not in body and not (
        isinstance(person, dict) and "document_number" in person
    )


def _lookups_refused(limit: RequestLimit) -> Response:
    identity = require_identity()
    # Each refusal counts on the user's one live alert (kept with the 429: core/limits.py).
    signals.document_lookups_throttled.send(identity.subject, limit=str(limit.limit))
    return throttled(
        "too_many_lookups", "Too many look-ups by document number; try again later.", limit
    )


document_lookups = throttle(
    limiter.shared_limit(
        configured("lookup_limit"),
        scope="document-lookup",
        key_func=_caller_key,
        exempt_when=_not_by_document,
        on_breach=_lookups_refused,
    )
)


def lookups_in_forms(names_a_document: Callable[[], bool]) -> RouteLimit:
    """The same allowance for a page's form; ``names_a_document``: is this post a look-up?"""
    return limiter.shared_limit(
        configured("lookup_limit"),
        scope="document-lookup",
        key_func=_caller_key,
        exempt_when=lambda: not names_a_document(),
        on_breach=_lookups_refused,
    )


#: The same allowance, for a page's form that names a document number.
document_lookups_in_forms = lookups_in_forms(lambda: bool(request.form.get("document_number")))
