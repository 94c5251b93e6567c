"""docs/card-format.md's worked example and test vector are what the code produces.

A third party writes a reader from that page alone: its numbers must not drift
from ``cardreader.record`` and ``cardreader.layout``.
"""

from __future__ import annotations

import datetime
import re
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardreader import layout
from cardreader.record import (
    CardRecord,
    decode_record,
    encode_unsigned,
    sign_record,
    signing_input,
    verify_record,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "card-format.md"
#: The worked example of section 8, as its prose states it.
EXAMPLE = CardRecord(
    card_no="AJ00000012Q",
    residence_id=42,
    area_code="330203",
    valid_from=datetime.date(2026, 1, 1),
    valid_until=datetime.date(2027, 12, 31),
    key_id=7,
)
EXAMPLE_UID = bytes.fromhex("04A1B2C3")


def _between(name: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert found, f"docs/card-format.md has no {name} block"
    return found.group(1)


@pytest.fixture(scope="module")
def vector() -> dict[str, bytes]:
    """The test vector block: ``name: hex`` lines, hex continued on indented lines."""
    values: dict[str, str] = {}
    name = None
    for line in _between("test-vector").splitlines():
        if line.startswith("```") or not line.strip():
            continue
        if line[0].isspace():
            assert name is not None
            values[name] += line.strip()
            continue
        name, _, rest = line.partition(":")
        values[name] = rest.strip()
    return {key: bytes.fromhex(value) for key, value in values.items()}


def test_the_field_table_is_the_unsigned_record(vector):
    rows = [re.split(r"\s{2,}", line.strip())[0] for line in _between("record-fields").splitlines()]
    table = bytes.fromhex("".join(row.replace(" ", "") for row in rows if row))
    assert len(table) == 49
    assert table == encode_unsigned(EXAMPLE) == vector["unsigned_record"]
    assert table[3:19] == b"AJ00000012Q" + bytes(5)  # the card number field is 16 bytes


def test_the_vector_is_what_the_code_signs_and_writes(vector):
    key = Ed25519PrivateKey.from_private_bytes(vector["ed25519_seed"])
    public = key.public_key()
    assert public.public_bytes(Encoding.Raw, PublicFormat.Raw) == vector["ed25519_public"]
    assert vector["uid"] == EXAMPLE_UID
    assert int.from_bytes(vector["key_id"], "big") == EXAMPLE.key_id

    unsigned = encode_unsigned(EXAMPLE)
    assert signing_input(unsigned, EXAMPLE_UID) == vector["signing_input"]
    record = sign_record(EXAMPLE, EXAMPLE_UID, key)
    assert record == vector["record"] == vector["unsigned_record"] + vector["signature"]
    assert verify_record(vector["record"], EXAMPLE_UID, {EXAMPLE.key_id: public}) == EXAMPLE
    assert decode_record(vector["record"])[1] == vector["signature"]

    slot, marker = layout.plan_write(bytes(layout.IMAGE_SIZE), record)
    assert slot == (layout.SLOT_OFFSETS[0], vector["slot_0"])
    assert marker == (layout.MARKER_OFFSET, vector["marker"])
    assert len(vector["slot_0"]) == 144
    assert zlib.crc32(vector["slot_0"][:12] + record).to_bytes(4, "big") == vector["slot_crc"]
    assert vector["slot_0"][12:16] == vector["slot_crc"]
    assert zlib.crc32(vector["marker"][:12]).to_bytes(4, "big") == vector["marker_crc"]
    assert vector["marker"][12:] == vector["marker_crc"]
    image = layout.apply_writes(bytes(layout.IMAGE_SIZE), [slot, marker])
    assert layout.parse_image(image) == record


def test_the_prose_numbers_agree():
    text = DOC.read_text(encoding="utf-8")
    epoch = datetime.date(1970, 1, 1)
    assert (EXAMPLE.valid_from - epoch).days == 20454 == 0x4FE6
    assert (EXAMPLE.valid_until - epoch).days == 21183 == 0x52BF
    assert (
        "41 6E 6A 75 6B 61 20 63 61 72 64 20 72 65 63 6F\n72 64 20 76 31 00 04 04 A1 B2 C3" in text
    )
    prefix = signing_input(encode_unsigned(EXAMPLE), EXAMPLE_UID)[:30]
    assert prefix.hex(" ").upper().startswith("41 6E 6A 75 6B 61 20 63 61 72 64 20 72 65 63 6F")
    assert prefix[22:27] == bytes.fromhex("0404A1B2C3")
