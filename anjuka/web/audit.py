"""The auditor's pages: the trail with filters, its verification, a person's access report.

Auditors read the trail as the API gives it (``GET /audit``, same role) and
see personal data masked only. A person is found by document number through
the audited, throttled look-up every other look-up uses; the report then
lists every unmasked view of that person's identity and every look-up of the
document, matched by its keyed hash (the trail never holds the number).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from flask import request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as l_

from anjuka.audit.models import AuditEvent
from anjuka.audit.operations import verify
from anjuka.core.db import db
from anjuka.core.privacy import mask_name
from anjuka.core.security import require_identity, requires
from anjuka.core.time import start_of_day
from anjuka.persons.identity import ParsedDocument, parse_document
from anjuka.persons.limits import document_lookups_in_forms
from anjuka.persons.models import DOCUMENT_TYPES, Person
from anjuka.persons.operations import find_person, lookup_digests, record_document_lookup
from anjuka.web.pages import attempt, blp, render

#: How many events one page of the trail lists.
PAGE_SIZE = 50

#: What the trail's actions mean, in words (an action not named here shows its code).
ACTIONS = {
    "area.create": l_("area created"),
    "area.update": l_("area or policy changed"),
    "auth.address_throttled": l_("sign-ins from an address throttled"),
    "auth.login": l_("signed in"),
    "auth.login_failed": l_("sign-in failed"),
    "auth.login_locked": l_("sign-ins of a name locked"),
    "auth.logout": l_("signed out"),
    "auth.token_revoke": l_("own token or session revoked"),
    "card.activate": l_("card active"),
    "card.issue": l_("card issue started"),
    "card.issue_retry": l_("card issue retried"),
    "card.return": l_("card returned"),
    "card.return_requested": l_("card return started"),
    "card.revoke": l_("card revoked"),
    "card.sign": l_("card record signed"),
    "dwelling.create": l_("dwelling created"),
    "dwelling.reveal": l_("landlord shown in clear"),
    "dwelling.update": l_("dwelling changed"),
    "estate.create": l_("estate created"),
    "inspection.record": l_("inspection recorded"),
    "person.lookup": l_("look-up by document number"),
    "person.reveal": l_("identity shown in clear"),
    "reader.create": l_("desk reader registered"),
    "reader.revoke": l_("desk reader revoked"),
    "residence.arrive": l_("arrival registered"),
    "residence.depart": l_("departure recorded"),
    "transfer.cancel": l_("transfer cancelled"),
    "transfer.complete": l_("transfer completed"),
    "transfer.request": l_("transfer requested"),
    "user.create": l_("account created"),
    "user.disable": l_("account disabled"),
    "user.enable": l_("account enabled"),
    "user.password_change": l_("own password changed"),
    "user.password_change_failed": l_("own password change refused"),
    "user.password_set": l_("password set by an administrator"),
    "user.tokens_revoke": l_("account's tokens revoked"),
    "user.update": l_("role or scopes changed"),
    "webhook.create": l_("webhook created"),
    "webhook.deactivate": l_("webhook stopped"),
}
DOCUMENT_TYPE_NAMES = {
    "resident_id": l_("Resident identity card"),
    "passport": l_("Passport"),
    "hk_macao_permit": l_("Permit for Hong Kong and Macao residents"),
    "taiwan_permit": l_("Permit for Taiwan residents"),
    "foreign_permanent_id": l_("Foreigner's permanent residence card"),
}
SECTIONS = (
    ("web.audit_trail", l_("Trail"), "web.audit_trail"),
    ("web.audit_verify", l_("Verification"), "web.audit_verify"),
    ("web.audit_access_report", l_("Access report"), "web.audit_access_report"),
)
FILTERS = ("chain", "area_code", "actor", "action", "since", "until")


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render(
        template,
        status=status,
        sections=SECTIONS,
        done=(),
        actions=ACTIONS,
        **context,
    )


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def db_scalars(stmt: sa.Select) -> list[Any]:
    return list(db.session.scalars(stmt))


@blp.route("/audit", methods=["GET"])
@requires("auditor")
def audit_trail() -> tuple[str, int]:
    """The trail, newest first, filtered by chain, area, actor, action and calendar days."""
    chosen = {name: request.args.get(name, "").strip() for name in FILTERS}
    stmt = sa.select(AuditEvent).order_by(AuditEvent.id.desc())
    problems = {}
    if chosen["chain"]:
        stmt = stmt.where(AuditEvent.chain == chosen["chain"])
    if chosen["area_code"]:
        stmt = stmt.where(AuditEvent.area_code == chosen["area_code"])
    if chosen["actor"]:
        stmt = stmt.where(AuditEvent.actor_name == chosen["actor"])
    if chosen["action"]:
        stmt = stmt.where(AuditEvent.action == chosen["action"])
    # Days are the registry's calendar days, both ends included.
    for name in ("since", "until"):
        if chosen[name] and _day(chosen[name]) is None:
            problems[name] = _("Enter a date as year-month-day.")
    since, until = _day(chosen["since"]), _day(chosen["until"])
    if since is not None:
        stmt = stmt.where(AuditEvent.occurred_at >= start_of_day(since))
    if until is not None:
        stmt = stmt.where(AuditEvent.occurred_at < start_of_day(until + timedelta(days=1)))
    before = request.args.get("before", "")
    if before.isdigit():
        stmt = stmt.where(AuditEvent.id < int(before))
    events = [] if problems else list(db_scalars(stmt.limit(PAGE_SIZE + 1)))
    older = events[PAGE_SIZE - 1].id if len(events) > PAGE_SIZE else None
    return _page(
        "web/audit/trail.html",
        status=422 if problems else 200,
        events=events[:PAGE_SIZE],
        chosen=chosen,
        problems=problems,
        older=older,
        filtered=any(chosen.values()),
    )


@blp.route("/audit/verify", methods=["GET"])
@requires("auditor")
def audit_verify() -> tuple[str, int]:
    """Walk every chain, as ``anjuka audit verify`` does, and say whether the trail holds."""
    result = verify()
    return _page("web/audit/verify.html", result=result)


@blp.route("/audit/access-report", methods=["GET"])
@requires("auditor")
def audit_access_report() -> tuple[str, int]:
    """The form that names a person by document number (sent in the body, never in a URL)."""
    return _page("web/audit/access.html", document_types=DOCUMENT_TYPE_NAMES, report=None)


def _access_report(document: ParsedDocument) -> dict[str, Any]:
    """Look the document up (audited) and gather who saw the holder's identity and who searched."""
    identity = require_identity()
    person = find_person(document)
    record_document_lookup(
        identity, document, None if person is None else person.id, via="audit.access_report"
    )
    reveals: list[AuditEvent] = []
    if person is not None:
        reveals = db_scalars(
            sa.select(AuditEvent)
            .where(
                AuditEvent.action == "person.reveal",
                AuditEvent.subject_type == "person",
                AuditEvent.subject_id == str(person.id),
            )
            .order_by(AuditEvent.id)
        )
    lookups = db_scalars(
        sa.select(AuditEvent)
        .where(
            AuditEvent.action == "person.lookup",
            AuditEvent.details["document_hash"].as_string().in_(lookup_digests(document)),
        )
        .order_by(AuditEvent.id)
    )
    return {"person": person, "reveals": reveals, "lookups": lookups}


@blp.route("/audit/access-report", methods=["POST"])
@document_lookups_in_forms
@requires("auditor")
def audit_access_report_post() -> tuple[str, int]:
    """A person's access report: every unmasked view of their identity, every look-up for it."""
    document_type = request.form.get("document_type", "")
    number = request.form.get("document_number", "")
    if document_type not in DOCUMENT_TYPES:
        document_type = "resident_id"

    def report() -> dict[str, Any]:
        return _access_report(parse_document(document_type, number))

    tried = attempt(report)
    chosen = {"document_type": document_type}
    if tried.refusal is not None:
        return _page(
            "web/audit/access.html",
            status=tried.refusal.status,
            document_types=DOCUMENT_TYPE_NAMES,
            report=None,
            chosen=chosen,
            error=tried.message,
        )
    found = tried.result
    assert found is not None  # noqa: S101 (attempt gives a result or a refusal)
    person: Person | None = found["person"]
    return _page(
        "web/audit/access.html",
        document_types=DOCUMENT_TYPE_NAMES,
        report=found,
        chosen=chosen,
        masked_name=mask_name(person.name) if person is not None else None,
    )
