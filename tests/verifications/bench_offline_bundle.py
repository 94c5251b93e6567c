"""Size of the offline bundle at city scale (docs/benchmarks.md, "Offline bundle").

Not a test (pytest does not collect it): run it by hand,

    .venv/bin/python tests/verifications/bench_offline_bundle.py [REVOKED] [CARDS]

It builds a throw-away SQLite registry holding REVOKED revoked cards (default
350 000: 10% of 3.5 million cards in a year) with serials spread at random over
CARDS card numbers, asks the real bundle builder for a full bundle and a one-day
delta, and prints their sizes as JSON and gzip-compressed (the endpoint sends
gzip when the client accepts it).
"""

from __future__ import annotations

import gzip
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from anjuka import create_app
from anjuka.config import Config
from anjuka.core.db import db
from anjuka.core.time import local_today
from cardreader.cardno import make_card_no

_BATCH = 20_000


def _insert(table: str, rows: list[dict]) -> None:
    metadata_table = db.metadata.tables[table]
    for start in range(0, len(rows), _BATCH):
        db.session.execute(sa.insert(metadata_table), rows[start : start + _BATCH])


def populate(revoked: int, cards: int, seed: int = 7) -> None:
    """One area, one dwelling, ``revoked`` departed residents whose cards were revoked."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    today = local_today()
    db.session.execute(
        sa.insert(db.metadata.tables["areas"]).values(id=1, code="NB", name="Ningbo", path="/NB/")
    )
    db.session.execute(
        sa.insert(db.metadata.tables["dwellings"]).values(
            id=1,
            area_id=1,
            address="Bench Road 1",
            usable_area_m2=100,
            rooms=5,
            status="rentable",
            created_at=now,
        )
    )
    serials = rng.sample(range(1, cards + 1), revoked)
    ids = range(1, revoked + 1)
    _insert(
        "persons",
        [
            {
                "id": i,
                "document_type": "passport",
                "document_number_enc": b"x",
                "document_index": f"bench:{i}",
                "document_masked": "E*****1",
                "name": "X",
                "created_at": now,
            }
            for i in ids
        ],
    )
    _insert(
        "residences",
        [
            {
                "id": i,
                "person_id": i,
                "dwelling_id": 1,
                "arrived_on": today - timedelta(200),
                "departed_on": today - timedelta(1),
                "registered_at": now,
                "late": False,
                "minor": False,
            }
            for i in ids
        ],
    )
    # Revocations spread over the last year; each card valid a year from issue.
    _insert(
        "cards",
        [
            {
                "id": i,
                "card_no": make_card_no(serial),
                "residence_id": i,
                "person_id": i,
                "status": "revoked",
                "card_type": "cpu",
                "uid": f"{i:014x}",
                "key_id": 1,
                "issued_at": now - timedelta(days=300),
                "revoked_at": now - timedelta(seconds=rng.randrange(365 * 86400)),
                "revocation_reason": "departed",
                "expires_on": today + timedelta(days=65),
            }
            for i, serial in zip(ids, serials, strict=True)
        ],
    )
    db.session.commit()


def measure(bundle: dict) -> tuple[int, int]:
    body = json.dumps(bundle, separators=(",", ":")).encode()
    return len(body), len(gzip.compress(body, compresslevel=6))


def main() -> None:
    revoked = int(sys.argv[1]) if len(sys.argv) > 1 else 350_000
    cards = int(sys.argv[2]) if len(sys.argv) > 2 else 3_500_000
    from anjuka.verifications.bundle import build_bundle

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Config(instance_path=Path(tmp), testing=True))
        with app.app_context():
            db.create_all()
            started = time.perf_counter()
            populate(revoked, cards)
            elapsed = time.perf_counter() - started
            print(f"populated {revoked} revoked of {cards} cards in {elapsed:.1f} s")
            started = time.perf_counter()
            full = build_bundle()
            took = time.perf_counter() - started
            raw, packed = measure(full)
            print(
                f"full bundle: {len(full['revoked'])} entries, {raw} bytes JSON"
                f" ({raw / len(full['revoked']):.2f} B/entry), {packed} bytes gzip"
                f" ({packed / len(full['revoked']):.2f} B/entry), built in {took:.2f} s"
            )
            since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            delta = build_bundle(since)
            raw, packed = measure(delta)
            print(
                f"one-day delta: {len(delta['revoked'])} entries, {raw} bytes JSON, {packed} gzip"
            )
            db.session.remove()
            db.engine.dispose()


if __name__ == "__main__":
    main()
