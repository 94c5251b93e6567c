"""The supervisor's alerts inbox and each alert's page; the paging and the area filter the
supervisor's lists share (the dashboard's in ``dashboard.py``, transfers in ``transfers.py``).

Each page reads and acts through what the API uses: the alerts' scope
filter and operations. A record outside the caller's areas is not found
here either. Names and document numbers are always masked
(``anjuka/core/privacy.py``): nothing here reveals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as l_
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from anjuka.alerts import operations as alert_operations
from anjuka.alerts.api import alert_filter, get_alert_or_404
from anjuka.alerts.models import ALERT_KINDS, LIVE_STATUSES, Alert, Severity
from anjuka.alerts.schemas import AcknowledgeSchema, ResolveSchema
from anjuka.areas.models import Area
from anjuka.areas.permissions import get_area_or_404
from anjuka.core.db import db
from anjuka.core.privacy import mask_name
from anjuka.core.replica import reads_replica
from anjuka.core.scope import scope_of
from anjuka.core.security import Identity, require_identity, requires
from anjuka.dwellings.models import Dwelling
from anjuka.dwellings.permissions import dwelling_filter
from anjuka.residences.models import Residence
from anjuka.web.pages import attempt, blp, render, safe_next

#: Alerts and the dashboard are the supervisors' (admins always).
SUPERVISORS = ("supervisor",)
PAGE_SIZE = 50
#: How many levels below the caller's top areas the area filter offers.
AREA_CHOICE_DEPTH = 2

KIND_NAMES = {
    "over_occupancy": l_("Over-occupied dwelling"),
    "illegal_dwelling_occupied": l_("Illegal structure occupied"),
    "revoked_card_presented": l_("Revoked card presented"),
    "clone_suspected": l_("Suspected cloned card"),
    "card_not_returned": l_("Card not returned"),
    "late_registration": l_("Late registration"),
    "registration_expiring": l_("Registration expiring"),
    "card_expiring": l_("Card expiring"),
    "reader_offline": l_("Card reader offline"),
    "transfer_requested": l_("Transfer waiting"),
    "bulk_lookup": l_("Many look-ups by document"),
}
SEVERITY_NAMES = {
    "info": l_("Information"),
    "warning": l_("Warning"),
    "critical": l_("Critical"),
}
STATUS_NAMES = {
    "open": l_("Open"),
    "acknowledged": l_("Acknowledged"),
    "resolved": l_("Resolved"),
}
#: The inbox's status filter: the live ones (open or acknowledged) unless asked otherwise.
STATUS_FILTERS = {
    "live": l_("Open or acknowledged"),
    **STATUS_NAMES,
    "all": l_("Any status"),
}
SUBJECT_NAMES = {
    "dwelling": l_("Dwelling"),
    "residence": l_("Residence"),
    "card": l_("Card"),
    "reader": l_("Card reader"),
    "user": l_("User"),
    "transfer": l_("Transfer"),
    "uid": l_("Chip"),
}
#: The facts of an alert's details the alert's page shows, by their key.
FACT_LABELS = {
    "occupants": l_("Residents"),
    "capacity": l_("Capacity"),
    "observed_headcount": l_("Head count seen"),
    "registered": l_("Registered residents"),
    "arrived_on": l_("Arrived on"),
    "registration_deadline": l_("Registration deadline"),
    "registered_on": l_("Registered on"),
    "departed_on": l_("Departed on"),
    "grace_days": l_("Days allowed to return the card"),
    "expires_on": l_("Expires on"),
    "card_no": l_("Card number"),
    "card_nos": l_("Card numbers"),
    "to_area_code": l_("New area"),
    "due_on": l_("Deadline"),
    "silent_hours": l_("Hours without contact"),
}


def _page_number() -> int:
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        return 1


@dataclass(frozen=True)
class Paged:
    """One page of a longer list, and the links to its neighbours."""

    items: list
    total: int
    page: int
    previous: str | None
    following: str | None

    @property
    def first(self) -> int:
        return (self.page - 1) * PAGE_SIZE + 1 if self.items else 0

    @property
    def last(self) -> int:
        return (self.page - 1) * PAGE_SIZE + len(self.items)


def paged(stmt: sa.Select, endpoint: str, args: Mapping[str, Any]) -> Paged:
    """``stmt``'s rows for the requested page (``PAGE_SIZE`` each), with their neighbours."""
    page = _page_number()
    total = db.session.scalar(
        sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())
    )
    rows = list(db.session.scalars(stmt.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)))
    kept = {k: v for k, v in args.items() if v not in (None, "")}
    previous = url_for(endpoint, **kept, page=page - 1) if page > 1 else None
    following = (
        url_for(endpoint, **kept, page=page + 1) if page * PAGE_SIZE < (total or 0) else None
    )
    return Paged(rows, total or 0, page, previous, following)


