"""Bad requests get the error shape and a stable code: never a 5xx, never half a write."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_helpers import assert_error_shape, today

from anjuka.core.db import db
from anjuka.core.security import digits_up_to


def _row_counts() -> dict[str, int]:
    """Rows per table as the request's session sees them (flushed but uncommitted included)."""
    return {
        table.name: db.session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        for table in db.metadata.sorted_tables
    }


@pytest.fixture
def setting(create_area, create_dwelling, create_user):
    create_area("C1")
    return {"dwelling": create_dwelling("C1"), "headers": create_user("admin")["headers"]}


def _arrival(dwelling_id: int, **person: object) -> dict:
    return {
        "dwelling_id": dwelling_id,
        "arrived_on": today().isoformat(),
        "person": {
            "document_type": "resident_id",
            "document_number": "11010519491231002X",
            "name": "张三",
            **person,
        },
    }


JSON = "application/json"

# (name, method, path, request keyword arguments, status, code or None)
BAD_REQUESTS = [
    ("unknown route", "GET", "/api/v1/nowhere", {}, 404, "not_found"),
    ("unknown dwelling", "GET", "/api/v1/dwellings/424242", {}, 404, "dwelling_not_found"),
    ("id beyond 32 bits", "GET", "/api/v1/dwellings/99999999999999999999", {}, 404, "not_found"),
    ("negative id", "GET", "/api/v1/dwellings/-1", {}, 404, "not_found"),
    ("NUL in a path", "GET", "/api/v1/areas/C%001", {}, 404, "not_found"),
    ("wrong method", "DELETE", "/api/v1/dwellings", {}, 405, "method_not_allowed"),
    ("wrong method on one", "PUT", "/api/v1/areas/C1", {}, 405, "method_not_allowed"),
    (
        "text body",
        "POST",
        "/api/v1/areas",
        {"data": "code=X", "content_type": "text/plain"},
        415,
        "unsupported_media_type",
    ),
    (
        "form body",
        "POST",
        "/api/v1/areas",
        {"data": {"code": "X", "name": "x"}},
        415,
        "unsupported_media_type",
    ),
    (
        "malformed JSON",
        "POST",
        "/api/v1/areas",
        {"data": '{"code": ', "content_type": JSON},
        400,
        "malformed_json",
    ),
    (
        "invalid UTF-8",
        "POST",
        "/api/v1/areas",
        {"data": b'{"code": "\xff\xfe", "name": "x"}', "content_type": JSON},
        400,
        "malformed_json",
    ),
    (
        "nested too deeply for the parser",
        "POST",
        "/api/v1/areas",
        {"data": "[" * 100_000 + "]" * 100_000, "content_type": JSON},
        400,
        "malformed_json",
    ),
    (
        "nested deeper than any body",
        "POST",
        "/api/v1/areas",
        {"data": '{"code": "X", "name": ' + "[" * 200 + "]" * 200 + "}", "content_type": JSON},
        400,
        "malformed_json",
    ),
    ("array body", "POST", "/api/v1/areas", {"json": [1, 2]}, 422, "validation_error"),
    ("string body", "POST", "/api/v1/areas", {"json": "C1"}, 422, "validation_error"),
    (
        "null body",
        "POST",
        "/api/v1/areas",
        {"data": "null", "content_type": JSON},
        422,
        "validation_error",
    ),
    (
        "empty JSON body",
        "POST",
        "/api/v1/areas",
        {"data": "", "content_type": JSON},
        422,
        "validation_error",
    ),
    ("missing fields", "POST", "/api/v1/areas", {"json": {}}, 422, "validation_error"),
    (
        "unknown field",
        "POST",
        "/api/v1/areas",
        {"json": {"code": "X", "name": "x", "colour": "red"}},
        422,
        "validation_error",
    ),
    (
        "rooms as words",
        "POST",
        "/api/v1/dwellings",
        {"json": {"area_code": "C1", "address": "a", "usable_area_m2": 9, "rooms": "two"}},
        422,
        "validation_error",
    ),
    (
        "rooms as a fraction",
        "POST",
        "/api/v1/dwellings",
        {"json": {"area_code": "C1", "address": "a", "usable_area_m2": 9, "rooms": 2.5}},
        422,
        "validation_error",
    ),
    (
        "rooms as a boolean",
        "POST",
        "/api/v1/dwellings",
        {"json": {"area_code": "C1", "address": "a", "usable_area_m2": 9, "rooms": True}},
        422,
        "validation_error",
    ),
    (
        "no area at all",
        "POST",
        "/api/v1/dwellings",
        {"json": {"area_code": "C1", "address": "a", "rooms": 1}},
        422,
        "validation_error",
    ),
    (
        "area beyond any float",
        "POST",
        "/api/v1/dwellings",
        {
            "data": '{"area_code": "C1", "address": "a", "usable_area_m2": 1e400, "rooms": 1}',
            "content_type": JSON,
        },
        422,
        "validation_error",
    ),
    (
        "area as NaN",
        "POST",
        "/api/v1/dwellings",
        {"json": {"area_code": "C1", "address": "a", "usable_area_m2": "NaN", "rooms": 1}},
        422,
        "validation_error",
    ),
    (
        "estate id beyond 32 bits",
        "POST",
        "/api/v1/dwellings",
        {
            "json": {
                "area_code": "C1",
                "estate_id": 2**40,
                "address": "a",
                "usable_area_m2": 9,
                "rooms": 1,
            }
        },
        422,
        "validation_error",
    ),
    (
        "address of 10,000 characters",
        "POST",
        "/api/v1/dwellings",
        {"json": {"area_code": "C1", "address": "路" * 10_000, "usable_area_m2": 9, "rooms": 1}},
        422,
        "validation_error",
    ),
    (
        "dwelling id beyond 64 bits",
        "POST",
        "/api/v1/residences",
        {"json": {**_arrival(1), "dwelling_id": 10**30}},
        422,
        "invalid_value",
    ),
    (
        "dwelling id as a string",
        "POST",
        "/api/v1/residences",
        {"json": {**_arrival(1), "dwelling_id": "1"}},
        422,
        "validation_error",
    ),
    (
        "person as a string",
        "POST",
        "/api/v1/residences",
        {"json": {**_arrival(1), "person": "张三"}},
        422,
        "validation_error",
    ),
    (
        "30 February",
        "POST",
        "/api/v1/residences",
        {"json": {**_arrival(1), "arrived_on": "2024-02-30"}},
        422,
        "validation_error",
    ),
    (
        "a date in words",
        "POST",
        "/api/v1/residences",
        {"json": {**_arrival(1), "arrived_on": "yesterday"}},
        422,
        "validation_error",
    ),
    (
        "move as a word",
        "POST",
        "/api/v1/residences",
        {"json": {**_arrival(1), "move": "perhaps"}},
        422,
        "validation_error",
    ),
    (
        "NUL in a name",
        "POST",
        "/api/v1/residences",
        {"json": _arrival(1, name="张\x00三")},
        422,
        "invalid_value",
    ),
    (
        "NUL in a key",
        "POST",
        "/api/v1/areas",
        {"json": {"code": "X", "name": "x", "po\x00licy": {}}},
        422,
        "invalid_value",
    ),
    (
        "lone surrogate",
        "POST",
        "/api/v1/areas",
        {"data": '{"code": "X", "name": "\\ud800"}', "content_type": JSON},
        422,
        "invalid_value",
    ),
    ("NUL in a query", "GET", "/api/v1/dwellings?address=%00", {}, 422, "invalid_value"),
    ("page zero", "GET", "/api/v1/dwellings?page=0", {}, 422, "validation_error"),
    ("page in words", "GET", "/api/v1/dwellings?page=first", {}, 422, "validation_error"),
    ("page beyond reach", "GET", f"/api/v1/dwellings?page={10**30}", {}, None, None),
    ("page size too big", "GET", "/api/v1/dwellings?page_size=100000", {}, 422, "validation_error"),
    ("estate beyond 32 bits", "GET", f"/api/v1/dwellings?estate_id={2**40}", {}, 422, None),
    ("audit actor beyond 64 bits", "GET", f"/api/v1/audit?actor_id={10**30}", {}, 422, None),
    ("audit since in words", "GET", "/api/v1/audit?since=monday", {}, 422, "validation_error"),
    ("unknown status filter", "GET", "/api/v1/dwellings?status=haunted", {}, 422, None),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_REQUESTS],
)
def test_bad_requests_get_a_stable_error(client, setting, method, path, kwargs, status, code):
    before = _row_counts()
    response = client.open(path, method=method, headers=setting["headers"], **kwargs)
    assert response.status_code < 500, response.get_data(as_text=True)
    if status is None:  # either an empty page or a refusal, as long as it is shaped
        if response.status_code == 200:
            assert response.json == []
        else:
            assert_error_shape(response, 422)
    else:
        assert_error_shape(response, status, code)
    if status == 405:
        assert response.headers["Allow"]
    if status == 422 and kwargs.get("json") is not None and code == "validation_error":
        assert response.json.get("errors"), response.json
    assert _row_counts() == before


