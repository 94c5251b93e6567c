"""Session with an FM1208-class ISO 7816-4 CPU card carrying the Anju application.

Writes need EXTERNAL AUTHENTICATE: GET CHALLENGE returns 8 random bytes, the
terminal answers 3DES-ECB(key, challenge) (2-key 3DES, as FMCOS). A blank
card holds the transport key; personalisation replaces it with the per-card
keys through WRITE KEY, whose data is the new key 3DES-encrypted under the
key that opened the session, followed by a 3-byte key check value.
"""

from __future__ import annotations

import logging

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from cardreader import layout
from cardreader.protocol import errors
from cardreader.protocol.apdu import build_apdu, command
from cardreader.protocol.keys import CpuKeys
from cardreader.protocol.profiles import CPU_PROFILE, CpuProfile
from cardreader.transport.base import Connection

log = logging.getLogger(__name__)
KEY_CHECK_SIZE = 3


def des3_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """2-key 3DES ECB over whole 8-byte blocks (random challenges and keys only)."""
    # K1 K2 K1 as 24 bytes: the same cipher as 2-key 3DES, without the deprecated key size.
    encryptor = Cipher(TripleDES(key + key[:8]), modes.ECB()).encryptor()  # noqa: S305
    return encryptor.update(data) + encryptor.finalize()


def internal_auth_response(internal_key: bytes, challenge: bytes) -> bytes:
    """What a genuine card answers to INTERNAL AUTHENTICATE (for the server's check)."""
    return des3_ecb_encrypt(internal_key, challenge)


def key_check_value(key: bytes) -> bytes:
    """First 3 bytes of 3DES(key, 00..00): lets the card reject a garbled key."""
    return des3_ecb_encrypt(key, bytes(8))[:KEY_CHECK_SIZE]


class CpuSession:
    """Commands of the Anju application on a CPU card."""

    def __init__(self, connection: Connection, profile: CpuProfile = CPU_PROFILE) -> None:
        self.connection = connection
        self.profile = profile
        self._session_key: bytes | None = None

    # -- ISO 7816-4 commands ------------------------------------------------
    def select_application(self) -> bytes:
        """SELECT the Anju application by AID; returns the FCI."""
        self._session_key = None
        try:
            return command(
                self.connection, build_apdu(0x00, 0xA4, 0x04, 0x00, self.profile.aid), "SELECT"
            )
        except errors.FileNotFound:
            raise errors.UnsupportedCardError("not an Anju card: application not found") from None

    def select_ef(self) -> None:
        """SELECT the record EF by file id (no FCP returned)."""
        fid = self.profile.ef_id.to_bytes(2, "big")
        command(self.connection, build_apdu(0x00, 0xA4, 0x02, 0x0C, fid), "SELECT EF")

    def open(self) -> None:
        """Select the application and its EF."""
        self.select_application()
        self.select_ef()

    def read_binary(self, offset: int, length: int) -> bytes:
        """READ BINARY ``length`` bytes at ``offset`` of the current EF."""
        out = b""
        while len(out) < length:
            here = offset + len(out)
            size = min(self.profile.read_chunk, length - len(out))
            out += command(
                self.connection,
                build_apdu(0x00, 0xB0, here >> 8, here & 0xFF, le=size),
                "READ BINARY",
            )
        return out[:length]

    def update_binary(self, offset: int, data: bytes) -> None:
        """UPDATE BINARY ``data`` at ``offset`` of the current EF (needs authentication)."""
        for start in range(0, len(data), self.profile.write_chunk):
            here = offset + start
            chunk = data[start : start + self.profile.write_chunk]
            command(
                self.connection,
                build_apdu(0x00, 0xD6, here >> 8, here & 0xFF, chunk),
                "UPDATE BINARY",
            )

    def get_challenge(self) -> bytes:
        """GET CHALLENGE: 8 random bytes valid for one authentication."""
        size = self.profile.challenge_size
        return command(self.connection, build_apdu(0x00, 0x84, 0, 0, le=size), "GET CHALLENGE")

    def external_authenticate(self, key: bytes) -> None:
        """Prove knowledge of the external key; raises AuthenticationError on a wrong key."""
        cryptogram = des3_ecb_encrypt(key, self.get_challenge())
        apdu = build_apdu(0x00, 0x82, 0x00, self.profile.external_key_id, cryptogram)
        command(self.connection, apdu, "EXTERNAL AUTHENTICATE")
        self._session_key = key

    def internal_authenticate(self, challenge: bytes) -> bytes:
        """Ask the card to encrypt ``challenge`` (8 bytes) with its internal key."""
        if len(challenge) != 8:
            raise ValueError("the challenge is 8 bytes")
        apdu = build_apdu(0x00, 0x88, 0x00, self.profile.internal_key_id, challenge, le=8)
        return command(self.connection, apdu, "INTERNAL AUTHENTICATE")

    def write_key(self, key_id: int, new_key: bytes) -> None:
        """Replace key ``key_id`` (needs a session opened by EXTERNAL AUTHENTICATE)."""
        if self._session_key is None:
            raise errors.CardCheckError("WRITE KEY needs EXTERNAL AUTHENTICATE first")
        data = des3_ecb_encrypt(self._session_key, new_key) + key_check_value(new_key)
        command(self.connection, build_apdu(0x80, 0xD4, 0x00, key_id, data), "WRITE KEY")

    # -- Anju operations ----------------------------------------------------
    def read_current(self) -> bytes | None:
        """The committed record bytes, or None when the card reads as blank."""
        return layout.read_current(self.read_binary)

    def authenticate_for_write(self, keys: CpuKeys, personalise: bool) -> bool:
        """Open a write session with the per-card key, else the transport key.

        With the transport key and ``personalise``, installs the per-card keys.
        Returns True when the transport key was used.
        """
        try:
            self.external_authenticate(keys.write_key)
            return False
        except errors.AuthenticationBlocked:
            raise
        except errors.AuthenticationError:
            log.info("per-card key refused; trying the transport key")
        self.external_authenticate(keys.transport_key)
        if personalise:
            values = {"internal_key": keys.internal_key, "write_key": keys.write_key}
            for key_id, name in self.profile.key_change_steps:
                self.write_key(key_id, values[name])
            log.info("card personalised with its per-card keys")
        return True

    def write_record(self, keys: CpuKeys, record: bytes) -> bytes:
        """Commit ``record`` (personalising a blank card) and return the read-back."""
        self.open()
        marker, current = layout.read_committed(self.read_binary)
        if current == record:
            return record
        self.authenticate_for_write(keys, personalise=True)
        for offset, data in layout.plan_write(marker, record):
            self.update_binary(offset, data)
        return self.read_current() or b""

    def erase(self, keys: CpuKeys) -> None:
        """Erase the record: marker first, then both slots."""
        self.open()
        marker = self.read_binary(layout.MARKER_OFFSET, layout.MARKER_SIZE)
        self.authenticate_for_write(keys, personalise=False)
        for offset, data in layout.plan_erase(marker):
            self.update_binary(offset, data)
        if self.read_current() is not None:
            raise errors.CardCheckError("record still readable after erase")