def area_choices(identity: Identity, selected: Area | None) -> list[tuple[Area, int]]:
    """The areas to offer in a filter, each with its depth below the caller's top areas."""
    scope = scope_of(identity)
    if scope.unrestricted:
        tops = db.session.scalars(sa.select(Area.path).where(Area.parent_id.is_(None))).all()
    else:
        tops = list(scope.area_paths)
    # A city has thousands of communities: offer the levels near the top, by the path's depth.
    slashes = sa.func.length(Area.path) - sa.func.length(sa.func.replace(Area.path, "/", ""))
    clauses = [
        sa.and_(
            Area.path.startswith(top, autoescape=True),
            slashes <= top.count("/") + AREA_CHOICE_DEPTH,
        )
        for top in tops
    ]
    if not clauses:
        return []
    found = db.session.scalars(sa.select(Area).where(sa.or_(*clauses)).order_by(Area.path)).all()
    choices = []
    for area in found:
        top = max((t for t in tops if area.path.startswith(t)), key=len)
        choices.append((area, area.path.count("/") - top.count("/")))
    if selected is not None and all(a.id != selected.id for a, _ in choices):
        choices.insert(0, (selected, 0))  # deeper down, or above the caller's own
    return choices


# -- the alerts inbox -----------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """What an alert is about, in words the page can show (masked)."""

    kind: str
    text: str
    href: str | None = None


def _subjects(identity: Identity, alerts: list[Alert]) -> dict[int, Subject]:
    """Describe each alert's subject, reading only records the caller may see."""
    ids: dict[str, set[int]] = {"dwelling": set(), "residence": set()}
    for alert in alerts:
        if alert.subject_type in ids and alert.subject_id.isdigit():
            ids[alert.subject_type].add(int(alert.subject_id))
    dwellings = {
        d.id: d
        for d in db.session.scalars(
            sa.select(Dwelling).where(Dwelling.id.in_(ids["dwelling"]), dwelling_filter(identity))
        )
    }
    residences = {
        r.id: r
        for r in db.session.scalars(
            sa.select(Residence)
            .join(Dwelling, Residence.dwelling_id == Dwelling.id)
            .where(Residence.id.in_(ids["residence"]), dwelling_filter(identity))
            .options(selectinload(Residence.person), selectinload(Residence.dwelling))
        )
    }
    described = {}
    for alert in alerts:
        kind = str(SUBJECT_NAMES.get(alert.subject_type, alert.subject_type))
        text = f"#{alert.subject_id}"
        href = None
        number = int(alert.subject_id) if alert.subject_id.isdigit() else None
        if alert.subject_type == "dwelling" and number in dwellings:
            text = dwellings[number].address
        elif alert.subject_type == "residence" and number in residences:
            residence = residences[number]
            text = f"{mask_name(residence.person.name)} · {residence.dwelling.address}"
        elif alert.subject_type in ("card", "uid"):
            text = alert.subject_id
        elif alert.subject_type == "user" and alert.details.get("username"):
            text = str(alert.details["username"])
        elif alert.subject_type == "transfer":
            href = url_for("web.transfers", status="all")
        described[alert.id] = Subject(kind, text, href)
    return described


@dataclass(frozen=True)
class AlertFilters:
    kind: str | None
    status: str
    severity: str | None
    area: Area | None

    def args(self) -> dict[str, str | None]:
        return {
            "kind": self.kind,
            "status": self.status,
            "severity": self.severity,
            "area": self.area.code if self.area is not None else None,
        }


def _alert_filters() -> AlertFilters:
    """The inbox's filters from the query string; an unknown value filters nothing."""
    kind = request.args.get("kind") or None
    status = request.args.get("status") or "live"
    severity = request.args.get("severity") or None
    code = request.args.get("area") or None
    return AlertFilters(
        kind=kind if kind in ALERT_KINDS else None,
        status=status if status in STATUS_FILTERS else "live",
        severity=severity if severity in set(Severity) else None,
        area=get_area_or_404(code) if code else None,
    )


