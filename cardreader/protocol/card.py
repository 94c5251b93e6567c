"""High-level card operations, whatever the card type.

These are what the daemon and tools call: detect the type from the ATR,
read the UID, read, write or erase the record, and the CPU card's
INTERNAL AUTHENTICATE.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cardreader.protocol import errors
from cardreader.protocol.apdu import build_apdu, command
from cardreader.protocol.cpu import CpuSession
from cardreader.protocol.keys import CardKeys, CpuKeys, MifareKeys, parse_keys
from cardreader.protocol.mifare import MifareSession
from cardreader.transport.base import CardRemovedError, Connection, Reader

CardType = Literal["cpu", "mifare1k"]
CARD_TYPES: tuple[CardType, ...] = ("cpu", "mifare1k")

# PC/SC Part 3 ATR of a storage card: 3B 8F 80 01 80 4F 0C, RID A0 00 00 03 06, SS, NN NN.
_STORAGE_PREFIX = bytes.fromhex("3B8F8001804F0CA000000306")
_MIFARE_1K_NAME = bytes.fromhex("0001")


def detect(connection: Connection) -> CardType:
    """Card type from the ATR; UnsupportedCardError for other storage cards."""
    atr = connection.atr
    if atr.startswith(_STORAGE_PREFIX):
        name = atr[13:15]
        if name == _MIFARE_1K_NAME:
            return "mifare1k"
        raise errors.UnsupportedCardError(f"storage card type {name.hex()} is not supported")
    if atr[:1] in (b"\x3b", b"\x3f"):
        return "cpu"
    raise errors.UnsupportedCardError("unrecognised ATR")


def read_uid(connection: Connection) -> bytes:
    """The chip UID through the reader's GET DATA (FF CA 00 00 00)."""
    uid = command(connection, build_apdu(0xFF, 0xCA, 0x00, 0x00, le=256), "GET UID")
    if not 1 <= len(uid) <= 10:
        raise errors.CardCheckError("reader returned an implausible UID")
    return uid


def _keys(card_type: CardType, keys: CardKeys | Mapping[str, str]) -> CardKeys:
    if isinstance(keys, CpuKeys | MifareKeys):
        return keys
    return parse_keys(card_type, keys)


def read_record(
    connection: Connection,
    card_type: CardType | None = None,
    keys: CardKeys | Mapping[str, str] | None = None,
) -> bytes | None:
    """The committed record bytes, or None when the card reads as blank."""
    card_type = card_type or detect(connection)
    if card_type == "cpu":
        session = CpuSession(connection)
        session.open()
        return session.read_current()
    mifare_keys = _keys(card_type, keys) if keys is not None else None
    if mifare_keys is not None and not isinstance(mifare_keys, MifareKeys):
        raise ValueError("a MIFARE card is read with MIFARE keys, not CPU card keys")
    return MifareSession(connection).read_current(mifare_keys)


def write_record(
    connection: Connection,
    keys: CardKeys | Mapping[str, str],
    record: bytes,
    card_type: CardType | None = None,
) -> bytes:
    """Write ``record`` tear-safely, personalising a blank card; returns the read-back.

    Raises CardCheckError when the read-back differs from ``record``.
    """
    card_type = card_type or detect(connection)
    parsed = _keys(card_type, keys)
    if isinstance(parsed, CpuKeys):
        read_back = CpuSession(connection).write_record(parsed, record)
    else:
        read_back = MifareSession(connection).write_record(parsed, record)
    if read_back != record:
        raise errors.CardCheckError("read-back differs from the record written")
    return read_back


def erase(
    connection: Connection,
    keys: CardKeys | Mapping[str, str],
    card_type: CardType | None = None,
) -> None:
    """Erase the record (the card then reads as blank)."""
    card_type = card_type or detect(connection)
    parsed = _keys(card_type, keys)
    if isinstance(parsed, CpuKeys):
        CpuSession(connection).erase(parsed)
    else:
        MifareSession(connection).erase(parsed)


def internal_authenticate(connection: Connection, challenge: bytes) -> bytes:
    """The CPU card's answer to ``challenge`` under its internal key.

    MIFARE Classic has no such command: UnsupportedCardError.
    """
    if detect(connection) != "cpu":
        raise errors.UnsupportedCardError("only CPU cards answer INTERNAL AUTHENTICATE")
    session = CpuSession(connection)
    session.select_application()
    return session.internal_authenticate(challenge)


@dataclass
class PresentedCard:
    """A card in the reader whose UID answered: the connection is live."""

    connection: Connection
    card_type: CardType
    uid: bytes


def present_card(reader: Reader, timeout: float) -> PresentedCard | None:
    """Wait up to ``timeout`` s for a card that answers GET UID; None if none came.

    A connection that fails its first APDU (a card that just left, which the
    reader has not noticed yet) is dropped and the wait goes on. Raises
    NoReaderError when the reader is missing, UnsupportedCardError for
    another kind of card.
    """
    deadline = time.monotonic() + timeout
    while True:
        connection = reader.wait_for_card(max(0.0, deadline - time.monotonic()))
        if connection is None:
            return None
        try:
            card_type = detect(connection)
            return PresentedCard(connection, card_type, read_uid(connection))
        except CardRemovedError:
            connection.close()
        except BaseException:
            connection.close()
            raise
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)
