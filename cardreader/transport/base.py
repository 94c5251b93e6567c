"""The transport layer's contract: a reader that yields connections to cards."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Protocol

#: Below DEBUG: APDU traces carry keys and record bytes, so they get their own level.
APDU_TRACE = 5
logging.addLevelName(APDU_TRACE, "APDU")
apdu_log = logging.getLogger("cardreader.apdu")


class TransportError(Exception):
    """The transport failed: the APDU may or may not have reached the card."""


class CardRemovedError(TransportError):
    """The card left the field (or was reset) during the session."""


class NoReaderError(TransportError):
    """The reader is not there: not plugged in, or no PC/SC service."""


class Connection(ABC):
    """An open session with one card."""

    @property
    @abstractmethod
    def atr(self) -> bytes:
        """The card's answer to reset (for contactless cards, built by the reader)."""

    @abstractmethod
    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one command APDU; return the response data and the status word."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the card."""

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Reader(ABC):
    """A card reader that cards come to and leave."""

    name: str

    @abstractmethod
    def wait_for_card(self, timeout: float) -> Connection | None:
        """Connect to the card in the reader, waiting up to ``timeout`` seconds.

        Returns None when no card came in time; raises NoReaderError when
        the reader itself is missing.
        """

    @abstractmethod
    def is_available(self) -> bool:
        """True when the reader is present (a card need not be)."""


class SimulatedCard(Protocol):
    """A card model in software, as the memory reader and the vpcd link drive it."""

    atr: bytes

    def power_on(self) -> None:
        """Reset volatile state, as when the card enters the field."""

    def process_apdu(self, apdu: bytes) -> bytes:
        """Answer one command APDU with response data + SW1 SW2.

        A card that tears itself inside a write raises CardRemovedError.
        """

    def arm_tear(self, keep: int | None, writes: int = 0) -> None:
        """Cut the next write (after ``writes`` more) short, keeping ``keep`` bytes."""


def trace(direction: str, data: bytes) -> None:
    """Log APDU bytes at the APDU trace level only."""
    if apdu_log.isEnabledFor(APDU_TRACE):
        apdu_log.log(APDU_TRACE, "%s %s", direction, data.hex(" "))
