"""The rows of ``benchmarks/run`` served by gunicorn: verification and arrivals.

Each side of a ratio is served by gunicorn with the same settings, the
shipped ``gunicorn.conf.py`` (workers ``2 × cores + 1``, 4 threads each,
preloaded), on the benchmark's database, and loaded by the same clients:

* verification: ``POST /api/v1/verifications`` by card number (an officer
  on patrol: the card, its residence and person, the rules, an inspection
  recorded), against ``POST /verify`` of ``benchmarks/bare.py``: the one
  indexed query (card by number, with its residence, person and dwelling);
* arrivals: ``POST /api/v1/residences`` of a new person into a dwelling
  with room, from 16 clients at once, against ``POST /arrive``: one row
  inserted and committed. After the run, one SQL statement counts the
  dwellings that took an arrival in the run and now hold more counted
  residents than their capacity (the desk's rule: policy inherited down the
  area tree, minors per policy, the family exception): it must be 0.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import psycopg
import requests
from flask import Flask

from benchmarks.served import BARE, SHIPPED, gunicorn, load

PASSWORD = "correct horse battery"  # noqa: S105 (a throw-away database)
CLIENTS = 16

#: The city's policy per area, inherited down the tree (defaults where none is set).
POLICY_CTE = """
WITH RECURSIVE policy AS (
    SELECT id, min_area_per_person_m2 AS m, area_basis AS b, max_persons_per_room AS r,
           minors_count AS mc
    FROM areas WHERE parent_id IS NULL
    UNION ALL
    SELECT a.id, COALESCE(a.min_area_per_person_m2, p.m), COALESCE(a.area_basis, p.b),
           COALESCE(a.max_persons_per_room, p.r), COALESCE(a.minors_count, p.mc)
    FROM areas a JOIN policy p ON a.parent_id = p.id
), capacity AS (
    SELECT d.id, d.status,
           CAST(COALESCE(floor(CASE WHEN COALESCE(p.b, 'usable') = 'building'
               THEN COALESCE(d.building_area_m2, d.usable_area_m2)
               ELSE COALESCE(d.usable_area_m2, d.building_area_m2) END
               / COALESCE(p.m, 5)), 0) AS integer) AS area_limit,
           d.rooms * COALESCE(p.r, 2) AS room_limit,
           COALESCE(p.mc, true) AS minors_count
    FROM dwellings d JOIN policy p ON p.id = d.area_id
)
"""

#: Dwellings with room now, and how much: the arrivals' destinations.
ROOM_SQL = (
    POLICY_CTE  # noqa: S608 (constants only)
    + """
SELECT c.id, LEAST(c.area_limit, c.room_limit) - COALESCE(o.n, 0)
FROM capacity c
LEFT JOIN (SELECT dwelling_id, count(*) AS n FROM residences
           WHERE departed_on IS NULL GROUP BY dwelling_id) o ON o.dwelling_id = c.id
WHERE c.status = 'rentable' AND LEAST(c.area_limit, c.room_limit) > COALESCE(o.n, 0)
  AND c.id IN (SELECT d.id FROM dwellings d JOIN areas a ON a.id = d.area_id
               WHERE a.path LIKE %(subtree)s)
ORDER BY c.id
"""
)

#: Dwellings that took an arrival after residence ``%(after)s`` and are now over
#: capacity by the desk's rule (``is_over_capacity``).
VIOLATIONS_SQL = (
    POLICY_CTE  # noqa: S608 (constants only)
    + """
, occupied AS (
    SELECT dwelling_id, count(*) AS n,
           count(*) FILTER (WHERE minor) AS minors,
           count(*) FILTER (WHERE family_relation IS NOT NULL) AS family,
           count(*) FILTER (WHERE minor AND family_relation IS NOT NULL) AS minor_family
    FROM residences WHERE departed_on IS NULL GROUP BY dwelling_id
), counted AS (
    SELECT c.*, o.n,
           o.n - CASE WHEN c.minors_count THEN 0 ELSE o.minors END AS area_counted,
           o.n - CASE WHEN c.minors_count THEN 0 ELSE o.minors END
               - (o.family - CASE WHEN c.minors_count THEN 0 ELSE o.minor_family END)
               AS room_counted
    FROM capacity c JOIN occupied o ON o.dwelling_id = c.id
    WHERE c.id IN (SELECT dwelling_id FROM residences WHERE id > %(after)s)
)
SELECT count(*) FROM counted
WHERE CASE WHEN status <> 'rentable' THEN n > 0
           ELSE area_counted > area_limit OR room_counted > room_limit END
