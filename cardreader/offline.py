"""Offline verification: a chip's record and UID against a signed patrol bundle, no network.

The server publishes ``GET /api/v1/offline-bundle``: its public signing keys,
the card numbers revoked (or returned) whose cards have not yet expired, the
records signed for a chip but withdrawn before they became a card (by their
SHA-256; such a chip's record is signed for its own UID and would otherwise
read valid forever), a cursor for the next delta, an expiry, and an Ed25519
signature over all of it. A patrol laptop keeps the bundle (and the deltas
fetched after it) and checks cards with :func:`verify`, which gives the same
answers the server gives online: ``valid``, ``revoked``, ``expired``,
``forged`` or ``unknown``.

Pure: no Flask, no network, no database. ``docs/card-format.md`` ("Offline
verification") documents the same algorithm for third parties.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cardreader.record import (
    BadSignatureError,
    RecordFormatError,
    UnknownKeyError,
    verify_record,
)

#: 2: bundles list withdrawn records; a verifier that cannot refuse them must not
#: take a bundle at all, so format-1 code refuses these and this code refuses those.
FORMAT = 2
#: Domain separation: a bundle signature is useless as anything else.
BUNDLE_CONTEXT = b"Anjuka offline bundle v1\x00"
ALGORITHM = "Ed25519"
#: The registry's calendar (card validity is counted in its local days).
DEFAULT_TIMEZONE = "Asia/Shanghai"
RESULTS = ("valid", "revoked", "expired", "wrong_dwelling", "unknown", "forged", "clone_suspected")


class BundleError(Exception):
    """The bundle cannot be used: malformed, badly signed, or out of date."""


class BundleSignatureError(BundleError):
    """The bundle's signature does not verify under a trusted key."""


class BundleExpiredError(BundleError):
    """The bundle is past its expiry: fetch a fresh one before checking cards offline."""


class BundleChainError(BundleError):
    """A delta does not continue the bundle it is applied to."""


def canonical_bytes(bundle: Mapping) -> bytes:
    """The signed bytes: context, then every field but ``signature`` as canonical JSON.

    Canonical JSON here is keys sorted, no insignificant whitespace, non-ASCII
    escaped as ``\\uXXXX``: ``json.dumps(sort_keys=True, separators=(",", ":"))``.
    Bundles hold only strings, integers, null and lists of them.
    """
    unsigned = {k: v for k, v in bundle.items() if k != "signature"}
    text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return BUNDLE_CONTEXT + text.encode("ascii")


def parse_time(text: str) -> datetime:
    """An ISO 8601 UTC time as the bundle writes it (``2026-11-29T08:00:00Z``)."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise BundleError(f"not a time: {text!r}") from None
    if parsed.tzinfo is None:
        raise BundleError(f"time without a zone: {text!r}")
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """The bundle's way of writing a time: UTC, seconds, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def public_keys(bundle: Mapping) -> dict[int, Ed25519PublicKey]:
    """The signing keys a bundle lists, by key id."""
    keys = {}
    for entry in bundle.get("keys", []):
        if entry.get("algorithm") != ALGORITHM:
            raise BundleError(f"unsupported key algorithm {entry.get('algorithm')!r}")
        try:
            raw = base64.b64decode(entry["public_key"], validate=True)
            keys[int(entry["id"])] = Ed25519PublicKey.from_public_bytes(raw)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise BundleError("a key entry is malformed") from None
    return keys


