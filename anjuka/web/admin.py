"""The administrator's pages: areas and their policy, users, desk readers, keys.

The same operations as the API (``anjuka/areas``, ``anjuka/auth``) under the
same role (admin); a refusal is shown on the form in words and leaves
nothing written.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import flash, get_flashed_messages, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as l_
from werkzeug.wrappers import Response

from anjuka.areas.models import POLICY_FIELDS, Area
from anjuka.areas.operations import effective_policy, update_area
from anjuka.areas.permissions import get_area_or_404
from anjuka.areas.schemas import PolicySchema
from anjuka.auth import operations as accounts
from anjuka.auth.models import ROLES, User
from anjuka.cards.models import Reader
from anjuka.core.db import db
from anjuka.core.keys import FAMILIES, keyring
from anjuka.core.security import requires
from anjuka.web.pages import attempt, blp, render

#: The policy's fields in words, with the kind of input each takes.
POLICY_LABELS = {
    "min_area_per_person_m2": l_("Minimum area per person (m²)"),
    "area_basis": l_("Area counted"),
    "max_persons_per_room": l_("Most persons per room"),
    "minors_count": l_("Minors count toward capacity"),
    "family_exception": l_("Family exception allowed"),
    "registration_deadline_days": l_("Registration deadline (working days)"),
    "card_return_grace_days": l_("Card return grace (days)"),
    "card_validity_days": l_("Card validity (days)"),
    "retention_years": l_("Keep departed residents' identities (years)"),
}
BOOLEAN_FIELDS = ("minors_count", "family_exception")
INTEGER_FIELDS = (
    "max_persons_per_room",
    "registration_deadline_days",
    "card_return_grace_days",
    "card_validity_days",
    "retention_years",
)
BASES = {"building": l_("building area"), "usable": l_("usable area")}
FAMILY_NAMES = {
    "encryption": l_("Encryption of personal data"),
    "blind_index": l_("Blind index (look-ups by document)"),
    "signing": l_("Card signing"),
    "card_master": l_("Card master keys"),
}
#: The part's sections: (endpoint, label, the endpoints' prefix of its pages).
SECTIONS = (
    ("web.admin", l_("Areas"), "web.admin_area"),
    ("web.admin_users", l_("Users"), "web.admin_user"),
    ("web.admin_readers", l_("Desk readers"), "web.admin_readers"),
    ("web.admin_keys", l_("Keys"), "web.admin_keys"),
)


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render(
        template,
        status=status,
        sections=SECTIONS,
        done=get_flashed_messages(),
        **context,
    )


# -- areas ---------------------------------------------------------------------------


def shown_value(name: str, value: object) -> str:
    """A policy value in words."""
    if name in BOOLEAN_FIELDS:
        return _("yes") if value else _("no")
    if name == "area_basis":
        return str(BASES.get(str(value), value))
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)


@blp.route("/admin", methods=["GET"])
@requires("admin")
def admin() -> tuple[str, int]:
    """Every area, as a tree: each one's page shows its policy and where each value comes from."""
    areas = db.session.scalars(sa.select(Area).order_by(Area.path)).all()
    return _page("web/admin/areas.html", areas=areas)


def _policy_rows(area: Area, form: dict[str, str] | None = None) -> list[dict[str, Any]]:
    policy = effective_policy(area)
    names = {a.code: a.name for a in db.session.scalars(sa.select(Area))}
    rows = []
    for name in POLICY_FIELDS:
        own = getattr(area, name)
        source = policy.sources[name]
        if form is not None:
            entered = form.get(name, "")
        elif own is None:
            entered = ""
        elif name in BOOLEAN_FIELDS:
            entered = "yes" if own else "no"
        else:
            entered = shown_value(name, own) if name != "area_basis" else own
        rows.append(
            {
                "name": name,
                "label": POLICY_LABELS[name],
                "value": shown_value(name, getattr(policy, name)),
                "source": source,
                "source_name": names.get(source),
                "entered": entered,
            }
        )
    return rows


