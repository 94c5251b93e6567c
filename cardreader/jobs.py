"""What the server hands the desk daemon (docs/job-protocol.md), parsed once at the edge.

The client turns each JSON answer into one of these frozen records; the
daemon reads attributes, never keys of a dict. A malformed answer raises
:class:`JobFormatError` where it arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cardreader.protocol.card import CARD_TYPES, CardType
from cardreader.record import decode_record

#: The kinds of job this daemon runs; another kind is reported failed, not refused.
ISSUE, ERASE = "issue", "erase"


class JobFormatError(ValueError):
    """The server's answer is not what the job protocol says."""


def _field(body: Mapping[str, Any], name: str, kind: type, *, required: bool = False) -> Any:
    """``body[name]`` checked to be a ``kind`` (or absent/null unless ``required``)."""
    value = body.get(name)
    if value is None and not required:
        return None
    # bool is an int to Python, never to the protocol.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise JobFormatError(f"{name!r} is {value!r}, not a {kind.__name__}")
    return value


def _keys(body: Mapping[str, Any]) -> dict[str, str] | None:
    keys = _field(body, "keys", dict)
    if keys is not None and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
    ):
        raise JobFormatError("'keys' must map key names to hex strings")
    return keys


def _object(body: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise JobFormatError(f"{what} is not a JSON object")
    return body


@dataclass(frozen=True)
class Job:
    """A job the daemon holds a lease on (``GET .../jobs/next``)."""

    id: int
    kind: str
    card_no: str | None = None
    #: Which hand-out of the job this is; reports name it so a stale one is refused.
    attempt: int | None = None
    #: For an erase: the card it must find, its type and its keys.
    expected_uid: str | None = None
    card_type: str | None = None
    keys: Mapping[str, str] | None = None

    @classmethod
    def from_json(cls, body: Any) -> Job:
        """The job in the server's answer; JobFormatError if it is not one.

        An unknown ``kind`` or an erase without its card is still a job: the
        daemon reports it failed, so that the desk sees why.
        """
        body = _object(body, "the job")
        return cls(
            id=_field(body, "id", int, required=True),
            kind=_field(body, "kind", str, required=True),
            card_no=_field(body, "card_no", str),
            attempt=_field(body, "attempt", int),
            expected_uid=_field(body, "expected_uid", str),
            card_type=_field(body, "card_type", str),
            keys=_keys(body),
        )

    @property
    def current_attempt(self) -> int | None:
        """The attempt to name in reports, when the server gave a usable one."""
        return self.attempt if self.attempt is not None and self.attempt > 0 else None

    def attempt_report(self) -> dict[str, int]:
        """``{"attempt": N}`` for this job's reports, so the server can refuse a stale one.

        A job that has been handed out again since (its lease ran out) is at a
        later attempt: a report of this one must not be applied to that.
        """
        attempt = self.current_attempt
        return {} if attempt is None else {"attempt": attempt}

    @property
    def erase_card_type(self) -> CardType | None:
        """The card type an erase job names, if it is one this daemon knows."""
        return next((known for known in CARD_TYPES if known == self.card_type), None)


@dataclass(frozen=True)
class Binding:
    """The server's answer to a UID (``POST .../uid``): the record signed for that chip."""

    record: bytes
    keys: Mapping[str, str]

    @classmethod
    def from_json(cls, body: Any) -> Binding:
        """The record (checked to decode as one) and the keys to write it with."""
        body = _object(body, "the answer to the UID")
        record_hex = _field(body, "record", str, required=True)
        try:
            record = bytes.fromhex(record_hex)
        except ValueError as exc:
            raise JobFormatError(f"'record' is not hex: {exc}") from None
        decode_record(record)  # RecordFormatError: not a record at all
        keys = _keys(body)
        if keys is None:
            raise JobFormatError("'keys' is missing")
        return cls(record=record, keys=keys)
