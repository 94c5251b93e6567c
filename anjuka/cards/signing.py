"""What the server puts on a chip: the signed record and the per-card keys.

The private signing key never leaves the server. Per-card keys are derived
with HKDF-SHA256 from a card master key, the chip UID and the key's purpose,
so the server can derive them again for an erase years later without storing
them; they travel only inside the job that needs them and are never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from anjuka.cards.models import CardType
from anjuka.core.errors import AppError
from anjuka.core.keys import keyring
from cardreader.protocol.profiles import CPU_PROFILE, MIFARE_PROFILE
from cardreader.record import AREA_CODE_SIZE, CardRecord, sign_record

#: Domain separation of the derived keys; changing it changes every card's keys.
KEY_CONTEXT = b"Anjuka card key v1\x00"
#: Per-card keys of each card type: purpose and length in bytes.
DERIVED_KEYS: dict[str, tuple[tuple[str, int], ...]] = {
    CardType.CPU: (("write_key", 16), ("internal_key", 16)),
    CardType.MIFARE1K: (("key_b", 6),),
}


def derive_card_key(master: bytes, uid: bytes, card_type: str, purpose: str, length: int) -> bytes:
    """HKDF-SHA256(master; info = context, card type, purpose, UID) -> ``length`` bytes."""
    info = KEY_CONTEXT + card_type.encode() + b"\x00" + purpose.encode() + b"\x00" + uid
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


def card_keys(uid: bytes, card_type: str, master_key_id: str | None) -> dict[str, str]:
    """The ``keys`` object of a job (docs/job-protocol.md "Keys sent with a job")."""
    _, masters = keyring().card_master
    master = None if master_key_id is None else masters.get(master_key_id)
    if master is None:
        # The key file lost a master that cards in the field were written with.
        raise AppError(
            f"Card master key {master_key_id!r} is not in the key file any more.",
            code="card_key_unavailable",
            status=503,
        )
    keys = {
        name: derive_card_key(master, uid, card_type, name, length).hex()
        for name, length in DERIVED_KEYS[card_type]
    }
    if card_type == CardType.CPU:
        return {"transport_key": CPU_PROFILE.default_transport_key.hex(), **keys}
    # MIFARE Classic: key A is the public read key, so reading needs no secret;
    # Crypto1 is broken anyway and the record's signature carries the trust.
    return {
        "transport_key": MIFARE_PROFILE.default_transport_key.hex(),
        "key_a": MIFARE_PROFILE.public_read_key.hex(),
        **keys,
    }


@dataclass(frozen=True)
class SignedRecord:
    """A record signed for one chip, with what the card row keeps of it."""

    data: bytes
    key_id: int
    valid_until: date


def sign_card_record(
    card_no: str,
    residence_id: int,
    area_code: str,
    uid: bytes,
    today: date,
    validity_days: int,
) -> SignedRecord:
    """Sign the record of ``card_no`` for chip ``uid`` with the active signing key."""
    if len(area_code) > AREA_CODE_SIZE:
        raise AppError(
            f"Area code {area_code!r} is longer than the {AREA_CODE_SIZE} characters a card holds.",
            code="area_code_too_long",
            status=409,
        )
    ring = keyring()
    key_id = ring.active_signing_key_id
    valid_until = today + timedelta(days=validity_days)
    record = CardRecord(
        card_no=card_no,
        residence_id=residence_id,
        area_code=area_code,
        valid_from=today,
        valid_until=valid_until,
        key_id=key_id,
    )
    data = sign_record(record, uid, ring.signing_private_key(key_id))
    return SignedRecord(data, key_id, valid_until)
