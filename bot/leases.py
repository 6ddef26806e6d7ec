"""A Redis sorted set of due members that processes claim with a lease: the flow timers
(bot/timers.py) and the outbox's retries (bot/outbox.py).

A claim moves due members atomically from the due set to an in-flight set scored by when the
lease runs out, so exactly one process holds each; the holder acknowledges a member once it is
done with it. A process that dies holding claims loses them when the lease runs out: the next
claim puts them back in the due set, due at once. A member that fell due while no process ran is
claimed at the next start, because it is still in the due set.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

# KEYS: due, in flight; ARGV: now, lease until, how many. Expired claims are due again, then the
# due members (oldest first) are claimed and returned.
_CLAIM = """
local stale = redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", ARGV[1])
for _, m in ipairs(stale) do
  redis.call("ZREM", KEYS[2], m)
  redis.call("ZADD", KEYS[1], ARGV[1], m)
end
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do
  redis.call("ZREM", KEYS[1], m)
  redis.call("ZADD", KEYS[2], ARGV[2], m)
end
return due
"""


class LeasedQueue:
    def __init__(self, redis: Redis, due: str, inflight: str, lease_seconds: float) -> None:
        self._due = due
        self._inflight = inflight
        self._lease = lease_seconds
        self._redis = redis
        self._claim = redis.register_script(_CLAIM)

    async def claim(self, now: float, count: int) -> list[str]:
        """Up to `count` members due at `now` (epoch seconds), held until `now` + the lease."""
        return list(await self._claim(keys=[self._due, self._inflight], args=[now, now + self._lease, count]))

    async def hold(self, member: str, now: float) -> None:
        """Claim `member` without its ever being due: work a process starts on its own (a first
        download), to come back to the due set if the process dies before acknowledging it."""
        await self._redis.zadd(self._inflight, {member: now + self._lease})

    def ack(self, pipe: Pipeline, member: str) -> None:
        """Done with `member` (in the caller's transaction, with whatever else it changes)."""
        pipe.zrem(self._inflight, member)
