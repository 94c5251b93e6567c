"""Transfers: request, list, cancel, complete."""

from __future__ import annotations

import sqlalchemy as sa
from flask_smorest import Blueprint

from anjuka.core.db import db
from anjuka.core.dumping import set_dump_context
from anjuka.core.errors import NotFound
from anjuka.core.idempotency import idempotent
from anjuka.core.pagination import paginate
from anjuka.core.security import Identity, require_identity, requires
from anjuka.core.transactions import keep_on_refusal, retry_conflicts
from anjuka.dwellings.permissions import get_dwelling_or_404
from anjuka.persons.identity import parse_document
from anjuka.persons.limits import document_lookups
from anjuka.persons.operations import find_person, record_document_lookup
from anjuka.residences.operations import check_arrival_date
from anjuka.transfers import operations
from anjuka.transfers.models import Transfer
from anjuka.transfers.schemas import (
    CancelSchema,
    CompleteSchema,
    TransferQuerySchema,
    TransferRequestSchema,
    TransferSchema,
)

blp = Blueprint(
    "transfers", __name__, description="Moves across desks: the old desk completes them"
)
DESKS = ("manager", "supervisor")


def _tell_sides(identity: Identity, transfers: list[Transfer]) -> list[Transfer]:
    """Which side of each transfer the caller is on, for the schema to show."""
    ids = [t.id for t in transfers]
    sides: dict[int, frozenset[str]] = {}
    if ids:
        incoming = set(
            db.session.scalars(
                sa.select(Transfer.id).where(
                    Transfer.id.in_(ids), operations.incoming_filter(identity)
                )
            )
        )
        outgoing = set(
            db.session.scalars(
                sa.select(Transfer.id).where(
                    Transfer.id.in_(ids), operations.outgoing_filter(identity)
                )
            )
        )
        sides = {
            i: frozenset(
                side
                for side, found in (("incoming", incoming), ("outgoing", outgoing))
                if i in found
            )
            for i in ids
        }
    set_dump_context(transfer_sides=sides)
    return transfers


def get_transfer_or_404(
    transfer_id: int, *, side: str | None = None, for_update: bool = False
) -> Transfer:
    """A transfer on a side the caller is on (either, or the one named), or 404."""
    identity = require_identity()
    if side == "incoming":
        visible = operations.incoming_filter(identity)
    elif side == "outgoing":
        visible = operations.outgoing_filter(identity)
    else:
        visible = sa.or_(operations.incoming_filter(identity), operations.outgoing_filter(identity))
    query = sa.select(Transfer).where(Transfer.id == transfer_id, visible)
    if for_update:
        query = query.with_for_update(of=Transfer).execution_options(populate_existing=True)
    transfer = db.session.scalar(query)
    if transfer is None:
        raise NotFound(f"No transfer {transfer_id}.", code="transfer_not_found")
    return transfer


@blp.route("/transfers", methods=["POST"])
@idempotent
@document_lookups
@blp.arguments(TransferRequestSchema)
@blp.response(201, TransferSchema)
@requires(*DESKS)
@retry_conflicts
def request_transfer(body: dict):
    """Ask the desk of a person's current dwelling (outside your scope) to let them move here.

    409 ``not_registered`` when the person lives nowhere (register the
    arrival instead), ``transfer_pending`` when a request already waits,
    ``dwelling_full`` when this dwelling has no place. Naming a person by
    document is a look-up: audited and counted toward the caller's look-up
    limit (429 ``too_many_lookups``).
    """
    identity = require_identity()
    document = parse_document(body["person"]["document_type"], body["person"]["document_number"])
    # What can be refused without looking anyone up is refused first.
    check_arrival_date(body["arrived_on"])
    get_dwelling_or_404(body["dwelling_id"])
    found = find_person(document)
    record_document_lookup(identity, document, None if found is None else found.id, via="transfers")
    keep_on_refusal()  # the look-up is on the record whatever the answer
    dwelling = get_dwelling_or_404(body["dwelling_id"], for_update=True)
    transfer = operations.request_transfer(
        identity, dwelling, document, arrived_on=body["arrived_on"]
    )
    return _tell_sides(identity, [transfer])[0]


@blp.route("/transfers", methods=["GET"])
@blp.arguments(TransferQuerySchema, location="query")
@blp.response(200, TransferSchema(many=True))
@blp.paginate()
@requires(*DESKS)
def list_transfers(query: dict, pagination_parameters):
    """Transfers into or out of the caller's dwellings, newest first."""
    identity = require_identity()
    incoming, outgoing = operations.incoming_filter(identity), operations.outgoing_filter(identity)
    side = query.get("side")
    visible = incoming if side == "incoming" else outgoing if side == "outgoing" else None
    stmt = sa.select(Transfer).where(visible if visible is not None else sa.or_(incoming, outgoing))
    if "status" in query:
        stmt = stmt.where(Transfer.status == query["status"])
    stmt = stmt.order_by(Transfer.requested_at.desc(), Transfer.id.desc())
    return _tell_sides(identity, paginate(stmt, pagination_parameters))


@blp.route("/transfers/<int:transfer_id>", methods=["GET"])
@blp.response(200, TransferSchema)
@requires(*DESKS)
def get_transfer(transfer_id: int):
    """One transfer, as the caller's side sees it."""
    return _tell_sides(require_identity(), [get_transfer_or_404(transfer_id)])[0]


@blp.route("/transfers/<int:transfer_id>/cancel", methods=["POST"])
@blp.arguments(CancelSchema)
@blp.response(200, TransferSchema)
@requires(*DESKS)
@retry_conflicts
def cancel_transfer(body: dict, transfer_id: int):
    """Withdraw a waiting request (the requesting side); 409 ``transfer_closed`` otherwise."""
    identity = require_identity()
    transfer = get_transfer_or_404(transfer_id, side="incoming", for_update=True)
    operations.cancel_transfer(identity, transfer, body.get("reason"))
    return _tell_sides(identity, [transfer])[0]


@blp.route("/transfers/<int:transfer_id>/complete", methods=["POST"])
@blp.arguments(CompleteSchema)
@blp.response(200, TransferSchema)
@requires("supervisor")
@retry_conflicts
def complete_transfer(body: dict, transfer_id: int):
    """Complete a request the old desk left unanswered past ``due_on`` (new area's supervisor).

    409 ``transfer_not_due`` before then; the reason is audited on both areas' chains.
    """
    identity = require_identity()
    transfer = get_transfer_or_404(transfer_id, side="incoming")
    operations.complete_transfer(identity, transfer, body["reason"])
    return _tell_sides(identity, [transfer])[0]
