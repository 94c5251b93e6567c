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
        "arrival": 26,
        "departure": 25,
        "dwelling page": 9,
        "card issue": 23,
        "verification": 20,
    },
    # One fewer each: SQLite's requests open with BEGIN IMMEDIATE (a statement).
    "postgresql": {
        "arrival": 25,
        "departure": 24,
        "dwelling page": 8,
        "card issue": 22,
        "verification": 19,
    },
}
#: The list endpoints, at any size (page of up to 100).
LIST_CEILINGS = {
    "sqlite": {"dwelling list": 10, "residents of a dwelling": 10},
    "postgresql": {"dwelling list": 9, "residents of a dwelling": 9},
}


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
