"""The real desk daemon (``cardreader.daemon``) against this server, in-process.

The daemon's HTTP client goes through the Flask test client, and its reader
is the memory transport holding a simulated card: the server's records and
per-card keys must work with the real card protocols, tears included.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from card_helpers import in_process_session

from anjuka.audit.models import AuditEvent
from anjuka.cards.models import CardChip, CardJob
from anjuka.cards.signing import card_keys
from anjuka.core.db import db
from anjuka.core.keys import keyring
from anjuka.core.time import utcnow
from cardreader.client import JobClient
from cardreader.daemon import Daemon as CardDaemon
from cardreader.daemon import DaemonConfig
from cardreader.protocol import card
from cardreader.protocol.cpu import internal_auth_response
from cardreader.record import verify_record
from cardreader.sim.cpu import SimCpuCard
from cardreader.sim.mifare import SimMifareCard
from cardreader.transport.memory import MemoryReader


@pytest.fixture(params=["cpu", "mifare1k"])
def card_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def new_sim(card_type: str) -> SimCpuCard | SimMifareCard:
    return SimCpuCard() if card_type == "cpu" else SimMifareCard()


@pytest.fixture
def card_daemon(desk, tmp_path):  # type: ignore[no-untyped-def]
    """Factory: the real daemon for the desk's reader, with ``reader`` as its PC/SC reader."""

    def make(reader: MemoryReader) -> CardDaemon:
        config = DaemonConfig(
            journal_path=tmp_path / "journal.json",
            poll_wait=0,
            card_timeout=0.3,
            backoff_initial=0.01,
            backoff_max=0.05,
            reader_poll=0.02,
        )
        client = JobClient(
            "http://anjuka.test",
            desk.daemon.token,
            desk.reader_id,
            timeout=5,
            session=in_process_session(desk.client),
        )
        return CardDaemon(config, client, reader)

    return make


def on_chip(reader: MemoryReader, card_type: str) -> bytes | None:
    return card.read_record(reader.wait_for_card(1), card_type)


def test_the_daemon_issues_a_card_that_verifies(desk, card_daemon, card_type):
    residence = desk.arrive_here()
    card_no = desk.issue(residence["id"]).json["card_no"]
    sim = new_sim(card_type)
    reader = MemoryReader(card=sim)
    assert card_daemon(reader).step()

    issued = desk.card(card_no)
    assert issued["status"] == "active", issued
    assert (issued["uid"], issued["card_type"]) == (sim.uid.hex(), card_type)
    record = on_chip(reader, card_type)
    assert record is not None
    verified = verify_record(record, sim.uid, keyring().signing_public_keys())
    assert (verified.card_no, verified.residence_id) == (card_no, residence["id"])
    if card_type == "cpu":
        # The chip answers INTERNAL AUTHENTICATE with the internal key the server derives.
        challenge = bytes(range(8))
        answer = card.internal_authenticate(reader.wait_for_card(1), challenge)
        internal = card_keys(sim.uid, "cpu", keyring().card_master[0])["internal_key"]
        assert answer == internal_auth_response(bytes.fromhex(internal), challenge)


def _issuance_apdus(desk, card_daemon, card_type: str) -> int:  # type: ignore[no-untyped-def]
    """How many APDUs one whole issuance of ``card_type`` takes through the daemon."""
    desk.issue(desk.arrive_here()["id"])
    reader = MemoryReader(card=new_sim(card_type))
    card_daemon(reader).step()
    return reader.apdu_count


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.75, 0.99])
def test_a_card_torn_mid_issue_is_never_active_and_the_retry_succeeds(
    desk, card_daemon, card_type, fraction
):
    total = _issuance_apdus(desk, card_daemon, card_type)
    card_no = desk.issue(desk.arrive_here()["id"]).json["card_no"]
    sim = new_sim(card_type)
    reader = MemoryReader(card=sim)
    reader.tear_after(int(total * fraction))
    daemon = card_daemon(reader)
    daemon.step()  # torn: reported unknown, then failed when the card did not come back
    torn = desk.card(card_no)
    assert torn["status"] == "pending", torn
    assert torn["job"]["status"] == "queued"
    assert torn["job"]["error"]

    reader.insert(sim)
    daemon.step()
    final = desk.card(card_no)
    assert final["status"] == "active", final
    assert final["job"]["attempt"] == 2
    verify_record(on_chip(reader, card_type), sim.uid, keyring().signing_public_keys())


