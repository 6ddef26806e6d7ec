"""Ticket numbers and storage on the real Redis."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from bot.keys import Keys
from bot.tickets import TicketStore
from tests.conftest import TEST_REDIS_URL

TZ = ZoneInfo("Asia/Shanghai")


async def test_two_concurrent_allocators_never_share_a_number(redis: Redis, key_prefix: str):
    """Two clients (as two processes would have) racing for 1,000 numbers."""
    now = datetime(2026, 11, 22, 9, 30, tzinfo=TZ)
    second = Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    try:
        stores = [TicketStore(c, Keys(key_prefix), "WG", TZ) for c in (redis, second)]

        async def allocate(store: TicketStore) -> list[str]:
            return [await store.allocate_number(now) for _ in range(500)]

        a, b = await asyncio.gather(allocate(stores[0]), allocate(stores[1]))
    finally:
        await second.aclose()
    numbers = a + b
    assert len(set(numbers)) == 1000
    assert all(re.fullmatch(r"WG20261122\d{4}", n) for n in numbers)
    assert sorted(numbers)[0] == "WG202611220001" and sorted(numbers)[-1] == "WG202611221000"


async def test_numbering_follows_the_local_day(redis: Redis, key_prefix: str):
    store = TicketStore(redis, Keys(key_prefix), "WG", TZ)
    # 23:30 UTC on the 22nd is already the 23rd in Beijing
    late = datetime(2026, 11, 22, 23, 30, tzinfo=ZoneInfo("UTC"))
    assert (await store.allocate_number(late)).startswith("WG20261123")
    next_day = datetime(2026, 11, 23, 8, 0, tzinfo=TZ)
    assert await store.allocate_number(next_day) == "WG202611230002"
