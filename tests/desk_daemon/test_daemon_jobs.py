"""The desk daemon against a fake job server and the memory transport."""

from __future__ import annotations

import threading
import time

import pytest
from cardreader_testkit import KEY_ID, SIGNING_KEY, new_sim
from fake_job_server import READER_ID, TOKEN, FakeJobServer, derive_keys

from cardreader.client import JobClient, ServerUnavailable
from cardreader.daemon import Daemon, DaemonConfig
from cardreader.protocol import card
from cardreader.record import verify_record
from cardreader.sim.mifare import SimMifareCard
from cardreader.transport.memory import MemoryReader

PUBLIC = {KEY_ID: SIGNING_KEY.public_key()}


@pytest.fixture
def server():
    fake = FakeJobServer(SIGNING_KEY, KEY_ID)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def make_daemon(server, tmp_path):
    def make(reader: MemoryReader, reader_id: int | None = READER_ID, **config) -> Daemon:
        settings = {
            "journal_path": tmp_path / "journal.json",
            "poll_wait": 0,
            "card_timeout": 0.5,
            "backoff_initial": 0.01,
            "backoff_max": 0.05,
            "reader_poll": 0.02,
        }
        settings.update(config)
        client = JobClient(server.url, TOKEN, reader_id, timeout=2)
        return Daemon(DaemonConfig(**settings), client, reader)

    return make


def card_record(reader: MemoryReader) -> bytes | None:
    return card.read_record(reader.wait_for_card(1))


def issue_on(server, make_daemon, card_type: str):
    sim = new_sim(card_type)
    reader = MemoryReader(card=sim)
    job = server.add_job("issue")
    assert make_daemon(reader).step()
    return sim, reader, job


def test_issue_both_card_types(server, make_daemon, card_type):
    sim, reader, job = issue_on(server, make_daemon, card_type)
    assert job.status == "done"
    assert server.outcomes(job) == ["done"]
    assert job.uid == sim.uid.hex()
    assert job.card_type == card_type
    record = card_record(reader)
    assert verify_record(record, sim.uid, PUBLIC).card_no == "AJ00000012Q"
    assert not (make_daemon(reader).journal.path).exists()


def test_erase_returned_card(server, make_daemon, card_type):
    sim, reader, issued = issue_on(server, make_daemon, card_type)
    job = server.add_job("erase", uid=issued.uid, card_type=card_type)
    assert make_daemon(reader).step()
    assert server.outcomes(job) == ["done"]
    assert card_record(reader) is None


def test_erase_refuses_the_wrong_card_then_erases_the_right_one(server, make_daemon):
    sim, reader, issued = issue_on(server, make_daemon, "mifare1k")
    other = new_sim("mifare1k")
    reader.insert(other)
    job = server.add_job("erase", uid=issued.uid, card_type="mifare1k")
    daemon = make_daemon(reader)
    daemon.step()
    assert server.outcomes(job) == ["failed"]
    assert job.results[0]["error"] == "wrong_card"
    assert job.status == "queued"
    # The same wrong card still lying there is not reported again at once...
    reader.on_wait = lambda r: r.insert(sim) if r.card is other else None
    daemon.step()
    assert server.outcomes(job) == ["failed", "done"]
    assert card_record(reader) is None


def test_a_card_already_in_use_is_not_sent_again_until_another_is_presented(server, make_daemon):
    in_use, blank = new_sim("cpu"), new_sim("cpu")
    server.uids_in_use.add(in_use.uid.hex())
    reader = MemoryReader(card=in_use)
    job = server.add_job("issue")
    daemon = make_daemon(reader)
    daemon.step()
    assert server.bound_uids == [in_use.uid.hex()]
    assert server.outcomes(job) == []
    # The refused card still lies there for a while: the daemon waits for the
    # clerk to swap it rather than spend another attempt on it.
    waits: list[int] = []

    def swap_on_the_third_look(r: MemoryReader) -> None:
        waits.append(1)
        if len(waits) == 3:
            r.insert(blank)

    reader.on_wait = swap_on_the_third_look
    daemon.step()
    assert len(waits) >= 3
    assert server.bound_uids == [in_use.uid.hex(), blank.uid.hex()]
    assert server.outcomes(job) == ["done"]
    assert job.uid == blank.uid.hex()


