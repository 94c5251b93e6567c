"""Simulated MIFARE Classic 1K behind a PC/SC Part 3 contactless reader.

The model answers the reader's pseudo-APDUs the way a desk reader does for
this chip: GET DATA (UID), LOAD KEY into volatile slots, GENERAL AUTHENTICATE
against the sector trailer's key A or B, READ/UPDATE BINARY per 16-byte
block, with the access bits of each sector trailer enforced as NXP's data
sheet lays them out (including "key B readable: key B cannot be used").
Crypto1 itself is not simulated: authentication compares keys.
"""

from __future__ import annotations

from typing import Any

from cardreader.sim.base import (
    CardTorn,
    Command,
    SimCardBase,
    parse_command,
    random_uid,
    sw,
    with_atr_checksum,
)

SECTORS = 16
BLOCKS = SECTORS * 4
BLOCK_SIZE = 16
TRANSPORT_ACCESS = bytes.fromhex("FF078069")
KEY_SLOTS = 2
A, B = "A", "B"

# Data block conditions (C1, C2, C3) -> (keys that may read, keys that may write).
_DATA_RIGHTS: dict[tuple[int, int, int], tuple[str, str]] = {
    (0, 0, 0): ("AB", "AB"),
    (0, 1, 0): ("AB", ""),
    (1, 0, 0): ("AB", "B"),
    (1, 1, 0): ("AB", "B"),
    (0, 0, 1): ("AB", ""),
    (0, 1, 1): ("B", "B"),
    (1, 0, 1): ("B", ""),
    (1, 1, 1): ("", ""),
}
# Trailer conditions -> (write key A, read access, write access, read key B, write key B).
_TRAILER_RIGHTS: dict[tuple[int, int, int], tuple[str, str, str, str, str]] = {
    (0, 0, 0): ("A", "A", "", "A", "A"),
    (0, 1, 0): ("", "A", "", "A", ""),
    (1, 0, 0): ("B", "AB", "", "", "B"),
    (1, 1, 0): ("", "AB", "", "", ""),
    (0, 0, 1): ("A", "A", "A", "A", "A"),
    (0, 1, 1): ("B", "AB", "B", "", "B"),
    (1, 0, 1): ("", "AB", "B", "", ""),
    (1, 1, 1): ("", "AB", "", "", ""),
}


def decode_access(access: bytes) -> list[tuple[int, int, int]] | None:
    """Decode access bytes 6-8 into (C1, C2, C3) per block; None when malformed."""
    b6, b7, b8 = access[:3]
    c1, c2, c3 = b7 >> 4, b8 & 0x0F, b8 >> 4
    if (b6 & 0x0F) != (~c1 & 0x0F) or (b6 >> 4) != (~c2 & 0x0F) or (b7 & 0x0F) != (~c3 & 0x0F):
        return None
    return [((c1 >> i) & 1, (c2 >> i) & 1, (c3 >> i) & 1) for i in range(4)]


