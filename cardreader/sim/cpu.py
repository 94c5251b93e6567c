"""Simulated FM1208-class CPU card carrying the Anju application.

Behaves as docs/card-format.md describes the real card: SELECT by AID with
FCI through 61xx, a transparent EF of fixed size, GET CHALLENGE + EXTERNAL
AUTHENTICATE (3DES) guarding UPDATE BINARY and WRITE KEY, retry counters
(63Cx, then 6983), INTERNAL AUTHENTICATE with the internal key.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from cardreader.protocol.profiles import CPU_PROFILE
from cardreader.sim.base import (
    CardTorn,
    Command,
    SimCardBase,
    parse_command,
    random_uid,
    sw,
    with_atr_checksum,
)

MAX_TRIES = 5
KEY_CHECK_SIZE = 3


def des3_ecb(key: bytes, data: bytes, decrypt: bool = False) -> bytes:
    """2-key 3DES in ECB mode, as FMCOS uses for challenge cryptograms."""
    # ECB over whole 8-byte blocks of random challenges or keys: no pattern to leak.
    cipher = Cipher(TripleDES(key + key[:8]), modes.ECB())  # noqa: S305
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


class SimCpuCard(SimCardBase):
    """The CPU card model."""

    card_type = "cpu"
    # PC/SC contactless ATR (3B 8n 80 01 + historical bytes) with historical bytes "FM1208".
    atr = with_atr_checksum(bytes.fromhex("3B868001") + b"FM1208")

    def __init__(
        self,
        uid: bytes | None = None,
        transport_key: bytes = CPU_PROFILE.default_transport_key,
    ) -> None:
        super().__init__(uid or random_uid(4))
        self.ef = bytearray(CPU_PROFILE.ef_size)
        self.keys = {
            CPU_PROFILE.external_key_id: transport_key,
            CPU_PROFILE.internal_key_id: transport_key,
        }
        self.tries = {key_id: MAX_TRIES for key_id in self.keys}
        self.power_on()

    # -- persistence -------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "type": self.card_type,
            "uid": self.uid.hex(),
            "memory": self.ef.hex(),
            "keys": {str(k): v.hex() for k, v in self.keys.items()},
            "tries": {str(k): v for k, v in self.tries.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SimCpuCard:
        """Rebuild a card from ``to_state`` data."""
        card = cls(bytes.fromhex(state["uid"]))
        card.ef = bytearray.fromhex(state["memory"])
        card.keys = {int(k): bytes.fromhex(v) for k, v in state["keys"].items()}
        card.tries = {int(k): int(v) for k, v in state["tries"].items()}
        return card

    def load_memory(self, state: dict[str, Any]) -> None:
        """Copy another card's memory and keys (a cloner can copy data, not the UID)."""
        self.ef = bytearray.fromhex(state["memory"])
        self.keys = {int(k): bytes.fromhex(v) for k, v in state["keys"].items()}

    # -- volatile state ----------------------------------------------------
    def power_on(self) -> None:
        self.app_selected = False
        self.ef_selected = False
        self.challenge: bytes | None = None
        self.auth_key: bytes | None = None  # the key that opened the write session
        self.pending = b""

    # -- commands ----------------------------------------------------------
    def process_apdu(self, apdu: bytes) -> bytes:
        command = parse_command(apdu)
        if command is None:
            return sw(0x6700)
        if command.cla == 0xFF:
            return self.get_uid(command) if command.ins == 0xCA else sw(0x6D00)
        if command.ins != 0xC0:
            self.pending = b""  # any other command discards unfetched response data
        handler = {
            (0x00, 0xA4): self._select,
            (0x00, 0xC0): self._get_response,
            (0x00, 0xB0): self._read_binary,
            (0x00, 0xD6): self._update_binary,
            (0x00, 0x84): self._get_challenge,
            (0x00, 0x82): self._external_authenticate,
            (0x00, 0x88): self._internal_authenticate,
            (0x80, 0xD4): self._write_key,
        }.get((command.cla, command.ins))
        if handler is None:
            known_ins = {0xA4, 0xC0, 0xB0, 0xD6, 0x84, 0x82, 0x88, 0xD4}
            return sw(0x6E00 if command.ins in known_ins else 0x6D00)
        return handler(command)

    def _respond(self, data: bytes, command: Command) -> bytes:
        # Case 3 commands with response data get 61xx, as over T=0.
        if command.le is None:
            self.pending = data
            return sw(0x6100 | (len(data) & 0xFF))
        return data[: command.le] + sw(0x9000)

    def _select(self, command: Command) -> bytes:
        if command.p1 == 0x04:
            if command.data != CPU_PROFILE.aid:
                return sw(0x6A82)
            self.power_on()
            self.app_selected = True
            aid = CPU_PROFILE.aid
            fci = bytes([0x6F, len(aid) + 2, 0x84, len(aid)]) + aid
            return sw(0x9000) if command.p2 == 0x0C else self._respond(fci, command)
        if command.p1 == 0x02:
            if len(command.data) != 2:
                return sw(0x6700)
            if not self.app_selected or int.from_bytes(command.data, "big") != CPU_PROFILE.ef_id:
                return sw(0x6A82)
            self.ef_selected = True
            size = CPU_PROFILE.ef_size.to_bytes(2, "big")
            fcp = bytes([0x62, 0x08, 0x80, 0x02]) + size + bytes([0x83, 0x02]) + command.data
            return sw(0x9000) if command.p2 == 0x0C else self._respond(fcp, command)
        return sw(0x6A86)

    def _get_response(self, command: Command) -> bytes:
        if not self.pending:
            return sw(0x6985)
        want = command.le or 256
        if want > len(self.pending):
            return sw(0x6C00 | len(self.pending))
        data, self.pending = self.pending[:want], self.pending[want:]
        if self.pending:
            return data + sw(0x6100 | min(len(self.pending), 256) & 0xFF)
        return data + sw(0x9000)

    def _file_offset(self, command: Command) -> int | bytes:
        if command.p1 & 0x80:
            # Short EF identifier in P1, offset in P2.
            if command.p1 & 0x1F != CPU_PROFILE.ef_id or not self.app_selected:
                return sw(0x6A82)
            self.ef_selected = True
            return command.p2
        if not self.ef_selected:
            return sw(0x6986)
        return (command.p1 << 8 | command.p2) & 0x7FFF

    def _read_binary(self, command: Command) -> bytes:
        offset = self._file_offset(command)
        if isinstance(offset, bytes):
            return offset
        if command.le is None or command.data:
            return sw(0x6700)
        if offset >= len(self.ef):
            return sw(0x6B00)
        available = len(self.ef) - offset
        if command.le > available:
            return sw(0x6C00 | min(available, 256) & 0xFF)
        return bytes(self.ef[offset : offset + command.le]) + sw(0x9000)

    def _update_binary(self, command: Command) -> bytes:
        offset = self._file_offset(command)
        if isinstance(offset, bytes):
            return offset
        if not command.data:
            return sw(0x6700)
        if self.auth_key is None:
            return sw(0x6982)
        if offset >= len(self.ef):
            return sw(0x6B00)
        if offset + len(command.data) > len(self.ef):
            return sw(0x6A84)
        end = offset + len(command.data)
        stored, torn = self.store(bytes(self.ef[offset:end]), command.data)
        self.ef[offset:end] = stored
        self.changed()
        if torn:
            raise CardTorn(f"torn inside UPDATE BINARY at offset {offset}")
        return sw(0x9000)

    def _get_challenge(self, command: Command) -> bytes:
        if command.le != CPU_PROFILE.challenge_size or command.p1 or command.p2:
            return sw(0x6700)
        self.challenge = os.urandom(CPU_PROFILE.challenge_size)
        return self.challenge + sw(0x9000)

    def _external_authenticate(self, command: Command) -> bytes:
        if not self.app_selected:
            return sw(0x6985)
        if command.p2 != CPU_PROFILE.external_key_id:
            return sw(0x6A88)
        if len(command.data) != 8:
            return sw(0x6700)
        if self.tries[command.p2] == 0:
            return sw(0x6983)
        challenge, self.challenge = self.challenge, None
        if challenge is None:
            return sw(0x6985)
        key = self.keys[command.p2]
        if des3_ecb(key, challenge) != command.data:
            self.tries[command.p2] -= 1
            self.auth_key = None
            self.changed()
            return sw(0x63C0 | self.tries[command.p2])
        if self.tries[command.p2] != MAX_TRIES:
            self.tries[command.p2] = MAX_TRIES
            self.changed()
        self.auth_key = key
        return sw(0x9000)

    def _internal_authenticate(self, command: Command) -> bytes:
        if not self.app_selected:
            return sw(0x6985)
        if command.p2 != CPU_PROFILE.internal_key_id:
            return sw(0x6A88)
        if len(command.data) != 8:
            return sw(0x6700)
        return des3_ecb(self.keys[command.p2], command.data) + sw(0x9000)

    def _write_key(self, command: Command) -> bytes:
        if not self.app_selected:
            return sw(0x6985)
        if command.p2 not in self.keys:
            return sw(0x6A88)
        if len(command.data) != 16 + KEY_CHECK_SIZE:
            return sw(0x6700)
        if self.auth_key is None:
            return sw(0x6982)
        new_key = des3_ecb(self.auth_key, command.data[:16], decrypt=True)
        if des3_ecb(new_key, bytes(8))[:KEY_CHECK_SIZE] != command.data[16:]:
            return sw(0x6988)
        self.keys[command.p2] = new_key
        self.tries[command.p2] = MAX_TRIES
        self.changed()
        return sw(0x9000)
