"""Transfers between desks: the requests into the caller's dwellings and out of them.

A desk withdraws its own waiting request; the new area's supervisor
completes one that the old desk left past its deadline. Both through the
transfers' operations, under the same sides and scopes as the API.
"""

from __future__ import annotations

from dataclasses import dataclass

import marshmallow as ma
import sqlalchemy as sa
from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as l_
from werkzeug.wrappers import Response

from anjuka.core.db import db
from anjuka.core.privacy import mask_name
from anjuka.core.security import require_identity, requires
from anjuka.core.time import local_today
from anjuka.core.transactions import retry_conflicts
from anjuka.transfers import operations as transfer_operations
from anjuka.transfers.api import get_transfer_or_404
from anjuka.transfers.models import Transfer, TransferStatus
from anjuka.transfers.schemas import CancelSchema, CompleteSchema
from anjuka.web.desk import DESKS  # transfers are every desk's
from anjuka.web.pages import attempt, blp, render

#: Transfers shown per side (the oldest deadlines first).
TRANSFERS_SHOWN = 200

TRANSFER_STATUS_NAMES = {
    "requested": l_("Waiting"),
    "completed": l_("Completed"),
    "cancelled": l_("Cancelled"),
    "failed": l_("Failed"),
}


@dataclass(frozen=True)
class TransferLine:
    transfer: Transfer
    overdue: bool
    may_complete: bool

    @property
    def reason(self) -> str | None:
        """Why it closed, in words: the registry's own reasons translated, a person's as written."""
        reason = self.transfer.reason
        if not reason:
            return None
        if self.transfer.status == TransferStatus.FAILED:
            return _("The new dwelling had no place left when the old desk recorded the departure.")
        if reason.startswith("superseded by a "):
            return _("Superseded: the person moved by another way.")
        return reason


@blp.route("/transfers")
@requires(*DESKS)
def transfers() -> tuple[str, int]:
    """Transfers into the caller's dwellings and out of them (waiting ones unless asked)."""
    return _transfers_page()


def _transfers_page(refused: dict[int, str] | None = None, status: int = 200) -> tuple[str, int]:
    """The transfers page; ``refused`` holds the reason a form of one transfer was refused."""
    identity = require_identity()
    shown = request.args.get("status") or "requested"
    if shown not in TRANSFER_STATUS_NAMES and shown != "all":
        shown = "requested"
    today = local_today()

    def side(visible: sa.ColumnElement[bool]) -> list[Transfer]:
        stmt = sa.select(Transfer).where(visible)
        if shown != "all":
            stmt = stmt.where(Transfer.status == shown)
        stmt = stmt.order_by(Transfer.due_on, Transfer.id).limit(TRANSFERS_SHOWN)
        return list(db.session.scalars(stmt))

    def line(transfer: Transfer, incoming: bool) -> TransferLine:
        overdue = transfer.status == TransferStatus.REQUESTED and today > transfer.due_on
        return TransferLine(
            transfer,
            overdue=overdue,
            may_complete=incoming
            and overdue
            and identity.role in transfer_operations.COMPLETING_ROLES,
        )

    return render(
        "web/supervise/transfers.html",
        status=status,
        incoming=[line(t, True) for t in side(transfer_operations.incoming_filter(identity))],
        outgoing=[line(t, False) for t in side(transfer_operations.outgoing_filter(identity))],
        shown=shown,
        status_names=TRANSFER_STATUS_NAMES,
        mask_name=mask_name,
        refused=refused or {},
        shown_at_most=TRANSFERS_SHOWN,
    )


@blp.route("/transfers/<int:transfer_id>/complete", methods=["POST"])
@requires("supervisor")
@retry_conflicts
def complete_transfer(transfer_id: int) -> Response | tuple[str, int]:
    """Complete a transfer the old desk left past its deadline (new area's supervisor)."""
    identity = require_identity()
    transfer = get_transfer_or_404(transfer_id, side="incoming")
    reason = request.form.get("reason", "").strip()
    try:
        CompleteSchema().load({"reason": reason})
    except ma.ValidationError:
        return _refused_transfer(transfer, _("Give the reason in a few words."), 422)
    tried = attempt(lambda: transfer_operations.complete_transfer(identity, transfer, reason))
    if tried.refusal is not None:
        message = tried.message or ""
        if tried.refusal.code == "validation_error":
            message = _("Give the reason in a few words.")
        return _refused_transfer(transfer, message, tried.refusal.status)
    flash(_("The move is completed: the new residence has begun."), "good")
    return redirect(url_for("web.transfers"))


@blp.route("/transfers/<int:transfer_id>/cancel", methods=["POST"])
@requires(*DESKS)
@retry_conflicts
def cancel_transfer(transfer_id: int) -> Response | tuple[str, int]:
    """Withdraw a waiting request (the requesting side)."""
    identity = require_identity()
    transfer = get_transfer_or_404(transfer_id, side="incoming", for_update=True)
    reason = request.form.get("reason", "").strip() or None
    try:
        CancelSchema().load({"reason": reason})
    except ma.ValidationError:
        return _refused_transfer(transfer, _("The reason is too long."), 422)
    tried = attempt(lambda: transfer_operations.cancel_transfer(identity, transfer, reason))
    if tried.refusal is not None:
        return _refused_transfer(transfer, tried.message or "", tried.refusal.status)
    flash(_("The request is withdrawn."), "good")
    return redirect(url_for("web.transfers"))


def _refused_transfer(transfer: Transfer, message: str, status: int) -> tuple[str, int]:
    return _transfers_page({transfer.id: message}, status)
