"""The on-card record: a fixed byte layout signed with Ed25519 over the chip UID.

One pure module shared by the server (signing), the desk daemon (writing and
reading back) and offline verifiers. ``docs/card-format.md`` documents the
same layout byte by byte for third parties. No personal data is on the card.

Layout (version 1, 113 bytes, integers big-endian)::

    0   2  magic b"AJ"
    2   1  version (1)
    3  16  card_no, ASCII, NUL-padded
   19   8  residence_id, uint64
   27  12  area_code, ASCII, NUL-padded
   39   4  valid_from, days since 1970-01-01, uint32
   43   4  valid_until, days since 1970-01-01, uint32
   47   2  key_id, uint16
   49  64  Ed25519 signature over signing_input(bytes 0..48, uid)
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

MAGIC = b"AJ"
VERSION = 1
CARD_NO_SIZE = 16
AREA_CODE_SIZE = 12
SIGNATURE_SIZE = 64
#: Domain separation: these bytes make a record signature useless for anything else.
SIGNING_CONTEXT = b"Anjuka card record v1\x00"
MAX_UID_SIZE = 32

_BODY = struct.Struct(">2sB16sQ12sIIH")
UNSIGNED_SIZE = _BODY.size
RECORD_SIZE = UNSIGNED_SIZE + SIGNATURE_SIZE
_EPOCH = datetime.date(1970, 1, 1)
_MAX_DAYS = 2**32 - 1


class RecordError(Exception):
    """Base class of every error about an on-card record."""


class RecordFormatError(RecordError, ValueError):
    """The bytes (or the record to encode) do not follow the layout."""


class UnknownKeyError(RecordError):
    """The record names a signing key id the verifier does not know."""


class BadSignatureError(RecordError):
    """The signature does not match the record and UID: forged, altered or copied."""


@dataclass(frozen=True)
class CardRecord:
    """What the chip carries: references only, no personal data."""

    card_no: str
    residence_id: int
    area_code: str
    valid_from: datetime.date
    valid_until: datetime.date
    key_id: int
    version: int = 1


def _text_field(value: str, size: int, name: str) -> bytes:
    if not isinstance(value, str) or not 1 <= len(value) <= size:
        raise RecordFormatError(f"{name} must be 1..{size} characters")
    if not all(0x21 <= ord(c) <= 0x7E for c in value):
        raise RecordFormatError(f"{name} must be printable ASCII without spaces")
    return value.encode("ascii").ljust(size, b"\x00")


def _parse_text(raw: bytes, name: str) -> str:
    text = raw.rstrip(b"\x00")
    if not text or not all(0x21 <= b <= 0x7E for b in text):
        raise RecordFormatError(f"{name} is not NUL-padded printable ASCII")
    return text.decode("ascii")


def _days(value: datetime.date, name: str) -> int:
    if type(value) is not datetime.date:
        raise RecordFormatError(f"{name} must be a datetime.date")
    days = (value - _EPOCH).days
    if not 0 <= days <= _MAX_DAYS:
        raise RecordFormatError(f"{name} is out of range")
    return days


def _date(days: int, name: str) -> datetime.date:
    try:
        return _EPOCH + datetime.timedelta(days=days)
    except OverflowError:
        raise RecordFormatError(f"{name} is out of range") from None


def encode_unsigned(record: CardRecord) -> bytes:
    """Encode ``record`` into the fixed layout without the signature (49 bytes)."""
    if record.version != VERSION:
        raise RecordFormatError(f"unsupported record version {record.version}")
    if not isinstance(record.residence_id, int) or not 0 <= record.residence_id < 2**64:
        raise RecordFormatError("residence_id must fit in uint64")
    if not isinstance(record.key_id, int) or not 0 <= record.key_id < 2**16:
        raise RecordFormatError("key_id must fit in uint16")
    valid_from = _days(record.valid_from, "valid_from")
    valid_until = _days(record.valid_until, "valid_until")
    if valid_until < valid_from:
        raise RecordFormatError("valid_until is before valid_from")
    return _BODY.pack(
        MAGIC,
        VERSION,
        _text_field(record.card_no, CARD_NO_SIZE, "card_no"),
        record.residence_id,
        _text_field(record.area_code, AREA_CODE_SIZE, "area_code"),
        valid_from,
        valid_until,
        record.key_id,
    )


def signing_input(unsigned: bytes, uid: bytes) -> bytes:
    """Return the bytes Ed25519 signs: context, UID length, UID, unsigned record."""
    if not 1 <= len(uid) <= MAX_UID_SIZE:
        raise RecordFormatError(f"uid must be 1..{MAX_UID_SIZE} bytes")
    if len(unsigned) != UNSIGNED_SIZE:
        raise RecordFormatError(f"unsigned record must be {UNSIGNED_SIZE} bytes")
    return SIGNING_CONTEXT + bytes([len(uid)]) + bytes(uid) + bytes(unsigned)


def sign_record(record: CardRecord, uid: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """Encode ``record`` bound to chip ``uid`` and append its signature (113 bytes)."""
    unsigned = encode_unsigned(record)
    return unsigned + private_key.sign(signing_input(unsigned, uid))


def decode_record(data: bytes) -> tuple[CardRecord, bytes]:
    """Parse a signed record into ``(record, signature)`` without checking the signature."""
    data = bytes(data)
    if len(data) != RECORD_SIZE:
        raise RecordFormatError(f"a record is {RECORD_SIZE} bytes, got {len(data)}")
    magic, version, card_no, residence_id, area_code, start, end, key_id = _BODY.unpack(
        data[:UNSIGNED_SIZE]
    )
    if magic != MAGIC:
        raise RecordFormatError("not an Anju e-Card record (bad magic)")
    if version != VERSION:
        raise RecordFormatError(f"unsupported record version {version}")
    for raw, name in ((card_no, "card_no"), (area_code, "area_code")):
        # Bytes after the first NUL must be padding, so one record has one encoding.
        if b"\x00" in raw.rstrip(b"\x00"):
            raise RecordFormatError(f"{name} has a NUL inside its text")
    valid_from = _date(start, "valid_from")
    valid_until = _date(end, "valid_until")
    if valid_until < valid_from:
        raise RecordFormatError("valid_until is before valid_from")
    record = CardRecord(
        card_no=_parse_text(card_no, "card_no"),
        residence_id=residence_id,
        area_code=_parse_text(area_code, "area_code"),
        valid_from=valid_from,
        valid_until=valid_until,
        key_id=key_id,
        version=version,
    )
    return record, data[UNSIGNED_SIZE:]


def verify_record(
    data: bytes, uid: bytes, public_keys: Mapping[int, Ed25519PublicKey]
) -> CardRecord:
    """Decode ``data`` and check its signature for chip ``uid``; return the record.

    Validity dates are not checked here: an expired card is a policy answer
    (``expired``), not a forgery, so the caller compares the dates.
    """
    record, signature = decode_record(data)
    key = public_keys.get(record.key_id)
    if key is None:
        raise UnknownKeyError(f"unknown signing key id {record.key_id}")
    try:
        key.verify(signature, signing_input(bytes(data[:UNSIGNED_SIZE]), uid))
    except InvalidSignature:
        raise BadSignatureError("signature does not match this record and chip") from None
    return record
