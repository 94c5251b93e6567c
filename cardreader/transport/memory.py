"""In-memory transport: a reader holding a simulated card object, for unit tests."""

from __future__ import annotations

import threading
from collections.abc import Callable

from cardreader.transport.base import (
    CardRemovedError,
    Connection,
    NoReaderError,
    Reader,
    SimulatedCard,
    trace,
)


class MemoryReader(Reader):
    """A reader whose card tests insert, remove and tear at will."""

    def __init__(self, name: str = "Memory reader", card: SimulatedCard | None = None) -> None:
        self.name = name
        self.plugged = True
        self.apdu_count = 0
        #: Called (without the lock) each time someone waits for a card.
        self.on_wait: Callable[[MemoryReader], None] | None = None
        self._card = card
        self._insertions = 0
        self._tear_after: int | None = None
        self._tear_keep: int | None = None
        self._cond = threading.Condition()

    @property
    def card(self) -> SimulatedCard | None:
        """The card in the field, if any."""
        return self._card

    def insert(self, card: SimulatedCard) -> None:
        """Put ``card`` into the field."""
        with self._cond:
            self._card = card
            self._insertions += 1
            self._cond.notify_all()

    def remove(self) -> SimulatedCard | None:
        """Take the card out of the field and return it."""
        with self._cond:
            card, self._card = self._card, None
            self._insertions += 1
            self._cond.notify_all()
            return card

    def tear_after(self, count: int | None, keep: int | None = None) -> None:
        """Pull the card when the next ``count`` APDUs have been answered.

        The next APDU is then not executed; with ``keep``, it is, as a write
        torn after its first ``keep`` bytes (a command that writes nothing
        runs whole), and its answer is lost with the card.
        """
        with self._cond:
            self._tear_after = count
            self._tear_keep = keep

    def is_available(self) -> bool:
        return self.plugged

    def wait_for_card(self, timeout: float) -> Connection | None:
        if self.on_wait is not None:
            self.on_wait(self)
        with self._cond:
            if not self.plugged:
                raise NoReaderError(f"reader {self.name!r} is not plugged in")
            card = self._cond.wait_for(lambda: self._card, timeout)
            if card is None:
                return None
            card.power_on()
            return MemoryConnection(self, card, self._insertions)

    def _transmit(self, card: SimulatedCard, insertion: int, apdu: bytes) -> bytes:
        with self._cond:
            if self._card is not card or self._insertions != insertion or not self.plugged:
                raise CardRemovedError("card removed")
            if self._tear_after is not None:
                if self._tear_after <= 0:
                    keep, self._tear_after, self._tear_keep = self._tear_keep, None, None
                    self._leave()
                    if keep is not None:
                        card.arm_tear(keep)
                        try:
                            card.process_apdu(apdu)
                        except CardRemovedError:
                            pass
                        finally:
                            card.arm_tear(None)
                    raise CardRemovedError("card removed (torn)")
                self._tear_after -= 1
            self.apdu_count += 1
            try:
                return card.process_apdu(apdu)
            except CardRemovedError:
                self._leave()  # the card tore itself inside a write
                raise

    def _leave(self) -> None:
        """The card is out of the field (the caller holds the lock)."""
        self._card = None
        self._insertions += 1
        self._cond.notify_all()


class MemoryConnection(Connection):
    """A session with the card a MemoryReader holds."""

    def __init__(self, reader: MemoryReader, card: SimulatedCard, insertion: int) -> None:
        self._reader = reader
        self._card = card
        self._insertion = insertion

    @property
    def atr(self) -> bytes:
        return bytes(self._card.atr)

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        trace(">>", apdu)
        response = self._reader._transmit(self._card, self._insertion, bytes(apdu))
        trace("<<", response)
        return response[:-2], int.from_bytes(response[-2:], "big")
