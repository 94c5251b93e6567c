"""What every page shares: the blueprint, CSRF on forms, refusals in words, error pages."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as l_
from werkzeug.wrappers import Response

from anjuka.core.db import db
from anjuka.core.errors import AppError, Forbidden
from anjuka.core.security import CSRF_FIELD, current_identity
from anjuka.core.time import as_utc, registry_zone
from anjuka.web import i18n
from anjuka.web.messages import explain

blp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)
T = TypeVar("T")

#: The main navigation: (endpoint, label, roles); an entry shows once its page exists.
NAV = (
    ("web.desk", l_("Desk"), {"manager", "supervisor", "admin"}),
    ("web.patrol", l_("Patrol"), {"officer", "supervisor", "admin"}),
    ("web.supervise", l_("Alerts"), {"supervisor", "admin"}),
    ("web.dashboard", l_("Dashboard"), {"supervisor", "admin"}),
    ("web.transfers", l_("Transfers"), {"manager", "supervisor", "admin"}),
    ("web.admin", l_("Administration"), {"admin"}),
    ("web.audit_trail", l_("Audit trail"), {"auditor", "admin"}),
)
ROLE_NAMES = {
    "admin": l_("administrator"),
    "supervisor": l_("supervisor"),
    "manager": l_("property desk"),
    "officer": l_("patrol officer"),
    "auditor": l_("auditor"),
}

#: Where each role starts.
HOMES = {
    "manager": "web.desk",
    "officer": "web.patrol",
    "supervisor": "web.supervise",
    "admin": "web.admin",
    "auditor": "web.audit_trail",
}


def csrf_token() -> str:
    """This browser's CSRF token (made on first use, signed-in or not)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


@blp.before_request
def _check_form_token() -> None:
    """Every form a page posts carries the session's CSRF token, signed-in or not."""
    if request.method == "POST":
        expected = session.get("csrf")
        sent = request.form.get(CSRF_FIELD, "")
        if not isinstance(expected, str) or not secrets.compare_digest(sent, expected):
            raise Forbidden("The form is out of date; load the page again.", code="csrf_failed")


def home_for(role: str | None) -> str:
    """Where a user of ``role`` starts (their own password page if their home is not there)."""
    endpoint = HOMES.get(role or "", "web.sign_in")
    return url_for(endpoint if endpoint in current_app.view_functions else "web.password")


def home_url() -> str:
    """Where the caller starts: their role's home, or the sign-in page."""
    identity = current_identity()
    if identity is None or identity.kind != "user":
        return url_for("web.sign_in")
    return home_for(identity.role)


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site (never another host)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@dataclass
class Outcome(Generic[T]):
    """What an operation tried from a page gave: its result, or the refusal to show."""

    result: T | None = None
    refusal: AppError | None = None

    @property
    def message(self) -> str | None:
        return explain(self.refusal) if self.refusal is not None else None


def attempt(operation: Callable[[], T]) -> Outcome[T]:
    """Run ``operation`` so that a refusal leaves nothing written and can be shown on the page.

    The page then answers normally (the form again, with the reason in
    words), and the request's one commit keeps nothing of the refused try.
    A refusal whose writes are its own record (``keep_writes``) keeps them.
    """
    savepoint = db.session.begin_nested()
    try:
        result = operation()
    except AppError as exc:
        if exc.keep_writes:
            savepoint.commit()
        else:
            savepoint.rollback()
        return Outcome(refusal=exc)
    savepoint.commit()
    return Outcome(result=result)


def render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """A page, with what every page needs."""
    return render_template(template, **context), status


def _wants_page() -> bool:
    # /healthz, /readyz and /metrics (the "ops" blueprint) answer machines, in JSON.
    return (
        not request.path.startswith("/api/")
        and request.endpoint != "web.static"
        and request.blueprint != "ops"
    )


def _error_page(response: Response) -> Response:
    """A page request refused: the error body of the API, rendered as a page in words."""
    if not _wants_page() or response.status_code < 400 or not response.is_json:
        return response
    body = response.get_json(silent=True)
    if not isinstance(body, dict) or "error" not in body:
        return response
    if response.status_code == 401:
        return redirect(url_for("web.sign_in", next=request.full_path.rstrip("?")))
    refusal = AppError(
        str(body.get("message", "")),
        code=str(body["error"]),
        **{k: v for k, v in body.items() if k not in ("status", "error", "message", "errors")},
    )
    page = render_template(
        "web/error.html", status=response.status_code, message=explain(refusal), code=body["error"]
    )
    answer = Response(page, status=response.status_code, mimetype="text/html")
    if "Retry-After" in response.headers:
        answer.headers["Retry-After"] = response.headers["Retry-After"]
    return answer


def _nav(role: str | None) -> list[dict[str, Any]]:
    items = []
    for endpoint, label, roles in NAV:
        if role in roles and endpoint in current_app.view_functions:
            url = url_for(endpoint)
            items.append({"url": url, "label": label, "current": request.path.startswith(url)})
    return items


def _page_context() -> dict[str, Any]:
    identity = current_identity()
    user = identity.subject if identity is not None and identity.kind == "user" else None
    role = identity.role if identity is not None and user is not None else None
    return {
        "nav": _nav(role),
        "role_names": ROLE_NAMES,
        "csrf_token": csrf_token,
        "html_lang": i18n.html_lang(),
        "locale": i18n.select_locale(),
        "languages": i18n.NAMES,
        "user": user,
        "role": role,
        "home_url": home_url,
        "local_time": local_time,
        "_": _,
    }


def init_app(app: Flask) -> None:
    """Bind the pages' shared behaviour to ``app``."""
    i18n.init_app(app)
    app.after_request(_error_page)
    app.context_processor(_page_context)


def local_time(moment: datetime | None) -> str:
    """An instant as the registry's clock shows it (date, hours and minutes)."""
    if moment is None:
        return ""
    return as_utc(moment).astimezone(registry_zone()).strftime("%Y-%m-%d %H:%M")
