"""Slot layout: every torn write reads as old, blank or new, never garbage."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardreader import layout
from cardreader.layout import (
    IMAGE_SIZE,
    apply_writes,
    parse_image,
    plan_erase,
    plan_write,
    split_writes,
)

BLANK_IMAGES = [bytes(IMAGE_SIZE), b"\xff" * IMAGE_SIZE]
records = st.binary(min_size=1, max_size=layout.MAX_RECORD_SIZE)


def issue(image: bytes, record: bytes) -> bytes:
    return apply_writes(image, plan_write(image, record))


def test_blank_images_read_as_blank():
    for image in BLANK_IMAGES:
        assert parse_image(image) is None


def test_write_then_read_and_alternate_slots():
    image = issue(bytes(IMAGE_SIZE), b"first")
    assert parse_image(image) == b"first"
    assert layout.parse_marker(image).state == 0
    image = issue(image, b"second")
    assert parse_image(image) == b"second"
    assert layout.parse_marker(image).state == 1
    image = issue(image, b"third")
    assert layout.parse_marker(image).state == 0
    assert parse_image(image) == b"third"


def test_marker_is_written_last_in_one_unit():
    plan = plan_write(bytes(IMAGE_SIZE), b"x" * 113)
    offset, data = plan[-1]
    assert offset == layout.MARKER_OFFSET
    assert len(data) == layout.UNIT
    assert all(len(d) % layout.UNIT == 0 and o % layout.UNIT == 0 for o, d in plan)


def test_erase_leaves_no_record_bytes():
    image = issue(issue(bytes(IMAGE_SIZE), b"old record"), b"new record")
    erased = apply_writes(image, plan_erase(image))
    assert parse_image(erased) is None
    assert b"record" not in erased
    assert parse_image(issue(erased, b"again")) == b"again"


def test_record_size_limits():
    with pytest.raises(ValueError, match="record"):
        plan_write(bytes(IMAGE_SIZE), b"")
    with pytest.raises(ValueError, match="record"):
        plan_write(bytes(IMAGE_SIZE), bytes(layout.MAX_RECORD_SIZE + 1))


def test_stale_slot_with_bad_crc_is_not_read():
    image = bytearray(issue(bytes(IMAGE_SIZE), b"hello"))
    image[layout.SLOT_OFFSETS[0] + layout.SLOT_HEADER_SIZE] ^= 1
    assert parse_image(bytes(image)) is None


def torn_states(image: bytes, plan, chunk: int):
    """Every image a tear can leave: after each whole piece, and inside one."""
    pieces = split_writes(plan, chunk)
    for step in range(len(pieces) + 1):
        done = apply_writes(image, pieces[:step])
        yield done
        if step < len(pieces):
            offset, data = pieces[step]
            # An EEPROM tear inside one APDU: a prefix is new, the rest old or garbage.
            for cut in range(1, len(data)):
                yield apply_writes(done, [(offset, data[:cut])])
                yield apply_writes(done, [(offset, data[:cut] + b"\xa5" * (len(data) - cut))])


@settings(max_examples=40, deadline=None)
@given(
    history=st.lists(records, max_size=3),
    new=records,
    chunk=st.sampled_from([16, 64, 240]),
    start=st.sampled_from(BLANK_IMAGES),
)
def test_torn_write_yields_old_blank_or_new(history, new, chunk, start):
    image = start
    for old in history:
        image = issue(image, old)
    old = parse_image(image)
    for state in torn_states(image, plan_write(image, new), chunk):
        assert parse_image(state) in (old, None, new)
    assert parse_image(issue(image, new)) == new


@settings(max_examples=30, deadline=None)
@given(history=st.lists(records, min_size=1, max_size=3), chunk=st.sampled_from([16, 240]))
def test_torn_erase_yields_old_or_blank(history, chunk):
    image = bytes(IMAGE_SIZE)
    for record in history:
        image = issue(image, record)
    old = parse_image(image)
    for state in torn_states(image, plan_erase(image), chunk):
        assert parse_image(state) in (old, None)


@settings(max_examples=30, deadline=None)
@given(first=records, second=records, third=records, cut=st.integers(0, 40))
def test_retry_after_tear_succeeds(first, second, third, cut):
    image = issue(bytes(IMAGE_SIZE), first)
    pieces = split_writes(plan_write(image, second), 16)
    torn = apply_writes(image, pieces[: min(cut, len(pieces))])
    assert parse_image(issue(torn, third)) == third


@given(st.binary(min_size=IMAGE_SIZE, max_size=IMAGE_SIZE))
def test_parse_garbage_is_safe(image):
    result = parse_image(image)
    assert result is None or isinstance(result, bytes)
