"""Signing in and out, one's own password, the language of the pages."""

from __future__ import annotations

from flask import current_app, redirect, request, session, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from anjuka.auth import operations
from anjuka.auth.api import password_guesses, per_address, per_name_and_address
from anjuka.core.limits import client_address
from anjuka.core.security import current_identity, current_token, public, require_identity, requires
from anjuka.web import i18n
from anjuka.web.pages import attempt, blp, csrf_token, home_for, home_url, render, safe_next

EVERYONE = ("supervisor", "manager", "officer", "auditor")


@blp.route("/")
@public
def index() -> Response:
    """A visitor goes to sign in; a user to their role's home."""
    return redirect(home_url())


@blp.route("/sign-in", methods=["GET"])
@public
def sign_in() -> tuple[str, int]:
    """The sign-in form."""
    csrf_token()
    return render("web/sign_in.html", next=safe_next(request.args.get("next")))


@blp.route("/sign-in", methods=["POST"])
@per_name_and_address
@per_address
@public
def sign_in_post() -> Response | tuple[str, int]:
    """Check the password and start a browser session (throttled as the API's sign-in)."""
    username = request.form.get("username", "")
    tried = attempt(lambda: operations.authenticate(username, request.form.get("password", "")))
    if tried.result is None:
        # 401, so the throttles count the failure as the API's sign-in does.
        return render(
            "web/sign_in.html",
            status=401,
            error=tried.message,
            username=username,
            next=safe_next(request.form.get("next")),
        )
    user = tried.result
    lifetime = current_app.config["PERMANENT_SESSION_LIFETIME"]
    token, _expires = operations.issue_token(
        user, origin=client_address(), lifetime=lifetime, kind="session"
    )
    chosen = session.get("locale")
    session.clear()
    session.permanent = True
    session["token"] = token
    csrf_token()
    if chosen in i18n.LOCALES and user.locale is None:
        user.locale = chosen  # the language picked before signing in stays the user's
    return redirect(safe_next(request.form.get("next")) or home_for(user.role))


@blp.route("/sign-out", methods=["POST"])
@requires(*EVERYONE)
def sign_out() -> Response:
    """End the session on the server: its token is revoked, so a copied cookie dies too."""
    token, _from_session = current_token()
    if token:
        operations.revoke_token(token)
    session.clear()
    return redirect(url_for("web.sign_in"))


@blp.route("/account/password", methods=["GET"])
@requires(*EVERYONE)
def password() -> tuple[str, int]:
    """The form to change one's own password."""
    return render("web/password.html")


@blp.route("/account/password", methods=["POST"])
@password_guesses
@requires(*EVERYONE)
def password_post() -> tuple[str, int]:
    """Change one's own password; the other sessions and tokens end."""
    new, again = request.form.get("new_password", ""), request.form.get("new_password_again", "")
    if new != again:
        return render("web/password.html", status=422, error=_("The two new passwords differ."))
    tried = attempt(
        lambda: operations.change_own_password(
            require_identity(), request.form.get("current_password", ""), new
        )
    )
    if tried.refusal is not None:
        # 403 for a wrong current password, so the throttle counts it as the API does.
        return render("web/password.html", status=tried.refusal.status, error=tried.message)
    return render("web/password.html", done=tried.result)


@blp.route("/language", methods=["POST"])
@public
def language() -> Response:
    """Switch the pages' language; remembered for the user, or in this browser."""
    chosen = request.form.get("locale", "")
    if chosen in i18n.LOCALES:
        session["locale"] = chosen
        identity = current_identity()
        if identity is not None and identity.kind == "user":
            identity.subject.locale = chosen
    return redirect(safe_next(request.form.get("next")) or home_url())
