"""Personal data at rest: authenticated encryption and keyed blind indexes.

Ciphertexts are ``key_id || 0x01 || nonce(12) || AES-GCM(ciphertext+tag)``
with the purpose (the column) and the row's binding as associated data, so a
value moved to another column or another row no longer decrypts. Values
written before rows were bound (``key_id || 0x00 || ...``, the purpose
alone as associated data) still decrypt until ``anjuka keys reencrypt``
rewrites them. Blind indexes are HMAC-SHA256 under a separate key, prefixed
with the key id so that a rotation can re-index row by row.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from anjuka.core.errors import AppError
from anjuka.core.keys import keyring

log = logging.getLogger(__name__)


_UNBOUND = b"\x00"  # before rows were bound: the purpose alone is associated data
_BOUND = b"\x01"


class RecordTampered(AppError):
    """A stored value failed its integrity check (moved, swapped or altered)."""

    status = 500
    code = "record_tampered"


@functools.lru_cache(maxsize=64)
def _aead(key: bytes) -> AESGCM:
    """The cipher for ``key``, made once per key (keyed by the key's bytes, so rotation-safe)."""
    return AESGCM(key)


@functools.lru_cache(maxsize=64)
def _mac_base(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 with ``key`` and no message yet, copied for every index."""
    return hmac.new(key, digestmod=hashlib.sha256)


def _associated(purpose: str, binding: str) -> bytes:
    return f"{purpose}\x00{binding}".encode()


def _split(ciphertext: bytes) -> tuple[str, bytes, bytes]:
    """(key id, format marker, nonce and sealed bytes): the key id ends at the first marker."""
    data = bytes(ciphertext)
    for at, byte in enumerate(data[:65]):
        if byte in (_BOUND[0], _UNBOUND[0]):
            if at == 0 or not data[:at].isascii():
                break
            return data[:at].decode(), data[at : at + 1], data[at + 1 :]
    raise RecordTampered("A stored value is not a ciphertext of this registry.")


def encrypt(plaintext: str, purpose: str, binding: str) -> bytes:
    """Encrypt ``plaintext`` under the active key, bound to ``purpose`` and its row."""
    key_id, keys = keyring().encryption
    nonce = os.urandom(12)
    sealed = _aead(keys[key_id]).encrypt(nonce, plaintext.encode(), _associated(purpose, binding))
    return key_id.encode() + _BOUND + nonce + sealed


def decrypt(ciphertext: bytes, purpose: str, binding: str) -> str:
    """Decrypt a value written by :func:`encrypt` under any key in the ring.

    Raises :class:`RecordTampered` when it was not written for this column
    and row (two rows' values swapped, or bytes altered).
    """
    key_id, marker, rest = _split(ciphertext)
    _, keys = keyring().encryption
    key = keys.get(key_id)
    associated = purpose.encode() if marker == _UNBOUND else _associated(purpose, binding)
    if key is None:
        raise RecordTampered(f"A stored value names an unknown key {key_id!r}.")
    try:
        return _aead(key).decrypt(rest[:12], rest[12:], associated).decode()
    except InvalidTag:
        log.error("integrity check failed: %s of %s", purpose, binding)
        raise RecordTampered(
            "A stored value failed its integrity check; the administrators must look at it."
        ) from None


def is_current(ciphertext: bytes) -> bool:
    """Whether a value is bound to its row and under the active key (nothing to rewrite)."""
    key_id, marker, _ = _split(ciphertext)
    return marker == _BOUND and key_id == keyring().encryption[0]


def encryption_key_id(ciphertext: bytes) -> str:
    """The id of the key a value was encrypted under."""
    return _split(ciphertext)[0]


def blind_index(value: str, purpose: str, key_id: str | None = None) -> str:
    """Keyed index of ``value``: equal inputs match, the index reveals nothing."""
    active, keys = keyring().blind_index
    kid = key_id or active
    mac = _mac_base(keys[kid]).copy()
    mac.update(f"{purpose}\x00{value}".encode())
    return f"{kid}:{mac.hexdigest()}"


def blind_index_candidates(value: str, purpose: str) -> list[str]:
    """The index of ``value`` under every key in the ring, for look-ups mid-rotation."""
    _, keys = keyring().blind_index
    return [blind_index(value, purpose, kid) for kid in keys]
