"""A fake Anjuka server speaking docs/job-protocol.md, for daemon tests.

Stdlib ``http.server`` on 127.0.0.1, a real Ed25519 key and the real
``cardreader.record`` signing: it checks what the daemon reports as the real
server would (a ``done`` issue needs the read-back to equal the record signed
for that UID).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from cardreader.record import CardRecord, sign_record

TOKEN = "reader-token"
READER_ID = 3
MASTER = b"card master key for tests"
TRANSPORT = {"cpu": "ff" * 16, "mifare1k": "ff" * 6}


def derive_keys(card_type: str, uid: str) -> dict[str, str]:
    """Per-card keys from the master key and UID, as the server does."""

    def part(label: str, size: int) -> str:
        mac = hmac.new(MASTER, f"{card_type}:{label}:{uid}".encode(), hashlib.sha256)
        return mac.hexdigest()[: size * 2]

    if card_type == "cpu":
        return {
            "transport_key": TRANSPORT["cpu"],
            "write_key": part("write", 16),
            "internal_key": part("internal", 16),
        }
    return {"transport_key": TRANSPORT["mifare1k"], "key_a": b"ANJUKA".hex(), "key_b": part("b", 6)}


@dataclass
class Job:
    id: int
    kind: str
    card_no: str
    residence_id: int = 1
    status: str = "queued"  # queued, held, done, failed
    attempt: int = 0
    uid: str | None = None
    card_type: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)


class FakeJobServer:
    """State and behaviour; ``url`` is where the daemon should point."""

    def __init__(self, signing_key: Any, key_id: int) -> None:
        self.signing_key = signing_key
        self.key_id = key_id
        self.jobs: dict[int, Job] = {}
        self.requests: list[tuple[str, str]] = []
        #: The ``holder`` query parameter of every job call, in order.
        self.holders: list[str] = []
        self.cond = threading.Condition()
        #: (method, path fragment) -> number of 503 answers still to give
        self.fail: dict[tuple[str, str], int] = {}
        self.httpd: ThreadingHTTPServer | None = None
        #: UIDs that already carry an active card: binding one is refused.
        self.uids_in_use: set[str] = set()
        #: Every UID sent for binding, in order.
        self.bound_uids: list[str] = []
        #: Runs a daemon said are over (``release``), and the polls that ended for it.
        self.stopped_runs: list[str] = []
        self.polls_ended_by_release = 0
        self.released = threading.Event()
        #: Called (outside the lock) with a job a poll claimed, before it is sent.
        self.on_claim: Callable[[Job], None] | None = None
        self.port = 0

    # -- control from tests ---------------------------------------------------
    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.handle(self, "GET")

            def do_POST(self) -> None:
                server.handle(self, "POST")

        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self) -> None:
        """Take the server down (connections are refused until ``start``)."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_job(self, kind: str, **fields: Any) -> Job:
        with self.cond:
            job = Job(
                id=len(self.jobs) + 1, kind=kind, card_no=fields.pop("card_no", "AJ00000012Q")
            )
            for name, value in fields.items():
                setattr(job, name, value)
            self.jobs[job.id] = job
            self.cond.notify_all()
            return job

    def record_for(self, job: Job, uid: str) -> bytes:
        record = CardRecord(
            card_no=job.card_no,
            residence_id=job.residence_id,
            area_code="330203",
            valid_from=datetime.date(2026, 1, 1),
            valid_until=datetime.date(2027, 12, 31),
            key_id=self.key_id,
        )
        return sign_record(record, bytes.fromhex(uid), self.signing_key)

    def outcomes(self, job: Job) -> list[str]:
        return [r["outcome"] for r in job.results]

    # -- protocol -----------------------------------------------------------------
    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(request.path)
        self.requests.append((method, url.path))
        if "/jobs/" in url.path:
            self.holders.append(parse_qs(url.query).get("holder", [""])[0])
        for (fail_method, fragment), count in list(self.fail.items()):
            if fail_method == method and fragment in url.path and count > 0:
                self.fail[(fail_method, fragment)] = count - 1
                return self.reply(request, 503, {"status": 503, "error": "unavailable"})
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.reply(request, 401, {"status": 401, "error": "unauthorized", "message": ""})
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length)) if length else {}
        parts = url.path.strip("/").split("/")
        if parts == ["api", "v1", "readers", "me"]:
            return self.reply(request, 200, {"id": READER_ID, "name": "desk-1"})
        if parts[:3] != ["api", "v1", "readers"] or parts[3] != str(READER_ID):
            return self.reply(request, 404, {"status": 404, "error": "not_found"})
        if method == "GET" and parts[4:] == ["jobs", "next"]:
            query = parse_qs(url.query)
            wait = min(float(query.get("wait", ["0"])[0]), 30)
            return self.next_job(request, wait, query.get("run", [None])[0])
        if method == "POST" and parts[4:] == ["jobs", "release"]:
            return self.release(request, body)
        job = self.jobs.get(int(parts[5])) if len(parts) == 7 else None
        if job is None:
            return self.reply(request, 404, {"status": 404, "error": "not_found"})
        if method == "POST" and parts[6] == "uid":
            return self.bind_uid(request, job, body)
        if method == "POST" and parts[6] == "result":
            return self.result(request, job, body)
        return self.reply(request, 404, {"status": 404, "error": "not_found"})

    def next_job(self, request: BaseHTTPRequestHandler, wait: float, run: str | None) -> None:
        def available() -> Job | None:
            for job in self.jobs.values():
                if job.status in ("queued", "held"):
                    return job
            return None

        def over() -> bool:
            return run is not None and run in self.stopped_runs

        with self.cond:
            self.cond.wait_for(lambda: over() or available() is not None, timeout=wait)
            if over():
                self.polls_ended_by_release += 1
                return self.reply(request, 204, None)
            job = available()
            if job is None:
                return self.reply(request, 204, None)
            if job.status == "queued":
                job.attempt += 1
            job.status = "held"
            payload = {
                "id": job.id,
                "kind": job.kind,
                "card_no": job.card_no,
                "attempt": job.attempt,
                "lease_seconds": 120,
                "expected_uid": job.uid if job.kind == "erase" else None,
                "card_type": job.card_type if job.kind == "erase" else None,
                "keys": derive_keys(job.card_type, job.uid)
                if job.kind == "erase" and job.uid and job.card_type
                else None,
            }
        if self.on_claim is not None:
            self.on_claim(job)
        return self.reply(request, 200, payload)

    def release(self, request: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        """As the server does: held jobs not yet bound go back, their attempt given back."""
        with self.cond:
            if body.get("run"):
                self.stopped_runs.append(body["run"])
            released = []
            for job in self.jobs.values():
                if job.status == "held" and job.uid is None:
                    job.status, job.attempt = "queued", job.attempt - 1
                    released.append(job.id)
            self.cond.notify_all()
        self.released.set()
        return self.reply(request, 200, {"released": released})

    def bind_uid(self, request: BaseHTTPRequestHandler, job: Job, body: dict[str, Any]) -> None:
        if job.status != "held" or job.kind != "issue":
            return self.reply(request, 409, {"status": 409, "error": "job_not_held"})
        self.bound_uids.append(body["uid"])
        if body["uid"] in self.uids_in_use:
            # As the server does: the attempt is spent and the job goes back.
            job.status = "queued"
            return self.reply(request, 409, {"status": 409, "error": "uid_in_use"})
        job.uid, job.card_type = body["uid"], body["card_type"]
        record = self.record_for(job, job.uid)
        return self.reply(
            request, 200, {"record": record.hex(), "keys": derive_keys(job.card_type, job.uid)}
        )

    def result(self, request: BaseHTTPRequestHandler, job: Job, body: dict[str, Any]) -> None:
        if job.results and job.results[-1] == body and job.status in ("done", "failed"):
            return self.reply(request, 200, {"status": job.status})  # a repeated report
        if job.status != "held":
            return self.reply(request, 409, {"status": 409, "error": "job_not_held"})
        outcome = body.get("outcome")
        if outcome == "done" and job.kind == "issue" and not self.matches(job, body):
            return self.reply(request, 409, {"status": 409, "error": "record_mismatch"})
        if outcome == "done" and job.kind == "erase" and body.get("uid") != job.uid:
            return self.reply(request, 409, {"status": 409, "error": "wrong_card"})
        job.results.append(body)
        if outcome == "done":
            job.status = "done"
        elif outcome == "failed":
            # A wrong card leaves an erase job waiting for the right one.
            job.status = "queued" if body.get("error") == "wrong_card" else "failed"
        return self.reply(request, 200, {"status": job.status})

    def matches(self, job: Job, body: dict[str, Any]) -> bool:
        """The read-back equals the record signed for the job's UID."""
        if body.get("uid") != job.uid or job.uid is None:
            return False
        return bytes.fromhex(body.get("record", "")) == self.record_for(job, job.uid)

    @staticmethod
    def reply(request: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        request.send_response(status)
        if payload is not None:
            request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
