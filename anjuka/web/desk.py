"""The property desk: find a dwelling, register arrivals, issue and take back cards.

Every handler loads what the caller may reach with the API's fetch-and-check
helpers (404 outside the scope), calls the API's operations, and renders
from the model objects with the masks of ``anjuka.core.privacy``: a desk
sees names and document numbers exactly as the API shows them to it.
A refusal is shown in words on the page it came from (``attempt``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from flask import jsonify, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as l_
from werkzeug.wrappers import Response

from anjuka.areas.operations import Policy, effective_policies, effective_policy
from anjuka.cards import operations as cards
from anjuka.cards.models import DESK_REVOCATION_REASONS, LIVE_CARD_STATUSES, Card, CardJob, Reader
from anjuka.cards.permissions import desk_reader, get_card_or_404, get_job_or_404, usable_reader
from anjuka.cards.readers import reader_serves
from anjuka.core.db import db
from anjuka.core.errors import AppError, InvalidInput
from anjuka.core.privacy import mask_name
from anjuka.core.security import require_identity, requires
from anjuka.core.time import local_today
from anjuka.core.transactions import retry_conflicts
from anjuka.dwellings import operations as dwellings
from anjuka.dwellings.models import Dwelling, Estate
from anjuka.dwellings.permissions import dwelling_filter, estate_filter, get_dwelling_or_404
from anjuka.persons.identity import ParsedDocument, parse_document
from anjuka.persons.limits import document_lookups_in_forms as page_lookups
from anjuka.persons.models import DOCUMENT_TYPES as KNOWN_DOCUMENTS
from anjuka.persons.models import Person
from anjuka.persons.operations import find_person, record_document_lookup
from anjuka.residences import operations as residences
from anjuka.residences.api import get_residence_or_404, visible_residence_of_document
from anjuka.residences.models import FamilyRelation, Residence
from anjuka.transfers import operations as transfers
from anjuka.web.pages import Outcome, attempt, blp, render

#: Who works at a desk (admin always): as the API's residences and cards.
DESKS = ("manager", "supervisor")
#: How many dwellings a search lists at most.
SEARCH_LIMIT = 50

DOCUMENT_TYPES = {
    "resident_id": l_("Resident ID card"),
    "passport": l_("Passport"),
    "hk_macao_permit": l_("Mainland travel permit (Hong Kong, Macao)"),
    "taiwan_permit": l_("Mainland travel permit (Taiwan)"),
    "foreign_permanent_id": l_("Foreign permanent resident ID card"),
}
RELATIONS = {"spouse": l_("spouse"), "parent": l_("parent"), "child": l_("child")}
STATUS_NAMES = {
    "rentable": l_("rentable"),
    "illegal": l_("illegal structure"),
    "not_for_rent": l_("not for rent"),
}
CARD_STATUSES = {
    "pending": l_("being written"),
    "active": l_("active"),
    "revoked": l_("revoked"),
    "returned": l_("returned"),
}
REVOCATION_REASONS = {
    "departed": l_("departed"),
    "lost": l_("lost"),
    "damaged": l_("damaged"),
    "replaced": l_("replaced"),
    "expired": l_("expired"),
}
JOB_STATES = {
    "queued": l_("Waiting for the desk's reader. Put a card on the reader."),
    "claimed": l_("The reader has the job: keep the card on the reader."),
    "awaiting_result": l_("Writing the card: keep it on the reader."),
    "done": l_("Done."),
    "failed": l_("The reader could not finish the job."),
    "cancelled": l_("The job was cancelled."),
}
SEX_NAMES = {"M": l_("male"), "F": l_("female")}


def _document_types() -> dict[str, Any]:
    return {code: DOCUMENT_TYPES.get(code, code) for code in KNOWN_DOCUMENTS}


# ---------------------------------------------------------------- what the pages show


@dataclass
class Occupancy:
    """A dwelling's occupants against its capacity, with the rule behind the number."""

    dwelling: Dwelling
    policy: Policy
    capacity: dwellings.Capacity
    occupants: int
    over: bool

    @property
    def percent(self) -> int:
        if self.capacity.capacity <= 0:
            return 100 if self.occupants else 0
        return min(100, round(100 * self.occupants / self.capacity.capacity))

    @property
    def level(self) -> str:
        if self.over:
            return "over"
        return "full" if self.occupants >= self.capacity.capacity else "room"


