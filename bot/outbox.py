"""The notification outbox's delivery worker.

`bot/tickets.py` writes a `Notification(ticket, template, audience, rule)` into the Redis stream
`outbox` in the same MULTI as the ticket change that causes it; `Outbox.send_reply` writes a late
reply there (an answer that missed WeChat's passive reply, rendered: channel, recipient, text).
This worker reads the stream in a consumer group, turns each notification into deliveries (one
per channel and recipient: the resident's WeChat openid, each grid worker's WeCom id, the grid's
group robot, an SMS number…) and hands each to the `Deliverer` registered for its channel:

- one at a time: whatever fails for one notification (a ticket record that cannot be read, a
  template missing or broken — admins edit them) dead-letters that one with its error; the rest
  of the batch and later entries go on;
- rendered, then idempotent: a delivery id is `SET NX` before sending, so a crash between send
  and ack (the stream entry is claimed again by another consumer) never notifies anyone twice
  within `outbox.idempotency_window_seconds`; a crash between that SET and the send's answer
  leaves the delivery uncertain (below);
- retries with exponential backoff (a sorted set of due times, the injected clock), each claimed
  with a lease (bot/leases.py) so a worker killed in mid-send gives it back; then a dead-letter
  hash an admin lists and retries (`gridbot outbox dead` / `gridbot outbox retry`);
- uncertain deliveries (the request left, the answer was lost) are not retried behind anyone's
  back: they are listed with the dead letters, marked uncertain, for an admin to retry by id;
- per-channel rate limits (a sliding minute in Redis, taken only by what is really sent); group
  robots (20 a minute) queue and merge instead: nothing is dropped;
- late replies to one recipient go in the order they were written (a long answer's pieces), but
  one waits behind an unsettled earlier one for `REPLY_ORDER_MAX_WAIT_SECONDS` at most: an
  earlier one that never settles (lost from the stream, taken by a process of an older version)
  then leaves the line, logged. A settled reply's entry is deleted from the stream (its text is
  what a resident reported); a dead one's text stays in its dead letter for the admin;
- entries trimmed from the stream while still pending (never delivered) are logged as lost;
- every delivery's status is kept per ticket (`keys.ticket_deliveries(number)`) for the ticket page.

Channels register themselves: `app[OUTBOX].register("sms", SmsDeliverer(...))`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bot.config import OutboxConfig, WecomConfig
from bot.keys import Keys
from bot.leases import LeasedQueue
from bot.logs import log_event, mask_phone
from bot.replies import Replies
from bot.ticketing import GRID_LEVEL, TicketService, TicketView
from bot.tickets import OUTBOX_MAXLEN, Ticket
from flows import Grid, GridDirectory
from integrations.sms.phone import normalize_mobile

log = logging.getLogger("gridbot.outbox")

GROUP = "delivery"
STALE_CLAIM_MS = 60_000  # a consumer that holds an entry this long without acking has died
GONE_CONSUMER_IDLE_MS = 86_400_000  # a consumer silent for a day, holding nothing, is a process gone
BATCH = 100
REPLY = "reply"  # the template field of a late reply's entry: it carries its own text
REPLY_STATUS = "回复"  # a late reply's status line in a template message
REPLY_ORDER_WAIT_SECONDS = 1.0  # a reply behind an earlier one to the same recipient looks again
# then it goes anyway: with the default retries an earlier reply has been sent or dead-lettered
# long before, so only one that will never settle holds it this long
REPLY_ORDER_MAX_WAIT_SECONDS = 300.0
REPLY_ORDER_TTL_SECONDS = 86400  # from a recipient's first reply in line: a line never outlives it
RETRY_LEASE_SECONDS = 300  # longer than one delivery with its API retries and a template fallback
SENDING = "sending"  # the idempotency key's value from the SET NX until the send's outcome


class RetryLater(Exception):
    """Not delivered, for now (network, quota, rate limit): try again after a backoff."""


class Undeliverable(Exception):
    """Will never work as it is (unknown recipient, refused template): straight to dead letters."""


class MaybeDelivered(Exception):
    """The request left and the answer was lost: not retried, so nobody is notified twice; listed
    as uncertain with the dead letters for an admin to decide."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What a deliverer sends: the rendered text and what a channel may need besides."""

    ticket: str
    template: str  # e.g. "notify/accepted"
    audience: str
    text: str  # rendered for the channel; the first line is a title
    status_name: str
    delivery_id: str

    @property
    def title(self) -> str:
        return self.text.split("\n", 1)[0]

    @property
    def body(self) -> str:
        head, _, rest = self.text.partition("\n")
        return rest or head


