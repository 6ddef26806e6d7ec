"""Milliseconds for a grid worker's bare command to find its ticket in a city full of open ones.

`build_services` on a real Redis, then `--tickets` open tickets spread evenly over `--grids`
grids (stored directly, at grid level: half awaiting acceptance, half accepted by another of
the grid's workers), and one ticket of the measured grid accepted by the measured worker. Then
`WorkerDesk.candidates`, as a bare 接单 (every ticket of the grid awaiting acceptance) and a
bare 办结 or a photo (the one the worker holds), each `--repeat` times, sequentially: CPU plus
Redis round trips of one command, nothing queued. Last, the one-off build of the grid index
at start-up (bot/tickets.py `ensure_grid_index`) for all those tickets.

    .venv/bin/python bench/worker_candidates.py [--tickets 20000] [--grids 200] [--repeat 50]
        [--redis redis://127.0.0.1:6379/15]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
import uuid
from zoneinfo import ZoneInfo

from bot.app import Services, build_services
from bot.config import load_config
from bot.tickets import Change, Ticket, TicketStore
from bot.worker_tasks import WorkerDesk
from flows import Event, Post, Worker, new_ticket
from integrations.wechat.work import WorkerVerb

WORKER = Worker(wecom_user_id="BenchWorker", name="测试网格员", phone="")


def grid_code(i: int) -> str:
    return f"BENCH-{i:04d}"


async def run(tickets: int, grids: int, repeat: int, redis_url: str) -> None:
    prefix = f"bench-candidates:{uuid.uuid4().hex[:8]}:"
    config = load_config(env={"GRIDBOT_REDIS__URL": redis_url, "GRIDBOT_REDIS__KEY_PREFIX": prefix})
    services = await build_services(config)
    try:
        store, flow = services.tickets.store, services.tickets.flow
        now = services.clock()
        started = time.perf_counter()
        for i in range(tickets):
            number = await store.allocate_number(now)
            state = new_ticket(flow, category="sanitation", now=now, grid_code=grid_code(i % grids)).state
            if (i // grids) % 2:  # a colleague's
                state = dataclasses.replace(state, status="accepted", assignee=f"Colleague{i % grids}")
            stamp = now.isoformat()
            await store.create(Change(ticket=Ticket(number=number, channel="wechat_mp", reporter_id=f"u{i}",
                                                    description="垃圾没人清理", flow=state, created_at=stamp,
                                                    updated_at=stamp, grid_code=grid_code(i % grids))))
            if i == 0:
                held = number
        print(f"{tickets} open tickets in {grids} grids stored in {time.perf_counter() - started:.1f} s")
        await services.tickets.act(held, Event(kind="accept", actor="worker", at=now, by=WORKER.wecom_user_id))
        desk = WorkerDesk(services.redis, services.keys, services.tickets, services.directory, services.replies,
                          services.dispatcher, services.clock, "网格助手")
        post = Post(WORKER, "grid", grid_code(0), "测试网格", frozenset({grid_code(0)}))
        verbs: tuple[WorkerVerb, ...] = ("accept", "resolve")
        for verb in verbs:
            found = await desk.candidates(post, verb)  # warm: scripts loaded, connections open
            began, cpu = time.perf_counter(), time.process_time()
            for _ in range(repeat):
                await desk.candidates(post, verb)
            wall = (time.perf_counter() - began) / repeat * 1000
            print(f"bare {verb}: {len(found)} candidate(s), {wall:.2f} ms a command, "
                  f"{(time.process_time() - cpu) / repeat * 1000:.2f} ms CPU")
        await rebuild(services, grids)
        keys = [k async for k in services.redis.scan_iter(match=prefix + "*", count=1000)]
        for i in range(0, len(keys), 1000):
            await services.redis.delete(*keys[i : i + 1000])
    finally:
        await services.close()


async def rebuild(services: Services, grids: int) -> None:
    """The one-off start-up build of the grid index for tickets stored before it existed."""
    index = [services.keys.tickets_by_grid_status(grid_code(i), status)
             for i in range(grids) for status in services.tickets.flow.statuses]
    await services.redis.delete(*index, services.keys.grid_index_version())
    store = TicketStore(services.redis, services.keys, services.config.tickets.number_prefix,
                        ZoneInfo(services.config.tickets.timezone))
    began = time.perf_counter()
    await store.ensure_grid_index()
    print(f"building the grid index for every ticket at start-up: {time.perf_counter() - began:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--grids", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    asyncio.run(run(args.tickets, args.grids, args.repeat, args.redis))


if __name__ == "__main__":
    main()
