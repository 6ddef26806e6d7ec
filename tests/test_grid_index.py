"""The per-grid index of tickets (`keys.tickets_by_grid_status`) on the real Redis: it follows
every change of a ticket, and tickets stored before it existed are added at start-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from bot import tickets as tickets_module
from bot.app import Services, build_services
from bot.ticketing import ReportDraft
from bot.tickets import TicketStore
from flows import Event
from tests.conftest import TEST_REDIS_URL

GRID_ONE, GRID_TWO = "500199001001-01", "500199001001-02"  # 金桥小区 (ZhangFang00), 龙湖花园 (LiuYang01)


def draft(place: str) -> ReportDraft:
    return ReportDraft(description=f"{place}门口垃圾好几天没人清理了", category="sanitation", location_text=place)


@pytest.fixture
async def services(config, clock, nlu, redis) -> AsyncIterator[Services]:
    services = await build_services(config, clock=clock, nlu=nlu)
    yield services
    await services.close()


async def placed(services: Services, number: str) -> set[tuple[str, str]]:
    """Every (grid, status) whose set in Redis holds the ticket."""
    assert services.directory is not None
    places = [(g.code, s) for g in services.directory.grids for s in services.tickets.flow.statuses]
    async with services.redis.pipeline(transaction=False) as pipe:
        for grid, status in places:
            pipe.sismember(services.keys.tickets_by_grid_status(grid, status), number)
        found = await pipe.execute()
    return {place for place, member in zip(places, found, strict=True) if member}


async def forget_the_grid_index(services: Services) -> None:
    """What a store written before the grid index looks like: no grid sets, no version."""
    assert services.directory is not None
    keys = [services.keys.tickets_by_grid_status(g.code, s)
            for g in services.directory.grids for s in services.tickets.flow.statuses]
    await services.redis.delete(*keys, services.keys.grid_index_version())


def event(services: Services, kind: str, actor: str, by: str, **data: str) -> Event:
    return Event(kind=kind, actor=actor, at=services.clock(), data=tuple(data.items()), by=by)


async def test_the_grid_index_follows_a_ticket_from_opening_to_closing(services: Services):
    ticket = await services.tickets.open("wechat_mp", "o1", draft("金桥小区"), services.clock())
    number = ticket.number
    assert await placed(services, number) == {(GRID_ONE, "dispatched")}
    assert await services.tickets.store.numbers_in_grid(GRID_ONE, ["dispatched", "accepted"]) == {number}
    assert await services.tickets.store.numbers_in_grid(GRID_TWO, ["dispatched", "accepted"]) == set()

    await services.tickets.act(number, event(services, "accept", "worker", "ZhangFang00"))
    assert await placed(services, number) == {(GRID_ONE, "accepted")}
    await services.tickets.act(number, event(services, "resolve", "worker", "ZhangFang00", note="已清运"))
    assert await placed(services, number) == {(GRID_ONE, "resolved")}
    await services.tickets.act(number, event(services, "close", "dispatcher", "li.ming"))
    assert await placed(services, number) == {(GRID_ONE, "closed")}
    assert await services.tickets.store.numbers_in_grid(GRID_ONE, ["dispatched", "accepted", "resolved"]) == set()


async def test_a_ticket_dispatched_to_another_grid_moves_to_that_grids_index(services: Services):
    ticket = await services.tickets.open("wechat_mp", "o2", draft("金桥小区"), services.clock())
    number = ticket.number
    await services.tickets.act(number, event(services, "return", "worker", "ZhangFang00", reason="是隔壁小区的"))
    assert await placed(services, number) == {(GRID_ONE, "returned")}

    moved = await services.tickets.act(number, event(services, "dispatch", "dispatcher", "li.ming", grid=GRID_TWO))
    assert moved.grid_code == GRID_TWO == moved.flow.grid_code
    assert (await services.tickets.store.get(number)).grid_code == GRID_TWO
    assert await placed(services, number) == {(GRID_TWO, "dispatched")}


async def test_a_ticket_without_a_grid_is_in_no_grids_index_until_dispatched_to_one(services: Services):
    ticket = await services.tickets.open("wechat_mp", "o3", draft("某个没人知道的地方"), services.clock())
    assert ticket.grid_code is None and await placed(services, ticket.number) == set()
    await services.tickets.act(ticket.number, event(services, "dispatch", "dispatcher", "li.ming", grid=GRID_TWO))
    assert await placed(services, ticket.number) == {(GRID_TWO, "dispatched")}


async def test_tickets_stored_before_the_grid_index_are_indexed_at_start_up(config, clock, nlu, redis, caplog):
    caplog.set_level(logging.INFO, logger="gridbot")
    first = await build_services(config, clock=clock, nlu=nlu)
    one = await first.tickets.open("wechat_mp", "o4", draft("金桥小区"), clock())
    held = await first.tickets.open("wechat_mp", "o5", draft("金桥小区"), clock())
    await first.tickets.act(held.number, event(first, "accept", "worker", "ZhangFang00"))
    two = await first.tickets.open("wechat_mp", "o6", draft("龙湖花园"), clock())
    nowhere = await first.tickets.open("wechat_mp", "o7", draft("某个没人知道的地方"), clock())
    await forget_the_grid_index(first)
    await first.close()
    caplog.clear()

    restarted = await build_services(config, clock=clock, nlu=nlu)
    try:
        assert await redis.get(restarted.keys.grid_index_version()) is not None
        assert await placed(restarted, one.number) == {(GRID_ONE, "dispatched")}
        assert await placed(restarted, held.number) == {(GRID_ONE, "accepted")}
        assert await placed(restarted, two.number) == {(GRID_TWO, "dispatched")}
        assert await placed(restarted, nowhere.number) == set()
        built = [r for r in caplog.records if r.getMessage() == "grid_index_built"]
        assert [(r.fields["tickets"], r.fields["indexed"]) for r in built] == [(4, 3)]
    finally:
        await restarted.close()

    caplog.clear()
    again = await build_services(config, clock=clock, nlu=nlu)  # built once: the next start reads nothing
    await again.close()
    assert not [r for r in caplog.records if r.getMessage() == "grid_index_built"]


async def test_two_processes_building_the_grid_index_at_once_while_tickets_move_agree_with_the_tickets(
    services: Services, monkeypatch
):
    monkeypatch.setattr(tickets_module, "GRID_INDEX_BATCH", 3)  # many batches from a few tickets
    places = ("金桥小区", "龙湖花园", "某个没人知道的地方")
    numbers = [(await services.tickets.open("wechat_mp", f"r{i}", draft(places[i % 3]), services.clock())).number
               for i in range(24)]
    tz = ZoneInfo(services.config.tickets.timezone)

    async def move(number: str) -> None:
        """Back and forth: returned by the grid's worker, dispatched again to the other grid."""
        for _ in range(4):
            ticket = await services.tickets.store.get(number)
            assert ticket is not None
            if ticket.status == "dispatched":
                worker = "ZhangFang00" if ticket.grid_code == GRID_ONE else "LiuYang01"
                await services.tickets.act(number, event(services, "return", "worker", worker, reason="不归我们"))
            elif ticket.status == "returned":
                other = GRID_TWO if ticket.grid_code == GRID_ONE else GRID_ONE
                await services.tickets.act(number, event(services, "dispatch", "dispatcher", "li.ming", grid=other))

    for _ in range(3):  # whether a change lands inside a batch in flight is chance: make it likely
        await forget_the_grid_index(services)
        clients = [Redis.from_url(TEST_REDIS_URL, decode_responses=True) for _ in range(2)]
        try:
            stores = [TicketStore(c, services.keys, services.config.tickets.number_prefix, tz) for c in clients]
            await asyncio.gather(stores[0].ensure_grid_index(), stores[1].ensure_grid_index(), *map(move, numbers))
        finally:
            for c in clients:
                await c.aclose()
        assert await services.redis.get(services.keys.grid_index_version()) is not None
        for number in numbers:
            now = await services.tickets.store.get(number)
            assert now is not None
            expected = {(now.grid_code, now.status)} if now.grid_code else set()
            assert await placed(services, number) == expected, (number, now.status)
