"""Per-job card keys as docs/job-protocol.md sends them ("Keys sent with a job")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, repr=False)
class CpuKeys:
    """3DES keys (16 bytes each) of a CPU card."""

    transport_key: bytes
    write_key: bytes
    internal_key: bytes

    def __repr__(self) -> str:
        return "CpuKeys(<hidden>)"  # keys never reach a log line


@dataclass(frozen=True, repr=False)
class MifareKeys:
    """6-byte keys of a MIFARE Classic card: transport (blank), A (read), B (write)."""

    transport_key: bytes
    key_a: bytes
    key_b: bytes

    def __repr__(self) -> str:
        return "MifareKeys(<hidden>)"


CardKeys = CpuKeys | MifareKeys


def _key(raw: Mapping[str, str], name: str, size: int) -> bytes:
    try:
        value = bytes.fromhex(raw[name])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"key {name!r} missing or not hex") from None
    if len(value) != size:
        raise ValueError(f"key {name!r} must be {size} bytes")
    return value


def parse_keys(card_type: str, raw: Mapping[str, str]) -> CardKeys:
    """Turn a job's ``keys`` object into key bytes for ``card_type``."""
    if card_type == "cpu":
        return CpuKeys(
            _key(raw, "transport_key", 16),
            _key(raw, "write_key", 16),
            _key(raw, "internal_key", 16),
        )
    if card_type == "mifare1k":
        return MifareKeys(
            _key(raw, "transport_key", 6), _key(raw, "key_a", 6), _key(raw, "key_b", 6)
        )
    raise ValueError(f"unknown card type {card_type!r}")
