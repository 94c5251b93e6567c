"""Fixtures for the verification tests."""

from __future__ import annotations

import pytest
from cardkit import make_desk


@pytest.fixture
def card_desk(client):  # type: ignore[no-untyped-def]
    """Factory: ``card_desk(desk_headers, area_code)`` -> a CardDesk with its own reader."""

    def make(desk_headers: dict, area_code: str):  # type: ignore[no-untyped-def]
        return make_desk(client, desk_headers, area_code)

    return make
