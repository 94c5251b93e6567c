"""Checking a card or a document on site, and recording the inspection (查验).

One check, one inspection, and the alerts it raises, in one transaction.
The answer carries the least personal data that lets the officer act: the
card's status, and, when the residence lies in the officer's scope, the
resident's masked name, the dwelling's address and the arrival date.

Result precedence, first match wins:

1. the chip's record does not verify for the chip's UID: ``forged``, or
   ``clone_suspected`` when it is a genuine record of another chip (a copy);
   a failed INTERNAL AUTHENTICATE is ``clone_suspected`` too;
2. nothing known (no such card, a pending card, no such person, no current
   residence): ``unknown``;
3. the card was revoked or returned by the time of the check: ``revoked``;
4. the same card was presented elsewhere too far away for the time between
   (see :func:`too_far_apart`): ``clone_suspected``;
5. the card is past its expiry: ``expired``;
6. the officer named a dwelling and the resident is registered at another:
   ``wrong_dwelling``;
7. ``valid``.
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from anjuka.alerts import occupancy
from anjuka.alerts.operations import raise_alert
from anjuka.areas.models import Area
from anjuka.areas.permissions import area_in_scope
from anjuka.audit import operations as audit
from anjuka.cards.models import Card, CardStatus, CardType
from anjuka.cards.signing import derive_card_key
from anjuka.core.db import db
from anjuka.core.errors import AppError, Conflict, InvalidInput
from anjuka.core.keys import keyring
from anjuka.core.privacy import mask_name
from anjuka.core.scope import scope_of
from anjuka.core.security import Identity, require_identity
from anjuka.core.time import local_date, utcnow
from anjuka.dwellings.models import Dwelling
from anjuka.dwellings.operations import occupant_counts
from anjuka.dwellings.permissions import dwelling_filter
from anjuka.persons.identity import parse_document
from anjuka.persons.models import Person
from anjuka.persons.operations import find_person, record_document_lookup
from anjuka.residences.models import Residence
from anjuka.verifications.models import Inspection, VerificationChallenge, VerificationResult
from cardreader.cardno import is_valid_card_no
from cardreader.protocol.cpu import internal_auth_response
from cardreader.record import (
    BadSignatureError,
    RecordFormatError,
    UnknownKeyError,
    decode_record,
    verify_record,
)

CHALLENGE_LIFETIME = timedelta(minutes=2)
CHALLENGE_SIZE = 8
#: Two checks of one card further apart in time than this are never "too far".
TRAVEL_WINDOW = timedelta(hours=1)
#: With positions: faster than this between the two places is impossible in a city.
MAX_SPEED_KMH = 120
#: ... and closer than this is the same place give or take GPS error.
MIN_DISTANCE_KM = 2.0


@dataclass
class Check:
    """What a verification found, before it is recorded."""

    input_kind: str
    result: str = VerificationResult.UNKNOWN
    reason: str | None = None
    card: Card | None = None
    residence: Residence | None = None
    person: Person | None = None
    uid: str | None = None
    #: The card number a chip's record claims, even when it proves false.
    claimed_card_no: str | None = None
    chip_authenticated: bool | None = None
    decided: bool = False  # a crypto verdict or "unknown": later rules do not apply

    def decide(self, result: VerificationResult, reason: str | None = None) -> Check:
        self.result, self.reason, self.decided = result, reason, True
        return self


@dataclass(frozen=True)
class Place:
    """Where and when the officer checked, and what they saw."""

    checked_at: datetime
    dwelling: Dwelling | None = None
    latitude: Decimal | None = None
    longitude: Decimal | None = None
    observed_headcount: int | None = None
    offline: bool = False
    offline_result: str | None = None
    client_id: str | None = None


# -- challenges -----------------------------------------------------------------


def issue_challenge(identity: Identity) -> VerificationChallenge:
    """A fresh random challenge for a CPU card, good once for two minutes."""
    now = utcnow()
    challenge = VerificationChallenge(
        id=secrets.token_hex(16),
        challenge=secrets.token_bytes(CHALLENGE_SIZE),
        user_id=identity.id,
        created_at=now,
        expires_at=now + CHALLENGE_LIFETIME,
    )
    db.session.add(challenge)
    db.session.flush()
    return challenge


def _take_challenge(identity: Identity, challenge_id: str) -> bytes:
    challenge = db.session.scalar(
        sa.select(VerificationChallenge)
        .where(
            VerificationChallenge.id == challenge_id,
            VerificationChallenge.user_id == identity.id,
        )
        .with_for_update()
    )
    if challenge is None:
        raise InvalidInput(
            "No such challenge was issued to you.",
            code="challenge_unknown",
            errors={"challenge_id": ["Unknown challenge."]},
        )
    if challenge.used_at is not None:
        raise InvalidInput(
            "The challenge was already used; ask for a new one.", code="challenge_used"
        )
    now = utcnow()
    if now >= challenge.expires_at:
        raise InvalidInput("The challenge expired; ask for a new one.", code="challenge_expired")
    challenge.used_at = now
    return challenge.challenge


# -- the checks -----------------------------------------------------------------


def _card_by_no(card_no: str) -> Card | None:
    return db.session.scalar(sa.select(Card).where(Card.card_no == card_no))


def _attach(check: Check, card: Card | None) -> Check:
    check.card = card
    if card is not None:
        check.residence = card.residence
        check.person = card.residence.person
    return check


def check_card_no(card_no: str) -> Check:
    """A check by the printed number: the registry's word only, no chip."""
    if not is_valid_card_no(card_no):
        raise InvalidInput(
            "Not an Anju e-Card number (AJ, 8 digits, check character).",
            code="invalid_card_no",
            errors={"card_no": ["Invalid card number or check character."]},
        )
    check = _attach(Check("card_no"), _card_by_no(card_no))
    if check.card is None:
        return check.decide(VerificationResult.UNKNOWN, "no_such_card")
    return check


