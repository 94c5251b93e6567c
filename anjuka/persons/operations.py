"""Finding and creating persons; revealing what is masked, audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import sqlalchemy as sa

from anjuka.audit import operations as audit
from anjuka.core.db import db, insert_unless_taken, locked_batches
from anjuka.core.errors import Conflict
from anjuka.core.protect import blind_index, blind_index_candidates
from anjuka.core.security import Identity
from anjuka.persons.identity import ParsedDocument, mask_document, parse_document
from anjuka.persons.models import DOCUMENT_PURPOSE, Person

_PURPOSE = DOCUMENT_PURPOSE
#: A separate purpose, so a search's hash in the trail is not the person's index.
_LOOKUP_PURPOSE = "audit.document_lookup"


def _index_input(document: ParsedDocument) -> str:
    return f"{document.document_type}:{document.number}"


def blind_index_candidates_of(document: ParsedDocument) -> list[str]:
    """The document's blind index under every key in the ring (mid-rotation look-ups)."""
    return blind_index_candidates(_index_input(document), _PURPOSE)


def find_person(document: ParsedDocument) -> Person | None:
    """The person holding this document, found through the blind index."""
    candidates = blind_index_candidates_of(document)
    return db.session.scalar(sa.select(Person).where(Person.document_index.in_(candidates)))


def hold_person(person: Person) -> Person | None:
    """Share-lock ``person`` for an arrival; None if it was anonymised meanwhile.

    ``anjuka retention run`` locks the persons it anonymises, so an arrival
    and the retention of the same person are ordered: an arrival first keeps
    the person (the run sees the new residence), a run first makes the
    arrival record a new person.
    """
    held = db.session.scalar(
        sa.select(Person)
        .where(Person.id == person.id)
        .with_for_update(read=True)
        .execution_options(populate_existing=True)
    )
    return None if held is None or held.anonymised_on is not None else held


def find_by_document(document_type: str, number: str) -> Person | None:
    """Validate and look up a document number."""
    return find_person(parse_document(document_type, number))


def lookup_digest(document: ParsedDocument) -> str:
    """A keyed hash of a searched document: equal searches match, the number is not in it.

    Whoever holds the blind-index key can test a number against the trail
    (an investigation); nobody else can read one out of it.
    """
    return blind_index(_index_input(document), _LOOKUP_PURPOSE)


def lookup_digests(document: ParsedDocument) -> list[str]:
    """The searched document's keyed hash under every blind-index key in the ring.

    Finds the look-ups of one document in the trail, those made before a
    key rotation as well.
    """
    return blind_index_candidates(_index_input(document), _LOOKUP_PURPOSE)


def record_document_lookup(
    identity: Identity, document: ParsedDocument, person_id: int | None, *, via: str
) -> None:
    """Audit a look-up by document number on the searcher's own chain.

    Who searched (the actor), a keyed hash of what, and the outcome (the
    person found, or not); never the number. ``via`` names the endpoint.
    """
    audit.record(
        "person.lookup",
        subject_type="person",
        subject_id=person_id,
        chain=f"user:{identity.id}",
        details={
            "via": via,
            "document_type": document.document_type,
            "document_hash": lookup_digest(document),
            "outcome": "not_found" if person_id is None else "found",
        },
    )


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
        document_index=blind_index(_index_input(document), _PURPOSE),
        document_masked=mask_document(document.number),
        name=name,
        sex=document.sex or sex,
        birth_date=document.birth_date or birth_date,
        origin=origin,
    )
    person.seal(document.number, phone)  # bound to the row: its index is set above
    # Two desks may register the same new person at once: the unique blind
    # index decides, and the loser reads the winner's row.
    inserted = insert_unless_taken(person, index=["document_index"])
    if inserted is not None:
        return inserted
    existing = find_person(document)
    if existing is None:
        raise Conflict(
            "This person was being registered at the same moment; try again.",
            code="registration_conflict",
        )
    return record_person(existing, document, name, phone=phone, origin=origin)


def reveal_person(
    person: Person, identity: Identity, *, area_code: str | None
) -> dict[str, object]:
    """The person's personal fields in clear, for a role that may see them; audited.

    The audit event names every field unmasked, never a value.
    """
    revealed: dict[str, object] = {
        "document_number": person.document_number,
        "name": person.name,
        "phone": person.phone,
        "birth_date": person.birth_date,
    }
    audit.record(
        "person.reveal",
        subject_type="person",
        subject_id=person.id,
        area_code=area_code,
        details={
            "fields": sorted(k for k, v in revealed.items() if v is not None),
            "role": identity.role,
        },
    )
    return revealed


def persons_to_examine() -> int:
    """How many persons :func:`reencrypt_all` looks at (every one not anonymised)."""
    return (
        db.session.scalar(
            sa.select(sa.func.count()).select_from(Person).where(Person.anonymised_on.is_(None))
        )
        or 0
    )


def reencrypt_all(batch: int = 1000, *, done: Callable[[int], None] | None = None) -> int:
    """Rewrite every person's ciphertexts under the active keys, bound to their rows.

    After a key rotation, and once after upgrading from ciphertexts that were
    not bound to their rows. Returns how many persons were rewritten. Rows
    already under the active keys are left alone, so a run that stopped is
    resumed by running it again; ``done(n)`` is called after each batch of
    ``n`` persons is flushed (the command commits there). Each batch is
    locked while it is rewritten, so a desk changing a phone meanwhile
    waits rather than being overwritten.
    """
    from anjuka.core.keys import keyring
    from anjuka.core.protect import is_current

    active_idx, _ = keyring().blind_index
    changed = 0
    for rows in locked_batches(Person, Person.anonymised_on.is_(None), batch=batch):
        for person in rows:
            if (
                is_current(person.document_number_enc)
                and (person.phone_enc is None or is_current(person.phone_enc))
                and person.document_index.startswith(f"{active_idx}:")
            ):
                continue
            number, phone = person.document_number, person.phone
            if number is None:
                continue  # anonymised meanwhile: nothing left to seal
            person.document_index = blind_index(f"{person.document_type}:{number}", _PURPOSE)
            person.seal(number, phone)
            changed += 1
        db.session.flush()
        if done is not None:
            done(len(rows))
    return changed