def test_a_card_in_use_left_in_the_reader_fails_the_job_with_a_reason(server, make_daemon):
    in_use = new_sim("mifare1k")
    server.uids_in_use.add(in_use.uid.hex())
    reader = MemoryReader(card=in_use)
    job = server.add_job("issue")
    daemon = make_daemon(reader, card_timeout=0.2)
    daemon.step()
    daemon.step()
    assert server.bound_uids == [in_use.uid.hex()]
    assert server.outcomes(job) == ["failed"]
    assert "already carries an active" in job.results[0]["error"]


def test_no_card_fails_with_a_readable_reason(server, make_daemon):
    reader = MemoryReader()
    job = server.add_job("issue")
    started = time.monotonic()
    make_daemon(reader, card_timeout=0.3).step()
    assert time.monotonic() - started >= 0.3
    assert job.status == "failed"
    assert job.results[0]["error"] == "no card was presented within 0.3 s"


@pytest.mark.parametrize("tear_at", [6, 12, 13])
def test_card_pulled_mid_write_is_reconciled(server, make_daemon, card_type, tear_at):
    sim = new_sim(card_type)
    reader = MemoryReader(card=sim)
    reader.tear_after(tear_at)
    reinserted = []

    def put_back(r: MemoryReader) -> None:
        if r.card is None:
            reinserted.append(True)
            r.insert(sim)

    reader.on_wait = put_back
    job = server.add_job("issue")
    make_daemon(reader).step()
    assert reinserted == [True]
    assert server.outcomes(job) == ["unknown", "done"]
    assert job.results[0]["uid"] == sim.uid.hex()
    verify_record(card_record(reader), sim.uid, PUBLIC)


def test_reconcile_finds_the_record_already_written(server, make_daemon, card_type):
    """The card left after the commit (during read-back): nothing is written again."""
    probe = new_sim(card_type)
    probe_reader = MemoryReader(card=probe)
    uid = probe.uid
    job = server.add_job("issue")
    record = server.record_for(job, uid.hex())
    connection = probe_reader.wait_for_card(1)
    card.read_uid(connection)
    start = probe_reader.apdu_count
    card.write_record(connection, derive_keys(card_type, uid.hex()), record)
    total = probe_reader.apdu_count - start
    # The read-back is the last few APDUs: tear there, after the marker is committed.
    sim = new_sim(card_type, uid)
    reader = MemoryReader(card=sim)
    reader.tear_after(1 + total - 2)
    writes: list[int] = []

    def put_back(r: MemoryReader) -> None:
        if r.card is None:
            sim.on_change = lambda: writes.append(1)
            r.insert(sim)

    reader.on_wait = put_back
    make_daemon(reader).step()
    assert server.outcomes(job) == ["unknown", "done"]
    assert sim.on_change is not None
    assert writes == []
    assert card_record(reader) == record


def test_another_card_after_a_tear_gets_its_own_record(server, make_daemon):
    first, second = new_sim("cpu"), new_sim("cpu")
    reader = MemoryReader(card=first)
    reader.tear_after(10)
    reader.on_wait = lambda r: r.insert(second) if r.card is None else None
    job = server.add_job("issue")
    make_daemon(reader).step()
    assert server.outcomes(job) == ["unknown", "done"]
    assert job.uid == second.uid.hex()
    verify_record(card_record(reader), second.uid, PUBLIC)
    reader.insert(first)
    found = card_record(reader)
    assert found is None or verify_record(found, first.uid, PUBLIC)


def test_torn_and_never_returned_fails(server, make_daemon):
    reader = MemoryReader(card=new_sim("cpu"))
    reader.tear_after(10)
    job = server.add_job("issue")
    make_daemon(reader, card_timeout=0.2).step()
    assert server.outcomes(job) == ["unknown", "failed"]
    assert "not presented again" in job.results[1]["error"]


