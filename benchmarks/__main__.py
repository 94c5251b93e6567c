"""The city benchmark: each hot path as a ratio against its reference, in one run.

``benchmarks/run --scale S`` (or ``python -m benchmarks``) makes a throw-away
PostgreSQL database (``ANJUKA_BENCH_PG_URL``), writes a synthetic city with
``gen-city`` at scale ``S`` and measures, on that same data and in the same
run:

* import rate: ``anjuka import`` of the four files, against a raw ``COPY`` of
  the same rows into bare tables of text columns;
* reconciliation: the over-occupancy re-evaluation of every dwelling (the
  city's subtree), against one hand-written SQL aggregate;
* statistics: the city's 30-day series (``anjuka.stats``), against the same
  figures in one hand-written SQL statement over the residences;
* dashboard: the supervisor dashboard's queries over the city (its series
  and each district's figures, the live alerts per kind), against the same
  aggregates in hand-written SQL over the registry's tables;
* verification and arrivals under gunicorn (the shipped settings), against
  bare Flask endpoints on the same settings (benchmarks/under_gunicorn.py);
* the audit chain: arrivals from 16 desks in one area (one chain, one
  area's figures) against 16 desks in 16 areas (under_gunicorn.audit_chain);
* statements per request: arrival, departure, dwelling page, card issue,
  verification and the list endpoints (tests/perf/sqlcount.py);
* import peak memory at two file sizes (``S / 10`` and ``S``), each import in
  a process of its own (peak RSS growth over the import).

It prints one table, each row against its target at scale 1 (issue 10), and
writes the results as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psycopg

from benchmarks import under_gunicorn
from benchmarks.dashboard import dashboard

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("ANJUKA_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
FILES = ("areas", "estates", "dwellings", "residents")


@contextmanager
def throwaway_database(admin_url: str) -> Iterator[str]:
    """The URL of a new PostgreSQL database, dropped afterwards."""
    name = f"anjuka_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_app(url: str, workdir: Path):  # noqa: ANN201
    from anjuka import create_app
    from anjuka.config import Config

    instance = workdir / f"instance-{uuid.uuid4().hex[:6]}"
    instance.mkdir(parents=True)
    return create_app(
        Config(instance_path=instance, database_url=url, keys_file=workdir / "keys.json")
    )


def generate(scale: float, seed: int, out: Path) -> dict[str, int]:
    """The city's files in ``out``; the rows written per file."""
    from anjuka.core.time import local_today
    from anjuka.imports.synthetic import CityGenerator

    manifest = CityGenerator(scale, seed, local_today()).write(out)
    return dict(manifest.rows)


def timed(fn: Callable[[], object], repeat: int = 3, budget: float = 30.0) -> float:
    """The median seconds of ``fn`` over ``repeat`` runs (fewer when past ``budget``)."""
    times: list[float] = []
    spent = 0.0
    while len(times) < repeat and (not times or spent < budget):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
        spent += times[-1]
    return statistics.median(times)


# -- import (in a process of its own, for its memory) --------------------------------


def rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


