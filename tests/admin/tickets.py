"""Real tickets for console tests, opened and moved through the service's own TicketService."""

from __future__ import annotations

from bot.app import SERVICES, Services
from bot.ticketing import ReportDraft
from bot.tickets import Ticket
from bot.timers import TimerRunner
from flows import Event

GRID_ONE = "500199001001-01"  # 金桥社区第一网格 (alias 金桥小区), 金桥社区, 青枫街道


def services_of(client) -> Services:
    return client.server.app[SERVICES]


async def report(client, clock, text: str, category: str = "noise", where: str = "金桥小区", phone: str | None = None,
                 reporter: str = "r1") -> Ticket:
    draft = ReportDraft(description=text, category=category, location_text=where, phone=phone)
    return await services_of(client).tickets.open("rest", reporter, draft, clock())


async def event(client, clock, number: str, kind: str, actor: str, **data: str) -> Ticket:
    by = "ZhangFang00" if actor == "worker" else None
    return await services_of(client).tickets.act(number, Event(kind, actor, clock(), tuple(data.items()), by=by))


async def fire_timers(client, clock) -> int:
    services = services_of(client)
    return await TimerRunner(services.redis, services.keys, services.tickets, clock).run_once()
