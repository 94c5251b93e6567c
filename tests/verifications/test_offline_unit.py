"""cardreader.offline on its own: no app, no database, a bundle signed here."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardreader.offline import (
    BundleError,
    BundleSignatureError,
    RevocationList,
    canonical_bytes,
    record_digest,
    verify,
)
from cardreader.record import CardRecord, sign_record

UID = bytes.fromhex("04a1b2c3d4e5f6")
NOW = dt.datetime(2026, 11, 29, 4, 0, tzinfo=dt.UTC)
SERVER = Ed25519PrivateKey.generate()


def public(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def bundle(
    revoked: list[str],
    *,
    signer: Ed25519PrivateKey = SERVER,
    withdrawn: list[str] | None = None,
    **extra: object,
) -> dict:
    body = {
        "format": 2,
        "issued_at": "2026-11-29T00:00:00Z",
        "expires_at": "2026-11-30T00:00:00Z",
        "since": None,
        "cursor": "c1",
        "keys": [{"id": 3, "algorithm": "Ed25519", "public_key": public(SERVER)}],
        "revoked": revoked,
        "withdrawn": withdrawn or [],
        "signed_by": 3,
        **extra,
    }
    body["signature"] = base64.b64encode(signer.sign(canonical_bytes(body))).decode()
    return body


def record(card_no: str = "AJ00000012Q", until: dt.date = dt.date(2027, 1, 1), key_id: int = 3):
    return sign_record(
        CardRecord(card_no, 42, "330203", dt.date(2026, 1, 1), until, key_id), UID, SERVER
    )


def test_the_answers():
    fresh = bundle(["AJ00000021O"])
    assert verify(record(), UID, fresh, NOW).result == "valid"
    assert verify(record("AJ00000021O"), UID, fresh, NOW).result == "revoked"
    assert verify(record(until=dt.date(2026, 11, 28)), UID, fresh, NOW).result == "expired"
    # The last day of validity is still valid in Shanghai even when UTC is a day behind.
    late_evening = dt.datetime(2026, 11, 28, 17, 0, tzinfo=dt.UTC)  # 01:00 on the 29th there
    assert verify(record(until=dt.date(2026, 11, 29)), UID, fresh, late_evening).result == "valid"
    assert verify(record(until=dt.date(2026, 11, 28)), UID, fresh, late_evening).result == "expired"
    assert verify(record(key_id=9), UID, fresh, NOW).reason == "unknown_key"
    assert verify(b"\x00" * 113, UID, fresh, NOW).reason == "not_a_record"
    assert verify(None, UID, fresh, NOW).result == "unknown"
    assert verify(record(), bytes.fromhex("04a1b2c3"), fresh, NOW).result == "forged"


def test_the_bundle_must_be_whole_and_signed():
    with pytest.raises(BundleSignatureError):
        verify(record(), UID, bundle([], signer=Ed25519PrivateKey.generate()), NOW)
    trusted = {3: Ed25519PrivateKey.generate().public_key()}
    with pytest.raises(BundleSignatureError):
        verify(record(), UID, bundle([]), NOW, trusted_keys=trusted)
    broken = bundle([])
    del broken["expires_at"]
    with pytest.raises(BundleError, match="expires_at"):
        verify(record(), UID, broken, NOW)
    with pytest.raises(ValueError, match="time zone"):
        verify(record(), UID, bundle([]), NOW.replace(tzinfo=None))


def test_a_key_rotation_arrives_signed_by_the_old_key():
    new_key = Ed25519PrivateKey.generate()
    state = RevocationList.from_bundles([bundle([])], {3: SERVER.public_key()})
    delta = bundle(
        [],
        since="c1",
        cursor="c2",
        keys=[
            {"id": 3, "algorithm": "Ed25519", "public_key": public(SERVER)},
            {"id": 4, "algorithm": "Ed25519", "public_key": public(new_key)},
        ],
    )
    state.apply(delta)
    rotated = sign_record(
        CardRecord("AJ00000030M", 7, "330203", dt.date(2026, 6, 1), dt.date(2027, 6, 1), 4),
        UID,
        new_key,
    )
    assert verify(rotated, UID, state, NOW).result == "valid"


def test_a_withdrawn_record_is_refused_on_its_own_chip_and_only_that_record():
    """A record signed for this chip that never became the card: listed by its digest."""
    orphan = record("AJ00000012Q", until=dt.date(2027, 1, 1))
    real = record("AJ00000012Q", until=dt.date(2026, 12, 31))  # the card as issued later
    state = RevocationList.from_bundles([bundle([], withdrawn=[record_digest(orphan)])])
    refused = verify(orphan, UID, state, NOW)
    assert (refused.result, refused.reason, refused.card_no) == (
        "unknown",
        "never_activated",
        "AJ00000012Q",
    )
    assert verify(real, UID, state, NOW).result == "valid"
    # Revoked says more, and an expired orphan drops out of the list: expired by its date.
    assert (
        verify(orphan, UID, bundle(["AJ00000012Q"], withdrawn=[record_digest(orphan)]), NOW).result
        == "revoked"
    )
    # Withdrawn records accumulate over deltas, as revocations do.
    later = record("AJ00000021O")
    state.apply(bundle([], since="c1", cursor="c2", withdrawn=[record_digest(later)]))
    assert state.withdrawn == {record_digest(orphan), record_digest(later)}
    assert verify(later, UID, state, NOW).reason == "never_activated"
    assert record_digest(orphan) == hashlib.sha256(orphan).hexdigest()


def test_bundles_of_another_format_or_with_bad_withdrawals_are_refused():
    old = bundle([])
    old["format"] = 1
    with pytest.raises(BundleError, match="format 2"):
        verify(record(), UID, old, NOW)
    for bad in (["AB" * 32], ["00"], [7]):
        with pytest.raises(BundleError, match="withdrawn"):
            verify(record(), UID, bundle([], withdrawn=bad), NOW)  # type: ignore[arg-type]
    missing = bundle([])
    del missing["withdrawn"]
    with pytest.raises(BundleError, match="withdrawn"):
        verify(record(), UID, missing, NOW)


def test_validity_is_counted_in_the_zone_the_bundle_names():
    """A registry elsewhere (ANJUKA_TIMEZONE) tells its zone in the signed bundle."""
    late_evening = dt.datetime(2026, 11, 28, 17, 0, tzinfo=dt.UTC)  # 01:00 on the 29th in Shanghai
    card = record(until=dt.date(2026, 11, 28))
    assert verify(card, UID, bundle([]), late_evening).result == "expired"  # no zone: Shanghai's
    western = bundle([], timezone="America/Los_Angeles")  # 09:00 on the 28th there
    assert RevocationList.from_bundles([western]).timezone == "America/Los_Angeles"
    assert verify(card, UID, western, late_evening).result == "valid"
    assert verify(card, UID, bundle([], timezone="Asia/Shanghai"), late_evening).result == "expired"