def filtered_alerts(identity: Identity, filters: AlertFilters) -> sa.Select:
    """The alerts the inbox lists: the API's scope and filters, newest activity first."""
    stmt = sa.select(Alert).where(alert_filter(identity))
    if filters.kind:
        stmt = stmt.where(Alert.kind == filters.kind)
    if filters.status == "live":
        stmt = stmt.where(Alert.status.in_(LIVE_STATUSES))
    elif filters.status != "all":
        stmt = stmt.where(Alert.status == filters.status)
    if filters.severity:
        stmt = stmt.where(Alert.severity == filters.severity)
    if filters.area is not None:
        subtree = sa.select(Area.id).where(Area.path.startswith(filters.area.path, autoescape=True))
        stmt = stmt.where(Alert.area_id.in_(subtree))
    return stmt.order_by(Alert.last_seen_at.desc(), Alert.id.desc())


def _alert_context() -> dict[str, Any]:
    return {
        "kind_names": KIND_NAMES,
        "severity_names": SEVERITY_NAMES,
        "status_names": STATUS_NAMES,
        "fact_labels": FACT_LABELS,
    }


@blp.route("/alerts")
@requires(*SUPERVISORS)
@reads_replica
def supervise() -> tuple[str, int]:
    """The alerts inbox: the caller's areas' alerts, filtered by kind, status, severity, area."""
    identity = require_identity()
    filters = _alert_filters()
    listed = paged(
        filtered_alerts(identity, filters).options(selectinload(Alert.area)),
        "web.supervise",
        filters.args(),
    )
    return render(
        "web/supervise/inbox.html",
        filters=filters,
        listed=listed,
        subjects=_subjects(identity, listed.items),
        areas=area_choices(identity, filters.area),
        status_filters=STATUS_FILTERS,
        here=request.full_path.rstrip("?"),
        **_alert_context(),
    )


def _alert_page(alert: Alert, status: int = 200, **context: Any) -> tuple[str, int]:
    identity = require_identity()
    back = safe_next(request.values.get("back")) or url_for("web.supervise")
    return render(
        "web/supervise/alert.html",
        status=status,
        alert=alert,
        subject=_subjects(identity, [alert])[alert.id],
        back=back,
        **_alert_context(),
        **context,
    )


@blp.route("/alerts/<int:alert_id>")
@requires(*SUPERVISORS)
def alert(alert_id: int) -> tuple[str, int]:
    """One alert, with the forms to acknowledge and resolve it."""
    return _alert_page(get_alert_or_404(alert_id))


def _note(schema: ma.Schema) -> tuple[str | None, str | None]:
    """The form's note as the API's schema accepts it, or the reason it does not."""
    note = request.form.get("note", "").strip() or None
    try:
        schema.load({"note": note} if note is not None or schema.fields["note"].required else {})
    except ma.ValidationError:
        if note is None:
            return None, _("Write a note: what was found, what was done.")
        return None, _("The note is too long (at most 2000 characters).")
    return note, None


def _after_alert(alert: Alert, message: str) -> Response:
    flash(message, "good")
    back = safe_next(request.form.get("back"))
    target = safe_next(request.form.get("next")) or url_for("web.alert", alert_id=alert.id)
    if back and target.startswith(url_for("web.alert", alert_id=alert.id)):
        target = url_for("web.alert", alert_id=alert.id, back=back)
    return redirect(target)


@blp.route("/alerts/<int:alert_id>/acknowledge", methods=["POST"])
@requires(*SUPERVISORS)
def acknowledge_alert(alert_id: int) -> Response | tuple[str, int]:
    """Acknowledge an open alert (audited), with a note if one is written."""
    identity = require_identity()
    alert = get_alert_or_404(alert_id, for_update=True)
    note, problem = _note(AcknowledgeSchema())
    if problem is not None:
        return _alert_page(alert, 422, ack_error=problem)
    tried = attempt(lambda: alert_operations.acknowledge(identity, alert, note))
    if tried.refusal is not None:
        return _alert_page(alert, tried.refusal.status, error=tried.message)
    return _after_alert(alert, _("The alert is acknowledged."))


@blp.route("/alerts/<int:alert_id>/resolve", methods=["POST"])
@requires(*SUPERVISORS)
def resolve_alert(alert_id: int) -> Response | tuple[str, int]:
    """Resolve an alert with a note (audited)."""
    identity = require_identity()
    alert = get_alert_or_404(alert_id, for_update=True)
    note, problem = _note(ResolveSchema())
    if problem is not None or note is None:
        return _alert_page(alert, 422, resolve_error=problem)
    tried = attempt(lambda: alert_operations.resolve(identity, alert, note))
    if tried.refusal is not None:
        return _alert_page(alert, tried.refusal.status, error=tried.message)
    return _after_alert(alert, _("The alert is resolved."))
