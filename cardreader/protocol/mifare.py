"""Session with a MIFARE Classic 1K through PC/SC Part 3 pseudo-APDUs.

Crypto1 is broken, so the card is not trusted with anything: the data is
readable with a public key A (``MifareProfile.public_read_key``) and the
record's signature carries the trust. Key B, derived per card on the server,
only keeps casual writers out. Sector trailers are written in exactly one
place, :meth:`MifareSession.personalise`.
"""

from __future__ import annotations

import logging

from cardreader import layout
from cardreader.protocol import errors
from cardreader.protocol.apdu import build_apdu, command
from cardreader.protocol.keys import MifareKeys
from cardreader.protocol.profiles import MIFARE_PROFILE, MifareProfile
from cardreader.transport.base import Connection

log = logging.getLogger(__name__)
BLOCK_SIZE = 16
KEY_A, KEY_B = 0x60, 0x61
Candidate = tuple[int, bytes]  # (key type, key)


def access_bytes(conditions: list[tuple[int, int, int]]) -> bytes:
    """Encode (C1, C2, C3) for blocks 0-3 into trailer bytes 6-8 (NXP MF1S50 layout)."""
    c1 = sum(c[0] << i for i, c in enumerate(conditions))
    c2 = sum(c[1] << i for i, c in enumerate(conditions))
    c3 = sum(c[2] << i for i, c in enumerate(conditions))
    return bytes([(~c2 & 0xF) << 4 | (~c1 & 0xF), c1 << 4 | (~c3 & 0xF), c3 << 4 | c2])


def sector_trailer(key_a: bytes, key_b: bytes, profile: MifareProfile = MIFARE_PROFILE) -> bytes:
    """The trailer personalisation writes: key A, access bits, GPB, key B."""
    conditions = [profile.data_condition] * 3 + [profile.trailer_condition]
    return key_a + access_bytes(conditions) + bytes([profile.general_purpose_byte]) + key_b


