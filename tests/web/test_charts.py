"""The charts' geometry: round ticks, bars on one scale, labels cut to fit."""

from __future__ import annotations

from anjuka.web import charts


def test_ticks_are_round_and_reach_the_top():
    assert charts.nice_ticks(0) == [0, 1]
    assert charts.nice_ticks(3) == [0, 1, 2, 3]
    assert charts.nice_ticks(7) == [0, 2, 4, 6, 8]
    assert charts.nice_ticks(1234) == [0, 500, 1000, 1500]


def test_bars_share_one_scale_and_show_what_passes_the_reference():
    chart = charts.horizontal_bars(
        [
            charts.Row("鼓楼派出所", 3, "/a", reference=2),
            charts.Row("南门派出所", 1, "/b", reference=4),
        ]
    )
    over, under = chart.rows
    assert over.width == 3 * under.width
    assert over.over_from == chart.left + over.reference_width
    assert under.over_from is None
    assert chart.ticks[-1].at == chart.right  # the top tick (4) ends the plot


def test_labels_are_cut_by_their_width_chinese_or_latin():
    assert charts.shorten("鼓楼派出所", 8) == "鼓楼派出所"
    assert charts.shorten("Over-occupied dwelling", 8) == "Over-occupi…"
    assert charts.shorten("宁波市海曙区鼓楼街道派出所", 8) == "宁波市海曙区鼓…"
