"""Arrival, departure, residents of a dwelling, a person's history."""

from __future__ import annotations

import functools

import sqlalchemy as sa
from flask_smorest import Blueprint
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from anjuka.areas.models import Area
from anjuka.core.db import db
from anjuka.core.dumping import tell_revealed
from anjuka.core.errors import NotFound
from anjuka.core.idempotency import idempotent
from anjuka.core.pagination import paginate
from anjuka.core.privacy import RevealQuerySchema, check_reveal
from anjuka.core.replica import reads_replica
from anjuka.core.security import Identity, require_identity, requires
from anjuka.core.transactions import retry_conflicts
from anjuka.dwellings.models import Dwelling
from anjuka.dwellings.permissions import (
    dwelling_filter,
    get_dwelling_or_404,
    in_area_path,
    keep_area_path,
)
from anjuka.persons.identity import ParsedDocument, parse_document
from anjuka.persons.limits import document_lookups
from anjuka.persons.models import Person
from anjuka.persons.operations import (
    blind_index_candidates_of,
    record_document_lookup,
    reveal_person,
)
from anjuka.residences import operations
from anjuka.residences.models import Residence
from anjuka.residences.schemas import (
    ArrivalSchema,
    DepartureSchema,
    PersonLookupSchema,
    PersonSchema,
    ResidenceSchema,
)

blp = Blueprint("residences", __name__, description="Arrival and departure (人来登记, 人走注销)")
DESKS = ("manager", "supervisor")
READERS = ("manager", "supervisor", "officer")


@functools.cache
def _residence_with_dwelling() -> sa.Select:
    """A residence (``:residence_id``), its dwelling and the dwelling's area path: built once."""
    residence_id = sa.bindparam("residence_id", type_=sa.Integer)
    own = (
        sa.select(Dwelling.area_id)
        .join(Residence, Residence.dwelling_id == Dwelling.id)
        .where(Residence.id == residence_id)
        .scalar_subquery()
    )
    return (
        sa.select(Residence, Dwelling, Area)
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
        .join(Area, in_area_path(own))
        .where(Residence.id == residence_id)
    )


def get_residence_or_404(residence_id: int, *, for_update: bool = False) -> Residence:
    """A residence in a dwelling the caller may see, or 404."""
    # With its dwelling and the dwelling's area path, in the same statement.
    query = _residence_with_dwelling().where(dwelling_filter(require_identity()))
    if for_update:
        # The dwelling too: its residents are counted under that lock (an
        # arrival's capacity verdict, the statistics), so a departure and an
        # arrival into one dwelling take turns.
        query = query.with_for_update(of=(Residence, Dwelling)).execution_options(
            populate_existing=True
        )
    rows = db.session.execute(query, {"residence_id": residence_id}).all()
    if not rows:
        raise NotFound(f"No residence {residence_id}.", code="residence_not_found")
    residence, dwelling = rows[0][0], rows[0][1]
    set_committed_value(residence, "dwelling", keep_area_path(dwelling, [row[2] for row in rows]))
    return residence


def visible_residences(person_id: int) -> sa.Select:
    """A person's residences in dwellings the caller may see, newest first."""
    return (
        sa.select(Residence)
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
        .where(Residence.person_id == person_id, dwelling_filter(require_identity()))
        .order_by(Residence.arrived_on.desc(), Residence.id.desc())
    )


def visible_residence_of_document(document: ParsedDocument) -> Residence | None:
    """The latest residence the caller may see of the document's holder, if any.

    One query that joins the blind index and the caller's scope: a holder
    outside the scope and no holder at all are the same empty answer, found
    by the same work.
    """
    query = (
        sa.select(Residence)
        .join(Dwelling, Residence.dwelling_id == Dwelling.id)
        .join(Person, Residence.person_id == Person.id)
        .where(
            Person.document_index.in_(blind_index_candidates_of(document)),
            dwelling_filter(require_identity()),
        )
        .order_by(Residence.arrived_on.desc(), Residence.id.desc())
        .limit(1)
    )
    return db.session.scalar(query)


def reveal_persons(identity: Identity, residences: list[Residence]) -> list[Residence]:
    """Show the residences' persons in clear in this response (each reveal audited)."""
    for residence in residences:
        clear = reveal_person(residence.person, identity, area_code=residence.dwelling.area.code)
        tell_revealed(residence.person, clear)
    return residences


def get_person_or_404(person_id: int) -> tuple[Person, Residence]:
    """A person with at least one residence the caller may see, and the latest such."""
    latest = db.session.scalar(visible_residences(person_id).limit(1))
    if latest is None:
        raise NotFound(f"No person {person_id}.", code="person_not_found")
    return latest.person, latest