def occupancy_of(found: list[Dwelling]) -> list[Occupancy]:
    """Occupants against capacity for each dwelling, in a few queries."""
    counted = dwellings.occupancies([d.id for d in found])
    areas = {d.area for d in found}
    policies = effective_policies(areas)
    rows = []
    for d in found:
        policy = policies[d.area_id]
        capacity = dwellings.compute_capacity(d, policy)
        occupancy = counted[d.id]
        over = dwellings.is_over_capacity(capacity, occupancy, policy)
        rows.append(Occupancy(d, policy, capacity, occupancy.occupants, over))
    return rows


def person_masked(person: Person) -> dict[str, Any]:
    """A person as the API shows them to a desk: masked (desks may not reveal)."""
    return {
        "id": person.id,
        "name": mask_name(person.name),
        "document_type": DOCUMENT_TYPES.get(person.document_type, person.document_type),
        "document": person.document_masked,
        "sex": SEX_NAMES.get(person.sex or "", ""),
        "phone": person.phone_masked,
    }


def _latest_cards(residence_ids: list[int]) -> dict[int, Card]:
    """The newest card of each residence."""
    if not residence_ids:
        return {}
    rows = db.session.scalars(
        sa.select(Card).where(Card.residence_id.in_(residence_ids)).order_by(Card.id)
    )
    return {card.residence_id: card for card in rows}


def readers_for(dwelling: Dwelling) -> list[Reader]:
    """The active readers that serve ``dwelling``: the desks it may use for its cards."""
    candidates = db.session.scalars(
        sa.select(Reader)
        .where(
            Reader.active.is_(True),
            sa.or_(
                Reader.estate_id == dwelling.estate_id,
                Reader.area_id.is_not(None),
                sa.and_(Reader.estate_id.is_(None), Reader.area_id.is_(None)),
            ),
        )
        .order_by(Reader.name)
    )
    return [r for r in candidates if reader_serves(r, dwelling)]


def _chosen_reader(readers: list[Reader]) -> int | None:
    remembered = session.get("desk_reader")
    if any(r.id == remembered for r in readers):
        return remembered
    return readers[0].id if readers else None


def _form_date(name: str) -> date:
    raw = request.form.get(name, "").strip()
    try:
        return date.fromisoformat(raw) if raw else local_today()
    except ValueError:
        raise InvalidInput(
            "Not a date.", code="validation_error", errors={name: ["Not a date."]}
        ) from None


def _form_int(name: str) -> int | None:
    raw = request.form.get(name, "").strip()
    return int(raw) if raw.isdigit() else None


def _document() -> ParsedDocument:
    return parse_document(
        request.form.get("document_type", "resident_id"), request.form.get("document_number", "")
    )


# ---------------------------------------------------------------- finding a dwelling


@blp.route("/desk", methods=["GET"])
@requires(*DESKS)
def desk() -> tuple[str, int]:
    """Find a dwelling by address, room, address code or estate."""
    identity = require_identity()
    estates = db.session.scalars(
        sa.select(Estate).where(estate_filter(identity)).order_by(Estate.name).limit(200)
    ).all()
    query = request.args.get("q", "").strip()
    estate_id = request.args.get("estate", type=int)
    found: list[Occupancy] | None = None
    more = False
    if query or estate_id:
        stmt = sa.select(Dwelling).where(dwelling_filter(identity))
        if estate_id:
            stmt = stmt.where(Dwelling.estate_id == estate_id)
        if query:
            named_estates = sa.select(Estate.id).where(Estate.name.contains(query, autoescape=True))
            stmt = stmt.where(
                sa.or_(
                    Dwelling.address.contains(query, autoescape=True),
                    Dwelling.address_code == query,
                    Dwelling.estate_id.in_(named_estates),
                )
            )
        rows = db.session.scalars(stmt.order_by(Dwelling.address).limit(SEARCH_LIMIT + 1)).all()
        more = len(rows) > SEARCH_LIMIT
        found = occupancy_of(list(rows[:SEARCH_LIMIT]))
    return render(
        "web/desk/search.html",
        estates=estates,
        query=query,
        estate_id=estate_id,
        found=found,
        more=more,
        limit=SEARCH_LIMIT,
        status_names=STATUS_NAMES,
    )


# ---------------------------------------------------------------- a dwelling