def check_chip(
    identity: Identity,
    uid_hex: str,
    record_hex: str,
    challenge_id: str | None = None,
    response_hex: str | None = None,
) -> Check:
    """A check of what a chip holds, bound to its UID (and its key, for CPU cards)."""
    check = Check("chip", uid=uid_hex)
    challenge = _take_challenge(identity, challenge_id) if challenge_id else None
    record = bytes.fromhex(record_hex)
    if not record:
        return check.decide(VerificationResult.UNKNOWN, "blank")
    try:
        decoded, _ = decode_record(record)
    except RecordFormatError:
        return check.decide(VerificationResult.FORGED, "not_a_record")
    check.claimed_card_no = decoded.card_no
    _attach(check, _card_by_no(decoded.card_no))
    keys = keyring().signing_public_keys()
    uid = bytes.fromhex(uid_hex)
    try:
        verify_record(record, uid, keys)
    except UnknownKeyError:
        return check.decide(VerificationResult.FORGED, "unknown_key")
    except BadSignatureError:
        card = check.card
        if card is not None and card.uid and _verifies(record, card.uid, keys):
            return check.decide(VerificationResult.CLONE_SUSPECTED, "record_copied")
        return check.decide(VerificationResult.FORGED, "bad_signature")
    card = check.card
    if card is None:
        return check.decide(VerificationResult.UNKNOWN, "no_such_card")
    if card.uid != uid_hex:
        # Signed for this chip once (an issue job later bound to another chip),
        # but the card is that other chip now.
        return check.decide(VerificationResult.FORGED, "not_this_cards_chip")
    if challenge is not None:
        if card.card_type != CardType.CPU or card.card_key_id is None:
            raise InvalidInput(
                "Only CPU cards answer INTERNAL AUTHENTICATE.", code="challenge_not_supported"
            )
        _, masters = keyring().card_master
        internal_key = derive_card_key(
            masters[card.card_key_id], uid, CardType.CPU, "internal_key", 16
        )
        expected = internal_auth_response(internal_key, challenge)
        check.chip_authenticated = hmac.compare_digest(expected, bytes.fromhex(response_hex or ""))
        if not check.chip_authenticated:
            return check.decide(VerificationResult.CLONE_SUSPECTED, "internal_authenticate_failed")
    return check


def _verifies(record: bytes, uid_hex: str, keys: Mapping) -> bool:
    try:
        verify_record(record, bytes.fromhex(uid_hex), keys)
    except (RecordFormatError, UnknownKeyError, BadSignatureError):
        return False
    return True


def check_document(document_type: str, number: str) -> Check:
    """A check of an identity document: is its holder registered (here)?"""
    check = Check("document")
    document = parse_document(document_type, number)
    person = find_person(document)
    record_document_lookup(
        require_identity(), document, None if person is None else person.id, via="verifications"
    )
    if person is None:
        return check.decide(VerificationResult.UNKNOWN, "no_such_person")
    check.person = person
    residence = db.session.scalar(
        sa.select(Residence).where(
            Residence.person_id == person.id, Residence.departed_on.is_(None)
        )
    )
    if residence is None:
        return check.decide(VerificationResult.UNKNOWN, "not_registered")
    check.residence = residence
    check.card = db.session.scalar(
        sa.select(Card).where(Card.residence_id == residence.id, Card.status == CardStatus.ACTIVE)
    )
    return check


