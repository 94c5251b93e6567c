"""Personalisation profiles: what a blank card of each type looks like, and how it becomes ours.

Both profiles are public (docs/card-format.md): the security rests on the
per-card keys the server derives and on the record's signature.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardreader import layout


@dataclass(frozen=True)
class CpuProfile:
    """FM1208-class ISO 7816-4 card with the Anju application pre-created by the supplier."""

    #: Proprietary AID (first nibble F: not registered): F0 + "ANJUKA" + version 01.
    aid: bytes = bytes.fromhex("F0414E4A554B4101")
    #: Transparent EF holding the layout image.
    ef_id: int = 0x0001
    ef_size: int = layout.IMAGE_SIZE
    #: EXTERNAL AUTHENTICATE key: the transport key on a blank card, then the per-card write key.
    external_key_id: int = 0x01
    #: INTERNAL AUTHENTICATE key: the transport key on a blank card, then the per-card internal key.
    internal_key_id: int = 0x02
    challenge_size: int = 8
    #: Supplier default on blank cards; the server may send another in the job.
    default_transport_key: bytes = b"\xff" * 16
    #: Largest UPDATE BINARY payload we send (a multiple of the layout unit).
    write_chunk: int = 240
    read_chunk: int = 256
    #: Key changes of personalisation, in order. The internal key goes first so that a
    #: card whose write key is already per-card always has its per-card internal key too.
    key_change_steps: tuple[tuple[int, str], ...] = ((0x02, "internal_key"), (0x01, "write_key"))


@dataclass(frozen=True)
class MifareProfile:
    """MIFARE Classic 1K through PC/SC Part 3 pseudo-APDUs."""

    #: Public, documented read key (ASCII "ANJUKA"): reading needs no secret.
    public_read_key: bytes = b"ANJUKA"
    #: Factory default key A/B of blank cards (transport configuration FF 07 80).
    default_transport_key: bytes = b"\xff" * 6
    #: Sectors holding the layout image: 0 (blocks 1-2) and 1..10 (3 blocks each).
    sectors: tuple[int, ...] = tuple(range(11))
    #: Access conditions (C1,C2,C3) of blocks 0,1,2 and the trailer after personalisation:
    #: data read with A or B, written with B only; trailer changed with B only.
    data_condition: tuple[int, int, int] = (1, 0, 0)
    trailer_condition: tuple[int, int, int] = (0, 1, 1)
    general_purpose_byte: int = 0x69
    #: Volatile reader key slots used for LOAD KEY.
    key_slot: int = 0x00

    @staticmethod
    def image_blocks() -> list[int]:
        """Physical blocks of the layout image in order (no block 0, no trailers)."""
        blocks = [b for b in range(64) if b % 4 != 3 and b != 0]
        return blocks[: layout.IMAGE_SIZE // 16]


CPU_PROFILE = CpuProfile()
MIFARE_PROFILE = MifareProfile()