class Deliverer(Protocol):
    """One channel's way out. Raise `RetryLater`, `Undeliverable` or `MaybeDelivered`; any other
    exception counts as `RetryLater`. Return "sent", or "queued" when the channel sends later."""

    per_minute: int  # the channel's send limit per minute (sliding); 0: none

    async def deliver(self, recipient: str, message: Outgoing) -> str: ...


@runtime_checkable
class Flushing(Protocol):
    """A deliverer that queues (group robots) and sends from `flush`, called on every run."""

    async def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the worker handles, by `kind`; the three share one JSON form in the retry set and the
    dead letters:

    - "notification": a ticket's stream entry not yet resolved into recipients (`channel` ""),
      dead-lettered as such when that fails, and resolved again when an admin retries it;
    - "delivery": a notification for one channel and recipient, rendered when it is sent;
    - "reply": a late reply (`template` "reply") with its own `text`, no ticket.
    """

    id: str
    entry: str  # the outbox stream entry it came from
    ticket: str
    template: str
    audience: str
    channel: str
    recipient: str
    rule: str = ""
    attempt: int = 0
    text: str = ""  # a late reply's own text (template "reply"); a notification is rendered
    waiting_since: str = ""  # a late reply waiting behind an earlier one: since when (ISO)
    # who held the ticket when the notification was written (bot.tickets.Notification); "" = now
    level: str = ""
    unit: str = ""
    assignee: str = ""
    grid: str = ""

    @property
    def kind(self) -> Literal["notification", "delivery", "reply"]:
        if self.template == REPLY:
            return "reply"
        return "delivery" if self.channel else "notification"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> Delivery:
        return cls(**json.loads(raw))


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """One line of a ticket's delivery list."""

    id: str
    template: str
    audience: str
    channel: str  # "" when the audience has no channel
    recipient: str  # masked
    status: str  # sending | sent | queued | retrying | dead | uncertain | no_channel
    at: str
    attempt: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    delivery: Delivery
    error: str
    at: str
    uncertain: bool = False  # the request left and the answer was lost: a retry may send it twice


# KEYS: the outbox stream, the recipient's reply order; ARGV: channel, recipient, text, order TTL.
# The entry and its place in line together (the stream is trimmed like bot/tickets.py does). The
# line's expiry is set when it starts (NX, Redis 7), not by each reply: one that never settles
# does not stay in line for as long as the resident keeps writing.
_ADD_REPLY = f"""
local id = redis.call("XADD", KEYS[1], "MAXLEN", "~", {OUTBOX_MAXLEN}, "*",
  "template", "reply", "channel", ARGV[1], "recipient", ARGV[2], "text", ARGV[3])
redis.call("RPUSH", KEYS[2], id)
redis.call("EXPIRE", KEYS[2], tonumber(ARGV[4]), "NX")
return id
"""

# Sliding minute: KEYS[1] the window; ARGV now, limit, member. 0 = go; else seconds to wait.
_RATE = """
local now = tonumber(ARGV[1])
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now - 60)
if redis.call("ZCARD", KEYS[1]) < tonumber(ARGV[2]) then
  redis.call("ZADD", KEYS[1], now, ARGV[3])
  redis.call("EXPIRE", KEYS[1], 120)
  return "0"
end
local oldest = redis.call("ZRANGE", KEYS[1], 0, 0, "WITHSCORES")
return tostring(tonumber(oldest[2]) + 60 - now)
"""

class RateWindow:
    """A sliding one-minute send window in Redis, on the injected clock."""

    def __init__(self, redis: Redis, clock: Callable[[], datetime]) -> None:
        self._script = redis.register_script(_RATE)
        self._clock = clock

    async def take(self, key: str, per_minute: int, member: str) -> float:
        """0 when a send may go now (and it is counted); else the seconds until one may."""
        if per_minute <= 0:
            return 0.0
        now = self._clock().timestamp()
        unique = f"{now}:{member}:{uuid.uuid4().hex[:8]}"  # two sends in the same instant count twice
        return float(await self._script(keys=[key], args=[now, per_minute, unique]))


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mask_recipient(channel: str, recipient: str) -> str:
    if channel == "robot":
        return "群机器人"  # the webhook key is a secret
    return mask_phone(recipient)