def test_server_outage_backs_off_and_nothing_is_done_twice(server, make_daemon, monkeypatch):
    sim = new_sim("mifare1k")
    reader = MemoryReader(card=sim)
    job = server.add_job("issue")
    server.fail[("GET", "/jobs/next")] = 3
    server.fail[("POST", "/uid")] = 2
    server.fail[("POST", "/result")] = 4
    daemon = make_daemon(reader, backoff_initial=0.01, backoff_max=0.04)
    delays: list[float] = []
    real_sleep = daemon._sleep
    monkeypatch.setattr(daemon, "_sleep", lambda s: (delays.append(s), real_sleep(s)))
    daemon.step()
    assert server.outcomes(job) == ["done"]
    assert delays[:3] == [0.01, 0.02, 0.04]  # doubling, then capped
    assert max(delays) == 0.04
    assert len([r for r in server.requests if r[1].endswith("/result")]) == 5


def test_server_down_and_restarting(server, make_daemon):
    sim = new_sim("cpu")
    reader = MemoryReader(card=sim)
    job = server.add_job("issue")
    server.stop()
    threading.Timer(0.3, server.start).start()
    make_daemon(reader, backoff_initial=0.05, backoff_max=0.1).step()
    assert server.outcomes(job) == ["done"]


def test_restart_after_the_card_work_reports_from_the_journal(server, make_daemon, monkeypatch):
    sim = new_sim("cpu")
    reader = MemoryReader(card=sim)
    job = server.add_job("issue")
    first = make_daemon(reader)

    def crash(*args):
        raise SystemExit("killed")

    monkeypatch.setattr(first.client, "post_result", crash)
    with pytest.raises(SystemExit):
        first.step()
    assert first.journal.load()["phase"] == "reporting"
    assert job.status == "held"
    reader.remove()  # the restarted daemon must not need the card
    second = make_daemon(reader)
    second.step()
    assert server.outcomes(job) == ["done"]
    assert second.journal.load() is None


def test_restart_mid_write_resumes_the_same_job(server, make_daemon):
    sim = new_sim("mifare1k")
    reader = MemoryReader(card=sim)
    job = server.add_job("issue")
    count = {"n": 0}
    real = sim.process_apdu

    def dies_mid_write(apdu: bytes) -> bytes:
        count["n"] += 1
        if count["n"] == 30:
            raise SystemExit("daemon killed")
        return real(apdu)

    sim.process_apdu = dies_mid_write
    with pytest.raises(SystemExit):
        make_daemon(reader).step()
    sim.process_apdu = real
    daemon = make_daemon(reader)
    assert daemon.journal.load()["phase"] == "writing"
    daemon.step()
    assert server.outcomes(job) == ["done"]
    assert job.attempt == 1  # the same lease, handed out again
    verify_record(card_record(reader), sim.uid, PUBLIC)


def test_no_reader_means_no_job_is_taken(server, make_daemon):
    reader = MemoryReader(card=new_sim("cpu"))
    reader.plugged = False
    job = server.add_job("issue")
    daemon = make_daemon(reader)
    assert not daemon.step()
    assert job.status == "queued"
    assert not [r for r in server.requests if "jobs/next" in r[1]]
    reader.plugged = True
    assert daemon.step()
    assert job.status == "done"


def test_reader_unplugged_while_waiting_for_the_card(server, make_daemon):
    sim = new_sim("cpu")
    reader = MemoryReader()
    job = server.add_job("issue")
    waits = {"n": 0}

    def replug(r: MemoryReader) -> None:
        waits["n"] += 1
        if waits["n"] == 1:
            r.plugged = False
        elif waits["n"] == 4:
            r.plugged = True
            r.insert(sim)

    reader.on_wait = replug
    make_daemon(reader, card_timeout=2).step()
    assert server.outcomes(job) == ["done"]


