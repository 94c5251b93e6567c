"""The simulated cards answer as the real ones do, and speak vpcd's protocol."""

import json
import socket
import threading

import pytest

from cardreader.protocol.cpu import des3_ecb_encrypt
from cardreader.sim import cli as sim_cli
from cardreader.sim.cpu import SimCpuCard
from cardreader.sim.mifare import SimMifareCard
from cardreader.sim.state import card_from_state, load_state, save_state
from cardreader.sim.vpcd import VpcdLink, serve

AID = "F0414E4A554B4101"


def ask(card, hex_apdu: str) -> str:
    return card.process_apdu(bytes.fromhex(hex_apdu)).hex().upper()


def test_cpu_status_words():
    card = SimCpuCard(uid=bytes.fromhex("01020304"))
    assert ask(card, "FFCA000000") == "010203049000"
    assert ask(card, "00A4040008A000000003000000") == "6A82"
    assert ask(card, "00B0000010") == "6986"  # no EF selected
    assert ask(card, "00A4040008" + AID).startswith("61")
    assert ask(card, "00C0000020").startswith("6C")  # wrong Le for GET RESPONSE
    assert ask(card, "00A4020C020002") == "6A82"
    assert ask(card, "00A4020C020001") == "9000"
    assert ask(card, "00B001F020") == "6C10"  # 16 bytes left at offset 0x1F0
    assert ask(card, "00B0020001") == "6B00"
    assert ask(card, "00D6000002AAAA") == "6982"  # no authentication
    assert ask(card, "0084000004") == "6700"
    assert ask(card, "0082000108" + "00" * 8) == "6985"  # no challenge first
    assert ask(card, "0082000208" + "00" * 8) == "6A88"
    assert ask(card, "00E0000000") == "6D00"
    assert ask(card, "10B0000010") == "6E00"
    assert ask(card, "00B000") == "6700"


def test_cpu_authentication_and_key_check_value():
    card = SimCpuCard()
    assert ask(card, "00A4040C08" + AID) == "9000"
    assert ask(card, "00A4020C020001") == "9000"
    challenge = card.process_apdu(bytes.fromhex("0084000008"))[:8]
    cryptogram = des3_ecb_encrypt(b"\xff" * 16, challenge)
    assert ask(card, "0082000108" + cryptogram.hex()) == "9000"
    assert ask(card, "00D601FE04AABBCCDD") == "6A84"  # past the end of the EF
    assert ask(card, "00D6000004AABBCCDD") == "9000"
    # WRITE KEY with a key check value that does not match: 6988.
    new_key = bytes(range(16))
    wrapped = des3_ecb_encrypt(b"\xff" * 16, new_key)
    assert ask(card, "80D4000113" + wrapped.hex() + "000000") == "6988"
    kcv = des3_ecb_encrypt(new_key, bytes(8))[:3]
    assert ask(card, "80D4000113" + wrapped.hex() + kcv.hex()) == "9000"
    assert card.keys[1] == new_key
    # Re-selecting the application drops the security status.
    ask(card, "00A4040C08" + AID)
    ask(card, "00A4020C020001")
    assert ask(card, "00D6000004AABBCCDD") == "6982"


def test_mifare_status_words():
    card = SimMifareCard(uid=bytes.fromhex("0a0b0c0d"))
    assert ask(card, "FFCA000000") == "0A0B0C0D9000"
    assert ask(card, "FFCA010000") == "6A81"
    assert ask(card, "FF82000206FFFFFFFFFFFF") == "6988"  # key slot not valid
    assert ask(card, "FF82200006FFFFFFFFFFFF") == "6987"
    assert ask(card, "FF82000005FFFFFFFFFF") == "6700"
    assert ask(card, "FF860000050100046001") == "6984"  # slot 1 never loaded
    assert ask(card, "FFB0000410") == "6982"  # not authenticated
    assert ask(card, "FF82000006FFFFFFFFFFFF") == "9000"
    assert ask(card, "FF860000050100406000") == "6A82"  # block 64 does not exist
    assert ask(card, "FF860000050100046200") == "6986"  # key type not known
    assert ask(card, "FF860000050100046000") == "9000"
    assert ask(card, "FFB0000408") == "6C10"
    assert ask(card, "FFB0000410") == "00" * 16 + "9000"
    assert ask(card, "FFD600040F" + "00" * 15) == "6700"
    assert ask(card, "FFB0000810") == "6982"  # other sector
    assert ask(card, "FF82000006000000000000") == "9000"
    assert ask(card, "FF860000050100086000") == "6300"  # wrong key
    assert ask(card, "FFB0000410") == "6982"  # and the old session is gone
    # Transport configuration: key B is readable, so it cannot be used.
    ask(card, "FF82000006FFFFFFFFFFFF")
    assert ask(card, "FF860000050100006100") == "9000"
    assert ask(card, "FFB0000110") == "6982"
    assert ask(card, "FF860000050100006000") == "9000"
    assert ask(card, "FFD6000010" + "00" * 16) == "6982"  # block 0 is read-only
    assert ask(card, "FFB0000010").startswith("0A0B0C0D")