# -- where and when ---------------------------------------------------------------


def _distance_km(lat1: Decimal, lon1: Decimal, lat2: Decimal, lon2: Decimal) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    p1, p2 = math.radians(float(lat1)), math.radians(float(lat2))
    dp, dl = p2 - p1, math.radians(float(lon2) - float(lon1))
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def _city(path: str) -> str:
    """The top of an area path (the city): "/3302/330203/" → "3302"."""
    return path.strip("/").split("/", 1)[0]


@dataclass(frozen=True)
class Sighting:
    """An earlier check of the card: as much of its inspection as the travel rule reads."""

    inspection_id: int
    checked_at: datetime
    latitude: Decimal | None
    longitude: Decimal | None
    #: The city of the dwelling it was checked at, if one was named.
    city: str | None


def too_far_apart(place: Place, other: Sighting) -> bool:
    """Whether one card could not have been at both places in the time between.

    With positions at both checks: more than ``MIN_DISTANCE_KM`` apart at
    a speed above ``MAX_SPEED_KMH``. Otherwise, with a dwelling at both: in
    different cities (the top of the area tree) within ``TRAVEL_WINDOW``.
    Areas are too coarse for anything finer: two districts, or two
    stations, can meet in the middle of a street. Without either, nothing
    can be said.
    """
    hours = abs((place.checked_at - other.checked_at).total_seconds()) / 3600
    if hours > TRAVEL_WINDOW.total_seconds() / 3600:
        return False
    # A position is whole or absent (CHECK position_whole): latitude stands for both.
    if (
        place.latitude is not None
        and place.longitude is not None
        and other.latitude is not None
        and other.longitude is not None
    ):
        km = _distance_km(place.latitude, place.longitude, other.latitude, other.longitude)
        return km >= MIN_DISTANCE_KM and km / max(hours, 1 / 60) > MAX_SPEED_KMH
    if place.dwelling is not None and other.city is not None:
        return _city(place.dwelling.area.path) != other.city
    return False


def _impossible_travel(card: Card, place: Place) -> int | None:
    """The id of an inspection of ``card`` too far from ``place`` for the time between.

    Only the checks that could be too far are read, and only the columns the
    rule needs: a card checked again and again at one spot (a checkpoint)
    costs one indexed look-up that finds nothing, however often it was seen.
    """
    positioned = place.latitude is not None and place.longitude is not None
    if not positioned and place.dwelling is None:
        return None  # nothing to compare: no position, no dwelling
    could_be_far = []
    if positioned:  # a position elsewhere (the same spot is never too far)
        could_be_far.append(
            sa.and_(
                Inspection.latitude.is_not(None),
                sa.or_(
                    Inspection.latitude != place.latitude,
                    Inspection.longitude != place.longitude,
                ),
            )
        )
    if place.dwelling is not None:  # a dwelling in another city, where positions cannot tell
        another_city = sa.and_(
            Inspection.dwelling_id.is_not(None),
            sa.not_(Area.path.startswith(f"/{_city(place.dwelling.area.path)}/", autoescape=True)),
        )
        could_be_far.append(
            sa.and_(Inspection.latitude.is_(None), another_city) if positioned else another_city
        )
    rows = db.session.execute(
        sa.select(
            Inspection.id,
            Inspection.checked_at,
            Inspection.latitude,
            Inspection.longitude,
            Area.path,
        )
        .outerjoin(Dwelling, Dwelling.id == Inspection.dwelling_id)
        .outerjoin(Area, Area.id == Dwelling.area_id)
        .where(
            Inspection.card_id == card.id,
            Inspection.input_kind != "document",  # the card itself was there
            Inspection.checked_at >= place.checked_at - TRAVEL_WINDOW,
            Inspection.checked_at <= place.checked_at + TRAVEL_WINDOW,
            sa.or_(*could_be_far),
        )
        .order_by(Inspection.checked_at.desc())
    )
    for inspection_id, checked_at, latitude, longitude, path in rows:
        seen = Sighting(
            inspection_id, checked_at, latitude, longitude, None if path is None else _city(path)
        )
        if too_far_apart(place, seen):
            return inspection_id
    return None


def _was_revoked(card: Card, at: datetime) -> bool:
    if card.status not in (CardStatus.REVOKED, CardStatus.RETURNED):
        return False
    revoked_at = card.revoked_at or card.returned_at
    return revoked_at is None or revoked_at <= at


