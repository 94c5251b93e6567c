"""Whatever a client sends to the patrol and alert endpoints, never a 500 and never half a write."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anjuka.core.db import db
from anjuka.verifications.models import Inspection

FIELDS = [
    "card_no",
    "uid",
    "record",
    "challenge_id",
    "response",
    "document_type",
    "document_number",
    "dwelling_id",
    "observed_headcount",
    "latitude",
    "longitude",
    "offline",
    "checked_at",
    "client_id",
    "offline_result",
]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["AJ00000012Q", "04a1b2c3", "", "00" * 113, "2026-11-29T08:00:00+08:00"]),
    st.lists(st.integers(), max_size=3),
)
BODIES = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def officer(create_area, create_user):
    create_area("R")
    return create_user("officer", ["area:R"])


@pytest.fixture
def admin(create_user):
    return create_user("admin")


@FUZZ
@given(body=BODIES)
def test_verification_bodies(client, officer, body):
    before = db.session.scalar(sa.select(sa.func.count()).select_from(Inspection))
    response = client.post("/api/v1/verifications", json=body, headers=officer["headers"])
    assert response.status_code < 500, (body, response.json)
    assert set(response.json) >= ({"result"} if response.status_code < 300 else {"error"})
    after = db.session.scalar(sa.select(sa.func.count()).select_from(Inspection))
    assert after == before + (1 if response.status_code == 201 else 0)


@FUZZ
@given(
    query=st.dictionaries(
        st.sampled_from(["status", "kind", "area_code", "since", "until", "subject_id", "page"]),
        st.text(max_size=30),
        max_size=4,
    )
)
def test_alert_queries(client, officer, query):
    response = client.get("/api/v1/alerts", query_string=query, headers=officer["headers"])
    assert response.status_code in (200, 404, 422), (query, response.json)


@FUZZ
@given(since=st.text(max_size=40))
def test_bundle_cursors(client, officer, since):
    response = client.get(
        "/api/v1/offline-bundle", query_string={"since": since}, headers=officer["headers"]
    )
    assert response.status_code in (200, 422), (since, response.get_data(as_text=True))


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(["area_code", "url", "kinds"]),
        st.one_of(
            VALUES,
            st.sampled_from(["R", "http://127.0.0.1:9/hook"]),
            st.lists(st.sampled_from(["over_occupancy", "nonsense", ""]), max_size=3),
        ),
        max_size=3,
    )
)
def test_webhook_bodies(client, admin, body):
    response = client.post("/api/v1/webhooks", json=body, headers=admin["headers"])
    assert response.status_code in (201, 404, 422), (body, response.json)
