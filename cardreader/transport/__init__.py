"""Transports: how APDUs reach a card (PC/SC through pyscard, or in memory)."""

from cardreader.transport.base import (
    CardRemovedError,
    Connection,
    NoReaderError,
    Reader,
    TransportError,
)

__all__ = ["CardRemovedError", "Connection", "NoReaderError", "Reader", "TransportError"]