def judge(check: Check, place: Place) -> int | None:
    """Apply the rules after the chip's verdict; returns a conflicting inspection's id, if any."""
    if check.decided:
        return None
    card = check.card
    if card is not None and card.status == CardStatus.PENDING:
        check.decide(VerificationResult.UNKNOWN, "card_not_active")
        return None
    if card is not None and _was_revoked(card, place.checked_at):
        check.decide(VerificationResult.REVOKED, card.revocation_reason or card.status)
        return None
    presented = card is not None and check.input_kind != "document"
    elsewhere = _impossible_travel(card, place) if presented and card is not None else None
    if elsewhere is not None:
        check.decide(VerificationResult.CLONE_SUSPECTED, "impossible_travel")
        return elsewhere
    if (
        card is not None
        and card.expires_on is not None
        and card.expires_on < local_date(place.checked_at)
    ):
        check.decide(VerificationResult.EXPIRED)
        return None
    residence = check.residence
    if (
        place.dwelling is not None
        and residence is not None
        and (residence.dwelling_id != place.dwelling.id or residence.departed_on is not None)
    ):
        check.decide(VerificationResult.WRONG_DWELLING)
        return None
    check.decide(VerificationResult.VALID)
    return None


# -- recording ----------------------------------------------------------------------


def _in_scope(identity: Identity, dwelling_id: int) -> bool:
    return (
        db.session.scalar(
            sa.select(Dwelling.id).where(Dwelling.id == dwelling_id, dwelling_filter(identity))
        )
        is not None
    )


def _answer(identity: Identity, check: Check, inspection: Inspection, alerts: list[dict]) -> dict:
    card = check.card
    residence = check.residence
    visible = residence is not None and _in_scope(identity, residence.dwelling_id)
    return {
        "result": check.result,
        "reason": check.reason,
        "inspection_id": inspection.id,
        "checked_at": inspection.checked_at.isoformat(),
        "offline": inspection.offline,
        "card": None
        if card is None
        else {
            "card_no": card.card_no,
            "status": card.status,
            "expires_on": None if card.expires_on is None else card.expires_on.isoformat(),
            "revocation_reason": card.revocation_reason,
            "chip_authenticated": check.chip_authenticated,
        },
        "resident": {
            "name": mask_name(residence.person.name),
            "arrived_on": residence.arrived_on.isoformat(),
            "current": residence.departed_on is None,
        }
        if visible and residence is not None
        else None,
        "dwelling": {"id": residence.dwelling_id, "address": residence.dwelling.address}
        if visible and residence is not None
        else None,
        "details_withheld": residence is not None and not visible,
        "registered_headcount": inspection.registered_headcount,
        "alerts": alerts,
    }


def check_area(identity: Identity, check: Check, place: Place) -> Area | None:
    """Where the check happened: the area its inspection and alerts belong to.

    The dwelling the officer named; else the card's area when it lies in the
    officer's own scope (an admin's scope is everything); else the officer's
    own area, the first by code when they have several. Never the area a
    record merely claims: a forged record naming another area's card must not
    raise an alert there that its sender cannot even see. An admin (whose
    scope is everything) checking neither at a dwelling nor a known card
    leaves it empty: alerts without an area are seen by admins only.
    """
    if place.dwelling is not None:
        return place.dwelling.area
    if check.residence is not None:
        area = check.residence.dwelling.area
        if area_in_scope(identity, area):
            return area
    paths = scope_of(identity).area_paths
    if not paths:
        return None
    return db.session.scalar(
        sa.select(Area).where(Area.path.in_(paths)).order_by(Area.code).limit(1)
    )


def _clone_subject(identity: Identity, check: Check) -> tuple[str, str]:
    """What a clone_suspected alert is about: the card, or the chip presented.

    A card outside the caller's scope is not the subject: its own area may
    have a live alert on it, and the one live alert per kind and subject
    would move that alert here and show it to the caller. The chip (its UID)
    is what the caller saw, so the alert is about the chip.
    """
    card = check.card
    if check.uid is None:  # a number typed in: no chip to name
        return "card", card.card_no if card is not None else str(check.claimed_card_no)
    if card is not None and area_in_scope(identity, card.residence.dwelling.area):
        return "card", card.card_no
    return "chip", check.uid


