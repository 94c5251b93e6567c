"""The statistics' figures: what each dwelling counts for, each area's totals and days."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from anjuka.core.db import Model


class DwellingFigure(Model):
    """What a dwelling counts for in its area's figures: its capacity, whether it is over it.

    Kept so that a change to one dwelling moves its area's figures by the
    difference, without reading the others.
    """

    __tablename__ = "stats_dwellings"

    dwelling_id: Mapped[int] = mapped_column(sa.ForeignKey("dwellings.id"), primary_key=True)
    area_id: Mapped[int] = mapped_column(sa.ForeignKey("areas.id"), index=True)
    capacity: Mapped[int] = mapped_column(default=0)
    over_capacity: Mapped[bool] = mapped_column(default=False)


class AreaTotal(Model):
    """An area's figures now (its own dwellings, not its subtree's)."""

    __tablename__ = "stats_area_totals"

    area_id: Mapped[int] = mapped_column(sa.ForeignKey("areas.id"), primary_key=True)
    residents: Mapped[int] = mapped_column(default=0)
    capacity: Mapped[int] = mapped_column(default=0)
    over_capacity: Mapped[int] = mapped_column(default=0)


class AreaDay(Model):
    """What happened in an area on one of the registry's calendar days.

    Arrivals and departures are counted on the day they happened (an arrival
    registered late counts on its arrival day); the ``*_delta`` columns are
    the day's changes to the totals, so any past day's figure is the total
    now less the changes after it.
    """

    __tablename__ = "stats_area_days"

    area_id: Mapped[int] = mapped_column(sa.ForeignKey("areas.id"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True, index=True)
    arrivals: Mapped[int] = mapped_column(default=0)
    departures: Mapped[int] = mapped_column(default=0)
    residents_delta: Mapped[int] = mapped_column(default=0)
    capacity_delta: Mapped[int] = mapped_column(default=0)
    over_capacity_delta: Mapped[int] = mapped_column(default=0)
