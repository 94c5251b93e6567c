"""PC/SC transport over pyscard's thin ``smartcard.scard`` layer.

The only module that imports ``smartcard``. The raw SCard calls are used
rather than pyscard's CardRequest so that every PC/SC error code maps to one
of ours and a pcscd restart is survived by re-establishing the context.
"""

from __future__ import annotations

import time

from smartcard import scard

from cardreader.transport.base import (
    CardRemovedError,
    Connection,
    NoReaderError,
    Reader,
    TransportError,
    trace,
)


def _code(hresult: int) -> int:
    # pyscard returns HRESULTs as signed or unsigned ints depending on the platform.
    return hresult & 0xFFFFFFFF


_GONE = {
    _code(c)
    for c in (
        scard.SCARD_W_REMOVED_CARD,
        scard.SCARD_E_NO_SMARTCARD,
        scard.SCARD_W_RESET_CARD,
        scard.SCARD_W_UNPOWERED_CARD,
        scard.SCARD_W_UNRESPONSIVE_CARD,
        scard.SCARD_E_NOT_TRANSACTED,
        scard.SCARD_E_COMM_DATA_LOST,
        scard.SCARD_F_COMM_ERROR,
        scard.SCARD_E_INVALID_HANDLE,
    )
}
_NO_READER = {
    _code(c)
    for c in (
        scard.SCARD_E_READER_UNAVAILABLE,
        scard.SCARD_E_UNKNOWN_READER,
        scard.SCARD_E_NO_READERS_AVAILABLE,
        scard.SCARD_E_NO_SERVICE,
        scard.SCARD_E_SERVICE_STOPPED,
    )
}
# One status-change wait is bounded so an unplugged reader is noticed.
_POLL_SECONDS = 0.5


def _message(hresult: int) -> str:
    return f"{scard.SCardGetErrorMessage(hresult)} (0x{_code(hresult):08X})"


def _establish() -> int:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise NoReaderError(f"no PC/SC service: {_message(hresult)}")
    return context


def list_readers() -> list[str]:
    """Names of the readers pcscd knows; NoReaderError when pcscd is not running."""
    context = _establish()
    try:
        return _list(context)
    finally:
        scard.SCardReleaseContext(context)


def _list(context: int) -> list[str]:
    hresult, names = scard.SCardListReaders(context, [])
    if _code(hresult) == _code(scard.SCARD_E_NO_READERS_AVAILABLE):
        return []
    if hresult != scard.SCARD_S_SUCCESS:
        raise NoReaderError(f"cannot list readers: {_message(hresult)}")
    return list(names)


class PcscReader(Reader):
    """A PC/SC reader chosen by exact name, by name prefix, or the first one."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or ""
        self._context: int | None = None

    def _ctx(self) -> int:
        if self._context is None:
            self._context = _establish()
        return self._context

    def _drop_context(self) -> None:
        if self._context is not None:
            scard.SCardReleaseContext(self._context)
            self._context = None

    def resolve(self) -> str:
        """The full name of the reader this object stands for; NoReaderError if absent."""
        try:
            names = _list(self._ctx())
        except NoReaderError:
            # pcscd may have restarted: the old context is dead.
            self._drop_context()
            names = _list(self._ctx())
        if not self.name:
            if names:
                return names[0]
            raise NoReaderError("no PC/SC reader is connected")
        for candidate in names:
            if candidate == self.name:
                return candidate
        for candidate in names:
            if candidate.startswith(self.name):
                return candidate
        raise NoReaderError(f"reader {self.name!r} not found (have: {', '.join(names) or 'none'})")

    def is_available(self) -> bool:
        try:
            self.resolve()
        except NoReaderError:
            return False
        return True

    def card_present(self) -> bool:
        """True when pcscd currently reports a card in the reader."""
        name = self.resolve()
        hresult, states = scard.SCardGetStatusChange(
            self._ctx(), 0, [(name, scard.SCARD_STATE_UNAWARE)]
        )
        return bool(hresult == scard.SCARD_S_SUCCESS and states[0][1] & scard.SCARD_STATE_PRESENT)

    def wait_for_card(self, timeout: float) -> Connection | None:
        """See Reader.wait_for_card.

        pcscd polls readers, so right after a card left it may still report it
        present: the connection then fails on its first APDU with
        CardRemovedError, and the caller waits again (see protocol.card.present_card).
        """
        deadline = time.monotonic() + timeout
        while True:
            name = self.resolve()
            remaining = deadline - time.monotonic()
            wait_ms = int(max(0.0, min(remaining, _POLL_SECONDS)) * 1000)
            hresult, states = scard.SCardGetStatusChange(
                self._ctx(), wait_ms, [(name, scard.SCARD_STATE_UNAWARE)]
            )
            if hresult == scard.SCARD_S_SUCCESS and states:
                state = states[0][1]
                if state & scard.SCARD_STATE_PRESENT and not state & scard.SCARD_STATE_MUTE:
                    connection = self._connect(name)
                    if connection is not None:
                        return connection
            elif _code(hresult) in _NO_READER:
                self._drop_context()
                raise NoReaderError(f"reader {name!r} went away: {_message(hresult)}")
            # An UNAWARE query answers at once, so pace the loop ourselves.
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _connect(self, name: str) -> PcscConnection | None:
        hresult, card, protocol = scard.SCardConnect(
            self._ctx(),
            name,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        if _code(hresult) in _GONE:
            return None
        if _code(hresult) in _NO_READER:
            raise NoReaderError(f"reader {name!r}: {_message(hresult)}")
        if hresult != scard.SCARD_S_SUCCESS:
            raise TransportError(f"cannot connect to the card: {_message(hresult)}")
        hresult, _reader, _state, _protocol, atr = scard.SCardStatus(card)
        if hresult != scard.SCARD_S_SUCCESS or not atr:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
            return None
        return PcscConnection(card, protocol, bytes(atr), name)

    def close(self) -> None:
        """Release the PC/SC context."""
        self._drop_context()


class PcscConnection(Connection):
    """A connected card in a PC/SC reader."""

    def __init__(self, card: int, protocol: int, atr: bytes, reader_name: str) -> None:
        self._card: int | None = card
        self._protocol = protocol
        self._atr = atr
        self.reader_name = reader_name

    @property
    def atr(self) -> bytes:
        return self._atr

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        if self._card is None:
            raise TransportError("connection is closed")
        trace(">>", apdu)
        hresult, response = scard.SCardTransmit(self._card, self._protocol, list(apdu))
        if hresult != scard.SCARD_S_SUCCESS:
            if _code(hresult) in _GONE or _code(hresult) in _NO_READER:
                self._lost()
                raise CardRemovedError(f"card lost: {_message(hresult)}")
            raise TransportError(f"transmit failed: {_message(hresult)}")
        data = bytes(response)
        trace("<<", data)
        if len(data) < 2:
            # vpcd (and some contactless readers) report a card that left mid-exchange
            # as a successful transmit with no status word.
            self._lost()
            raise CardRemovedError("no status word from the card: it left the field")
        return data[:-2], int.from_bytes(data[-2:], "big")

    def _lost(self) -> None:
        if self._card is not None:
            scard.SCardDisconnect(self._card, scard.SCARD_LEAVE_CARD)
            self._card = None

    def close(self) -> None:
        # Reset on release so no authenticated state outlives our session.
        if self._card is not None:
            scard.SCardDisconnect(self._card, scard.SCARD_RESET_CARD)
            self._card = None
