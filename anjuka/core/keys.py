"""Key material: encryption, blind index, card signing, card master, sessions.

Production supplies a keys file through ``ANJUKA_KEYS_FILE`` (or the
instance folder's ``keys.json``). With none present, the first process to
start creates one, atomically, and every later process reads that same file.

Every family of keys is a ring: one active key id plus older ones kept for
reading. Rotation adds a key and makes it active (``anjuka keys rotate``);
``anjuka keys reencrypt`` then rewrites stored values under the active key,
after which the old key may be retired. Without downtime, rotation is two
steps: ``rotate --staged`` adds the key unused, every process is restarted
so that all know it, and ``anjuka keys activate`` makes it the one new
values are written with (docs/keys.md).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask, current_app

from anjuka.config import Config


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def _new_signing_entry() -> dict:
    private = Ed25519PrivateKey.generate()
    return {
        "private": _b64(private.private_bytes_raw()),
        "public": _b64(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


#: The families that are rings of keys with one active id.
FAMILIES = ("encryption", "blind_index", "signing", "card_master")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_key_document() -> dict:
    """A fresh set of keys, one of each family, each noted as made active now."""
    now = _now()
    return {
        "format": 1,
        "secret_key": secrets.token_hex(32),
        "encryption": {
            "active": "e1",
            "keys": {"e1": _b64(secrets.token_bytes(32))},
            "activated": {"e1": now},
        },
        "blind_index": {
            "active": "b1",
            "keys": {"b1": _b64(secrets.token_bytes(32))},
            "activated": {"b1": now},
        },
        "signing": {"active": 1, "keys": {"1": _new_signing_entry()}, "activated": {"1": now}},
        "card_master": {
            "active": "m1",
            "keys": {"m1": _b64(secrets.token_bytes(32))},
            "activated": {"m1": now},
        },
        "webhook": _b64(secrets.token_bytes(32)),
    }


def _write_exclusive(path: Path, document: dict) -> bool:
    """Create ``path`` with ``document`` unless it exists; True if we created it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keys-")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(document, fh, indent=2)
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # atomic and fails if another process won
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def save_key_document(path: Path, document: dict) -> None:
    """Replace the keys file atomically (used by rotation)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keys-")
    with os.fdopen(fd, "w") as fh:
        json.dump(document, fh, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass(frozen=True)
class KeyInfo:
    """One key of a ring as an administrator may see it: its id and dates, never its bytes."""

    family: str
    key_id: str
    active: bool
    #: When rotation made it active (None: a keys file older than this record).
    activated_at: datetime | None


@dataclass(frozen=True)
class KeyRing:
    """The loaded key material.

    Decoded keys and the objects built from them (signing keys) are made once
    per ring and kept: a request or an import row never decodes base64 or
    parses a key again. Each cached value remembers the part of the document
    it was made from and is made again when that part differs, so a ring
    whose document is changed in place still answers with its current keys.
    A rotation on disk reaches a process when it loads the file again (a
    restart, docs/keys.md), which makes a new ring with empty caches.
    """

    path: Path
    document: dict
    _cache: dict[str, tuple[Any, Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def _cached(self, name: str, source: Any, make: Callable[[], Any]) -> Any:
        """``make()``, kept while ``source`` (the document part it reads) is unchanged."""
        hit = self._cache.get(name)
        if hit is not None and (hit[0] is source or hit[0] == source):
            return hit[1]
        value = make()
        self._cache[name] = (_snapshot(source), value)
        return value

    @property
    def secret_key(self) -> str:
        return self.document["secret_key"]

    def _ring(self, family: str) -> tuple[str, Mapping[str, bytes]]:
        ring = self.document[family]
        source = (ring["active"], ring["keys"])

        def make() -> tuple[str, Mapping[str, bytes]]:
            keys = {k: _unb64(v) for k, v in ring["keys"].items()}
            return str(ring["active"]), MappingProxyType(keys)

        return self._cached(family, source, make)

    @property
    def encryption(self) -> tuple[str, Mapping[str, bytes]]:
        return self._ring("encryption")

    @property
    def blind_index(self) -> tuple[str, Mapping[str, bytes]]:
        return self._ring("blind_index")

    @property
    def card_master(self) -> tuple[str, Mapping[str, bytes]]:
        return self._ring("card_master")

    @property
    def webhook_key(self) -> bytes:
        raw = self.document["webhook"]
        return self._cached("webhook", raw, lambda: _unb64(raw))

    @property
    def active_signing_key_id(self) -> int:
        return int(self.document["signing"]["active"])

    def _signing_entries(self) -> dict:
        return self.document["signing"]["keys"]

    def signing_private_key(self, key_id: int | None = None) -> Ed25519PrivateKey:
        kid = self.active_signing_key_id if key_id is None else key_id
        raw = self._signing_entries()[str(kid)]["private"]
        return self._cached(
            f"signing.private.{kid}",
            raw,
            lambda: Ed25519PrivateKey.from_private_bytes(_unb64(raw)),
        )

    def signing_public_keys(self) -> Mapping[int, Ed25519PublicKey]:
        entries = self._signing_entries()
        return self._cached(
            "signing.public",
            entries,
            lambda: MappingProxyType(
                {
                    int(kid): Ed25519PublicKey.from_public_bytes(_unb64(entry["public"]))
                    for kid, entry in entries.items()
                }
            ),
        )

    def key_ids(self, family: str) -> list[KeyInfo]:
        """The ids of ``family``'s keys, oldest first, and when each was made active."""
        ring = self.document[family]
        activated = ring.get("activated", {})
        out = []
        for kid in ring["keys"]:
            when = activated.get(str(kid))
            if when is None and family == "signing":
                when = ring["keys"][kid].get("created")  # a signing key is active once made
            out.append(
                KeyInfo(
                    family,
                    str(kid),
                    str(kid) == str(ring["active"]),
                    datetime.fromisoformat(when) if when else None,
                )
            )
        return sorted(out, key=lambda k: (len(k.key_id), k.key_id))

    def signing_public_keys_raw(self) -> Mapping[int, bytes]:
        entries = self._signing_entries()
        return self._cached(
            "signing.public_raw",
            entries,
            lambda: MappingProxyType(
                {int(kid): _unb64(entry["public"]) for kid, entry in entries.items()}
            ),
        )


