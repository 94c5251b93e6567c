"""The patrol laptop: check cards with no network, upload the inspections later.

    anjuka-patrol fetch  --server URL       # full bundle, then deltas since its cursor
    anjuka-patrol verify [--dwelling-id N] [--headcount N]
    anjuka-patrol upload --server URL       # queued inspections, once online

(``anjuka-cardreader fetch|verify|upload`` runs the same commands.)

State lives in one folder (``--store``, default ``~/.local/state/anjuka-patrol``):

``trust.json``
    the server's public signing keys, pinned at the first fetch (made over
    HTTPS with the officer's token); every later bundle must be signed by a
    pinned key, and may pin new ones (a key rotation).
``bundles.json``
    the full bundle and the deltas after it, each as the server signed it;
    the revocation list (revoked cards, and the records signed for a chip
    but withdrawn before they became a card) is rebuilt from them, verified,
    at every check.
``queue.jsonl``
    one inspection per line, with a client-generated id, until the server
    has it; ``rejected.jsonl`` keeps what the server refused, with why.

``verify`` reads the card in the PC/SC reader through the card protocols
(:mod:`cardreader.protocol.card`), answers with :func:`cardreader.offline.verify`
and refuses to answer from a stale bundle. ``upload`` posts each queued
inspection as ``POST /api/v1/verifications`` with ``"offline": true``,
``checked_at`` and ``client_id``; a repeat after a lost answer is recorded
once by the server, so the queue can always be sent again.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardreader.offline import (
    FORMAT,
    BundleError,
    OfflineResult,
    RevocationList,
    check_signature,
    format_time,
    verify,
)
from cardreader.protocol.errors import CardError
from cardreader.transport.base import Connection, TransportError

#: After this many deltas a fresh full bundle is cheaper than the chain.
MAX_DELTAS = 30
#: HTTP statuses worth trying again later; anything else 4xx is a refusal.
RETRYABLE = {401, 403, 408, 429}

#: ``get(path)`` -> (status, JSON body); ``post(path, body)`` likewise.
Getter = Callable[[str], tuple[int, Any]]
Poster = Callable[[str, dict], tuple[int, Any]]


class PatrolError(Exception):
    """Something the officer must fix (no bundle yet, server refused, no card)."""


def default_store() -> Path:
    """Per-user state folder (XDG)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "anjuka-patrol"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class PatrolStore:
    """The patrol laptop's folder: pinned keys, bundles, the inspection queue."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.trust_file = path / "trust.json"
        self.bundles_file = path / "bundles.json"
        self.queue_file = path / "queue.jsonl"
        self.rejected_file = path / "rejected.jsonl"

    # -- keys and bundles ----------------------------------------------------
    def trusted_keys(self) -> dict[int, Ed25519PublicKey] | None:
        if not self.trust_file.exists():
            return None
        raw = json.loads(self.trust_file.read_text(encoding="utf-8"))
        return {
            int(kid): Ed25519PublicKey.from_public_bytes(base64.b64decode(key))
            for kid, key in raw.items()
        }

    def pin(self, keys: dict[int, Ed25519PublicKey]) -> None:
        raw = {
            str(kid): base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
            for kid, key in sorted(keys.items())
        }
        _write_atomic(self.trust_file, json.dumps(raw, indent=2))

    def bundles(self) -> list[dict]:
        if not self.bundles_file.exists():
            return []
        return json.loads(self.bundles_file.read_text(encoding="utf-8"))

    def revocation_list(self) -> RevocationList:
        """The merged, verified revocation list (not yet checked for freshness)."""
        bundles = self.bundles()
        if not bundles:
            raise PatrolError("no offline bundle yet: run 'anjuka-patrol fetch' while online")
        return RevocationList.from_bundles(bundles, self.trusted_keys())

    def add_bundle(self, bundle: dict) -> RevocationList:
        """Verify ``bundle`` against what is held, keep it, pin any new key it brings."""
        trusted = self.trusted_keys()
        if bundle.get("since") is None:
            # A full bundle replaces the chain; the first one also pins the keys.
            check_signature(bundle, trusted)
            chain = [bundle]
        else:
            chain = [*self.bundles(), bundle]
        state = RevocationList.from_bundles(chain, trusted)
        _write_atomic(self.bundles_file, json.dumps(chain, separators=(",", ":")))
        self.pin(state.keys if trusted is None else {**trusted, **state.keys})
        return state

    # -- the queue -----------------------------------------------------------
    def queued(self) -> list[dict]:
        if not self.queue_file.exists():
            return []
        lines = self.queue_file.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def enqueue(self, entry: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with self.queue_file.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def replace_queue(self, entries: list[dict]) -> None:
        _write_atomic(self.queue_file, "".join(json.dumps(e) + "\n" for e in entries))

    def reject(self, entry: dict, status: int, body: Any) -> None:
        with self.rejected_file.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({**entry, "rejected": {"status": status, "body": body}}) + "\n")


# -- the three commands ----------------------------------------------------------


def fetch(store: PatrolStore, get: Getter) -> RevocationList:
    """Bring the bundle up to date: a delta since the last cursor, or a full one."""
    bundles = store.bundles()
    path = "/api/v1/offline-bundle"
    # A chain of another format (kept from before an upgrade) is replaced, not continued.
    current = all(b.get("format") == FORMAT for b in bundles)
    if bundles and current and len(bundles) <= MAX_DELTAS:
        path += f"?since={bundles[-1]['cursor']}"
    status, body = get(path)
    if status != 200:
        raise PatrolError(f"the server answered {status}: {body}")
    return store.add_bundle(body)


def read_card(connection: Connection) -> tuple[str, str | None, str]:
    """The chip's UID (hex), its record (hex, None when blank) and its type."""
    from cardreader.protocol.card import detect, read_record, read_uid

    card_type = detect(connection)
    uid = read_uid(connection)
    record = read_record(connection, card_type)
    return uid.hex(), None if record is None else record.hex(), card_type


