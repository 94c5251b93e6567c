"""Cards through the whole stack: server over HTTP, daemon, pyscard, pcscd, vpcd, cardsim.

On SQLite and on PostgreSQL (the ``backend`` parameter).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import pytest
from integration_stack import READERS, Gate, Stack, wait_for

from cardreader.layout import parse_image
from cardreader.protocol import card
from cardreader.protocol.profiles import MIFARE_PROFILE
from cardreader.record import verify_record
from cardreader.sim.state import load_state
from cardreader.transport.pcsc import PcscReader

FIRST, SECOND = READERS[35963], READERS[35964]


@pytest.fixture(params=["cpu", "mifare1k"])
def card_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Chips:
    """Reads cards through pcscd like any PC/SC client (one context per reader name)."""

    def __init__(self) -> None:
        self._readers: dict[str, PcscReader] = {}

    def read(self, name: str, card_type: str) -> tuple[bytes, bytes | None]:
        """The UID and the committed record (None when blank) of the card in ``name``."""
        reader = self._readers.setdefault(name, PcscReader(name))
        presented = card.present_card(reader, 10)
        assert presented is not None, f"no card in {name}"
        try:
            return presented.uid, card.read_record(presented.connection, card_type)
        finally:
            presented.connection.close()

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()


@pytest.fixture
def chips(pcscd) -> Iterator[Chips]:  # type: ignore[no-untyped-def]
    reader = Chips()
    yield reader
    reader.close()


def _image_of(state) -> bytes:  # type: ignore[no-untyped-def]
    """The layout image a simulator's saved memory holds."""
    data = load_state(state)
    memory = bytes.fromhex(data["memory"])
    if data["type"] == "cpu":
        return memory
    return b"".join(memory[b * 16 : b * 16 + 16] for b in MIFARE_PROFILE.image_blocks())


