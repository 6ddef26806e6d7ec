"""Pure parts of the dashboard: rate arithmetic and the chart data embedded in the page."""

from __future__ import annotations

from bot.admin.dashboard import _chart_data
from bot.admin.figures import Count, Dashboard, Rates


def test_rates_are_none_without_a_base_and_add_up():
    assert Rates().closure_rate is None and Rates().on_time_rate is None and Rates().satisfaction_rate is None
    total = Rates(1, 1, 1, 1, 1, 0, 0) + Rates(1, 1, 0, 1, 0, 1, 0) + Rates(2, 0, 0, 0, 0, 0, 1)
    assert (total.closure_rate, total.on_time_rate, total.satisfaction_rate) == (0.5, 0.5, 0.5)
    assert (total.yellow_cards, total.red_cards) == (1, 1)


def test_chart_data_cannot_close_its_script_element():
    """A display name from an admin's YAML ends up in a <script> block: it must not end it."""
    evil = Count("red", "</script><script>alert(1)</script>", 1)
    d = Dashboard(Rates(), 1, (evil,), (), (), (), (), ())
    data = _chart_data(d)
    assert "</script>" not in data and "\\u003c/script>" in data
