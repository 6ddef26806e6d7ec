"""The dashboard (统计看板) and the assessment table as CSV."""

from __future__ import annotations

import csv
import io
import json
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.admin.context import ADMIN
from bot.admin.data import all_tickets
from bot.admin.figures import Dashboard, compute
from bot.admin.units import units_of


async def _figures(request: web.Request) -> Dashboard:
    services = request.app[ADMIN].services
    tickets = await all_tickets(services)
    tz = ZoneInfo(services.config.tickets.timezone)
    return compute(tickets, services.flows.flow, services.clock(), tz, units_of(services.directory))


def _chart_data(d: Dashboard) -> str:
    def pct(v: float | None) -> float | None:
        return None if v is None else round(v * 100, 1)

    return json.dumps(
        {
            "colour": {
                "labels": [c.label for c in d.open_by_colour],
                "keys": [c.key for c in d.open_by_colour],
                "values": [c.n for c in d.open_by_colour],
            },
            "status": {"labels": [c.label for c in d.open_by_status], "values": [c.n for c in d.open_by_status]},
            "level": {"labels": [c.label for c in d.open_by_level], "values": [c.n for c in d.open_by_level]},
            "trend": {
                "labels": [p.label for p in d.trend],
                "closure": [pct(p.rates.closure_rate) for p in d.trend],
                "on_time": [pct(p.rates.on_time_rate) for p in d.trend],
                "satisfaction": [pct(p.rates.satisfaction_rate) for p in d.trend],
            },
        },
        ensure_ascii=False,
    ).replace("<", "\\u003c")  # the JSON sits in a <script> element: no "</script>" may appear


async def dashboard_page(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    figures = await _figures(request)
    return ctx.render(
        request,
        "dashboard.html",
        d=figures,
        chart_data=_chart_data(figures),
        flow=ctx.services.flows.flow,
        now=ctx.now(),
    )


CSV_HEADER = (
    "层级",
    "编码",
    "名称",
    "工单数",
    "办结数",
    "按时办结数",
    "黄牌",
    "红牌",
    "评价数",
    "满意数",
    "办结率",
    "按时办结率",
    "满意率",
)


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v * 100:.1f}%"


async def assessment_csv(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    figures = await _figures(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for row in figures.assessment:
        r = row.rates
        writer.writerow(
            (
                row.level,
                row.code,
                row.name,
                r.counted,
                r.finished,
                r.on_time,
                r.yellow_cards,
                r.red_cards,
                r.rated,
                r.satisfied,
                _pct(r.closure_rate),
                _pct(r.on_time_rate),
                _pct(r.satisfaction_rate),
            )
        )
    await ctx.record(request, "assessment.export", "csv")
    day = ctx.now().strftime("%Y%m%d")
    # BOM so that Excel opens the Chinese headers correctly
    return web.Response(
        body=("\ufeff" + out.getvalue()).encode("utf-8"),
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="assessment-{day}.csv"',
        },
    )
