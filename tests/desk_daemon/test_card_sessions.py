"""Each card session against the in-memory simulated card."""

import pytest
from cardreader_testkit import CPU_KEYS, JOB_KEYS, MIFARE_KEYS, SIGNING_KEY, make_record, new_sim

from cardreader import layout
from cardreader.protocol import card, errors
from cardreader.protocol.cpu import CpuSession, internal_auth_response
from cardreader.protocol.keys import parse_keys
from cardreader.protocol.mifare import KEY_A, KEY_B, MifareSession, access_bytes
from cardreader.protocol.profiles import MIFARE_PROFILE, CpuProfile
from cardreader.record import BadSignatureError, verify_record
from cardreader.sim.cpu import SimCpuCard
from cardreader.sim.mifare import SimMifareCard
from cardreader.transport.base import CardRemovedError
from cardreader.transport.memory import MemoryReader

PUBLIC = {7: SIGNING_KEY.public_key()}


def connect(reader: MemoryReader):
    connection = reader.wait_for_card(1)
    assert connection is not None
    return connection


def test_detect_and_uid(memory_card, card_type):
    reader, sim = memory_card
    connection = connect(reader)
    assert card.detect(connection) == card_type
    assert card.read_uid(connection) == sim.uid


def test_issue_read_back_verify_reissue_erase(memory_card, card_type):
    reader, sim = memory_card
    connection = connect(reader)
    uid = card.read_uid(connection)
    assert card.read_record(connection) is None
    first = make_record(uid)
    assert card.write_record(connection, JOB_KEYS[card_type], first) == first
    connection = connect(reader)
    assert verify_record(card.read_record(connection), uid, PUBLIC).residence_id == 42
    second = make_record(uid, residence_id=43)
    card.write_record(connection, JOB_KEYS[card_type], second)
    assert card.read_record(connect(reader)) == second
    card.erase(connect(reader), JOB_KEYS[card_type])
    assert card.read_record(connect(reader)) is None
    # A returned card can be issued again, with the per-card keys it keeps.
    card.write_record(connect(reader), JOB_KEYS[card_type], first)
    assert card.read_record(connect(reader)) == first


def test_writing_the_same_record_again_writes_nothing(memory_card, card_type):
    reader, _sim = memory_card
    connection = connect(reader)
    record = make_record(card.read_uid(connection))
    card.write_record(connection, JOB_KEYS[card_type], record)
    before = reader.apdu_count
    card.write_record(connect(reader), JOB_KEYS[card_type], record)
    spent = reader.apdu_count - before
    assert spent <= 15  # reads only
    assert card.read_record(connect(reader)) == record


def test_wrong_keys_cannot_write_a_personalised_card(memory_card, card_type):
    reader, _sim = memory_card
    connection = connect(reader)
    uid = card.read_uid(connection)
    card.write_record(connection, JOB_KEYS[card_type], make_record(uid))
    wrong = dict(JOB_KEYS[card_type])
    wrong["write_key" if card_type == "cpu" else "key_b"] = "00" * (16 if card_type == "cpu" else 6)
    with pytest.raises(errors.AuthenticationError):
        card.write_record(connect(reader), wrong, make_record(uid, residence_id=99))
    assert card.read_record(connect(reader)) == make_record(uid)


def test_torn_issue_at_every_apdu_then_retry(memory_card, card_type):
    """Tear a first issuance and a re-issuance at every APDU: old or blank, then retry works."""
    reader, sim = memory_card
    keys = JOB_KEYS[card_type]
    uid = sim.uid
    for old in (None, make_record(uid, residence_id=1)):
        if old is not None:
            card.write_record(connect(reader), keys, old)
        state = sim.to_state()
        new = make_record(uid, residence_id=2)
        index = 0
        while True:
            fresh = type(sim).from_state(state)
            reader.insert(fresh)
            reader.tear_after(index)
            try:
                card.write_record(connect(reader), keys, new)
                break  # the issuance needs fewer APDUs than index: done
            except CardRemovedError:
                pass
            reader.insert(fresh)
            found = card.read_record(connect(reader))
            assert found in (old, None, new), index
            if found is not None:
                verify_record(found, uid, PUBLIC)
            assert card.write_record(connect(reader), keys, new) == new
            index += 1
        reader.tear_after(None)
        assert index > 10
        sim = fresh