def _job(stack: Stack, job_id: int) -> dict:
    response = stack.api("GET", f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _assert_chip_carries(stack: Stack, chips: Chips, name: str, card_json: dict) -> None:
    uid, record = chips.read(name, card_json["card_type"])
    assert uid.hex() == card_json["uid"]
    assert record is not None, "the chip reads as blank"
    verified = verify_record(record, uid, stack.public_keys())
    assert verified.card_no == card_json["card_no"]
    assert verified.residence_id == card_json["residence_id"]


def test_issue_activates_the_card_and_the_chip_verifies(
    stack, daemon, cardsim, chips, card_type, tmp_path
):
    reader_id, token = stack.new_reader()
    cardsim(card_type, port=35963, state=tmp_path / "card.json")
    daemon(token, FIRST)
    issued = stack.issue(reader_id)
    active = stack.wait_card(issued["card_no"], "active")
    assert active["card_type"] == card_type
    _assert_chip_carries(stack, chips, FIRST, active)
    job = _job(stack, issued["job_id"])
    assert (job["status"], job["attempt"], job["error"]) == ("done", 1, None)


def test_revoke_is_immediate_and_return_erases_the_chip(
    stack, daemon, cardsim, chips, card_type, tmp_path
):
    reader_id, token = stack.new_reader()
    cardsim(card_type, port=35963, state=tmp_path / "card.json")
    daemon(token, FIRST)
    issued = stack.issue(reader_id)
    active = stack.wait_card(issued["card_no"], "active")

    revoked = stack.api("POST", f"/cards/{issued['card_no']}/revoke", json={"reason": "lost"})
    assert revoked.status_code == 200, revoked.text
    assert stack.card(issued["card_no"])["status"] == "revoked"
    # The chip still carries its signed record: revocation is known online (and offline
    # through the revocation list), the card itself is not touched until it comes back.
    _assert_chip_carries(stack, chips, FIRST, active)

    returned = stack.api("POST", f"/cards/{issued['card_no']}/return", json={})
    assert returned.status_code == 202, returned.text
    final = stack.wait_card(issued["card_no"], "returned")
    assert final["revocation_reason"] == "lost"
    uid, record = chips.read(FIRST, card_type)
    assert uid.hex() == active["uid"]
    assert record is None, "the returned card still carries a record"


def test_the_server_restarted_mid_job_loses_nothing(stack, daemon, cardsim, chips, tmp_path):
    reader_id, token = stack.new_reader()
    daemon(token, FIRST)
    issued = stack.issue(reader_id)
    # The daemon holds the job and waits for a card...
    wait_for(lambda: _job(stack, issued["job_id"])["status"] == "claimed", 20, "the claim")
    # ...when the server dies; the card arrives while it is down.
    stack.kill_server()
    cardsim("cpu", port=35963, state=tmp_path / "card.json")
    time.sleep(2)  # the daemon reads the UID and backs off against the dead server
    stack.start_server()
    active = stack.wait_card(issued["card_no"], "active")
    _assert_chip_carries(stack, chips, FIRST, active)
    job = _job(stack, issued["job_id"])
    assert (job["status"], job["attempt"]) == ("done", 1)
    # Signed once, activated once: nothing lost, nothing done twice.
    assert stack.api("GET", "/readers", "admin").ok
    assert stack.card(issued["card_no"])["key_id"] is not None


def test_two_daemons_on_one_reader_never_take_one_job(stack, daemon, cardsim, chips, tmp_path):
    reader_id, token = stack.new_reader()
    issued = [stack.issue(reader_id) for _ in range(2)]
    daemon(token, FIRST)
    daemon(token, SECOND)
    # Both daemons poll the same queue; each holds one job while it waits for a card.
    wait_for(
        lambda: all(_job(stack, i["job_id"])["status"] == "claimed" for i in issued),
        30,
        "both jobs to be claimed",
    )
    time.sleep(3)  # more polls by both: a held job is never handed to the other daemon
    assert [_job(stack, i["job_id"])["attempt"] for i in issued] == [1, 1]
    cardsim("cpu", port=35963, state=tmp_path / "a.json")
    cardsim("mifare1k", port=35964, state=tmp_path / "b.json")
    cards = [stack.wait_card(i["card_no"], "active") for i in issued]
    jobs = [_job(stack, i["job_id"]) for i in issued]
    assert [(j["status"], j["attempt"]) for j in jobs] == [("done", 1), ("done", 1)]
    assert {c["card_type"] for c in cards} == {"cpu", "mifare1k"}
    for active in cards:
        reader_name = FIRST if active["card_type"] == "cpu" else SECOND
        _assert_chip_carries(stack, chips, reader_name, active)


@pytest.mark.parametrize(
    ("card_type", "tear"),
    [
        ("cpu", {"tear_after": 4}),
        ("cpu", {"tear_after": 10}),
        ("mifare1k", {"tear_after": 30}),
        # Inside a write (EEPROM keeps a prefix): the CPU card's marker after 7 of
        # its 16 bytes; the MIFARE card's 5th slot block (write 15, after the 11
        # trailers) after 9 bytes.
        ("cpu", {"tear_write": "1:7"}),
        ("mifare1k", {"tear_write": "15:9"}),
    ],
)
def test_a_torn_issue_is_never_active_and_the_card_returning_completes_it(
    stack, daemon, cardsim, chips, card_type, tear, tmp_path
):
    reader_id, token = stack.new_reader()
    state = tmp_path / "card.json"
    sim = cardsim(card_type, port=35963, state=state, **tear)
    daemon(token, FIRST)
    issued = stack.issue(reader_id)
    sim.wait_exit(30)  # the card left the field mid-issuance
    job = wait_for(
        lambda: (j := _job(stack, issued["job_id"]))["error"] and j,
        20,
        "the daemon to report the torn write",
    )
    assert "unknown" in job["error"], job
    torn = stack.card(issued["card_no"])
    assert torn["status"] == "pending"
    assert parse_image(_image_of(state)) is None  # the torn chip reads as blank
    # The same card comes back: the daemon reconciles and completes the job.
    cardsim(card_type, port=35963, state=state)
    active = stack.wait_card(issued["card_no"], "active")
    _assert_chip_carries(stack, chips, FIRST, active)
    assert _job(stack, issued["job_id"])["attempt"] == 1


def _polling(stack: Stack, reader_id: int) -> bool:
    """Whether the reader's daemon has polled (the list is by id: walk its pages)."""
    page = 1
    while readers := stack.api("GET", f"/readers?page={page}&page_size=100", "admin").json():
        for reader in readers:
            if reader["id"] == reader_id:
                return bool(reader["last_seen_at"])
        page += 1
    return False


def test_sigterm_during_a_long_poll_stops_the_daemon_at_once(stack, daemon):
    """It does not wait out its 25 s poll."""
    reader_id, token = stack.new_reader()
    first = daemon(token, FIRST, poll_wait=25)
    wait_for(lambda: _polling(stack, reader_id), 20, "the daemon's first poll")
    time.sleep(1)  # well inside the long poll
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(10) == 0, first.text()
    assert "stopping" in first.text()


def test_a_job_issued_as_the_daemon_stops_is_left_for_the_next(
    stack, daemon, cardsim, chips, tmp_path
):
    """The last poll of a stopping daemon does not take a job away with it."""
    reader_id, token = stack.new_reader()
    first = daemon(token, FIRST, poll_wait=25)
    wait_for(lambda: _polling(stack, reader_id), 20, "the daemon's first poll")
    time.sleep(1)  # well inside the long poll
    first.proc.send_signal(signal.SIGTERM)
    issued = stack.issue(reader_id)  # as it stops: the poll must not take it with it
    assert first.proc.wait(10) == 0, first.text()
    assert "stopping" in first.text()
    job = _job(stack, issued["job_id"])
    assert (job["status"], job["attempt"]) == ("queued", 0), job
    cardsim("cpu", port=35963, state=tmp_path / "card.json")
    daemon(token, FIRST)
    active = stack.wait_card(issued["card_no"], "active")
    _assert_chip_carries(stack, chips, FIRST, active)
    assert _job(stack, issued["job_id"])["attempt"] == 1


def test_a_job_claimed_when_the_daemon_stops_is_handed_back_to_the_next(
    stack, daemon, cardsim, chips, tmp_path
):
    reader_id, token = stack.new_reader()
    first = daemon(token, FIRST, poll_wait=25)
    issued = stack.issue(reader_id)
    # It claims the job and waits for a card that does not come...
    wait_for(lambda: _job(stack, issued["job_id"])["status"] == "claimed", 20, "the claim")
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(10) == 0, first.text()
    assert "handed back job(s)" in first.text()
    job = _job(stack, issued["job_id"])
    assert (job["status"], job["attempt"]) == ("queued", 0), job
    # ...and another daemon (its own holder) takes it at once, not after the lease.
    cardsim("mifare1k", port=35963, state=tmp_path / "card.json")
    daemon(token, FIRST)
    active = stack.wait_card(issued["card_no"], "active", timeout=30)
    _assert_chip_carries(stack, chips, FIRST, active)
    assert _job(stack, issued["job_id"])["attempt"] == 1


def test_a_daemon_killed_between_the_write_and_the_report_is_reconciled_at_its_restart(
    stack, daemon, cardsim, chips, tmp_path
):
    """SIGKILL after the chip holds its record, before the server heard of it.

    A gate before the server keeps the daemon's report back (503), so the
    process is killed at exactly that point; the same desk PC then starts
    the daemon again, straight to the server, with the card still lying on
    the reader. Its journal reports the result: the job ends done with the
    chip's UID, and the chip is not written again.
    """
    reader_id, token = stack.new_reader()
    state = tmp_path / "card.json"
    cardsim("cpu", port=35963, state=state)
    gate = Gate(stack.url)
    gate.start()
    home = tmp_path / "desk-pc"
    try:
        first = daemon(token, FIRST, server=gate.url, home=home)
        issued = stack.issue(reader_id)
        wait_for(lambda: gate.held >= 1, 30, "the daemon to report the write")
        first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(10) == -signal.SIGKILL
    finally:
        gate.stop()
    entry = json.loads((home / "journal.json").read_text())
    assert (entry["job_id"], entry["phase"]) == (issued["job_id"], "reporting")
    assert entry["result"]["outcome"] == "done"
    job = _job(stack, issued["job_id"])
    assert (job["status"], job["attempt"]) == ("awaiting_result", 1), job
    assert stack.card(issued["card_no"])["status"] == "pending"
    written = state.read_bytes()
    assert parse_image(_image_of(state)) is not None  # the chip holds the record already
    uid = entry["result"]["uid"]

    second = daemon(token, FIRST, home=home)
    active = stack.wait_card(issued["card_no"], "active")
    assert active["uid"] == uid
    job = _job(stack, issued["job_id"])
    assert (job["status"], job["attempt"], job["error"]) == ("done", 1, None), job
    wait_for(lambda: "reported done" in second.text(), 20, "the restarted daemon's report")
    assert not (home / "journal.json").exists()
    # The card lay on the reader all along and was not written again: the restarted
    # daemon never took it up, and its memory is as the killed one left it.
    assert first.text().count("presented") == 1
    assert "presented" not in second.text()
    assert state.read_bytes() == written
    _assert_chip_carries(stack, chips, FIRST, active)
