"""Reads that may lag by seconds go to a streaming replica; everything that decides, to the primary.

With ``ANJUKA_REPLICA_URL`` set (a PostgreSQL hot standby fed by streaming
replication from the primary), a view marked :func:`reads_replica` (the
dashboard, the statistics, the lists, the offline bundle) has its plain
SELECTs answered by the replica once the gate has authenticated the caller
on the primary. Anything else in such a request goes to the primary: a
flush and any INSERT, UPDATE or DELETE, a ``SELECT ... FOR UPDATE``, a text
statement; and after the request's first write its reads follow it there,
so a request reads what it wrote. A reveal reads the primary from the
start (:func:`read_primary`). Views not marked never touch the replica, and
with no replica configured nothing here runs at all.

The replica serves only while it answers and lags no more than
``ANJUKA_REPLICA_MAX_LAG`` seconds. Each process measures the lag on the
replica at most once per :attr:`ReplicaRouter.check_every` seconds, at the
first replicated read after the last verdict lapsed, and keeps the verdict
meanwhile. When the replica fails a request's read (down, cut off,
canceling a query for a conflict with recovery), the request is run again
on the primary from a rolled-back session, as a conflict is
(``anjuka.core.transactions``), and the replica is left out until the next
check: the caller sees the primary's answer, never an error of the replica.

Which backend served a replicated request is counted in
``anjuka_db_reads_total{backend}`` and written as ``reads`` in its log line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, g, has_app_context
from flask_sqlalchemy.session import Session
from prometheus_client import Counter

from anjuka.config import Config

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

_READS_ATTR = "_anjuka_reads_replica"
#: Seconds a process keeps its verdict on the replica (reachable, lag within bound).
CHECK_EVERY = 2.0
#: Seconds to wait for a connection to the replica before reading the primary.
CONNECT_TIMEOUT = 2
#: The largest lag bound allowed: the offline bundle's deltas overlap their cursor
#: by 10 minutes, so a bundle cut from a replica this far behind still misses nothing.
MAX_LAG_LIMIT = 300.0

#: The replica's delay behind the primary in seconds: none when it has replayed
#: all it received, else the age of the last transaction it replayed. NULL when
#: it cannot tell (nothing replayed since it started): not trusted.
LAG_SQL = sa.text(
    "SELECT CASE"
    " WHEN NOT pg_is_in_recovery() THEN 0"
    " WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())"
    " END"
)

READS = Counter(
    "anjuka_db_reads",
    "Requests of the lag-tolerant views (dashboard, statistics, lists, offline bundle), "
    "by the backend that answered their reads: replica or primary.",
    ["backend"],
)


def reads_replica(view: F) -> F:
    """Mark a view whose reads may lag by seconds: they go to the replica when one serves."""
    setattr(view, _READS_ATTR, True)
    return view


def wants_replica(view: Callable[..., Any]) -> bool:
    """Whether ``view`` was marked :func:`reads_replica`."""
    return getattr(view, _READS_ATTR, False)


class ReplicaRouter:
    """The replica's engine and this process's verdict on it."""

    def __init__(self, engine: sa.Engine, max_lag: float) -> None:
        self.engine = engine
        self.max_lag = max_lag
        self.check_every = CHECK_EVERY
        self._lock = threading.Lock()
        self._usable = False
        self._checked_at: float | None = None

    def usable(self) -> bool:
        """Whether the replica may answer now (measured at most once per ``check_every``).

        One thread measures; the others keep the last verdict meanwhile.
        """
        checked_at = self._checked_at
        if checked_at is not None and time.monotonic() - checked_at < self.check_every:
            return self._usable
        if not self._lock.acquire(blocking=checked_at is None):
            return self._usable
        try:
            if self._checked_at is checked_at:  # nobody measured while this thread waited
                self._usable = self._measure()
            self._checked_at = time.monotonic()
        finally:
            self._lock.release()
        return self._usable

    def _measure(self) -> bool:
        try:
            with self.engine.connect() as connection:
                lag = connection.execute(LAG_SQL).scalar()
        except sa.exc.SQLAlchemyError as exc:
            log.warning("replica unreachable, reading the primary: %s", type(exc).__name__)
            return False
        if lag is None or float(lag) > self.max_lag:
            log.warning("replica lags (%s s, bound %s s), reading the primary", lag, self.max_lag)
            return False
        return True

    def mark_down(self) -> None:
        """Leave the replica out until the next check (a read on it just failed)."""
        with self._lock:
            self._usable = False
            self._checked_at = time.monotonic()

    def forget(self) -> None:
        """Measure again at the next replicated read."""
        with self._lock:
            self._checked_at = None


def router() -> ReplicaRouter | None:
    """This application's replica, when one is configured."""
    return current_app.extensions.get("anjuka_replica")


