"""Printed card numbers: ``"AJ"`` + 8 digits + 1 check character.

The check character is ISO/IEC 7064 MOD 37,36 (the hybrid system with an
alphanumeric check character: ``0-9`` then ``A-Z``) computed over the 8
digits only. It catches every single-character substitution and every
transposition of adjacent characters. Unlike MOD 37-2 it never yields ``*``,
which would be awkward on a printed card.
"""

from __future__ import annotations

import re

PREFIX = "AJ"
SERIAL_DIGITS = 8
MAX_SERIAL = 10**SERIAL_DIGITS - 1
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_MODULUS = 36
_CARD_NO = re.compile(r"AJ([0-9]{8})([0-9A-Z])")


def card_number_check_char(digits: str) -> str:
    """Return the ISO 7064 MOD 37,36 check character for the serial digits."""
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError("the check character is computed over ASCII digits only")
    product = _MODULUS
    for char in digits:
        total = (product + int(char)) % _MODULUS or _MODULUS
        product = (total * 2) % (_MODULUS + 1)
    return _ALPHABET[(_MODULUS + 1 - product) % _MODULUS]


def make_card_no(serial: int) -> str:
    """Format serial number ``serial`` (0..99 999 999) as a printed card number."""
    if not 0 <= serial <= MAX_SERIAL:
        raise ValueError(f"card serial out of range: {serial}")
    digits = f"{serial:0{SERIAL_DIGITS}d}"
    return f"{PREFIX}{digits}{card_number_check_char(digits)}"


def is_valid_card_no(s: object) -> bool:
    """True when ``s`` is a well-formed card number with a correct check character."""
    if not isinstance(s, str):
        return False
    match = _CARD_NO.fullmatch(s)
    return match is not None and card_number_check_char(match.group(1)) == match.group(2)