class PeakSampler(threading.Thread):
    """The highest resident set size seen while it runs (sampled every 5 ms).

    ``outside`` is the highest seen while ``inside`` was false: the import
    without the statistics rebuild that ends it.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = self.outside = rss_bytes()
        self.inside = False
        self.done = threading.Event()

    def sample(self) -> None:
        rss = rss_bytes()
        self.peak = max(self.peak, rss)
        if not self.inside:
            self.outside = max(self.outside, rss)

    def run(self) -> None:
        while not self.done.wait(0.005):
            self.sample()

    def stop(self) -> int:
        self.done.set()
        self.join()
        return max(self.peak, rss_bytes())


def import_child(url: str, city: Path, workdir: Path) -> dict:
    """Import ``city`` into ``url``: seconds and rows per file, peak RSS growth over it."""
    from anjuka.core.db import db
    from anjuka.imports.importer import run_import

    app = make_app(url, workdir)
    result: dict = {"files": {}}
    with app.app_context():
        import flask_migrate

        flask_migrate.upgrade(directory=str(REPO / "migrations"))
        db.session.commit()
        before = rss_bytes()
        sampler = PeakSampler()
        sampler.start()
        # The dwellings and residents imports end by rebuilding the statistics
        # (a pass over the registry): keep the peak of the streamed rows apart.
        import anjuka.stats.operations as stats_operations

        rebuild = stats_operations.rebuild

        def noted_rebuild() -> object:
            sampler.sample()
            sampler.inside = True
            try:
                return rebuild()
            finally:
                sampler.inside = False

        stats_operations.rebuild = noted_rebuild
        for kind in FILES:
            started = time.perf_counter()
            report = run_import(kind, city / f"{kind}.csv", operator="benchmark")
            db.session.commit()
            result["files"][kind] = {
                "seconds": time.perf_counter() - started,
                "rows": report.rows,
                "accepted": report.accepted,
                "rejected": sum(report.rejected.values()),
            }
        peak = sampler.stop()
    result["rss_before"] = before
    result["peak_rss"] = peak
    result["peak_growth"] = max(peak - before, 0)
    result["streamed_growth"] = max(sampler.outside - before, 0)
    return result


def run_import_process(url: str, city: Path, workdir: Path) -> dict:
    out = subprocess.run(  # noqa: S603 (this interpreter, this module)
        [sys.executable, "-m", "benchmarks", "--import-child", url, str(city), str(workdir)],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- references ---------------------------------------------------------------------


def raw_copy(url: str, city: Path) -> dict:
    """COPY each file's rows into a bare table of text columns: seconds and rows."""
    seconds = 0.0
    rows = 0
    with psycopg.connect(url) as conn:
        for kind in FILES:
            path = city / f"{kind}.csv"
            with path.open(encoding="utf-8-sig") as handle:
                header = handle.readline().strip().split(",")
            table = f"bare_{kind}"
            columns = ", ".join(f'"{c}" text' for c in header)
            conn.execute(f"CREATE TABLE {table} ({columns})")
            conn.commit()
            started = time.perf_counter()
            copy_sql = f"COPY {table} FROM STDIN (FORMAT csv, HEADER true)"
            with conn.cursor() as cur, cur.copy(copy_sql) as copy, path.open("rb") as handle:
                while block := handle.read(1 << 20):
                    copy.write(block)
            conn.commit()
            seconds += time.perf_counter() - started
            rows += conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
    return {"seconds": seconds, "rows": rows}


#: Over-capacity and illegally occupied dwellings in one statement: each area's
#: policy inherited down the tree, the current residents per dwelling, the
#: capacity rule (minors and the family exception left out).
RECONCILE_SQL = """
WITH RECURSIVE policy AS (
    SELECT id, min_area_per_person_m2 AS m, area_basis AS b, max_persons_per_room AS r
    FROM areas WHERE parent_id IS NULL
    UNION ALL
    SELECT a.id, COALESCE(a.min_area_per_person_m2, p.m), COALESCE(a.area_basis, p.b),
           COALESCE(a.max_persons_per_room, p.r)
    FROM areas a JOIN policy p ON a.parent_id = p.id
), occupied AS (
    SELECT dwelling_id, count(*) AS n FROM residences
    WHERE departed_on IS NULL GROUP BY dwelling_id
)
SELECT
    count(*) FILTER (WHERE d.status = 'rentable' AND o.n > LEAST(
        COALESCE(floor(CASE WHEN p.b = 'building'
            THEN COALESCE(d.building_area_m2, d.usable_area_m2)
            ELSE COALESCE(d.usable_area_m2, d.building_area_m2) END / p.m), 0),
        d.rooms * p.r)),
    count(*) FILTER (WHERE d.status = 'illegal')
FROM occupied o JOIN dwellings d ON d.id = o.dwelling_id JOIN policy p ON p.id = d.area_id
"""

#: The city's residents now and its arrivals and departures per day since ``start``.
STATS_SQL = """
SELECT (SELECT count(*) FROM residences WHERE departed_on IS NULL), day,
       sum(arrived), sum(departed)
FROM (
    SELECT arrived_on AS day, 1 AS arrived, 0 AS departed FROM residences
    WHERE arrived_on >= %(start)s
    UNION ALL
    SELECT departed_on, 0, 1 FROM residences WHERE departed_on >= %(start)s
) flows
GROUP BY day ORDER BY day
"""


