"""Webhooks: signed, sent after commit, retried with backoff, once per alert and subscription."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from anjuka.core.db import db
from anjuka.core.time import utcnow
from anjuka.notifications.commands import webhooks
from anjuka.notifications.models import WebhookDelivery
from anjuka.notifications.operations import (
    deliver_due,
    start_worker_thread,
    stop_worker_thread,
)

OVERRIDE = "Temporary shelter ordered by the street office"


class Receiver:
    """A local endpoint that answers 500 while ``down`` and records what it accepted."""

    def __init__(self) -> None:
        self.down = False
        self.accepted: list[tuple[dict, bytes]] = []
        self.refused = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    if receiver.down:
                        receiver.refused += 1
                        status = 500
                    else:
                        receiver.accepted.append((dict(self.headers), body))
                        status = 204
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/anjuka"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def alert_ids(self) -> list[int]:
        with self.lock:
            return [json.loads(body)["alert"]["id"] for _, body in self.accepted]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def crowded_city(create_area, create_dwelling, create_user, arrive):
    """Two dwellings in A that a stricter policy makes crowded, one in B."""
    create_area("A", min_area_per_person_m2=5, area_basis="usable", max_persons_per_room=2)
    create_area("A1", parent_code="A")
    create_area("B", min_area_per_person_m2=5, area_basis="usable", max_persons_per_room=2)
    supervisor = create_user("supervisor", ["area:A", "area:B"])
    for area in ("A", "A1", "B"):
        dwelling = create_dwelling(area, usable=20, rooms=4)
        for _ in range(4):
            assert arrive(supervisor["headers"], dwelling).status_code == 201
    return {"supervisor": supervisor, "admin": create_user("admin")}


def subscribe(client, admin, area_code: str, url: str, **extra: object) -> dict:
    response = client.post(
        "/api/v1/webhooks",
        json={"area_code": area_code, "url": url, **extra},
        headers=admin["headers"],
    )
    assert response.status_code == 201, response.json
    return response.json


def tighten(client, admin, code: str, m2: int) -> None:
    response = client.patch(
        f"/api/v1/areas/{code}",
        json={"policy": {"min_area_per_person_m2": m2}},
        headers=admin["headers"],
    )
    assert response.status_code == 200, response.json


def valid_signature(secret: str, headers: dict, body: bytes) -> bool:
    expected = hmac.new(
        secret.encode(), headers["X-Anjuka-Timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(headers["X-Anjuka-Signature"], f"v1={expected}")


def test_each_alert_arrives_once_signed_also_after_an_outage(
    client, crowded_city, receiver: Receiver
):
    admin = crowded_city["admin"]
    hook = subscribe(client, admin, "A", receiver.url)
    assert hook["secret"].startswith("whsec_")
    other = subscribe(client, admin, "B", receiver.url, kinds=["card_not_returned"])

    tighten(client, admin, "A", 10)  # crowds A's and A1's dwelling
    tighten(client, admin, "B", 10)  # crowds B's, which no subscription wants
    pending = db.session.scalars(sa.select(WebhookDelivery)).all()
    assert [d.subscription_id for d in pending] == [hook["id"], hook["id"]]
    assert receiver.accepted == []  # nothing is sent inside the request

    receiver.down = True
    report = deliver_due()
    assert (report.delivered, report.failed) == (0, 2)
    assert receiver.refused == 2
    listed = {h["id"]: h for h in client.get("/api/v1/webhooks", headers=admin["headers"]).json}
    assert listed[hook["id"]]["consecutive_failures"] == 2
    assert listed[hook["id"]]["last_error"] == "HTTP 500"
    assert listed[hook["id"]]["pending"] == 2
    assert listed[hook["id"]]["last_success_at"] is None
    assert "secret" not in listed[hook["id"]]
    assert listed[other["id"]]["consecutive_failures"] == 0

    assert deliver_due().attempted == 0  # backing off: nothing due yet
    later = utcnow() + timedelta(minutes=1)
    assert deliver_due(now=lambda: later).failed == 2  # still down
    assert receiver.refused == 4

    receiver.down = False
    much_later = utcnow() + timedelta(hours=1)
    assert deliver_due(now=lambda: much_later).delivered == 2
    assert deliver_due(now=lambda: much_later + timedelta(days=3)).attempted == 0

    alert_ids = receiver.alert_ids()
    assert len(alert_ids) == 2
    assert len(set(alert_ids)) == 2
    for headers, body in receiver.accepted:
        assert valid_signature(hook["secret"], headers, body)
        assert not valid_signature(hook["secret"] + "x", headers, body)
        payload = json.loads(body)
        assert payload["event"] == "alert.raised"
        assert payload["alert"]["kind"] == "over_occupancy"
        assert payload["alert"]["area_code"] in {"A", "A1"}
        assert headers["Idempotency-Key"] == payload["delivery"]
    health = client.get(f"/api/v1/webhooks/{hook['id']}", headers=admin["headers"]).json
    assert health["consecutive_failures"] == 0
    assert health["pending"] == 0
    assert health["last_success_at"] is not None


def test_a_tampered_body_fails_the_signature(client, crowded_city, receiver: Receiver):
    hook = subscribe(client, crowded_city["admin"], "A1", receiver.url)
    tighten(client, crowded_city["admin"], "A", 10)
    assert deliver_due().delivered == 1
    [(headers, body)] = receiver.accepted
    assert valid_signature(hook["secret"], headers, body)
    assert not valid_signature(hook["secret"], headers, body.replace(b"A1", b"A2"))


def test_only_admins_manage_webhooks(client, crowded_city, receiver: Receiver):
    supervisor = crowded_city["supervisor"]
    body = {"area_code": "A", "url": receiver.url}
    assert (
        client.post("/api/v1/webhooks", json=body, headers=supervisor["headers"]).status_code == 403
    )
    assert client.get("/api/v1/webhooks", headers=supervisor["headers"]).status_code == 403
    bad = client.post(
        "/api/v1/webhooks",
        json={"area_code": "A", "url": "ftp://example"},
        headers=crowded_city["admin"]["headers"],
    )
    assert bad.status_code == 422
    assert "url" in bad.json["errors"]
    unknown = client.post(
        "/api/v1/webhooks",
        json={"area_code": "NOPE", "url": receiver.url},
        headers=crowded_city["admin"]["headers"],
    )
    assert unknown.status_code == 404


def test_a_deactivated_subscription_gets_nothing_more(client, crowded_city, receiver: Receiver):
    admin = crowded_city["admin"]
    hook = subscribe(client, admin, "A", receiver.url)
    tighten(client, admin, "A", 10)
    deleted = client.delete(f"/api/v1/webhooks/{hook['id']}", headers=admin["headers"])
    assert deleted.status_code == 204
    assert deliver_due().attempted == 0
    assert receiver.accepted == []
    health = client.get(f"/api/v1/webhooks/{hook['id']}", headers=admin["headers"]).json
    assert (health["active"], health["pending"], health["abandoned"]) == (False, 0, 2)


def test_the_worker_thread_delivers_after_commit(
    app, client, create_area, create_dwelling, create_user, arrive, receiver: Receiver
):
    create_area("A")
    supervisor = create_user("supervisor", ["area:A"])
    hook = subscribe(client, create_user("admin"), "A", receiver.url)
    dwelling = create_dwelling("A", usable=10, rooms=1)
    for _ in range(2):
        arrive(supervisor["headers"], dwelling)
    db.session.commit()  # SQLite: release the test's write lock for the worker
    thread, stop = start_worker_thread(app, interval=30)
    try:
        response = arrive(supervisor["headers"], dwelling, override_reason=OVERRIDE)
        assert response.status_code == 201
        db.session.commit()
        deadline = time.monotonic() + 20
        while not receiver.accepted and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop_worker_thread(thread, stop)
    # Woken by the commit, not by the 30 s interval.
    [(headers, body)] = receiver.accepted
    assert valid_signature(hook["secret"], headers, body)
    assert json.loads(body)["alert"]["kind"] == "over_occupancy"


def test_the_deliver_command_sends_what_is_due(app, client, crowded_city, receiver: Receiver):
    subscribe(client, crowded_city["admin"], "A", receiver.url)
    tighten(client, crowded_city["admin"], "A", 10)
    db.session.commit()
    result = app.test_cli_runner().invoke(webhooks, ["deliver", "--once"])
    assert result.exit_code == 0, result.output
    assert "2 delivered" in result.output
    assert len(receiver.accepted) == 2


@pytest.mark.postgres
def test_under_gunicorn_each_worker_delivers_what_its_commits_queue(
    tmp_path, keys_file, receiver: Receiver
):
    """The shipped config preloads the app: the thread must run in the workers, not the master.

    With an hour between idle passes, only a thread in the worker whose
    commit queued the delivery (woken by that commit) sends it promptly.
    """
    import requests
    from served import gunicorn
    from throwaway_db import throwaway_database

    from anjuka import create_app
    from anjuka.areas.operations import create_area
    from anjuka.auth.operations import create_user
    from anjuka.config import Config
    from anjuka.core.time import local_today
    from anjuka.dwellings.operations import create_dwelling

    instance = tmp_path / "instance"
    with throwaway_database("postgresql", tmp_path, "anjuka_served") as url:
        setup = create_app(Config(instance_path=instance, database_url=url, keys_file=keys_file))
        with setup.app_context():
            db.create_all()
            area = create_area("W", "W", None, {"registration_deadline_days": 3})
            dwelling = create_dwelling(
                area, None, {"address": "1 Hook Road", "rooms": 4, "usable_area_m2": 80}
            )
            create_user("hookadmin", "admin", "long enough password")
            db.session.commit()
            dwelling_id = dwelling.id
            db.session.remove()
            db.engine.dispose()
        env = {
            "ANJUKA_DATABASE_URL": url,
            "ANJUKA_INSTANCE_PATH": str(instance),
            "ANJUKA_KEYS_FILE": str(keys_file),
            "ANJUKA_WEBHOOK_WORKER": "thread",
            "ANJUKA_WEBHOOK_INTERVAL": "3600",
        }
        with gunicorn(env, tmp_path / "gunicorn.log", workers=2) as base:
            token = requests.post(
                f"{base}/api/v1/auth/tokens",
                json={"username": "hookadmin", "password": "long enough password"},
                timeout=10,
            ).json()["token"]
            headers = {"Authorization": f"Bearer {token}"}
            hook = requests.post(
                f"{base}/api/v1/webhooks",
                json={"area_code": "W", "url": receiver.url},
                headers=headers,
                timeout=10,
            )
            assert hook.status_code == 201, hook.text
            arrivals = []
            for n in range(3):  # late registrations: each raises an alert at once
                arrived = requests.post(
                    f"{base}/api/v1/residences",
                    json={
                        "dwelling_id": dwelling_id,
                        "arrived_on": (local_today() - timedelta(days=30)).isoformat(),
                        "person": {
                            "document_type": "passport",
                            "document_number": f"W0000000{n}",
                            "name": "Wu",
                        },
                    },
                    headers=headers,
                    timeout=10,
                )
                assert arrived.status_code == 201, arrived.text
                arrivals.append(arrived.json()["id"])
            deadline = time.monotonic() + 30
            while len(receiver.alert_ids()) < 3 and time.monotonic() < deadline:
                time.sleep(0.2)
            kinds = [json.loads(body)["alert"]["kind"] for _, body in receiver.accepted]
            assert kinds == ["late_registration"] * 3
            subjects = sorted(
                int(json.loads(b)["alert"]["subject_id"]) for _, b in receiver.accepted
            )
            assert subjects == sorted(arrivals)