def _dwelling_page(
    dwelling: Dwelling,
    *,
    status: int = 200,
    error: str | None = None,
    notice: str | None = None,
    form: dict | None = None,
    offer: str | None = None,
    known: dict | None = None,
) -> tuple[str, int]:
    """The dwelling: capacity, occupants and their cards, the arrival form."""
    occupancy = occupancy_of([dwelling])[0]
    current = db.session.scalars(
        sa.select(Residence)
        .where(Residence.dwelling_id == dwelling.id, Residence.departed_on.is_(None))
        .order_by(Residence.arrived_on, Residence.id)
    ).all()
    latest = _latest_cards([r.id for r in current])
    # Cards of residents who left and have not brought their card back yet.
    unreturned = db.session.scalars(
        sa.select(Card)
        .join(Residence, Card.residence_id == Residence.id)
        .where(
            Residence.dwelling_id == dwelling.id,
            Residence.departed_on.is_not(None),
            Card.status == "revoked",
            Card.uid.is_not(None),
            Card.returned_at.is_(None),
        )
        .order_by(Card.revoked_at.desc())
        .limit(20)
    ).all()
    readers = readers_for(dwelling)
    identity = require_identity()
    return render(
        "web/desk/dwelling.html",
        status=status,
        dwelling=dwelling,
        occupancy=occupancy,
        residents=[
            {"residence": r, "person": person_masked(r.person), "card": latest.get(r.id)}
            for r in current
        ],
        unreturned=unreturned,
        readers=readers,
        reader_id=_chosen_reader(readers),
        error=error,
        notice=notice,
        form=form or {"arrived_on": local_today().isoformat(), "document_type": "resident_id"},
        offer=offer,
        known=known,
        document_types=_document_types(),
        relations=RELATIONS,
        status_names=STATUS_NAMES,
        card_statuses=CARD_STATUSES,
        may_override=identity.role in residences.OVERRIDE_ROLES,
        family_allowed=occupancy.policy.family_exception and bool(current),
        today=local_today().isoformat(),
    )


@blp.route("/desk/dwellings/<int:dwelling_id>", methods=["GET"], endpoint="desk_dwelling")
@requires(*DESKS)
def dwelling(dwelling_id: int) -> tuple[str, int]:
    """One dwelling of the caller's scope (404 otherwise, as in the API)."""
    return _dwelling_page(get_dwelling_or_404(dwelling_id))


def _arrival_form() -> dict[str, Any]:
    keep = (
        "document_type",
        "document_number",
        "name",
        "phone",
        "origin",
        "arrived_on",
        "family_relation",
        "family_of",
        "override_reason",
    )
    form: dict[str, Any] = {name: request.form.get(name, "") for name in keep}
    form["move"] = bool(request.form.get("move"))
    return form


def _offer_for(refusal: AppError, dwelling: Dwelling, form: dict) -> str | None:
    """What the desk may do instead, for a refusal that has a lawful way round it."""
    if refusal.code == "already_registered" and "residence_id" not in refusal.extra:
        return "move"
    if refusal.code == "registered_elsewhere":
        return "transfer"
    if refusal.code == "dwelling_full":
        limits = refusal.extra.get("limits") or {}
        occupants = refusal.extra.get("occupants", 0)
        by_rooms_only = not limits.get("reason") and occupants < limits.get("area_limit", 0)
        if by_rooms_only and effective_policy(dwelling.area).family_exception and occupants:
            return "family"
    return None


@blp.route(
    "/desk/dwellings/<int:dwelling_id>/arrivals", methods=["POST"], endpoint="desk_register_arrival"
)
@requires(*DESKS)
@retry_conflicts
def register_arrival(dwelling_id: int) -> tuple[str, int] | Response:
    """Register an arrival from the one form; refused in words, writing nothing."""
    identity = require_identity()
    dwelling = get_dwelling_or_404(dwelling_id, for_update=True)
    form = _arrival_form()
    family = form["family_relation"] or None

    def register() -> Residence:
        document = _document()
        name = form["name"].strip()
        if not name:
            raise InvalidInput(
                "The name is missing.", code="validation_error", errors={"name": ["Required."]}
            )
        if family is not None and family not in set(FamilyRelation):
            raise InvalidInput("No such relation.", code="invalid_family_exception")
        return residences.register_arrival(
            identity,
            dwelling,
            document,
            name=name,
            arrived_on=_form_date("arrived_on"),
            phone=form["phone"].strip() or None,
            origin=form["origin"].strip() or None,
            move=form["move"],
            override_reason=form["override_reason"].strip() or None,
            family_relation=family,
            family_of_residence_id=_form_int("family_of") if family else None,
        )

    tried = attempt(register)
    if tried.refusal is not None:
        return _dwelling_page(
            dwelling,
            status=tried.refusal.status,
            error=tried.message,
            form=form,
            offer=_offer_for(tried.refusal, dwelling, form),
        )
    residence = tried.result
    assert residence is not None  # noqa: S101 (an attempt without refusal has its result)
    return redirect(
        url_for("web.desk_dwelling_arrived", dwelling_id=dwelling.id, residence=residence.id)
    )