def _read_policy(form: dict[str, str]) -> tuple[dict[str, object], dict[str, str]]:
    """The policy typed into the form (empty: inherit) checked as the API checks it."""
    raw: dict[str, object] = {}
    problems: dict[str, str] = {}
    for name in POLICY_FIELDS:
        text = form.get(name, "").strip()
        if not text:
            raw[name] = None
        elif name in BOOLEAN_FIELDS:
            raw[name] = {"yes": True, "no": False}.get(text, text)
        elif name in INTEGER_FIELDS:
            raw[name] = int(text) if re.fullmatch(r"-?[0-9]{1,6}", text) else text
        elif name == "min_area_per_person_m2":
            try:
                raw[name] = str(Decimal(text))
            except InvalidOperation:
                problems[name] = _("Enter a number.")
        else:
            raw[name] = text
    try:
        loaded = PolicySchema().load({k: v for k, v in raw.items() if k not in problems})
    except ma.ValidationError as exc:
        for name in exc.messages_dict:
            problems.setdefault(name, _("This value is not allowed here."))
        loaded = {}
    return loaded, problems


@blp.route("/admin/areas/<code>", methods=["GET"])
@requires("admin")
def admin_area(code: str) -> tuple[str, int]:
    """One area: each policy value in effect, set here or inherited from which area."""
    area = get_area_or_404(code)
    return _area_page(area)


def _area_page(
    area: Area,
    status: int = 200,
    form: dict[str, str] | None = None,
    problems: dict[str, str] | None = None,
    error: str | None = None,
) -> tuple[str, int]:
    children = db.session.scalars(
        sa.select(Area).where(Area.parent_id == area.id).order_by(Area.code)
    ).all()
    ancestors = db.session.scalars(
        sa.select(Area).where(Area.code.in_(area.ancestor_codes[:-1])).order_by(Area.path)
    ).all()
    return _page(
        "web/admin/area.html",
        status=status,
        area=area,
        ancestors=ancestors,
        children=children,
        rows=_policy_rows(area, form),
        problems=problems or {},
        error=error,
        name=form.get("name", area.name) if form is not None else area.name,
    )


@blp.route("/admin/areas/<code>", methods=["POST"])
@requires("admin")
def admin_area_post(code: str) -> Response | tuple[str, int]:
    """Change an area's name or policy; an empty field inherits again."""
    area = get_area_or_404(code)
    form = {k: v for k, v in request.form.items() if k != "csrf_token"}
    policy, problems = _read_policy(form)
    name = form.get("name", "").strip()
    if not 1 <= len(name) <= 200:
        problems["name"] = _("Give the area a name.")
    if problems:
        return _area_page(area, 422, form, problems, _("Some fields need correcting: see below."))
    changed = {k: v for k, v in policy.items() if getattr(area, k) != v}
    tried = attempt(
        lambda: update_area(area, name=name if name != area.name else None, policy=changed)
    )
    if tried.refusal is not None:
        return _area_page(area, tried.refusal.status, form, {}, tried.message)
    flash(_("The area's policy is saved."))
    return redirect(url_for("web.admin_area", code=area.code))


# -- users ---------------------------------------------------------------------------


def _scope_list(text: str) -> list[str]:
    return [s for s in re.split(r"[\s,;]+", text.strip()) if s]


def _users_page(status: int = 200, **context: Any) -> tuple[str, int]:
    users = db.session.scalars(sa.select(User).order_by(User.username)).all()
    return _page(
        "web/admin/users.html",
        status=status,
        users=users,
        roles=ROLES,
        scopes_of=accounts.scope_specs,
        **context,
    )


@blp.route("/admin/users", methods=["GET"])
@requires("admin")
def admin_users() -> tuple[str, int]:
    """Every account: role, scopes, whether it may sign in; the form to add one."""
    return _users_page(form={})


