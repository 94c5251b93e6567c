"""Operations as shipped: gunicorn with ``gunicorn.conf.py``, two workers, its output as logs.

The request counter is read across workers (each scrape is answered by
one of them), and a resident's whole lifecycle is run over HTTP while the
logs are kept, then scanned for the resident's document number, name and
phone, and the landlord's.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from registry_helpers import command_env, today
from served import REPO, gunicorn, migrate_with_admin
from test_operations import sample

from anjuka.persons.identity import resident_id_check_char

GUNICORN_CONF = REPO / "gunicorn.conf.py"
PASSWORD = "served operations password"
CLIENT = "203.0.113.44"


@dataclass
class Served:
    url: str
    log: Path

    def entries(self) -> list[dict]:
        """Every line gunicorn and the app wrote, each parsed as JSON (all must be)."""
        lines = [line for line in self.log.read_text().splitlines() if line.strip()]
        return [json.loads(line) for line in lines]

    def admin_headers(self) -> dict:
        token = requests.post(
            f"{self.url}/api/v1/auth/tokens",
            json={"username": "admin", "password": PASSWORD},
            timeout=30,
        )
        assert token.status_code == 201, token.text
        return {"Authorization": f"Bearer {token.json()['token']}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("served-ops")
    env = command_env(f"sqlite:///{home / 'served.sqlite3'}", home / "instance")
    migrate_with_admin(env, PASSWORD)
    served_env = {k: v for k, v in env.items() if k.startswith("ANJUKA_")}
    served_env["ANJUKA_TRUSTED_PROXIES"] = "1"  # we play the TLS proxy on 127.0.0.1
    log = home / "gunicorn.log"
    with gunicorn(served_env, log, workers=2) as url:
        yield Served(url, log)


def _scrape(served: Served, **headers: str) -> requests.Response:
    return requests.get(f"{served.url}/metrics", headers=headers, timeout=30)


def test_ready_and_healthy_under_gunicorn(served):
    assert requests.get(f"{served.url}/healthz", timeout=30).json() == {"status": "ok"}
    ready = requests.get(f"{served.url}/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


def test_the_request_counter_rises_across_requests_and_workers(served):
    labels = {"method": "GET", "endpoint": "ops.healthz", "status": "200"}
    first = _scrape(served)
    assert first.status_code == 200, first.text
    assert first.headers["Content-Type"].startswith("text/plain")
    start = sample(first.text, "anjuka_http_requests_total", **labels) or 0

    def healthz(_: int) -> str:
        response = requests.get(f"{served.url}/healthz", timeout=30)
        assert response.status_code == 200
        return response.headers["X-Request-Id"]

    # Until both workers have answered some (the logs say which process did).
    sent: list[str] = []
    with ThreadPoolExecutor(4) as pool:
        while True:
            sent += pool.map(healthz, range(8))
            time.sleep(0.2)
            ours = set(sent)
            processes = {e["process"] for e in served.entries() if e.get("request_id") in ours}
            if len(processes) >= 2 or len(sent) >= 400:
                break
    assert len(processes) >= 2, "one worker answered every request"
    middle = _scrape(served).text
    assert sample(middle, "anjuka_http_requests_total", **labels) == start + len(sent)
    for _ in range(5):
        healthz(0)
    last = _scrape(served).text
    assert sample(last, "anjuka_http_requests_total", **labels) == start + len(sent) + 5
    count = sample(
        last, "anjuka_http_request_duration_seconds_count", method="GET", endpoint="ops.healthz"
    )
    assert count == start + len(sent) + 5
    assert sample(last, "anjuka_database_up") == 1


def test_metrics_answer_only_the_allowed_addresses(served):
    assert _scrape(served).status_code == 200  # loopback, the default
    outside = _scrape(served, **{"X-Forwarded-For": CLIENT})
    assert outside.status_code == 404
    assert outside.headers["Content-Type"] == "application/json"
    assert outside.json()["error"] == "not_found"


def test_long_request_lines_get_the_error_shape_up_to_the_documented_limit(served):
    """gunicorn's default (4094) would answer a 5000-byte line in HTML; the config raises it."""
    long = requests.get(f"{served.url}/api/v1/dwellings?note={'x' * 5000}", timeout=30)
    assert long.status_code == 401
    assert long.headers["Content-Type"] == "application/json"
    assert long.json()["error"] == "unauthorized"
    # Beyond gunicorn's largest limit: its own answer, the documented exception.
    too_long = requests.get(f"{served.url}/api/v1/dwellings?note={'x' * 8200}", timeout=30)
    assert too_long.status_code == 414
    assert too_long.headers["Content-Type"].startswith("text/html")
    # ... documented in the API's own document, with the limit the shipped config sets.
    limit = re.search(r"^limit_request_line = (\d+)$", GUNICORN_CONF.read_text(), re.MULTILINE)
    assert limit is not None
    document = requests.get(f"{served.url}/api/v1/openapi.json", timeout=30).json()
    described = " ".join(document["info"]["description"].split())
    assert f"longer than {limit.group(1)} bytes is refused by gunicorn" in described
    assert "`414` as `text/html`" in described


