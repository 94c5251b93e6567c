"""Throttles (Flask-Limiter): how fast a client may sign in or look people up.

The limits are declared beside the views they guard (``auth/api.py``,
``persons/limits.py``); this module holds the one limiter, the client
address every limit and every audit event uses, and the 429 answer in the
contract's error shape with ``Retry-After``.

Counts live in ``ANJUKA_RATELIMIT_STORAGE_URL``: ``memory://`` by default,
which counts per process, so under gunicorn each worker counts for itself;
a shared store (``redis://host:6379``) makes every worker and host count
together. Windows are moving windows, so a store must support them (memory,
Redis, MongoDB).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter, RequestLimit
from flask_limiter.errors import RateLimitExceeded
from limits import parse_many

from anjuka.config import Config
from anjuka.core.errors import error_body
from anjuka.core.transactions import finish_refusal, is_retry


def client_address() -> str:
    """The client's address: the socket peer, or what the trusted proxies said it was.

    ``ProxyFix`` (``ANJUKA_TRUSTED_PROXIES``) has already rewritten
    ``remote_addr`` when proxies are trusted, so the throttles, the tokens'
    origin and the audit trail all see the same address.
    """
    return request.remote_addr or "unknown"


limiter = Limiter(key_func=client_address)
# A view tried again after a conflict (core/transactions.py) was counted at its first try.
limiter.request_filter(is_retry)
_THROTTLED_ATTR = "_anjuka_throttled"
View = TypeVar("View", bound=Callable[..., Any])


def throttle(limit: Callable[[View], View]) -> Callable[[View], View]:
    """``limit`` (a Flask-Limiter decorator), marking the views it limits.

    The API's document lists a 429 for the marked views (``anjuka/core/api.py``),
    so every limit on an API view is wrapped in this.
    """

    def apply(view: View) -> View:
        limited = limit(view)
        setattr(limited, _THROTTLED_ATTR, True)
        return limited

    return apply


def is_throttled(view: Callable | None) -> bool:
    """Whether a limit of ``throttle`` guards ``view``."""
    return bool(getattr(view, _THROTTLED_ATTR, False))


def configured(name: str) -> Callable[[], str]:
    """A limit read from the running app's configuration at request time."""

    def provider() -> str:
        return getattr(current_app.extensions["anjuka_config"], name)

    return provider


def retry_after(request_limit: RequestLimit) -> int:
    """Whole seconds until the breached limit lets a request through again."""
    return max(1, request_limit.reset_at - int(time.time()))


def first_refusal(request_limit: RequestLimit) -> bool:
    """Whether this is the first request the limit refuses since it was last reached.

    A marker per breached key lives until the window frees a request again,
    so a burst of refusals is reported (audited, alerted) once per period
    rather than once per request.
    """
    marker = f"anjuka/refused/{request_limit.key}"
    return limiter.storage.incr(marker, retry_after(request_limit)) == 1


def throttled(
    code: str, message: str, request_limit: RequestLimit, seconds: int | None = None
) -> Response:
    """The 429 answer for a breached limit, in the contract's error shape.

    ``seconds`` is the wait already told elsewhere (an audit event): the
    clock read once, so a second that passes in between cannot make the two
    disagree.
    """
    if seconds is None:
        seconds = retry_after(request_limit)
    response = jsonify(error_body(429, code, message, retry_after=seconds))
    response.status_code = 429
    response.headers["Retry-After"] = str(seconds)
    return response


def init_app(app: Flask, config: Config) -> None:
    """Bind the limiter (after the gate, so limits keyed by user see the caller)."""
    for name in ("sign_in_limit", "sign_in_address_limit", "lookup_limit"):
        value = getattr(config, name)
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                f"{name}: {value!r} is not a rate limit such as '5 per 15 minutes'"
            ) from None
    limiter.init_app(app)

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded) -> ResponseReturnValue:
        # A limit is judged before the view runs: all a refused request wrote is its
        # refusal's record (a throttled sign-in's audit event, a bulk_lookup alert).
        finish_refusal(keep_writes=True)
        if exc.response is not None:
            return exc.response
        current = limiter.current_limit
        seconds = retry_after(current) if current is not None else 60
        body = error_body(429, "too_many_requests", "Too many requests.", retry_after=seconds)
        return jsonify(body), 429, {"Retry-After": str(seconds)}