@pytest.mark.parametrize(
    ("where", "keep"), [("slot", 1), ("slot", 70), ("marker", 5), ("marker", 15)]
)
def test_a_card_torn_inside_a_write_is_never_active_and_the_retry_succeeds(
    desk, card_daemon, card_type, where, keep
):
    """EEPROM tears inside a write: the slot or the marker only partly written."""
    desk.issue(desk.arrive_here()["id"])
    probe = new_sim(card_type)
    card_daemon(MemoryReader(card=probe)).step()
    writes = probe.writes  # of a whole issuance: trailers, the slot, the marker last
    card_no = desk.issue(desk.arrive_here()["id"]).json["card_no"]
    sim = new_sim(card_type)
    sim.arm_tear(keep, writes=writes - 1 if where == "marker" else writes - 2)
    reader = MemoryReader(card=sim)
    daemon = card_daemon(reader)
    daemon.step()  # torn: reported unknown, then failed when the card did not come back
    assert not sim.tear_armed
    torn = desk.card(card_no)
    assert torn["status"] == "pending", torn
    reader.insert(sim)
    assert on_chip(reader, card_type) is None  # blank, never the record
    daemon.step()
    final = desk.card(card_no)
    assert final["status"] == "active", final
    verify_record(on_chip(reader, card_type), sim.uid, keyring().signing_public_keys())


def test_return_erases_the_chip(desk, card_daemon, card_type):
    card_no = desk.issue(desk.arrive_here()["id"]).json["card_no"]
    sim = new_sim(card_type)
    reader = MemoryReader(card=sim)
    daemon = card_daemon(reader)
    daemon.step()
    assert desk.card(card_no)["status"] == "active"

    desk.post(f"/cards/{card_no}/revoke", {"reason": "damaged"})
    assert desk.post(f"/cards/{card_no}/return").status_code == 202
    stranger = new_sim(card_type)
    reader.remove()
    reader.insert(stranger)  # the wrong card first: the job waits for the right one
    daemon.step()
    waiting = desk.card(card_no)
    assert waiting["status"] == "revoked"
    assert waiting["job"]["error"].startswith("wrong_card")
    reader.remove()
    reader.insert(sim)
    daemon.step()
    final = desk.card(card_no)
    assert final["status"] == "returned", final
    assert on_chip(reader, card_type) is None


def _hand_out_again(desk, job_id: int) -> dict:  # type: ignore[no-untyped-def]
    """Let the job's lease run out and poll as the same (anonymous) daemon: a new attempt."""
    db.session.execute(
        sa.update(CardJob)
        .where(CardJob.id == job_id)
        .values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    job = desk.daemon.next_job()
    assert job["id"] == job_id
    return job


def test_the_daemon_sends_its_attempt_so_a_stale_uid_is_refused(desk, card_daemon):
    """The daemon waits for a card while its attempt is handed out again: its UID is refused."""
    card_no = desk.issue(desk.arrive_here()["id"]).json["card_no"]
    sim = new_sim("cpu")
    reader = MemoryReader()
    seen: dict = {}

    def meanwhile(r: MemoryReader) -> None:
        if not seen:
            job_id = desk.card(card_no)["job"]["id"]
            seen["again"] = _hand_out_again(desk, job_id)
            r.insert(sim)

    reader.on_wait = meanwhile
    daemon = card_daemon(reader)
    daemon.step()
    assert seen["again"]["attempt"] == 2
    job = desk.card(card_no)["job"]
    # The UID of attempt 1 was not bound to attempt 2, and nothing was written.
    assert (job["status"], job["attempt"]) == ("claimed", 2), job
    assert desk.card(card_no)["uid"] is None
    assert on_chip(reader, "cpu") is None
    assert daemon.journal.load() is None


def test_the_daemon_sends_its_attempt_so_a_stale_failure_is_refused(desk, card_daemon):
    """No card came during attempt 1, which was handed out again: its failure is not attempt 2's."""
    card_no = desk.issue(desk.arrive_here()["id"]).json["card_no"]
    reader = MemoryReader()
    seen: dict = {}

    def meanwhile(r: MemoryReader) -> None:
        if not seen:
            seen["again"] = _hand_out_again(desk, desk.card(card_no)["job"]["id"])

    reader.on_wait = meanwhile
    card_daemon(reader).step()
    assert seen["again"]["attempt"] == 2
    job = desk.card(card_no)["job"]
    assert (job["status"], job["attempt"], job["error"]) == ("claimed", 2, None), job


# ------------------------------------------- a job whose report never came (the daemon died)


def _daemon_as(desk, journal: Path, holder: str, reader: MemoryReader) -> CardDaemon:  # type: ignore[no-untyped-def]
    """The real daemon as one desk PC: its own holder id and journal, as after each start."""
    config = DaemonConfig(
        journal_path=journal,
        poll_wait=0,
        card_timeout=0.3,
        backoff_initial=0.01,
        backoff_max=0.05,
        reader_poll=0.02,
    )
    client = JobClient(
        "http://anjuka.test",
        desk.daemon.token,
        desk.reader_id,
        timeout=5,
        session=in_process_session(desk.client),
        holder=holder,
    )
    return CardDaemon(config, client, reader)


def _dies_before_reporting(daemon: CardDaemon) -> None:
    """The daemon's process ends between the card write and the report (as a SIGKILL would)."""

    def killed(*_: object) -> None:
        raise SystemExit("killed")

    daemon.client.post_result = killed  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        daemon.step()
    assert daemon.journal.load()["phase"] == "reporting"


def _events(card_no: str, action: str) -> int:
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == action, AuditEvent.subject_id == card_no)
    )