def reconciliation(url: str) -> dict:
    """The reconciliation of the whole city against the aggregate, median of 3 each.

    ``first``: with no occupancy alert live (as imported), every alert
    raised, rolled back after each run. ``app``: the steady state a policy
    change meets, the alerts of the first pass committed and the
    reconciliation run again (it raises nothing new and writes nothing).
    """
    import sqlalchemy as sa

    from anjuka.alerts.models import LIVE_STATUSES, Alert
    from anjuka.alerts.occupancy import OCCUPANCY_KINDS, evaluate_subtree
    from anjuka.areas.models import Area
    from anjuka.core.db import db

    found: dict = {}

    def app_side(keep: bool = False) -> None:
        root = db.session.scalar(sa.select(Area).where(Area.parent_id.is_(None)))
        found["dwellings"] = evaluate_subtree(root, trigger="reconcile")
        db.session.flush()
        found["alerts"] = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Alert)
            .where(Alert.kind.in_(OCCUPANCY_KINDS), Alert.status.in_(LIVE_STATUSES))
        )
        if keep:
            db.session.commit()
        else:
            db.session.rollback()
        db.session.expunge_all()

    def by_hand() -> None:
        with psycopg.connect(url) as conn:
            found["sql"] = list(conn.execute(RECONCILE_SQL).fetchone())

    first = timed(app_side)
    found["first_candidates"] = found["dwellings"]
    app_side(keep=True)
    return {"first": first, "app": timed(app_side), "reference": timed(by_hand), **found}


def stats_query(url: str) -> dict:
    import sqlalchemy as sa

    from anjuka.areas.models import Area
    from anjuka.core.db import db
    from anjuka.core.time import local_today
    from anjuka.stats.operations import series

    end = local_today()
    start = end - timedelta(days=29)
    found: dict = {}

    def app_side() -> None:
        points = series(sa.select(Area.id), start, end, "day")
        found["residents"] = points[-1].residents
        db.session.rollback()

    def by_hand() -> None:
        with psycopg.connect(url) as conn:
            rows = conn.execute(STATS_SQL, {"start": start}).fetchall()
            found["sql_residents"] = rows[0][0] if rows else None

    return {"app": timed(app_side, repeat=5), "reference": timed(by_hand, repeat=5), **found}


def statement_counts(app) -> dict[str, int]:  # noqa: ANN001
    """The counts the test pins (tests/perf), on this database."""
    sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "perf")]
    from sqlcount import HotPaths

    hot = HotPaths(app, app.test_client())
    hot.setup()
    counts = hot.writes()
    hot.grow(5)
    small = hot.lists()
    hot.grow(50)
    large = hot.lists()
    for name in small:
        counts[f"{name} (5 → 50)"] = large[name]
        counts[f"{name} growth"] = large[name] - small[name]
    return counts


# -- the run ------------------------------------------------------------------------


def machine(url: str) -> dict:
    with psycopg.connect(url) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "load_average": os.getloadavg(),
        "linux": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg,
    }


def row(name: str, value: str, ratio: float | None, target: str, ok: bool | None) -> dict:
    return {
        "row": name,
        "measured": value,
        "ratio": ratio,
        "target": target,
        "result": "—" if ok is None else ("pass" if ok else "MISS"),
    }