"""
)

VERIFY_BODY_KEY = "card_no"


def _id_number(n: int) -> str:
    """A valid resident ID number no imported person holds (Beijing's Dongcheng, 110101)."""
    from anjuka.persons.identity import resident_id_check_char

    birth = date(1970, 1, 1) + timedelta(days=n // 1000)
    first17 = f"110101{birth:%Y%m%d}{n % 1000:03d}"
    return first17 + resident_id_check_char(first17)


def _users(app: Flask) -> tuple[str, str]:
    """A supervisor and an officer over the whole city; their names' suffix, the city's path."""
    import sqlalchemy as sa

    from anjuka.areas.models import Area
    from anjuka.auth.operations import create_user
    from anjuka.core.db import db

    with app.app_context():
        root = db.session.scalar(
            sa.select(Area).where(Area.parent_id.is_(None)).order_by(Area.id).limit(1)
        )
        suffix = uuid.uuid4().hex[:6]
        create_user(f"bench-desk-{suffix}", "supervisor", PASSWORD, [f"area:{root.code}"])
        create_user(f"bench-patrol-{suffix}", "officer", PASSWORD, [f"area:{root.code}"])
        db.session.commit()
        path = root.path
        db.session.remove()
    return suffix, path


def _token(base: str, username: str) -> dict[str, str]:
    response = requests.post(
        f"{base}/api/v1/auth/tokens", json={"username": username, "password": PASSWORD}, timeout=60
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _cards(url: str, count: int) -> list[str]:
    """Active cards for ``count`` current residents (written in SQL: no chip needed by number)."""
    from anjuka.core.time import local_today
    from cardreader.cardno import make_card_no

    today = local_today()
    with psycopg.connect(url) as conn:
        base = conn.execute("SELECT COALESCE(max(id), 0) FROM cards").fetchone()[0]
        residents = conn.execute(
            "SELECT r.id, r.person_id FROM residences r WHERE r.departed_on IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM cards c WHERE c.person_id = r.person_id"
            " AND c.status IN ('active', 'pending')) ORDER BY r.id LIMIT %s",
            (count,),
        ).fetchall()
        numbers = []
        with conn.cursor() as cur:
            rows = []
            for i, (residence_id, person_id) in enumerate(residents):
                card_no = make_card_no(90_000_000 + base + i)
                numbers.append(card_no)
                rows.append(
                    (card_no, residence_id, person_id, f"{0xB0000000 + base + i:08x}", today)
                )
            cur.executemany(
                "INSERT INTO cards (card_no, residence_id, person_id, status, card_type, uid,"
                " record, issued_at, activated_at, expires_on)"
                " VALUES (%s, %s, %s, 'active', 'cpu', %s, '\\x00'::bytea, now(), now(),"
                " %s + 300)",
                rows,
            )
        conn.commit()
    return numbers


def _arrival(places: list[int], serial: int, today: str, name: str) -> Callable[[int], dict]:
    """The body of request ``n``: a new person (ID number ``serial + n``) into ``places[n]``."""

    def body(n: int) -> dict:
        return {
            "dwelling_id": places[n],
            "arrived_on": today,
            "person": {
                "document_type": "resident_id",
                "document_number": _id_number(serial + n),
                "name": name,
            },
        }

    return body


def _registered_since(url: str, after: int) -> dict[str, int]:
    """Residences registered after residence ``after``, and the dwellings they overfilled."""
    with psycopg.connect(url) as conn:
        return {
            "registered": conn.execute(
                "SELECT count(*) FROM residences WHERE id > %s", (after,)
            ).fetchone()[0],
            "violations": conn.execute(VIOLATIONS_SQL, {"after": after}).fetchone()[0],
        }


def _environment(url: str, workdir: Path) -> dict[str, str]:
    instance = workdir / f"instance-served-{uuid.uuid4().hex[:6]}"
    instance.mkdir(parents=True)
    return {
        "ANJUKA_DATABASE_URL": url,
        "ANJUKA_KEYS_FILE": str(workdir / "keys.json"),
        "ANJUKA_INSTANCE_PATH": str(instance),
    }


def verification(app: Flask, url: str, workdir: Path, requests_total: int) -> dict:
    """Verification by card number under gunicorn, against the bare indexed query."""
    suffix, _ = _users(app)
    numbers = _cards(url, min(2000, max(requests_total, 100)))
    rng = random.Random(7)
    picks = [rng.choice(numbers) for _ in range(requests_total + CLIENTS * 4)]
    env = _environment(url, workdir)
    found: dict = {"cards": len(numbers)}
    with gunicorn("anjuka:create_app()", str(SHIPPED), env, workdir / "app.log", "/api/") as base:
        headers = _token(base, f"bench-patrol-{suffix}")
        found["app"] = load(
            f"{base}/api/v1/verifications",
            lambda n: {VERIFY_BODY_KEY: picks[n % len(picks)]},
            headers=headers,
            clients=CLIENTS,
            requests_total=requests_total,
            warmup=2,
        )
        sample = requests.post(
            f"{base}/api/v1/verifications",
            json={"card_no": numbers[0]},
            headers=headers,
            timeout=60,
        )
        found["app_result"] = sample.json().get("result")
    with gunicorn("benchmarks.bare:app", BARE, env, workdir / "bare.log", "/ready") as base:
        found["reference"] = load(
            f"{base}/verify",
            lambda n: {VERIFY_BODY_KEY: picks[n % len(picks)]},
            clients=CLIENTS,
            requests_total=requests_total,
            warmup=2,
        )
        found["reference_result"] = requests.post(
            f"{base}/verify", json={"card_no": numbers[0]}, timeout=60
        ).json()["result"]
    return found


def arrivals(app: Flask, url: str, workdir: Path, requests_total: int) -> dict:
    """Arrivals from 16 clients under gunicorn, against a bare one-row insert; violations."""
    from anjuka.core.time import local_today

    suffix, city = _users(app)
    with psycopg.connect(url) as conn:
        room = conn.execute(ROOM_SQL, {"subtree": f"{city}%"}).fetchall()
        after = conn.execute("SELECT COALESCE(max(id), 0) FROM residences").fetchone()[0]
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_arrivals (id bigserial PRIMARY KEY,"
            " dwelling_id integer NOT NULL, document text NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.commit()
    # Each free place once, shuffled: the clients fill the city's dwellings with room.
    places = [dwelling for dwelling, free in room for _ in range(free)]
    random.Random(3).shuffle(places)
    total = requests_total + CLIENTS * 2  # the warm-up's arrivals too
    places = (places * (total // max(len(places), 1) + 1))[:total]
    today = local_today().isoformat()
    serial = random.Random(5).randrange(10_000) * 1000  # born 1970 to 2000

    body = _arrival(places, serial, today, "张三")
    env = _environment(url, workdir)
    found: dict = {"dwellings_with_room": len(room), "places": sum(f for _, f in room)}
    with gunicorn("anjuka:create_app()", str(SHIPPED), env, workdir / "app.log", "/api/") as base:
        found["app"] = load(
            f"{base}/api/v1/residences",
            body,
            headers=_token(base, f"bench-desk-{suffix}"),
            clients=CLIENTS,
            requests_total=requests_total,
            warmup=2,
        )
    with gunicorn("benchmarks.bare:app", BARE, env, workdir / "bare.log", "/ready") as base:
        found["reference"] = load(
            f"{base}/arrive",
            lambda n: {"dwelling_id": places[n], "document": _id_number(serial + n)},
            clients=CLIENTS,
            requests_total=requests_total,
            warmup=2,
        )
    return {**found, **_registered_since(url, after)}


def audit_chain(app: Flask, url: str, workdir: Path, requests_total: int) -> dict:
    """Arrivals from 16 desks spread over 16 areas, against 16 desks in one area.

    Each area's events form one audit chain whose head row every arrival
    locks until it commits (anjuka.audit.operations), as it updates the
    area's figures: desks in one area take turns there, desks in different
    areas do not. ``spread``: the requests go round the 16 areas with the
    most room after the biggest, so the 16 requests in flight are in 16
    chains; ``one``: every request goes to a dwelling of the area with the
    most room. Same server, same desk, same number of requests (as many as
    the smaller side has room for).
    """
    from anjuka.core.time import local_today

    suffix, city = _users(app)
    with psycopg.connect(url) as conn:
        room = conn.execute(ROOM_SQL, {"subtree": f"{city}%"}).fetchall()
        area_of = dict(
            conn.execute(
                "SELECT id, area_id FROM dwellings WHERE id = ANY(%s)", ([d for d, _ in room],)
            ).fetchall()
        )
        after = conn.execute("SELECT COALESCE(max(id), 0) FROM residences").fetchone()[0]
    by_area: dict[int, list[int]] = {}
    for dwelling, free in room:
        by_area.setdefault(area_of[dwelling], []).extend([dwelling] * free)
    ranked = sorted(by_area.values(), key=len, reverse=True) + [[], []]
    one, spread = ranked[0], [places for places in ranked[1 : 1 + CLIENTS] if places]
    warm = CLIENTS  # the warm-up (one arrival per client) takes places too
    # Round the areas: at city scale every area has room for its share; in a
    # tiny city the last requests go to the areas that still have some.
    rounds = [
        places[i]
        for i in range(len(max(spread, key=len, default=[])))
        for places in spread
        if i < len(places)
    ]
    per_request = min(requests_total, len(one) - warm, len(rounds) - warm)
    found: dict = {"areas": {"one": 1, "spread": len(spread)}, "requests": per_request}
    if per_request <= 0:
        found["skipped"] = "not enough room in one area for the requests at this scale"
        return found
    total = per_request + warm
    sides = {
        "one": one[:total],
        "spread": rounds[:total],
    }
    today = local_today().isoformat()
    base_serial = random.Random(5).randrange(10_000) * 1000  # the arrivals row's persons
    serials = {
        "spread": (base_serial + 2_000_000) % 10_000_000,
        "one": (base_serial + 4_000_000) % 10_000_000,
    }
    env = _environment(url, workdir)
    with gunicorn("anjuka:create_app()", str(SHIPPED), env, workdir / "chain.log", "/api/") as base:
        headers = _token(base, f"bench-desk-{suffix}")
        for side in ("spread", "one"):
            places, serial = sides[side], serials[side]
            found[side] = load(
                f"{base}/api/v1/residences",
                _arrival(places, serial, today, "李四"),
                headers=headers,
                clients=CLIENTS,
                requests_total=per_request,
                warmup=1,
            )
    return {**found, **_registered_since(url, after)}
