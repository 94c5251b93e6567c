"""/healthz, /readyz and /metrics in process: ready at the migrations' head, metrics private."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path

import flask_migrate
import pytest
from registry_helpers import assert_error_shape, today

from anjuka import create_app
from anjuka.config import Config
from anjuka.core.db import db


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)$"
    for line in text.splitlines():
        found = re.fullmatch(pattern, line)
        if found:
            return float(found.group(1))
    return None


def test_healthz_answers_anyone(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})


def test_readyz_follows_the_migrations(fresh_database: str, tmp_path: Path):
    app = create_app(
        Config(instance_path=tmp_path / "instance", database_url=fresh_database, testing=True)
    )
    client = app.test_client()
    try:
        with app.app_context():
            empty = client.get("/readyz")
            body = assert_error_shape(empty, 503, "not_ready")
            assert body["migrations"]["database"] == []
            flask_migrate.upgrade()
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.json
            head = ready.json["migrations"]
            assert ready.json["status"] == "ready"
            # One revision behind, as a host whose database was not yet upgraded.
            flask_migrate.downgrade(revision="-1")
            behind = assert_error_shape(client.get("/readyz"), 503, "not_ready")
            assert behind["migrations"]["code"] == head
            assert behind["migrations"]["database"] != head
            assert len(behind["migrations"]["database"]) == 1
            flask_migrate.upgrade()
            assert client.get("/readyz").status_code == 200
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_readyz_is_503_when_the_database_is_gone(tmp_path: Path):
    app = create_app(
        Config(
            instance_path=tmp_path / "instance",
            database_url="postgresql://postgres@127.0.0.1:9/nowhere",
            testing=True,
        )
    )
    response = app.test_client().get("/readyz")
    body = assert_error_shape(response, 503, "not_ready")
    assert body["database"] == "unreachable"
    assert "9/nowhere" not in response.get_data(as_text=True)


def test_metrics_count_requests_by_endpoint_and_status(client):
    before = client.get("/metrics")
    assert before.status_code == 200
    assert before.mimetype == "text/plain"
    labels = {"method": "GET", "endpoint": "ops.healthz", "status": "200"}
    start = sample(before.get_data(as_text=True), "anjuka_http_requests_total", **labels) or 0
    for _ in range(3):
        client.get("/healthz")
    client.get("/api/v1/dwellings")  # 401: counted under its own status
    after = client.get("/metrics").get_data(as_text=True)
    assert sample(after, "anjuka_http_requests_total", **labels) == start + 3
    assert (
        sample(
            after,
            "anjuka_http_requests_total",
            method="GET",
            endpoint="dwellings.list_dwellings",
            status="401",
        )
        or 0
    ) >= 1
    assert (
        sample(
            after,
            "anjuka_http_request_duration_seconds_count",
            method="GET",
            endpoint="ops.healthz",
        )
        or 0
    ) >= 3
    assert sample(after, "anjuka_database_up") == 1


def test_metrics_are_hidden_from_other_addresses(app, client):
    outside = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert_error_shape(outside, 404, "not_found")
    # No proxy is trusted here: a client's X-Forwarded-For changes nothing.
    spoofed = client.get(
        "/metrics",
        environ_base={"REMOTE_ADDR": "203.0.113.5"},
        headers={"X-Forwarded-For": "127.0.0.1"},
    )
    assert spoofed.status_code == 404
    config = app.extensions["anjuka_config"]
    app.extensions["anjuka_config"] = dataclasses.replace(
        config, metrics_allow=("10.0.0.0/8", "2001:db8::1")
    )
    try:
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.2.3.4"}).status_code == 200
        assert (
            client.get("/metrics", environ_base={"REMOTE_ADDR": "2001:db8::1"}).status_code == 200
        )
        assert client.get("/metrics").status_code == 404  # loopback is no longer listed
    finally:
        app.extensions["anjuka_config"] = config


def test_metrics_allow_is_read_from_the_environment_and_checked(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("ANJUKA_METRICS_ALLOW", "10.0.0.0/8, 192.0.2.7")
    assert Config.from_env().metrics_allow == ("10.0.0.0/8", "192.0.2.7")
    with pytest.raises(ValueError, match="ANJUKA_METRICS_ALLOW"):
        create_app(Config(instance_path=tmp_path, metrics_allow=("not-an-address",), testing=True))


def test_metrics_read_the_registry_state(app, client, world, card_desk):
    from anjuka.alerts.commands import sweep

    desk = card_desk(world.headers("admin"), "RA")
    queued = client.post(
        "/api/v1/cards",
        json={"residence_id": world.ra["id"], "reader_id": desk.reader_id},
        headers=world.headers("admin"),
    )
    assert queued.status_code == 202, queued.json
    late = client.post(
        "/api/v1/residences",
        json={
            "dwelling_id": world.da,
            "arrived_on": (today() - timedelta(days=30)).isoformat(),
            "person": {
                "document_type": "resident_id",
                "document_number": world.new_number(),
                "name": "周九",
            },
        },
        headers=world.headers("manager"),
    )
    assert late.status_code == 201, late.json
    text = client.get("/metrics").get_data(as_text=True)
    assert sample(text, "anjuka_card_jobs", status="queued") == 1
    assert sample(text, "anjuka_card_jobs", status="claimed") == 0
    assert sample(text, "anjuka_alerts_open", kind="late_registration") == 1
    assert sample(text, "anjuka_alerts_open", kind="over_occupancy") == 0
    assert sample(text, "anjuka_webhook_deliveries_pending") == 0
    assert sample(text, "anjuka_sweep_age_seconds") is None  # never ran
    assert app.test_cli_runner().invoke(sweep, []).exit_code == 0
    db.session.remove()
    text = client.get("/metrics").get_data(as_text=True)
    age = sample(text, "anjuka_sweep_age_seconds")
    assert age is not None
    assert 0 <= age < 60
    assert sample(text, "anjuka_db_pool_connections_in_use") is not None
