"""Patrol: an officer checks a card or a document on site, on a phone, online or offline.

Online, the page calls the verification operation of the API: one check,
one inspection, its alerts, under the same roles, scope and masks. The
result reads at arm's length, in colour, symbol and words.

Offline, the page is an installable web app (a manifest and a service
worker under ``/patrol/``): ``patrol.js`` keeps the signed offline bundle of
``GET /api/v1/offline-bundle`` in IndexedDB, verifies its signature and the
cards against it in the browser with the rules of ``anjuka-patrol``
(``cardreader/offline.py``), and queues the inspections to upload through
``POST /api/v1/verifications`` once the network is back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from flask import redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as l_
from werkzeug.wrappers import Response

from anjuka.cards.models import Card
from anjuka.core.db import db
from anjuka.core.errors import InvalidInput, NotFound
from anjuka.core.privacy import mask_name
from anjuka.core.security import Identity, public, require_identity, requires
from anjuka.core.time import registry_zone
from anjuka.core.transactions import retry_conflicts
from anjuka.dwellings.models import Dwelling
from anjuka.dwellings.permissions import dwelling_filter, get_dwelling_or_404
from anjuka.persons.limits import lookups_in_forms
from anjuka.persons.models import DOCUMENT_TYPES
from anjuka.residences.models import Residence
from anjuka.verifications import operations
from anjuka.verifications.api import PATROL, inspection_filter
from anjuka.verifications.models import Inspection
from anjuka.web.pages import attempt, blp, render

#: How many of the officer's own inspections the page lists.
RECENT = 10

#: Each result in words: a headline and what to do. Never colour alone.
RESULT_WORDS = {
    "valid": (l_("Valid"), l_("The card is good and the resident is registered.")),
    "revoked": (l_("Revoked"), l_("This card is no longer valid. Keep it and report it.")),
    "expired": (l_("Expired"), l_("The card is past its validity. The resident must renew it.")),
    "wrong_dwelling": (
        l_("Registered elsewhere"),
        l_("The resident is registered at another dwelling."),
    ),
    "unknown": (l_("Unknown"), l_("The registry knows no current registration for this.")),
    "forged": (l_("Forged"), l_("The card's record is not genuine. Keep the card.")),
    "clone_suspected": (
        l_("Suspected copy"),
        l_("This card looks copied or was seen elsewhere. Keep the card."),
    ),
}
#: The symbol beside each result, for readers who cannot tell the colours apart.
SYMBOLS = {
    "valid": "✓",
    "revoked": "✕",
    "forged": "✕",
    "clone_suspected": "✕",
    "expired": "!",
    "wrong_dwelling": "!",
    "unknown": "?",
}
#: Why, in words (the operation's ``reason`` codes, and a card's revocation reasons).
REASON_WORDS = {
    "no_such_card": l_("No card has this number."),
    "no_such_person": l_("No person with that document."),
    "not_registered": l_("The person is not registered at any dwelling now."),
    "card_not_active": l_("The card was never activated."),
    "never_activated": l_("The card was never activated."),
    "blank": l_("The chip holds no record."),
    "not_a_record": l_("The chip holds no Anju e-Card record."),
    "unknown_key": l_("The record is signed with an unknown key."),
    "bad_signature": l_("The record's signature does not match this chip."),
    "record_copied": l_("A genuine record copied onto another chip."),
    "not_this_cards_chip": l_("The record belongs to another chip."),
    "internal_authenticate_failed": l_("The chip failed its authentication."),
    "impossible_travel": l_("The same card was checked too far away a short time ago."),
    "departed": l_("The resident has departed."),
    "lost": l_("The card was reported lost."),
    "damaged": l_("The card was reported damaged."),
    "replaced": l_("The card was replaced by a new one."),
    "returned": l_("The card was returned."),
    "listed": l_("The card is on the revocation list."),
    "not_listed": l_("The card number is not on the revocation list."),
}
INPUT_WORDS = {
    "card_no": l_("card number"),
    "chip": l_("chip record"),
    "document": l_("ID document"),
}
DOCUMENT_WORDS = {
    "resident_id": l_("Resident ID card"),
    "passport": l_("Passport"),
    "hk_macao_permit": l_("Hong Kong and Macao permit"),
    "taiwan_permit": l_("Taiwan permit"),
    "foreign_permanent_id": l_("Foreign permanent resident ID"),
}
_HEX_NOISE = re.compile(r"[\s:-]")
_HEX = re.compile(r"^(?:[0-9a-f]{2})+$")
#: The largest record a chip's layout slot holds (as the API's schema).
MAX_RECORD_BYTES = 224
MAX_UID_BYTES = 32

#: Document checks count toward the same per-user look-up limit as the API's.
document_lookups = lookups_in_forms(lambda: request.form.get("kind") == "document")


@dataclass
class Shown:
    """One inspection as the page shows it: from the records, masked as in the API."""

    inspection: Inspection
    card: Card | None
    residence: Residence | None
    visible: bool

    @property
    def headline(self) -> str:
        return str(RESULT_WORDS[self.inspection.result][0])

    @property
    def advice(self) -> str:
        return str(RESULT_WORDS[self.inspection.result][1])

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.inspection.result]

    @property
    def why(self) -> str | None:
        reason = self.inspection.reason
        return str(REASON_WORDS[reason]) if reason in REASON_WORDS else None

    @property
    def resident_name(self) -> str | None:
        if not self.visible or self.residence is None:
            return None
        return mask_name(self.residence.person.name)

    @property
    def dwelling(self) -> Dwelling | None:
        return self.residence.dwelling if self.visible and self.residence is not None else None


def _visible(identity: Identity, residence: Residence | None) -> bool:
    """Whether the residence lies in the caller's scope (the API's rule for showing details)."""
    if residence is None:
        return False
    found = db.session.scalar(
        sa.select(Dwelling.id).where(
            Dwelling.id == residence.dwelling_id, dwelling_filter(identity)
        )
    )
    return found is not None


def _shown(identity: Identity, inspection: Inspection) -> Shown:
    card = db.session.get(Card, inspection.card_id) if inspection.card_id else None
    residence = (
        db.session.get(Residence, inspection.residence_id) if inspection.residence_id else None
    )
    return Shown(inspection, card, residence, _visible(identity, residence))


def _recent(identity: Identity) -> list[tuple[Inspection, str | None]]:
    """The caller's own latest inspections, with the card number checked."""
    rows = db.session.execute(
        sa.select(Inspection, Card.card_no)
        .outerjoin(Card, Inspection.card_id == Card.id)
        .where(Inspection.officer_id == identity.id)
        .order_by(Inspection.checked_at.desc(), Inspection.id.desc())
        .limit(RECENT)
    ).all()
    return [(inspection, card_no) for inspection, card_no in rows]