def test_a_body_over_the_limit_is_refused_and_writes_nothing(app, client, setting):
    limit = app.config["MAX_CONTENT_LENGTH"]
    before = _row_counts()
    body = json.dumps(_arrival(setting["dwelling"], origin="村" * limit))
    assert len(body.encode()) > limit
    response = client.post(
        "/api/v1/residences", data=body, content_type=JSON, headers=setting["headers"]
    )
    assert_error_shape(response, 413, "payload_too_large")
    assert _row_counts() == before
    # Unauthenticated, the size does not matter: the caller is refused first.
    anonymous = client.post("/api/v1/residences", data=body, content_type=JSON)
    assert_error_shape(anonymous, 401)


def test_unicode_is_stored_and_returned_exactly(client, setting):
    name = "𠮷野家 Ōtsuka 🏠"
    made = client.post(
        "/api/v1/areas",
        json={"code": "U1", "name": name, "parent_code": "C1"},
        headers=setting["headers"],
    )
    assert made.status_code == 201, made.json
    assert client.get("/api/v1/areas/U1", headers=setting["headers"]).json["name"] == name
    dwelling = client.post(
        "/api/v1/dwellings",
        json={
            "area_code": "U1",
            "address": "宁波市海曙区南门街1号 🏢",
            "usable_area_m2": 12.5,
            "rooms": 1,
        },
        headers=setting["headers"],
    )
    assert dwelling.status_code == 201, dwelling.json
    arrival = client.post(
        "/api/v1/residences",
        json=_arrival(dwelling.json["id"], name="𠮷田 花子", origin="Ürümqi 乌鲁木齐"),
        headers=setting["headers"],
    )
    assert arrival.status_code == 201, arrival.json
    assert arrival.json["address"] == "宁波市海曙区南门街1号 🏢"
    person = client.get(
        f"/api/v1/persons/{arrival.json['person_id']}?reveal=true", headers=setting["headers"]
    ).json
    assert (person["name"], person["origin"]) == ("𠮷田 花子", "Ürümqi 乌鲁木齐")
    found = client.get("/api/v1/dwellings?address=南门街", headers=setting["headers"]).json
    assert [d["id"] for d in found] == [dwelling.json["id"]]


