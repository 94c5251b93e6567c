"""Fetch-and-check: cards, jobs and readers as the caller may reach them.

Desks (managers, supervisors, admins) reach the cards of residences in
dwellings of their scope; anything else is 404. A reader reaches only
itself and its own jobs, also 404 otherwise.
"""

from __future__ import annotations

import sqlalchemy as sa

from anjuka.cards.models import Card, CardJob, Reader
from anjuka.cards.operations import lock_card
from anjuka.cards.readers import reader_serves
from anjuka.core.db import db
from anjuka.core.errors import Conflict, InvalidInput, NotFound
from anjuka.core.security import require_identity
from anjuka.dwellings.models import Dwelling
from anjuka.dwellings.permissions import dwelling_filter
from anjuka.residences.models import Residence
from cardreader.cardno import is_valid_card_no

#: Who works at a desk: issues, revokes and takes back cards.
DESK_ROLES = ("manager", "supervisor")


def _in_scope(stmt: sa.Select) -> sa.Select:
    return (
        stmt.join(Residence, Card.residence_id == Residence.id)
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
        .where(dwelling_filter(require_identity()))
    )


def visible_cards() -> sa.Select:
    """Cards of residences in dwellings the caller may see."""
    return _in_scope(sa.select(Card))


def get_residence_or_404(residence_id: int, *, for_update: bool = False) -> Residence:
    """A residence in a dwelling the caller may see, or 404 (optionally locked)."""
    query = (
        sa.select(Residence)
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
        .where(Residence.id == residence_id, dwelling_filter(require_identity()))
    )
    if for_update:
        query = query.with_for_update(of=Residence).execution_options(populate_existing=True)
    residence = db.session.scalar(query)
    if residence is None:
        raise NotFound(f"No residence {residence_id}.", code="residence_not_found")
    return residence


def get_person_in_scope_or_404(person_id: int) -> None:
    """404 unless the person has a residence in a dwelling the caller may see."""
    found = db.session.scalar(
        sa.select(Residence.id)
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
        .where(Residence.person_id == person_id, dwelling_filter(require_identity()))
        .limit(1)
    )
    if found is None:
        raise NotFound(f"No person {person_id}.", code="person_not_found")


def get_card_or_404(card_no: str, *, for_update: bool = False) -> Card:
    """A card the caller may see, by printed number, or 404 (optionally locked)."""
    card_no = card_no.strip().upper()
    if not is_valid_card_no(card_no):
        raise InvalidInput(
            f"{card_no!r} is not a card number (AJ, 8 digits, check character).",
            code="invalid_card_no",
            errors={"card_no": ["Not a valid card number."]},
        )
    card = db.session.scalar(visible_cards().where(Card.card_no == card_no))
    if card is None:
        raise NotFound(f"No card {card_no}.", code="card_not_found")
    return lock_card(card.id) if for_update else card


def get_job_or_404(job_id: int) -> CardJob:
    """A card job the desk may see (through its card's residence), or 404."""
    job = db.session.scalar(
        _in_scope(sa.select(CardJob).join(Card, CardJob.card_id == Card.id)).where(
            CardJob.id == job_id
        )
    )
    if job is None:
        raise NotFound(f"No job {job_id}.", code="job_not_found")
    return job


def get_reader_or_404(reader_id: int, *, lock: str | None = None) -> Reader:
    """Any reader by id, or 404; ``lock`` "share" or "update" locks its row.

    A desk queuing a job holds the reader's row shared, so revoking the
    reader (which locks it for update) waits and then cancels that job too.
    Take it before the residence: revocation locks the reader first as well.
    """
    query = sa.select(Reader).where(Reader.id == reader_id)
    if lock is not None:
        query = query.with_for_update(read=lock == "share").execution_options(
            populate_existing=True
        )
    reader = db.session.scalar(query)
    if reader is None:
        raise NotFound(f"No reader {reader_id}.", code="reader_not_found")
    return reader


def desk_reader(reader_id: int) -> Reader:
    """The reader a desk names for a job, its row held shared until commit, or 404.

    Whether the desk may use it for the dwelling at hand is :func:`usable_reader`,
    once the residence or card is loaded (after the reader: see above).
    """
    return get_reader_or_404(reader_id, lock="share")


def usable_reader(reader: Reader, dwelling: Dwelling, *, named: bool = True) -> Reader:
    """``reader`` if the caller may queue a job for ``dwelling`` on it: active, serving it.

    Any other reader answers exactly as an unknown id (404 ``reader_not_found``)
    and names nothing: a desk must not learn what other desks, or revoked
    ones, are called. Admins, who list every reader anyway, are told why. A
    reader the desk did not name (the one that served the card before, when
    ``named`` is false) asks the desk to name one instead.
    """
    if reader.active and reader_serves(reader, dwelling):
        return reader
    if require_identity().is_admin:
        if not reader.active:
            raise Conflict(f"Reader {reader.name!r} has been revoked.", code="reader_revoked")
        raise Conflict(
            f"Reader {reader.name!r} does not serve this dwelling.", code="reader_not_serving"
        )
    if not named:
        raise InvalidInput(
            "Name the reader for this job.",
            code="reader_required",
            errors={"reader_id": ["The reader used before cannot take this job."]},
        )
    raise NotFound(f"No reader {reader.id}.", code="reader_not_found")


def own_reader(reader_id: int) -> Reader:
    """The calling reader itself; another reader's id reads as not found."""
    identity = require_identity()
    if identity.kind != "reader" or identity.id != reader_id:
        raise NotFound(f"No reader {reader_id}.", code="reader_not_found")
    return identity.subject


def own_job_or_404(reader_id: int, job_id: int) -> int:
    """The id of a job of the calling reader, checked; 404 for anyone else's."""
    own_reader(reader_id)
    found = db.session.scalar(
        sa.select(CardJob.id).where(CardJob.id == job_id, CardJob.reader_id == reader_id)
    )
    if found is None:
        raise NotFound(f"No job {job_id}.", code="job_not_found")
    return found