class NotificationText:
    """Renders `notify/<channel>/<name>.j2`, else `notify/<name>.j2`. Robots (groups) never fall
    back to the general texts, which carry addresses and descriptions: `notify/robot/default.j2`.
    `to_dispatcher`: the recipient is a dispatcher, who hands a task on rather than does it."""

    def __init__(self, replies: Replies) -> None:
        self._env = replies.env

    def render(self, template: str, channel: str, view: TicketView, to_dispatcher: bool = False) -> str:
        name = template.removeprefix("notify/")
        candidates = [f"notify/{channel}/{name}.j2"]
        candidates.append("notify/robot/default.j2" if channel == "robot" else f"notify/{name}.j2")
        return self._env.select_template(candidates).render(t=view, to_dispatcher=to_dispatcher).strip()


class Audiences:
    """Who a notification's audience is, as (channel, recipient) pairs.

    At grid level the grid's workers, above it the staff the directory lists for that level of
    the ticket's area; where it lists none the dispatchers, so that a task above the grid always
    reaches someone. Whoever works the ticket where it is (the directory's post holds it) gets a
    task card linking the signed task page; anyone else (a dispatcher, a copy to another
    level's unit) a WeCom text, since the page would refuse them."""

    RESIDENT_CHANNELS: Mapping[str, str] = {"wechat_mp": "wechat_mp", "wecom": "wecom_text", "sms": "sms",
                                            "hotline": "sms"}

    def __init__(self, tickets: TicketService, directory: GridDirectory | None, wecom: WecomConfig) -> None:
        self._tickets = tickets
        self._directory = directory
        self._dispatchers = _ids(wecom.dispatcher_user_ids)
        self._duty = _ids(wecom.duty_user_ids) or self._dispatchers

    def resolve(self, ticket: Ticket, audience: str, rule: str = "", template: str = "") -> list[tuple[str, str]]:
        """`rule` and `template`: the notice's own, to tell whether it reaches the dispatchers anyway."""
        state = ticket.flow
        if audience == "resident":
            channel = self.RESIDENT_CHANNELS.get(ticket.channel)
            if channel is None:
                return []  # rest / cli / open311: the resident looks the ticket up
            # a landline caller cannot be texted: the operator tells them
            recipient = normalize_mobile(ticket.phone or "") if channel == "sms" else ticket.reporter_id
            return [(channel, recipient)] if recipient else []
        if audience == "assignee":
            if state.assignee:
                return [self._person(ticket, state.assignee)]
            if state.level == GRID_LEVEL:
                return self._grid_workers(ticket)
            return self._staff(ticket, state.level, rule, template)
        if audience == "unit" or audience.startswith("unit:"):
            unit = audience.partition(":")[2] or state.unit
            owner = self._tickets.flow.units.get(unit)
            if owner is None:
                return []
            if owner.level == GRID_LEVEL:
                return self._grid_workers(ticket)
            return self._staff(ticket, owner.level, rule, template)
        if audience == "dispatcher":
            return [("wecom_text", u) for u in self._dispatchers]
        if audience == "duty_dispatcher":
            return [("wecom_text", u) for u in self._duty]
        if audience == "grid_group":
            grid = self._grid(ticket)
            return [("robot", grid.robot_key)] if grid is not None and grid.robot_key else []
        return []

    def _grid(self, ticket: Ticket) -> Grid | None:
        if self._directory is None or not ticket.grid_code:
            return None
        return self._directory.grid(ticket.grid_code)

    def _grid_workers(self, ticket: Ticket) -> list[tuple[str, str]]:
        grid = self._grid(ticket)
        return [self._person(ticket, w.wecom_user_id) for w in grid.workers] if grid is not None else []

    def _person(self, ticket: Ticket, user_id: str) -> tuple[str, str]:
        """A task card for someone who works the ticket at its level now, else a text."""
        post = self._directory.post(user_id) if self._directory is not None else None
        works = post is not None and post.holds(ticket.flow.level, ticket.grid_code)
        return ("wecom_card" if works else "wecom_text", user_id)

    def _staff(self, ticket: Ticket, level: str, rule: str, template: str) -> list[tuple[str, str]]:
        """The level's staff of the ticket's area; none listed: the dispatchers, to hand it on
        (unless the same notice of the same rule goes to them anyway: once is enough)."""
        staff = self._directory.staff(level, ticket.grid_code) if self._directory is not None else ()
        if staff:
            return [self._person(ticket, w.wecom_user_id) for w in staff]
        told = self._dispatchers_told(ticket, rule, template)
        return [] if told else [("wecom_text", u) for u in self._dispatchers]

    def _dispatchers_told(self, ticket: Ticket, rule: str, template: str) -> bool:
        flow = self._tickets.flow
        found = flow.rule(rule) if rule else None
        if found is None:
            return False
        copied = flow.category_rule(ticket.flow.category).notify  # what `category` stands for
        return any(
            "dispatcher" in (*a.to, *(copied if "category" in a.to else ()))
            for a in found.actions if a.kind == "notify" and a.template == template
        )

    def is_dispatcher(self, recipient: str) -> bool:
        return recipient in self._dispatchers


