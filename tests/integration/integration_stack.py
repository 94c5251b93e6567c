"""The stack the integration tests drive: a server process, its database, its API.

Plain code; the fixtures that build it live in conftest.py.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
SERVE = Path(__file__).with_name("serve.py")
PASSWORD = "correct horse battery staple"
READERS = {35963: "Virtual PCD 00 00", 35964: "Virtual PCD 00 01"}
_serial = itertools.count(1)


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Stack:
    """One database, one server process, the registry records the tests build on."""

    workdir: Path
    env: dict[str, str]
    port: int = 0
    server: subprocess.Popen[str] | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- processes -------------------------------------------------------------
    def command(self, *args: str, stdin: str | None = None) -> str:
        """Run ``anjuka ARGS`` as an operator would; its stdout."""
        done = subprocess.run(
            [str(BIN / "anjuka"), *args],
            env=self.env,
            cwd=self.workdir,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def start_server(self) -> None:
        """Start the server (on the same port as before, after a restart)."""
        with (self.workdir / "server.log").open("a") as log:
            self.server = subprocess.Popen(
                [sys.executable, str(SERVE), str(self.port)],
                env=self.env,
                cwd=self.workdir,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self.server.stdout is not None
        line = self.server.stdout.readline()
        assert line.strip().isdigit(), f"server did not start: {self.server_log()}"
        self.port = int(line)
        wait_for(self._answers, 20, "the server to answer")

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/api/v1/openapi.json", timeout=2).ok
        except requests.RequestException:
            return False

    def kill_server(self) -> None:
        """Kill the server outright, as a crash or a host failure would."""
        assert self.server is not None
        self.server.send_signal(signal.SIGKILL)
        self._reap()

    def stop_server(self) -> None:
        """Stop the server at the end."""
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
        self._reap()

    def _reap(self) -> None:
        if self.server is not None:
            self.server.wait(10)
            if self.server.stdout is not None:
                self.server.stdout.close()

    def server_log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text()[-4000:] if path.exists() else ""

    # -- the API ---------------------------------------------------------------
    def api(self, method: str, path: str, role: str = "manager", **kwargs: object):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return requests.request(
            method, f"{self.url}/api/v1{path}", headers=headers, timeout=30, **kwargs
        )

    def sign_in(self, username: str) -> str:
        response = self.api(
            "POST", "/auth/tokens", role="", json={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        return response.json()["token"]

    def new_reader(self) -> tuple[int, str]:
        """A reader of its own for one test, serving the estate: (id, token)."""
        response = self.api(
            "POST",
            "/readers",
            role="admin",
            json={"name": f"desk-{uuid.uuid4().hex[:8]}", "estate_id": self.ids["estate"]},
        )
        assert response.status_code == 201, response.text
        return response.json()["id"], response.json()["token"]

    def new_residence(self) -> dict:
        """A resident arriving at the stack's dwelling today."""
        from anjuka.persons.identity import resident_id_check_char

        first17 = f"330203{date(1990, 1, 1):%Y%m%d}{next(_serial) % 1000:03d}"
        response = self.api(
            "POST",
            "/residences",
            json={
                "dwelling_id": self.ids["dwelling"],
                "arrived_on": self.today(),
                "person": {
                    "document_type": "resident_id",
                    "document_number": first17 + resident_id_check_char(first17),
                    "name": "李四",
                },
            },
        )
        assert response.status_code == 201, response.text
        return response.json()

    def today(self) -> str:
        from anjuka.core.time import local_today

        return local_today().isoformat()

    def issue(self, reader_id: int) -> dict:
        residence = self.new_residence()
        response = self.api(
            "POST", "/cards", json={"residence_id": residence["id"], "reader_id": reader_id}
        )
        assert response.status_code == 202, response.text
        return response.json()

    def card(self, card_no: str) -> dict:
        response = self.api("GET", f"/cards/{card_no}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_card(self, card_no: str, status: str, timeout: float = 40) -> dict:
        """Poll the card until it has ``status``; the card's JSON."""
        seen: dict = {}

        def reached() -> bool:
            seen.update(self.card(card_no))
            return seen["status"] == status

        try:
            wait_for(reached, timeout, f"card {card_no} to be {status}")
        except AssertionError:
            raise AssertionError(f"card {card_no} stayed {seen}") from None
        return seen

    def public_keys(self):  # type: ignore[no-untyped-def]
        """The signing public keys the server uses (from its instance's key file)."""
        from anjuka.core.keys import KeyRing

        path = Path(self.env["ANJUKA_INSTANCE_PATH"]) / "keys.json"
        return KeyRing(path, json.loads(path.read_text())).signing_public_keys()


class Gate:
    """A proxy before the server that lets every call through but a card job's result.

    A result is answered 503, as a server that is going away would answer:
    the daemon that sent it keeps it in its journal and backs off. ``held``
    counts the results kept back.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.held = 0
        self.httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> None:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                gate.forward(self, "GET")

            def do_POST(self) -> None:
                gate.forward(self, "POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def forward(self, request: BaseHTTPRequestHandler, method: str) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        if method == "POST" and request.path.split("?")[0].endswith("/result"):
            self.held += 1
            self._reply(request, 503, b'{"status": 503, "error": "try_again"}', "application/json")
            return
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        answer = requests.request(
            method, self.upstream + request.path, headers=headers, data=body, timeout=60
        )
        self._reply(request, answer.status_code, answer.content, answer.headers.get("Content-Type"))

    @staticmethod
    def _reply(
        request: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str | None
    ) -> None:
        request.send_response(status)
        if content_type:
            request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