def test_cpu_internal_authenticate_proves_the_per_card_key():
    sim = SimCpuCard()
    reader = MemoryReader(card=sim)
    connection = connect(reader)
    card.write_record(connection, CPU_KEYS, make_record(sim.uid))
    challenge = bytes(range(8))
    response = card.internal_authenticate(connect(reader), challenge)
    assert response == internal_auth_response(bytes.fromhex(CPU_KEYS["internal_key"]), challenge)
    assert response != internal_auth_response(b"\xff" * 16, challenge)


def test_internal_authenticate_is_cpu_only():
    reader = MemoryReader(card=SimMifareCard())
    with pytest.raises(errors.UnsupportedCardError):
        card.internal_authenticate(connect(reader), bytes(8))


def test_cpu_update_needs_external_authenticate():
    reader = MemoryReader(card=SimCpuCard())
    session = CpuSession(connect(reader))
    session.open()
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        session.update_binary(0, b"x" * 16)
    with pytest.raises(errors.AuthenticationError) as caught:
        session.external_authenticate(b"\x00" * 16)
    assert caught.value.tries_left == 4


def test_cpu_retry_counter_blocks_and_success_resets():
    sim = SimCpuCard()
    session = CpuSession(connect(MemoryReader(card=sim)))
    session.open()
    for left in (4, 3):
        with pytest.raises(errors.AuthenticationError) as caught:
            session.external_authenticate(b"\x01" * 16)
        assert caught.value.tries_left == left
    session.external_authenticate(b"\xff" * 16)
    assert sim.tries[1] == 5
    for _ in range(5):
        with pytest.raises(errors.AuthenticationError):
            session.external_authenticate(b"\x01" * 16)
    with pytest.raises(errors.AuthenticationBlocked):
        session.external_authenticate(b"\xff" * 16)


def test_cpu_blocked_card_is_reported_not_retried_with_transport_key():
    sim = SimCpuCard()
    sim.tries[1] = 0
    reader = MemoryReader(card=sim)
    with pytest.raises(errors.AuthenticationBlocked):
        card.write_record(connect(reader), CPU_KEYS, make_record(sim.uid))


def test_cpu_torn_personalisation_is_finished_by_the_retry():
    sim = SimCpuCard()
    reader = MemoryReader(card=sim)
    # SELECT(2) SELECT EF, READ marker, GET CHALLENGE + EXT AUTH twice, then WRITE KEY x2.
    reader.tear_after(9)
    with pytest.raises(Exception, match="removed"):
        card.write_record(connect(reader), CPU_KEYS, make_record(sim.uid))
    reader.insert(sim)
    assert sim.keys[2] == bytes.fromhex(CPU_KEYS["internal_key"])
    assert sim.keys[1] == b"\xff" * 16
    card.write_record(connect(reader), CPU_KEYS, make_record(sim.uid))
    assert sim.keys[1] == bytes.fromhex(CPU_KEYS["write_key"])


def test_cpu_not_an_anju_card():
    sim = SimCpuCard()
    reader = MemoryReader(card=sim)
    session = CpuSession(connect(reader), profile=CpuProfile(aid=b"\xa0" * 7))
    with pytest.raises(errors.UnsupportedCardError):
        session.select_application()


def test_mifare_access_bits_encoding_matches_nxp_example():
    # The well-known "data: read A|B, write B; trailer: B" configuration.
    assert access_bytes([(1, 0, 0)] * 3 + [(0, 1, 1)]) == bytes.fromhex("787788")
    assert access_bytes([(0, 0, 0)] * 3 + [(0, 0, 1)]) == bytes.fromhex("FF0780")


