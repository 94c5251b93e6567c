"""APDU building, status words, and the 61xx / 6Cxx exchange rules of ISO 7816-4."""

from __future__ import annotations

from enum import IntEnum

from cardreader.protocol import errors
from cardreader.transport.base import Connection


class SW(IntEnum):
    """Status words Anjuka's cards and readers answer with."""

    OK = 0x9000
    END_OF_FILE = 0x6282
    NO_INFORMATION = 0x6300
    VERIFY_FAILED = 0x63C0  # low nibble: tries left
    WRONG_LENGTH = 0x6700
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED = 0x6986
    KEY_NUMBER_NOT_VALID = 0x6988  # PC/SC Part 3; on FMCOS-style cards: bad key check / MAC
    INCORRECT_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1P2 = 0x6A86
    REFERENCE_DATA_NOT_FOUND = 0x6A88
    WRONG_PARAMETERS = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00


_ERRORS: dict[int, tuple[type[errors.ApduError], str]] = {
    SW.NO_INFORMATION: (errors.AuthenticationError, "authentication failed"),
    SW.WRONG_LENGTH: (errors.WrongLength, "wrong length"),
    SW.SECURITY_STATUS_NOT_SATISFIED: (
        errors.SecurityStatusNotSatisfied,
        "security status not satisfied",
    ),
    SW.AUTH_METHOD_BLOCKED: (errors.AuthenticationBlocked, "authentication method blocked"),
    SW.REFERENCE_DATA_NOT_USABLE: (errors.ReferenceDataNotUsable, "reference data not usable"),
    SW.CONDITIONS_NOT_SATISFIED: (errors.ConditionsNotSatisfied, "conditions not satisfied"),
    SW.COMMAND_NOT_ALLOWED: (errors.CommandNotAllowed, "command not allowed"),
    SW.KEY_NUMBER_NOT_VALID: (errors.InvalidKeyData, "key number or key data not valid"),
    SW.FUNCTION_NOT_SUPPORTED: (errors.NotSupported, "function not supported"),
    SW.FILE_NOT_FOUND: (errors.FileNotFound, "file or block not found"),
    SW.NOT_ENOUGH_MEMORY: (errors.NotEnoughMemory, "not enough memory in the file"),
    SW.INCORRECT_P1P2: (errors.WrongParameters, "incorrect P1/P2"),
    SW.WRONG_PARAMETERS: (errors.WrongParameters, "wrong parameters (offset)"),
    SW.REFERENCE_DATA_NOT_FOUND: (errors.FileNotFound, "referenced key not found"),
    SW.INS_NOT_SUPPORTED: (errors.NotSupported, "instruction not supported"),
    SW.CLA_NOT_SUPPORTED: (errors.NotSupported, "class not supported"),
}

# A card that keeps answering 61xx or 6Cxx is broken, not busy.
_MAX_EXCHANGES = 32


def build_apdu(
    cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None
) -> bytes:
    """Build a short command APDU; ``le=256`` is encoded as 00."""
    if len(data) > 255:
        raise ValueError("short APDUs carry at most 255 data bytes")
    if le is not None and not 1 <= le <= 256:
        raise ValueError("Le must be 1..256")
    apdu = bytes([cla, ins, p1, p2])
    if data:
        apdu += bytes([len(data)]) + bytes(data)
    if le is not None:
        apdu += bytes([le & 0xFF])
    return apdu


def error_for(sw: int, what: str = "") -> errors.ApduError:
    """Return the typed error for status word ``sw``."""
    cls: type[errors.ApduError]
    if sw & 0xFFF0 == SW.VERIFY_FAILED:
        cls, text = errors.AuthenticationError, f"authentication failed, {sw & 0xF} tries left"
    else:
        cls, text = _ERRORS.get(sw, (errors.ApduError, "card error"))
    return cls(sw, f"{what}: {text}" if what else text)


def check(sw: int, what: str = "") -> None:
    """Raise the typed error unless ``sw`` is 9000."""
    if sw != SW.OK:
        raise error_for(sw, what)


def transceive(connection: Connection, apdu: bytes) -> tuple[bytes, int]:
    """Send ``apdu``; fetch 61xx data with GET RESPONSE and re-send on 6Cxx.

    Returns the collected data and the final status word.
    """
    data, sw = connection.send_and_receive(apdu)
    collected = b""
    for _ in range(_MAX_EXCHANGES):
        if sw >> 8 == 0x6C:
            # Wrong Le: the card tells the exact length; re-send with it.
            apdu = _with_le(apdu, sw & 0xFF or 256)
            data, sw = connection.send_and_receive(apdu)
        elif sw >> 8 == 0x61:
            collected += data
            data, sw = connection.send_and_receive(
                build_apdu(apdu[0] & 0x03, 0xC0, 0, 0, le=(sw & 0xFF) or 256)
            )
        else:
            return collected + data, sw
    raise errors.CardCheckError("card keeps asking for another exchange (61xx/6Cxx loop)")


def _with_le(apdu: bytes, le: int) -> bytes:
    """Replace (or add) the Le byte of a short APDU."""
    if len(apdu) == 4:
        return apdu + bytes([le & 0xFF])
    if len(apdu) == 5:
        # Case 2: header + Le.
        return apdu[:4] + bytes([le & 0xFF])
    lc = apdu[4]
    return apdu[: 5 + lc] + bytes([le & 0xFF])


def command(connection: Connection, apdu: bytes, what: str = "") -> bytes:
    """Exchange ``apdu`` and return its data, raising the typed error unless 9000."""
    data, sw = transceive(connection, apdu)
    check(sw, what)
    return data
