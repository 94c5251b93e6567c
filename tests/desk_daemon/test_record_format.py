"""The on-card record: layout, signing input, verification."""

import contextlib
import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from cardreader import record as rec
from cardreader.record import (
    BadSignatureError,
    CardRecord,
    RecordError,
    RecordFormatError,
    UnknownKeyError,
    decode_record,
    encode_unsigned,
    sign_record,
    signing_input,
    verify_record,
)

UID = bytes.fromhex("04a1b2c3")
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
RECORD = CardRecord(
    card_no="AJ00000012Q",
    residence_id=123456789,
    area_code="330203001",
    valid_from=datetime.date(2026, 1, 1),
    valid_until=datetime.date(2027, 1, 1),
    key_id=3,
)


def test_layout_is_fixed_and_matches_documented_bytes():
    unsigned = encode_unsigned(RECORD)
    assert len(unsigned) == 49
    assert unsigned.hex() == (
        "414a01"
        + b"AJ00000012Q".ljust(16, b"\0").hex()
        + "00000000075bcd15"
        + b"330203001".ljust(12, b"\0").hex()
        + f"{(RECORD.valid_from - datetime.date(1970, 1, 1)).days:08x}"
        + f"{(RECORD.valid_until - datetime.date(1970, 1, 1)).days:08x}"
        + "0003"
    )


def test_sign_and_verify_roundtrip():
    data = sign_record(RECORD, UID, KEY)
    assert len(data) == rec.RECORD_SIZE == 113
    assert verify_record(data, UID, {3: KEY.public_key()}) == RECORD
    decoded, signature = decode_record(data)
    assert decoded == RECORD
    assert signature == data[49:]


def test_signing_input_is_domain_separated_and_binds_uid():
    unsigned = encode_unsigned(RECORD)
    message = signing_input(unsigned, UID)
    assert message == b"Anjuka card record v1\x00" + b"\x04" + UID + unsigned
    # A length prefix keeps uid||record unambiguous.
    assert signing_input(unsigned, UID + b"\x00") != message


def test_copy_onto_another_chip_fails():
    data = sign_record(RECORD, UID, KEY)
    with pytest.raises(BadSignatureError):
        verify_record(data, bytes.fromhex("04a1b2c4"), {3: KEY.public_key()})


@pytest.mark.parametrize("position", [0, 2, 5, 20, 30, 40, 45, 48, 60, 112])
def test_any_altered_byte_is_rejected(position):
    data = bytearray(sign_record(RECORD, UID, KEY))
    data[position] ^= 0x01
    with pytest.raises(RecordError):
        verify_record(bytes(data), UID, {3: KEY.public_key()})


def test_unknown_key_and_wrong_key():
    data = sign_record(RECORD, UID, KEY)
    with pytest.raises(UnknownKeyError):
        verify_record(data, UID, {4: KEY.public_key()})
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(BadSignatureError):
        verify_record(data, UID, {3: other})


@pytest.mark.parametrize(
    "changes",
    [
        {"card_no": ""},
        {"card_no": "X" * 17},
        {"card_no": "AJ 1"},
        {"card_no": "AJ\u00e9"},
        {"area_code": "1" * 13},
        {"residence_id": -1},
        {"residence_id": 2**64},
        {"key_id": 2**16},
        {"valid_until": datetime.date(2025, 12, 31)},
        {"valid_from": datetime.date(1969, 12, 31)},
        {"version": 2},
    ],
)
def test_encode_rejects_out_of_layout_values(changes):
    with pytest.raises(RecordFormatError):
        encode_unsigned(CardRecord(**{**RECORD.__dict__, **changes}))


def test_decode_rejects_malformed_bytes():
    good = sign_record(RECORD, UID, KEY)
    with pytest.raises(RecordFormatError):
        decode_record(good[:-1])
    with pytest.raises(RecordFormatError):
        decode_record(b"XX" + good[2:])
    with pytest.raises(RecordFormatError):
        decode_record(good[:2] + b"\x02" + good[3:])
    nul_inside = bytearray(good)
    nul_inside[5] = 0
    with pytest.raises(RecordFormatError):
        decode_record(bytes(nul_inside))
    with pytest.raises(RecordFormatError):
        decode_record(bytes(rec.RECORD_SIZE))


def test_bad_uid_length():
    with pytest.raises(RecordFormatError):
        sign_record(RECORD, b"", KEY)
    with pytest.raises(RecordFormatError):
        sign_record(RECORD, bytes(33), KEY)


ascii_text = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1)


@given(
    card_no=ascii_text.filter(lambda s: len(s) <= 16),
    residence_id=st.integers(0, 2**64 - 1),
    area_code=ascii_text.filter(lambda s: len(s) <= 12),
    start=st.dates(datetime.date(1970, 1, 1), datetime.date(9000, 1, 1)),
    days=st.integers(0, 3650),
    key_id=st.integers(0, 2**16 - 1),
    uid=st.binary(min_size=1, max_size=10),
)
def test_roundtrip_property(card_no, residence_id, area_code, start, days, key_id, uid):
    record = CardRecord(
        card_no, residence_id, area_code, start, start + datetime.timedelta(days=days), key_id
    )
    data = sign_record(record, uid, KEY)
    assert verify_record(data, uid, {key_id: KEY.public_key()}) == record


@given(st.binary(max_size=130))
def test_decode_never_crashes_on_garbage(data):
    with contextlib.suppress(RecordFormatError):
        decode_record(data)