def check_card(
    store: PatrolStore,
    connection: Connection,
    *,
    now: datetime | None = None,
    dwelling_id: int | None = None,
    headcount: int | None = None,
) -> tuple[OfflineResult, dict]:
    """Read the card, verify it offline, queue the inspection; the answer and the entry."""
    now = now or datetime.now(UTC)
    state = store.revocation_list()
    state.check_fresh(now)  # refuse before touching the card
    uid, record, card_type = read_card(connection)
    result = verify(record, uid, state, now)
    entry = {
        "client_id": f"patrol-{uuid.uuid4().hex}",
        "checked_at": now.astimezone(UTC).isoformat(),
        "uid": uid,
        "record": record or "",
        "card_type": card_type,
        "offline_result": result.result,
        "dwelling_id": dwelling_id,
        "observed_headcount": headcount,
    }
    store.enqueue(entry)
    return result, entry


@dataclass(frozen=True)
class UploadReport:
    """What an upload did."""

    uploaded: int
    rejected: int
    remaining: int


def _verification_body(entry: dict) -> dict:
    body = {
        "uid": entry["uid"],
        "record": entry["record"],
        "offline": True,
        "checked_at": entry["checked_at"],
        "client_id": entry["client_id"],
        "offline_result": entry["offline_result"],
    }
    for name in ("dwelling_id", "observed_headcount"):
        if entry.get(name) is not None:
            body[name] = entry[name]
    return body


def upload(store: PatrolStore, post: Poster) -> UploadReport:
    """Send every queued inspection; keep what could not be sent for the next time."""
    remaining: list[dict] = []
    uploaded = rejected = 0
    entries = store.queued()
    for index, entry in enumerate(entries):
        try:
            status, body = post("/api/v1/verifications", _verification_body(entry))
        except OSError:
            remaining.extend(entries[index:])  # offline again: stop, keep the rest
            break
        if status in (200, 201):
            uploaded += 1
        elif status >= 500 or status in RETRYABLE:
            remaining.append(entry)
        else:
            store.reject(entry, status, body)
            rejected += 1
    store.replace_queue(remaining)
    return UploadReport(uploaded, rejected, len(remaining))


