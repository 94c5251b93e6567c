"""Refusals in words: every error code the registry answers, as a translatable sentence.

The API's messages are English for machines and logs; a page shows the
sentence for the refusal's code in the reader's language, filled in with
the numbers the refusal carries (a full dwelling's area, rooms and rule).
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as l_

from anjuka.core.errors import AppError

#: One sentence per code; ``%(name)s`` placeholders come from the refusal's details.
SENTENCES = {
    "account_disabled": l_("This account is disabled. Ask an administrator."),
    "alert_acknowledged": l_("This alert has already been acknowledged."),
    "alert_not_found": l_("There is no such alert in your areas."),
    "alert_resolved": l_("This alert has already been resolved."),
    "already_departed": l_("This residence has already ended."),
    "already_registered": l_("This person is already registered at a dwelling."),
    "area_code_too_long": l_("The area code is too long to be written on a card."),
    "area_exists": l_("An area with this code exists already."),
    "area_not_found": l_("There is no such area in your scope."),
    "arrival_in_future": l_("The arrival date is in the future."),
    "card_exists": l_("This resident already has a card (%(card_no)s)."),
    "card_not_found": l_("There is no such card."),
    "card_pending": l_("The card is still being written."),
    "card_returned": l_("This card has been returned."),
    "card_revoked": l_("This card has been revoked."),
    "csrf_failed": l_("The form is out of date. Load the page again."),
    "dwelling_not_found": l_("There is no such dwelling in your scope."),
    "estate_not_found": l_("There is no such estate in your scope."),
    "family_exception_not_allowed": l_("This area's rules have no exception for families."),
    "forbidden": l_("Your role may not do this."),
    "internal_error": l_(
        "Something went wrong on the server. Try again, or tell the administrator."
    ),
    "invalid_card_no": l_("This is not a valid card number (check the last character)."),
    "invalid_credentials": l_("Wrong username or password."),
    "invalid_family_exception": l_("The family member must live in the same dwelling now."),
    "invalid_id_number": l_("This ID number is not valid (check the last character)."),
    "invalid_scope": l_("This scope does not fit the role."),
    "invalid_value": l_("A value is out of range."),
    "job_not_found": l_("There is no such card job."),
    "last_admin": l_("The last administrator cannot be disabled or changed."),
    "not_empty": l_("The registry already has data."),
    "not_found": l_("There is no such page or record."),
    "not_registered": l_("This person is not registered anywhere: register the arrival instead."),
    "override_not_allowed": l_("Only a supervisor may register beyond capacity."),
    "payload_too_large": l_("The request is too large."),
    "person_not_found": l_("No person with that document."),
    "reader_not_found": l_("There is no such card reader for this desk."),
    "reader_required": l_("Choose the card reader to use."),
    "registered_elsewhere": l_(
        "This person is registered at a dwelling outside your scope. Request a transfer:"
        " the desk of that dwelling completes it when it records the departure."
    ),
    "residence_not_found": l_("There is no such residence in your scope."),
    "reveal_not_allowed": l_("Your role may not see personal data in clear."),
    "sign_in_throttled": l_("Too many failed sign-ins. Try again in %(retry_after)s seconds."),
    "status_change_not_allowed": l_("Only a supervisor may declare a dwelling illegal or lift it."),
    "too_many_attempts": l_("Too many wrong passwords. Try again in %(retry_after)s seconds."),
    "too_many_lookups": l_(
        "Too many look-ups by document number. Try again in %(retry_after)s seconds."
    ),
    "too_many_requests": l_("Too many requests. Try again later."),
    "transfer_closed": l_("This transfer is no longer waiting."),
    "transfer_completion_not_allowed": l_(
        "Only a supervisor of the new area may complete a transfer."
    ),
    "transfer_not_due": l_("The old desk has until %(due_on)s to record the departure."),
    "transfer_not_found": l_("There is no such transfer."),
    "transfer_pending": l_("A transfer of this person is already waiting for the old desk."),
    "try_again": l_("The registry was busy. Send it again."),
    "uid_in_use": l_("This chip already carries another resident's card."),
    "unauthorized": l_("Please sign in."),
    "unknown_role": l_("There is no such role."),
    "user_exists": l_("A user with this name exists already."),
    "user_not_found": l_("There is no such user."),
    "validation_error": l_("Some fields need correcting."),
    "weak_password": l_("Passwords need at least 10 characters."),
    "wrong_password": l_("The current password is wrong."),
}


def _dwelling_full(details: dict[str, Any]) -> str:
    limits = details.get("limits") or {}
    policy = details.get("policy") or {}
    if limits.get("reason"):
        status = {"illegal": _("an illegal structure"), "not_for_rent": _("not for rent")}.get(
            limits["reason"], limits["reason"]
        )
        return _("This dwelling is %(status)s: it may hold no one.", status=status)
    basis = _("building") if limits.get("basis") == "building" else _("usable")
    return _(
        "The dwelling is full: %(occupants)s people live here and it may hold %(capacity)s."
        " Its %(area)s m² of %(basis)s area allow %(area_limit)s at %(per_person)s m² each;"
        " its %(rooms)s rooms allow %(room_limit)s at %(per_room)s per room.",
        occupants=details.get("occupants", "?"),
        capacity=details.get("capacity", "?"),
        area=limits.get("area_used_m2") or "?",
        basis=basis,
        area_limit=limits.get("area_limit", "?"),
        per_person=policy.get("min_area_per_person_m2", "?"),
        rooms=details.get("rooms", "?"),
        room_limit=limits.get("room_limit", "?"),
        per_room=policy.get("max_persons_per_room", "?"),
    )


def explain(refusal: AppError) -> str:
    """The refusal as a sentence in the reader's language."""
    details = dict(refusal.extra)
    if refusal.code == "dwelling_full":
        return _dwelling_full(details)
    sentence = SENTENCES.get(refusal.code)
    if sentence is None:
        return _("The request was refused (%(code)s).", code=refusal.code)
    try:
        return (
            str(sentence) % {k: v for k, v in details.items()}
            if "%(" in str(sentence)
            else str(sentence)
        )
    except (KeyError, ValueError):
        return _("The request was refused (%(code)s).", code=refusal.code)
