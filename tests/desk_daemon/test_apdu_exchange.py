"""APDU building, status words, GET RESPONSE on 61xx and re-send on 6Cxx."""

import pytest

from cardreader.protocol import errors
from cardreader.protocol.apdu import SW, build_apdu, check, command, error_for, transceive
from cardreader.transport.base import Connection


class ScriptedConnection(Connection):
    """Answers APDUs from a script and records what was sent."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = list(answers)
        self.sent: list[bytes] = []

    @property
    def atr(self) -> bytes:
        return b"\x3b\x00"

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        self.sent.append(apdu)
        answer = self.answers.pop(0)
        return answer[:-2], int.from_bytes(answer[-2:], "big")


def test_build_apdu_cases():
    assert build_apdu(0, 0xA4, 4, 0) == bytes.fromhex("00A40400")
    assert build_apdu(0, 0xB0, 0, 0, le=16) == bytes.fromhex("00B0000010")
    assert build_apdu(0, 0xB0, 0, 0, le=256) == bytes.fromhex("00B0000000")
    assert build_apdu(0, 0xD6, 0, 1, b"\x01\x02") == bytes.fromhex("00D60001020102")
    assert build_apdu(0, 0x88, 0, 2, b"\xaa", le=8) == bytes.fromhex("0088000201AA08")
    with pytest.raises(ValueError, match="255"):
        build_apdu(0, 0xD6, 0, 0, bytes(256))
    with pytest.raises(ValueError, match="Le"):
        build_apdu(0, 0xB0, 0, 0, le=0)


def test_get_response_collects_61xx_chains():
    conn = ScriptedConnection([b"\x61\x04", b"abcd\x61\x02", b"ef\x90\x00"])
    data, sw = transceive(conn, bytes.fromhex("00A4040002F001"))
    assert (data, sw) == (b"abcdef", SW.OK)
    assert conn.sent[1] == bytes.fromhex("00C0000004")
    assert conn.sent[2] == bytes.fromhex("00C0000002")


def test_wrong_le_is_resent_with_the_exact_length():
    conn = ScriptedConnection([b"\x6c\x10", b"0123456789abcdef\x90\x00"])
    assert command(conn, bytes.fromhex("FFB0000400")) == b"0123456789abcdef"
    assert conn.sent[1] == bytes.fromhex("FFB0000410")


def test_61xx_uses_the_logical_channel_class_bits():
    conn = ScriptedConnection([b"\x61\x01", b"x\x90\x00"])
    transceive(conn, bytes.fromhex("8184000008"))
    assert conn.sent[1][0] == 0x01


def test_endless_61xx_is_an_error():
    conn = ScriptedConnection([b"\x61\x01"] * 40)
    with pytest.raises(errors.CardCheckError):
        transceive(conn, bytes.fromhex("00B0000001"))


@pytest.mark.parametrize(
    ("sw", "cls"),
    [
        (0x6300, errors.AuthenticationError),
        (0x63C2, errors.AuthenticationError),
        (0x6700, errors.WrongLength),
        (0x6982, errors.SecurityStatusNotSatisfied),
        (0x6983, errors.AuthenticationBlocked),
        (0x6985, errors.ConditionsNotSatisfied),
        (0x6988, errors.InvalidKeyData),
        (0x6A82, errors.FileNotFound),
        (0x6A84, errors.NotEnoughMemory),
        (0x6B00, errors.WrongParameters),
        (0x6D00, errors.NotSupported),
        (0x6F00, errors.ApduError),
    ],
)
def test_status_words_map_to_typed_errors(sw, cls):
    error = error_for(sw, "X")
    assert type(error) is cls
    assert error.sw == sw
    assert f"{sw:04X}" in str(error)
    with pytest.raises(cls):
        check(sw)


def test_tries_left():
    assert error_for(0x63C3).tries_left == 3
    assert error_for(0x6300).tries_left is None
    check(0x9000)