class MifareSession:
    """Block-level commands plus the Anju read, write and erase operations."""

    def __init__(self, connection: Connection, profile: MifareProfile = MIFARE_PROFILE) -> None:
        self.connection = connection
        self.profile = profile
        self._slots: list[bytes | None] = [None, None]
        self._next_slot = 0
        self._auth: tuple[int, int, bytes] | None = None  # (sector, key type, key)
        self._blocks = profile.image_blocks()

    # -- PC/SC Part 3 commands ---------------------------------------------
    def get_uid(self) -> bytes:
        """GET DATA (FF CA 00 00 00): the chip UID."""
        return command(self.connection, build_apdu(0xFF, 0xCA, 0, 0, le=256), "GET UID")

    def _slot_for(self, key: bytes) -> int:
        if key in self._slots:
            return self._slots.index(key)
        slot = self._next_slot
        self._next_slot ^= 1
        command(self.connection, build_apdu(0xFF, 0x82, 0x00, slot, key), "LOAD KEY")
        self._slots[slot] = key
        return slot

    def authenticate(self, block: int, key_type: int, key: bytes) -> None:
        """GENERAL AUTHENTICATE ``block``'s sector with key A or B."""
        slot = self._slot_for(key)
        data = bytes([0x01, 0x00, block, key_type, slot])
        self._auth = None
        command(self.connection, build_apdu(0xFF, 0x86, 0x00, 0x00, data), "AUTHENTICATE")
        self._auth = (block // 4, key_type, key)

    def authenticate_sector(self, sector: int, candidates: list[Candidate]) -> Candidate:
        """Authenticate ``sector`` with the first candidate the card accepts."""
        current = self._auth
        if current is not None and current[0] == sector and current[1:] in candidates:
            return current[1], current[2]
        last: errors.AuthenticationError | None = None
        for key_type, key in candidates:
            try:
                self.authenticate(sector * 4, key_type, key)
                return key_type, key
            except errors.AuthenticationError as exc:
                last = exc
        raise errors.AuthenticationError(
            last.sw if last else 0x6300, f"no known key opens sector {sector}"
        )

    def read_block(self, block: int) -> bytes:
        """READ BINARY one block (authenticate its sector first)."""
        return command(self.connection, build_apdu(0xFF, 0xB0, 0x00, block, le=16), "READ")

    def update_block(self, block: int, data: bytes) -> None:
        """UPDATE BINARY one block (authenticate its sector first)."""
        if len(data) != BLOCK_SIZE:
            raise ValueError("a MIFARE block is 16 bytes")
        command(self.connection, build_apdu(0xFF, 0xD6, 0x00, block, data), "UPDATE")

    # -- the layout image -----------------------------------------------------
    def read_candidates(self, keys: MifareKeys | None) -> list[Candidate]:
        """Keys that may read data: job key A, the public key, the transport key, key B."""
        found: list[Candidate] = []
        if keys is not None:
            found.append((KEY_A, keys.key_a))
        found += [
            (KEY_A, self.profile.public_read_key),
            (KEY_A, self.profile.default_transport_key),
        ]
        if keys is not None:
            found += [(KEY_A, keys.transport_key), (KEY_B, keys.key_b)]
        return list(dict.fromkeys(found))

    def read_image(self, offset: int, length: int, keys: MifareKeys | None = None) -> bytes:
        """Read ``length`` bytes of the layout image from ``offset`` (block-aligned)."""
        if offset % BLOCK_SIZE or length % BLOCK_SIZE:
            raise ValueError("MIFARE image reads are whole blocks")
        candidates = self.read_candidates(keys)
        out = b""
        for index in range(offset // BLOCK_SIZE, (offset + length) // BLOCK_SIZE):
            block = self._blocks[index]
            used = self.authenticate_sector(block // 4, candidates)
            # Try the key that worked first on the next sector: cards are uniform.
            candidates.remove(used)
            candidates.insert(0, used)
            out += self.read_block(block)
        return out

    def read_current(self, keys: MifareKeys | None = None) -> bytes | None:
        """The committed record bytes, or None when the card reads as blank."""
        return layout.read_current(lambda offset, length: self.read_image(offset, length, keys))

    def personalise(self, keys: MifareKeys) -> int:
        """Give every image sector the per-card keys and access bits; returns sectors changed.

        Sectors are done in order, so when the last one opens with the per-card
        key B the card is done; otherwise every sector that does not open with
        key B gets its trailer, and a personalisation torn half-way is finished
        by the next attempt.
        """
        per_card: Candidate = (KEY_B, keys.key_b)
        transport: Candidate = (KEY_A, keys.transport_key)
        # A trailer write torn after the new key A and access bits, before the
        # new key B, leaves a sector that opens only with the old key B.
        half_done: Candidate = (KEY_B, keys.transport_key)
        try:
            self.authenticate_sector(self.profile.sectors[-1], [per_card])
            return 0
        except errors.AuthenticationError:
            pass
        default = [per_card, transport, half_done]
        order = default
        changed = 0
        for sector in self.profile.sectors:
            used = self.authenticate_sector(sector, order)
            if used != per_card:
                self.update_block(sector * 4 + 3, sector_trailer(keys.key_a, keys.key_b))
                self._auth = None  # new keys apply from the next authentication
                changed += 1
            # Blank cards are blank throughout: ask for the likely key first. A half
            # done sector is the one torn: never try the old key B first on the next,
            # where a transport sector would let it in but refuse it the write.
            order = default if used == half_done else [used, *(c for c in default if c != used)]
        if changed:
            log.info("personalised %d sectors with per-card keys", changed)
        return changed

    def _write_image(self, writes: list[layout.Write], keys: MifareKeys) -> None:
        for offset, data in layout.split_writes(writes, BLOCK_SIZE):
            block = self._blocks[offset // BLOCK_SIZE]
            self.authenticate_sector(block // 4, [(KEY_B, keys.key_b)])
            self.update_block(block, data)

    def write_record(self, keys: MifareKeys, record: bytes) -> bytes:
        """Commit ``record`` (personalising a blank card) and return the read-back."""
        marker, current = layout.read_committed(
            lambda offset, length: self.read_image(offset, length, keys)
        )
        if current == record:
            return record
        self.personalise(keys)
        self._write_image(layout.plan_write(marker, record), keys)
        return self.read_current(keys) or b""

    def erase(self, keys: MifareKeys) -> None:
        """Erase the record: marker first, then both slots. Trailers stay as they are."""
        marker = self.read_image(layout.MARKER_OFFSET, layout.MARKER_SIZE, keys)
        writes = layout.plan_erase(marker)
        # A card never personalised is still writable with its transport key A.
        try:
            self._write_image(writes, keys)
        except errors.AuthenticationError:
            for offset, data in layout.split_writes(writes, BLOCK_SIZE):
                block = self._blocks[offset // BLOCK_SIZE]
                self.authenticate_sector(block // 4, [(KEY_A, keys.transport_key)])
                self.update_block(block, data)
        if self.read_current(keys) is not None:
            raise errors.CardCheckError("record still readable after erase")