def _snapshot(source: Any) -> Any:
    """A copy of a document part deep enough that a later change in place is seen."""
    if isinstance(source, dict):
        return {k: _snapshot(v) for k, v in source.items()}
    if isinstance(source, tuple):
        return tuple(_snapshot(v) for v in source)
    return source


def load_keyring(config: Config) -> KeyRing:
    """Load the keys file, creating it once if absent."""
    path = config.resolved_keys_file
    if not path.exists():
        _write_exclusive(path, new_key_document())
    return KeyRing(path, json.loads(path.read_text()))


def rotate(path: Path, family: str, *, activate: bool = True) -> str:
    """Add a new key to ``family``, active unless ``activate`` is false; return its id.

    A staged key (not activated) is read by every process restarted after
    this, while new values are still written under the old one.
    """
    document = json.loads(path.read_text())
    ring = document[family]
    if family == "signing":
        new_id = str(max(int(k) for k in ring["keys"]) + 1)
        ring["keys"][new_id] = _new_signing_entry()
    else:
        prefix = family[0]
        new_id = f"{prefix}{max(int(k[1:]) for k in ring['keys']) + 1}"
        ring["keys"][new_id] = _b64(secrets.token_bytes(32))
    if activate:
        ring["active"] = int(new_id) if family == "signing" else new_id
        ring.setdefault("activated", {})[new_id] = _now()
    save_key_document(path, document)
    return new_id


def activate(path: Path, family: str, key_id: str) -> None:
    """Make ``key_id``, already in ``family``'s ring, the one new values are written with."""
    document = json.loads(path.read_text())
    ring = document[family]
    if key_id not in ring["keys"]:
        raise KeyError(f"{family} has no key {key_id!r}")
    ring["active"] = int(key_id) if family == "signing" else key_id
    ring.setdefault("activated", {})[key_id] = _now()
    save_key_document(path, document)


def init_app(app: Flask, config: Config) -> None:
    """Load the keys and give Flask its session secret."""
    ring = load_keyring(config)
    app.extensions["anjuka_keys"] = ring
    app.secret_key = config.secret_key or ring.secret_key


def keyring() -> KeyRing:
    """The current application's keys."""
    return current_app.extensions["anjuka_keys"]