def test_reader_id_is_discovered_and_bad_token_stops(server, make_daemon, tmp_path):
    reader = MemoryReader(card=new_sim("cpu"))
    daemon = make_daemon(reader, reader_id=None)
    server.add_job("issue")
    threading.Timer(0.3, daemon.stop.set).start()
    assert daemon.run() == 0
    assert daemon.client.reader_id == READER_ID
    assert ("GET", "/api/v1/readers/me") in server.requests
    bad = Daemon(
        DaemonConfig(journal_path=tmp_path / "j2.json", poll_wait=0),
        JobClient(server.url, "wrong", READER_ID),
        reader,
    )
    assert bad.run() == 2


def test_client_maps_http_failures(server):
    client = JobClient(server.url, TOKEN, READER_ID, timeout=1)
    server.fail[("GET", "/readers/me")] = 1
    with pytest.raises(ServerUnavailable):
        client.whoami()
    assert client.whoami()["id"] == READER_ID
    assert client.next_job(0) is None
    server.stop()
    with pytest.raises(ServerUnavailable):
        client.whoami()


class Mifare4K(SimMifareCard):
    """A storage card of a type Anjuka does not issue on (card name 00 02)."""

    atr = bytes.fromhex("3B8F8001804F0CA0000003060300020000000069")


def test_unsupported_card_fails_the_attempt_with_a_reason(server, make_daemon):
    reader = MemoryReader(card=Mifare4K())
    job = server.add_job("issue")
    make_daemon(reader).step()
    assert server.outcomes(job) == ["failed"]
    assert "storage card type 0002 is not supported" in job.results[0]["error"]


def test_unexpected_errors_do_not_end_the_daemon(server, make_daemon, monkeypatch):
    reader = MemoryReader(card=new_sim("cpu"))
    daemon = make_daemon(reader, backoff_max=0.01)
    calls = {"n": 0}
    real_step = daemon.step

    def flaky_step() -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("bug")
        if calls["n"] >= 3:
            daemon.stop.set()
        return real_step()

    monkeypatch.setattr(daemon, "step", flaky_step)
    job = server.add_job("issue")
    assert daemon.run() == 0
    assert server.outcomes(job) == ["done"]


def _in_flight(server: FakeJobServer, count: int = 1) -> None:
    deadline = time.monotonic() + 10
    while len([r for r in server.requests if r[1].endswith("/jobs/next")]) < count:
        assert time.monotonic() < deadline, "the daemon never polled"
        time.sleep(0.01)


def test_a_stop_during_a_long_poll_ends_it_through_the_server(server, make_daemon):
    reader = MemoryReader(card=new_sim("cpu"))
    daemon = make_daemon(reader, poll_wait=25)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    _in_flight(server)
    daemon.stop.set()
    runner.join(20)
    assert not runner.is_alive()
    # The daemon said which run is over, and the poll of that run ended at once.
    assert server.stopped_runs == [daemon.client.run]
    assert server.polls_ended_by_release == 1
    assert reader.apdu_count == 0


def test_a_job_claimed_as_the_daemon_stops_is_handed_back_not_begun(server, make_daemon):
    reader = MemoryReader(card=new_sim("cpu"))
    daemon = make_daemon(reader, poll_wait=25)

    def stop_as_it_is_claimed(job) -> None:  # type: ignore[no-untyped-def]
        daemon.stop.set()
        assert server.released.wait(10), "the daemon did not hand its jobs back"

    server.on_claim = stop_as_it_is_claimed
    runner = threading.Thread(target=daemon.run)
    runner.start()
    _in_flight(server)
    job = server.add_job("issue")
    runner.join(20)
    assert not runner.is_alive()
    assert (job.status, job.attempt) == ("queued", 0)
    assert not [r for r in server.requests if r[1].endswith("/uid")]
    assert reader.apdu_count == 0
    assert daemon.journal.load() is None
    # The next daemon takes it at once.
    server.on_claim = None
    assert make_daemon(reader).step()
    assert (job.status, job.attempt, server.outcomes(job)) == ("done", 1, ["done"])
