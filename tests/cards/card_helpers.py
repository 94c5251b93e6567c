"""Helpers of the card tests (plain code; fixtures live in conftest.py).

The daemon here calls the reader endpoints with the reader's token exactly
as ``anjuka-cardreader`` does, and stands in for the chip with the pure
record module: what it "writes" is what it reads back.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from flask.testing import FlaskClient
from requests.structures import CaseInsensitiveDict


def new_uid(size: int = 7) -> str:
    """A chip UID as the daemon sends it (lowercase hex)."""
    return secrets.token_bytes(size).hex()


@dataclass
class Daemon:
    """The desk daemon of one reader, played through the test client."""

    client: FlaskClient
    reader_id: int
    token: str
    holder: str | None = None
    #: The daemon's run, sent with its polls (docs/job-protocol.md, "Stopping").
    run: str | None = None
    written: dict[str, bytes] = field(default_factory=dict)  # uid -> record on the "chip"

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def _query(self, **params: object) -> dict:
        if self.holder is not None:
            params["holder"] = self.holder
        return params

    def poll(self, wait: float = 0):  # type: ignore[no-untyped-def]
        run = {"run": self.run} if self.run else {}
        return self.client.get(
            f"/api/v1/readers/{self.reader_id}/jobs/next",
            query_string=self._query(wait=wait, **run),
            headers=self.headers,
        )

    def release(self):  # type: ignore[no-untyped-def]
        """The daemon stops: hand back what it claimed, end its run's polls."""
        return self.client.post(
            f"/api/v1/readers/{self.reader_id}/jobs/release",
            json={"run": self.run} if self.run else {},
            query_string=self._query(),
            headers=self.headers,
        )

    def next_job(self) -> dict:
        response = self.poll()
        assert response.status_code == 200, (response.status_code, response.get_data(True))
        return response.json

    def send_uid(self, job_id: int, uid: str, card_type: str = "cpu", **extra: object):  # type: ignore[no-untyped-def]
        return self.client.post(
            f"/api/v1/readers/{self.reader_id}/jobs/{job_id}/uid",
            json={"uid": uid, "card_type": card_type, **extra},
            query_string=self._query(),
            headers=self.headers,
        )

    def report(self, job_id: int, **body: object):  # type: ignore[no-untyped-def]
        return self.client.post(
            f"/api/v1/readers/{self.reader_id}/jobs/{job_id}/result",
            json=body,
            query_string=self._query(),
            headers=self.headers,
        )

    def issue(self, uid: str | None = None, card_type: str = "cpu") -> dict:
        """Take the next job, bind it to ``uid``, write, read back, report done."""
        uid = uid or new_uid()
        job = self.next_job()
        assert job["kind"] == "issue", job
        bound = self.send_uid(job["id"], uid, card_type)
        assert bound.status_code == 200, bound.json
        record = bytes.fromhex(bound.json["record"])
        self.written[uid] = record
        done = self.report(job["id"], outcome="done", uid=uid, record=record.hex())
        assert done.status_code == 200, done.json
        return {"job": job, "uid": uid, "record": record, "bound": bound.json, "done": done.json}


@dataclass
class Desk:
    """A property desk: area, estate, dwelling, a manager, a reader serving the estate."""

    client: FlaskClient
    area_code: str
    estate_id: int
    dwelling_id: int
    manager: dict
    daemon: Daemon
    arrive_here: Callable[..., dict]
    make_daemon: Callable[..., Daemon]

    @property
    def headers(self) -> dict:
        return self.manager["headers"]

    @property
    def reader_id(self) -> int:
        return self.daemon.reader_id

    def issue(self, residence_id: int, reader_id: int | None = None, headers: dict | None = None):  # type: ignore[no-untyped-def]
        return self.client.post(
            "/api/v1/cards",
            json={"residence_id": residence_id, "reader_id": reader_id or self.reader_id},
            headers=self.headers if headers is None else headers,
        )

    def card(self, card_no: str, headers: dict | None = None) -> dict:
        response = self.client.get(
            f"/api/v1/cards/{card_no}", headers=self.headers if headers is None else headers
        )
        assert response.status_code == 200, response.json
        return response.json

    def post(self, path: str, body: dict | None = None, headers: dict | None = None):  # type: ignore[no-untyped-def]
        return self.client.post(
            f"/api/v1{path}", json=body or {}, headers=self.headers if headers is None else headers
        )

    def active_card(self, residence_id: int | None = None, card_type: str = "cpu") -> dict:
        """Issue and activate a card through the daemon; the card's JSON plus the chip."""
        residence_id = residence_id or self.arrive_here()["id"]
        issued = self.issue(residence_id)
        assert issued.status_code == 202, issued.json
        chip = self.daemon.issue(card_type=card_type)
        card = self.card(issued.json["card_no"])
        assert card["status"] == "active", card
        return {**card, "chip": chip, "job_id": issued.json["job_id"]}


class FlaskAdapter(requests.adapters.BaseAdapter):
    """Lets ``requests`` (the daemon's HTTP client) talk to a Flask test client in-process."""

    def __init__(self, client: FlaskClient) -> None:
        super().__init__()
        self.client = client

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):  # type: ignore[no-untyped-def]
        url = urlsplit(request.url)
        answer = self.client.open(
            url.path,
            method=request.method,
            query_string=url.query,
            headers=dict(request.headers),
            data=request.body,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response._content = answer.get_data()
        response.headers = CaseInsensitiveDict(answer.headers)
        response.encoding = "utf-8"
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        """Nothing to release."""


def in_process_session(client: FlaskClient) -> requests.Session:
    """A requests session whose calls to http://anjuka.test go to ``client``."""
    session = requests.Session()
    session.mount("http://anjuka.test", FlaskAdapter(client))
    return session