def _ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class Outbox:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        tickets: TicketService,
        audiences: Audiences,
        texts: NotificationText,
        settings: OutboxConfig,
        clock: Callable[[], datetime],
        consumer: str = "worker",
        claim_idle_ms: int = STALE_CLAIM_MS,
        gone_idle_ms: int = GONE_CONSUMER_IDLE_MS,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._tickets = tickets
        self._audiences = audiences
        self._texts = texts
        self._settings = settings
        self._clock = clock
        self._consumer = consumer
        self._claim_idle_ms = claim_idle_ms
        self._gone_idle_ms = gone_idle_ms
        self._deliverers: dict[str, Deliverer] = {}
        self._rate = RateWindow(redis, clock)
        self._retries = LeasedQueue(redis, keys.outbox_retry(), keys.outbox_retry_inflight(), RETRY_LEASE_SECONDS)
        self._add_reply = redis.register_script(_ADD_REPLY)
        self._group_ready = False
        self._opened = asyncio.Event()
        self._wake = asyncio.Event()
        self._periodic: list[Callable[[], Awaitable[None]]] = []

    @property
    def rate(self) -> RateWindow:
        return self._rate

    def register(self, channel: str, deliverer: Deliverer) -> None:
        """Channels: wechat_mp, wecom_card (workers), wecom_text, robot, sms."""
        self._deliverers[channel] = deliverer

    def every_run(self, job: Callable[[], Awaitable[None]]) -> None:
        """A job run in each round before the queues are flushed (the daily digest)."""
        self._periodic.append(job)

    def open(self) -> None:
        """Every channel has registered (the app has started): `run_forever` may begin."""
        self._opened.set()

    async def send_reply(self, channel: str, recipient: str, text: str) -> None:
        """An answer that missed the passive reply, rendered: durable and retried like a
        notification, and sent after every earlier reply to the same recipient (a long answer's
        pieces, given in order, arrive in order; after REPLY_ORDER_MAX_WAIT_SECONDS behind one
        that has not settled, it goes anyway). It leaves in the next round of an outbox loop:
        this process's at once if it runs one; a web process with `outbox.interval_seconds: 0`
        leaves it to the `gridbot worker`, whose next round comes within its interval (1 s
        unless configured)."""
        await self._add_reply(
            keys=[self._keys.outbox(), self._keys.outbox_reply_order(channel, recipient)],
            args=[channel, recipient, text, REPLY_ORDER_TTL_SECONDS],
        )
        self._wake.set()

    # ---- the loop

    async def run_forever(self, interval: float) -> None:
        await self._opened.wait()
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:
                log.exception("outbox_loop_failed")
            with contextlib.suppress(TimeoutError):  # a reply queued meanwhile ends the wait
                await asyncio.wait_for(self._wake.wait(), interval)

    async def run_once(self) -> int:
        """Deliver what the stream and the retry set hold now; returns how many deliveries ran."""
        done = 0
        if await self._ensure_group():
            # entries another consumer claimed and never acknowledged (it died): take them over
            _, stale, lost = await self._redis.xautoclaim(
                self._keys.outbox(), GROUP, self._consumer, min_idle_time=self._claim_idle_ms, count=BATCH
            )
            if lost:
                # trimmed from the stream before anyone delivered them; Redis has taken them off the
                # pending list. Nothing is left to send (a late reply among them holds its
                # recipient's later ones only until REPLY_ORDER_MAX_WAIT_SECONDS).
                log_event(log, "outbox_entries_lost", logging.ERROR, entries=lost, count=len(lost))
            done += await self._entries(stale)
            while True:
                read = await self._redis.xreadgroup(GROUP, self._consumer, {self._keys.outbox(): ">"}, count=BATCH)
                entries = read[0][1] if read else []
                done += await self._entries(entries)
                if len(entries) < BATCH:
                    break
        done += await self._due()
        for job in self._periodic:
            await job()
        for deliverer in self._deliverers.values():
            if isinstance(deliverer, Flushing):
                await deliverer.flush()
        return done

    async def _ensure_group(self) -> bool:
        """False while no ticket ever wrote to the outbox (an idle worker writes nothing)."""
        if self._group_ready:
            return True
        if not await self._redis.exists(self._keys.outbox()):
            return False
        try:
            await self._redis.xgroup_create(self._keys.outbox(), GROUP, id="0")
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await self._forget_gone_consumers()
        self._group_ready = True
        return True

    async def _forget_gone_consumers(self) -> None:
        """Consumers are named per process: those of processes long gone, holding nothing, are
        removed from the group when a new one starts (XINFO would otherwise list them forever)."""
        for consumer in await self._redis.xinfo_consumers(self._keys.outbox(), GROUP):
            gone = consumer["pending"] == 0 and consumer["idle"] > self._gone_idle_ms
            if gone and consumer["name"] != self._consumer:
                await self._redis.xgroup_delconsumer(self._keys.outbox(), GROUP, consumer["name"])

    async def _entries(self, entries: Sequence[tuple[str, Mapping[str, str]]]) -> int:
        count = 0
        for entry_id, fields in entries:
            if fields:  # a trimmed entry comes back empty
                count += await self._run(self._notification(entry_id, fields))
            await self._redis.xack(self._keys.outbox(), GROUP, entry_id)
        return count

    async def _due(self) -> int:
        """The retries due now, claimed one at a time: a worker killed in mid-send holds only the
        one it was sending, and that one comes back when its lease runs out."""
        count = 0
        for _ in range(BATCH):
            claimed = await self._retries.claim(self._clock().timestamp(), 1)
            if not claimed:
                break
            raw = claimed[0]
            try:
                delivery = Delivery.from_json(raw)
            except (ValueError, TypeError) as exc:
                await self._bury(_malformed(raw), f"malformed retry entry ({type(exc).__name__}): "
                                                  f"{mask_phone(raw[:200])}")
            else:
                count += await self._run(delivery)
            # after the delivery went or was rescheduled: a crash before this repeats it, safely
            async with self._redis.pipeline(transaction=True) as pipe:
                self._retries.ack(pipe, raw)
                await pipe.execute()
        return count

    def _notification(self, entry_id: str, fields: Mapping[str, str]) -> Delivery:
        """A stream entry as the delivery it stands for: a late reply, or a notification still to
        be expanded into one delivery per channel and recipient (`channel` empty)."""
        if fields.get("template") == REPLY:
            channel, recipient = fields.get("channel", ""), fields.get("recipient", "")
            return Delivery(id=f"{entry_id}/{channel}/{short_hash(recipient)}", entry=entry_id, ticket="",
                            template=REPLY, audience="sender", channel=channel, recipient=recipient,
                            text=fields.get("text", ""))
        audience = fields.get("audience", "")
        return Delivery(
            id=f"{entry_id}/{audience}", entry=entry_id, ticket=fields.get("ticket", ""),
            template=fields.get("template", ""), audience=audience, channel="", recipient="",
            rule=fields.get("rule", ""), level=fields.get("level", ""), unit=fields.get("unit", ""),
            assignee=fields.get("assignee", ""), grid=fields.get("grid", ""),
        )

    async def _run(self, d: Delivery) -> int:
        """Expand `d` if it is a notification, then deliver. What fails here is this delivery's own:
        it is dead-lettered with the error and every other one goes on. (If the dead letter cannot
        be written either, Redis is down: the round stops and the entry stays to be taken again.)"""
        try:
            targets = await self._expand(d) if d.kind == "notification" else [d]
        except Exception as exc:
            await self._fail(d, exc)
            return 0
        for target in targets:
            try:
                await self._deliver(target)
            except Exception as exc:
                await self._fail(target, exc)
        return len(targets)

    async def _fail(self, d: Delivery, exc: Exception) -> None:
        log.exception("notification_failed", extra={"fields": {"ticket": d.ticket, "delivery": d.id}})
        await self._bury(d, f"{type(exc).__name__}: {exc}")

    async def _expand(self, n: Delivery) -> list[Delivery]:
        ticket = await self._tickets.store.get(n.ticket)
        if ticket is None:
            log_event(log, "outbox_ticket_missing", logging.WARNING, ticket=n.ticket, entry=n.entry)
            return []
        targets = self._audiences.resolve(_as_written(ticket, n), n.audience, n.rule, n.template)
        if not targets:
            await self._record(n.ticket, DeliveryStatus(
                id=n.id, template=n.template, audience=n.audience, channel="", recipient="",
                status="no_channel", at=self._clock().isoformat(),
            ))
            return []
        return [
            replace(n, id=f"{n.entry}/{channel}/{short_hash(recipient)}", channel=channel, recipient=recipient)
            for channel, recipient in targets
        ]

    # ---- one delivery

    async def _deliver(self, d: Delivery) -> None:
        deliverer = self._deliverers.get(d.channel)
        if deliverer is None:
            await self._status(d, "no_channel")
            await self._settled(d)
            return
        sent_key = self._keys.outbox_delivered(d.id)
        earlier = await self._redis.get(sent_key)
        if earlier is not None:  # before taking a rate slot: a skipped delivery sends nothing
            await self._seen_before(d, earlier)
            return
        if d.kind == "reply" and await self._waits_in_line(d):
            return
        # rendered before the idempotency key is taken: a broken template is a dead letter, not a
        # key that makes the next try look delivered
        try:
            message = await self._message(d)
        except Undeliverable as exc:
            await self._bury(d, str(exc))
            return
        if message is None:
            return
        wait = await self._rate.take(self._keys.outbox_rate(d.channel, "*"), deliverer.per_minute, d.id)
        if wait > 0:  # the channel's minute is full: same attempt, later
            await self._later(d, wait)
            await self._status(d, "retrying", "rate limit")
            return
        if not await self._redis.set(sent_key, SENDING, nx=True, ex=self._settings.idempotency_window_seconds):
            return  # another worker took it since the check
        try:
            outcome = await deliverer.deliver(d.recipient, message)
        except MaybeDelivered as exc:
            await self._bury(d, str(exc), uncertain=True)
            return
        except Undeliverable as exc:
            await self._redis.delete(sent_key)
            await self._bury(d, str(exc))
            return
        except Exception as exc:  # RetryLater and the unexpected: surely not delivered
            await self._redis.delete(sent_key)
            await self._retry(d, f"{type(exc).__name__}: {exc}")
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(sent_key, outcome, ex=self._settings.idempotency_window_seconds)
            # another worker may have listed it as uncertain while this one was still sending
            pipe.hdel(self._keys.outbox_dead(), d.id)
            await pipe.execute()
        await self._status(d, outcome)
        await self._settled(d)
        log_event(log, "notification_delivered", ticket=d.ticket, channel=d.channel, template=d.template,
                  outcome=outcome)

    async def _seen_before(self, d: Delivery, earlier: str) -> None:
        if earlier == SENDING:
            # a worker took it and stopped (killed) before it knew whether the message left
            await self._bury(d, "the worker sending it stopped before the answer came", uncertain=True)
            return
        log_event(log, "outbox_already_delivered", ticket=d.ticket, delivery=d.id)
        await self._settled(d)

    async def _waits_in_line(self, d: Delivery) -> bool:
        """True when an earlier reply to the same recipient is not settled yet: `d` is queued to
        look again (no attempt counted). Once it has waited REPLY_ORDER_MAX_WAIT_SECONDS the
        earlier ones are taken out of line (one may never settle: an entry the stream lost, or one
        a process of an older version took) and `d` goes. (Not in line at all, as after an
        admin's retry: it goes.)"""
        order = self._keys.outbox_reply_order(d.channel, d.recipient)
        position = await self._redis.lpos(order, d.entry)
        if not position:
            return False
        now = self._clock()
        since = datetime.fromisoformat(d.waiting_since) if d.waiting_since else now
        waited = (now - since).total_seconds()
        if waited < REPLY_ORDER_MAX_WAIT_SECONDS:
            await self._later(replace(d, waiting_since=since.isoformat()), REPLY_ORDER_WAIT_SECONDS)
            return True
        ahead = await self._redis.lrange(order, 0, position - 1)
        async with self._redis.pipeline(transaction=True) as pipe:
            for entry in ahead:
                pipe.lrem(order, 1, entry)
            await pipe.execute()
        log_event(log, "outbox_reply_order_released", logging.WARNING, channel=d.channel, delivery=d.id,
                  unsettled=ahead, waited=round(waited))
        return False

    async def _settled(self, d: Delivery) -> None:
        """Nothing more will happen to `d` unless an admin retries it: the next reply may go, and
        a reply's text (an address, what was reported) leaves the stream, acknowledged first; a
        dead one keeps it in the dead letters only, for the admin."""
        if d.kind == "reply":
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(self._keys.outbox(), GROUP, d.entry)
                pipe.xdel(self._keys.outbox(), d.entry)
                pipe.lrem(self._keys.outbox_reply_order(d.channel, d.recipient), 1, d.entry)
                await pipe.execute()

    async def _message(self, d: Delivery) -> Outgoing | None:
        """The text for the channel; None when the ticket is gone. Undeliverable when the template
        is missing or broken (admins edit them: `templates.override_dir`)."""
        if d.kind == "reply":
            return Outgoing(ticket="", template=REPLY, audience=d.audience, delivery_id=d.id, text=d.text,
                            status_name=REPLY_STATUS)
        ticket = await self._tickets.store.get(d.ticket)
        if ticket is None:
            log_event(log, "outbox_ticket_missing", logging.WARNING, ticket=d.ticket, delivery=d.id)
            return None
        view = self._tickets.view(ticket)
        try:
            to_dispatcher = self._audiences.is_dispatcher(d.recipient)
            text = self._texts.render(d.template, d.channel, view, to_dispatcher=to_dispatcher)
        except Exception as exc:
            raise Undeliverable(f"template {d.template}: {type(exc).__name__}: {exc}") from exc
        return Outgoing(ticket=d.ticket, template=d.template, audience=d.audience, delivery_id=d.id, text=text,
                        status_name=view.status_name)

    def backoff(self, attempt: int) -> float:
        """Seconds before try `attempt + 1` (attempt counts from 1)."""
        return min(self._settings.backoff_max_seconds, self._settings.backoff_base_seconds * 2 ** (attempt - 1))

    async def _retry(self, d: Delivery, error: str) -> None:
        failed = replace(d, attempt=d.attempt + 1)
        if failed.attempt >= self._settings.max_attempts:
            await self._bury(failed, error)
            return
        await self._later(failed, self.backoff(failed.attempt))
        await self._status(failed, "retrying", error)
        log_event(log, "notification_retry", logging.WARNING, ticket=d.ticket, channel=d.channel,
                  attempt=failed.attempt, error=error)

    async def _later(self, d: Delivery, seconds: float) -> None:
        await self._redis.zadd(self._keys.outbox_retry(), {d.to_json(): self._clock().timestamp() + seconds})

    async def _bury(self, d: Delivery, error: str, uncertain: bool = False) -> None:
        """To the dead letters an admin lists and retries; `uncertain`: it may have arrived."""
        dead = {"delivery": json.loads(d.to_json()), "error": error, "at": self._clock().isoformat(),
                "uncertain": uncertain}
        await self._redis.hset(self._keys.outbox_dead(), d.id, json.dumps(dead, ensure_ascii=False))
        await self._status(d, "uncertain" if uncertain else "dead", error)
        await self._settled(d)
        log_event(log, "notification_uncertain" if uncertain else "notification_dead", logging.ERROR,
                  ticket=d.ticket, channel=d.channel, error=error)

    async def _status(self, d: Delivery, status: str, error: str = "") -> None:
        if not d.ticket:
            return  # a reply, or a malformed retry: nowhere to show it but the dead letters
        await self._record(d.ticket, DeliveryStatus(
            id=d.id, template=d.template, audience=d.audience, channel=d.channel,
            recipient=mask_recipient(d.channel, d.recipient), status=status, at=self._clock().isoformat(),
            attempt=d.attempt, error=error[:300],
        ))

    async def _record(self, number: str, status: DeliveryStatus) -> None:
        await self._redis.hset(
            self._keys.ticket_deliveries(number), status.id, json.dumps(asdict(status), ensure_ascii=False)
        )

    async def mark(self, number: str, delivery_id: str, status: str) -> None:
        """A queued delivery changed state later (a robot flushed its queue)."""
        raw = await self._redis.hget(self._keys.ticket_deliveries(number), delivery_id)
        if raw:
            current = DeliveryStatus(**json.loads(raw))
            await self._record(number, replace(current, status=status, at=self._clock().isoformat()))