def _raise_alerts(
    identity: Identity,
    check: Check,
    place: Place,
    inspection: Inspection,
    elsewhere: int | None,
) -> list[dict]:
    raised = []
    area_id = inspection.area_id
    at = place.checked_at
    common = {
        "inspection_id": inspection.id,
        "dwelling_id": inspection.dwelling_id,
        "officer_id": inspection.officer_id,
        "offline": inspection.offline,
    }
    if check.result == VerificationResult.REVOKED and check.card is not None:
        alert = raise_alert(
            "revoked_card_presented",
            "card",
            check.card.card_no,
            area_id=area_id,
            details={**common, "revocation_reason": check.card.revocation_reason},
            at=at,
        ).alert
        raised.append(alert)
    if check.result == VerificationResult.CLONE_SUSPECTED or (
        check.result == VerificationResult.FORGED and check.claimed_card_no is not None
    ):
        subject_type, subject_id = _clone_subject(identity, check)
        alert = raise_alert(
            "clone_suspected",
            subject_type,
            subject_id,
            area_id=area_id,
            details={
                **common,
                "card_no": check.card.card_no if check.card is not None else check.claimed_card_no,
                "result": check.result,
                "reason": check.reason,
                "uid": check.uid,
                "other_inspection_id": elsewhere,
            },
            at=at,
        ).alert
        raised.append(alert)
    observed = place.observed_headcount
    registered = inspection.registered_headcount
    if place.dwelling is not None and observed is not None and observed > (registered or 0):
        raised.append(
            occupancy.record_headcount(place.dwelling, observed, registered or 0, inspection.id)
        )
    return [{"id": a.id, "kind": a.kind} for a in raised]


def existing_inspection(identity: Identity, client_id: str) -> Inspection | None:
    """The inspection an earlier upload with ``client_id`` recorded, if any."""
    inspection = db.session.scalar(sa.select(Inspection).where(Inspection.client_id == client_id))
    if inspection is not None and inspection.officer_id != identity.id:
        raise Conflict("Another officer's inspection has this client id.", code="client_id_taken")
    return inspection


def record_inspection(identity: Identity, check: Check, place: Place) -> Inspection:
    """Judge the check, record the inspection and raise its alerts; returns it with its answer."""
    if place.observed_headcount is not None and place.dwelling is None:
        raise InvalidInput(
            "A head count needs the dwelling it was counted in.",
            errors={"dwelling_id": ["Required with observed_headcount."]},
        )
    elsewhere = judge(check, place)
    area = check_area(identity, check, place)
    registered = (
        occupant_counts([place.dwelling.id])[place.dwelling.id]
        if place.dwelling is not None
        else None
    )
    inspection = Inspection(
        client_id=place.client_id,
        officer_id=identity.id,
        dwelling_id=place.dwelling.id if place.dwelling is not None else None,
        area_id=area.id if area is not None else None,
        checked_at=place.checked_at,
        recorded_at=utcnow(),
        input_kind=check.input_kind,
        card_id=check.card.id if check.card is not None else None,
        person_id=check.person.id if check.person is not None else None,
        residence_id=check.residence.id if check.residence is not None else None,
        uid=check.uid,
        result=check.result,
        reason=check.reason,
        observed_headcount=place.observed_headcount,
        registered_headcount=registered,
        offline=place.offline,
        offline_result=place.offline_result,
        chip_authenticated=check.chip_authenticated,
        latitude=place.latitude,
        longitude=place.longitude,
        answer={},
    )
    db.session.add(inspection)
    db.session.flush()
    alerts = _raise_alerts(identity, check, place, inspection, elsewhere)
    inspection.answer = _answer(identity, check, inspection, alerts)
    db.session.flush()
    audit.record(
        "inspection.record",
        subject_type="inspection",
        subject_id=inspection.id,
        area_code=area.code if area is not None else None,
        details={
            "input_kind": check.input_kind,
            "result": check.result,
            "reason": check.reason,
            "card_no": check.card.card_no if check.card is not None else None,
            "person_id": inspection.person_id,
            "dwelling_id": inspection.dwelling_id,
            "offline": place.offline,
        },
    )
    return inspection


def check_offline_time(checked_at: datetime | None, offline: bool) -> datetime:
    """When the check happened: now online; the device's time, within reason, offline."""
    now = utcnow()
    if not offline:
        return now
    if checked_at is None:
        raise InvalidInput(
            "An offline inspection needs the time it was made.",
            errors={"checked_at": ["Required when offline is true."]},
        )
    if checked_at > now + timedelta(minutes=5):
        raise InvalidInput(
            "The inspection time is in the future.",
            errors={"checked_at": ["Must not be in the future."]},
        )
    if checked_at < now - timedelta(days=30):
        raise AppError(
            "Offline inspections are accepted up to 30 days after the check.",
            code="inspection_too_old",
            status=422,
            errors={"checked_at": ["More than 30 days ago."]},
        )
    return checked_at
