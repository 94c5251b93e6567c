"""Judging one row of a legacy file: its cells read as the API reads a request.

A row the rules refuse raises :class:`RowRefused` and becomes a
:class:`Refusal` (its line, a stable code, the field, a message); the import
goes on with the next row. :class:`Intake` is how one kind of file goes in.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import marshmallow as ma

from anjuka.imports.formats import REQUIRED
from anjuka.imports.reading import Row


@dataclass
class Refusal:
    """A row the import did not take, and why."""

    line: int
    code: str
    field: str | None = None
    message: str = ""


class RowRefused(Exception):
    """Raised while judging one row; becomes a :class:`Refusal`."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def required(row: Row, kind: str) -> None:
    for name in REQUIRED.get(kind, ()):
        if not row.cells.get(name):
            raise RowRefused("missing_value", f"{name} is empty.", name)


def optional(cells: dict[str, str], name: str) -> str | None:
    value = cells.get(name)
    return value if value else None


def schema_load(schema: ma.Schema, data: dict[str, Any]) -> dict[str, Any]:
    """Load ``data`` with the API's schema; the first field error refuses the row."""
    try:
        return schema.load(data)
    except ma.ValidationError as exc:
        name, problems = next(iter(exc.normalized_messages().items()))
        message = problems[0] if isinstance(problems, list) else str(problems)
        if isinstance(problems, dict):  # nested (a policy field)
            inner, texts = next(iter(problems.items()))
            name, message = f"{name}.{inner}", texts[0]
        raise RowRefused("validation_error", str(message), str(name)) from None


class SchemaLoader:
    """An API schema's load, without its per-load machinery, for the rows that pass.

    Each field deserialises its cell as ``schema.load`` would have it do (a
    text cell of a ``String`` field is kept as it is once the field's own
    validators accept it); a row that any field refuses, or that lacks a
    field that is required or has a default, goes through ``schema.load`` itself,
    so the rows refused and their messages are the schema's own. Only for
    schemas without hooks or renamed fields, which this would skip.
    """

    def __init__(self, schema: ma.Schema) -> None:
        hooks = any(schema._hooks.values())  # noqa: SLF001 - a hook would be skipped
        renamed = any(f.data_key or f.attribute for f in schema.fields.values())
        if hooks or renamed:
            raise ValueError(f"{type(schema).__name__} has hooks or renamed fields")
        self.schema = schema
        self.names = set(schema.fields)
        #: Fields a row may leave out: absent from the load's result too.
        self.omissible = {
            name
            for name, f in schema.fields.items()
            if not f.required and f.load_default is ma.missing
        }
        self.text = {
            name: tuple(f.validators)
            for name, f in schema.fields.items()
            if type(f) is ma.fields.String
        }

    def load(self, data: dict[str, Any]) -> dict[str, Any]:
        given = data.keys()
        if not given <= self.names or not self.names - given <= self.omissible:
            return schema_load(self.schema, data)
        loaded: dict[str, Any] = {}
        fields = self.schema.fields
        try:
            for name, value in data.items():
                validators = self.text.get(name)
                if validators is not None and isinstance(value, str):
                    for validator in validators:
                        validator(value)
                    loaded[name] = value
                else:
                    loaded[name] = fields[name].deserialize(value, name, data)
        except ma.ValidationError:
            return schema_load(self.schema, data)
        return loaded


def number(value: str | None, name: str, kind: type = int) -> Any:
    if value is None:
        return None
    try:
        return kind(value) if kind is int else Decimal(value)
    except (ValueError, InvalidOperation):
        raise RowRefused("validation_error", f"{name} is not a number.", name) from None


def flag(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    truth = {
        "true": True,
        "1": True,
        "yes": True,
        "是": True,
        "false": False,
        "0": False,
        "no": False,
        "否": False,
    }
    if value.lower() not in truth:
        raise RowRefused("validation_error", f"{name} is not true or false.", name)
    return truth[value.lower()]


def day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RowRefused("validation_error", f"{name} is not a date (YYYY-MM-DD).", name) from None


def decimal_float(cells: dict[str, str], name: str) -> float | None:
    value = optional(cells, name)
    return None if value is None else float(number(value, name, Decimal))


class Intake(abc.ABC):
    """How one kind of file goes in: judge a batch, insert what passed.

    A kind builds the API's schemas it judges with once, for the whole import
    (a marshmallow schema deep-copies its fields when it is made).
    """

    kind = ""

    def __init__(self) -> None:
        self.admitted_over_capacity = 0

    @abc.abstractmethod
    def load(self, rows: list[Row]) -> tuple[int, list[Refusal]]:
        """Judge ``rows``, insert the good ones; how many went in, and the refusals."""

    def finish(self) -> None:  # noqa: B027 - most kinds have nothing to do afterwards
        """After the last batch (the kinds that change figures bring them up to date)."""