def _plain_select(clause: Any) -> bool:
    """A SELECT that writes and locks nothing."""
    if isinstance(clause, sa.Select):
        return clause._for_update_arg is None
    return isinstance(clause, sa.CompoundSelect)


def begin_replica_reads() -> None:
    """Let this request's plain reads go to the replica (called once the caller is known)."""
    g.replica_reads = True
    g.pop("reads_from", None)
    g.pop("replica_failed", None)


def read_primary() -> None:
    """The rest of this request reads the primary (a reveal, a write's consequences)."""
    if g.get("replica_reads"):
        g.replica_reads = False
        g.setdefault("reads_from", "primary")


def replica_failed() -> bool:
    """Whether the replica raised an error while answering this request's reads."""
    return bool(g.pop("replica_failed", False))


def fall_back() -> None:
    """The replica failed this request: it reads the primary (others too, until the next check)."""
    replica = router()
    if replica is not None:
        replica.mark_down()
    g.replica_reads = False
    g.reads_from = "primary"


def count_reads() -> None:
    """Count which backend answered a replicated request (none if it read nothing)."""
    backend = g.get("reads_from")
    if backend is not None:
        READS.labels(backend).inc()


class RoutingSession(Session):
    """The session: a replicated request's plain SELECTs to the replica, all else to the primary."""

    def get_bind(
        self,
        mapper: Any | None = None,
        clause: Any | None = None,
        bind: sa.Engine | sa.Connection | None = None,
        **kwargs: Any,
    ) -> sa.Engine | sa.Connection:
        if bind is None and has_app_context() and g.get("replica_reads"):
            if not self._flushing and _plain_select(clause):
                replica = _replica_for_request()
                if replica is not None:
                    return replica
            elif self._flushing or clause is not None:
                read_primary()  # a write: the request reads what it wrote from here on
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


def _replica_for_request() -> sa.Engine | None:
    """The replica's engine if this request reads it; decided at its first read."""
    backend = g.get("reads_from")
    if backend is None:
        replica = router()
        usable = replica is not None and replica.usable()
        backend = g.reads_from = "replica" if usable else "primary"
    if backend == "replica":
        return current_app.extensions["anjuka_replica"].engine
    return None


def _watch_failures(engine: sa.Engine) -> None:
    """Note, for the request, an error the replica raised while answering it."""

    @sa.event.listens_for(engine, "handle_error")
    def _failed(_context: Any) -> None:
        if has_app_context() and g.get("reads_from") == "replica":
            g.replica_failed = True


def init_app(app: Flask, config: Config) -> None:
    """Open the replica's engine when ``ANJUKA_REPLICA_URL`` names one."""
    url = config.resolved_replica_url
    if url is None:
        return
    if not url.startswith("postgresql") or not config.resolved_database_url.startswith(
        "postgresql"
    ):
        raise RuntimeError("ANJUKA_REPLICA_URL needs PostgreSQL, for the primary and the replica.")
    if not 0 < config.replica_max_lag <= MAX_LAG_LIMIT:
        raise RuntimeError(
            f"ANJUKA_REPLICA_MAX_LAG is seconds, above 0 and at most {MAX_LAG_LIMIT:g}."
        )
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "connect_args": {"connect_timeout": CONNECT_TIMEOUT},
        "echo": config.sql_echo,
    }
    if config.db_pool_size:
        options.update(pool_size=config.db_pool_size, max_overflow=config.db_pool_size)
    engine = sa.create_engine(url, **options)
    _watch_failures(engine)
    app.extensions["anjuka_replica"] = ReplicaRouter(engine, config.replica_max_lag)
