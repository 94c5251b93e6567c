"""SQL statements per request, pinned: a count that grows fails here (no N+1).

Each hot path is counted inside the request only (tests/perf/sqlcount.py),
on a cold session. The ceilings are the counts measured when they were
pinned; lower them when a change cuts a statement. The list endpoints are
counted over 5 and then 50 dwellings and residents: their counts must not
grow with the registry.
"""

from __future__ import annotations

import pytest
from sqlcount import HotPaths

#: Statements per request today, per backend (the ceilings).
CEILINGS = {
    "sqlite": {
        "arrival": 13,
        "departure": 16,
        "dwelling page": 5,
        "card issue": 17,
        "verification": 14,
    },
    # SQLite's requests open with BEGIN IMMEDIATE (a statement), and it has no
    # data-modifying CTEs: an audit event and its chain head's update, a day's
    # statistics and the area's totals, are two statements there, one here.
    "postgresql": {
        "arrival": 10,
        "departure": 13,
        "dwelling page": 4,
        "card issue": 15,
        "verification": 12,
    },
}
#: The list endpoints, at any size (page of up to 100).
LIST_CEILINGS = {
    "sqlite": {"dwelling list": 6, "residents of a dwelling": 7},
    "postgresql": {"dwelling list": 5, "residents of a dwelling": 6},
}
#: The target of docs/benchmarks.md (issue 10): at most 10 statements per arrival.
ARRIVAL_TARGET = 10


@pytest.fixture
def paths(app, client) -> HotPaths:
    hot = HotPaths(app, client)
    hot.setup()
    return hot


def test_hot_paths_stay_within_their_statements(paths, backend):
    counts = paths.writes()
    print(backend, counts)
    assert set(counts) == set(CEILINGS[backend])
    for name, count in counts.items():
        assert count <= CEILINGS[backend][name], f"{name}: {count} statements"
    if backend == "postgresql":
        assert counts["arrival"] <= ARRIVAL_TARGET


@pytest.mark.parametrize(
    "endpoint",
    ["dwelling list", "residents of a dwelling"],
)
def test_lists_do_not_grow_with_the_registry(paths, backend, endpoint):
    paths.grow(5)
    small = paths.lists()[endpoint]
    paths.grow(50)
    large = paths.lists()[endpoint]
    print(backend, endpoint, small, large)
    assert large == small, f"{endpoint}: statements grew with the registry: {small} -> {large}"
    assert large <= LIST_CEILINGS[backend][endpoint], f"{endpoint}: {large} statements"
