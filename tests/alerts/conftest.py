"""Fixtures for the alert tests: a card desk from tests/verifications/cardkit.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load_cardkit():  # type: ignore[no-untyped-def]
    name = "anjuka_tests_cardkit"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "verifications" / "cardkit.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


cardkit = _load_cardkit()


@pytest.fixture
def card_desk(client):  # type: ignore[no-untyped-def]
    """Factory: ``card_desk(desk_headers, area_code)`` -> a CardDesk with its own reader."""

    def make(desk_headers: dict, area_code: str):  # type: ignore[no-untyped-def]
        return cardkit.make_desk(client, desk_headers, area_code)

    return make
