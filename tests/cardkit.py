"""Issuing real cards in tests through the cards API: a desk reader played by the test.

Shared by every test that needs an active card (the ``card_desk`` fixture).
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass

from flask.testing import FlaskClient

_names = itertools.count(1)


def new_uid(size: int = 7) -> str:
    """A chip UID as a reader reports it (lowercase hex)."""
    return secrets.token_bytes(size).hex()


@dataclass
class IssuedCard:
    """An active card and what its chip holds."""

    card_no: str
    uid: str
    record: bytes
    card_type: str
    residence_id: int
    #: The per-card keys the job carried (docs/job-protocol.md), as the daemon got them.
    keys: dict


@dataclass
class CardDesk:
    """A desk reader (its daemon played through the test client) and a desk user."""

    client: FlaskClient
    reader_id: int
    token: str
    desk_headers: dict

    @property
    def reader_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def issue(
        self, residence_id: int, *, uid: str | None = None, card_type: str = "cpu"
    ) -> IssuedCard:
        """Queue an issue job, take it as the daemon, bind the chip, report the write."""
        uid = uid or new_uid()
        queued = self.client.post(
            "/api/v1/cards",
            json={"residence_id": residence_id, "reader_id": self.reader_id},
            headers=self.desk_headers,
        )
        assert queued.status_code == 202, queued.json
        base = f"/api/v1/readers/{self.reader_id}"
        job = self.client.get(f"{base}/jobs/next?wait=0", headers=self.reader_headers)
        assert job.status_code == 200, job.get_data(as_text=True)
        job_id = job.json["id"]
        bound = self.client.post(
            f"{base}/jobs/{job_id}/uid",
            json={"uid": uid, "card_type": card_type},
            headers=self.reader_headers,
        )
        assert bound.status_code == 200, bound.json
        record = bytes.fromhex(bound.json["record"])
        done = self.client.post(
            f"{base}/jobs/{job_id}/result",
            json={"outcome": "done", "uid": uid, "record": record.hex()},
            headers=self.reader_headers,
        )
        assert done.status_code == 200, done.json
        card = self.client.get(f"/api/v1/cards/{queued.json['card_no']}", headers=self.desk_headers)
        assert card.json["status"] == "active", card.json
        return IssuedCard(
            queued.json["card_no"], uid, record, card_type, residence_id, bound.json["keys"]
        )

    def queue(self, residence_id: int) -> dict:
        """``POST /cards``: a pending card and its job; the daemon takes the job."""
        queued = self.client.post(
            "/api/v1/cards",
            json={"residence_id": residence_id, "reader_id": self.reader_id},
            headers=self.desk_headers,
        )
        assert queued.status_code == 202, queued.json
        job = self.client.get(
            f"/api/v1/readers/{self.reader_id}/jobs/next?wait=0", headers=self.reader_headers
        )
        assert job.status_code == 200, job.get_data(as_text=True)
        return {**queued.json, "attempt": job.json["attempt"]}

    def bind(self, job_id: int, uid: str, card_type: str = "cpu") -> bytes:
        """Phase one: the chip's UID; the record signed for it (which the chip may keep)."""
        bound = self.client.post(
            f"/api/v1/readers/{self.reader_id}/jobs/{job_id}/uid",
            json={"uid": uid, "card_type": card_type},
            headers=self.reader_headers,
        )
        assert bound.status_code == 200, bound.json
        return bytes.fromhex(bound.json["record"])

    def report(self, job_id: int, **body: object) -> dict:
        answer = self.client.post(
            f"/api/v1/readers/{self.reader_id}/jobs/{job_id}/result",
            json=body,
            headers=self.reader_headers,
        )
        assert answer.status_code == 200, answer.json
        return answer.json

    def card(self, card_no: str) -> dict:
        answer = self.client.get(f"/api/v1/cards/{card_no}", headers=self.desk_headers)
        assert answer.status_code == 200, answer.json
        return answer.json

    def revoke(self, card_no: str, reason: str = "lost") -> None:
        response = self.client.post(
            f"/api/v1/cards/{card_no}/revoke", json={"reason": reason}, headers=self.desk_headers
        )
        assert response.status_code == 200, response.json

    def take_back(self, card: IssuedCard) -> None:
        """Return a card: queue the erase, run it as the daemon, report it done."""
        queued = self.client.post(
            f"/api/v1/cards/{card.card_no}/return",
            json={"reader_id": self.reader_id},
            headers=self.desk_headers,
        )
        assert queued.status_code in (200, 202), queued.json
        base = f"/api/v1/readers/{self.reader_id}"
        job = self.client.get(f"{base}/jobs/next?wait=0", headers=self.reader_headers)
        assert job.status_code == 200, job.get_data(as_text=True)
        assert job.json["kind"] == "erase"
        done = self.client.post(
            f"{base}/jobs/{job.json['id']}/result",
            json={"outcome": "done", "uid": card.uid},
            headers=self.reader_headers,
        )
        assert done.status_code == 200, done.json


def make_desk(client: FlaskClient, desk_headers: dict, area_code: str) -> CardDesk:
    """A reader serving ``area_code``'s subtree, registered the way the operator does."""
    from anjuka.cards.readers import create_reader
    from anjuka.core.db import db

    reader, token = create_reader(f"patrol-test-desk-{next(_names)}", area_code=area_code)
    db.session.commit()
    return CardDesk(client, reader.id, token, desk_headers)