def test_mifare_personalised_card_reads_with_public_key_only():
    sim = SimMifareCard()
    reader = MemoryReader(card=sim)
    card.write_record(connect(reader), MIFARE_KEYS, make_record(sim.uid))
    session = MifareSession(connect(reader))
    # No job keys: the public key A must open every sector.
    assert session.read_current(None) == make_record(sim.uid)
    for sector in range(11):
        trailer = sim.memory[(sector * 4 + 3) * 16 : (sector * 4 + 4) * 16]
        assert trailer[:6] == b"ANJUKA"
        assert trailer[6:9] == bytes.fromhex("787788")
        assert trailer[10:16] == bytes.fromhex(MIFARE_KEYS["key_b"])
    # Sectors outside the image stay in transport configuration.
    assert sim.memory[(11 * 4 + 3) * 16 + 6 : (11 * 4 + 3) * 16 + 9] == bytes.fromhex("FF0780")


def test_mifare_key_a_cannot_write_and_trailer_keys_do_not_read_back():
    sim = SimMifareCard()
    reader = MemoryReader(card=sim)
    card.write_record(connect(reader), MIFARE_KEYS, make_record(sim.uid))
    session = MifareSession(connect(reader))
    session.authenticate(4, KEY_A, b"ANJUKA")
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        session.update_block(4, bytes(16))
    trailer = session.read_block(7)
    assert trailer[:6] == bytes(6)  # key A never reads
    assert trailer[10:16] == bytes(6)  # key B not readable in this configuration
    assert trailer[6:9] == bytes.fromhex("787788")
    session.authenticate(4, KEY_B, bytes.fromhex(MIFARE_KEYS["key_b"]))
    session.update_block(5, bytes(16))
    with pytest.raises(errors.AuthenticationError):
        session.authenticate(8, KEY_B, b"\x00" * 6)
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        session.read_block(8)  # a failed authentication leaves no session


def test_mifare_torn_personalisation_is_finished_by_the_retry():
    sim = SimMifareCard()
    reader = MemoryReader(card=sim)
    reader.tear_after(16)
    with pytest.raises(Exception, match="removed"):
        card.write_record(connect(reader), MIFARE_KEYS, make_record(sim.uid))
    reader.insert(sim)
    trailers = [sim.memory[(s * 4 + 3) * 16 + 6 : (s * 4 + 3) * 16 + 9].hex() for s in range(11)]
    assert "787788" in trailers
    assert "ff0780" in trailers
    card.write_record(connect(reader), MIFARE_KEYS, make_record(sim.uid))
    trailers = [sim.memory[(s * 4 + 3) * 16 + 6 : (s * 4 + 3) * 16 + 9].hex() for s in range(11)]
    assert set(trailers) == {"787788"}


def test_clone_with_copied_memory_fails_verification(card_type):
    original = new_sim(card_type)
    reader = MemoryReader(card=original)
    card.write_record(connect(reader), JOB_KEYS[card_type], make_record(original.uid))
    clone = new_sim(card_type)
    clone.load_memory(original.to_state())
    reader.insert(clone)
    connection = connect(reader)
    data = card.read_record(connection)
    assert data == make_record(original.uid)
    with pytest.raises(BadSignatureError):
        verify_record(data, card.read_uid(connection), PUBLIC)


def test_parse_keys_rejects_bad_sizes():
    with pytest.raises(ValueError, match="16 bytes"):
        parse_keys("cpu", {**CPU_KEYS, "write_key": "00"})
    with pytest.raises(ValueError, match="missing"):
        parse_keys("mifare1k", {"key_a": "00" * 6})
    with pytest.raises(ValueError, match="card type"):
        parse_keys("ultralight", {})
    assert "hidden" in repr(parse_keys("cpu", CPU_KEYS))


def test_layout_image_fits_both_cards():
    assert SimCpuCard().ef.__len__() == layout.IMAGE_SIZE
    assert len(MIFARE_PROFILE.image_blocks()) * 16 == layout.IMAGE_SIZE


def test_a_mifare_card_is_not_read_with_cpu_card_keys():
    connection = connect(MemoryReader(card=SimMifareCard()))
    with pytest.raises(ValueError, match="MIFARE keys"):
        card.read_record(connection, "mifare1k", parse_keys("cpu", CPU_KEYS))
