"""The geometry of the pages' bar charts: where each bar, tick and label goes.

The templates (``web/supervise/charts.html``) draw the SVG from these
shapes; every bar carries the link to the list behind it, so that a chart
is also a way into its records. The numbers themselves are in the table
each chart stands beside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: The drawing's width in SVG units (it scales to its box on the page): a wide
#: chart's, and one for half the page, so that its text keeps its size.
WIDTH = 640
HALF_WIDTH = 440
#: The size of a bar's label, in SVG units (the stylesheet's ``.chart-svg .label``).
LABEL_SIZE = 13


def nice_ticks(top: int, count: int = 4) -> list[int]:
    """Round tick values from 0 to at least ``top`` (1, 2 or 5 times a power of ten apart)."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(1, int(step))
    last = step * math.ceil(top / step)
    return list(range(0, last + 1, step))


def text_width(text: str) -> float:
    """Roughly how wide ``text`` is, in ems: a Chinese character is one, a Latin letter half."""
    return sum(1.0 if ord(c) > 0x2E80 else 0.6 for c in text)


def shorten(label: str, ems: float) -> str:
    """``label`` cut to about ``ems`` wide, with an ellipsis (the table has it whole)."""
    if text_width(label) <= ems:
        return label
    kept = ""
    for character in label:
        if text_width(kept + character) > ems - 1:
            break
        kept += character
    return kept + "…"


@dataclass(frozen=True)
class Tick:
    value: int
    at: float


@dataclass(frozen=True)
class Row:
    """One row of a horizontal bar chart: a value, against a reference where there is one."""

    label: str
    value: int
    href: str
    #: What the value is measured against (capacity): drawn as a lighter bar behind.
    reference: int | None = None
    #: The text at the bar's end.
    caption: str = ""

    @property
    def over(self) -> bool:
        return self.reference is not None and self.value > self.reference


@dataclass(frozen=True)
class PlacedRow:
    row: Row
    y: float
    label: str
    width: float
    reference_width: float | None
    #: Where the value passes its reference (the part drawn as over), if it does.
    over_from: float | None


@dataclass(frozen=True)
class HorizontalBars:
    """Bars from a label column to the right, one row each, on a shared scale."""

    rows: list[PlacedRow]
    ticks: list[Tick]
    height: float
    left: float
    right: float
    row_height: float
    bar_height: float
    plot_top: float
    plot_bottom: float
    width: int = WIDTH


def horizontal_bars(
    rows: Sequence[Row],
    *,
    width: int = WIDTH,
    label_width: float | None = None,
    row_height: float = 34,
) -> HorizontalBars:
    """Lay ``rows`` out: labels on the left, bars on one scale, room for the captions."""
    left = label_width or (150.0 if width >= WIDTH else 120.0)
    right = width - (110.0 if width >= WIDTH else 40.0)
    top = max([r.value for r in rows] + [r.reference or 0 for r in rows] + [1])
    ticks = nice_ticks(top)
    scale = (right - left) / ticks[-1]
    plot_top = 24.0
    placed = []
    for index, row in enumerate(rows):
        reference = None if row.reference is None else row.reference * scale
        over_from = left + reference if row.over and reference is not None else None
        placed.append(
            PlacedRow(
                row=row,
                y=plot_top + index * row_height,
                label=shorten(row.label, (left - 14) / LABEL_SIZE),
                width=row.value * scale,
                reference_width=reference,
                over_from=over_from,
            )
        )
    plot_bottom = plot_top + max(len(rows), 1) * row_height
    return HorizontalBars(
        rows=placed,
        ticks=[Tick(t, left + t * scale) for t in ticks],
        height=plot_bottom + 8,
        left=left,
        right=right,
        row_height=row_height,
        bar_height=row_height * 0.64,
        plot_top=plot_top,
        plot_bottom=plot_bottom,
        width=width,
    )


@dataclass(frozen=True)
class Pair:
    """Two values side by side for one period (arrivals and departures of a day)."""

    label: str
    first: int
    second: int
    href: str


@dataclass(frozen=True)
class PlacedPair:
    pair: Pair
    x: float
    slot: float
    bar: float
    first_y: float
    second_y: float
    #: The period's label under the axis, or None where labels would crowd.
    label: str | None


@dataclass(frozen=True)
class PairedColumns:
    """Columns per period, two to a period, rising from a common axis."""

    pairs: list[PlacedPair]
    ticks: list[Tick]
    left: float
    right: float
    top: float
    bottom: float
    height: float = 240
    width: int = WIDTH


def paired_columns(pairs: Sequence[Pair], *, labels: int = 8) -> PairedColumns:
    """Lay ``pairs`` out left to right, labelling about ``labels`` periods (the last always)."""
    left, right, top, bottom = 44.0, WIDTH - 12.0, 16.0, 204.0
    peak = max([p.first for p in pairs] + [p.second for p in pairs] + [1])
    ticks = nice_ticks(peak)
    scale = (bottom - top) / ticks[-1]
    slot = (right - left) / max(len(pairs), 1)
    bar = max(min(slot * 0.4, 16.0), 1.0)
    every = max(1, math.ceil(len(pairs) / labels))
    placed = []
    for index, pair in enumerate(pairs):
        shown = (len(pairs) - 1 - index) % every == 0
        placed.append(
            PlacedPair(
                pair=pair,
                x=left + index * slot,
                slot=slot,
                bar=bar,
                first_y=bottom - pair.first * scale,
                second_y=bottom - pair.second * scale,
                label=pair.label if shown else None,
            )
        )
    return PairedColumns(
        pairs=placed,
        ticks=[Tick(t, bottom - t * scale) for t in ticks],
        left=left,
        right=right,
        top=top,
        bottom=bottom,
    )
