"""Throttles and client addresses as shipped: real gunicorn with ``gunicorn.conf.py``.

The shipped config preloads the app in the master and forks workers, so the
limiter's in-memory counts are each worker's own, and the app sits behind a
TLS proxy that says who the client is in ``X-Forwarded-For``. This serves the
app exactly so (two workers, one trusted proxy) and attacks it over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from registry_helpers import command_env
from served import gunicorn, migrate_with_admin

PASSWORD = "served correct horse"
WORKERS = 2
ATTACKER = "198.51.100.7"
OWNER = "203.0.113.9"


@dataclass
class Served:
    url: str
    log: Path

    def sign_in(self, password: str, client: str, request_id: str = "served-0001"):
        # We play the proxy on 127.0.0.1: it appends the client's address.
        return requests.post(
            f"{self.url}/api/v1/auth/tokens",
            json={"username": "admin", "password": password},
            headers={"X-Forwarded-For": client, "X-Request-Id": request_id},
            timeout=30,
        )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    instance = tmp_path / "instance"
    env = command_env(f"sqlite:///{tmp_path / 'served.sqlite3'}", instance)
    migrate_with_admin(env, PASSWORD)
    env["ANJUKA_TRUSTED_PROXIES"] = "1"
    log = tmp_path / "gunicorn.log"
    with gunicorn(env, log, workers=WORKERS) as url:
        yield Served(url, log)


def test_under_gunicorn_the_attacker_is_throttled_and_the_owner_is_not(served: Served):
    # In-memory counts are per worker: at most WORKERS x 5 failures get through
    # from one address, never more, and then every worker refuses it.
    failures = refusals = 0
    for n in range(10 * WORKERS * 5):
        status = served.sign_in(f"guess {n}", ATTACKER).status_code
        assert status in (401, 429), status
        failures += status == 401
        refusals += status == 429
        if failures == WORKERS * 5:
            break
    assert failures == WORKERS * 5, (failures, refusals)
    for _ in range(2 * WORKERS):
        refused = served.sign_in(PASSWORD, ATTACKER)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "sign_in_throttled"
        assert int(refused.headers["Retry-After"]) > 0
    # A client naming another address in front of its own is still the attacker.
    assert served.sign_in(PASSWORD, f"{OWNER}, {ATTACKER}").status_code == 429

    owner = served.sign_in(PASSWORD, OWNER, request_id="bad id!")
    assert owner.status_code == 201, owner.text
    assert owner.headers["X-Request-Id"] != "bad id!"
    headers = {"Authorization": f"Bearer {owner.json()['token']}"}
    trail = requests.get(
        f"{served.url}/api/v1/audit?page_size=100", headers=headers, timeout=30
    ).json()
    failed = [e for e in trail if e["action"] == "auth.login_failed"]
    assert len(failed) == WORKERS * 5
    assert {(e["origin"], e["request_id"]) for e in failed} == {(ATTACKER, "served-0001")}
    locked = [e for e in trail if e["action"] == "auth.login_locked"]
    assert 1 <= len(locked) <= WORKERS  # one per lock period (per worker counting)
    (login,) = [e for e in trail if e["action"] == "auth.login"]
    assert login["origin"] == OWNER
    assert login["request_id"] == owner.headers["X-Request-Id"]
    tokens = requests.get(f"{served.url}/api/v1/auth/tokens", headers=headers, timeout=30).json()
    assert [t["origin"] for t in tokens] == [OWNER]
