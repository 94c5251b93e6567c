"""PostgreSQL clusters of a test's own: a primary made with initdb, a streaming replica of it.

Each cluster runs as the ``postgres`` user on a free port, in a temporary
folder removed afterwards; the shared server the other tests use is never
touched. The replica is PostgreSQL's own: ``pg_basebackup -R`` from the
primary, started as a hot standby that streams the primary's WAL. When a
cluster cannot be made, the test fails.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from served import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def as_postgres(*args: str) -> subprocess.CompletedProcess:
    """Run a PostgreSQL program as the ``postgres`` user; fail the test if it fails."""
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{args[0]} failed: {done.stdout}{done.stderr}"
    return done


@dataclass
class Cluster:
    """A PostgreSQL cluster of this test's own."""

    home: Path
    data: Path
    port: int
    log: Path

    @property
    def url(self) -> str:
        """The registry's database on this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/anjuka"

    def connect(self, database: str = "anjuka") -> psycopg.Connection:
        """An autocommit connection to ``database`` on this cluster."""
        return psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/{database}", autocommit=True
        )

    def start(self) -> None:
        # -l: without it the server would write to (and hold) this test's pipe.
        as_postgres(
            str(PG_BIN / "pg_ctl"),
            *("-D", str(self.data), "-l", str(self.log), "-w"),
            *("-o", f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1"),
            "start",
        )

    def restart(self) -> None:
        as_postgres(
            str(PG_BIN / "pg_ctl"),
            *("-D", str(self.data), "-l", str(self.log), "-m", "fast", "-w", "restart"),
        )

    def stop(self, mode: str = "fast") -> None:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def _stop_quietly(self) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data)]
            + ["-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )


def _home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="anjuka-pg-"))
    shutil.chown(home, "postgres")
    return home


@contextmanager
def primary_cluster() -> Iterator[Cluster]:
    """A new cluster (initdb, fsync off) with an empty ``anjuka`` database; gone afterwards.

    It allows replication connections from loopback (initdb's default with
    ``trust``), so :func:`streaming_replica` can copy it.
    """
    home = _home()
    cluster = Cluster(home, home / "data", free_port(), home / "server.log")
    as_postgres(
        str(PG_BIN / "initdb"),
        *("-D", str(cluster.data), "-U", "postgres", "-A", "trust", "--no-sync"),
    )
    with (cluster.data / "postgresql.conf").open("a") as conf:
        conf.write("fsync = off\nwal_level = replica\nmax_wal_senders = 4\n")
    try:
        cluster.start()
        with cluster.connect("postgres") as conn:
            conn.execute("CREATE DATABASE anjuka")
        yield cluster
    finally:
        cluster._stop_quietly()
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def streaming_replica(primary: Cluster) -> Iterator[Cluster]:
    """A hot standby of ``primary``: ``pg_basebackup -R`` and started on a port of its own.

    Yields once the replica streams from the primary.
    """
    home = _home()
    replica = Cluster(home, home / "data", free_port(), home / "server.log")
    as_postgres(
        str(PG_BIN / "pg_basebackup"),
        *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
        *("-D", str(replica.data), "-R", "-X", "stream", "-c", "fast", "--no-sync"),
    )
    try:
        replica.start()
        deadline = time.monotonic() + 30
        while True:
            with primary.connect("postgres") as conn:
                streaming = conn.execute(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                ).fetchone()
            if streaming is not None and streaming[0] >= 1:
                break
            assert time.monotonic() < deadline, "the replica did not start streaming"
            time.sleep(0.1)
        yield replica
    finally:
        replica._stop_quietly()
        shutil.rmtree(home, ignore_errors=True)


def wait_for_replay(primary: Cluster, replica: Cluster, seconds: float = 30) -> None:
    """Wait until ``replica`` has replayed everything ``primary`` has written so far."""
    with primary.connect("postgres") as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
    assert row is not None
    target = row[0]
    deadline = time.monotonic() + seconds
    with replica.connect("postgres") as conn:
        while True:
            caught_up = conn.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
            ).fetchone()
            if caught_up is not None and caught_up[0]:
                return
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.05)
