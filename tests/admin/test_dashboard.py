"""The leaders' figures are computed from real tickets: rates, overdue cards, the assessment table, CSV."""

from __future__ import annotations

import csv
import io

from tests.admin.helpers import logged_in
from tests.admin.tickets import GRID_ONE, event, fire_timers, report


async def _a_small_day(client, clock):
    """Tue 10:00: five reports; by Wed 12:00 one closed on time, one resolved late, two overdue, one withdrawn."""
    t1 = await report(client, clock, "楼下烧烤摊油烟太大")
    t2 = await report(client, clock, "小区门口垃圾没人清运", category="sanitation")
    t3 = await report(client, clock, "半夜装修噪音")
    t4 = await report(client, clock, "广场舞太吵", reporter="r4")
    t5 = await report(client, clock, "有人乱停车", category="traffic_parking", where="")
    assert t1.grid_code == GRID_ONE and t5.grid_code is None
    clock.advance(minutes=30)
    await event(client, clock, t1.number, "accept", "worker")
    await event(client, clock, t2.number, "accept", "worker")
    await event(client, clock, t4.number, "withdraw", "resident")
    clock.advance(minutes=30)
    await event(client, clock, t1.number, "resolve", "worker", note="已劝离")
    await event(client, clock, t1.number, "rate", "resident", score="5")
    clock.advance(days=1, hours=1)  # Wed 12:00: past the one-working-day deadline (Wed 10:00)
    await fire_timers(client, clock)
    await event(client, clock, t2.number, "resolve", "worker", note="已清运")
    return t1, t2, t3, t4, t5


async def test_dashboard_figures_come_from_the_tickets(client, redis, key_prefix, clock):
    _, _, t3, _, t5 = await _a_small_day(client, clock)
    await logged_in(client, redis, key_prefix, "viewer")
    page = await client.get("/admin/")
    html = await page.text()
    assert page.status == 200
    assert '<div class="n" id="fig-counted">4</div>' in html  # the withdrawn one does not count
    assert '<div class="n" id="fig-closure">50.0%</div>' in html  # t1 closed, t2 resolved of 4
    assert '<div class="n" id="fig-ontime">50.0%</div>' in html  # t2 finished after a yellow card
    assert '<div class="n" id="fig-satisfaction">100.0%</div>' in html
    assert '<div class="n" id="fig-overdue">2</div>' in html  # t3 (yellow card) and t5 (past its deadline)
    assert t3.number in html and t5.number in html
    assert "黄牌" in html
    assert "/admin/static/vendor/chart.umd.min.js" in html


async def test_assessment_csv_per_grid_community_and_street(client, redis, key_prefix, clock):
    await _a_small_day(client, clock)
    await logged_in(client, redis, key_prefix, "viewer")
    resp = await client.get("/admin/assessment.csv")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    by_level = {r["层级"]: r for r in rows}
    assert set(by_level) == {"街道", "社区", "网格"}  # t5 has no grid and belongs to no unit
    grid = by_level["网格"]
    assert (grid["编码"], grid["名称"]) == (GRID_ONE, "金桥社区第一网格")
    for row in rows:
        assert (row["工单数"], row["办结数"], row["按时办结数"], row["黄牌"], row["评价数"], row["满意数"]) == (
            "3", "2", "1", "2", "1", "1"
        )
        assert (row["办结率"], row["按时办结率"], row["满意率"]) == ("66.7%", "50.0%", "100.0%")
    assert by_level["社区"]["名称"] == "金桥社区" and by_level["街道"]["名称"] == "青枫街道"


async def test_the_chart_library_is_served_by_the_service(client, redis, key_prefix):
    resp = await client.get("/admin/static/vendor/chart.umd.min.js")
    assert resp.status == 200
    assert "Chart.js v4" in (await resp.text())[:200]
