"""A person's data export for a lawful request: everything held about them, and who saw it.

The export holds the identity in clear, every residence (with its dwelling's
address and area), every card, inspection and transfer, and the access
report: every event of the audit trail that unmasked the person or looked
them up by document number (a look-up is found by its keyed hash even when
it found nobody, and under every blind-index key in the ring), earlier
exports included. Making an export is itself audited (``person.export``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from anjuka.audit import operations as audit
from anjuka.audit.models import AuditEvent
from anjuka.auth.models import User
from anjuka.cards.models import Card
from anjuka.core.db import db
from anjuka.core.errors import NotFound
from anjuka.core.time import utcnow
from anjuka.persons.identity import ParsedDocument
from anjuka.persons.models import Person
from anjuka.persons.operations import find_person, lookup_digests
from anjuka.residences.models import Residence
from anjuka.transfers.models import Transfer
from anjuka.verifications.models import Inspection

#: Audit actions that show a person's identity or search for it.
ACCESS_ACTIONS = ("person.reveal", "person.lookup", "person.export")
FORMAT = 1


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def _identity(person: Person) -> dict[str, Any]:
    return {
        "id": person.id,
        "document_type": person.document_type,
        "document_number": person.document_number,
        "name": person.name,
        "sex": person.sex,
        "birth_date": _day(person.birth_date),
        "phone": person.phone,
        "origin": person.origin,
        "recorded_at": _instant(person.created_at),
    }


def _residences(person: Person) -> list[dict[str, Any]]:
    rows = db.session.scalars(
        sa.select(Residence)
        .where(Residence.person_id == person.id)
        .order_by(Residence.arrived_on, Residence.id)
    )
    return [
        {
            "id": r.id,
            "dwelling_id": r.dwelling_id,
            "address": r.dwelling.address,
            "area_code": r.dwelling.area.code,
            "arrived_on": _day(r.arrived_on),
            "departed_on": _day(r.departed_on),
            "registered_at": _instant(r.registered_at),
            "registration_deadline": _day(r.registration_deadline),
            "late": r.late,
            "minor": r.minor,
            "family_relation": r.family_relation,
            "override_reason": r.override_reason,
            "card_returned": r.card_returned,
        }
        for r in rows
    ]


def _cards(person: Person) -> list[dict[str, Any]]:
    rows = db.session.scalars(
        sa.select(Card).where(Card.person_id == person.id).order_by(Card.issued_at, Card.id)
    )
    return [
        {
            "card_no": c.card_no,
            "residence_id": c.residence_id,
            "status": c.status,
            "card_type": c.card_type,
            "issued_at": _instant(c.issued_at),
            "activated_at": _instant(c.activated_at),
            "expires_on": _day(c.expires_on),
            "revoked_at": _instant(c.revoked_at),
            "revocation_reason": c.revocation_reason,
            "returned_at": _instant(c.returned_at),
        }
        for c in rows
    ]


def _inspections(person: Person) -> list[dict[str, Any]]:
    rows = db.session.execute(
        sa.select(Inspection, User.username)
        .join(User, Inspection.officer_id == User.id)
        .where(Inspection.person_id == person.id)
        .order_by(Inspection.checked_at, Inspection.id)
    )
    return [
        {
            "id": i.id,
            "checked_at": _instant(i.checked_at),
            "officer": officer,
            "dwelling_id": i.dwelling_id,
            "input_kind": i.input_kind,
            "result": i.result,
            "reason": i.reason,
            "observed_headcount": i.observed_headcount,
            "offline": i.offline,
        }
        for i, officer in rows
    ]


def _transfers(person: Person) -> list[dict[str, Any]]:
    rows = db.session.scalars(
        sa.select(Transfer).where(Transfer.person_id == person.id).order_by(Transfer.id)
    )
    return [
        {
            "id": t.id,
            "from_residence_id": t.from_residence_id,
            "to_dwelling_id": t.to_dwelling_id,
            "arrived_on": _day(t.arrived_on),
            "status": str(t.status),
            "requested_at": _instant(t.requested_at),
            "due_on": _day(t.due_on),
            "closed_at": _instant(t.closed_at),
            "completion": None if t.completion is None else str(t.completion),
            "reason": t.reason,
            "to_residence_id": t.to_residence_id,
        }
        for t in rows
    ]


def access_report(person: Person, document: ParsedDocument) -> list[dict[str, Any]]:
    """Every unmasked view, look-up and export of the person, oldest first."""
    about_person = sa.and_(
        AuditEvent.subject_type == "person",
        AuditEvent.subject_id == str(person.id),
        AuditEvent.action.in_(ACCESS_ACTIONS),
    )
    searched = sa.and_(
        AuditEvent.action == "person.lookup",
        AuditEvent.details["document_hash"].as_string().in_(lookup_digests(document)),
    )
    events = db.session.scalars(
        sa.select(AuditEvent)
        .where(sa.or_(about_person, searched))
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    )
    return [
        {
            "event_id": e.id,
            "at": _instant(e.occurred_at),
            "action": e.action,
            "actor_type": e.actor_type,
            "actor": e.actor_name,
            "role": (e.details or {}).get("role"),
            "via": (e.details or {}).get("via"),
            "outcome": (e.details or {}).get("outcome"),
            "fields": (e.details or {}).get("fields"),
            "origin": e.origin,
            "request_id": e.request_id,
        }
        for e in events
    ]


def export_person(
    document: ParsedDocument,
    *,
    form: str,
    chain: str,
    actor: tuple[str, int | None, str | None] | None = None,
) -> dict[str, Any]:
    """Everything held about the holder of ``document``, audited as ``person.export``.

    404 ``person_not_found`` when nobody holds it (an anonymised person
    included: nothing identifying is left to export).
    """
    person = find_person(document)
    if person is None:
        raise NotFound("No person with that document.", code="person_not_found")
    residences = _residences(person)
    # Built before this export's own event, which the next export lists.
    access = access_report(person, document)
    export = {
        "format": FORMAT,
        "generated_at": _instant(utcnow()),
        "person": _identity(person),
        "residences": residences,
        "cards": _cards(person),
        "inspections": _inspections(person),
        "transfers": _transfers(person),
        "access_report": access,
    }
    audit.record(
        "person.export",
        subject_type="person",
        subject_id=person.id,
        chain=chain,
        actor=actor,
        details={
            "format": form,
            "residences": len(residences),
            "access_events": len(access),
        },
    )
    return export
