"""What a response schema needs to know about its request: who asks, what they may see.

A view sets it once (``set_dump_context``) before it returns the objects;
flask-smorest dumps them after the view, still inside the request, and the
schemas' ``fields.Method`` functions read it back (``dump_context``). The
masking and reveal decisions thus live in the schemas, passed in, never in
a second copy of the record's fields.
"""

from __future__ import annotations

from typing import Any

from flask import g


def set_dump_context(**values: Any) -> None:
    """Tell this request's response schemas ``values`` (merged with earlier ones)."""
    g.dump_context = {**g.get("dump_context", {}), **values}


def dump_context() -> dict[str, Any]:
    """What the view told the response schemas (empty outside a request)."""
    return g.get("dump_context", {}) if g else {}