def _as_written(ticket: Ticket, n: Delivery) -> Ticket:
    """`ticket` held as it was when `n` was written: its recipients are those of that moment."""
    if not n.level:  # written before notifications recorded it: as it is now
        return ticket
    flow = replace(ticket.flow, level=n.level, unit=n.unit, assignee=n.assignee or None, grid_code=n.grid or None)
    return replace(ticket, flow=flow, grid_code=n.grid or None)


def _malformed(raw: str) -> Delivery:
    """A retry entry that is not a delivery, kept as one so an admin sees it in the dead letters."""
    return Delivery(id=f"malformed/{short_hash(raw)}", entry="", ticket="", template="", audience="", channel="",
                    recipient="")


# ---- what admins and the ticket page read


async def deliveries(redis: Redis, keys: Keys, number: str) -> list[DeliveryStatus]:
    """A ticket's deliveries, oldest first (stream ids sort by time)."""
    raw = await redis.hgetall(keys.ticket_deliveries(number))
    return sorted((DeliveryStatus(**json.loads(v)) for v in raw.values()), key=lambda s: s.id)


async def dead_letters(redis: Redis, keys: Keys) -> list[DeadLetter]:
    out = []
    for raw in (await redis.hgetall(keys.outbox_dead())).values():
        data = json.loads(raw)
        out.append(DeadLetter(Delivery(**data["delivery"]), data["error"], data["at"], data.get("uncertain", False)))
    return sorted(out, key=lambda d: d.at)