def test_refusals_late_in_an_arrival_leave_no_person_behind(
    client, setting, create_dwelling, new_id_number
):
    full = create_dwelling("C1", usable=1, rooms=1)  # capacity 0: area too small
    before = _row_counts()
    refused = client.post(
        "/api/v1/residences",
        json={
            **_arrival(full),
            "person": {**_arrival(full)["person"], "document_number": new_id_number()},
        },
        headers=setting["headers"],
    )
    assert_error_shape(refused, 409, "dwelling_full")
    assert _row_counts() == before


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
_arrival_like = st.fixed_dictionaries(
    {},
    optional={
        "dwelling_id": _json_values | st.integers(),
        "arrived_on": _json_values | st.dates().map(str),
        "move": _json_values,
        "override_reason": _json_values,
        "family_relation": _json_values | st.sampled_from(["spouse", "child"]),
        "family_of_residence_id": _json_values,
        "person": st.fixed_dictionaries(
            {},
            optional={
                "document_type": _json_values | st.sampled_from(["resident_id", "passport"]),
                "document_number": _json_values | st.text(alphabet="0123456789Xx", max_size=19),
                "name": _json_values,
                "phone": _json_values,
                "birth_date": _json_values | st.dates().map(str),
                "sex": _json_values | st.sampled_from(["F", "M"]),
            },
        )
        | _json_values,
    },
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_arrival_like)
def test_no_arrival_body_causes_a_server_error(client, setting, body):
    response = client.post("/api/v1/residences", json=body, headers=setting["headers"])
    assert response.status_code < 500, (body, response.get_data(as_text=True))
    if response.status_code >= 400:
        assert_error_shape(response, response.status_code)


@pytest.mark.parametrize("method", ["GET", "PATCH", "POST", "DELETE"])
@pytest.mark.parametrize("user_id", [2**31, 3406973372745069])
def test_an_id_beyond_32_bits_matches_no_route_in_any_method(client, setting, method, user_id):
    """Not 405 for the route's other methods: the bound is in the route's pattern."""
    response = client.open(f"/api/v1/users/{user_id}", method=method, headers=setting["headers"])
    assert_error_shape(response, 404, "not_found")


@given(limit=st.integers(0, 2**40), number=st.integers(0, 2**41))
def test_the_id_pattern_matches_exactly_the_numbers_up_to_its_limit(limit, number):
    pattern = re.compile(digits_up_to(limit))
    assert bool(pattern.fullmatch(str(number))) is (number <= limit)
    assert pattern.fullmatch(str(limit))
