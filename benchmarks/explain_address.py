"""EXPLAIN the dwellings' address search before and after its trigram index (migration 0020).

    .venv/bin/python -m benchmarks.explain_address --dwellings 1000000

Makes a throw-away PostgreSQL database (``ANJUKA_BENCH_PG_URL``), migrates it
to 0019 (before the index), writes ``--dwellings`` dwellings with addresses
in the synthetic city's form (``中山路12号3幢1203室``) by ``generate_series``,
and prints ``EXPLAIN (ANALYZE, BUFFERS)`` of what ``GET /api/v1/dwellings
?address=...`` sends for an admin (its page and its count); then upgrades to
the head (0020: ``pg_trgm`` and the GIN index), and prints them again.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from benchmarks.__main__ import REPO, make_app, throwaway_database

PG_ADMIN_URL = os.environ.get("ANJUKA_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
STREETS = [
    "中山",
    "解放",
    "人民",
    "天一",
    "百丈",
    "江东",
    "孝闻",
    "鼓楼",
    "环城",
    "兴宁",
    "世纪",
    "钱湖",
]

FILL_SQL = """
INSERT INTO dwellings (area_id, address, rooms, usable_area_m2, status, created_at)
SELECT %(area)s,
       (%(streets)s::text[])[1 + i %% %(n_streets)s] || '路' || (1 + (i * 7) %% 998) || '号'
           || (1 + i %% 29) || '幢' || (101 + (i * 13) %% 3200) || '室',
       1 + i %% 3, 20 + i %% 40, 'rentable', now()
FROM generate_series(1, %(count)s) AS i
"""

#: What the list endpoint sends for an admin: the page, and the count behind X-Pagination.
PAGE_SQL = (
    "SELECT * FROM dwellings WHERE address LIKE '%%' || %(q)s || '%%' ESCAPE '/'"
    " ORDER BY id LIMIT 50"
)
COUNT_SQL = (
    "SELECT count(*) FROM (SELECT id FROM dwellings"
    " WHERE address LIKE '%%' || %(q)s || '%%' ESCAPE '/') AS page"
)
SEARCHES = ("中山路12号3幢", "解放路5")


def explain(url: str) -> list[str]:
    lines = []
    with psycopg.connect(url) as conn:
        for q in SEARCHES:
            for name, sql in (("page", PAGE_SQL), ("count", COUNT_SQL)):
                plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", {"q": q}).fetchall()
                lines.append(f"-- {name}, address contains {q!r}")
                lines.extend(row[0] for row in plan)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dwellings", type=int, default=1_000_000)
    parser.add_argument("--pg-url", default=PG_ADMIN_URL)
    args = parser.parse_args(argv)
    import flask_migrate

    from anjuka.core.db import db

    workdir = Path(tempfile.mkdtemp(prefix="anjuka-explain-"))
    with throwaway_database(args.pg_url) as url:
        app = make_app(url, workdir)
        with app.app_context():
            flask_migrate.upgrade(directory=str(REPO / "migrations"), revision="0019_retention")
            db.session.remove()
            db.engine.dispose()
        with psycopg.connect(url) as conn:
            area = conn.execute(
                "INSERT INTO areas (code, name, path) VALUES ('3302', '宁波市', '/3302/')"
                " RETURNING id"
            ).fetchone()[0]
            started = time.perf_counter()
            conn.execute(
                FILL_SQL,
                {
                    "area": area,
                    "streets": STREETS,
                    "n_streets": len(STREETS),
                    "count": args.dwellings,
                },
            )
            conn.commit()
            took = time.perf_counter() - started
            print(f"-- {args.dwellings:,} dwellings written in {took:.1f} s")
            conn.execute("ANALYZE dwellings")
            conn.commit()
        print("== before (0019: B-tree on address only)")
        print("\n".join(explain(url)))
        with app.app_context():
            started = time.perf_counter()
            flask_migrate.upgrade(directory=str(REPO / "migrations"))
            print(f"-- upgrade to head (the GIN index) in {time.perf_counter() - started:.1f} s")
            db.session.remove()
            db.engine.dispose()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE dwellings")
            size = conn.execute(
                "SELECT pg_size_pretty(pg_relation_size('ix_dwellings_address_trgm')),"
                " pg_size_pretty(pg_relation_size('dwellings'))"
            ).fetchone()
        print(f"-- index {size[0]}, table {size[1]}")
        print("== after (0020: pg_trgm GIN index)")
        print("\n".join(explain(url)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