def check_signature(bundle: Mapping, trusted: Mapping[int, Ed25519PublicKey] | None) -> None:
    """Verify the bundle's signature under ``trusted`` keys (or, if None, its own).

    A patrol laptop pins the keys of the first bundle it fetched over an
    authenticated session and passes them as ``trusted``; a later bundle may
    bring new keys (a rotation) as long as a pinned key signed it.
    """
    keys = trusted if trusted is not None else public_keys(bundle)
    try:
        key = keys[int(bundle["signed_by"])]
        signature = base64.b64decode(bundle["signature"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise BundleSignatureError("the bundle is not signed by a trusted key") from None
    try:
        key.verify(signature, canonical_bytes(bundle))
    except InvalidSignature:
        raise BundleSignatureError("the bundle's signature does not verify") from None


@dataclass
class RevocationList:
    """What a patrol laptop knows: keys, revoked cards, withdrawn records, until when.

    Built from a full bundle and extended with the deltas fetched after it.
    """

    keys: dict[int, Ed25519PublicKey]
    revoked: set[str] = field(default_factory=set)
    #: SHA-256 (hex) of records signed for a chip that never became the card.
    withdrawn: set[str] = field(default_factory=set)
    cursor: str | None = None
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    #: Where the registry counts its calendar days (a card is valid to the end of its day there).
    timezone: str = DEFAULT_TIMEZONE

    @classmethod
    def from_bundles(
        cls,
        bundles: Iterable[Mapping],
        trusted: Mapping[int, Ed25519PublicKey] | None = None,
    ) -> RevocationList:
        """Verify and merge a full bundle followed by its deltas, in order."""
        state: RevocationList | None = None
        for bundle in bundles:
            state = state.apply(bundle) if state is not None else cls._first(bundle, trusted)
        if state is None:
            raise BundleError("no bundle")
        return state

    @classmethod
    def _first(
        cls, bundle: Mapping, trusted: Mapping[int, Ed25519PublicKey] | None
    ) -> RevocationList:
        _check_format(bundle)
        if bundle.get("since") is not None:
            raise BundleChainError("the first bundle must be a full one (no 'since')")
        check_signature(bundle, trusted)
        return cls(
            keys=public_keys(bundle),
            revoked=set(bundle["revoked"]),
            withdrawn=set(bundle["withdrawn"]),
            cursor=bundle["cursor"],
            issued_at=parse_time(bundle["issued_at"]),
            expires_at=parse_time(bundle["expires_at"]),
            timezone=bundle.get("timezone") or DEFAULT_TIMEZONE,
        )

    def apply(self, delta: Mapping) -> RevocationList:
        """Add a delta (``since`` = this list's cursor) signed by a key already known."""
        _check_format(delta)
        if delta.get("since") != self.cursor:
            raise BundleChainError(
                f"the delta continues cursor {delta.get('since')!r}, not {self.cursor!r}"
            )
        check_signature(delta, self.keys)
        self.keys = {**self.keys, **public_keys(delta)}
        self.revoked |= set(delta["revoked"])
        self.withdrawn |= set(delta["withdrawn"])
        self.cursor = delta["cursor"]
        self.issued_at = parse_time(delta["issued_at"])
        self.expires_at = parse_time(delta["expires_at"])
        self.timezone = delta.get("timezone") or self.timezone
        return self

    def check_fresh(self, now: datetime) -> None:
        """Refuse to answer from a list past its expiry."""
        if now.tzinfo is None:
            raise ValueError("'now' must carry a time zone")
        if self.expires_at is None:
            raise BundleExpiredError("the offline bundle has no expiry; fetch a fresh one")
        if now >= self.expires_at:
            raise BundleExpiredError(
                f"the offline bundle expired at {format_time(self.expires_at)};"
                " fetch a fresh one before checking cards offline"
            )


def _check_format(bundle: Mapping) -> None:
    if not isinstance(bundle, Mapping) or bundle.get("format") != FORMAT:
        raise BundleError(f"not an offline bundle of format {FORMAT}; fetch a fresh one")
    for name in ("keys", "revoked", "withdrawn", "cursor", "issued_at", "expires_at", "signature"):
        if name not in bundle:
            raise BundleError(f"the bundle has no {name!r}")
    if not isinstance(bundle["revoked"], list) or not all(
        isinstance(n, str) for n in bundle["revoked"]
    ):
        raise BundleError("'revoked' must be a list of card numbers")
    if not isinstance(bundle["withdrawn"], list) or not all(
        isinstance(d, str) and _DIGEST.fullmatch(d) for d in bundle["withdrawn"]
    ):
        raise BundleError("'withdrawn' must be a list of SHA-256 digests in lowercase hex")


_DIGEST = re.compile(r"[0-9a-f]{64}")


def record_digest(record: bytes) -> str:
    """How a bundle names a signed record: SHA-256 of its 113 bytes, lowercase hex."""
    return hashlib.sha256(bytes(record)).hexdigest()


@dataclass(frozen=True)
class OfflineResult:
    """The answer, in the online vocabulary, and what the record says."""

    result: str
    reason: str | None = None
    card_no: str | None = None
    residence_id: int | None = None
    area_code: str | None = None
    valid_until: date | None = None

    def as_dict(self) -> dict:
        return {
            "result": self.result,
            "reason": self.reason,
            "card_no": self.card_no,
            "residence_id": self.residence_id,
            "area_code": self.area_code,
            "valid_until": None if self.valid_until is None else self.valid_until.isoformat(),
        }


def _hex(text: str | bytes | None, name: str) -> bytes:
    if text is None:
        return b""
    if isinstance(text, bytes):
        return text
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{name} is not hex") from None


def verify(
    record_hex: str | bytes | None,
    uid_hex: str | bytes,
    bundle: Mapping | RevocationList,
    now: datetime,
    *,
    trusted_keys: Mapping[int, Ed25519PublicKey] | None = None,
    timezone: str | None = None,
) -> OfflineResult:
    """Check what a chip holds against the bundle, offline.

    ``bundle`` is a full bundle (its signature is checked, under
    ``trusted_keys`` when given) or a :class:`RevocationList` already
    merged from verified bundles. Raises :class:`BundleExpiredError` when
    the bundle is past its expiry: a stale bundle is refused, not trusted.

    1. No record on the chip: ``unknown`` (a blank or erased card).
    2. A record that does not parse, names a key the bundle does not list,
       or whose signature fails for this chip's UID: ``forged`` (a record
       copied from another chip lands here too: offline cannot tell a copy
       from a fabrication; online says ``clone_suspected`` for a copy).
    3. Its card number is in the revocation list: ``revoked``.
    4. The record is one the bundle lists as withdrawn (signed for this
       chip, but the card was issued on another chip, or never): ``unknown``
       (reason ``never_activated``), as online for a card never activated.
    5. Its ``valid_until`` is before today in the registry's time zone
       (the bundle's ``timezone``, unless ``timezone`` is given): ``expired``.
    6. Otherwise ``valid``.
    """
    state = (
        bundle
        if isinstance(bundle, RevocationList)
        else RevocationList.from_bundles([bundle], trusted_keys)
    )
    state.check_fresh(now)
    record_bytes = _hex(record_hex, "record")
    uid = _hex(uid_hex, "uid")
    if not record_bytes:
        return OfflineResult("unknown", "blank")
    try:
        record = verify_record(record_bytes, uid, state.keys)
    except RecordFormatError:
        return OfflineResult("forged", "not_a_record")
    except UnknownKeyError:
        return OfflineResult("forged", "unknown_key")
    except BadSignatureError:
        return OfflineResult("forged", "bad_signature")
    valid = OfflineResult(
        "valid",
        None,
        card_no=record.card_no,
        residence_id=record.residence_id,
        area_code=record.area_code,
        valid_until=record.valid_until,
    )
    if record.card_no in state.revoked:
        return replace(valid, result="revoked", reason="listed")
    if record_digest(record_bytes) in state.withdrawn:
        return replace(valid, result="unknown", reason="never_activated")
    today = now.astimezone(ZoneInfo(timezone or state.timezone)).date()
    if record.valid_until < today:
        return replace(valid, result="expired")
    return valid
