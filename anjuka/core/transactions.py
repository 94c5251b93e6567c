"""One transaction per request, committed in one place.

Every view runs inside :func:`committing`: a view that returns normally has
its writes committed once, after its response body was built (so a commit
that fails is still answered with the error shape); one that raises has them
rolled back by the error handlers (``anjuka.core.errors``). Operations only
flush. Three deliberate exceptions, each named where it is used:

* a refusal whose writes are its own record (a failed sign-in's audit event,
  a daemon's refused attempt) raises an :class:`~anjuka.core.errors.AppError`
  with ``keep_writes=True``: the handler commits instead of rolling back;
* a request that must keep what it recorded so far whatever refusal follows
  (a look-up's audit event before the rules are applied) calls
  :func:`keep_on_refusal`: a refusal then undoes only what came after;
* a long poll, which must not hold one transaction for its whole wait, ends
  each round with :func:`checkpoint`.

A view marked :func:`retry_conflicts` (the registrations that decide) is run
again, whole, when PostgreSQL aborts its transaction for a serialization
failure or a deadlock: up to :data:`CONFLICT_TRIES` tries with a short
jittered pause. Each try starts from a rolled-back session, so its audit
events and the signal handlers' writes exist once, from the try that
commits. What a try did outside the database is undone or not done again:
the messages it flashed are taken back, and the throttles judge the request
once, at its first try (:func:`is_retry`). What no retry can mend (the last
try's conflict, a lost connection, a database that is down) is answered
``503 try_again`` with ``Retry-After`` (``anjuka.core.errors``).

A view marked :func:`~anjuka.core.replica.reads_replica` reads a streaming
replica when one is configured and serves; when the replica fails one of
its reads, it is run again, once, on the primary, from a rolled-back
session (``anjuka.core.replica``).

CLI commands get the same with :func:`command_transaction`.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from flask import Flask, g, message_flashed, session
from sqlalchemy import exc as sa_exc

from anjuka.core import replica
from anjuka.core.db import db

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

_RETRY_ATTR = "_anjuka_retry_conflicts"
#: How many times a :func:`retry_conflicts` view is tried before its conflict is answered 503.
CONFLICT_TRIES = 3
#: The first pause between tries, in seconds; it doubles, with jitter, at each try.
CONFLICT_PAUSE = 0.05

#: PostgreSQL states that mean "another transaction was in the way; try again":
#: serialization failure, deadlock detected, lock not available.
CONFLICT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
#: States of a server going away: admin or crash shutdown, cannot connect now.
_GONE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
#: SQLite's "busy" and "locked" (after its own busy timeout).
_SQLITE_BUSY = frozenset({5, 6})


def sqlstate(exc: sa_exc.DBAPIError) -> str | None:
    """The SQLSTATE of a database error, when the driver gives one."""
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is a transaction aborted for another's sake (worth a new try)."""
    return isinstance(exc, sa_exc.DBAPIError) and sqlstate(exc) in CONFLICT_SQLSTATES


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not serve now (down, restarting, busy).

    A lost connection is never retried inside the request: its transaction
    may have been cut during the commit, so only the caller (with its
    ``Idempotency-Key``) may safely send it again.
    """
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = sqlstate(exc)
    if state is not None:
        return state.startswith("08") or state in _GONE_SQLSTATES
    if getattr(exc.orig, "sqlite_errorcode", None) in _SQLITE_BUSY:
        return True
    # psycopg says nothing of state when it never reached the server.
    return isinstance(exc, sa_exc.OperationalError) and type(exc.orig).__module__.startswith(
        "psycopg"
    )


def retry_conflicts(view: F) -> F:
    """Mark a deciding view to be tried again on a serialization failure or deadlock.

    Only for views whose every effect is in the database (audit events,
    signal handlers, outbox rows): a try that is rolled back leaves nothing.
    """
    setattr(view, _RETRY_ATTR, True)
    return view


def _pause(attempt: int) -> float:
    """Seconds to wait before try ``attempt + 1``: doubling, with full jitter."""
    return CONFLICT_PAUSE * (2 ** (attempt - 1)) * (0.5 + random.random())  # noqa: S311


def is_retry() -> bool:
    """Whether the view now runs again after a conflict (its request's throttles were judged)."""
    return int(g.get("conflict_try", 1)) > 1


def _count_flash(_app: Flask, **_: object) -> None:
    g.flashed_in_try = int(g.get("flashed_in_try", 0)) + 1


def _discard_try() -> None:
    """Undo what a conflicting try did: its writes, its savepoint, the messages it flashed."""
    g.pop("kept_savepoint", None)
    flashed = int(g.pop("flashed_in_try", 0))
    if flashed:
        session["_flashes"] = session.get("_flashes", [])[:-flashed]
    db.session.rollback()


def committing(view: F) -> F:
    """``view`` with its writes committed when it returns (rolled back when it raises).

    A view marked :func:`retry_conflicts` is tried again on a conflict. A
    view marked :func:`~anjuka.core.replica.reads_replica` reads the replica
    when one serves, and is run again on the primary when the replica fails it.
    """
    tries = CONFLICT_TRIES if getattr(view, _RETRY_ATTR, False) else 1
    lagging_reads = replica.wants_replica(view)

    @functools.wraps(view)
    def run(*args: Any, **kwargs: Any) -> Any:
        attempt = 1
        on_replica = lagging_reads and replica.router() is not None
        while True:
            g.conflict_try = attempt
            g.pop("flashed_in_try", None)
            if on_replica:
                replica.begin_replica_reads()
            try:
                try:
                    result = view(*args, **kwargs)
                except sa_exc.DBAPIError:
                    if on_replica and replica.replica_failed():
                        log.warning("the replica failed a read; reading the primary instead")
                        _discard_try()
                        replica.fall_back()
                        on_replica = False  # once per request: the retry reads the primary
                        continue
                    raise
                db.session.commit()
                if lagging_reads:
                    replica.count_reads()
                return result
            except sa_exc.DBAPIError as exc:
                if attempt >= tries or not is_conflict(exc):
                    raise
                log.warning(
                    "transaction conflict (%s), try %d of %d", sqlstate(exc), attempt, tries
                )
                _discard_try()
                time.sleep(_pause(attempt))
                attempt += 1

    return run  # type: ignore[return-value]


def keep_on_refusal() -> None:
    """What this request wrote so far stays, even if a refusal (AppError) follows.

    A savepoint marks the place: the error handler rolls back to it and
    commits the rest.
    """
    db.session.flush()
    g.kept_savepoint = db.session.begin_nested()


def finish_refusal(keep_writes: bool) -> None:
    """End a refused request's transaction: commit its record, or roll everything back."""
    kept = g.pop("kept_savepoint", None)
    try:
        if keep_writes:
            db.session.commit()
        elif kept is not None and kept.is_active:
            kept.rollback()
            db.session.commit()
        else:
            db.session.rollback()
    except Exception:
        db.session.rollback()
        raise


def checkpoint() -> None:
    """Commit what a long-running request did so far and go on in a new transaction."""
    db.session.commit()


@contextmanager
def command_transaction() -> Iterator[None]:
    """A CLI command's work as one transaction: committed if it ends, rolled back if not.

    A refusal (AppError) exits the command with status 1, its code and message.
    """
    from anjuka.core.errors import AppError  # errors imports this module

    try:
        yield
    except AppError as exc:
        db.session.rollback()
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()


def init_app(app: Flask) -> None:
    """Wrap every view of ``app`` (call after every blueprint is registered)."""
    for endpoint, view in list(app.view_functions.items()):
        if endpoint != "static":
            app.view_functions[endpoint] = committing(view)
    message_flashed.connect(_count_flash, app)