def _number(serial: int) -> str:
    first17 = f"44030419850612{serial:03d}"
    return first17 + resident_id_check_char(first17)


def test_a_whole_lifecycle_leaves_no_personal_data_in_the_logs(served):
    base = f"{served.url}/api/v1"
    headers = served.admin_headers()
    number, other_number = _number(417), _number(853)
    bad_number = number[:-1] + ("0" if number[-1] != "0" else "1")
    secrets = {
        "document number": number,
        "second document number": other_number,
        "refused document number": bad_number,
        "name": "欧阳娜娜",
        "second name": "司马相如",
        "phone": "13912340077",
        "landlord": "诸葛房东",
        "landlord phone": "13588886666",
    }

    def call(
        method: str, path: str, request_id: str, key: str | None = None, **kwargs
    ) -> requests.Response:
        extra = {"X-Request-Id": request_id}
        if key is not None:
            extra["Idempotency-Key"] = key
        return requests.request(
            method, f"{base}{path}", headers={**headers, **extra}, timeout=30, **kwargs
        )

    assert call("POST", "/areas", "life-area-01", json={"code": "LG", "name": "Log"}).ok
    dwelling = call(
        "POST",
        "/dwellings",
        "life-dwelling-01",
        json={
            "area_code": "LG",
            "address": "1 Log Road",
            "usable_area_m2": 40,
            "rooms": 2,
            "landlord_name": secrets["landlord"],
            "landlord_phone": secrets["landlord phone"],
        },
    )
    assert dwelling.status_code == 201, dwelling.text
    person = {
        "document_type": "resident_id",
        "document_number": number,
        "name": secrets["name"],
        "phone": secrets["phone"],
    }
    arrival_body = {
        "dwelling_id": dwelling.json()["id"],
        "arrived_on": today().isoformat(),
        "person": person,
    }
    arrival = call(
        "POST", "/residences", "life-arrival-01", json=arrival_body, key="life-arrival-key-1"
    )
    assert arrival.status_code == 201, arrival.text
    residence_id = arrival.json()["id"]
    refused = call(
        "POST",
        "/residences",
        "life-refused-01",
        json={**arrival_body, "person": {**person, "document_number": bad_number}},
    )
    assert refused.status_code == 422, refused.text
    second = call(
        "POST",
        "/residences",
        "life-arrival-02",
        json={
            **arrival_body,
            "person": {
                "document_type": "resident_id",
                "document_number": other_number,
                "name": secrets["second name"],
            },
        },
    )
    assert second.status_code == 201, second.text

    revealed = call("GET", f"/residences/{residence_id}?reveal=true", "life-reveal-01")
    assert revealed.status_code == 200, revealed.text
    assert number in revealed.text  # the reveal did show it; the logs must not
    found = call("POST", "/persons/lookup", "life-lookup-01", json={"document_number": number})
    assert found.status_code == 200, found.text
    reader = call(
        "POST", "/readers", "life-reader-01", json={"name": "Log desk", "area_code": "LG"}
    )
    assert reader.status_code == 201, reader.text
    card = call(
        "POST",
        "/cards",
        "life-card-01",
        json={"residence_id": residence_id, "reader_id": reader.json()["id"]},
    )
    assert card.status_code == 202, card.text
    assert call("GET", f"/cards/{card.json()['card_no']}", "life-card-02").status_code == 200
    departure = call(
        "POST",
        f"/residences/{residence_id}/departure",
        "life-departure-01",
        json={"departed_on": today().isoformat()},
    )
    assert departure.status_code == 200, departure.text
    time.sleep(0.5)  # let the last lines reach the file

    entries = served.entries()
    text = served.log.read_text()
    for what, value in secrets.items():
        assert value not in text, f"the {what} is in the logs"
        for entry in entries:
            assert value not in json.dumps(entry, ensure_ascii=False), (what, entry)
    by_id = {e["request_id"]: e for e in entries if e.get("logger") == "anjuka.requests"}
    arrived = by_id["life-arrival-01"]
    assert (arrived["method"], arrived["endpoint"], arrived["status"]) == (
        "POST",
        "residences.register_arrival",
        201,
    )
    assert isinstance(arrived["duration_ms"], float)
    assert by_id["life-refused-01"]["status"] == 422
    assert by_id["life-reveal-01"]["endpoint"] == "residences.get_residence"
    assert by_id["life-departure-01"]["status"] == 200
    assert by_id["life-card-01"]["status"] == 202
