"""Domain events. Lower domains send, higher ones subscribe.

Handlers run inside the sender's transaction: the event and its
consequences commit or roll back together.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: sender: the Residence just registered; kwargs: overridden (bool)
residence_arrived = _signals.signal("residence-arrived")
#: sender: the Residence just ended; kwargs: card_returned (bool | None),
#: reason ("departure", "move" or "transfer")
residence_departed = _signals.signal("residence-departed")
#: sender: the Area whose policy changed; kwargs: dwellings (list of affected Dwelling)
policy_changed = _signals.signal("policy-changed")
#: sender: the Dwelling just registered
dwelling_created = _signals.signal("dwelling-created")
#: sender: the Dwelling whose attributes changed
dwelling_changed = _signals.signal("dwelling-changed")
#: sender: the Alert just created (not sent for repeats of a live alert)
alert_raised = _signals.signal("alert-raised")
#: sender: the Card just recorded as returned (its chip erased at the desk)
card_returned = _signals.signal("card-returned")
#: sender: the Transfer just requested
transfer_requested = _signals.signal("transfer-requested")
#: sender: the Transfer just completed, cancelled or failed
transfer_closed = _signals.signal("transfer-closed")
#: sender: the User whose look-ups by document number went over the limit;
#: kwargs: limit (the figure, e.g. "30 per 1 minute")
document_lookups_throttled = _signals.signal("document-lookups-throttled")
