"""The PC/SC test harness shared by the card reader and integration tests.

pcscd with the two vpcd readers, and ``anjuka-cardsim`` subprocesses as the
cards in them. A test that cannot reach pcscd fails: it never skips.
Conftests import the fixtures from here (``pcscd``, ``cardsim``).

The vpcd readers are one per machine: a test holds a machine-wide lock while
it has simulated cards in them (the ``cardsim`` fixture takes it), so two
test sessions on one host take turns instead of inserting cards into each
other's readers.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

READERS = {35963: "Virtual PCD 00 00", 35964: "Virtual PCD 00 01"}
LOCK_PATH = Path(tempfile.gettempdir()) / "anjuka-vpcd.lock"
#: Wait this long for another session to finish with the readers.
LOCK_WAIT = 280.0
_held: list = []  # [open lock file, depth] while this process holds the lock


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """Hold the machine-wide vpcd lock (re-entrant within this process)."""
    if _held:
        _held[1] += 1
    else:
        handle = LOCK_PATH.open("a")
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.close()
                    pytest.fail(f"another test session kept the vpcd readers ({LOCK_PATH})")
                time.sleep(0.2)
        _held[:] = [handle, 1]
    try:
        yield
    finally:
        _held[1] -= 1
        if _held[1] == 0:
            handle = _held.pop(0)
            _held.clear()
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


def _pcsc_readers() -> list[str] | None:
    from cardreader.transport.base import NoReaderError
    from cardreader.transport.pcsc import list_readers

    try:
        return list_readers()
    except NoReaderError:
        return None


def _start_pcscd() -> tuple[subprocess.Popen[bytes] | None, list[str]]:
    started: subprocess.Popen[bytes] | None = None
    if _pcsc_readers() is None:
        binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
        if not Path(binary).exists():
            pytest.fail("pcscd is not installed (apt-get install pcscd vsmartcard-vpcd)")
        started = subprocess.Popen(
            [binary, "--foreground"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    deadline = time.monotonic() + 10
    readers = _pcsc_readers() or []
    while not set(READERS.values()) <= set(readers) and time.monotonic() < deadline:
        time.sleep(0.1)
        readers = _pcsc_readers() or []
    if not set(READERS.values()) <= set(readers):
        if started:
            started.terminate()
        pytest.fail(f"pcscd with the vpcd readers is not reachable (readers: {readers})")
    return started, readers


@pytest.fixture(scope="session")
def pcscd() -> Iterator[list[str]]:
    """A running pcscd with both vpcd readers; started here only if none runs."""
    with machine_lock():  # one session starts it, the others find it running
        started, readers = _start_pcscd()
    yield readers
    if started is not None:
        with machine_lock():  # not while another session has cards in the readers
            started.terminate()
            try:
                started.wait(5)
            except subprocess.TimeoutExpired:
                started.kill()


@dataclass
class SimProcess:
    """A running ``anjuka-cardsim``."""

    proc: subprocess.Popen[bytes]
    port: int
    state: Path | None
    log: Path
    reader_name: str = field(init=False)

    def __post_init__(self) -> None:
        self.reader_name = READERS[self.port]

    def wait_exit(self, timeout: float = 5.0) -> int:
        """Wait for the simulator to leave on its own (after a tear)."""
        return self.proc.wait(timeout)

    def terminate(self) -> None:
        """SIGTERM (then SIGKILL) and reap the process."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        """Terminate, and wait until pcscd has seen the card leave."""
        self.terminate()
        wait_reader(self.reader_name, present=False)


def wait_reader(name: str, present: bool, timeout: float = 5.0) -> None:
    """Wait until pcscd reports reader ``name`` with (or without) a card."""
    from cardreader.transport.pcsc import PcscReader

    reader = PcscReader(name)
    try:
        deadline = time.monotonic() + timeout
        while reader.card_present() != present:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: card present is not {present} after {timeout} s")
            time.sleep(0.02)
    finally:
        reader.close()


@pytest.fixture
def cardsim(pcscd: list[str], tmp_path: Path) -> Iterator[Callable[..., SimProcess]]:
    """Factory: start ``anjuka-cardsim`` on a vpcd port; every one is stopped at the end."""
    running: list[SimProcess] = []

    def start(
        card_type: str,
        port: int = 35963,
        state: Path | None = None,
        uid: str | None = None,
        tear_after: int | list[int] | None = None,
        reinsert_after: float | None = None,
        clone_of: Path | None = None,
        wait: bool = True,
        tear_write: str | None = None,
    ) -> SimProcess:
        for other in running:
            if other.port == port and other.proc.poll() is None:
                other.stop()
        args = [sys.executable, "-m", "cardreader.sim.cli", "--type", card_type]
        args += ["--reader-port", str(port)]
        if state is not None:
            args += ["--state", str(state)]
        if uid is not None:
            args += ["--uid", uid]
        if tear_after is not None:
            points = [tear_after] if isinstance(tear_after, int) else tear_after
            args += ["--tear-after", ",".join(str(point) for point in points)]
        if tear_write is not None:
            args += ["--tear-write", tear_write]
        if reinsert_after is not None:
            args += ["--reinsert-after", str(reinsert_after)]
        if clone_of is not None:
            args += ["--clone-of", str(clone_of)]
        log = tmp_path / f"cardsim-{len(running)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=os.environ)
        sim = SimProcess(proc, port, state, log)
        running.append(sim)
        if wait:
            wait_reader(sim.reader_name, present=True)
        return sim

    with machine_lock():  # the readers are this test's until its cards are gone
        yield start
        for sim in running:
            sim.terminate()
        for port in {sim.port for sim in running}:
            wait_reader(READERS[port], present=False)
