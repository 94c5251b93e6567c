"""Benchmark: APDUs and wall time per card issuance through pcscd + vpcd.

Run as a command (not collected by pytest):

    .venv/bin/python tests/desk_daemon/bench_issuance.py [--count 10]

It reuses a running pcscd or starts one (and stops only that one), starts
``anjuka-cardsim`` per card, and times GET UID + write_record (with its
read-back) for a first issuance on a blank card and for a re-issuance on a
card that holds a record, plus a verifying read.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cardreader.protocol import card
from cardreader.record import CardRecord, sign_record, verify_record
from cardreader.transport.base import Connection, NoReaderError
from cardreader.transport.pcsc import PcscReader, list_readers

PORT = {"cpu": 35963, "mifare1k": 35964}
NAME = {35963: "Virtual PCD 00 00", 35964: "Virtual PCD 00 01"}
KEYS = {
    "cpu": {"transport_key": "ff" * 16, "write_key": "a1" * 16, "internal_key": "b2" * 16},
    "mifare1k": {"transport_key": "ff" * 6, "key_a": b"ANJUKA".hex(), "key_b": "c3d4e5f60718"},
}
SIGNER = Ed25519PrivateKey.generate()


class CountingConnection(Connection):
    """Counts the APDUs that go through it."""

    def __init__(self, inner: Connection) -> None:
        self.inner = inner
        self.count = 0

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        self.count += 1
        return self.inner.send_and_receive(apdu)

    def close(self) -> None:
        self.inner.close()


def record_for(uid: bytes, residence_id: int) -> bytes:
    today = datetime.date(2026, 1, 1)  # any fixed day: the benchmark times writes, not dates
    record = CardRecord(
        "AJ00000012Q", residence_id, "330203", today, today + datetime.timedelta(days=365), 1
    )
    return sign_record(record, uid, SIGNER)


def ensure_pcscd() -> subprocess.Popen[bytes] | None:
    try:
        list_readers()
        return None
    except NoReaderError:
        pass
    proc = subprocess.Popen([shutil.which("pcscd") or "/usr/sbin/pcscd", "--foreground"])
    for _ in range(100):
        try:
            if set(NAME.values()) <= set(list_readers()):
                return proc
        except NoReaderError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("pcscd with the vpcd readers did not come up")


def bench(card_type: str, count: int, workdir: Path) -> dict[str, list[float]]:
    reader = PcscReader(NAME[PORT[card_type]])
    results: dict[str, list[float]] = {
        k: [] for k in ("first", "first_apdus", "re", "re_apdus", "read", "read_apdus")
    }
    for n in range(count):
        state = workdir / f"{card_type}-{n}.json"
        sim = subprocess.Popen(
            [sys.executable, "-m", "cardreader.sim.cli", "--type", card_type]
            + ["--reader-port", str(PORT[card_type]), "--state", str(state)],
            stderr=subprocess.DEVNULL,
        )
        try:
            while not state.exists():
                time.sleep(0.01)
            uid_expected = bytes.fromhex(json.loads(state.read_text())["uid"])
            while True:
                presented = card.present_card(reader, 5)
                assert presented is not None
                if presented.uid == uid_expected:
                    break
                presented.connection.close()
                time.sleep(0.02)
            for phase, residence in (("first", 1), ("re", 2)):
                conn = CountingConnection(presented.connection)
                started = time.perf_counter()
                uid = card.read_uid(conn)
                card.write_record(conn, KEYS[card_type], record_for(uid, residence), card_type)
                results[phase].append(time.perf_counter() - started)
                results[f"{phase}_apdus"].append(conn.count)
            conn = CountingConnection(presented.connection)
            started = time.perf_counter()
            uid = card.read_uid(conn)
            data = card.read_record(conn, card_type)
            verify_record(data, uid, {1: SIGNER.public_key()})
            results["read"].append(time.perf_counter() - started)
            results["read_apdus"].append(conn.count)
            presented.connection.close()
        finally:
            sim.terminate()
            sim.wait()
    reader.close()
    return results


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10, help="cards per type")
    args = parser.parse_args()
    started = ensure_pcscd()
    try:
        print(
            f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.platform()}, "
            f"Python {platform.python_version()}"
        )
        print(f"{args.count} cards per type\n")
        print("| card type | operation | APDUs | median ms | max ms |")
        print("|---|---|---:|---:|---:|")
        with tempfile.TemporaryDirectory() as tmp:
            for card_type in ("cpu", "mifare1k"):
                results = bench(card_type, args.count, Path(tmp))
                for phase, label in (
                    ("first", "first issuance (blank card)"),
                    ("re", "re-issuance (card with a record)"),
                    ("read", "read + verify"),
                ):
                    times = results[phase]
                    apdus = results[f"{phase}_apdus"]
                    print(
                        f"| {card_type} | {label} | {int(statistics.median(apdus))} | "
                        f"{statistics.median(times) * 1000:.1f} | {max(times) * 1000:.1f} |"
                    )
    finally:
        if started is not None:
            started.terminate()
            started.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