@blp.route("/admin/users", methods=["POST"])
@requires("admin")
def admin_users_post() -> Response | tuple[str, int]:
    """Create an account (its role's kind of scope, a password of 10 characters or more)."""
    form = request.form
    tried = attempt(
        lambda: accounts.create_user(
            form.get("username", "").strip(),
            form.get("role", ""),
            form.get("password", ""),
            _scope_list(form.get("scopes", "")),
            form.get("display_name", "").strip() or None,
        )
    )
    if tried.refusal is not None or tried.result is None:
        kept = {k: form.get(k, "") for k in ("username", "display_name", "role", "scopes")}
        return _users_page(
            tried.refusal.status if tried.refusal else 422, form=kept, error=tried.message
        )
    flash(_("The account %(name)s is created.", name=tried.result.username))
    return redirect(url_for("web.admin_user", user_id=tried.result.id))


def _user_page(user: User, status: int = 200, **context: Any) -> tuple[str, int]:
    context.setdefault("scopes", " ".join(accounts.scope_specs(user)))
    return _page("web/admin/user.html", status=status, account=user, roles=ROLES, **context)


@blp.route("/admin/users/<int:user_id>", methods=["GET"])
@requires("admin")
def admin_user(user_id: int) -> tuple[str, int]:
    """One account: its role and scopes, enable or disable it, set its password."""
    return _user_page(accounts.get_user_or_404(user_id))


@blp.route("/admin/users/<int:user_id>/role", methods=["POST"])
@requires("admin")
def admin_user_role(user_id: int) -> Response | tuple[str, int]:
    """Change an account's role and scopes (from its next request)."""
    user = accounts.get_user_or_404(user_id)
    role, scopes = request.form.get("role", ""), request.form.get("scopes", "")
    tried = attempt(lambda: accounts.update_user(user, role=role, scopes=_scope_list(scopes)))
    if tried.refusal is not None:
        db.session.refresh(user)
        return _user_page(
            user, tried.refusal.status, role_error=tried.message, chosen_role=role, scopes=scopes
        )
    flash(_("The role and scopes are saved."))
    return redirect(url_for("web.admin_user", user_id=user.id))


@blp.route("/admin/users/<int:user_id>/active", methods=["POST"])
@requires("admin")
def admin_user_active(user_id: int) -> Response | tuple[str, int]:
    """Disable an account (its sessions and tokens end at once) or enable it again."""
    user = accounts.get_user_or_404(user_id)
    enable = request.form.get("active") == "1"
    tried = attempt(lambda: accounts.enable_user(user) if enable else accounts.disable_user(user))
    if tried.refusal is not None:
        db.session.refresh(user)
        return _user_page(user, tried.refusal.status, active_error=tried.message)
    flash(_("The account may sign in again.") if enable else _("The account is disabled."))
    return redirect(url_for("web.admin_user", user_id=user.id))


@blp.route("/admin/users/<int:user_id>/password", methods=["POST"])
@requires("admin")
def admin_user_password(user_id: int) -> Response | tuple[str, int]:
    """Set an account's password; its sessions and tokens end."""
    user = accounts.get_user_or_404(user_id)
    new, again = request.form.get("password", ""), request.form.get("password_again", "")
    if new != again:
        return _user_page(user, 422, password_error=_("The two passwords differ."))
    tried = attempt(lambda: accounts.set_password(user, new))
    if tried.refusal is not None:
        return _user_page(user, tried.refusal.status, password_error=tried.message)
    flash(_("The password is set; the account's sessions and tokens were ended."))
    return redirect(url_for("web.admin_user", user_id=user.id))


# -- readers and keys ------------------------------------------------------------------


@blp.route("/admin/readers", methods=["GET"])
@requires("admin")
def admin_readers() -> tuple[str, int]:
    """Every desk reader, what it serves, and when its daemon was last heard from."""
    readers = db.session.scalars(sa.select(Reader).order_by(Reader.name)).all()
    return _page("web/admin/readers.html", readers=readers)


@blp.route("/admin/keys", methods=["GET"])
@requires("admin")
def admin_keys() -> tuple[str, int]:
    """The keys' ids and when each was made active (never the key material)."""
    ring = keyring()
    families = [(FAMILY_NAMES[f], ring.key_ids(f)) for f in FAMILIES]
    return _page("web/admin/keys.html", families=families)