def _offline_words() -> str:
    """What patrol.js says offline, in the page's language (JSON for the script)."""
    words = {
        "results": {
            code: {"headline": str(head), "advice": str(advice), "symbol": SYMBOLS[code]}
            for code, (head, advice) in RESULT_WORDS.items()
        },
        "reasons": {code: str(text) for code, text in REASON_WORDS.items()},
        "offline_note": _(
            "Checked offline against the bundle issued %(issued)s."
            " The registry confirms it when the inspection is uploaded."
        ),
        "card_no": _("Card number"),
        "valid_until": _("Valid until"),
        "checked_at": _("Checked at"),
        "bundle_none": _("No offline bundle on this phone yet. Connect to fetch one."),
        "bundle_ok": _(
            "Offline bundle issued %(issued)s, good until %(expires)s: %(revoked)s revoked cards."
        ),
        "bundle_expired": _(
            "The offline bundle expired at %(expires)s. Connect to fetch a fresh one"
            " before checking cards offline."
        ),
        "bundle_bad": _("The offline bundle could not be verified: it is not used."),
        "queued": _("Inspections waiting to upload: %(count)s."),
        "uploaded": _("Uploaded %(count)s inspections made offline."),
        "rejected": _("The registry refused %(count)s inspections made offline."),
        "sign_in_to_upload": _("Sign in again to upload the inspections made offline."),
        "online": _("Online: checks go to the registry."),
        "offline": _("Offline: checks use the bundle on this phone."),
        "unreachable": _("The registry cannot be reached: checks use the bundle on this phone."),
        "invalid_card_no": _("This is not a valid card number (check the last character)."),
        "no_document_offline": _("ID numbers can only be checked online."),
        "bad_hex": _("The UID and the record are hexadecimal bytes."),
        "refused_expired": _(
            "Refused: the offline bundle expired at %(expires)s."
            " Connect to fetch a fresh one before checking cards offline."
        ),
    }
    # Safe inside <script type="application/json">: no "</" can close the element.
    return json.dumps(words, ensure_ascii=False).replace("</", "<\\/")


def _page(status: int = 200, **context: object) -> tuple[str, int]:
    identity = require_identity()
    zone = registry_zone()
    return render(
        "web/patrol/patrol.html",
        status=status,
        recent=_recent(identity),
        result_words=RESULT_WORDS,
        symbols=SYMBOLS,
        input_words=INPUT_WORDS,
        document_words=DOCUMENT_WORDS,
        document_types=DOCUMENT_TYPES,
        zone=zone,
        offline_words=_offline_words(),
        user_id=identity.id,
        **context,
    )


@blp.route("/patrol/", methods=["GET"])
@requires(*PATROL)
def patrol() -> tuple[str, int]:
    """The patrol page: the check form, the officer's recent inspections, the offline state."""
    form = {"dwelling_id": request.args.get("dwelling_id", "")}
    return _page(form=form, kind=request.args.get("kind", "card_no"))


def _dwelling(text: str) -> Dwelling | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 10:
        raise NotFound("No such dwelling.", code="dwelling_not_found")
    return get_dwelling_or_404(int(text))


