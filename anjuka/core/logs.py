"""Structured logs: one JSON object per line, with the request's id; never personal data.

Every request is logged once, when it is answered, by :func:`log_request`:
its id (``X-Request-Id``, as the gate kept it), method, endpoint (the
view's name, never the path, which may carry a card number), status and
duration, and for a view that may read the replica which backend
answered (``reads``). Nothing of the body, the query string, the headers
or the client address is logged. Other records written during a request carry its id too.

The shipped ``gunicorn.conf.py`` formats every logger (the app's and
gunicorn's own) with :class:`JsonFormatter` through :data:`LOGGING`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from flask import g, has_request_context

#: Fields a record may carry besides its message (``log.info(..., extra={...})``).
FIELDS = ("request_id", "method", "endpoint", "status", "duration_ms", "reads")

request_log = logging.getLogger("anjuka.requests")


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: time (UTC), level, logger, message and known fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if "request_id" not in entry and has_request_context() and "request_id" in g:
            entry["request_id"] = g.request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_request(method: str, endpoint: str, status: int, seconds: float) -> None:
    """The one line every answered request leaves.

    A request of a lag-tolerant view read with a replica configured also
    says which backend answered its reads (``reads``: replica or primary).
    """
    fields: dict[str, Any] = {
        "request_id": g.get("request_id"),
        "method": method,
        "endpoint": endpoint,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
    }
    if g.get("reads_from") is not None:
        fields["reads"] = g.reads_from
    request_log.info("%s %s %s", method, endpoint, status, extra=fields)


#: ``logging.config.dictConfig`` settings: everything as JSON lines on stderr.
#: gunicorn's own access log is off: the app's request line replaces it
#: without the path and query string.
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "anjuka.core.logs.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        "alembic": {"level": "WARNING"},
    },
}
