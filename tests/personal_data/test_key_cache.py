"""Decoded keys are kept per loaded ring, and a rotation still takes effect."""

from __future__ import annotations

import dataclasses
import json

import pytest

from anjuka.core import keys as keys_module
from anjuka.core.keys import KeyRing, load_keyring, new_key_document, rotate, save_key_document
from anjuka.core.protect import blind_index, decrypt, encrypt, encryption_key_id


@pytest.fixture
def decodes(monkeypatch):  # type: ignore[no-untyped-def]
    """Count the base64 decodes the key ring does."""
    calls = []
    original = keys_module._unb64

    def counting(text: str) -> bytes:
        calls.append(text)
        return original(text)

    monkeypatch.setattr(keys_module, "_unb64", counting)
    return calls


def _ring(tmp_path) -> KeyRing:  # type: ignore[no-untyped-def]
    path = tmp_path / "keys.json"
    save_key_document(path, new_key_document())
    return KeyRing(path, json.loads(path.read_text()))


def test_keys_are_decoded_once_per_ring(tmp_path, decodes):  # type: ignore[no-untyped-def]
    ring = _ring(tmp_path)
    for _ in range(3):
        assert ring.encryption[0] == "e1"
        assert ring.blind_index[0] == "b1"
        assert ring.card_master[0] == "m1"
        ring.webhook_key  # noqa: B018
        ring.signing_public_keys()
        ring.signing_public_keys_raw()
        ring.signing_private_key()
    # encryption, blind index, card master, webhook, public (objects), public (raw), private
    assert len(decodes) == 7
    assert ring.signing_private_key() is ring.signing_private_key()


def test_a_change_to_the_ring_in_place_is_seen(tmp_path, decodes):  # type: ignore[no-untyped-def]
    ring = _ring(tmp_path)
    old_active, old_keys = ring.encryption
    ring.document["encryption"]["keys"]["e2"] = keys_module._b64(bytes(32))
    ring.document["encryption"]["active"] = "e2"
    active, keys = ring.encryption
    assert (old_active, active) == ("e1", "e2")
    assert set(old_keys) == {"e1"}
    assert set(keys) == {"e1", "e2"}
    signer = ring.signing_private_key()
    ring.document["signing"]["keys"]["1"] = keys_module._new_signing_entry()
    assert ring.signing_private_key() is not signer
    assert ring.signing_public_keys()[1] is not None


def test_a_staged_rotation_takes_effect_on_reload(app, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    path = tmp_path / "keys.json"
    path.write_text(app.extensions["anjuka_keys"].path.read_text())
    config = dataclasses.replace(app.extensions["anjuka_config"], keys_file=path)

    def restart() -> None:
        monkeypatch.setitem(app.extensions, "anjuka_keys", load_keyring(config))

    restart()
    with app.app_context():
        old = encryption_key_id(encrypt("330102199001011234", "test", "p1"))
        old_index = blind_index("330102199001011234", "test")
        sealed_old = encrypt("330102199001011234", "test", "p1")
        new_id = rotate(path, "encryption", activate=False)
        new_index_id = rotate(path, "blind_index")
        restart()
        # Staged: read but not written with.
        assert encryption_key_id(encrypt("x", "test", "p1")) == old
        keys_module.activate(path, "encryption", new_id)
        restart()
        assert encryption_key_id(encrypt("x", "test", "p1")) == new_id
        assert decrypt(sealed_old, "test", "p1") == "330102199001011234"
        new_index = blind_index("330102199001011234", "test")
        assert new_index.startswith(f"{new_index_id}:")
        assert new_index != old_index
