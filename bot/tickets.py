"""Tickets (工单) in Redis: numbering, storage, indexes, and the only door to change them.

A ticket changes state only through the flow engine (`flows.step`); this module stores the
result together with what it causes — timeline entries, notifications in the outbox stream,
timers in the sorted set — atomically, so a crash never leaves half a change. A new ticket is
one Lua call; a change is one MULTI/EXEC under WATCH whose side effects are one Lua call inside
it (a ticket change used to be some twenty commands, and packing them cost more CPU than the
rest of opening a ticket).

The indexes (by reporter, by status, by grid and status) are written in the same call or
transaction as the ticket, so they never disagree with it. The grid index came later: tickets
stored before it are added once, by `ensure_grid_index`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from redis.exceptions import WatchError

from bot.keys import Keys
from bot.logs import log_event
from flows import Action, TicketState

log = logging.getLogger("gridbot.tickets")

TICKET_NUMBER_DIGITS = 4
MEDIA_TICKET_SECONDS = 7 * 86400  # WeChat keeps a media id 3 days: a download fails well within
GRID_INDEX_VERSION = "1"  # a different layout of the grid index: a new version, built again at start-up
GRID_INDEX_BATCH = 500  # tickets read and indexed in one transaction while building it
# entries the outbox stream keeps (trimmed approximately, by every writer: this module and
# bot/outbox.py's late replies); the delivery worker acknowledges them within seconds
OUTBOX_MAXLEN = 1_000_000


class TicketNotFound(Exception):
    pass


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of a ticket's history: who did what, when, and the rule that caused it."""

    at: str  # ISO 8601 with offset
    actor: str  # "resident" | "worker:<id>" | "dispatcher:<name>" | "system"
    kind: str  # "created" | "accept" | "notify" | "card" | ...
    text: str = ""
    rule: str = ""
    photos: tuple[str, ...] = ()  # "upload:<number>/<name>" | "wecom:<media id>" (see bot/media.py)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {k: v for k, v in dataclasses.asdict(self).items() if v}
        if self.photos:
            data["photos"] = list(self.photos)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimelineEntry:
        return cls(**{**data, "photos": tuple(data.get("photos", ()))})


@dataclass(frozen=True, slots=True)
class Notification:
    """A message to deliver later (by the outbox worker), written with the ticket change. `level`,
    `unit`, `assignee` and `grid`: who held the ticket when it was written ("" = not recorded), so
    a street's yellow card reaches the street even if the ticket has moved on by delivery time."""

    ticket: str
    template: str
    audience: str  # "resident" | "assignee" | "dispatcher" | "duty_dispatcher" | ...
    rule: str = ""
    level: str = ""
    unit: str = ""
    assignee: str = ""
    grid: str = ""

    def to_fields(self) -> dict[str, str]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v}


@dataclass(frozen=True, slots=True)
class Ticket:
    number: str
    channel: str
    reporter_id: str
    description: str
    flow: TicketState
    created_at: str
    updated_at: str
    location_text: str = ""
    lat: float | None = None
    lon: float | None = None
    grid_code: str | None = None
    phone: str | None = None  # stored in full, shown masked
    emergency: bool = False
    media_ids: tuple[str, ...] = ()
    timeline: tuple[TimelineEntry, ...] = field(default_factory=tuple)

    @property
    def status(self) -> str:
        return self.flow.status

    def to_json(self) -> str:
        data: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("flow", "timeline")
        }
        data["media_ids"] = list(self.media_ids)
        data["flow"] = self.flow.to_json()
        data["timeline"] = [e.to_json() for e in self.timeline]
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> Ticket:
        data = json.loads(raw)
        data["flow"] = TicketState.from_json(data["flow"])
        data["timeline"] = tuple(TimelineEntry.from_json(e) for e in data["timeline"])
        data["media_ids"] = tuple(data.get("media_ids", ()))
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Change:
    """What one step did: the new ticket plus the side effects to store atomically with it."""

    ticket: Ticket
    notifications: tuple[Notification, ...] = ()
    timers: tuple[tuple[str, datetime], ...] = ()  # (timer id, due)
    cancel_timers: bool = False


