"""GET /stats/occupancy: figures kept as events happen, equal to a rebuild from the registry."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import sqlalchemy as sa

from anjuka.core.db import db
from anjuka.core.time import local_today
from anjuka.stats.models import AreaDay, AreaTotal, DwellingFigure
from anjuka.stats.operations import rebuild


def day(offset: int) -> str:
    return (local_today() + timedelta(days=offset)).isoformat()


@pytest.fixture
def city(create_area, create_dwelling, create_user):
    create_area("C")
    create_area("N", "C")
    create_area("S", "C")
    return {
        "north": create_dwelling("N", usable=20, rooms=2),  # capacity 4
        "south": create_dwelling("S", usable=40, rooms=4),  # capacity 8
        "admin": create_user("admin"),
        "north_supervisor": create_user("supervisor", ["area:N"]),
    }


def stats(client, who: dict, **query: str):  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/stats/occupancy", query_string=query, headers=who["headers"])
    assert response.status_code == 200, response.json
    return response.json


def test_arrivals_departures_and_the_stocks_day_by_day(client, city, arrive):
    admin = city["admin"]
    first = arrive(admin["headers"], city["north"], arrived_on=day(-5)).json
    arrive(admin["headers"], city["north"], arrived_on=day(-2))
    arrive(admin["headers"], city["south"], arrived_on=day(-2))
    client.post(
        f"/api/v1/residences/{first['id']}/departure",
        json={"departed_on": day(-1)},
        headers=admin["headers"],
    )
    answer = stats(client, admin, area_code="C", **{"from": day(-6), "to": day(0)})
    points = {p["end"]: p for p in answer["series"]}
    assert len(answer["series"]) == 7
    assert [points[day(d)]["residents"] for d in range(-6, 1)] == [0, 1, 1, 1, 3, 2, 2]
    assert [points[day(d)]["arrivals"] for d in range(-6, 1)] == [0, 1, 0, 0, 2, 0, 0]
    assert [points[day(d)]["departures"] for d in range(-6, 1)] == [0, 0, 0, 0, 0, 1, 0]
    assert points[day(0)]["capacity"] == 12
    assert {a["area_code"]: a["figures"]["residents"] for a in answer["areas"]} == {"N": 1, "S": 1}
    weekly = stats(client, admin, area_code="C", interval="week", **{"from": day(-6), "to": day(0)})
    assert sum(p["arrivals"] for p in weekly["series"]) == 3
    assert weekly["series"][-1]["residents"] == 2
    assert weekly["series"][0]["start"] == day(-6)


def test_over_capacity_and_open_alerts(client, city, arrive, create_user):
    supervisor = create_user("supervisor", ["area:C"])
    for _ in range(4):
        assert arrive(supervisor["headers"], city["north"]).status_code == 201
    crowded = arrive(
        supervisor["headers"], city["north"], override_reason="Temporary shelter ordered"
    )
    assert crowded.status_code == 201
    late = arrive(supervisor["headers"], city["south"], arrived_on=day(-20))  # a late registration
    assert late.json["late"] is True
    today = stats(client, supervisor, area_code="C", **{"from": day(0), "to": day(0)})
    [point] = today["series"]
    assert point["over_capacity_dwellings"] == 1
    assert point["open_alerts"] == 2  # over_occupancy, late_registration
    by_area = {a["area_code"]: a["figures"] for a in today["areas"]}
    assert (by_area["N"]["over_capacity_dwellings"], by_area["S"]["over_capacity_dwellings"]) == (
        1,
        0,
    )


def test_the_callers_scope_bounds_the_figures(client, city, arrive):
    admin, north = city["admin"], city["north_supervisor"]
    arrive(admin["headers"], city["north"])
    arrive(admin["headers"], city["south"])
    mine = stats(client, north, area_code="C")  # an ancestor: only the caller's part of it
    assert mine["series"][-1]["residents"] == 1
    assert [a["area_code"] for a in mine["areas"]] == ["N"]
    default = stats(client, north)
    assert default["series"][-1]["residents"] == 1
    foreign = client.get("/api/v1/stats/occupancy?area_code=S", headers=north["headers"])
    assert foreign.status_code == 404
    everything = stats(client, admin)  # an admin: every top area
    assert everything["series"][-1]["residents"] == 2
    assert [a["area_code"] for a in everything["areas"]] == ["C"]
    for bad in (
        {"from": day(0), "to": day(-1)},
        {"from": day(-400), "to": day(0)},
        {"interval": "year"},
    ):
        refused = client.get("/api/v1/stats/occupancy", query_string=bad, headers=admin["headers"])
        assert refused.status_code == 422, bad


def _figures() -> tuple:
    db.session.expire_all()
    totals = sorted(
        db.session.execute(
            sa.select(
                AreaTotal.area_id, AreaTotal.residents, AreaTotal.capacity, AreaTotal.over_capacity
            )
        ).all()
    )
    flows = sorted(
        (a, d, arr, dep, r)
        for a, d, arr, dep, r in db.session.execute(
            sa.select(
                AreaDay.area_id,
                AreaDay.day,
                AreaDay.arrivals,
                AreaDay.departures,
                AreaDay.residents_delta,
            )
        ).all()
        if (arr, dep, r) != (0, 0, 0)
    )
    dwellings = sorted(
        db.session.execute(
            sa.select(
                DwellingFigure.dwelling_id, DwellingFigure.capacity, DwellingFigure.over_capacity
            )
        ).all()
    )
    return totals, flows, dwellings


def test_figures_kept_as_events_happen_equal_a_rebuild(client, city, arrive, create_dwelling):
    """A random day of a registry: the incremental figures are exactly what a rebuild finds."""
    rng = random.Random(7)
    admin = city["admin"]
    dwellings = [city["north"], city["south"]] + [
        create_dwelling(rng.choice("NS"), usable=30, rooms=3) for _ in range(4)
    ]
    current: list[int] = []
    for _ in range(40):
        if current and rng.random() < 0.3:
            residence = current.pop(rng.randrange(len(current)))
            client.post(
                f"/api/v1/residences/{residence}/departure",
                json={"departed_on": day(-rng.randrange(0, 3))},
                headers=admin["headers"],
            )
        else:
            arrived = arrive(
                admin["headers"],
                rng.choice(dwellings),
                arrived_on=day(-rng.randrange(3, 9)),
                override_reason=rng.choice([None, "Shelter for the night"]),
            )
            if arrived.status_code == 201:
                current.append(arrived.json["id"])
    changed = client.patch(
        f"/api/v1/dwellings/{dwellings[2]}", json={"rooms": 1}, headers=admin["headers"]
    )
    assert changed.status_code == 200
    tightened = client.patch(
        "/api/v1/areas/S", json={"policy": {"min_area_per_person_m2": 15}}, headers=admin["headers"]
    )
    assert tightened.status_code == 200
    kept = _figures()
    assert kept[0]  # something was counted
    rebuild()
    db.session.commit()
    rebuilt = _figures()
    assert kept[0] == rebuilt[0]
    assert kept[1] == rebuilt[1]
    assert kept[2] == rebuilt[2]
