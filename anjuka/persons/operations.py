"""Finding and creating persons; revealing what is masked, audited."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from anjuka.audit import operations as audit
from anjuka.core.protect import blind_index, blind_index_candidates, decrypt, encrypt
from anjuka.core.security import Identity
from anjuka.extensions import db
from anjuka.persons.identity import ParsedDocument, mask_document, parse_document
from anjuka.persons.models import Person

_PURPOSE = "person.document_number"
#: Roles that may see a document number in clear, on request and audited.
REVEAL_ROLES = {"admin", "supervisor", "officer"}


def _index_input(document: ParsedDocument) -> str:
    return f"{document.document_type}:{document.number}"


def find_person(document: ParsedDocument) -> Person | None:
    """The person holding this document, found through the blind index."""
    candidates = blind_index_candidates(_index_input(document), _PURPOSE)
    return db.session.scalar(sa.select(Person).where(Person.document_index.in_(candidates)))


def find_by_document(document_type: str, number: str) -> Person | None:
    """Validate and look up a document number."""
    return find_person(parse_document(document_type, number))


def record_person(
    person: Person | None,
    document: ParsedDocument,
    name: str,
    *,
    phone: str | None = None,
    origin: str | None = None,
    birth_date: date | None = None,
    sex: str | None = None,
) -> Person:
    """The person an arrival registers: ``person`` updated, or created if None.

    Called only once every check of the arrival has passed, so a refused
    arrival changes nothing. A person already known keeps their recorded
    name: a document identifies one person, and a clerk's spelling should
    not overwrite the record. Phone and origin are updated when given.
    """
    if person is not None:
        if phone:
            person.phone = phone
        if origin:
            person.origin = origin
        return person
    person = Person(
        document_type=document.document_type,
        document_number_enc=encrypt(document.number, _PURPOSE),
        document_index=blind_index(_index_input(document), _PURPOSE),
        document_masked=mask_document(document.number),
        name=name,
        sex=document.sex or sex,
        birth_date=document.birth_date or birth_date,
        phone=phone,
        origin=origin,
    )
    try:
        # Two desks may register the same new person at once: the unique
        # blind index decides, and the loser reads the winner's row.
        with db.session.begin_nested():
            db.session.add(person)
    except IntegrityError:
        existing = find_person(document)
        if existing is None:
            raise
        return record_person(existing, document, name, phone=phone, origin=origin)
    return person


def reveal_document_number(person: Person, identity: Identity, *, area_code: str | None) -> str:
    """The clear document number, for a role that may see it; audited."""
    number = decrypt(person.document_number_enc, _PURPOSE)
    audit.record(
        "person.reveal",
        subject_type="person",
        subject_id=person.id,
        area_code=area_code,
        details={"fields": ["document_number"], "role": identity.role},
    )
    return number


def reencrypt_all(batch: int = 1000) -> int:
    """Rewrite every document number under the active keys (after a rotation)."""
    from anjuka.core.keys import keyring
    from anjuka.core.protect import encryption_key_id

    active_enc, _ = keyring().encryption
    active_idx, _ = keyring().blind_index
    changed = 0
    last_id = 0
    while True:
        rows = db.session.scalars(
            sa.select(Person).where(Person.id > last_id).order_by(Person.id).limit(batch)
        ).all()
        if not rows:
            return changed
        for person in rows:
            last_id = person.id
            if encryption_key_id(
                person.document_number_enc
            ) == active_enc and person.document_index.startswith(f"{active_idx}:"):
                continue
            number = decrypt(person.document_number_enc, _PURPOSE)
            person.document_number_enc = encrypt(number, _PURPOSE)
            person.document_index = blind_index(f"{person.document_type}:{number}", _PURPOSE)
            changed += 1
        db.session.flush()
