"""The desk daemon with the server gone for minutes: it backs off, resumes, and acts once.

The real daemon (its shipped back-off: 1 s doubling up to 60 s) against this
server in-process, with a job in flight when the server becomes unreachable:
before the daemon claims it, after the claim (before the chip's UID is
sent), and after the card is written (before the result is reported). The
outage lasts :data:`OUTAGE` of the daemon's own clock: its sleeps are played
on a virtual clock and the server's clock is moved on by the same amount, so
leases run out as they would, and no test waits for minutes or times
anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa
import time_machine
from card_helpers import FlaskAdapter

from anjuka.audit.models import AuditEvent
from anjuka.cards.models import CardChip, CardJob
from anjuka.core.db import db
from anjuka.core.keys import keyring
from anjuka.core.time import utcnow
from cardreader.client import JobClient
from cardreader.daemon import Daemon, DaemonConfig
from cardreader.protocol import card
from cardreader.record import verify_record
from cardreader.sim.cpu import SimCpuCard
from cardreader.sim.mifare import SimMifareCard
from cardreader.transport.memory import MemoryReader

#: How long the server stays unreachable, on the daemon's clock: minutes, more than a lease.
OUTAGE = timedelta(minutes=5)
SHIPPED = DaemonConfig(journal_path=None)  # type: ignore[arg-type]  # only its back-off is read


class Outage:
    """The server, unreachable from :meth:`begin` for ``length`` of the daemon's clock.

    ``sleep`` stands in for the daemon's pause: it moves the virtual clock
    (and the server's) on and brings the server back once ``length`` has
    passed. Each request while the server is gone fails as a refused
    connection does.
    """

    def __init__(self, traveller: Any, length: timedelta) -> None:
        self.traveller = traveller
        self.length = length.total_seconds()
        self.now = 0.0
        self.back_at: float | None = None
        self.delays: list[float] = []
        self.refused = 0
        #: The paths of the requests that reached the server.
        self.delivered: list[str] = []

    @property
    def down(self) -> bool:
        return self.back_at is not None and self.now < self.back_at

    def begin(self) -> None:
        assert self.back_at is None, "one outage per test"
        self.back_at = self.now + self.length

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds
        self.traveller.shift(seconds)


class UnreachableWhenDown(FlaskAdapter):
    def __init__(self, client: Any, outage: Outage) -> None:
        super().__init__(client)
        self.outage = outage

    def send(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.outage.down:
            self.outage.refused += 1
            raise requests.ConnectionError(f"connection refused: {request.url}")
        self.outage.delivered.append(urlsplit(request.url).path.rsplit("/", 1)[-1])
        return super().send(request, *args, **kwargs)


def shipped_backoff(length: float, first: float, cap: float) -> list[float]:
    """The pauses of a daemon that retries until ``length`` seconds have passed."""
    pauses: list[float] = []
    pause = first
    while sum(pauses) < length:
        pauses.append(pause)
        pause = min(pause * 2, cap)
    return pauses


@pytest.fixture
def outage() -> Iterator[Outage]:
    with time_machine.travel(utcnow(), tick=True) as traveller:
        yield Outage(traveller, OUTAGE)


@pytest.fixture
def daemon_for(desk, outage, tmp_path) -> Callable[[MemoryReader], Daemon]:  # type: ignore[no-untyped-def]
    def make(reader: MemoryReader) -> Daemon:
        session = requests.Session()
        session.mount("http://anjuka.test", UnreachableWhenDown(desk.client, outage))
        client = JobClient(
            "http://anjuka.test", desk.daemon.token, desk.reader_id, timeout=5, session=session
        )
        config = DaemonConfig(
            journal_path=tmp_path / "journal.json",
            poll_wait=0,
            card_timeout=0.3,
            reader_poll=0.02,
            backoff_initial=SHIPPED.backoff_initial,
            backoff_max=SHIPPED.backoff_max,
        )
        daemon = Daemon(config, client, reader)
        daemon._sleep = outage.sleep  # type: ignore[method-assign]
        return daemon

    return make


def _sim(card_type: str) -> SimCpuCard | SimMifareCard:
    return SimCpuCard() if card_type == "cpu" else SimMifareCard()


def _writes_of_one_issuance(desk, daemon_for, card_type: str) -> int:  # type: ignore[no-untyped-def]
    """How many writes reach a blank chip in one issuance without any outage."""
    desk.issue(desk.arrive_here()["id"])
    sim = _sim(card_type)
    assert daemon_for(MemoryReader(card=sim)).step()
    return sim.writes


def _at_first_call(daemon: Daemon, name: str, then: Callable[[], None]) -> None:
    """Run ``then`` when the daemon first calls ``client.<name>`` (before the call goes out)."""
    real = getattr(daemon.client, name)
    called: list[int] = []

    def call(*args: object) -> object:
        if not called:
            called.append(1)
            then()
        return real(*args)

    setattr(daemon.client, name, call)


@pytest.mark.parametrize("card_type", ["cpu", "mifare1k"])
@pytest.mark.parametrize("gone", ["before the claim", "after the claim", "after the write"])
def test_minutes_without_the_server_back_off_resume_and_act_once(
    desk, daemon_for, outage, card_type, gone
):
    reference_writes = _writes_of_one_issuance(desk, daemon_for, card_type)
    outage.delivered.clear()
    residence = desk.arrive_here()
    card_no = desk.issue(residence["id"]).json["card_no"]
    sim = _sim(card_type)
    reader = MemoryReader(card=sim)
    daemon = daemon_for(reader)

    def written_not_reported() -> None:
        assert daemon.journal.load()["phase"] == "reporting"
        assert sim.writes == reference_writes
        outage.begin()

    if gone == "before the claim":
        outage.begin()
    elif gone == "after the claim":
        _at_first_call(daemon, "post_uid", outage.begin)
    else:
        _at_first_call(daemon, "post_result", written_not_reported)

    assert daemon.step()

    # Exponential back-off up to the cap, for the minutes of the outage...
    expected = shipped_backoff(OUTAGE.total_seconds(), SHIPPED.backoff_initial, SHIPPED.backoff_max)
    assert outage.delays == expected
    assert expected == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]  # 63 s, then 4 minutes at the cap
    assert sum(outage.delays) >= OUTAGE.total_seconds()
    # ...one refused call before each pause, and the first call after it went through.
    assert outage.refused == len(outage.delays)
    assert outage.delivered.count("uid") == outage.delivered.count("result") == 1
    # Every effect once: the chip bound and written once, the result reported once.
    job = desk.card(card_no)["job"]
    assert (job["status"], job["attempt"], job["error"]) == ("done", 1, None), job
    issued = desk.card(card_no)
    assert (issued["status"], issued["uid"]) == ("active", sim.uid.hex())
    assert sim.writes == reference_writes
    record = card.read_record(reader.wait_for_card(1), card_type)
    assert verify_record(record, sim.uid, keyring().signing_public_keys()).card_no == card_no
    row = db.session.get(CardJob, job["id"])
    assert row is not None
    if gone != "before the claim":
        # The server's clock went on too: the job outlived its lease, and no one else took it.
        assert row.finished_at - row.claimed_at >= OUTAGE  # type: ignore[operator]
    chips = db.session.scalars(sa.select(CardChip).where(CardChip.job_id == job["id"])).all()
    assert [(c.uid, c.activated_at is not None) for c in chips] == [(sim.uid.hex(), True)]
    for action in ("card.sign", "card.activate"):
        events = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.subject_id == card_no)
        )
        assert events == 1, action
    assert daemon.journal.load() is None
