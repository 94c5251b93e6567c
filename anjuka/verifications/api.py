"""Patrol checks: verifications, chip challenges, inspections, the offline bundle."""

from __future__ import annotations

import gzip
import json

import sqlalchemy as sa
from flask import Response, request
from flask_smorest import Blueprint

from anjuka.areas.models import Area
from anjuka.cards.models import Card
from anjuka.core.db import db
from anjuka.core.idempotency import idempotent
from anjuka.core.replica import reads_replica
from anjuka.core.scope import scope_of
from anjuka.core.security import Identity, require_identity, requires
from anjuka.core.transactions import retry_conflicts
from anjuka.dwellings.permissions import get_dwelling_or_404
from anjuka.persons.limits import document_lookups
from anjuka.verifications import operations
from anjuka.verifications.bundle import build_bundle
from anjuka.verifications.models import Inspection
from anjuka.verifications.schemas import (
    BundleQuerySchema,
    BundleSchema,
    ChallengeSchema,
    InspectionQuerySchema,
    InspectionSchema,
    VerificationResultSchema,
    VerificationSchema,
)

blp = Blueprint("verifications", __name__, description="Patrol checks (查验) and offline bundles")
PATROL = ("officer", "supervisor")
#: Below this size compressing the bundle is not worth a CPU's while.
GZIP_MIN_BYTES = 1024
#: Built once: given a class, webargs would build the schema again for every request.
VERIFICATION_ARGUMENTS = VerificationSchema()


@blp.route("/verifications", methods=["POST"])
@idempotent
@document_lookups
@blp.arguments(VERIFICATION_ARGUMENTS)
@blp.response(201, VerificationResultSchema)
@blp.alt_response(200, schema=VerificationResultSchema, description="an upload seen before")
@requires(*PATROL)
@retry_conflicts
def verify(body: dict):
    """Check a card (number, or the chip's record and UID) or a document on site.

    Records an inspection and raises its alerts (``revoked_card_presented``,
    ``clone_suspected``, ``over_occupancy`` for a head count above the
    registered number). An offline upload (``offline: true``, ``checked_at``,
    ``client_id``) is judged as of ``checked_at``; sending the same
    ``client_id`` again answers 200 with the first answer and records nothing.
    A check by document number is a look-up: audited on the officer's chain
    and counted toward the look-up limit (429 ``too_many_lookups``).
    """
    identity = require_identity()
    if body["offline"]:
        seen = operations.existing_inspection(identity, body["client_id"])
        if seen is not None:
            return {**seen.answer, "replayed": True}, 200
    dwelling = get_dwelling_or_404(body["dwelling_id"]) if "dwelling_id" in body else None
    place = operations.Place(
        checked_at=operations.check_offline_time(body.get("checked_at"), body["offline"]),
        dwelling=dwelling,
        latitude=body.get("latitude"),
        longitude=body.get("longitude"),
        observed_headcount=body.get("observed_headcount"),
        offline=body["offline"],
        offline_result=body.get("offline_result"),
        client_id=body.get("client_id"),
    )
    if "card_no" in body:
        check = operations.check_card_no(body["card_no"].strip().upper())
    elif "uid" in body:
        check = operations.check_chip(
            identity, body["uid"], body["record"], body.get("challenge_id"), body.get("response")
        )
    else:
        check = operations.check_document(body["document_type"], body["document_number"])
    inspection = operations.record_inspection(identity, check, place)
    return {**inspection.answer, "replayed": False}


@blp.route("/verifications/challenges", methods=["POST"])
@blp.response(201, ChallengeSchema)
@requires(*PATROL)
def create_challenge():
    """A challenge for a CPU card's INTERNAL AUTHENTICATE: send its answer with the check."""
    challenge = operations.issue_challenge(require_identity())
    return {
        "challenge_id": challenge.id,
        "challenge": challenge.challenge.hex(),
        "expires_at": challenge.expires_at,
    }


def inspection_filter(identity: Identity) -> sa.ColumnElement[bool]:
    """Inspections of the caller's areas (and, for an officer, their own)."""
    scope = scope_of(identity)
    if scope.unrestricted:
        return sa.true()
    clauses = [Inspection.officer_id == identity.id]
    if scope.area_paths:
        areas = sa.select(Area.id).where(
            sa.or_(*(Area.path.startswith(p, autoescape=True) for p in scope.area_paths))
        )
        clauses.append(Inspection.area_id.in_(areas))
    return sa.or_(*clauses)


@blp.route("/inspections", methods=["GET"])
@blp.arguments(InspectionQuerySchema, location="query")
@blp.response(200, InspectionSchema(many=True))
@blp.paginate()
@requires(*PATROL)
def list_inspections(query: dict, pagination_parameters):
    """Inspections in the caller's areas, newest first (no personal data)."""
    stmt = (
        sa.select(Inspection, Card.card_no, Area.code)
        .outerjoin(Card, Inspection.card_id == Card.id)
        .outerjoin(Area, Inspection.area_id == Area.id)
        .where(inspection_filter(require_identity()))
        .order_by(Inspection.checked_at.desc(), Inspection.id.desc())
    )
    if "dwelling_id" in query:
        stmt = stmt.where(Inspection.dwelling_id == query["dwelling_id"])
    if "result" in query:
        stmt = stmt.where(Inspection.result == query["result"])
    if "card_no" in query:
        stmt = stmt.where(Card.card_no == query["card_no"])
    total = db.session.scalar(
        sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())
    )
    pagination_parameters.item_count = total
    size = pagination_parameters.page_size
    rows = db.session.execute(
        stmt.limit(size).offset((pagination_parameters.page - 1) * size)
    ).all()
    return [
        {
            "id": i.id,
            "officer_id": i.officer_id,
            "dwelling_id": i.dwelling_id,
            "area_code": area_code,
            "checked_at": i.checked_at,
            "recorded_at": i.recorded_at,
            "input_kind": i.input_kind,
            "card_no": card_no,
            "result": i.result,
            "reason": i.reason,
            "observed_headcount": i.observed_headcount,
            "registered_headcount": i.registered_headcount,
            "offline": i.offline,
            "offline_result": i.offline_result,
            "chip_authenticated": i.chip_authenticated,
        }
        for i, card_no, area_code in rows
    ]


@blp.route("/offline-bundle", methods=["GET"])
@blp.arguments(BundleQuerySchema, location="query")
@blp.response(200, BundleSchema)
@requires(*PATROL)
@reads_replica
def offline_bundle(query: dict):
    """Public keys and revocations (all, or since a cursor), signed, with an expiry.

    Sent gzip-compressed when the client accepts it; the signature covers
    the JSON, not the compression (docs/card-format.md, "Offline
    verification").
    """
    bundle = build_bundle(query.get("since"))
    body = json.dumps(bundle, separators=(",", ":")).encode()
    response = Response(body, mimetype="application/json")
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("Accept-Encoding", ""):
        response.set_data(gzip.compress(body, compresslevel=6))
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    return response
