"""A virtual card's side of the vpcd protocol (vsmartcard's virtual reader driver).

vpcd listens on 127.0.0.1:35963 (reader ``Virtual PCD 00 00``) and 35964
(``00 01``); the card connects as a TCP client. Every message either way is a
2-byte big-endian length and that many bytes. A 1-byte message from vpcd is a
control code (0 power off, 1 power on, 2 reset, 4 send the ATR); a longer one
is a command APDU to answer. Closing the socket takes the card out of the field.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

from cardreader.transport.base import CardRemovedError, SimulatedCard, trace

log = logging.getLogger(__name__)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 35963
POWER_OFF, POWER_ON, RESET, GET_ATR = 0, 1, 2, 4
_POLL = 0.05


class Stopped(Exception):
    """The stop event was set while waiting for vpcd."""


class VpcdLink:
    """One TCP connection to vpcd: the card is in the field while it is open."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.sock = socket.create_connection((host, port), timeout=2.0)
        # Without these every APDU waits on a delayed ACK (PCSC.md: 19.7 s vs 0.24 s for 400).
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(_POLL)

    def _quickack(self) -> None:
        # Linux clears QUICKACK after it is used, so it is set again before every recv.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    def _recv_exact(self, size: int, stop: threading.Event) -> bytes | None:
        data = b""
        while len(data) < size:
            if stop.is_set():
                raise Stopped
            self._quickack()
            try:
                chunk = self.sock.recv(size - len(data))
            except TimeoutError:
                continue
            if not chunk:
                return None
            data += chunk
        return data

    def receive(self, stop: threading.Event) -> bytes | None:
        """The next message from vpcd, or None when vpcd closed the connection."""
        header = self._recv_exact(2, stop)
        if header is None:
            return None
        return self._recv_exact(int.from_bytes(header, "big"), stop)

    def send(self, payload: bytes) -> None:
        """Send one framed message."""
        self.sock.sendall(len(payload).to_bytes(2, "big") + payload)

    def close(self) -> None:
        """Leave the field."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def serve(
    card: SimulatedCard,
    link: VpcdLink,
    stop: threading.Event,
    tear_after: int | None = None,
) -> str:
    """Answer vpcd on ``link`` until it closes, ``stop`` is set, or the tear point.

    With ``tear_after`` N, the (N+1)th command APDU is not executed: the
    socket closes instead, as a card pulled out mid-command. A card armed to
    tear inside a write (``arm_tear``) leaves the same way once it has stored
    the prefix. Returns ``"disconnected"``, ``"stopped"`` or ``"torn"``.
    """
    answered = 0
    try:
        while True:
            message = link.receive(stop)
            if message is None:
                return "disconnected"
            if len(message) == 1:
                code = message[0]
                if code in (POWER_OFF, POWER_ON, RESET):
                    card.power_on()
                elif code == GET_ATR:
                    link.send(card.atr)
                continue
            if tear_after is not None and answered >= tear_after:
                log.info("tearing: card leaves the field after %d APDUs", answered)
                return "torn"
            trace(">>", message)
            try:
                response = card.process_apdu(message)
            except CardRemovedError:
                log.info("tearing: card leaves the field inside a write")
                return "torn"
            trace("<<", response)
            link.send(response)
            answered += 1
    except Stopped:
        return "stopped"
    except OSError as exc:
        log.info("vpcd connection lost: %s", exc)
        return "disconnected"
    finally:
        link.close()