async def retry_dead(redis: Redis, keys: Keys, delivery_id: str, now: datetime) -> bool:
    """Put a dead (or uncertain) delivery back in the retry set, due now, with its attempts
    counted afresh; a notification that failed before it was expanded is expanded again."""
    raw = await redis.hget(keys.outbox_dead(), delivery_id)
    if raw is None:
        return False
    delivery = replace(Delivery(**json.loads(raw)["delivery"]), attempt=0)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zadd(keys.outbox_retry(), {delivery.to_json(): now.timestamp()})
        pipe.hdel(keys.outbox_dead(), delivery_id)
        pipe.delete(keys.outbox_delivered(delivery_id))
        await pipe.execute()
    return True


def build_outbox(
    redis: Redis,
    keys: Keys,
    tickets: TicketService,
    directory: GridDirectory | None,
    replies: Replies,
    outbox: OutboxConfig,
    wecom: WecomConfig,
    clock: Callable[[], datetime],
) -> Outbox:
    return Outbox(
        redis, keys, tickets, Audiences(tickets, directory, wecom), NotificationText(replies), outbox, clock,
        consumer=f"{socket.gethostname()}-{os.getpid()}",  # its own pending list, taken over if it dies
    )


OUTBOX = web.AppKey("outbox", Outbox)

__all__ = [
    "OUTBOX",
    "Deliverer",
    "Delivery",
    "DeliveryStatus",
    "Flushing",
    "MaybeDelivered",
    "Outbox",
    "Outgoing",
    "RetryLater",
    "Undeliverable",
]