@blp.route(
    "/desk/dwellings/<int:dwelling_id>/arrived", methods=["GET"], endpoint="desk_dwelling_arrived"
)
@requires(*DESKS)
def dwelling_arrived(dwelling_id: int) -> tuple[str, int]:
    """The dwelling again after an arrival, saying who was registered."""
    dwelling = get_dwelling_or_404(dwelling_id)
    residence_id = request.args.get("residence", type=int)
    notice = None
    if residence_id:
        residence = get_residence_or_404(residence_id)
        notice = _(
            "%(name)s is registered here. Put a blank card on the reader and issue it.",
            name=mask_name(residence.person.name),
        )
    return _dwelling_page(dwelling, notice=notice)


@blp.route("/desk/dwellings/<int:dwelling_id>/lookup", methods=["POST"], endpoint="desk_lookup")
@page_lookups
@requires(*DESKS)
def lookup(dwelling_id: int) -> Response | tuple[str, int]:
    """Whether the typed document belongs to a person the desk knows (audited, throttled).

    The API's look-up: a holder outside the caller's scope reads exactly as
    no holder. Answers JSON to the page's script, the page itself otherwise.
    """
    identity = require_identity()
    dwelling = get_dwelling_or_404(dwelling_id)
    tried: Outcome[ParsedDocument] = attempt(_document)
    known: dict[str, Any] = {"found": False}
    if tried.result is not None:
        document = tried.result
        latest = visible_residence_of_document(document)
        record_document_lookup(
            identity, document, None if latest is None else latest.person_id, via="web.desk"
        )
        if latest is not None:
            current = latest.departed_on is None
            known = {
                "found": True,
                **person_masked(latest.person),
                "current": current,
                "here": current and latest.dwelling_id == dwelling.id,
                "address": latest.dwelling.address if current else None,
            }
            known["message"] = _known_sentence(known)
        else:
            known["message"] = _("Not known in your dwellings: a new registration.")
    if request.accept_mimetypes.best == "application/json":
        if tried.refusal is not None:
            return jsonify({"found": False, "message": tried.message})
        return jsonify(
            {k: v if isinstance(v, bool | int | None) else str(v) for k, v in known.items()}
        )
    form = _arrival_form()
    return _dwelling_page(
        dwelling,
        error=tried.message,
        form=form,
        known=known if tried.result is not None else None,
    )


def _known_sentence(known: dict) -> str:
    if known["here"]:
        return _("%(name)s already lives here.", name=known["name"])
    if known["current"]:
        return _(
            "%(name)s is registered at %(address)s: registering here moves them"
            " (the old residence ends and its card is revoked).",
            name=known["name"],
            address=known["address"],
        )
    return _("%(name)s is known here from before: the record is reused.", name=known["name"])


@blp.route(
    "/desk/dwellings/<int:dwelling_id>/transfers",
    methods=["POST"],
    endpoint="desk_request_transfer",
)
@page_lookups
@requires(*DESKS)
@retry_conflicts
def request_transfer(dwelling_id: int) -> Response | tuple[str, int]:
    """Ask the desk of the person's dwelling elsewhere to let them move here (as the API)."""
    identity = require_identity()
    dwelling = get_dwelling_or_404(dwelling_id)
    form = _arrival_form()
    parsed = attempt(_document)
    if parsed.result is None:
        return _dwelling_page(dwelling, status=422, error=parsed.message, form=form)
    document = parsed.result
    found = find_person(document)
    # Naming a person by document is a look-up: on the record whatever the answer.
    record_document_lookup(
        identity, document, None if found is None else found.id, via="web.transfer"
    )
    dwelling = get_dwelling_or_404(dwelling_id, for_update=True)
    tried = attempt(
        lambda: transfers.request_transfer(
            identity, dwelling, document, arrived_on=_form_date("arrived_on")
        )
    )
    if tried.refusal is not None:
        return _dwelling_page(dwelling, status=tried.refusal.status, error=tried.message, form=form)
    transfer = tried.result
    assert transfer is not None  # noqa: S101
    return _dwelling_page(
        dwelling,
        notice=_(
            "The transfer is requested. The other desk completes it when it records the"
            " departure, by %(due_on)s at the latest.",
            due_on=transfer.due_on.isoformat(),
        ),
    )


