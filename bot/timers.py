"""Flow timers: a Redis sorted set of due times, fired once even with several processes.

A due timer is claimed (moved from `timers` to `timers-inflight` with a lease, bot/leases.py) by
exactly one process, applied through the flow engine, then acknowledged. A process that dies
holding a claim loses it when the lease runs out and the timer is queued again; a timer that
fell due while no process ran fires at the next start, because it is still in the set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from redis.asyncio import Redis

from bot.keys import Keys
from bot.leases import LeasedQueue
from bot.logs import log_event
from bot.ticketing import TicketService
from bot.tickets import TicketNotFound
from flows import Event, TransitionRefused

log = logging.getLogger("gridbot.timers")

LEASE_SECONDS = 60
BATCH = 100

class TimerRunner:
    def __init__(self, redis: Redis, keys: Keys, tickets: TicketService, clock: Callable[[], datetime]) -> None:
        self._redis = redis
        self._keys = keys
        self._tickets = tickets
        self._clock = clock
        self._queue = LeasedQueue(redis, keys.timers(), keys.timers_inflight(), LEASE_SECONDS)

    async def run_once(self) -> int:
        """Fire every timer due now; returns how many this process fired."""
        now = self._clock()
        stamp = now.timestamp()
        fired = 0
        while True:
            claimed = await self._queue.claim(stamp, BATCH)
            for member in claimed:
                await self._fire(member, now)
                fired += 1
            if len(claimed) < BATCH:
                return fired

    async def _fire(self, member: str, now: datetime) -> None:
        number, _, timer_id = member.partition("|")
        try:
            event = Event(kind="timer", actor="system", at=now, data=(("timer", timer_id),))
            await self._tickets.act(number, event)
            log_event(log, "timer_fired", ticket=number, timer=timer_id)
        except (TransitionRefused, TicketNotFound) as exc:
            log_event(log, "timer_dropped", logging.WARNING, ticket=number, timer=timer_id, reason=str(exc))
        except Exception:
            # leave the claim in place: its lease runs out and another try follows
            log.exception("timer_failed", extra={"fields": {"ticket": number, "timer": timer_id}})
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            self._queue.ack(pipe, member)
            pipe.srem(self._keys.ticket_timers(number), member)
            await pipe.execute()

    async def run_forever(self, interval: float = 1.0) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("timer_loop_failed")
            await asyncio.sleep(interval)
