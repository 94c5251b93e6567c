"""Printed card numbers and their ISO 7064 MOD 37,36 check character."""

import pytest

from cardreader.cardno import card_number_check_char, is_valid_card_no, make_card_no


def test_known_values():
    # Worked by hand in docs/card-format.md.
    assert card_number_check_char("00000012") == "Q"
    assert make_card_no(12) == "AJ00000012Q"
    assert make_card_no(0) == "AJ00000000" + card_number_check_char("00000000")


def test_validation():
    assert is_valid_card_no("AJ00000012Q")
    assert not is_valid_card_no("AJ00000012K")
    assert not is_valid_card_no("aj00000012Q")
    assert not is_valid_card_no("AJ0000012Q")
    assert not is_valid_card_no(None)
    assert not is_valid_card_no("AJ00000012Q ")


@pytest.mark.parametrize("serial", [1, 12, 4711, 99999999, 31415926])
def test_single_substitution_and_adjacent_transposition_detected(serial):
    card_no = make_card_no(serial)
    digits = card_no[2:10]
    for i in range(8):
        for d in "0123456789":
            if d != digits[i]:
                changed = digits[:i] + d + digits[i + 1 :]
                assert not is_valid_card_no("AJ" + changed + card_no[10])
        if i < 7 and digits[i] != digits[i + 1]:
            swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
            assert not is_valid_card_no("AJ" + swapped + card_no[10])


def test_range_and_input_errors():
    with pytest.raises(ValueError, match="out of range"):
        make_card_no(-1)
    with pytest.raises(ValueError, match="out of range"):
        make_card_no(10**8)
    with pytest.raises(ValueError, match="digits"):
        card_number_check_char("12a4")
    with pytest.raises(ValueError, match="digits"):
        card_number_check_char("")