# -- HTTP and the command line -----------------------------------------------------


def http(server: str, token: str, timeout: float = 30.0) -> tuple[Getter, Poster]:
    """``get`` and ``post`` against ``server`` with the officer's bearer token."""
    import requests

    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
    base = server.rstrip("/")

    def answer(response: requests.Response) -> tuple[int, Any]:
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text[:200]

    def get(path: str) -> tuple[int, Any]:
        try:
            return answer(requests.get(base + path, headers=headers, timeout=timeout))
        except requests.RequestException as exc:
            raise OSError(str(exc)) from exc

    def post(path: str, body: dict) -> tuple[int, Any]:
        try:
            return answer(requests.post(base + path, json=body, headers=headers, timeout=timeout))
        except requests.RequestException as exc:
            raise OSError(str(exc)) from exc

    return get, post


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="anjuka-patrol", description="Check Anju e-Cards offline on patrol."
    )
    parser.add_argument("--store", type=Path, default=None, help="state folder")
    commands = parser.add_subparsers(dest="command", required=True)
    # --store also after the command (``anjuka-cardreader verify --store DIR``).
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", type=Path, default=argparse.SUPPRESS, help="state folder")
    for name, text in (("fetch", "update the offline bundle"), ("upload", "send inspections")):
        sub = commands.add_parser(name, help=text, parents=[store])
        sub.add_argument("--server", required=True, help="server base URL")
        sub.add_argument(
            "--token",
            default=os.environ.get("ANJUKA_PATROL_TOKEN"),
            help="the officer's token (or ANJUKA_PATROL_TOKEN)",
        )
    check = commands.add_parser("verify", help="read a card and check it offline", parents=[store])
    check.add_argument("--reader", help="PC/SC reader name or prefix (default: first)")
    check.add_argument("--card-timeout", type=float, default=30.0, help="seconds to wait")
    check.add_argument("--dwelling-id", type=int, help="the dwelling you are at")
    check.add_argument("--headcount", type=int, help="people you counted there")
    check.add_argument("--json", action="store_true", help="print the answer as JSON")
    return parser


def _say(result: OfflineResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.as_dict()))
        return
    line = result.result.upper()
    if result.card_no:
        line += f"  card {result.card_no}"
    if result.valid_until:
        line += f", valid until {result.valid_until.isoformat()}"
    if result.reason:
        line += f"  ({result.reason})"
    print(line)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one patrol command; exit 0 on success, 1 on a refusal, 2 on bad usage."""
    args = build_parser().parse_args(argv)
    store = PatrolStore(args.store or default_store())
    try:
        if args.command in ("fetch", "upload"):
            if not args.token:
                print("anjuka-patrol: --token or ANJUKA_PATROL_TOKEN is required", file=sys.stderr)
                return 2
            get, post = http(args.server, args.token)
            if args.command == "fetch":
                state = fetch(store, get)
                # Every bundle names its expiry (the format requires it).
                until = "?" if state.expires_at is None else format_time(state.expires_at)
                print(
                    f"bundle good until {until}"
                    f": {len(state.revoked)} revoked cards,"
                    f" {len(state.withdrawn)} withdrawn records, {len(state.keys)} keys"
                )
            else:
                report = upload(store, post)
                print(
                    f"{report.uploaded} uploaded, {report.rejected} refused,"
                    f" {report.remaining} still queued"
                )
            return 0
        from cardreader.transport.pcsc import PcscReader

        store.revocation_list().check_fresh(datetime.now(UTC))  # before waiting for a card
        connection = PcscReader(args.reader).wait_for_card(args.card_timeout)
        if connection is None:
            raise PatrolError("no card came to the reader")
        with connection:
            result, _ = check_card(
                store, connection, dwelling_id=args.dwelling_id, headcount=args.headcount
            )
        _say(result, args.json)
        return 0
    except (PatrolError, BundleError, CardError, TransportError, OSError) as exc:
        print(f"anjuka-patrol: {exc}", file=sys.stderr)
        return 1