def _headcount(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > 1000:
        raise InvalidInput(
            "The head count is a number of people.",
            code="invalid_value",
            errors={"observed_headcount": ["0 to 1000."]},
        )
    return int(text)


def _hex(text: str, limit: int, name: str, *, allow_empty: bool = False) -> str:
    value = _HEX_NOISE.sub("", text).lower()
    if (not value and allow_empty) or (_HEX.match(value) and len(value) <= 2 * limit):
        return value
    raise InvalidInput("Not hex bytes.", code="invalid_value", errors={name: ["Not hex bytes."]})


def _check(identity: Identity, kind: str) -> operations.Check:
    form = request.form
    if kind == "document":
        document_type = form.get("document_type", "resident_id")
        if document_type not in DOCUMENT_TYPES:
            raise InvalidInput("Unknown document type.", code="invalid_value")
        return operations.check_document(document_type, form.get("document_number", "").strip())
    if kind == "chip":
        uid = _hex(form.get("uid", ""), MAX_UID_BYTES, "uid")
        record = _hex(form.get("record", ""), MAX_RECORD_BYTES, "record", allow_empty=True)
        return operations.check_chip(identity, uid, record)
    return operations.check_card_no(form.get("card_no", "").strip().upper())


def _verify(identity: Identity, kind: str) -> Inspection:
    """One check through the API's operations: judged, recorded, alerts raised."""
    dwelling = _dwelling(request.form.get("dwelling_id", ""))
    headcount = _headcount(request.form.get("observed_headcount", ""))
    check = _check(identity, kind)
    place = operations.Place(
        checked_at=operations.check_offline_time(None, False),
        dwelling=dwelling,
        observed_headcount=headcount,
    )
    return operations.record_inspection(identity, check, place)


@blp.route("/patrol/verify", methods=["POST"])
@document_lookups
@requires(*PATROL)
@retry_conflicts
def patrol_verify() -> Response | tuple[str, int]:
    """Check what the officer entered; the result on its own page (so a reload repeats nothing)."""
    identity = require_identity()
    kind = request.form.get("kind", "card_no")
    if kind not in INPUT_WORDS:
        kind = "card_no"
    form = {k: v for k, v in request.form.items() if k not in ("csrf_token", "document_number")}
    if (
        request.form.get("observed_headcount", "").strip()
        and not request.form.get("dwelling_id", "").strip()
    ):
        return _page(
            status=422,
            form=form,
            kind=kind,
            error=_("A head count needs the number of the dwelling it was counted in."),
        )
    tried = attempt(lambda: _verify(identity, kind))
    if tried.refusal is not None or tried.result is None:
        status = tried.refusal.status if tried.refusal is not None else 500
        return _page(status=status, form=form, kind=kind, error=tried.message)
    target = url_for("web.patrol_inspection", inspection_id=tried.result.id)
    return redirect(target, code=303)


@blp.route("/patrol/verify", methods=["GET"])
@requires(*PATROL)
def patrol_verify_again() -> Response:
    """Where signing in again after a lapsed session lands: the form, afresh."""
    return redirect(url_for("web.patrol"))


@blp.route("/patrol/inspections/<int:inspection_id>", methods=["GET"])
@requires(*PATROL)
def patrol_inspection(inspection_id: int) -> tuple[str, int]:
    """One inspection's result, large, with the form for the next check below it."""
    identity = require_identity()
    inspection = db.session.scalar(
        sa.select(Inspection).where(Inspection.id == inspection_id, inspection_filter(identity))
    )
    if inspection is None:
        raise NotFound("There is no such inspection in your areas.", code="not_found")
    # The next check is most likely at the same door: keep the dwelling the officer named.
    form = {"dwelling_id": str(inspection.dwelling_id or "")}
    return _page(shown=_shown(identity, inspection), form=form, kind=inspection.input_kind)


@blp.route("/patrol/manifest.webmanifest", methods=["GET"])
@public
def patrol_manifest() -> Response:
    """The web app's manifest: the patrol page installs on a phone's home screen."""
    manifest = {
        "name": _("Anju e-Card patrol"),
        "short_name": _("Patrol"),
        "start_url": url_for("web.patrol"),
        "scope": url_for("web.patrol"),
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#0b5394",
        "icons": [
            {
                "src": url_for("web.static", filename="patrol-icon.svg"),
                "sizes": "any",
                "type": "image/svg+xml",
                "purpose": "any",
            }
        ],
    }
    return Response(json.dumps(manifest, ensure_ascii=False), mimetype="application/manifest+json")


@blp.route("/patrol/sw.js", methods=["GET"])
@public
def patrol_service_worker() -> Response:
    """The service worker, served under /patrol/ so that its scope covers the patrol page."""
    script = (Path(str(blp.static_folder)) / "sw.js").read_text(encoding="utf-8")
    response = Response(script, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    return response