def measure(scale: float, seed: int, admin_url: str, served_requests: int = 300) -> dict:
    from anjuka.core.db import db

    workdir = Path(tempfile.mkdtemp(prefix="anjuka-bench-"))
    started = time.perf_counter()
    with throwaway_database(admin_url) as url:
        app = make_app(url, workdir)
        small_scale = scale / 10
        with app.app_context():
            written = generate(scale, seed, workdir / "city")
            small_written = generate(small_scale, seed, workdir / "city-small")
        imported = run_import_process(url, workdir / "city", workdir)
        copied = raw_copy(url, workdir / "city")
        with throwaway_database(admin_url) as small_url:
            small = run_import_process(small_url, workdir / "city-small", workdir)
        with app.app_context():
            reconciled = reconciliation(url)
            stats = stats_query(url)
            db.session.remove()
        shown = dashboard(app, url, timed, STATS_SQL)
        with app.app_context():
            counts = statement_counts(app)
            db.session.remove()
            db.engine.dispose()
        verified = under_gunicorn.verification(app, url, workdir, served_requests)
        arrived = under_gunicorn.arrivals(app, url, workdir, served_requests)
        chained = under_gunicorn.audit_chain(app, url, workdir, served_requests)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        about = machine(url)

    import_rows = sum(f["rows"] for f in imported["files"].values())
    import_seconds = sum(f["seconds"] for f in imported["files"].values())
    import_rate = import_rows / import_seconds
    copy_rate = copied["rows"] / copied["seconds"]
    memory = imported["peak_growth"] / max(small["peak_growth"], 1)
    rows = [
        row(
            "import rate vs raw COPY",
            f"{import_rate:,.0f} rows/s vs {copy_rate:,.0f} rows/s ({import_rows:,} rows)",
            import_rate / copy_rate,
            "≥ 0.25",
            import_rate / copy_rate >= 0.25,
        ),
        row(
            "reconciliation vs SQL aggregate",
            f"{reconciled['app'] * 1000:,.0f} ms vs {reconciled['reference'] * 1000:,.1f} ms"
            f" ({reconciled['dwellings']:,} candidates; {reconciled['alerts']} alerts,"
            f" SQL {sum(reconciled['sql'])})",
            reconciled["app"] / reconciled["reference"],
            "≤ 2",
            reconciled["app"] / reconciled["reference"] <= 2,
        ),
        row(
            "reconciliation, first pass (raises every alert) vs SQL aggregate",
            f"{reconciled['first'] * 1000:,.0f} ms vs {reconciled['reference'] * 1000:,.1f} ms"
            f" ({reconciled['first_candidates']:,} candidates)",
            reconciled["first"] / reconciled["reference"],
            "—",
            None,
        ),
        row(
            "statistics (30 days) vs SQL",
            f"{stats['app'] * 1000:,.1f} ms vs {stats['reference'] * 1000:,.1f} ms"
            f" ({stats['residents']:,} residents; SQL {stats['sql_residents']:,})",
            stats["app"] / stats["reference"],
            "≤ 2",
            stats["app"] / stats["reference"] <= 2,
        ),
        row(
            "dashboard queries vs SQL",
            f"{shown['app'] * 1000:,.1f} ms vs {shown['reference'] * 1000:,.1f} ms"
            f" ({shown['districts']} districts, {shown['residents']:,} residents;"
            f" SQL {shown['sql_districts']}, {shown['sql_residents']:,})",
            shown["app"] / shown["reference"],
            "≤ 2",
            shown["app"] / shown["reference"] <= 2,
        ),
        *served_rows(verified, arrived),
        *chain_rows(chained),
        row(
            "import peak memory, S vs S/10",
            f"{imported['peak_growth'] / 2**20:,.1f} MiB vs {small['peak_growth'] / 2**20:,.1f} MiB"
            f" ({written['residents']:,} vs {small_written['residents']:,} residents)",
            memory,
            "≤ 1.2",
            memory <= 1.2,
        ),
    ]
    streamed = imported["streamed_growth"] / max(small["streamed_growth"], 1)
    rows.append(
        row(
            "import peak memory outside the statistics rebuild",
            f"{imported['streamed_growth'] / 2**20:,.1f} MiB"
            f" vs {small['streamed_growth'] / 2**20:,.1f} MiB",
            streamed,
            "≤ 1.2",
            streamed <= 1.2,
        )
    )
    for name, count in counts.items():
        if name.endswith("growth"):
            rows.append(row(f"statements: {name}", str(count), None, "0", count == 0))
        elif name == "arrival":
            rows.append(row("statements: arrival", str(count), count / 10, "≤ 10", count <= 10))
        else:
            rows.append(row(f"statements: {name}", str(count), None, "—", None))
    return {
        "scale": scale,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": about,
        "rows_written": written,
        "rows_written_small": small_written,
        "rows": rows,
        "import": imported,
        "import_small": small,
        "copy": copied,
        "reconciliation": reconciled,
        "statistics": stats,
        "dashboard": shown,
        "verification": verified,
        "arrivals": arrived,
        "audit_chain": chained,
        "statements": counts,
    }


