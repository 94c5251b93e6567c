"""Marshmallow fields shared by the domain schemas."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import fields, validate

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