# ---------------------------------------------------------------- a residence and its cards


def _residence_page(
    residence: Residence, *, status: int = 200, error: str | None = None
) -> tuple[str, int]:
    dwelling = residence.dwelling
    history = db.session.scalars(
        sa.select(Card).where(Card.residence_id == residence.id).order_by(Card.id.desc())
    ).all()
    live = next((c for c in history if c.status in LIVE_CARD_STATUSES), None)
    other_live = cards.live_card_of(residence.person_id) if live is None else None
    readers = readers_for(dwelling)
    return render(
        "web/desk/residence.html",
        status=status,
        residence=residence,
        dwelling=dwelling,
        person=person_masked(residence.person),
        cards=history,
        live=live,
        may_issue=residence.is_current and live is None and other_live is None,
        readers=readers,
        reader_id=_chosen_reader(readers),
        error=error,
        card_statuses=CARD_STATUSES,
        reasons=REVOCATION_REASONS,
        desk_reasons=DESK_REVOCATION_REASONS,
        relations=RELATIONS,
        today=local_today().isoformat(),
        waiting_transfer=transfers.open_transfer_of(residence) if residence.is_current else None,
    )


@blp.route("/desk/residences/<int:residence_id>", methods=["GET"], endpoint="desk_residence")
@requires(*DESKS)
def residence(residence_id: int) -> tuple[str, int]:
    """A resident of the caller's dwellings: their cards, departure, loss."""
    return _residence_page(get_residence_or_404(residence_id))


def _reader_from_form(dwelling: Dwelling) -> Reader:
    """The reader the desk chose, checked as the API checks it; remembered for next time."""
    reader_id = _form_int("reader_id")
    if reader_id is None:
        raise AppError("Name the reader for this job.", code="reader_required", status=422)
    reader = usable_reader(desk_reader(reader_id), dwelling)
    session["desk_reader"] = reader.id
    return reader


@blp.route("/desk/residences/<int:residence_id>/card", methods=["POST"], endpoint="desk_issue_card")
@requires(*DESKS)
@retry_conflicts
def issue_card(residence_id: int) -> Response | tuple[str, int]:
    """Issue a card for the residence at the desk's reader, then watch the job."""
    residence = get_residence_or_404(residence_id)

    def issue() -> Card:
        reader = _reader_from_form(residence.dwelling)
        locked = get_residence_or_404(residence_id, for_update=True)
        card, _job = cards.issue_card(locked, reader)
        return card

    tried = attempt(issue)
    if tried.result is None:
        return _residence_page(residence, status=tried.refusal.status, error=tried.message)  # type: ignore[union-attr]
    return redirect(url_for("web.desk_card", card_no=tried.result.card_no))


@blp.route(
    "/desk/residences/<int:residence_id>/departure",
    methods=["POST"],
    endpoint="desk_record_departure",
)
@requires(*DESKS)
@retry_conflicts
def record_departure(residence_id: int) -> Response | tuple[str, int]:
    """Record the departure (the card is revoked at once); a card handed back is erased."""
    identity = require_identity()
    residence = get_residence_or_404(residence_id)
    returned = bool(request.form.get("card_returned"))

    def depart() -> CardJob | None:
        reader = _reader_from_form(residence.dwelling) if returned else None
        locked = get_residence_or_404(residence_id, for_update=True)
        # False would claim a card from before this system: ours are known by their status.
        residences.record_departure(
            identity, locked, _form_date("departed_on"), True if returned else None
        )
        return None if reader is None else cards.take_back_on_departure(locked, reader)

    tried = attempt(depart)
    if tried.refusal is not None:
        return _residence_page(residence, status=tried.refusal.status, error=tried.message)
    if tried.result is not None:
        return redirect(url_for("web.desk_card", card_no=tried.result.card.card_no))
    return redirect(url_for("web.desk_residence", residence_id=residence_id))


# ---------------------------------------------------------------- a card and its job


