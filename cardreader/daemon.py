"""The desk daemon: takes card jobs from the server, runs them on the card, reports.

It survives what a desk throws at it: no reader yet or an unplugged one (it
does not take jobs without a reader), no card (the job fails with a reason
after ``card_timeout``), a card pulled mid-write (reported ``unknown``, then
reconciled when a card returns: a card that already holds the record is
reported done without writing), a server that is down (exponential backoff,
capped), and its own restart (the journal names the job in hand and any
result not yet acknowledged).

Stopping (SIGTERM) is prompt even in the middle of a long poll: the poll runs
in a thread, and the daemon tells the server it is going (``release``), which
ends the poll at once and hands back every job this daemon claimed but has
not begun, so the next daemon takes it now rather than after its lease.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cardreader.client import (
    JobClient,
    ServerError,
    ServerRejected,
    ServerUnavailable,
    Unauthorized,
)
from cardreader.jobs import ERASE, ISSUE, Job
from cardreader.journal import Journal
from cardreader.protocol import card
from cardreader.protocol.errors import CardError, UnsupportedCardError
from cardreader.record import RecordFormatError
from cardreader.transport.base import CardRemovedError, NoReaderError, Reader, TransportError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Stopping(Exception):
    """The daemon was asked to stop."""


@dataclass(frozen=True)
class DaemonConfig:
    """Tunables; the defaults suit a desk."""

    journal_path: Path
    poll_wait: int = 25
    card_timeout: float = 60.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    reader_poll: float = 0.5
    #: After a stop, how long the server may take to hand jobs back and end the poll.
    stop_grace: float = 5.0


class Daemon:
    """The job loop. ``step`` runs one poll; ``run`` loops until ``stop`` is set."""

    def __init__(
        self,
        config: DaemonConfig,
        client: JobClient,
        reader: Reader,
        stop: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.reader = reader
        self.stop = stop or threading.Event()
        self.journal = Journal(config.journal_path)
        # job id -> UID of a wrong card already reported for it, so the same wrong
        # card lying in the reader is not reported again and again.
        self._wrong_cards: dict[int, str] = {}
        #: Per issue job, the UID the server refused (it already carries an active card).
        self._refused_uids: dict[int, str] = {}
        self._reader_missing = False
        self._handed_back = False
        if client.run is None:
            # One run of the daemon: the server ends its polls when it says it is over.
            client.run = uuid.uuid4().hex[:16]

    # -- plumbing -------------------------------------------------------------
    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopping

    def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Call the server until it answers, backing off while it is unavailable."""
        delay = self.config.backoff_initial
        while True:
            if self.stop.is_set():
                raise Stopping
            try:
                return fn(*args)
            except ServerUnavailable as exc:
                log.warning("%s: server unavailable (%s); retrying in %.1f s", what, exc, delay)
            self._sleep(delay)
            delay = min(delay * 2, self.config.backoff_max)

    def _wait_for_card(self, timeout: float) -> card.PresentedCard | None:
        """Wait for a card that answers, riding out a missing reader; None on timeout."""
        deadline = time.monotonic() + timeout
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                presented = card.present_card(self.reader, min(remaining, self.config.reader_poll))
            except NoReaderError:
                self._note_reader(False)
                self._sleep(min(self.config.reader_poll, max(0.0, remaining)))
                continue
            except TransportError as exc:
                log.warning("reader error: %s", exc)
                self._sleep(min(self.config.reader_poll, max(0.0, remaining)))
                continue
            self._note_reader(True)
            if presented is not None:
                return presented
        raise Stopping

    def _note_reader(self, available: bool) -> None:
        if available and self._reader_missing:
            log.info("reader %s is back", self.reader.name or "(first)")
        elif not available and not self._reader_missing:
            log.warning("reader %s is not available; waiting for it", self.reader.name or "(any)")
        self._reader_missing = not available

    # -- the loop ---------------------------------------------------------------
    def run(self) -> int:
        """Serve jobs until stopped; returns the process exit code."""
        try:
            if self.client.reader_id is None:
                me = self._call("who am I", self.client.whoami)
                self.client.reader_id = me["id"]
                log.info("serving as reader %s (%s)", me["id"], me.get("name", ""))
            while not self.stop.is_set():
                try:
                    self.step()
                except (Stopping, Unauthorized):
                    raise
                except Exception:
                    # A bug or an unforeseen failure must not end the desk's daemon: the
                    # journal keeps the job, and the server hands it out again.
                    log.exception("unexpected error; carrying on")
                    self._sleep(self.config.backoff_max)
        except Stopping:
            pass
        except Unauthorized as exc:
            log.error("the server refused this reader's token (%s); check --token", exc)
            return 2
        log.info("stopping")
        self._hand_back()
        return 0

    def _hand_back(self) -> None:
        """On the way out: give back the jobs claimed but not begun, end the poll in flight.

        Once only, without retrying: a server that cannot be reached gets its
        jobs back when their lease runs out. A job with card work done (a
        bound chip, a result to report) stays with this daemon's journal.
        """
        if self._handed_back or self.client.reader_id is None:
            return
        self._handed_back = True
        try:
            released = self.client.release(timeout=self.config.stop_grace)
        except ServerError as exc:
            log.warning("could not hand jobs back (%s); they return when their lease ends", exc)
            return
        if released:
            log.info("handed back job(s) %s", ", ".join(str(j) for j in released))
        entry = self.journal.load()
        if entry is not None and entry["job_id"] in released and entry.get("phase") == "started":
            self.journal.clear()

    def _poll(self) -> Job | None:
        """The long poll; a stop meanwhile ends it at once (see the module docstring)."""
        if self.config.poll_wait <= 0:
            return self._call("poll", self.client.next_job, 0)
        box: dict[str, Any] = {}  # "job" or "error", from the polling thread
        done = threading.Event()

        def poll() -> None:
            try:
                box["job"] = self._call("poll", self.client.next_job, self.config.poll_wait)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=poll, name="anjuka-cardreader-poll", daemon=True).start()
        while not done.wait(0.1):
            if self.stop.is_set():
                # The server ends the poll and takes back what it claimed meanwhile;
                # whatever the poll brings now is not ours to run.
                self._hand_back()
                done.wait(self.config.stop_grace)
                raise Stopping
        if "error" in box:
            raise box["error"]
        job: Job | None = box.get("job")
        return job

    def step(self) -> bool:
        """Report what the journal holds, then poll once and run the job; True if a job ran."""
        entry = self.journal.load()
        if entry is not None and entry.get("phase") == "reporting":
            self._report(entry)
            entry = None
        if not self.reader.is_available():
            self._note_reader(False)
            self._sleep(self.config.reader_poll)
            return False
        self._note_reader(True)
        job = self._poll()
        if job is None:
            return False
        if self.stop.is_set():
            raise Stopping  # stopped as the job came: it is handed back, not begun
        if entry is not None and entry["job_id"] != job.id:
            log.warning("job %s in the journal is no longer ours; dropping it", entry["job_id"])
            self.journal.clear()
        elif entry is not None:
            log.info("resuming job %s (was %s)", job.id, entry.get("phase"))
        self.run_job(job)
        return True

    def run_job(self, job: Job) -> None:
        """Run one job to its reported outcome."""
        log.info("job %s: %s %s (attempt %s)", job.id, job.kind, job.card_no, job.attempt)
        entry: dict[str, Any] = {
            "job_id": job.id,
            "kind": job.kind,
            "card_no": job.card_no,
            "phase": "started",
        }
        self.journal.save(entry)
        result: dict[str, Any] | None
        if job.kind == ISSUE:
            result = self._issue(job, entry)
        elif job.kind == ERASE:
            result = self._erase(job, entry)
        else:
            result = {"outcome": "failed", "error": f"unsupported job kind {job.kind!r}"}
        if result is None:
            self.journal.clear()  # nothing to report (already reported)
            return
        result = {**result, **job.attempt_report()}
        entry.update(phase="reporting", result=result)
        self.journal.save(entry)
        self._report(entry)

    def _report(self, entry: dict[str, Any]) -> None:
        result = entry["result"]
        try:
            self._call("report", self.client.post_result, entry["job_id"], result)
            log.info("job %s: reported %s", entry["job_id"], result["outcome"])
        except Unauthorized:
            raise
        except ServerRejected as exc:
            log.warning("job %s: server refused the result (%s); dropping it", entry["job_id"], exc)
        self.journal.clear()

    def _no_card(self, seconds: float, uid: str | None) -> dict[str, Any]:
        result: dict[str, Any] = {"outcome": "failed"}
        if uid:
            result["uid"] = uid
            result["error"] = (
                f"the card left during the write and was not presented again within {seconds:g} s"
            )
        else:
            result["error"] = f"no card was presented within {seconds:g} s"
        return result

    def _report_unknown(self, job: Job, uid: str) -> None:
        body = {
            "outcome": "unknown",
            "uid": uid,
            "error": "card removed during the write",
            **job.attempt_report(),
        }
        try:
            self._call("report unknown", self.client.post_result, job.id, body)
        except ServerRejected as exc:
            log.warning("job %s: server refused the unknown outcome (%s)", job.id, exc)

    # -- issuing ------------------------------------------------------------------
    def _issue(self, job: Job, entry: dict[str, Any]) -> dict[str, Any] | None:
        """Wait for a blank card, bind it, write it; a card torn away is waited for again."""
        torn_uid: str | None = None
        refused_since: float | None = None
        while True:
            try:
                presented = self._wait_for_card(self.config.card_timeout)
            except CardError as exc:
                return {"outcome": "failed", "error": f"unusable card: {exc}"}
            if presented is None:
                return self._no_card(self.config.card_timeout, torn_uid)
            uid = presented.uid.hex()
            if self._refused_uids.get(job.id) == uid:
                # Sending it again would only spend another attempt: wait for
                # the clerk to take it away and present a blank card.
                presented.connection.close()
                if refused_since is None:
                    refused_since = time.monotonic()
                if time.monotonic() - refused_since > self.config.card_timeout:
                    self._refused_uids.pop(job.id, None)
                    return {
                        "outcome": "failed",
                        "uid": uid,
                        "error": "this card already carries an active Anju e-Card;"
                        " present a blank card",
                    }
                self._sleep(self.config.reader_poll)
                continue
            try:
                return self._bind_and_write(job, entry, presented)
            except CardRemovedError:
                log.warning("job %s: card %s left during the write", job.id, uid)
                self._report_unknown(job, uid)
                torn_uid = uid
            finally:
                presented.connection.close()

    def _bind_and_write(
        self, job: Job, entry: dict[str, Any], presented: card.PresentedCard
    ) -> dict[str, Any] | None:
        """Send the card's UID, write the record signed for it, read it back.

        Returns the result to report, or None when the server refused the UID
        (there is nothing to report: the attempt is over on its side).
        CardRemovedError goes to the caller: the card left mid-write.
        """
        uid = presented.uid.hex()
        try:
            log.info("job %s: card %s (%s) presented", job.id, uid, presented.card_type)
            binding = self._call(
                "send UID",
                self.client.post_uid,
                job.id,
                uid,
                presented.card_type,
                job.current_attempt,
            )
            entry.update(phase="writing", uid=uid, card_type=presented.card_type)
            self.journal.save(entry)
            read_back = card.write_record(
                presented.connection, binding.keys, binding.record, presented.card_type
            )
        except (CardRemovedError, Unauthorized):
            raise
        except ServerRejected as exc:
            self._uid_refused(job, uid, exc)
            return None
        except (RecordFormatError, ValueError, KeyError) as exc:
            return {"outcome": "failed", "uid": uid, "error": f"bad answer from server: {exc}"}
        except UnsupportedCardError as exc:
            return {"outcome": "failed", "uid": uid, "error": f"unsupported card: {exc}"}
        except (CardError, TransportError) as exc:
            return {"outcome": "failed", "uid": uid, "error": str(exc)}
        log.info("job %s: record written and read back", job.id)
        self._refused_uids.pop(job.id, None)
        return {"outcome": "done", "uid": uid, "record": read_back.hex()}

    def _uid_refused(self, job: Job, uid: str, exc: ServerRejected) -> None:
        """The server would not bind this card; remember a chip already in use."""
        log.warning("job %s: server refused the UID (%s)", job.id, exc)
        if exc.code == "uid_in_use":
            self._refused_uids[job.id] = uid

    # -- erasing ------------------------------------------------------------------
    def _erase(self, job: Job, entry: dict[str, Any]) -> dict[str, Any] | None:
        job_id = job.id
        expected = (job.expected_uid or "").lower()
        card_type = job.erase_card_type
        keys = job.keys
        if not expected or card_type is None or not keys:
            return {"outcome": "failed", "error": "erase job lacks expected_uid, card_type or keys"}
        deadline = time.monotonic() + self.config.card_timeout
        torn = False
        while True:
            try:
                presented = self._wait_for_card(max(0.0, deadline - time.monotonic()))
            except CardError as exc:
                return {"outcome": "failed", "error": f"unusable card: {exc}"}
            if presented is None:
                if job_id in self._wrong_cards:
                    return {"outcome": "failed", "error": "wrong_card"}
                return self._no_card(self.config.card_timeout, expected if torn else None)
            uid = presented.uid.hex()
            try:
                if uid != expected:
                    if self._wrong_cards.get(job_id) == uid:
                        # Already reported: wait for the clerk to swap cards.
                        self._sleep(self.config.reader_poll)
                        continue
                    log.warning("job %s: card %s is not the card to erase", job_id, uid)
                    self._wrong_cards[job_id] = uid
                    return {"outcome": "failed", "uid": uid, "error": "wrong_card"}
                entry.update(phase="writing", uid=uid, card_type=card_type)
                self.journal.save(entry)
                card.erase(presented.connection, keys, card_type)
                self._wrong_cards.pop(job_id, None)
                log.info("job %s: card %s erased", job_id, uid)
                return {"outcome": "done", "uid": uid}
            except CardRemovedError:
                log.warning("job %s: card %s left during the erase", job_id, uid)
                self._report_unknown(job, uid)
                torn = True
                deadline = time.monotonic() + self.config.card_timeout
            except (CardError, TransportError, ValueError) as exc:
                return {"outcome": "failed", "uid": uid, "error": str(exc)}
            finally:
                presented.connection.close()
