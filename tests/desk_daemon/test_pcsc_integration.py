"""Through the real stack: pyscard -> pcscd -> vpcd -> ``anjuka-cardsim`` processes.

These tests need pcscd with the vpcd readers (the ``pcscd`` fixture starts it
if it is not running) and fail, never skip, when it cannot be reached.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cardreader_testkit import JOB_KEYS, KEY_ID, SIGNING_KEY, make_record, new_sim
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cardreader.protocol import card
from cardreader.record import BadSignatureError, verify_record
from cardreader.sim.state import save_state
from cardreader.transport.base import CardRemovedError
from cardreader.transport.memory import MemoryReader
from cardreader.transport.pcsc import PcscReader

pytestmark = pytest.mark.pcsc
PUBLIC = {KEY_ID: SIGNING_KEY.public_key()}
PORT = {"cpu": 35963, "mifare1k": 35964}


def prepare_state(card_type: str, path: Path, residence_id: int | None = None) -> bytes:
    """Save a blank card (or one holding a record) to ``path``; return its UID."""
    sim = new_sim(card_type)
    if residence_id is not None:
        reader = MemoryReader(card=sim)
        card.write_record(
            reader.wait_for_card(1), JOB_KEYS[card_type], make_record(sim.uid, residence_id)
        )
    save_state(sim, path)
    return sim.uid


_READERS: dict[str, PcscReader] = {}


def present(name: str, uid: bytes | None = None, timeout: float = 5.0) -> card.PresentedCard:
    """The card in reader ``name`` (the one with ``uid``, when given).

    One PcscReader per name: pcscd limits the contexts a process may hold.
    """
    reader = _READERS.setdefault(name, PcscReader(name))
    deadline = time.monotonic() + timeout
    while True:
        presented = card.present_card(reader, max(0.0, deadline - time.monotonic()))
        assert presented is not None, f"no card in {name}"
        if uid is None or presented.uid == uid:
            return presented
        # pcscd has not yet seen the previous simulator leave.
        presented.connection.close()
        assert time.monotonic() < deadline, f"card {uid.hex()} never came to {name}"
        time.sleep(0.05)


def test_write_read_back_and_move_to_the_other_reader(cardsim, card_type, tmp_path):
    state = tmp_path / "card.json"
    uid = prepare_state(card_type, state)
    sim = cardsim(card_type, port=35963, state=state)
    presented = present(sim.reader_name)
    assert presented.card_type == card_type
    assert presented.uid == uid
    assert card.read_record(presented.connection) is None
    record = make_record(uid)
    assert card.write_record(presented.connection, JOB_KEYS[card_type], record) == record
    presented.connection.close()
    sim.stop()
    # The same card, taken to the other reader: its state file travels with it.
    other = cardsim(card_type, port=35964, state=state)
    presented = present(other.reader_name)
    assert presented.uid == uid
    assert verify_record(card.read_record(presented.connection), uid, PUBLIC).residence_id == 42
    card.erase(presented.connection, JOB_KEYS[card_type])
    assert card.read_record(presented.connection) is None


def test_clone_presents_a_record_that_does_not_verify(cardsim, tmp_path):
    original = tmp_path / "original.json"
    prepare_state("mifare1k", original, residence_id=5)
    sim = cardsim("mifare1k", state=tmp_path / "clone.json", clone_of=original)
    presented = present(sim.reader_name)
    data = card.read_record(presented.connection)
    assert data == make_record(bytes.fromhex(_uid_of(original)), 5)
    with pytest.raises(BadSignatureError):
        verify_record(data, presented.uid, PUBLIC)


def _uid_of(state: Path) -> str:
    import json

    return str(json.loads(state.read_text())["uid"])


def _memory_reader(state: Path) -> MemoryReader:
    from cardreader.sim.state import card_from_state, load_state

    return MemoryReader(card=card_from_state(load_state(state)))


def _classify(found: bytes | None, old: bytes | None, uid: bytes) -> str:
    assert found is None or found == old or verify_record(found, uid, PUBLIC)
    return "blank" if found is None else "old" if found == old else "new"


def _check_outcomes(outcomes: list[str], start: str) -> None:
    """Before the commit: the starting state; after it (read-back): the new record."""
    assert set(outcomes) <= {start, "new"}, outcomes
    first_new = outcomes.index("new") if "new" in outcomes else len(outcomes)
    assert outcomes[first_new:] == ["new"] * (len(outcomes) - first_new), outcomes
    assert len(outcomes) - first_new <= 14, outcomes  # only the read-back after the marker


def _image_of(state: Path) -> bytes:
    """The layout image in a simulator's saved memory (what the chip holds)."""
    from cardreader.protocol.profiles import MIFARE_PROFILE
    from cardreader.sim.state import load_state

    data = load_state(state)
    memory = bytes.fromhex(data["memory"])
    if data["type"] == "cpu":
        return memory
    return b"".join(memory[b * 16 : b * 16 + 16] for b in MIFARE_PROFILE.image_blocks())


