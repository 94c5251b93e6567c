"""Fixtures for the card reader tests: simulated cards in memory, and the
PC/SC harness (pcscd + vpcd + ``anjuka-cardsim`` subprocesses).

A ``pcsc`` test that cannot reach pcscd fails: it never skips.
"""

from __future__ import annotations

import pytest
from cardreader_testkit import new_sim

# The PC/SC harness lives in tests/pcsc_fixtures.py, shared with tests/integration;
# importing the fixtures here is what makes pytest find them for these tests.
from pcsc_fixtures import READERS, SimProcess, cardsim, pcscd, wait_reader  # noqa: F401

from cardreader.sim.cpu import SimCpuCard
from cardreader.sim.mifare import SimMifareCard
from cardreader.transport.memory import MemoryReader


@pytest.fixture(params=["cpu", "mifare1k"])
def card_type(request: pytest.FixtureRequest) -> str:
    """Both card types."""
    return str(request.param)


@pytest.fixture
def memory_card(card_type: str) -> tuple[MemoryReader, SimCpuCard | SimMifareCard]:
    """A memory reader holding a blank simulated card of each type."""
    sim = new_sim(card_type)
    return MemoryReader(card=sim), sim
