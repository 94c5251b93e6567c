"""Personal data at rest: authenticated encryption and keyed blind indexes.

Ciphertexts are ``key_id || 0x00 || nonce(12) || AES-GCM(ciphertext+tag)``
with the purpose as associated data, so a value cannot be moved to another
column and still decrypt. Blind indexes are HMAC-SHA256 under a separate
key, prefixed with the key id so that a rotation can re-index row by row.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from anjuka.core.keys import keyring


def encrypt(plaintext: str, purpose: str) -> bytes:
    """Encrypt ``plaintext`` under the active key."""
    key_id, keys = keyring().encryption
    nonce = os.urandom(12)
    sealed = AESGCM(keys[key_id]).encrypt(nonce, plaintext.encode(), purpose.encode())
    return key_id.encode() + b"\x00" + nonce + sealed


def decrypt(ciphertext: bytes, purpose: str) -> str:
    """Decrypt a value written by :func:`encrypt` under any key in the ring."""
    key_id, _, rest = bytes(ciphertext).partition(b"\x00")
    _, keys = keyring().encryption
    key = keys[key_id.decode()]
    return AESGCM(key).decrypt(rest[:12], rest[12:], purpose.encode()).decode()


def encryption_key_id(ciphertext: bytes) -> str:
    """The id of the key a value was encrypted under."""
    return bytes(ciphertext).partition(b"\x00")[0].decode()


def blind_index(value: str, purpose: str, key_id: str | None = None) -> str:
    """Keyed index of ``value``: equal inputs match, the index reveals nothing."""
    active, keys = keyring().blind_index
    kid = key_id or active
    mac = hmac.new(keys[kid], f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()
    return f"{kid}:{mac}"


def blind_index_candidates(value: str, purpose: str) -> list[str]:
    """The index of ``value`` under every key in the ring, for look-ups mid-rotation."""
    _, keys = keyring().blind_index
    return [blind_index(value, purpose, kid) for kid in keys]
