"""Personal data in responses: masks, and who may ask to see it in clear.

Every personal value is masked unless the caller may see it and asks
(``reveal=true``); a reveal is an audit event naming each field it unmasked.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields

from anjuka.core.errors import Forbidden
from anjuka.core.replica import read_primary
from anjuka.core.security import Identity

#: Roles that may see personal data in clear, on request and audited.
REVEAL_ROLES = frozenset({"admin", "supervisor", "officer"})


def mask(value: str, *, start: int, end: int) -> str:
    """Keep up to ``start`` leading and ``end`` trailing characters, hiding at least half.

    The kept characters shrink with the value (the longer side first, the
    leading one on a tie), so no length shows more than half of itself:
    15 characters keep at most 7, 11 digits at most 5.
    """
    budget = len(value) // 2
    while start + end > budget:
        if start >= end:
            start -= 1
        else:
            end -= 1
    hidden = len(value) - start - end
    return value[:start] + "*" * hidden + (value[len(value) - end :] if end else "")


def mask_name(name: str) -> str:
    """Keep the family name (first character) where that hides at least half: 张**."""
    return mask(name, start=1, end=0) if name else name


def mask_phone(phone: str | None) -> str | None:
    """The last digits, and the first where the length allows: 1******1234."""
    return mask(phone, start=1, end=4) if phone else phone


def check_reveal(identity: Identity, reveal: bool) -> bool:
    """Whether to unmask; asking without the right is refused, not ignored.

    A reveal reads the primary, never a lagging replica: what is shown in
    clear is what the audit event says was shown.
    """
    if reveal and identity.role not in REVEAL_ROLES:
        raise Forbidden("Your role may not see personal data in clear.", code="reveal_not_allowed")
    if reveal:
        read_primary()
    return reveal


class RevealQuerySchema(ma.Schema):
    """``?reveal=true``: ask for personal data in clear."""

    reveal = fields.Boolean(
        load_default=False,
        metadata={"description": "show personal data in clear (audited; not for managers)"},
    )
