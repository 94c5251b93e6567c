"""Shared helpers of the card reader tests: keys, records, simulated cards.

A uniquely named module, not ``conftest``: several folders have a conftest,
and ``from conftest import`` could pick up the wrong one.
"""

from __future__ import annotations

import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cardreader.record import CardRecord, sign_record
from cardreader.sim.cpu import SimCpuCard
from cardreader.sim.mifare import SimMifareCard

CPU_KEYS = {"transport_key": "ff" * 16, "write_key": "a1" * 16, "internal_key": "b2" * 16}
MIFARE_KEYS = {"transport_key": "ff" * 6, "key_a": b"ANJUKA".hex(), "key_b": "c3d4e5f60718"}
JOB_KEYS = {"cpu": CPU_KEYS, "mifare1k": MIFARE_KEYS}
SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
KEY_ID = 7


def make_record(uid: bytes, residence_id: int = 42, card_no: str = "AJ00000012Q") -> bytes:
    """A record signed for ``uid`` with the test signing key."""
    record = CardRecord(
        card_no=card_no,
        residence_id=residence_id,
        area_code="330203",
        valid_from=datetime.date(2026, 1, 1),
        valid_until=datetime.date(2027, 12, 31),
        key_id=KEY_ID,
    )
    return sign_record(record, uid, SIGNING_KEY)


def new_sim(card_type: str, uid: bytes | None = None) -> SimCpuCard | SimMifareCard:
    """A blank simulated card of ``card_type``."""
    return SimCpuCard(uid) if card_type == "cpu" else SimMifareCard(uid)
