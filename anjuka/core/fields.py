"""Marshmallow fields shared by the domain schemas."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from marshmallow import fields, missing, validate

from anjuka.core.dumping import revealed

#: Ids are 32-bit integers in every table.
MAX_ID = 2**31 - 1


class Measure(fields.Decimal):
    """A decimal measure (m²): loaded exactly as Decimal, sent as a JSON number."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("places", 2)
        super().__init__(**kwargs)

    # A JSON number where fields.Decimal gives a Decimal: the override is the point.
    def _serialize(  # type: ignore[override]
        self, value: Any, attr: str | None, obj: Any, **kwargs: Any
    ) -> float | None:
        if value is None:
            return None
        return float(Decimal(value))


class Id(fields.Integer):
    """A record id: a positive 32-bit integer (pass ``strict=True`` for JSON bodies)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Range(1, MAX_ID))
        super().__init__(**kwargs)


class _Personal:
    """A personal value: masked, or in clear where this request revealed its record.

    ``masked`` names the attribute holding the masked value (or computes it
    from the record); a reveal (an audited operation) hands the clear values
    to the schema through :func:`anjuka.core.dumping.tell_revealed`. A
    record anonymised by retention has none left (None).
    """

    def __init__(self, *, masked: str | Callable[[Any], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.masked = masked

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = missing) -> Any:
        if getattr(obj, "anonymised_on", None) is not None:
            return None  # retention removed it: nothing to show, masked or not
        clear = revealed(obj)
        if clear is not None:
            return clear[attr]
        if callable(self.masked):
            return self.masked(obj)
        return super().get_value(obj, self.masked, accessor, default)  # type: ignore[misc]


class PersonalString(_Personal, fields.String):
    """A personal text, masked unless revealed."""


class PersonalDate(_Personal, fields.Date):
    """A personal date, hidden (None) unless revealed."""


class Masked(fields.Boolean):
    """Whether the record's personal fields are masked in this response."""

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = missing) -> Any:
        return revealed(obj) is None


FieldT = TypeVar("FieldT", bound=fields.Field)


def computed(
    kind: type[FieldT], compute: Callable[[Any], Any], *args: Any, **kwargs: Any
) -> FieldT:
    """A ``kind(*args, **kwargs)`` field whose value ``compute`` derives from the record.

    Unlike ``fields.Function`` it keeps its type in the OpenAPI document.
    """
    field = kind(*args, **kwargs)

    def get_value(obj: Any, attr: str, accessor: Any = None, default: Any = missing) -> Any:
        return compute(obj)

    field.get_value = get_value  # type: ignore[method-assign]
    return field