def test_tear_after_every_apdu_of_a_first_issuance(cardsim, card_type, tmp_path):
    """Blank card, a simulator per tear point (two readers in parallel): the chip then
    holds nothing or, once the marker is written, the new record; a retry finishes."""
    from cardreader.layout import parse_image

    base = tmp_path / "blank.json"
    prepare_state(card_type, base)
    reader = _memory_reader(base)
    card.write_record(reader.wait_for_card(1), JOB_KEYS[card_type], make_record(reader.card.uid))
    total = reader.apdu_count
    outcomes: dict[int, str] = {}
    states: dict[int, tuple[Path, bytes]] = {}

    def tear_case(port: int, index: int) -> None:
        state = tmp_path / f"card-{index}.json"
        uid = prepare_state(card_type, state)
        # APDU 1 is GET UID; the tear hits write_record's (index+1)th APDU.
        sim = cardsim(card_type, port=port, state=state, tear_after=1 + index)
        presented = present(sim.reader_name, uid)
        with pytest.raises(CardRemovedError):
            card.write_record(presented.connection, JOB_KEYS[card_type], make_record(uid))
        assert sim.wait_exit() == 0
        outcomes[index] = _classify(parse_image(_image_of(state)), None, uid)
        states[index] = (state, uid)

    def worker(port: int, indexes: range) -> None:
        for index in indexes:
            tear_case(port, index)

    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(worker, 35963, range(0, total, 2)),
            pool.submit(worker, 35964, range(1, total, 2)),
        ]
        for future in futures:
            future.result()
    _check_outcomes([outcomes[i] for i in range(total)], "blank")
    # Retry on cards torn mid-personalisation and just before the commit.
    last_blank = max(i for i, outcome in outcomes.items() if outcome == "blank")
    for index in (total // 4, last_blank):
        state, uid = states[index]
        sim = cardsim(card_type, port=PORT[card_type], state=state)
        presented = present(sim.reader_name, uid)
        assert card.write_record(presented.connection, JOB_KEYS[card_type], make_record(uid))
        assert card.read_record(presented.connection) == make_record(uid)
        presented.connection.close()


def _reissue_chain(
    connect: Callable[[], card.PresentedCard],
    card_type: str,
    uid: bytes,
    tears: list[int],
    reader: MemoryReader | None = None,
) -> tuple[list[str], list[int]]:
    """Re-issue record k+2 over k+1, torn at tears[k] APDUs into each write.

    In memory (``reader`` given) the tears are set here and the per-insertion
    APDU counts the simulator needs are returned; through pcscd the
    simulator already holds them.
    """
    keys = JOB_KEYS[card_type]
    outcomes, per_insertion = [], []
    sim_card = reader.card if reader is not None else None
    presented = connect()
    done_in_insertion = 1
    for k, index in enumerate(tears):
        old, new = make_record(uid, k + 1), make_record(uid, k + 2)
        if reader is not None:
            per_insertion.append(done_in_insertion + index)
            reader.tear_after(index)
        with pytest.raises(CardRemovedError):
            card.write_record(presented.connection, keys, new, card_type)
        if reader is not None:
            reader.insert(sim_card)
            start = reader.apdu_count
        presented = connect()
        outcomes.append(_classify(card.read_record(presented.connection, card_type), old, uid))
        assert card.write_record(presented.connection, keys, new, card_type) == new
        if reader is not None:
            done_in_insertion = reader.apdu_count - start
    return outcomes, per_insertion


def test_tear_after_every_apdu_of_a_reissue(cardsim, card_type, tmp_path):
    """Card holding a record: old-or-blank until the commit, one simulator for all tears."""
    base = tmp_path / "issued.json"
    uid = prepare_state(card_type, base, residence_id=1)
    probe = _memory_reader(base)
    card.write_record(probe.wait_for_card(1), JOB_KEYS[card_type], make_record(uid, 2))
    total = probe.apdu_count
    # Each chain is rehearsed in memory first, to learn where each tear falls in
    # its insertion; the simulator is then started with those tear points.
    chains = {35963: list(range(0, total, 2)), 35964: list(range(1, total, 2))}
    results: dict[int, list[str]] = {}

    def run_chain(port: int) -> None:
        state = tmp_path / f"chain-{port}.json"
        shutil.copy(base, state)
        memory = _memory_reader(state)

        def memory_connect() -> card.PresentedCard:
            presented = card.present_card(memory, 1)
            assert presented is not None
            return presented

        expected, per_insertion = _reissue_chain(
            memory_connect, card_type, uid, chains[port], memory
        )
        sim = cardsim(
            card_type, port=port, state=state, tear_after=per_insertion, reinsert_after=0.05
        )
        outcomes, _ = _reissue_chain(
            lambda: present(sim.reader_name, uid), card_type, uid, chains[port]
        )
        assert outcomes == expected
        results[port] = outcomes

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(run_chain, port) for port in chains]:
            future.result()
    merged = [results[35963 if i % 2 == 0 else 35964][i // 2] for i in range(total)]
    _check_outcomes(merged, "old")


# -- an independent verifier, written from docs/card-format.md only ------------

AID = "F0 41 4E 4A 55 4B 41 01"
READ_KEY = "41 4E 4A 55 4B 41"


def scriptor(reader_name: str, lines: list[str], tmp_path: Path) -> list[bytes]:
    """Run pcsc-tools' scriptor; return each response (data + SW) in order."""
    script = tmp_path / "script.txt"
    script.write_text("\n".join(lines) + "\n")
    binary = shutil.which("scriptor")
    assert binary, "scriptor (pcsc-tools) is not installed"
    out = subprocess.run(
        [binary, "-r", reader_name, str(script)],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    responses = []
    for block in out.split("\n> ")[1:]:
        answer = block.split("\n< ", 1)[1]
        answer = answer.split(" : ", 1)[0]
        responses.append(bytes.fromhex(re.sub(r"\s+", "", answer)))
    assert len(responses) == len(lines), out
    return responses


def parse_image_per_doc(image: bytes) -> bytes | None:
    """Section 4 of docs/card-format.md, from scratch."""
    marker = image[0:16]
    if marker[0:4] != b"AJCM" or marker[11] != 0:
        return None
    if struct.unpack(">I", marker[12:16])[0] != zlib.crc32(marker[0:12]):
        return None
    state = marker[4]
    seq, length = struct.unpack(">IH", marker[5:11])
    if state not in (0, 1):
        return None
    slot = image[(32, 272)[state] :][:240]
    if slot[0:4] != b"AJSL" or slot[10:12] != b"\0\0":
        return None
    if struct.unpack(">IH", slot[4:10]) != (seq, length) or length > 224:
        return None
    record = slot[16 : 16 + length]
    if struct.unpack(">I", slot[12:16])[0] != zlib.crc32(slot[0:12] + record):
        return None
    return record


def verify_per_doc(record: bytes, uid: bytes, keys: dict[int, Ed25519PublicKey]) -> dict:
    """Sections 1-3 of docs/card-format.md, from scratch."""
    assert len(record) == 113
    assert record[0:2] == b"AJ"
    assert record[2] == 1
    key_id = struct.unpack(">H", record[47:49])[0]
    message = b"Anjuka card record v1\x00" + bytes([len(uid)]) + uid + record[:49]
    keys[key_id].verify(record[49:], message)  # raises InvalidSignature
    return {
        "card_no": record[3:19].rstrip(b"\0").decode("ascii"),
        "residence_id": struct.unpack(">Q", record[19:27])[0],
        "area_code": record[27:39].rstrip(b"\0").decode("ascii"),
        "valid_days": struct.unpack(">II", record[39:47]),
    }


def read_with_scriptor(card_type: str, reader_name: str, tmp_path: Path) -> tuple[bytes, bytes]:
    """UID and the 512-byte image, read by scriptor with the documented APDUs."""
    if card_type == "cpu":
        lines = [
            "FF CA 00 00 00",
            f"00 A4 04 0C 08 {AID}",
            "00 A4 02 0C 02 00 01",
            "00 B0 00 00 00",
            "00 B0 01 00 00",
        ]
        responses = scriptor(reader_name, lines, tmp_path)
        assert all(r[-2:] == b"\x90\x00" for r in responses)
        return responses[0][:-2], responses[3][:-2] + responses[4][:-2]
    blocks = [b for b in range(1, 43) if b % 4 != 3]
    lines = ["FF CA 00 00 00", f"FF 82 00 00 06 {READ_KEY}"]
    for block in blocks:
        if block in (1,) or block % 4 == 0:
            lines.append(f"FF 86 00 00 05 01 00 {block:02X} 60 00")
        lines.append(f"FF B0 00 {block:02X} 10")
    responses = scriptor(reader_name, lines, tmp_path)
    assert all(r[-2:] == b"\x90\x00" for r in responses), responses
    reads = [r[:-2] for line, r in zip(lines, responses, strict=True) if line.startswith("FF B0")]
    return responses[0][:-2], b"".join(reads)


def test_scriptor_reads_a_card_that_a_from_the_doc_verifier_accepts(cardsim, card_type, tmp_path):
    state = tmp_path / "card.json"
    uid = prepare_state(card_type, state, residence_id=77)
    sim = cardsim(card_type, port=PORT[card_type], state=state)
    read_uid, image = read_with_scriptor(card_type, sim.reader_name, tmp_path)
    assert read_uid == uid
    assert len(image) == 512
    record = parse_image_per_doc(image)
    assert record is not None
    fields = verify_per_doc(record, read_uid, {KEY_ID: SIGNING_KEY.public_key()})
    assert fields["residence_id"] == 77
    assert fields["card_no"] == "AJ00000012Q"
    with pytest.raises(InvalidSignature):
        verify_per_doc(record, read_uid[::-1], {KEY_ID: SIGNING_KEY.public_key()})


# -- the daemon process through pcscd --------------------------------------------


def test_daemon_process_issues_through_a_torn_write_and_erases(cardsim, tmp_path):
    """``anjuka-cardreader`` against a fake server: pulled mid-write, reconciled, erased."""
    import os
    import signal
    import sys

    from fake_job_server import TOKEN, FakeJobServer, derive_keys

    server = FakeJobServer(SIGNING_KEY, KEY_ID)
    server.start()
    state = tmp_path / "card.json"
    uid = prepare_state("mifare1k", state)
    # Torn in the middle of the first write; the card comes back 0.3 s later.
    sim = cardsim("mifare1k", state=state, tear_after=30, reinsert_after=0.3)
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "cardreader.cli", "--server", server.url]
            + ["--reader", sim.reader_name, "--journal", str(tmp_path / "journal.json")]
            + ["--card-timeout", "10", "--poll-wait", "1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANJUKA_READER_TOKEN": TOKEN},
        )
    try:
        issue = server.add_job("issue")
        deadline = time.monotonic() + 20
        while issue.status != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.outcomes(issue) == ["unknown", "done"], log.read_text()
        erase = server.add_job("erase", uid=uid.hex(), card_type="mifare1k")
        while erase.status != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.outcomes(erase) == ["done"], log.read_text()
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(40)
        server.stop()
    assert code == 0
    assert ("GET", "/api/v1/readers/me") in server.requests
    holder = (tmp_path / "holder").read_text().strip()
    assert holder
    assert set(server.holders) == {holder}
    assert server.jobs[1].uid == uid.hex()
    text = log.read_text()
    assert "job 1: reported done" in text
    secrets = [
        derive_keys("mifare1k", uid.hex())["key_b"],
        server.record_for(issue, uid.hex()).hex(),
    ]
    assert not [secret for secret in secrets if secret in text.lower()]
    sim.stop()
    from cardreader.layout import parse_image

    assert parse_image(_image_of(state)) is None  # erased on the chip itself
