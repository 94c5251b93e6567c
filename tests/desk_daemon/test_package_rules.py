"""Rules of the cardreader package: its dependencies, its logging, its simulator process."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cardreader_testkit import CPU_KEYS, MIFARE_KEYS, make_record

import cardreader
from cardreader.protocol import card
from cardreader.sim.cpu import SimCpuCard
from cardreader.sim.mifare import SimMifareCard
from cardreader.transport.base import APDU_TRACE
from cardreader.transport.memory import MemoryReader

PACKAGE = Path(cardreader.__file__).parent


def test_no_flask_no_anjuka_and_one_smartcard_import():
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text()
        assert "import flask" not in source.lower(), path
        assert "from anjuka" not in source, path
        assert "import anjuka" not in source, path
        if path.name != "pcsc.py":
            assert not re.search(r"^\s*(from|import)\s+smartcard\b", source, re.M), path
    code = (
        "import sys, cardreader.daemon, cardreader.cli, cardreader.sim.cli, cardreader.record;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('flask', 'anjuka', 'smartcard')];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_info_logs_carry_no_apdus_or_keys_and_the_trace_level_does(caplog):
    secrets = [CPU_KEYS["write_key"], MIFARE_KEYS["key_b"]]
    for sim, keys in ((SimCpuCard(), CPU_KEYS), (SimMifareCard(), MIFARE_KEYS)):
        reader = MemoryReader(card=sim)
        with caplog.at_level(logging.DEBUG):
            card.write_record(reader.wait_for_card(1), keys, make_record(sim.uid))
        text = caplog.text.lower().replace(" ", "")
        assert not [s for s in secrets if s in text]
        assert make_record(sim.uid).hex()[:40] not in text
        caplog.clear()
    sim = SimCpuCard()
    reader = MemoryReader(card=sim)
    with caplog.at_level(APDU_TRACE, logger="cardreader.apdu"):
        card.read_uid(reader.wait_for_card(1))
    assert ">> ff ca 00 00 00" in caplog.text
    assert sim.uid.hex(" ") in caplog.text


def test_simulator_reconnects_when_vpcd_restarts(tmp_path):
    """Drop the connection as a restarting vpcd does: the card comes back by itself."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cardreader.sim.cli", "--type", "cpu", "--reader-port", str(port)]
        + ["--uid", "01020304", "--state", str(tmp_path / "card.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(2):
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"\x00\x05" + bytes.fromhex("FFCA000000"))
                assert conn.recv(64) == b"\x00\x06" + bytes.fromhex("010203049000")
        listener.close()  # vpcd gone altogether: the simulator keeps retrying
        proc.send_signal(15)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.hardware
def test_real_reader_reads_a_card():
    """Collected only with --hardware-reader NAME (or ANJUKA_HARDWARE_READER) and a card on it."""
    from cardreader.transport.pcsc import PcscReader

    presented = card.present_card(PcscReader(os.environ["ANJUKA_HARDWARE_READER"]), 30)
    assert presented is not None, "no card on the hardware reader"
    assert presented.card_type in card.CARD_TYPES
    assert 4 <= len(presented.uid) <= 10
    record = card.read_record(presented.connection, presented.card_type)
    assert record is None or len(record) == 113
