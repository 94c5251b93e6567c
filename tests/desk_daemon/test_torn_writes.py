"""Tears inside a write: EEPROM keeps the bytes written before the tear and the old rest.

The simulators store a prefix of a torn UPDATE BINARY (``arm_tear``), as a
chip leaving the field mid-write does. Whatever the tear point, a card reads
as its old record or as blank, never as a half record and never as the new
one before the marker is whole; the same card then takes the write.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest
from cardreader_testkit import JOB_KEYS, make_record, new_sim

from cardreader.protocol import card, errors
from cardreader.sim.base import CardTorn
from cardreader.sim.cpu import SimCpuCard
from cardreader.sim.mifare import SimMifareCard
from cardreader.transport.base import CardRemovedError
from cardreader.transport.memory import MemoryReader


@dataclass(frozen=True)
class Write:
    """One UPDATE BINARY of a card operation: where, how long, whether a sector trailer."""

    index: int
    where: int
    length: int
    trailer: bool
    #: How many APDUs of the operation came before it.
    apdu: int


def writes_of(sim: SimCpuCard | SimMifareCard, operation) -> list[Write]:  # type: ignore[no-untyped-def]
    """Run ``operation(connection)`` on a copy of ``sim`` and list its UPDATE BINARY commands."""
    copy = type(sim).from_state(sim.to_state())
    seen: list[Write] = []
    real = copy.process_apdu
    count = [0]

    def watch(apdu: bytes) -> bytes:
        if apdu[1] == 0xD6:
            where = apdu[2] << 8 | apdu[3]
            trailer = isinstance(copy, SimMifareCard) and where % 4 == 3
            seen.append(Write(len(seen), where, apdu[4], trailer, count[0]))
        count[0] += 1
        return real(apdu)

    copy.process_apdu = watch  # type: ignore[method-assign]
    operation(MemoryReader(card=copy).wait_for_card(1))
    return seen


def torn_copy(state: dict, card_type: str, write: Write, keep: int):  # type: ignore[no-untyped-def]
    sim = (SimCpuCard if card_type == "cpu" else SimMifareCard).from_state(state)
    sim.arm_tear(keep, writes=write.index)
    return sim


def connect(sim) -> object:  # type: ignore[no-untyped-def]
    return MemoryReader(card=sim).wait_for_card(1)


def marker_bytes(sim: SimCpuCard | SimMifareCard) -> bytes:
    """Image offset 0: the CPU card's EF offset 0, or MIFARE block 1."""
    return bytes(sim.ef[:16]) if isinstance(sim, SimCpuCard) else bytes(sim.memory[16:32])


@pytest.mark.parametrize("before", ["blank", "issued"])
def test_a_tear_inside_any_data_write_reads_old_or_blank_and_the_card_takes_the_retry(
    card_type, before
):
    keys = JOB_KEYS[card_type]
    sim = new_sim(card_type)
    old = None
    if before == "issued":
        old = make_record(sim.uid, residence_id=1)
        card.write_record(connect(sim), keys, old)
    new = make_record(sim.uid, residence_id=2)
    state = sim.to_state()
    data_writes = [
        w for w in writes_of(sim, lambda c: card.write_record(c, keys, new)) if not w.trailer
    ]
    # The slot, then the marker last.
    marker = data_writes[-1]
    assert (marker.where, marker.length) == (0 if card_type == "cpu" else 1, 16)
    old_marker = marker_bytes(sim)
    tears = 0
    for write in data_writes:
        for keep in range(write.length):
            torn = torn_copy(state, card_type, write, keep)
            with pytest.raises(CardRemovedError):
                card.write_record(connect(torn), keys, new)
            assert torn.writes == write.index + 1
            found = card.read_record(connect(torn))
            assert found in (old, None), (write, keep)
            if write is marker:
                # A torn marker is the old one only while the bytes kept are those it
                # had (the magic); anything else fails its CRC and reads as blank.
                unchanged = marker_bytes(torn) == old_marker
                assert found == (old if unchanged else None), (keep, found)
            assert card.write_record(connect(torn), keys, new) == new
            assert card.read_record(connect(torn)) == new
            tears += 1
    assert tears == sum(w.length for w in data_writes) >= 160


