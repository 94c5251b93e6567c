"""What a response schema needs to know about its request: who asks, what they may see.

The schemas read marshmallow's own context (``marshmallow.experimental.context``,
marshmallow 4's replacement for ``Schema.context``). flask-smorest dumps a
view's objects after the view returns, outside any ``with`` the view could
open, so :func:`init_app` opens one context around every view, dump
included; the view fills it in (:func:`set_dump_context`, :func:`tell_revealed`)
and the schemas read it back (:func:`dump_context`, :func:`revealed`). The
masking and reveal decisions thus live in the schemas, passed in, never in a
second copy of the record's fields. Outside a view (a command, a test) wrap
the dump in ``DumpContext({...})``; with no context every personal field is
masked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask
from marshmallow.experimental.context import Context

#: The context of one request's response schemas.
DumpContext = Context[dict[str, Any]]


def set_dump_context(**values: Any) -> None:
    """Tell this request's response schemas ``values`` (merged with earlier ones)."""
    DumpContext.get().update(values)


def dump_context() -> dict[str, Any]:
    """What the view told the response schemas (empty outside any context)."""
    return DumpContext.get({})


def tell_revealed(record: object, values: Mapping[str, object]) -> None:
    """``record``'s personal fields in clear for this response (the reveal was audited)."""
    DumpContext.get().setdefault("revealed", {})[record] = values


def revealed(record: object) -> Mapping[str, object] | None:
    """``record``'s personal fields in clear if this request revealed them, else None."""
    found: Mapping[object, Mapping[str, object]] = dump_context().get("revealed", {})
    return found.get(record)


def with_dump_context(view: Callable[..., Any]) -> Callable[..., Any]:
    """``view`` run, and its response dumped, inside a fresh, empty dump context."""

    @functools.wraps(view)
    def run(*args: Any, **kwargs: Any) -> Any:
        with DumpContext({}):
            return view(*args, **kwargs)

    return run


def init_app(app: Flask) -> None:
    """Give every view of ``app`` its own dump context (call after every blueprint)."""
    for endpoint, view in list(app.view_functions.items()):
        if endpoint != "static":
            app.view_functions[endpoint] = with_dump_context(view)