class SimMifareCard(SimCardBase):
    """The MIFARE Classic 1K model."""

    card_type = "mifare1k"
    # PC/SC Part 3 ATR for a storage card: RID A0 00 00 03 06, standard 03, name 00 01 (1K).
    atr = with_atr_checksum(bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")[:-1])

    def __init__(self, uid: bytes | None = None, transport_key: bytes = b"\xff" * 6) -> None:
        super().__init__(uid or random_uid(4))
        if len(self.uid) != 4:
            raise ValueError("this model is a 4-byte UID MIFARE Classic 1K")
        self.memory = bytearray(BLOCKS * BLOCK_SIZE)
        bcc = self.uid[0] ^ self.uid[1] ^ self.uid[2] ^ self.uid[3]
        manufacturer = self.uid + bytes([bcc, 0x08, 0x04, 0x00]) + bytes.fromhex("62636465666768")
        self.memory[:16] = manufacturer + b"\x00" * (16 - len(manufacturer))
        for sector in range(SECTORS):
            self._set_block(sector * 4 + 3, transport_key + TRANSPORT_ACCESS + transport_key)
        self.power_on()

    def _block(self, block: int) -> bytes:
        return bytes(self.memory[block * BLOCK_SIZE : (block + 1) * BLOCK_SIZE])

    def _set_block(self, block: int, data: bytes) -> None:
        self.memory[block * BLOCK_SIZE : (block + 1) * BLOCK_SIZE] = data

    # -- persistence -------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"type": self.card_type, "uid": self.uid.hex(), "memory": self.memory.hex()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SimMifareCard:
        """Rebuild a card from ``to_state`` data."""
        card = cls(bytes.fromhex(state["uid"]))
        card.memory = bytearray.fromhex(state["memory"])
        return card

    def load_memory(self, state: dict[str, Any]) -> None:
        """Copy another card's blocks 1..63; block 0 (UID) stays ours, as on a real chip."""
        source = bytes.fromhex(state["memory"])
        self.memory[BLOCK_SIZE:] = source[BLOCK_SIZE:]

    # -- volatile state ----------------------------------------------------
    def power_on(self) -> None:
        self.key_slots: list[bytes | None] = [None] * KEY_SLOTS
        self.auth: tuple[int, str] | None = None  # (sector, key) after a good authentication
        self.auth_unusable = False  # authenticated with a key B that is readable

    # -- commands ----------------------------------------------------------
    def process_apdu(self, apdu: bytes) -> bytes:
        command = parse_command(apdu)
        if command is None:
            return sw(0x6700)
        if command.cla != 0xFF:
            return sw(0x6E00)
        handler = {
            0xCA: self.get_uid,
            0x82: self._load_key,
            0x86: self._general_authenticate,
            0xB0: self._read_binary,
            0xD6: self._update_binary,
        }.get(command.ins)
        return handler(command) if handler else sw(0x6D00)

    def _load_key(self, command: Command) -> bytes:
        if command.p1 & 0x20:
            return sw(0x6987)  # no non-volatile key store in this reader
        if command.p1 != 0x00:
            return sw(0x6986)
        if command.p2 >= KEY_SLOTS:
            return sw(0x6988)
        if len(command.data) != 6:
            return sw(0x6700)
        self.key_slots[command.p2] = command.data
        return sw(0x9000)

    def _rights(self, sector: int) -> list[tuple[int, int, int]] | None:
        return decode_access(self._block(sector * 4 + 3)[6:9])

    def _general_authenticate(self, command: Command) -> bytes:
        if len(command.data) != 5:
            return sw(0x6700)
        version, msb, block, key_type, slot = command.data
        if version != 0x01:
            return sw(0x6A80)
        if msb or block >= BLOCKS:
            return sw(0x6A82)
        if key_type not in (0x60, 0x61):
            return sw(0x6986)
        if slot >= KEY_SLOTS:
            return sw(0x6988)
        key = self.key_slots[slot]
        if key is None:
            return sw(0x6984)
        sector = block // 4
        trailer = self._block(sector * 4 + 3)
        which = A if key_type == 0x60 else B
        stored = trailer[:6] if which == A else trailer[10:16]
        # A failed authentication halts the chip: the previous session is gone too.
        self.auth = None
        if key != stored:
            return sw(0x6300)
        self.auth = (sector, which)
        rights = self._rights(sector)
        self.auth_unusable = which == B and (rights is None or bool(self._key_b_readers(rights)))
        return sw(0x9000)

    @staticmethod
    def _key_b_readers(rights: list[tuple[int, int, int]]) -> str:
        return _TRAILER_RIGHTS[rights[3]][3]

    def _check(self, block: int) -> tuple[str, list[tuple[int, int, int]]] | bytes:
        if block >= BLOCKS:
            return sw(0x6A82)
        if self.auth is None or self.auth[0] != block // 4 or self.auth_unusable:
            return sw(0x6982)
        rights = self._rights(block // 4)
        if rights is None:
            return sw(0x6982)  # malformed access bits lock the sector for good
        return self.auth[1], rights

    def _read_binary(self, command: Command) -> bytes:
        if command.p1:
            return sw(0x6A82)
        checked = self._check(command.p2)
        if isinstance(checked, bytes):
            return checked
        if command.le not in (256, BLOCK_SIZE) or command.data:
            return sw(0x6C00 | BLOCK_SIZE)
        key, rights = checked
        block = command.p2
        if block % 4 != 3:
            if key not in _DATA_RIGHTS[rights[block % 4]][0]:
                return sw(0x6982)
            return self._block(block) + sw(0x9000)
        trailer = self._block(block)
        _wa, read_access, _w, read_b, _wb = _TRAILER_RIGHTS[rights[3]]
        access = trailer[6:10] if key in read_access else bytes(4)
        key_b = trailer[10:16] if key in read_b else bytes(6)
        # Key A never reads back.
        return bytes(6) + access + key_b + sw(0x9000)

    def _update_binary(self, command: Command) -> bytes:
        if command.p1:
            return sw(0x6A82)
        if len(command.data) != BLOCK_SIZE:
            return sw(0x6700)
        checked = self._check(command.p2)
        if isinstance(checked, bytes):
            return checked
        key, rights = checked
        block = command.p2
        if block == 0:
            return sw(0x6982)  # manufacturer block is read-only
        if block % 4 != 3:
            if key not in _DATA_RIGHTS[rights[block % 4]][1]:
                return sw(0x6982)
            return self._write_block(block, command.data)
        write_a, _ra, write_access, _rb, write_b = _TRAILER_RIGHTS[rights[3]]
        if key not in write_a + write_access + write_b:
            return sw(0x6982)
        # Parts the current conditions protect keep their old value.
        new = bytearray(self._block(block))
        if key in write_a:
            new[:6] = command.data[:6]
        if key in write_access:
            new[6:10] = command.data[6:10]
        if key in write_b:
            new[10:16] = command.data[10:16]
        return self._write_block(block, bytes(new))

    def _write_block(self, block: int, data: bytes) -> bytes:
        stored, torn = self.store(self._block(block), data)
        self._set_block(block, stored)
        self.changed()
        if torn:
            # A torn trailer can leave a key half written: on a real chip that
            # sector is lost, and here too.
            raise CardTorn(f"torn inside UPDATE BINARY of block {block}")
        return sw(0x9000)
