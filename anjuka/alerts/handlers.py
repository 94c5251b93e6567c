"""Alerts raised by registry events, inside the event's own transaction.

The registry domains send signals (``anjuka.core.signals``); these handlers
subscribe, so an arrival and the alert it causes commit or roll back
together, and the lower domains never import this one.
"""

from __future__ import annotations

from anjuka.alerts import occupancy
from anjuka.alerts.operations import (
    raise_alert,
    raise_late_registration,
    resolve_if_live,
    resolve_returned,
)
from anjuka.areas.models import Area
from anjuka.auth.models import User
from anjuka.auth.scope import home_area_id
from anjuka.core import signals
from anjuka.dwellings.models import Dwelling, DwellingStatus
from anjuka.residences.models import Residence
from anjuka.transfers.models import Transfer


def on_arrival(residence: Residence, overridden: bool = False, **_: object) -> None:
    """An override, or any arrival into a dwelling that may hold no one."""
    dwelling = residence.dwelling
    if overridden or dwelling.status != DwellingStatus.RENTABLE:
        occupancy.evaluate([dwelling], trigger="override" if overridden else "arrival")
    if residence.late:
        raise_late_registration(residence)


def on_departure(residence: Residence, **_: object) -> None:
    """One resident fewer: an occupancy alert may have lost its cause."""
    occupancy.evaluate([residence.dwelling], trigger="departure", raise_new=False)


def on_policy_change(area: Area, **_: object) -> None:
    """Every dwelling below the area is measured against the new policy."""
    occupancy.evaluate_subtree(area, trigger="policy_changed")


def on_dwelling_change(dwelling: Dwelling, **_: object) -> None:
    """New measures, rooms or status: measure the dwelling again."""
    occupancy.evaluate([dwelling], trigger="dwelling_changed")


def on_card_returned(card: object, **_: object) -> None:
    """A card came back: its residence's card-not-returned alert may have lost its cause.

    The sweep resolves it too; this makes it immediate when the cards domain
    sends ``card_returned``.
    """
    resolve_returned([card.residence_id])  # type: ignore[attr-defined]


def on_transfer_requested(transfer: Transfer, **_: object) -> None:
    """The old dwelling's area is asked to record a departure: its supervisors see it."""
    old = transfer.from_residence
    raise_alert(
        "transfer_requested",
        "transfer",
        transfer.id,
        area_id=old.dwelling.area_id,
        details={
            "from_residence_id": old.id,
            "dwelling_id": old.dwelling_id,
            "to_area_code": transfer.to_dwelling.area.code,
            "due_on": transfer.due_on.isoformat(),
        },
    )


def on_transfer_closed(transfer: Transfer, **_: object) -> None:
    """A completed, cancelled or failed transfer asks nothing of anyone any more."""
    resolve_if_live("transfer_requested", "transfer", transfer.id, f"transfer {transfer.status}")


def on_lookups_throttled(user: User, limit: str, **_: object) -> None:
    """``bulk_lookup``: a user went over the look-up limit; each refusal counts on it.

    Scoped to the area the user's own scope lies in (a manager's estate's
    area), so that area's supervisors see it; an unscoped user's alert is
    for admins only.
    """
    raise_alert(
        "bulk_lookup",
        "user",
        user.id,
        area_id=home_area_id(user),
        details={"username": user.username, "role": user.role, "limit": limit},
    )


def connect() -> None:
    """Subscribe to the registry's signals (idempotent: blinker keeps one per receiver)."""
    signals.residence_arrived.connect(on_arrival)
    signals.residence_departed.connect(on_departure)
    signals.policy_changed.connect(on_policy_change)
    signals.dwelling_changed.connect(on_dwelling_change)
    signals.card_returned.connect(on_card_returned)
    signals.transfer_requested.connect(on_transfer_requested)
    signals.transfer_closed.connect(on_transfer_closed)
    signals.document_lookups_throttled.connect(on_lookups_throttled)
