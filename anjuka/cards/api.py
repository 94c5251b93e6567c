"""Cards at the desk (issue, revoke, return), their jobs, and the readers (admin)."""

from __future__ import annotations

import sqlalchemy as sa
from flask_smorest import Blueprint

from anjuka.cards import operations
from anjuka.cards.models import Card, Reader
from anjuka.cards.permissions import (
    DESK_ROLES,
    desk_reader,
    get_card_or_404,
    get_job_or_404,
    get_person_in_scope_or_404,
    get_reader_or_404,
    get_residence_or_404,
    usable_reader,
    visible_cards,
)
from anjuka.cards.readers import create_reader
from anjuka.cards.schemas import (
    CardIssuedSchema,
    CardIssueSchema,
    CardReaderChoiceSchema,
    CardRevokeSchema,
    CardSchema,
    JobSchema,
    ReaderCreatedSchema,
    ReaderCreateSchema,
    ReaderSchema,
)
from anjuka.core.dumping import set_dump_context
from anjuka.core.errors import AppError
from anjuka.core.idempotency import idempotent
from anjuka.core.pagination import paginate
from anjuka.core.security import requires
from anjuka.core.transactions import retry_conflicts

blp = Blueprint("cards", __name__, description="Anju e-Cards (安居e卡) and desk readers")


def _choose_reader(reader_id: int | None, default_id: int | None) -> tuple[Reader, bool]:
    """The reader named, else the one used before, locked; and whether it was named."""
    chosen = reader_id or default_id
    if chosen is None:
        raise AppError(
            "Name the reader for this job.",
            code="reader_required",
            status=422,
            errors={"reader_id": ["No earlier reader to default to."]},
        )
    return desk_reader(chosen), reader_id is not None


@blp.route("/cards", methods=["POST"])
@idempotent
@blp.arguments(CardIssueSchema)
@blp.response(202, CardIssuedSchema)
@requires(*DESK_ROLES)
@retry_conflicts
def issue_card(body: dict):
    """Issue a card for a current residence at a desk reader: a pending card and its job.

    409 ``card_exists`` (with ``card_no``) when the person has an active or
    pending card; revoke it first to reissue.
    """
    reader = desk_reader(body["reader_id"])
    residence = get_residence_or_404(body["residence_id"], for_update=True)
    usable_reader(reader, residence.dwelling)
    _card, job = operations.issue_card(residence, reader)
    return job


@blp.route("/cards/<card_no>", methods=["GET"])
@blp.response(200, CardSchema)
@requires(*DESK_ROLES)
def get_card(card_no: str):
    """One card: status, chip, expiry, revocation, and its latest job with any failure."""
    return get_card_or_404(card_no)


@blp.route("/cards/<card_no>/revoke", methods=["POST"])
@blp.arguments(CardRevokeSchema)
@blp.response(200, CardSchema)
@requires(*DESK_ROLES)
@retry_conflicts
def revoke_card(body: dict, card_no: str):
    """Revoke at once (lost, damaged, replaced); a pending card's job is cancelled."""
    return operations.revoke_card(get_card_or_404(card_no, for_update=True), body["reason"])


@blp.route("/cards/<card_no>/return", methods=["POST"])
@blp.arguments(CardReaderChoiceSchema)
@blp.response(202, CardIssuedSchema)
@requires(*DESK_ROLES)
@retry_conflicts
def return_card(body: dict, card_no: str):
    """Take a card back: an erase job; the card is ``returned`` once the chip is wiped."""
    card = get_card_or_404(card_no)
    reader, named = _choose_reader(body.get("reader_id"), operations.writer_of(card))
    card = get_card_or_404(card_no, for_update=True)
    usable_reader(reader, card.residence.dwelling, named=named)
    job = operations.return_card(card, reader)
    return job


@blp.route("/cards/<card_no>/retry", methods=["POST"])
@blp.arguments(CardReaderChoiceSchema)
@blp.response(202, CardIssuedSchema)
@requires(*DESK_ROLES)
@retry_conflicts
def retry_card(body: dict, card_no: str):
    """Queue the issuance of a pending card again after its job failed or was cancelled."""
    card = get_card_or_404(card_no)
    last = card.latest_job
    reader, named = _choose_reader(body.get("reader_id"), last.reader_id if last else None)
    card = get_card_or_404(card_no, for_update=True)
    usable_reader(reader, card.residence.dwelling, named=named)
    job = operations.retry_issue(card, reader)
    return job


@blp.route("/residences/<int:residence_id>/cards", methods=["GET"])
@blp.response(200, CardSchema(many=True))
@blp.paginate()
@requires(*DESK_ROLES)
def residence_cards(residence_id: int, pagination_parameters):
    """Every card issued for a residence, newest first."""
    get_residence_or_404(residence_id)
    stmt = visible_cards().where(Card.residence_id == residence_id).order_by(Card.id.desc())
    return paginate(stmt, pagination_parameters)


@blp.route("/persons/<int:person_id>/cards", methods=["GET"])
@blp.response(200, CardSchema(many=True))
@blp.paginate()
@requires(*DESK_ROLES)
def person_cards(person_id: int, pagination_parameters):
    """A person's cards, as far as the caller's scope reaches, newest first."""
    get_person_in_scope_or_404(person_id)
    stmt = visible_cards().where(Card.person_id == person_id).order_by(Card.id.desc())
    return paginate(stmt, pagination_parameters)


@blp.route("/jobs/<int:job_id>", methods=["GET"])
@blp.response(200, JobSchema)
@requires(*DESK_ROLES)
def get_job(job_id: int):
    """A card job's progress, with a readable reason when it failed."""
    return get_job_or_404(job_id)


@blp.route("/readers", methods=["GET"])
@blp.response(200, ReaderSchema(many=True))
@blp.paginate()
@requires("admin")
def list_readers(pagination_parameters):
    """Every desk reader, with when its daemon was last heard from (admin)."""
    stmt = sa.select(Reader).order_by(Reader.id)
    return paginate(stmt, pagination_parameters)


@blp.route("/readers", methods=["POST"])
@blp.arguments(ReaderCreateSchema)
@blp.response(201, ReaderCreatedSchema)
@requires("admin")
def register_reader(body: dict):
    """Register a desk reader (admin); the token is in this answer only."""
    reader, token = create_reader(
        body["name"], area_code=body.get("area_code"), estate_id=body.get("estate_id")
    )
    set_dump_context(reader_token=token)
    return reader


@blp.route("/readers/<int:reader_id>/revoke", methods=["POST"])
@blp.response(200, ReaderSchema)
@requires("admin")
def revoke_reader(reader_id: int):
    """Disable a reader's token at once; its open jobs are cancelled (admin)."""
    reader = get_reader_or_404(reader_id, lock="update")
    operations.revoke_reader(reader)
    return reader
