"""Bodies of the statistics endpoints."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from anjuka.stats.operations import INTERVALS


class OccupancyQuerySchema(ma.Schema):
    area_code = fields.String(
        validate=validate.Length(1, 32),
        metadata={"description": "the area and its subtree (default: the caller's areas)"},
    )
    from_ = fields.Date(
        data_key="from", metadata={"description": "first day (default: 29 days before to)"}
    )
    to = fields.Date(metadata={"description": "last day (default: today, the registry's)"})
    interval = fields.String(load_default="day", validate=validate.OneOf(INTERVALS))


class PointSchema(ma.Schema):
    start = fields.Date(metadata={"description": "the period's first day"})
    end = fields.Date(metadata={"description": "its last day: stocks are at its end"})
    residents = fields.Integer()
    capacity = fields.Integer()
    arrivals = fields.Integer()
    departures = fields.Integer()
    over_capacity_dwellings = fields.Integer()
    open_alerts = fields.Integer()


class AreaFiguresSchema(ma.Schema):
    area_code = fields.String(attribute="area.code")
    name = fields.String(attribute="area.name")
    figures = fields.Nested(PointSchema, metadata={"description": "the subtree's figures on `to`"})


class OccupancySchema(ma.Schema):
    area_code = fields.String(allow_none=True)
    interval = fields.String()
    from_ = fields.Date(data_key="from", attribute="start")
    to = fields.Date(attribute="end")
    series = fields.Nested(PointSchema, many=True)
    areas = fields.Nested(
        AreaFiguresSchema,
        many=True,
        metadata={"description": "each area one level below, over the subtree, on `to`"},
    )