def test_an_unreported_job_waits_for_its_daemon_then_its_journal_reports_it(desk, tmp_path):
    """Within the lease the job stays with its daemon: no one else gets it, a release keeps it."""
    card_no = desk.issue(desk.arrive_here()["id"]).json["card_no"]
    sim = new_sim("cpu")
    reader = MemoryReader(card=sim)
    journal = tmp_path / "a" / "journal.json"
    _dies_before_reporting(_daemon_as(desk, journal, "desk-a", reader))
    job = desk.card(card_no)["job"]
    assert (job["status"], job["attempt"]) == ("awaiting_result", 1)
    # Another daemon of the reader gets nothing, and a release does not hand it back.
    other = desk.make_daemon(holder="desk-b")
    assert other.poll().status_code == 204
    assert desk.make_daemon(holder="desk-a", run="r2").release().json == {"released": []}
    writes = sim.writes

    restarted = _daemon_as(desk, journal, "desk-a", MemoryReader())  # no card needed
    restarted.step()
    final = desk.card(card_no)
    assert (final["status"], final["uid"]) == ("active", sim.uid.hex())
    assert (final["job"]["status"], final["job"]["attempt"]) == ("done", 1)
    assert sim.writes == writes
    assert restarted.journal.load() is None
    assert (_events(card_no, "card.sign"), _events(card_no, "card.activate")) == (1, 1)


def test_an_unreported_job_past_its_lease_goes_to_the_next_daemon_and_acts_once(desk, tmp_path):
    """The daemon does not come back within the lease: the next poll of the reader takes it.

    The job is still bound to the chip, so the chip presented again gets the
    same record (nothing signed anew) and is not written again; the late
    report from the first daemon's journal then changes nothing.
    """
    card_no = desk.issue(desk.arrive_here()["id"]).json["card_no"]
    sim = new_sim("mifare1k")
    journal = tmp_path / "a" / "journal.json"
    _dies_before_reporting(_daemon_as(desk, journal, "desk-a", MemoryReader(card=sim)))
    record = on_chip(MemoryReader(card=sim), "mifare1k")
    writes = sim.writes
    job_id = desk.card(card_no)["job"]["id"]
    db.session.execute(
        sa.update(CardJob)
        .where(CardJob.id == job_id)
        .values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()

    # The card is brought to the desk's other PC, whose daemon polls next.
    other = _daemon_as(desk, tmp_path / "b" / "journal.json", "desk-b", MemoryReader(card=sim))
    assert other.step()
    final = desk.card(card_no)
    assert (final["status"], final["uid"]) == ("active", sim.uid.hex())
    assert (final["job"]["status"], final["job"]["attempt"]) == ("done", 2)
    assert sim.writes == writes
    assert on_chip(MemoryReader(card=sim), "mifare1k") == record

    # The first daemon starts again: its journal's report is the same success, nothing more.
    late = _daemon_as(desk, journal, "desk-a", MemoryReader())
    late.step()
    assert late.journal.load() is None
    assert desk.card(card_no)["job"]["status"] == "done"
    assert (_events(card_no, "card.sign"), _events(card_no, "card.activate")) == (1, 1)
    chips = db.session.scalars(sa.select(CardChip).where(CardChip.job_id == job_id)).all()
    assert len(chips) == 1


def test_a_late_report_completes_the_job_while_the_next_daemon_waits_for_a_card(desk, tmp_path):
    """The first daemon reports from its journal after the job went to another, still waiting."""
    card_no = desk.issue(desk.arrive_here()["id"]).json["card_no"]
    sim = new_sim("cpu")
    journal = tmp_path / "a" / "journal.json"
    _dies_before_reporting(_daemon_as(desk, journal, "desk-a", MemoryReader(card=sim)))
    job_id = desk.card(card_no)["job"]["id"]
    db.session.execute(
        sa.update(CardJob)
        .where(CardJob.id == job_id)
        .values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    waiting = desk.make_daemon(holder="desk-b")
    assert waiting.next_job()["attempt"] == 2

    _daemon_as(desk, journal, "desk-a", MemoryReader()).step()
    final = desk.card(card_no)
    assert (final["status"], final["uid"]) == ("active", sim.uid.hex())
    # The daemon that waited is told the job is over when it brings another card.
    refused = waiting.send_uid(job_id, new_sim("cpu").uid.hex())
    assert (refused.status_code, refused.json["error"]) == (409, "job_finished")
    assert _events(card_no, "card.activate") == 1
