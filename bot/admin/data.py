"""Reading tickets for the console: every ticket in the index, in creation order (newest first)."""

from __future__ import annotations

from bot.app import Services
from bot.tickets import Ticket

BATCH = 1000


async def all_tickets(services: Services) -> list[Ticket]:
    """Every ticket, newest first (see bot/admin/figures.py for why a full scan is fine here)."""
    numbers = [str(n) for n in await services.redis.zrevrange(services.keys.all_tickets(), 0, -1)]
    tickets: list[Ticket] = []
    for i in range(0, len(numbers), BATCH):
        tickets.extend(await services.tickets.store.get_many(numbers[i : i + BATCH]))
    return tickets