def served_rows(verified: dict, arrived: dict) -> list[dict]:
    """The rows of verification and arrivals under gunicorn."""
    app, bare = verified["app"], verified["reference"]
    throughput = app["rate"] / bare["rate"]
    tail = app["p99_ms"] / bare["p99_ms"]
    clients = f"{app['clients']} clients, {app['requests']} requests each side"
    ins, ref = arrived["app"], arrived["reference"]
    arrival_ratio = ins["rate"] / ref["rate"]
    return [
        row(
            "verification throughput vs bare endpoint (gunicorn)",
            f"{app['rate']:,.0f}/s vs {bare['rate']:,.0f}/s ({clients};"
            f" app {app['statuses']}, bare {bare['statuses']})",
            throughput,
            "≥ 0.5",
            throughput >= 0.5,
        ),
        row(
            "verification p99 vs bare endpoint (gunicorn)",
            f"{app['p99_ms']:,.1f} ms vs {bare['p99_ms']:,.1f} ms"
            f" (median {app['median_ms']:,.1f} vs {bare['median_ms']:,.1f} ms)",
            tail,
            "≤ 2",
            tail <= 2,
        ),
        row(
            "arrivals from 16 clients vs bare insert (gunicorn, PostgreSQL)",
            f"{ins['rate']:,.0f}/s vs {ref['rate']:,.0f}/s ({ins['requests']} requests each side;"
            f" app {ins['statuses']}; p99 {ins['p99_ms']:,.0f} vs {ref['p99_ms']:,.0f} ms)",
            arrival_ratio,
            "≥ 0.3",
            arrival_ratio >= 0.3,
        ),
        row(
            "capacity violations after the arrivals",
            f"{arrived['violations']} of the dwellings that took the"
            f" {arrived['registered']:,} arrivals",
            None,
            "0",
            arrived["violations"] == 0,
        ),
    ]


def chain_rows(chained: dict) -> list[dict]:
    """The audit chain's row: 16 desks in one area against 16 desks in 16 areas."""
    name = "arrivals, 16 desks in one area vs in 16 areas (audit chain, gunicorn)"
    if "skipped" in chained:
        return [row(name, chained["skipped"], None, "—", None)]
    one, spread = chained["one"], chained["spread"]
    return [
        row(
            name,
            f"{one['rate']:,.0f}/s vs {spread['rate']:,.0f}/s ({chained['requests']} requests"
            f" each side; app {one['statuses']} and {spread['statuses']};"
            f" p99 {one['p99_ms']:,.0f} vs {spread['p99_ms']:,.0f} ms)",
            one["rate"] / spread["rate"],
            "— (measured)",
            None,
        ),
        row(
            "capacity violations after the audit chain's arrivals",
            f"{chained['violations']} of the dwellings that took the"
            f" {chained['registered']:,} arrivals",
            None,
            "0",
            chained["violations"] == 0,
        ),
    ]


def table(result: dict) -> str:
    lines = [
        "| row | measured | ratio | target (scale 1) | result |",
        "|---|---|---:|---|---|",
    ]
    for r in result["rows"]:
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.3g}"
        lines.append(f"| {r['row']} | {r['measured']} | {ratio} | {r['target']} | {r['result']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/run", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.002, help="1 is Ningbo (default 0.002)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--json", type=Path, default=Path("benchmark-results.json"), help="where to write results"
    )
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help="server (ANJUKA_BENCH_PG_URL)")
    parser.add_argument(
        "--requests",
        type=int,
        default=300,
        help="requests per side for verification and arrivals under gunicorn (default 300)",
    )
    parser.add_argument("--import-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.import_child:
        url, city, workdir = args.import_child
        print(json.dumps(import_child(url, Path(city), Path(workdir))))
        return 0
    result = measure(args.scale, args.seed, args.pg_url, args.requests)
    print(f"anjuka benchmark, scale {args.scale}, seed {args.seed}, {result['seconds']} s")
    print(table(result))
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
