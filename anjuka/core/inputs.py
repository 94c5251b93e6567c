"""Request input that no schema should have to think about.

Every JSON body, form (the pages'), query string and path is checked once, before any view,
for values no column can store: NUL characters (PostgreSQL text refuses
them), lone UTF-16 surrogates (not encodable as UTF-8), integers beyond 64
bits, and nesting deep enough to exhaust the parser. They are refused with
the contract's error shape instead of surfacing as a database error.
"""

from __future__ import annotations

import json
from typing import Any

from flask import request

from anjuka.core.errors import AppError, InvalidInput, NotFound

#: No registry body nests deeper than a few levels; this leaves ample room.
MAX_DEPTH = 32
_INT_LIMIT = 2**63


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "Contains a NUL character."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "Is not valid Unicode text."
    return None


def _value_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return _string_problem(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT_LIMIT:
        return "Is out of range."
    return None


def _json_problems(document: Any) -> dict[str, list[str]]:
    """Walk ``document`` without recursion; field path -> problem."""
    problems: dict[str, list[str]] = {}
    stack: list[tuple[str, Any, int]] = [("", document, 0)]
    while stack:
        path, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise AppError(
                "The request body is nested too deeply.", code="malformed_json", status=400
            )
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                key_problem = _string_problem(key)
                if key_problem:
                    problems[child.encode("utf-8", "replace").decode()] = [key_problem]
                    continue
                stack.append((child, item, depth + 1))
        elif isinstance(value, list):
            stack.extend(
                (f"{path}.{i}" if path else str(i), v, depth + 1) for i, v in enumerate(value)
            )
        else:
            problem = _value_problem(value)
            if problem:
                problems[path or "_body"] = [problem]
    return problems


def check_request_input() -> None:
    """Refuse unstorable input: 404 for a path, 422 for a query or body, 400 for deep nesting."""
    for value in (request.view_args or {}).values():
        if isinstance(value, str) and _string_problem(value):
            raise NotFound("No such resource.")
    problems = {
        name: [problem]
        for name, value in request.args.items(multi=True)
        if (problem := _string_problem(name) or _string_problem(value))
    }
    if request.is_json and request.content_length != 0:
        raw = request.get_data(cache=True)  # 413 beyond MAX_CONTENT_LENGTH
        if raw:
            try:
                document = json.loads(raw)
            except RecursionError:
                raise AppError(
                    "The request body is nested too deeply.", code="malformed_json", status=400
                ) from None
            except ValueError:
                document = None  # the schema layer reports malformed JSON
            problems.update(_json_problems(document))
    elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        problems.update(
            {
                name: [problem]
                for name, value in request.form.items(multi=True)
                if (problem := _string_problem(name) or _string_problem(value))
            }
        )
    if problems:
        raise InvalidInput(
            "The request holds values the registry cannot store.",
            code="invalid_value",
            errors=problems,
        )
