"""Where the record lives on the chip: a commit marker and two slots.

The data area is a linear image of ``IMAGE_SIZE`` bytes (the CPU card's EF,
or the MIFARE data blocks in order, see ``docs/card-format.md``)::

      0   16  commit marker
     16   16  reserved (zero)
     32  240  slot 0: 16-byte header + record
    272  240  slot 1: 16-byte header + record

A new record goes into the slot the marker does not name; the marker is
rewritten last, in one 16-byte unit, to name it. A write torn after any APDU
therefore leaves the old marker (old record), or a marker whose CRC fails (the
card reads as blank), or the new marker over a complete slot (new record).
A slot counts only when its header's sequence number and length equal the
marker's and its CRC holds, so a stale or half-written slot never reads back.

This module is pure: it plans writes as ``(offset, bytes)`` in order and
parses images; the card protocols turn the plan into APDUs.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

UNIT = 16
IMAGE_SIZE = 512
MARKER_OFFSET = 0
MARKER_SIZE = 16
SLOT_SIZE = 240
SLOT_OFFSETS = (32, 272)
SLOT_HEADER_SIZE = 16
MAX_RECORD_SIZE = SLOT_SIZE - SLOT_HEADER_SIZE

MARKER_MAGIC = b"AJCM"
SLOT_MAGIC = b"AJSL"
#: Marker state meaning "no record": written by an erase.
STATE_ERASED = 0xFF

_MARKER = struct.Struct(">4sBIHB")  # magic, state, seq, length, reserved; CRC follows
_SLOT = struct.Struct(">4sIHH")  # magic, seq, length, reserved; CRC follows
_CRC = struct.Struct(">I")

Write = tuple[int, bytes]


@dataclass(frozen=True)
class Marker:
    """A commit marker whose CRC holds."""

    state: int  # 0 or 1: the slot holding the record; STATE_ERASED: none
    seq: int
    length: int


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_marker(marker: Marker) -> bytes:
    """Encode a commit marker into its 16 bytes."""
    body = _MARKER.pack(MARKER_MAGIC, marker.state, marker.seq, marker.length, 0)
    return body + _CRC.pack(_crc(body))


def parse_marker(raw: bytes) -> Marker | None:
    """Return the marker in the first 16 bytes of ``raw``, or None if there is none."""
    raw = bytes(raw[:MARKER_SIZE])
    if len(raw) != MARKER_SIZE:
        return None
    magic, state, seq, length, reserved = _MARKER.unpack(raw[:12])
    if magic != MARKER_MAGIC or reserved or _CRC.unpack(raw[12:])[0] != _crc(raw[:12]):
        return None
    if state not in (0, 1, STATE_ERASED):
        return None
    return Marker(state, seq, length)


def encode_slot(seq: int, record: bytes) -> bytes:
    """Return a slot's header and record, zero-padded to whole units."""
    if not 1 <= len(record) <= MAX_RECORD_SIZE:
        raise ValueError(f"a record must be 1..{MAX_RECORD_SIZE} bytes")
    head = _SLOT.pack(SLOT_MAGIC, seq, len(record), 0)
    data = head + _CRC.pack(_crc(head + record)) + record
    return data + bytes(-len(data) % UNIT)


def parse_slot(raw: bytes, marker: Marker) -> bytes | None:
    """Return the record in slot bytes ``raw`` if it is the one ``marker`` commits."""
    if len(raw) < SLOT_HEADER_SIZE:
        return None
    magic, seq, length, reserved = _SLOT.unpack(raw[:12])
    if magic != SLOT_MAGIC or reserved or seq != marker.seq or length != marker.length:
        return None
    if length > MAX_RECORD_SIZE or len(raw) < SLOT_HEADER_SIZE + length:
        return None
    record = bytes(raw[SLOT_HEADER_SIZE : SLOT_HEADER_SIZE + length])
    if _CRC.unpack(raw[12:16])[0] != _crc(bytes(raw[:12]) + record):
        return None
    return record


def read_committed(read: Callable[[int, int], bytes]) -> tuple[bytes, bytes | None]:
    """Read the raw marker and the committed record (None when blank) via ``read``.

    Reads only the marker and the slot it names, which matters on MIFARE
    where every 16 bytes is an APDU.
    """
    raw = bytes(read(MARKER_OFFSET, MARKER_SIZE))
    marker = parse_marker(raw)
    if marker is None or marker.state == STATE_ERASED or marker.length > MAX_RECORD_SIZE:
        return raw, None
    size = SLOT_HEADER_SIZE + marker.length
    return raw, parse_slot(read(SLOT_OFFSETS[marker.state], size + (-size % UNIT)), marker)


def read_current(read: Callable[[int, int], bytes]) -> bytes | None:
    """Read the committed record through ``read(offset, length)``; None when blank."""
    return read_committed(read)[1]


def parse_image(image: bytes) -> bytes | None:
    """Return the committed record bytes of a whole image, or None (blank or invalid)."""
    image = bytes(image)
    return read_current(lambda offset, length: image[offset : offset + length])


def plan_write(current: bytes, record: bytes) -> list[Write]:
    """Plan the writes that commit ``record`` over image ``current``.

    ``current`` needs to hold at least the marker (its first 16 bytes). The
    slot goes first, the marker last.
    """
    marker = parse_marker(current)
    seq = (marker.seq + 1) & 0xFFFFFFFF if marker else 1
    target = 1 - marker.state if marker and marker.state in (0, 1) else 0
    slot = encode_slot(seq, record)
    return [
        (SLOT_OFFSETS[target], slot),
        (MARKER_OFFSET, encode_marker(Marker(target, seq, len(record)))),
    ]


def plan_erase(current: bytes) -> list[Write]:
    """Plan the writes that erase the card: marker to "erased" first, then wipe both slots."""
    marker = parse_marker(current)
    seq = (marker.seq + 1) & 0xFFFFFFFF if marker else 1
    return [
        (MARKER_OFFSET, encode_marker(Marker(STATE_ERASED, seq, 0))),
        (SLOT_OFFSETS[0], bytes(SLOT_SIZE)),
        (SLOT_OFFSETS[1], bytes(SLOT_SIZE)),
    ]


def split_writes(writes: list[Write], chunk: int) -> list[Write]:
    """Split planned writes into pieces of at most ``chunk`` bytes, order kept."""
    pieces = []
    for offset, data in writes:
        for start in range(0, len(data), chunk):
            pieces.append((offset + start, data[start : start + chunk]))
    return pieces


def apply_writes(image: bytes, writes: list[Write]) -> bytes:
    """Return ``image`` with ``writes`` applied (for simulators and tests)."""
    out = bytearray(image)
    for offset, data in writes:
        if offset < 0 or offset + len(data) > len(out):
            raise ValueError("write outside the image")
        out[offset : offset + len(data)] = data
    return bytes(out)
