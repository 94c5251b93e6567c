"""``benchmarks/run`` at a tiny scale (0.001): it runs to the end and writes its table as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from throwaway_db import PG_ADMIN_URL

REPO = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_and_writes_every_row(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run(  # noqa: S603 (this interpreter, the repository's module)
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--scale",
            "0.001",  # the smallest city with room in one area for the audit chain row
            "--requests",
            "20",
            "--json",
            str(out),
        ],
        cwd=REPO,
        env={"ANJUKA_BENCH_PG_URL": PG_ADMIN_URL, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {r["row"]: r for r in result["rows"]}
    for name in (
        "import rate vs raw COPY",
        "reconciliation vs SQL aggregate",
        "statistics (30 days) vs SQL",
        "import peak memory, S vs S/10",
        "dashboard queries vs SQL",
        "verification throughput vs bare endpoint (gunicorn)",
        "verification p99 vs bare endpoint (gunicorn)",
        "arrivals from 16 clients vs bare insert (gunicorn, PostgreSQL)",
        "capacity violations after the arrivals",
        "statements: arrival",
        "statements: dwelling list growth",
    ):
        assert name in rows, sorted(rows)
        assert rows[name]["result"] in {"pass", "MISS"}
        assert rows[name]["measured"]
    for name in (
        "import rate vs raw COPY",
        "reconciliation vs SQL aggregate",
        "dashboard queries vs SQL",
        "verification throughput vs bare endpoint (gunicorn)",
        "verification p99 vs bare endpoint (gunicorn)",
        "arrivals from 16 clients vs bare insert (gunicorn, PostgreSQL)",
    ):
        assert rows[name]["ratio"] > 0
    assert result["statements"]["dwelling list growth"] == 0
    # The reconciliation and the hand-written aggregate find the same dwellings.
    assert result["reconciliation"]["alerts"] == sum(result["reconciliation"]["sql"])
    assert result["statistics"]["residents"] == result["statistics"]["sql_residents"]
    # The dashboard's figures and the hand-written ones agree.
    dashboard = result["dashboard"]
    assert dashboard["residents"] == dashboard["district_residents"] == dashboard["sql_residents"]
    assert dashboard["districts"] == dashboard["sql_districts"]
    # Both sides of the served rows answered every request, and answered right.
    for served in ("verification", "arrivals"):
        for side in ("app", "reference"):
            measured = result[served][side]
            assert measured["requests"] == 20, (served, side, measured)
            assert set(measured["statuses"]) <= {"200", "201"}, (served, side, measured)
    assert result["verification"]["app_result"] == "valid"
    assert result["verification"]["reference_result"] == "valid"
    # Every arrival was registered, and none overfilled a dwelling.
    assert result["arrivals"]["registered"] >= 20
    assert result["arrivals"]["violations"] == 0
    assert rows["capacity violations after the arrivals"]["result"] == "pass"
    # The audit chain's arrivals: 16 desks in one area, then spread over the areas.
    chained = result["audit_chain"]
    assert chained["areas"]["spread"] > 1, chained
    for side in ("one", "spread"):
        assert chained[side]["requests"] == chained["requests"] > 0, chained
        assert set(chained[side]["statuses"]) == {"201"}, chained
    assert chained["registered"] == 2 * (chained["requests"] + 16)  # and one warm-up each
    assert chained["violations"] == 0
    chain_row = rows["arrivals, 16 desks in one area vs in 16 areas (audit chain, gunicorn)"]
    assert chain_row["ratio"] > 0
    assert "| import rate vs raw COPY |" in done.stdout