def _card_page(card: Card, *, status: int = 200, error: str | None = None) -> tuple[str, int]:
    job = db.session.scalar(
        sa.select(CardJob).where(CardJob.card_id == card.id).order_by(CardJob.id.desc()).limit(1)
    )
    residence = card.residence
    readers = readers_for(residence.dwelling)
    return render(
        "web/desk/card.html",
        status=status,
        card=card,
        job=job,
        job_state=job_state(job) if job else None,
        residence=residence,
        person=person_masked(residence.person),
        readers=readers,
        reader_id=_chosen_reader(readers),
        error=error,
        card_statuses=CARD_STATUSES,
        reasons=REVOCATION_REASONS,
        desk_reasons={r: REVOCATION_REASONS[r] for r in DESK_REVOCATION_REASONS},
    )


def job_state(job: CardJob) -> dict[str, Any]:
    """A job as the desk follows it: its state in words and whether it is over."""
    card = job.card
    if job.status == "done":
        if job.kind == "issue":
            sentence = _(
                "The card %(card_no)s is written, checked and active.", card_no=card.card_no
            )
        else:
            sentence = _(
                "The card %(card_no)s is erased and recorded as returned.", card_no=card.card_no
            )
    elif job.status == "failed":
        sentence = _(
            "The reader could not finish after %(attempts)s tries. Check the card and the"
            " reader, then try again.",
            attempts=job.attempt,
        )
    else:
        sentence = str(JOB_STATES.get(job.status, job.status))
    return {
        "job_id": job.id,
        "kind": job.kind,
        "status": job.status,
        "open": job.is_open,
        "card_status": card.status,
        "card_status_name": str(CARD_STATUSES.get(card.status, card.status)),
        "attempt": job.attempt,
        "sentence": sentence,
        "detail": job.error,
        "good": job.status == "done",
        "bad": job.status in ("failed", "cancelled"),
    }


@blp.route("/desk/cards/<card_no>", methods=["GET"], endpoint="desk_card")
@requires(*DESKS)
def card(card_no: str) -> tuple[str, int]:
    """A card and its latest job, followed live while the reader works."""
    return _card_page(get_card_or_404(card_no))


@blp.route("/desk/jobs/<int:job_id>", methods=["GET"], endpoint="desk_job_status")
@requires(*DESKS)
def job_status(job_id: int) -> Response:
    """The job's state for the card page's script (JSON, in the reader's language)."""
    return jsonify(job_state(get_job_or_404(job_id)))


def _queue_at_reader(
    card_no: str, queue: Callable[[Card, Reader], CardJob]
) -> Response | tuple[str, int]:
    """Queue a job for the card at the desk's chosen reader; the card page, or the refusal on it."""
    found = get_card_or_404(card_no)

    def queued() -> CardJob:
        reader = _reader_from_form(found.residence.dwelling)
        return queue(get_card_or_404(card_no, for_update=True), reader)

    tried = attempt(queued)
    if tried.refusal is not None:
        return _card_page(found, status=tried.refusal.status, error=tried.message)
    return redirect(url_for("web.desk_card", card_no=found.card_no))


@blp.route("/desk/cards/<card_no>/retry", methods=["POST"], endpoint="desk_retry_card")
@requires(*DESKS)
@retry_conflicts
def retry_card(card_no: str) -> Response | tuple[str, int]:
    """Queue the issue of a pending card again after its job failed."""
    return _queue_at_reader(card_no, cards.retry_issue)


@blp.route("/desk/cards/<card_no>/return", methods=["POST"], endpoint="desk_return_card")
@requires(*DESKS)
@retry_conflicts
def return_card(card_no: str) -> Response | tuple[str, int]:
    """Take a card back: the reader erases it, then it is recorded as returned."""
    return _queue_at_reader(card_no, cards.return_card)


@blp.route("/desk/cards/<card_no>/revoke", methods=["POST"], endpoint="desk_revoke_card")
@requires(*DESKS)
@retry_conflicts
def revoke_card(card_no: str) -> Response | tuple[str, int]:
    """Report a card lost (or damaged): revoked at once; a new one may then be issued."""
    found = get_card_or_404(card_no)
    reason = request.form.get("reason", "lost")

    def revoke() -> Card:
        if reason not in DESK_REVOCATION_REASONS:
            raise InvalidInput("No such reason.", code="invalid_value")
        return cards.revoke_card(get_card_or_404(card_no, for_update=True), reason)

    tried = attempt(revoke)
    if tried.refusal is not None:
        return _card_page(found, status=tried.refusal.status, error=tried.message)
    return redirect(url_for("web.desk_residence", residence_id=found.residence_id))
