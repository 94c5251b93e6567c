"""Occupancy policy: capacity from the area's rules, inheritance per field, defaults."""

from __future__ import annotations

import pytest


def _area(client, headers, code):
    response = client.get(f"/api/v1/areas/{code}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def _patch_area(client, headers, code, **body):
    response = client.patch(f"/api/v1/areas/{code}", json=body, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_lowering_the_limit_halves_capacity_and_evicts_no_one(
    client, create_user, create_dwelling, arrive
):
    admin = create_user("admin")
    created = client.post(
        "/api/v1/areas",
        json={
            "code": "HZ",
            "name": "Hangzhou",
            "policy": {
                "min_area_per_person_m2": 5,
                "area_basis": "usable",
                "max_persons_per_room": 2,
            },
        },
        headers=admin["headers"],
    )
    assert created.status_code == 201, created.json
    made = client.post(
        "/api/v1/dwellings",
        json={"area_code": "HZ", "address": "1 Lake Road", "usable_area_m2": 20, "rooms": 2},
        headers=admin["headers"],
    )
    assert made.status_code == 201, made.json
    dwelling_id = made.json["id"]
    assert made.json["capacity"] == 4
    assert made.json["limits"]["area_limit"] == 4
    assert made.json["limits"]["room_limit"] == 4
    for _ in range(4):
        assert arrive(admin["headers"], dwelling_id).status_code == 201

    patched = _patch_area(client, admin["headers"], "HZ", policy={"min_area_per_person_m2": 10})
    assert patched["effective_policy"]["min_area_per_person_m2"] == 10
    dwelling = client.get(f"/api/v1/dwellings/{dwelling_id}", headers=admin["headers"]).json
    assert dwelling["capacity"] == 2
    assert dwelling["occupants"] == 4
    assert dwelling["over_capacity"] is True
    residents = client.get(f"/api/v1/dwellings/{dwelling_id}/residents", headers=admin["headers"])
    assert len(residents.json) == 4
    assert all(r["current"] for r in residents.json)
    assert arrive(admin["headers"], dwelling_id).json["error"] == "dwelling_full"

    # The other measure is used when the basis's own is missing.
    _patch_area(client, admin["headers"], "HZ", policy={"area_basis": "building"})
    dwelling = client.get(f"/api/v1/dwellings/{dwelling_id}", headers=admin["headers"]).json
    assert dwelling["limits"]["basis"] == "building"
    assert dwelling["limits"]["area_used_m2"] == "20.00"
    assert dwelling["capacity"] == 2


def test_capacity_measures_on_the_policys_basis(client, create_area, create_dwelling, create_user):
    create_area("NB", min_area_per_person_m2=10, area_basis="building", max_persons_per_room=3)
    admin = create_user("admin")
    dwelling_id = create_dwelling("NB", usable=30, building=45, rooms=4)
    view = client.get(f"/api/v1/dwellings/{dwelling_id}", headers=admin["headers"]).json
    # floor(45 / 10) = 4 on building area; rooms allow 12.
    assert (view["capacity"], view["limits"]["area_limit"], view["limits"]["room_limit"]) == (
        4,
        4,
        12,
    )
    narrow = create_dwelling("NB", usable=None, building=9.99, rooms=1)
    assert client.get(f"/api/v1/dwellings/{narrow}", headers=admin["headers"]).json["capacity"] == 0


def test_policy_is_inherited_per_field_down_a_four_level_tree(client, create_user):
    admin = create_user("admin")
    headers = admin["headers"]

    def post(code, parent, policy):
        body = {"code": code, "name": code, "policy": policy}
        if parent:
            body["parent_code"] = parent
        response = client.post("/api/v1/areas", json=body, headers=headers)
        assert response.status_code == 201, response.json
        return response.json

    post(
        "city",
        None,
        {
            "min_area_per_person_m2": 4,
            "area_basis": "usable",
            "max_persons_per_room": 3,
            "minors_count": False,
            "registration_deadline_days": 3,
        },
    )
    post("district", "city", {"area_basis": "building", "min_area_per_person_m2": 10})
    post("station", "district", {"max_persons_per_room": 1})
    community = post("community", "station", {})
    assert community["parent_code"] == "station"
    assert community["policy"] == {}

    effective = community["effective_policy"]
    assert effective["min_area_per_person_m2"] == 10
    assert effective["area_basis"] == "building"
    assert effective["max_persons_per_room"] == 1
    assert effective["minors_count"] is False
    assert effective["registration_deadline_days"] == 3
    assert effective["card_validity_days"] == 365
    assert effective["sources"] == {
        "min_area_per_person_m2": "district",
        "area_basis": "district",
        "max_persons_per_room": "station",
        "minors_count": "city",
        "family_exception": "default",
        "registration_deadline_days": "city",
        "card_return_grace_days": "default",
        "card_validity_days": "default",
        "retention_years": "default",
    }

    # The community overrides one field; its siblings up the tree are untouched.
    overridden = _patch_area(client, headers, "community", policy={"max_persons_per_room": 4})
    assert overridden["policy"] == {"max_persons_per_room": 4}
    assert overridden["effective_policy"]["max_persons_per_room"] == 4
    assert overridden["effective_policy"]["area_basis"] == "building"
    assert _area(client, headers, "station")["effective_policy"]["max_persons_per_room"] == 1

    # Null re-inherits: the station's override goes, the city's 3 shows through,
    # and the community still holds its own 4.
    station = _patch_area(client, headers, "station", policy={"max_persons_per_room": None})
    assert station["policy"] == {}
    assert station["effective_policy"]["max_persons_per_room"] == 3
    assert station["effective_policy"]["sources"]["max_persons_per_room"] == "city"
    assert _area(client, headers, "community")["effective_policy"]["max_persons_per_room"] == 4
    community = _patch_area(client, headers, "community", policy={"max_persons_per_room": None})
    assert community["effective_policy"]["max_persons_per_room"] == 3

    # A change up the tree reaches every level below at once.
    _patch_area(client, headers, "district", policy={"area_basis": None})
    assert _area(client, headers, "community")["effective_policy"]["area_basis"] == "usable"

    # A rename leaves the policy alone.
    renamed = _patch_area(client, headers, "station", name="Nanmen station")
    assert renamed["name"] == "Nanmen station"
    assert renamed["policy"] == {}


def test_a_root_area_with_a_partial_policy_gets_the_documented_defaults(client, create_user):
    admin = create_user("admin")
    response = client.post(
        "/api/v1/areas",
        json={"code": "SH", "name": "Shanghai", "policy": {"max_persons_per_room": 3}},
        headers=admin["headers"],
    )
    assert response.status_code == 201, response.json
    effective = response.json["effective_policy"]
    assert effective == {
        "min_area_per_person_m2": 5,
        "area_basis": "usable",
        "max_persons_per_room": 3,
        "minors_count": True,
        "family_exception": True,
        "registration_deadline_days": 3,
        "card_return_grace_days": 7,
        "card_validity_days": 365,
        "retention_years": 3,
        "sources": {
            "min_area_per_person_m2": "default",
            "area_basis": "default",
            "max_persons_per_room": "SH",
            "minors_count": "default",
            "family_exception": "default",
            "registration_deadline_days": "default",
            "card_return_grace_days": "default",
            "card_validity_days": "default",
            "retention_years": "default",
        },
    }
    bare = client.post(
        "/api/v1/areas", json={"code": "BJ", "name": "Beijing"}, headers=admin["headers"]
    )
    assert bare.status_code == 201
    assert bare.json["effective_policy"]["max_persons_per_room"] == 2


@pytest.mark.parametrize(
    "policy",
    [
        {"min_area_per_person_m2": 0},
        {"min_area_per_person_m2": -4},
        {"min_area_per_person_m2": "NaN"},
        {"min_area_per_person_m2": 1e400},
        {"area_basis": "floor"},
        {"max_persons_per_room": 0},
        {"max_persons_per_room": 1.5},
        {"max_persons_per_room": "2"},
        {"minors_count": "sometimes"},
        {"registration_deadline_days": -1},
        {"card_validity_days": 0},
        {"rooms_per_person": 2},
    ],
)
def test_invalid_policies_are_refused_field_by_field(client, create_user, create_area, policy):
    create_area("C1")
    admin = create_user("admin")
    created = client.post(
        "/api/v1/areas",
        json={"code": "X1", "name": "x", "policy": policy},
        headers=admin["headers"],
    )
    assert created.status_code == 422, created.json
    assert created.json["error"] == "validation_error"
    assert "policy" in created.json["errors"], created.json
    patched = client.patch("/api/v1/areas/C1", json={"policy": policy}, headers=admin["headers"])
    assert patched.status_code == 422, patched.json
    assert _area(client, admin["headers"], "C1")["policy"] == {}


def test_area_codes_and_parents_are_checked(client, create_user, create_area):
    create_area("C1")
    admin = create_user("admin")
    headers = admin["headers"]
    duplicate = client.post("/api/v1/areas", json={"code": "C1", "name": "again"}, headers=headers)
    assert duplicate.status_code == 409
    assert duplicate.json["error"] == "area_exists"
    orphan = client.post(
        "/api/v1/areas", json={"code": "C2", "name": "x", "parent_code": "nope"}, headers=headers
    )
    assert orphan.status_code == 422
    assert orphan.json["error"] == "unknown_parent"
    for code in ("", "a b", "x" * 33, "城市"):
        bad = client.post("/api/v1/areas", json={"code": code, "name": "x"}, headers=headers)
        assert bad.status_code == 422, (code, bad.json)
    assert (
        client.patch("/api/v1/areas/nope", json={"name": "x"}, headers=headers).status_code == 404
    )