@blp.route("/residences", methods=["POST"])
@idempotent
@blp.arguments(ArrivalSchema)
@blp.response(201, ResidenceSchema)
@requires(*DESKS)
@retry_conflicts
def register_arrival(body: dict):
    """Register an arrival; 409 ``dwelling_full`` or ``already_registered`` when refused."""
    identity = require_identity()
    person = body["person"]
    document = parse_document(person["document_type"], person["document_number"])
    dwelling = get_dwelling_or_404(body["dwelling_id"], for_update=True)
    residence = operations.register_arrival(
        identity,
        dwelling,
        document,
        name=person["name"],
        arrived_on=body["arrived_on"],
        phone=person.get("phone"),
        origin=person.get("origin"),
        birth_date=person.get("birth_date"),
        sex=person.get("sex"),
        move=body["move"],
        override_reason=body.get("override_reason"),
        family_relation=body.get("family_relation"),
        family_of_residence_id=body.get("family_of_residence_id"),
    )
    return residence


@blp.route("/residences/<int:residence_id>", methods=["GET"])
@blp.arguments(RevealQuerySchema, location="query")
@blp.response(200, ResidenceSchema)
@requires(*READERS)
def get_residence(query: dict, residence_id: int):
    """One residence; ``reveal=true`` unmasks the document (audited)."""
    identity = require_identity()
    reveal = check_reveal(identity, query["reveal"])
    residence = get_residence_or_404(residence_id)
    return reveal_persons(identity, [residence])[0] if reveal else residence


@blp.route("/residences/<int:residence_id>/departure", methods=["POST"])
@idempotent
@blp.arguments(DepartureSchema)
@blp.response(200, ResidenceSchema)
@requires(*DESKS)
@retry_conflicts
def record_departure(body: dict, residence_id: int):
    """End a residence (人走注销); the card, if any, is revoked at once."""
    identity = require_identity()
    residence = get_residence_or_404(residence_id, for_update=True)
    operations.record_departure(identity, residence, body["departed_on"], body.get("card_returned"))
    return residence


@blp.route("/dwellings/<int:dwelling_id>/residents", methods=["GET"])
@blp.arguments(RevealQuerySchema, location="query")
@blp.response(200, ResidenceSchema(many=True))
@blp.paginate()
@requires(*READERS)
@reads_replica
def list_residents(query: dict, dwelling_id: int, pagination_parameters):
    """The current residents of a dwelling."""
    identity = require_identity()
    reveal = check_reveal(identity, query["reveal"])
    dwelling = get_dwelling_or_404(dwelling_id)
    stmt = (
        sa.select(Residence)
        .where(Residence.dwelling_id == dwelling.id, Residence.departed_on.is_(None))
        .options(selectinload(Residence.person))  # one query for the page's persons
        .order_by(Residence.id)
    )
    residences = list(paginate(stmt, pagination_parameters))
    return reveal_persons(identity, residences) if reveal else residences


@blp.route("/persons/lookup", methods=["POST"])
@document_lookups
@blp.arguments(PersonLookupSchema)
@blp.response(200, PersonSchema)
@requires(*READERS)
def lookup_person(body: dict):
    """Find a person by document number (sent in the body, never in a URL).

    A person outside the caller's scope reads exactly like no person (404
    ``person_not_found``). Every look-up is audited on the caller's chain
    (a keyed hash, never the number) and counts toward the caller's look-up
    limit (429 ``too_many_lookups``).
    """
    identity = require_identity()
    reveal = check_reveal(identity, body["reveal"])
    document = parse_document(body["document_type"], body["document_number"])
    latest = visible_residence_of_document(document)
    record_document_lookup(
        identity, document, None if latest is None else latest.person_id, via="persons.lookup"
    )
    if latest is None:
        # The look-up's audit event stays on the record although it found nothing.
        raise NotFound("No person with that document.", code="person_not_found", keep_writes=True)
    if reveal:
        reveal_persons(identity, [latest])
    return latest.person


@blp.route("/persons/<int:person_id>", methods=["GET"])
@blp.arguments(RevealQuerySchema, location="query")
@blp.response(200, PersonSchema)
@requires(*READERS)
def get_person(query: dict, person_id: int):
    """A person the caller has a residence of in scope."""
    identity = require_identity()
    reveal = check_reveal(identity, query["reveal"])
    person, latest = get_person_or_404(person_id)
    if reveal:
        reveal_persons(identity, [latest])
    return person


@blp.route("/persons/<int:person_id>/residences", methods=["GET"])
@blp.response(200, ResidenceSchema(many=True))
@blp.paginate()
@requires(*READERS)
@reads_replica
def person_history(person_id: int, pagination_parameters):
    """A person's residence history, as far as the caller's scope reaches."""
    get_person_or_404(person_id)
    return paginate(visible_residences(person_id), pagination_parameters)
