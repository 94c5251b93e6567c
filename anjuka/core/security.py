"""The default-deny gate: every endpoint states who may call it, or nobody can.

A view declares its callers with :func:`public`, :func:`requires` (user
roles; admin is always allowed) or :func:`requires_reader` (a desk device).
The gate runs before every request; a view that declares nothing is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, current_app, g, request, session
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map

from anjuka.core.errors import AppError, Forbidden, Unauthorized
from anjuka.core.fields import MAX_ID
from anjuka.core.inputs import check_request_input

_ACCESS_ATTR = "_anjuka_access"
PUBLIC_ENDPOINTS = {"api-docs.openapi_json", "static", "web.static"}

TokenResolver = Callable[[str], "Identity | None"]
_token_resolvers: dict[str, TokenResolver] = {}


@dataclass
class Identity:
    """Who is calling: a signed-in user or a desk reader."""

    kind: str  # "user" | "reader"
    id: int
    name: str
    role: str | None = None
    subject: Any = None  # the User or Reader row
    extra: dict = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def public(view: Callable) -> Callable:
    """Open ``view`` to anonymous callers."""
    setattr(view, _ACCESS_ATTR, ("public",))
    return view


def requires(*roles: str) -> Callable[[Callable], Callable]:
    """Open a view to signed-in users of ``roles`` (admin always)."""

    def mark(view: Callable) -> Callable:
        setattr(view, _ACCESS_ATTR, ("user", frozenset(roles) | {"admin"}))
        return view

    return mark


def requires_reader(view: Callable) -> Callable:
    """Open a view to desk readers authenticated by their device token."""
    setattr(view, _ACCESS_ATTR, ("reader",))
    return view


def access_of(view: Callable | None) -> tuple | None:
    """Who ``view`` is open to: ``("public",)``, ``("user", roles)``, ``("reader",)`` or None."""
    return getattr(view, _ACCESS_ATTR, None)


def register_token_resolver(prefix: str, resolver: TokenResolver) -> None:
    """Let a domain resolve bearer tokens that start with ``prefix``."""
    _token_resolvers[prefix] = resolver


def hash_token(token: str) -> str:
    """What is stored of a bearer token."""
    return hashlib.sha256(token.encode()).hexdigest()


def current_identity() -> Identity | None:
    return g.get("identity")


def require_identity() -> Identity:
    identity = current_identity()
    if identity is None:
        raise Unauthorized("Authentication required.")
    return identity


SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
#: A client's ``X-Request-Id`` is kept only in this shape: it lands in the
#: audit trail and the logs, so nothing else a client sends is copied there.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{8,64}")


def request_id_for(sent: str | None) -> str:
    """The id of this request: the client's, when well formed, else a new one."""
    if sent is not None and REQUEST_ID_PATTERN.fullmatch(sent):
        return sent
    return uuid.uuid4().hex


def current_token() -> tuple[str | None, bool]:
    """The token this request carries, and whether it came from the session cookie.

    A bearer header wins; without one, a browser session (``POST
    /api/v1/auth/session``) carries a user token in its signed cookie.
    """
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, False
        return token.strip(), False
    cookie_token = session.get("token")
    return (cookie_token, True) if isinstance(cookie_token, str) else (None, False)


def _session_idle() -> bool:
    """Whether the browser session has been idle too long (and is then forgotten).

    The signed cookie carries when it was last used; a copy of an idle
    cookie is as dead as the original. Its token's own lifetime is the
    absolute limit.
    """
    idle = current_app.extensions["anjuka_config"].session_idle
    now = time.time()
    seen = session.get("seen")
    if isinstance(seen, int | float) and now - seen > idle.total_seconds():
        session.clear()
        return True
    session["seen"] = int(now)
    return False


def _resolve_identity() -> Identity | None:
    token, from_session = current_token()
    if token is None:
        return None
    if from_session and _session_idle():
        return None
    for prefix, resolver in _token_resolvers.items():
        if token.startswith(prefix):
            identity = resolver(token)
            if identity is not None and from_session:
                if identity.kind != "user":
                    return None
                identity.extra["via_session"] = True
            return identity
    return None


def _check_csrf(identity: Identity) -> None:
    """A session-authenticated change must echo the session's CSRF token."""
    if not identity.extra.get("via_session") or request.method in SAFE_METHODS:
        return
    expected = session.get("csrf")
    # Scripts send the header; the pages' forms send a hidden field.
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        raise Forbidden(
            f"A change made with a browser session needs the {CSRF_HEADER} header.",
            code="csrf_failed",
        )


def _check_body_type() -> None:
    """The API takes JSON bodies only (the pages post forms, under their CSRF check)."""
    if request.method not in {"POST", "PUT", "PATCH"} or not request.path.startswith("/api/"):
        return
    has_body = (request.content_length or 0) > 0 or "chunked" in request.headers.get(
        "Transfer-Encoding", ""
    )
    if has_body and not request.is_json:
        raise AppError(
            "Request bodies must be JSON (Content-Type: application/json).",
            code="unsupported_media_type",
            status=415,
        )


def gate() -> None:
    """Before every request: identify the caller, apply the view's rule, then check the input.

    The caller is refused (401/403) before anything of the body is read, so
    an anonymous request learns nothing from how its body is judged.
    """
    g.request_id = request_id_for(request.headers.get("X-Request-Id"))
    if request.endpoint is None:
        return  # routing fails with 404/405 on its own
    access = access_of(current_app.view_functions.get(request.endpoint))
    if request.endpoint in PUBLIC_ENDPOINTS:
        access = ("public",)
    if access is None:
        raise Forbidden("This endpoint is not open to anyone.")
    if access[0] == "public":
        g.identity = _resolve_identity()
    else:
        identity = _resolve_identity()
        if identity is None:
            raise Unauthorized("A valid bearer token is required.", code="unauthorized")
        g.identity = identity
        _check_csrf(identity)
        if access[0] == "reader":
            if identity.kind != "reader":
                raise Forbidden("Only a desk reader may call this endpoint.")
        elif identity.kind != "user" or identity.role not in access[1]:
            raise Forbidden("Your role may not do this.")
    _check_body_type()
    check_request_input()


def digits_up_to(limit: int) -> str:
    """A regular expression matching the decimal numbers from 0 to ``limit``, and no others."""
    digits = str(limit)
    choices = [rf"\d{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    for at, digit in enumerate(digits):
        if digit != "0":
            choices.append(rf"{digits[:at]}[0-{int(digit) - 1}]\d{{{len(digits) - at - 1}}}")
    choices.append(digits)
    return "(?:" + "|".join(choices) + ")"


class _BoundedIntegerConverter(IntegerConverter):
    """``<int:...>`` limited to the database's integer ids: larger numbers match nothing (404).

    The bound is in the pattern, not only in the conversion: a number the
    pattern took but the conversion refused would leave the path matched
    for the rule's other methods, and answer 405 instead of 404.
    """

    regex = digits_up_to(MAX_ID)

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)


def init_app(app: Flask) -> None:
    """Install the gate and the response headers every answer carries.

    Behind ``trusted_proxies`` proxies (a TLS terminator), the client address
    and scheme come from the ``X-Forwarded-For`` and ``X-Forwarded-Proto``
    entries those proxies appended; with none trusted (the default) the
    headers are ignored, since any client could send them.
    """
    proxies = app.extensions["anjuka_config"].trusted_proxies
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    app.url_map.converters["int"] = _BoundedIntegerConverter
    app.before_request(gate)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response
