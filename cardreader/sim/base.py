"""What both simulated card models share: APDU parsing, persistence hooks."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cardreader.transport.base import CardRemovedError


class CardTorn(CardRemovedError):
    """The card lost power in the middle of a write: only a prefix of it was stored."""


def sw(value: int) -> bytes:
    """A bare status word response."""
    return value.to_bytes(2, "big")


def with_atr_checksum(body: bytes) -> bytes:
    """Append TCK (XOR of T0..last byte), required when T=1 is offered."""
    tck = 0
    for byte in body[1:]:
        tck ^= byte
    return body + bytes([tck])


def random_uid(size: int = 4) -> bytes:
    """A random UID; single-size NXP-style UIDs must not start with 0x88 (cascade tag)."""
    while True:
        uid = os.urandom(size)
        if uid[0] != 0x88:
            return uid


@dataclass
class Command:
    """A parsed short command APDU."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: int | None  # None: absent; 256 for a 00 Le byte


def parse_command(apdu: bytes) -> Command | None:
    """Parse a short APDU (cases 1-4); None when malformed."""
    if len(apdu) < 4:
        return None
    cla, ins, p1, p2 = apdu[:4]
    body = apdu[4:]
    if not body:
        return Command(cla, ins, p1, p2, b"", None)
    if len(body) == 1:
        return Command(cla, ins, p1, p2, b"", body[0] or 256)
    lc = body[0]
    if lc == 0:
        return None  # extended APDUs are not supported by these cards
    if len(body) == 1 + lc:
        return Command(cla, ins, p1, p2, body[1:], None)
    if len(body) == 2 + lc:
        return Command(cla, ins, p1, p2, body[1 : 1 + lc], body[-1] or 256)
    return None


class SimCardBase(ABC):
    """Common state of a simulated card: UID, ATR, change notification."""

    card_type = ""
    atr = b""

    def __init__(self, uid: bytes) -> None:
        self.uid = bytes(uid)
        #: Called after every change of non-volatile memory (to persist it).
        self.on_change: Callable[[], None] | None = None
        #: An armed tear: (writes still to complete, bytes of the next write to keep).
        self._tear: tuple[int, int] | None = None
        #: UPDATE BINARY commands that reached memory (torn ones included).
        self.writes = 0

    def changed(self) -> None:
        """Report a change of non-volatile memory."""
        if self.on_change is not None:
            self.on_change()

    def arm_tear(self, keep: int | None, writes: int = 0) -> None:
        """Tear inside a write: let ``writes`` more writes complete, then cut the next short.

        That write stores only its first ``keep`` bytes (EEPROM is programmed
        in order; the rest keep their old value), is persisted, and the card
        leaves the field (:class:`CardTorn`). ``keep=None`` disarms.
        """
        if keep is not None and (keep < 0 or writes < 0):
            raise ValueError("a tear keeps >= 0 bytes after >= 0 writes")
        self._tear = None if keep is None else (writes, keep)

    @property
    def tear_armed(self) -> bool:
        """Whether a tear inside a write is still to come."""
        return self._tear is not None

    def store(self, old: bytes, new: bytes) -> tuple[bytes, bool]:
        """What memory holds after writing ``new`` over ``old``, and whether it tore.

        Each model calls this for every UPDATE BINARY; when it tore, the
        model saves the result, calls :meth:`changed` and raises :class:`CardTorn`.
        """
        self.writes += 1
        if self._tear is None:
            return new, False
        before, keep = self._tear
        if before > 0:
            self._tear = (before - 1, keep)
            return new, False
        self._tear = None
        keep = min(keep, len(new))
        return new[:keep] + old[keep:], True

    @abstractmethod
    def to_state(self) -> dict[str, Any]:
        """Non-volatile state as JSON-friendly data."""

    @abstractmethod
    def power_on(self) -> None:
        """Reset the volatile state."""

    @abstractmethod
    def process_apdu(self, apdu: bytes) -> bytes:
        """Answer one command APDU."""

    def get_uid(self, command: Command) -> bytes:
        """PC/SC Part 3 GET DATA (FF CA): the reader answers it, so the simulator does too."""
        if command.p1 != 0x00 or command.p2 != 0x00:
            return sw(0x6A81)
        if command.le is not None and command.le != 256 and command.le != len(self.uid):
            return sw(0x6C00 | len(self.uid))
        return self.uid + sw(0x9000)