def test_mifare_malformed_access_bits_lock_the_sector():
    card = SimMifareCard()
    ask(card, "FF82000006FFFFFFFFFFFF")
    ask(card, "FF860000050100046000")
    assert ask(card, "FFD6000710" + "FF" * 6 + "FFFFFF69" + "FF" * 6) == "9000"
    ask(card, "FF860000050100046000")
    assert ask(card, "FFB0000410") == "6982"


def test_state_roundtrip_and_clone(tmp_path):
    for cls in (SimCpuCard, SimMifareCard):
        card = cls()
        path = tmp_path / f"{card.card_type}.json"
        save_state(card, path)
        again = card_from_state(load_state(path))
        assert again.to_state() == card.to_state()
        clone = cls()
        clone.load_memory(card.to_state())
        assert clone.uid != card.uid
    (tmp_path / "bad.json").write_text(json.dumps({"type": "floppy"}))
    with pytest.raises(ValueError, match="not a simulated card"):
        load_state(tmp_path / "bad.json")


def test_cli_refuses_a_state_of_another_type(tmp_path):
    path = tmp_path / "card.json"
    save_state(SimCpuCard(), path)
    args = sim_cli.build_parser().parse_args(["--type", "mifare1k", "--state", str(path)])
    with pytest.raises(SystemExit, match="cpu card"):
        sim_cli.make_card(args)
    args = sim_cli.build_parser().parse_args(
        ["--type", "cpu", "--state", str(path), "--uid", "00000000"]
    )
    with pytest.raises(SystemExit, match="UID"):
        sim_cli.make_card(args)
    for bad, message in (
        (["--uid", "0102"], "4 bytes"),
        (["--transport-key", "ffff"], "6 bytes"),
        (["--uid", "zz"], "hex"),
    ):
        args = sim_cli.build_parser().parse_args(["--type", "mifare1k", *bad])
        with pytest.raises(SystemExit, match=message):
            sim_cli.make_card(args)
    args = sim_cli.build_parser().parse_args(["--type", "cpu", "--transport-key", "00" * 16])
    assert sim_cli.make_card(args).keys[1] == bytes(16)


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(2, "big") + payload


def read_frame(sock: socket.socket) -> bytes:
    size = int.from_bytes(sock.recv(2), "big")
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


@pytest.mark.parametrize("tear_after", [None, 1])
def test_vpcd_framing_controls_and_tear(tear_after):
    """A fake vpcd on 127.0.0.1: ATR on control 4, APDUs answered, tear closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    card = SimMifareCard(uid=bytes.fromhex("11223344"))
    stop = threading.Event()
    result: list[str] = []

    def run() -> None:
        result.append(serve(card, VpcdLink(port=port), stop, tear_after))

    thread = threading.Thread(target=run)
    thread.start()
    conn, _ = listener.accept()
    with conn:
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # vpcd's side
        conn.sendall(frame(b"\x01") + frame(b"\x04"))
        assert read_frame(conn) == card.atr
        conn.sendall(frame(bytes.fromhex("FFCA000000")))
        assert read_frame(conn) == bytes.fromhex("112233449000")
        conn.sendall(frame(bytes.fromhex("FFCA000000")))
        if tear_after is None:
            assert read_frame(conn) == bytes.fromhex("112233449000")
            stop.set()
        else:
            assert conn.recv(2) == b""  # the card left instead of answering
        thread.join(5)
    listener.close()
    assert result == ["stopped" if tear_after is None else "torn"]