def test_a_tear_inside_an_erase_reads_old_or_blank_and_the_erase_completes(card_type):
    keys = JOB_KEYS[card_type]
    sim = new_sim(card_type)
    old = make_record(sim.uid)
    card.write_record(connect(sim), keys, old)
    state = sim.to_state()
    erase_writes = writes_of(sim, lambda c: card.erase(c, keys))
    assert erase_writes[0].where == (0 if card_type == "cpu" else 1)  # the marker first
    old_marker = marker_bytes(sim)
    for write in erase_writes:
        for keep in range(write.length):
            torn = torn_copy(state, card_type, write, keep)
            with pytest.raises(CardRemovedError):
                card.erase(connect(torn), keys)
            found = card.read_record(connect(torn))
            assert found in (old, None), (write, keep)
            if write.index > 0:
                assert found is None  # the marker says erased
            else:
                assert found == (old if marker_bytes(torn) == old_marker else None)
            card.erase(connect(torn), keys)
            assert card.read_record(connect(torn)) is None


def test_a_torn_mifare_trailer_never_reads_valid():
    """A sector trailer torn mid-write can lose the sector, as on a real chip; never valid.

    Torn after key A and the access bits but before key B, the sector still
    opens with the old key B, and personalisation finishes it.
    """
    keys = JOB_KEYS["mifare1k"]
    sim = new_sim("mifare1k")
    record = make_record(sim.uid)
    state = sim.to_state()
    trailers = [
        w for w in writes_of(sim, lambda c: card.write_record(c, keys, record)) if w.trailer
    ]
    assert len(trailers) == 11
    outcomes: dict[int, set[str]] = {}
    for write in (trailers[0], trailers[5], trailers[-1]):
        for keep in range(16):
            torn = torn_copy(state, "mifare1k", write, keep)
            with pytest.raises(CardRemovedError):
                card.write_record(connect(torn), keys, record)
            with contextlib.suppress(errors.CardError):  # sector 0 lost: no read at all
                assert card.read_record(connect(torn)) is None
            try:
                written = card.write_record(connect(torn), keys, record)
            except errors.CardError:
                outcomes.setdefault(keep, set()).add("lost")
                with contextlib.suppress(errors.CardError):
                    assert card.read_record(connect(torn)) is None
                continue
            assert written == record == card.read_record(connect(torn))
            outcomes.setdefault(keep, set()).add("retried")
    assert {k for k, seen in outcomes.items() if seen == {"retried"}} == {0, 9, 10}
    assert all(seen == {"lost"} for k, seen in outcomes.items() if k not in (0, 9, 10))


def test_an_armed_tear_counts_writes_and_disarms():
    sim = SimCpuCard()
    keys = JOB_KEYS["cpu"]
    sim.arm_tear(3, writes=1)
    assert sim.tear_armed
    with pytest.raises(CardTorn):
        card.write_record(connect(sim), keys, make_record(sim.uid))
    assert not sim.tear_armed
    assert sim.ef[:16] == b"AJC" + bytes(13)
    sim.arm_tear(5)
    sim.arm_tear(None)
    card.write_record(connect(sim), keys, make_record(sim.uid))
    with pytest.raises(ValueError, match=">= 0"):
        sim.arm_tear(-1)


def test_the_memory_reader_tears_inside_the_apdu_it_cuts(card_type):
    """``tear_after(n, keep)``: the (n+1)th APDU runs as a torn write and the card leaves."""
    keys = JOB_KEYS[card_type]
    sim = new_sim(card_type)
    record = make_record(sim.uid)
    marker = writes_of(sim, lambda c: card.write_record(c, keys, record))[-1]
    assert marker.where == (0 if card_type == "cpu" else 1)
    reader = MemoryReader(card=sim)
    reader.tear_after(marker.apdu, keep=4)
    with pytest.raises(CardRemovedError):
        card.write_record(reader.wait_for_card(1), keys, record)
    assert reader.card is None
    # Image offset 0 is the CPU card's EF offset 0, or MIFARE block 1.
    image_marker = bytes(sim.ef[:16]) if card_type == "cpu" else bytes(sim.memory[16:32])
    assert image_marker == b"AJCM" + bytes(12)
    reader.insert(sim)
    assert card.read_record(reader.wait_for_card(1)) is None
