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

CLI commands get the same with :func:`command_transaction`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from flask import Flask, g

from anjuka.core.db import db

F = TypeVar("F", bound=Callable[..., Any])


def committing(view: F) -> F:
    """``view`` with its writes committed when it returns (rolled back when it raises)."""

    @functools.wraps(view)
    def run(*args: Any, **kwargs: Any) -> Any:
        result = view(*args, **kwargs)
        db.session.commit()
        return result

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