class TicketStore:
    def __init__(self, redis: Redis, keys: Keys, number_prefix: str, tz: ZoneInfo) -> None:
        self._redis = redis
        self._keys = keys
        self._prefix = number_prefix
        self._tz = tz
        self._claim_failed = redis.register_script(_CLAIM_FAILED_MEDIA)
        self._next_in_sequence = redis.register_script(_NEXT_IN_SEQUENCE)
        self._create = redis.register_script(_CREATE)
        self._effects = redis.register_script(_EFFECTS)
        self._grid_index_ready = False  # this process has seen it complete

    async def allocate_number(self, now: datetime) -> str:
        """`<prefix><YYYYMMDD><daily sequence>`; INCR makes it unique across processes."""
        day = now.astimezone(self._tz).strftime("%Y%m%d")
        seq = await self._next_in_sequence(keys=[self._keys.ticket_sequence(day)], args=[3 * 86400])
        return f"{self._prefix}{day}{int(seq):0{TICKET_NUMBER_DIGITS}d}"

    async def get(self, number: str) -> Ticket | None:
        raw = await self._redis.get(self._keys.ticket(number))
        return Ticket.from_json(raw) if raw else None

    async def get_many(self, numbers: Sequence[str]) -> list[Ticket]:
        if not numbers:
            return []
        raws = await self._redis.mget([self._keys.ticket(n) for n in numbers])
        return [Ticket.from_json(r) for r in raws if r]

    async def numbers_by_reporter(self, channel: str, user_id: str, limit: int) -> list[str]:
        key = self._keys.tickets_by_reporter(channel, user_id)
        return list(await self._redis.zrevrange(key, 0, limit - 1))

    async def numbers_in_grid(self, grid_code: str, statuses: Iterable[str]) -> set[str]:
        """The numbers of the grid's tickets in any of `statuses`."""
        keys = [self._keys.tickets_by_grid_status(grid_code, s) for s in statuses]
        if not keys:
            return set()
        await self.ensure_grid_index()
        return set(await self._redis.sunion(keys))

    async def numbers_in_status(self, statuses: Iterable[str]) -> set[str]:
        """The numbers of every ticket in any of `statuses`, with a grid or without."""
        keys = [self._keys.tickets_by_status(s) for s in statuses]
        return set(await self._redis.sunion(keys)) if keys else set()

    async def ensure_grid_index(self) -> None:
        """Add every stored ticket to the grid index unless that was done (`keys.grid_index_version`):
        tickets stored before the index existed are in no grid's set. Called at start-up, and by
        the first lookup should Redis have been down then.

        Processes starting together may each build it: each batch of tickets is read and added
        in one transaction under WATCH, so a ticket changed meanwhile is added where it is now
        (the change itself moved its entry), and an entry added twice is still one. The version
        is set only once every ticket is in: a build cut short is done again by the next process.
        """
        if self._grid_index_ready:
            return
        version = self._keys.grid_index_version()
        if await self._redis.get(version) != GRID_INDEX_VERSION:
            scanned = indexed = 0
            batch: list[str] = []
            async for number, _ in self._redis.zscan_iter(self._keys.all_tickets(), count=GRID_INDEX_BATCH):
                batch.append(number)
                if len(batch) == GRID_INDEX_BATCH:
                    indexed += await self._index_grids(batch)
                    scanned, batch = scanned + len(batch), []
            if batch:
                indexed += await self._index_grids(batch)
                scanned += len(batch)
            await self._redis.set(version, GRID_INDEX_VERSION)
            log_event(log, "grid_index_built", tickets=scanned, indexed=indexed, version=GRID_INDEX_VERSION)
        self._grid_index_ready = True

    async def _index_grids(self, numbers: list[str]) -> int:
        """Add these tickets to the grid index as they are now; how many have a grid."""
        keys = [self._keys.ticket(n) for n in numbers]
        while True:
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*keys)
                    tickets = [Ticket.from_json(raw) for raw in await pipe.mget(keys) if raw]
                    entries = [(t.grid_code, t.status, t.number) for t in tickets if t.grid_code]
                    pipe.multi()
                    for grid_code, status, number in entries:
                        pipe.sadd(self._keys.tickets_by_grid_status(grid_code, status), number)
                    await pipe.execute()
                    return len(entries)
                except WatchError:
                    continue

    async def create(self, change: Change) -> None:
        t = change.ticket
        created = datetime.fromisoformat(t.created_at).timestamp()
        keys = [
            self._keys.ticket(t.number),
            self._keys.tickets_by_reporter(t.channel, t.reporter_id),
            self._keys.all_tickets(),
            self._keys.tickets_by_status(t.status),
            *self._effect_keys(t.number),
            *([self._keys.tickets_by_grid_status(t.grid_code, t.status)] if t.grid_code else []),
            *(self._keys.media_ticket(m) for m in t.media_ids),
        ]
        args = [t.to_json(), t.number, created, _effects_json(change), MEDIA_TICKET_SECONDS, int(bool(t.grid_code))]
        if not await self._create(keys=keys, args=args):
            raise RuntimeError(f"ticket number {t.number} already taken")

    async def update(self, number: str, apply: Callable[[Ticket], Change | None]) -> Change | None:
        """Read-modify-write under WATCH: `apply` may run again if another process won the race.

        `apply` returns None to change nothing. Raises TicketNotFound.
        """
        key = self._keys.ticket(number)
        while True:
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise TicketNotFound(number)
                    before = Ticket.from_json(raw)
                    change = apply(before)
                    if change is None:
                        await pipe.unwatch()
                        return None
                    after = change.ticket
                    pipe.multi()
                    pipe.set(key, after.to_json())
                    if after.status != before.status:
                        pipe.srem(self._keys.tickets_by_status(before.status), number)
                        pipe.sadd(self._keys.tickets_by_status(after.status), number)
                    if (after.grid_code, after.status) != (before.grid_code, before.status):
                        if before.grid_code:
                            pipe.srem(self._keys.tickets_by_grid_status(before.grid_code, before.status), number)
                        if after.grid_code:
                            pipe.sadd(self._keys.tickets_by_grid_status(after.grid_code, after.status), number)
                    if change.timers or change.notifications or change.cancel_timers:
                        await self._effects(
                            keys=self._effect_keys(number), args=[_effects_json(change)], client=pipe
                        )
                    await pipe.execute()
                    return change
                except WatchError:
                    continue

    async def ticket_of_media(self, media_id: str) -> str | None:
        number = await self._redis.get(self._keys.media_ticket(media_id))
        return str(number) if number else None

    async def claim_failed_media(self, media_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(media id, why) for each of `media_ids` whose download failed and that nobody has noted
        yet: the caller notes them. A failure seen from both sides (the download and the ticket
        opening) is claimed once."""
        if not media_ids:
            return []
        claimed = await self._claim_failed(keys=[self._keys.media_failed(), self._keys.media_noted()], args=media_ids)
        return [(str(claimed[i]), str(claimed[i + 1])) for i in range(0, len(claimed), 2)]

    def _effect_keys(self, number: str) -> list[str]:
        return [self._keys.timers(), self._keys.ticket_timers(number), self._keys.outbox()]


def _effects_json(change: Change) -> str:
    """A change's side effects for the Lua below: timers to (re)arm, notifications to queue."""
    number = change.ticket.number
    return json.dumps(
        {
            "cancel": change.cancel_timers,
            "timers": [[timer_member(number, timer_id), due.timestamp()] for timer_id, due in change.timers],
            "notes": [[x for pair in n.to_fields().items() for x in pair] for n in change.notifications],
        },
        ensure_ascii=False,
    )


# Side effects of a ticket change. KEYS: the due-time set, the ticket's own timers, the outbox
# stream; `e` = cjson.decode(effects json). Pending timers are cancelled first, then re-armed.
_APPLY_EFFECTS = f"""
local function apply_effects(timers, own, outbox, e)
  if e.cancel then
    for _, m in ipairs(redis.call("SMEMBERS", own)) do redis.call("ZREM", timers, m) end
    redis.call("DEL", own)
  end
  for _, t in ipairs(e.timers) do
    redis.call("ZADD", timers, string.format("%.6f", t[2]), t[1])
    redis.call("SADD", own, t[1])
  end
  for _, n in ipairs(e.notes) do
    redis.call("XADD", outbox, "MAXLEN", "~", {OUTBOX_MAXLEN}, "*", unpack(n))
  end
end
"""

# KEYS 1-3 as above; ARGV[1] the effects json.
_EFFECTS = _APPLY_EFFECTS + """
apply_effects(KEYS[1], KEYS[2], KEYS[3], cjson.decode(ARGV[1]))
"""

# KEYS: ticket, by reporter, all tickets, by status, the three effect keys, by grid and status
# (only when the ticket has a grid), then one per photo (photo -> ticket). ARGV: ticket json,
# number, created (epoch), effects json, photo link TTL, 1 with a grid (else 0).
# 0 when the number is taken: nothing is written.
_CREATE = _APPLY_EFFECTS + """
if not redis.call("SET", KEYS[1], ARGV[1], "NX") then return 0 end
redis.call("ZADD", KEYS[2], ARGV[3], ARGV[2])
redis.call("ZADD", KEYS[3], ARGV[3], ARGV[2])
redis.call("SADD", KEYS[4], ARGV[2])
local photos = 8 + tonumber(ARGV[6])
if photos > 8 then redis.call("SADD", KEYS[8], ARGV[2]) end
for i = photos, #KEYS do redis.call("SET", KEYS[i], ARGV[2], "EX", ARGV[5]) end
apply_effects(KEYS[5], KEYS[6], KEYS[7], cjson.decode(ARGV[4]))
return 1
"""

# KEYS[1] the day's counter; ARGV[1] its TTL. The next number of the day.
_NEXT_IN_SEQUENCE = """
local n = redis.call("INCR", KEYS[1])
redis.call("EXPIRE", KEYS[1], ARGV[1])
return n
"""


# KEYS[1] media id -> failure, KEYS[2] media ids already noted; ARGV media ids.
# Returns id, reason, id, reason… for the failures nobody had claimed.
_CLAIM_FAILED_MEDIA = """
local out = {}
for _, id in ipairs(ARGV) do
  local why = redis.call("HGET", KEYS[1], id)
  if why and redis.call("HSETNX", KEYS[2], id, "1") == 1 then
    out[#out + 1] = id
    out[#out + 1] = why
  end
end
return out
"""


def timer_member(number: str, timer_id: str) -> str:
    return f"{number}|{timer_id}"


def action_param(action: Action, name: str, default: str = "") -> str:
    return dict(action.params).get(name, default)
