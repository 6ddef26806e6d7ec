"""WeChat and WeCom wiring: the channels at /wechat/mp, /wechat/work and /wechat/robot (the grid
groups' robot callback), the Redis-backed parts
the adapters need, the outbox's WeChat deliverers, the workers' task pages and the daily digest.

- `RedisDeduplicator`: callback retries (`wechat-seen:`, apart from the dispatcher's `seen:`).
- `RedisTokenStore`: access tokens with one refresher per token under a Redis lock (a short
  lease, extended while the fetch runs).
- `CustomerServiceWindow`: 5 customer-service messages per follower within 48 h of their last
  message (of any kind), 3 within a minute of a menu click, follow or QR scan; beyond them status
  changes go as template messages (`wechat.status_template_id`).
- Deliverers: `wechat_mp` (residents), `wecom_card` (workers: a text card linking the signed task
  page), `wecom_text` (dispatchers, WeCom residents), `robot` (grid groups: 20 a minute, queued
  and merged, never dropped).

With no credentials the service still starts: the WeChat routes then answer 503 saying which
environment variables are missing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import aiohttp
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from bot.app import SERVICES, Services
from bot.keys import Keys
from bot.leases import LeasedQueue
from bot.logs import log_event
from bot.media import FOLDERS, WECOM_FOLDER, safe_name
from bot.outbox import OUTBOX, MaybeDelivered, Outbox, Outgoing, RateWindow, RetryLater, Undeliverable, short_hash
from bot.ticketing import GRID_LEVEL
from bot.worker_tasks import TaskLinks, TaskPages, WorkerDesk
from integrations.base import IncomingMessage, MessageHandler, Reply
from integrations.wechat import (
    AccessTokenRejected,
    ApiUnavailable,
    CustomerServiceRefused,
    MediaFile,
    MpApiConfig,
    MpCallbackConfig,
    RateLimited,
    RecipientRefused,
    RobotCallbackConfig,
    WeChatApiError,
    WeChatMpApi,
    WeChatMpChannel,
    WecomApi,
    WecomApiConfig,
    WecomCallbackConfig,
    WecomChannel,
    WecomRobot,
    WecomRobotChannel,
)
from integrations.wechat.api import ROBOT_TEXT_MAX_BYTES
from integrations.wechat.callback import split_utf8
from integrations.wechat.robot import ROBOT_KEY

log = logging.getLogger("gridbot.wechat")

DEDUP_SECONDS = 3600  # WeChat's retries all come within about 15 s
TOKEN_LOCK_LEASE_SECONDS = 15  # more than one fetch attempt (10 s); extended while a fetch goes on
TOKEN_LOCK_WAIT_LEASES = 2  # a caller waits two leases for the lock: a dead holder's runs out first
CS_LIMIT = 5
CS_WINDOW_SECONDS = 48 * 3600
EVENT_CS_LIMIT = 3  # after a menu click, a follow or a QR scan
EVENT_CS_WINDOW_SECONDS = 60
EVENT_KINDS = frozenset({"click", "subscribe", "scan"})
MESSAGE_KINDS = frozenset({"text", "image", "voice", "location"})  # and "unsupported" ones (video, link…)
ROBOT_BATCH = 50
FLUSH_LEASE_SECONDS = 120  # longer than a robot send with its retries
CARD_TITLE_MAX_BYTES = 128  # WeCom text cards
CARD_DESCRIPTION_MAX_BYTES = 512


class RedisDeduplicator:
    def __init__(self, redis: Redis, keys: Keys, ttl_seconds: int = DEDUP_SECONDS) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl_seconds

    async def first_time(self, key: str) -> bool:
        return bool(await self._redis.set(self._keys.wechat_callback_seen(key), "1", nx=True, ex=self._ttl))

    async def forget(self, key: str) -> None:
        await self._redis.delete(self._keys.wechat_callback_seen(key))


class RedisTokenStore:
    """Access tokens shared by every process. `lock` is a Redis lock with a short lease that its
    holder extends while it fetches: a process that dies holding it stalls token calls for one
    lease at most. A caller that cannot have it in time gets `ApiUnavailable` (retryable)."""

    def __init__(self, redis: Redis, keys: Keys, lease_seconds: float = TOKEN_LOCK_LEASE_SECONDS) -> None:
        self._redis = redis
        self._keys = keys
        self._lease = lease_seconds

    async def get(self, name: str) -> str | None:
        value = await self._redis.get(self._keys.wechat_token(name))
        return str(value) if value else None

    async def set(self, name: str, token: str, ttl_seconds: int) -> None:
        await self._redis.set(self._keys.wechat_token(name), token, ex=ttl_seconds)

    def lock(self, name: str) -> AbstractAsyncContextManager[object]:
        return self._held(name)

    @asynccontextmanager
    async def _held(self, name: str) -> AsyncIterator[object]:
        patience = TOKEN_LOCK_WAIT_LEASES * self._lease  # longer than a dead holder's lease
        lock = self._redis.lock(self._keys.wechat_token_lock(name), timeout=self._lease, sleep=0.02,
                                blocking_timeout=patience, thread_local=False)
        if not await lock.acquire():
            raise ApiUnavailable(f"token lock {name}", f"another process held it for over {patience:g} s")
        keeper = asyncio.create_task(self._extend(lock, name))
        try:
            yield lock
        finally:
            keeper.cancel()
            try:
                await lock.release()
            except LockError:  # the lease ran out (Redis was unreachable to extend it)
                log_event(log, "token_lock_lease_expired", logging.WARNING, token=name)

    async def _extend(self, lock: Lock, name: str) -> None:
        """While the holder fetches (with its retries, up to ~45 s), the lease never runs out."""
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                await lock.reacquire()
            except LockError:
                log_event(log, "token_lock_lost", logging.WARNING, token=name)
                return


# KEYS: the event's allowance, the message's; ARGV: their limits. → 1 / 2: a message may go,
# counted against that allowance (the event's first: it lapses within its minute); 0: none left.
_TAKE = """
for i = 1, 2 do
  local n = redis.call("GET", KEYS[i])
  if n and tonumber(n) < tonumber(ARGV[i]) then
    redis.call("INCR", KEYS[i])
    return i
  end
end
return 0
"""

# KEYS[1] an allowance a message was counted against, though it never left.
_GIVE_BACK = """
local n = redis.call("GET", KEYS[1])
if n and tonumber(n) > 0 then redis.call("DECR", KEYS[1]) end
"""


class CustomerServiceWindow:
    """Customer-service messages left per follower, as WeChat allows them: 5 within 48 h of their
    last message, and 3 within a minute of a menu click, a follow or a QR scan. The two are
    counted apart (a click never shortens the 48 hours, nor a message the click's minute); a
    message takes from the click's first."""

    def __init__(self, redis: Redis, keys: Keys, limit: int = CS_LIMIT, seconds: int = CS_WINDOW_SECONDS) -> None:
        self._redis = redis
        self._keys = keys
        self._limit = limit
        self._seconds = seconds
        self._take = redis.register_script(_TAKE)
        self._give_back = redis.register_script(_GIVE_BACK)

    def _allowances(self, openid: str) -> list[str]:
        return [self._keys.wechat_cs_event_window(openid), self._keys.wechat_cs_window(openid)]

    async def opened(self, openid: str) -> None:
        """The follower sent a message: 5 messages within 48 h from now."""
        await self._redis.set(self._keys.wechat_cs_window(openid), 0, ex=self._seconds)

    async def opened_by_event(self, openid: str) -> None:
        """A menu click, a follow or a QR scan: 3 messages within a minute, besides the 48 h ones."""
        await self._redis.set(self._keys.wechat_cs_event_window(openid), 0, ex=EVENT_CS_WINDOW_SECONDS)

    async def take(self, openid: str) -> str | None:
        """The allowance a message is counted against (for `give_back`); None: none left."""
        allowances = self._allowances(openid)
        taken = int(await self._take(keys=allowances, args=[EVENT_CS_LIMIT, self._limit]))
        return allowances[taken - 1] if taken else None

    async def give_back(self, allowance: str) -> None:
        """The message counted against `allowance` surely did not leave."""
        await self._give_back(keys=[allowance])

    async def close(self, openid: str) -> None:
        """WeChat refused (45015 / 45047): our count was wrong; nothing more until they write."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for allowance, limit in zip(self._allowances(openid), (EVENT_CS_LIMIT, self._limit), strict=True):
                pipe.set(allowance, limit, keepttl=True, xx=True)
            await pipe.execute()


def _translate(exc: Exception) -> Exception:
    """An API error as the outbox's retry / dead-letter / uncertain decision."""
    if isinstance(exc, ApiUnavailable):
        return MaybeDelivered(str(exc)) if exc.maybe_delivered else RetryLater(str(exc))
    if isinstance(exc, (RateLimited, CustomerServiceRefused, AccessTokenRejected)):
        return RetryLater(str(exc))
    if isinstance(exc, (RecipientRefused, WeChatApiError)):
        return Undeliverable(str(exc))
    return exc


class MpMessenger:
    """A message to a follower: customer-service text while the window allows, else a template."""

    def __init__(self, api: WeChatMpApi, window: CustomerServiceWindow, template_id: str) -> None:
        self._api = api
        self._window = window
        self._template_id = template_id

    async def send(self, openid: str, text: str, number: str = "", status: str = "") -> str:
        """→ "custom" or "template"; raises the API's errors, or Undeliverable without a template."""
        allowance = await self._window.take(openid)
        if allowance is not None:
            try:
                await self._api.send_custom_text(openid, text)
                return "custom"
            except CustomerServiceRefused:
                await self._window.close(openid)
            except ApiUnavailable as exc:
                if not exc.maybe_delivered:  # it never got through: the slot is not used
                    await self._window.give_back(allowance)
                raise
            except WeChatApiError:  # WeChat refused it (rate limit, token…): not sent either
                await self._window.give_back(allowance)
                raise
        if not self._template_id:
            raise Undeliverable("customer-service window closed and no wechat.status_template_id configured")
        title, _, rest = text.partition("\n")
        data = {"first": title, "keyword1": number or "—", "keyword2": status or "—", "remark": rest[:180]}
        await self._api.send_template(openid, self._template_id, data)
        return "template"


class MpSender:
    """The official account's late replies (`AsyncSender`): through the outbox, so an outage of
    the customer-service API delays an answer (a new ticket's number…) and never loses it."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def send(self, reply: Reply) -> None:
        await self._outbox.send_reply("wechat_mp", reply.recipient_id, reply.text)


class MpDeliverer:
    per_minute = 0  # the customer-service window is the limit

    def __init__(self, messenger: MpMessenger) -> None:
        self._messenger = messenger

    async def deliver(self, recipient: str, message: Outgoing) -> str:
        try:
            kind = await self._messenger.send(recipient, message.text, message.ticket, message.status_name)
        except (WeChatApiError, ApiUnavailable) as exc:
            raise _translate(exc) from exc
        return "sent" if kind == "custom" else "sent_template"


class WecomCardDeliverer:
    """A worker's task card: title, the ticket's lines, a signed link to the task page."""

    def __init__(self, api: WecomApi, links: TaskLinks, per_minute: int) -> None:
        self._api = api
        self._links = links
        self.per_minute = per_minute

    async def deliver(self, recipient: str, message: Outgoing) -> str:
        title = split_utf8(message.title, CARD_TITLE_MAX_BYTES)[0]
        description = split_utf8(message.body, CARD_DESCRIPTION_MAX_BYTES)[0]
        try:
            result = await self._api.send_textcard(
                [recipient], title, description, self._links.url(message.ticket, recipient), "处理工单"
            )
        except (WeChatApiError, ApiUnavailable) as exc:
            raise _translate(exc) from exc
        if recipient in result.invalid_users:
            raise Undeliverable(f"WeCom does not know user {recipient}")
        return "sent"


class WecomTextDeliverer:
    def __init__(self, api: WecomApi, per_minute: int) -> None:
        self._api = api
        self.per_minute = per_minute

    async def deliver(self, recipient: str, message: Outgoing) -> str:
        try:
            result = await self._api.send_text([recipient], message.text)
        except (WeChatApiError, ApiUnavailable) as exc:
            raise _translate(exc) from exc
        if recipient in result.invalid_users:
            raise Undeliverable(f"WeCom does not know user {recipient}")
        return "sent"


# KEYS[1] the queue, KEYS[2] the index; ARGV[1] the robot id: forget an emptied queue.
_FORGET_EMPTY = """
if redis.call("LLEN", KEYS[1]) == 0 then redis.call("HDEL", KEYS[2], ARGV[1]) end
"""


@dataclass(frozen=True, slots=True)
class QueuedText:
    text: str
    ticket: str = ""
    delivery_id: str = ""


class RobotQueue:
    """Group robots: every message is queued (a longer one than 2,048 bytes as several); `flush`
    sends within each robot's minute, merging what waits into as few messages as fit 2,048
    bytes. Nothing is dropped: a refused send stays
    queued for the next run. (A crash between a send and trimming the queue repeats that one
    group message: the group robot API has no idempotency key.)"""

    per_minute = 0  # limited per robot in flush, not per channel

    def __init__(
        self, robot: WecomRobot, redis: Redis, keys: Keys, rate: RateWindow, outbox: Outbox, per_minute: int
    ) -> None:
        self._robot = robot
        self._redis = redis
        self._keys = keys
        self._rate = rate
        self._outbox = outbox
        self._robot_per_minute = per_minute
        self._forget = redis.register_script(_FORGET_EMPTY)

    async def enqueue(self, robot_key: str, item: QueuedText) -> None:
        """A text over 2,048 bytes goes as several, cut at line ends; its delivery counts as sent
        with the last piece (they leave in order)."""
        rid = short_hash(robot_key)
        pieces = [p.strip("\n") for p in split_utf8(item.text, ROBOT_TEXT_MAX_BYTES)]
        items = [*(QueuedText(p) for p in pieces[:-1]), replace(item, text=pieces[-1])]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self._keys.robot_queue(rid), *(json.dumps(asdict(i), ensure_ascii=False) for i in items))
            pipe.hset(self._keys.robot_queues(), rid, robot_key)
            await pipe.execute()

    async def deliver(self, recipient: str, message: Outgoing) -> str:
        await self.enqueue(recipient, QueuedText(message.text, message.ticket, message.delivery_id))
        return "queued"

    async def flush(self) -> None:
        for rid, robot_key in (await self._redis.hgetall(self._keys.robot_queues())).items():
            # two processes flushing one queue would both send and both trim: one at a time
            lock = self._redis.lock(self._keys.robot_flush_lock(rid), timeout=FLUSH_LEASE_SECONDS, blocking=False)
            if not await lock.acquire():
                continue
            try:
                await self._flush_one(rid, robot_key)
            finally:
                try:
                    await lock.release()
                except LockError:  # the lease ran out mid-flush: nothing left to release
                    log_event(log, "robot_flush_lease_expired", logging.WARNING, robot=rid)

    async def _flush_one(self, rid: str, robot_key: str) -> None:
        queue = self._keys.robot_queue(rid)
        while True:
            items = [QueuedText(**json.loads(raw)) for raw in await self._redis.lrange(queue, 0, ROBOT_BATCH - 1)]
            if not items:
                await self._forget(keys=[queue, self._keys.robot_queues()], args=[rid])
                return
            text, taken = merge_texts([i.text for i in items])
            wait = await self._rate.take(self._keys.outbox_rate("robot", rid), self._robot_per_minute, rid)
            if wait > 0:
                return  # the robot's minute is full: the queue waits (and grows, and merges)
            try:
                await self._robot.send_text(robot_key, text)
            except (WeChatApiError, ApiUnavailable) as exc:
                log_event(log, "robot_send_failed", logging.WARNING, robot=rid, error=str(exc), waiting=len(items))
                return
            await self._redis.ltrim(queue, taken, -1)
            for item in items[:taken]:
                if item.delivery_id:
                    await self._outbox.mark(item.ticket, item.delivery_id, "sent")


def merge_texts(texts: list[str], limit: int = ROBOT_TEXT_MAX_BYTES) -> tuple[str, int]:
    """(one message, how many texts it holds): as many as fit `limit` bytes, at least one (each
    queued text fits: `RobotQueue.enqueue` cut the longer ones)."""
    merged, taken = texts[0], 1
    for text in texts[1:]:
        candidate = f"{merged}\n——————\n{text}"
        if len(candidate.encode()) > limit:
            break
        merged, taken = candidate, taken + 1
    return merged, taken


class OverdueDigest:
    """Once a day (after `hour`, one process), each grid robot gets its overdue open tickets:
    numbers, categories and days overdue only — nothing personal in a group."""

    MAX_LINES = 30

    def __init__(self, services: Services, robots: RobotQueue, hour: int) -> None:
        self._s = services
        self._robots = robots
        self._hour = hour
        self._day_done = ""  # this process already looked today

    async def __call__(self) -> None:
        now = self._s.clock()
        day = now.strftime("%Y%m%d")
        if self._hour < 0 or now.hour < self._hour or self._day_done == day:
            return
        self._day_done = day
        digests = await self.digests(now)
        # one process per day sends them
        if digests and await self._s.redis.set(self._s.keys.digest_sent(day), "1", nx=True, ex=3 * 86400):
            for robot_key, text in digests:
                await self._robots.enqueue(robot_key, QueuedText(text))

    async def digests(self, now: datetime) -> list[tuple[str, str]]:
        """(robot key, text) for every grid with a robot and overdue open tickets still at grid
        level. A status whose deadline clock is off (办结, awaiting the rating) is not overdue."""
        if self._s.directory is None:
            return []
        store = self._s.tickets.store
        statuses = [status for status, spec in self._s.tickets.flow.statuses.items() if spec.clock and not spec.final]
        template = self._s.replies.env.get_template("notify/robot/overdue_digest.j2")
        out = []
        for grid in self._s.directory.grids:
            if not grid.robot_key:
                continue
            numbers = sorted(await store.numbers_in_grid(grid.code, statuses))
            mine = [t for t in await store.get_many(numbers)
                    if t.flow.deadline < now and t.flow.level == GRID_LEVEL]  # above it: not the grid's
            if not mine:
                continue
            rows = [(self._s.tickets.view(t), now - t.flow.deadline) for t in mine[: self.MAX_LINES]]
            text = template.render(grid_name=grid.name, day=f"{now:%m月%d日}", total=len(mine), rows=rows)
            out.append((grid.robot_key, text.strip()))
        return out


class RobotChats:
    """Which group robot serves which chat, as the robot's callbacks tell. Kept in this process:
    it is needed only for a group notice that missed the passive reply, and that is sent by the
    process that received the message."""

    MAX_CHATS = 10_000

    def __init__(self) -> None:
        self._robot_keys: dict[str, str] = {}

    def remember(self, msg: IncomingMessage) -> None:
        robot_key = dict(msg.extra).get(ROBOT_KEY, "")
        if not msg.group_id or not robot_key:
            return
        self._robot_keys.pop(msg.group_id, None)
        self._robot_keys[msg.group_id] = robot_key  # newest last: the oldest goes first
        if len(self._robot_keys) > self.MAX_CHATS:
            del self._robot_keys[next(iter(self._robot_keys))]

    def robot_key(self, chat_id: str) -> str:
        return self._robot_keys.get(chat_id, "")


class WecomSender:
    """The WeCom app's and the group robot's late replies (`AsyncSender`): private ones to the
    user as app messages, through the outbox (`replies`: None without the WeCom app API); a group
    notice to the group's robot (a chat a robot wrote from, or a grid's work group by its code)."""

    def __init__(self, replies: Outbox | None, robots: RobotQueue, services: Services, chats: RobotChats) -> None:
        self._replies = replies
        self._robots = robots
        self._s = services
        self._chats = chats

    async def send(self, reply: Reply) -> None:
        if not reply.private:
            grid = self._s.directory.grid(reply.recipient_id) if self._s.directory is not None else None
            robot_key = self._chats.robot_key(reply.recipient_id) or (grid.robot_key if grid is not None else "")
            if robot_key:
                await self._robots.enqueue(robot_key, QueuedText(reply.text))
            if robot_key or grid is not None:
                return
        if self._replies is None:
            log_event(log, "wecom_reply_not_sent", logging.WARNING, user=reply.recipient_id, reason="no WeCom app")
            return
        await self._replies.send_reply("wecom_text", reply.recipient_id, reply.text)


def robot_handler(desk: WorkerDesk, chats: RobotChats) -> MessageHandler:
    """The group robot's messages: remember which robot serves the chat, then the worker desk."""

    async def handle(msg: IncomingMessage) -> list[Reply]:
        chats.remember(msg)
        return await desk.handle(msg)

    return handle


@dataclass
class WechatWiring:
    """What the routes delegate to; None (with the reason) when not configured."""

    mp: WeChatMpChannel | None = None
    mp_missing: str = ""
    work: WecomChannel | None = None
    work_missing: str = ""
    robot: WecomRobotChannel | None = None
    robot_missing: str = ""
    tasks: TaskPages | None = None
    desk: WorkerDesk | None = None
    robots: RobotQueue | None = None
    digest: OverdueDigest | None = None
    media: MediaKeeper | None = None  # the official account's photos
    wecom_media: MediaKeeper | None = None  # photos sent in the WeCom app (workers' and residents')
    session: aiohttp.ClientSession | None = None  # every WeChat / WeCom API call goes through it


WECHAT = web.AppKey("wechat", WechatWiring)


def _missing(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(env for env, value in pairs if not value)


class MediaSource(Protocol):
    async def download_media(self, media_id: str) -> MediaFile: ...


@dataclass(frozen=True, slots=True)
class MediaRetry:
    """A download under way or to try again (JSON in `keys.media_retry` and its in-flight set)."""

    media_id: str
    first_failed: str  # ISO, service clock: the provider keeps the file 3 days from about then
    attempt: int  # which retry this is, from 0; FIRST_TRY: the download when the photo arrived


FIRST_TRY = -1


class MediaKeeper:
    """Photos sent to the official account or the WeCom app: both keep a media id for 3 days, so
    each is downloaded when it arrives (in the background: the answer does not wait) to its
    folder, `service.media_dir/wechat_mp/` or `.../wecom/` (see bot/media.py). A passing failure
    (network, WeChat busy: `ApiUnavailable`) is tried again later, waiting 4× longer each time
    from a minute but never past the end of the time WeChat keeps the file, so the last try
    comes just before it ends; the retries are claimed with a lease (bot/leases.py) by the
    process that runs the outbox loop, no more than there are free download slots (one waiting
    for a slot past its lease would be claimed and downloaded again). The first download is held
    the same way from the start, so a restart loses none: one cut off by a shutdown (`drain`
    stops what is left before the HTTP session closes) is not acknowledged and comes back with
    its lease. A failed
    download never stops a report or a worker's 办结: once it has failed for good (WeChat refused,
    or the 3 days are over) the reason is kept in `keys.media_failed()` (the console shows it with
    the photo) and, for a resident's photo, noted in the ticket's timeline, whichever comes first,
    the ticket or the failure."""

    MAX_AT_ONCE = 8
    RETRY_FIRST = timedelta(minutes=1)
    RETRY_FACTOR = 4
    KEPT_BY_PROVIDER = timedelta(days=3)
    KEPT_MARGIN = timedelta(hours=1)  # the 3 days run from the upload, a little before the first try
    RETRY_LEASE_SECONDS = 300  # longer than a download with all its API retries

    def __init__(self, api: MediaSource, folder: Path, services: Services, source: str) -> None:
        self._api = api
        self._folder = folder
        self._s = services
        self._slots = asyncio.Semaphore(self.MAX_AT_ONCE)
        self._running: set[asyncio.Task[None]] = set()
        self._retry_key = services.keys.media_retry(source)
        self._retries = LeasedQueue(services.redis, self._retry_key, services.keys.media_retry_inflight(source),
                                    self.RETRY_LEASE_SECONDS)

    def keep(self, media_ids: tuple[str, ...]) -> None:
        """Download each now, held as a claimed retry: a process stopped mid-download (a restart)
        leaves it to come back when the lease runs out."""
        for media_id in media_ids:
            self._spawn(self._first(media_id))

    async def _first(self, media_id: str) -> None:
        now = self._s.clock()
        raw = json.dumps(asdict(MediaRetry(media_id, now.isoformat(), FIRST_TRY)), ensure_ascii=False)
        await self._retries.hold(raw, now.timestamp())
        await self._retry(raw)

    def path(self, media_id: str) -> Path:
        return self._folder / safe_name(media_id)

    async def retry_due(self) -> None:
        """Start as many due retries as there are free download slots (the outbox loop runs this
        every round); each is acknowledged once its download has ended, unless it was cancelled."""
        free = self.MAX_AT_ONCE - len(self._running)
        if free > 0:
            for raw in await self._retries.claim(self._s.clock().timestamp(), free):
                self._spawn(self._retry(raw))

    async def _retry(self, raw: str) -> None:
        try:
            retry = MediaRetry(**json.loads(raw))
        except (ValueError, TypeError):
            log_event(log, "media_retry_malformed", logging.ERROR, entry=raw[:200])
        else:
            try:
                await self._download(retry.media_id, None if retry.attempt == FIRST_TRY else retry)
            except Exception:  # acknowledged all the same: it would fail the same way again
                log.exception("media_retry_failed", extra={"fields": {"media": retry.media_id}})
        # not reached when cancelled (a shutdown): the claim's lease brings it back to the next process
        async with self._s.redis.pipeline(transaction=True) as pipe:
            self._retries.ack(pipe, raw)
            await pipe.execute()

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coro)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _download(self, media_id: str, retry: MediaRetry | None) -> None:
        async with self._slots:
            try:
                media = await self._api.download_media(media_id)
            except ApiUnavailable as exc:
                if not await self._again(media_id, retry, exc):
                    await self._failed(media_id, exc)
                return
            except WeChatApiError as exc:  # e.g. 40007: the id is invalid or the file is gone
                await self._failed(media_id, exc)
                return
            target = self.path(media_id)
            await asyncio.to_thread(_write, target, media.data)
            log_event(log, "media_kept", media=media_id, bytes=len(media.data), content_type=media.content_type,
                      retries=retry.attempt + 1 if retry else 0)

    async def _again(self, media_id: str, retry: MediaRetry | None, exc: Exception) -> bool:
        """Schedule the next try, at the latest just before the provider drops the file; False
        when that time has come."""
        now = self._s.clock()
        first = datetime.fromisoformat(retry.first_failed) if retry else now
        attempt = retry.attempt + 1 if retry else 0
        last_try = first + self.KEPT_BY_PROVIDER - self.KEPT_MARGIN
        if now >= last_try:
            return False
        due = min(now + self.RETRY_FIRST * self.RETRY_FACTOR ** attempt, last_try)
        member = json.dumps(asdict(MediaRetry(media_id, first.isoformat(), attempt)), ensure_ascii=False)
        await self._s.redis.zadd(self._retry_key, {member: due.timestamp()})
        log_event(log, "media_download_deferred", logging.WARNING, media=media_id, error=str(exc),
                  next_try=due.isoformat())
        return True

    async def _failed(self, media_id: str, exc: Exception) -> None:
        await self._s.redis.hset(self._s.keys.media_failed(), media_id, str(exc)[:300])
        log_event(log, "media_download_failed", logging.WARNING, media=media_id, error=str(exc))
        number = await self._s.tickets.store.ticket_of_media(media_id)
        if number:  # a resident's report was confirmed before the download gave up
            await self._s.tickets.note_failed_media(number, (media_id,), self._s.clock())

    async def drain(self, timeout: float) -> None:
        """Let downloads finish for up to `timeout`, then stop the rest unacknowledged (their
        leases bring them back to the next process) before the HTTP session closes."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout)
        left = set(self._running)
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def mp_handler(
    services: Services, window: CustomerServiceWindow | None, media: MediaKeeper | None
) -> MessageHandler:
    """The dispatcher, after noting that the follower wrote (their 48-hour window opens); photos
    are fetched while WeChat still has them."""

    async def handle(msg: IncomingMessage) -> list[Reply]:
        if window is not None and msg.kind in EVENT_KINDS:
            await window.opened_by_event(msg.user_id)
        elif window is not None and _sent_by_the_follower(msg):
            await window.opened(msg.user_id)
        if media is not None and msg.kind == "image":
            media.keep(msg.media_ids)
        return await services.dispatcher.handle(msg)

    return handle


def _sent_by_the_follower(msg: IncomingMessage) -> bool:
    """A message, of any kind (a video, a link, a file… arrive as "unsupported"), not an event:
    WeChat opens the 48-hour window for each."""
    if msg.kind in MESSAGE_KINDS:
        return True
    return msg.kind == "unsupported" and dict(msg.extra).get("msg_type", "event") not in ("event", "")


async def _wire(app: web.Application) -> AsyncIterator[None]:
    services: Services = app[SERVICES]
    outbox = app[OUTBOX]
    config = services.config
    wiring = app[WECHAT]
    session = wiring.session = aiohttp.ClientSession()
    tokens = RedisTokenStore(services.redis, services.keys)
    dedup = RedisDeduplicator(services.redis, services.keys)
    links = TaskLinks(config.service.link_secret, config.service.public_url, config.service.task_link_ttl_seconds,
                      services.clock)
    desk = WorkerDesk(services.redis, services.keys, services.tickets, services.directory, services.replies,
                      services.dispatcher, services.clock, config.wecom.bot_name)
    wiring.desk = desk
    wiring.tasks = TaskPages(desk, links, services.tickets, services.replies, config.path(config.service.media_dir))
    robots = RobotQueue(WecomRobot(session, config.wecom.api_base), services.redis, services.keys, outbox.rate,
                        outbox, config.outbox.robot_per_minute)
    wiring.robots = robots
    outbox.register("robot", robots)
    wiring.digest = OverdueDigest(services, robots, config.outbox.digest_hour)
    outbox.every_run(wiring.digest)

    wc = config.wechat
    window: CustomerServiceWindow | None = None
    messenger: MpMessenger | None = None
    media: MediaKeeper | None = None
    mp_api_missing = _missing([("GRIDBOT_WECHAT__APP_ID", wc.app_id), ("GRIDBOT_WECHAT__APP_SECRET", wc.app_secret)])
    if not mp_api_missing:
        window = CustomerServiceWindow(services.redis, services.keys)
        api = WeChatMpApi(MpApiConfig(wc.app_id, wc.app_secret, api_base=wc.api_base), session, tokens)
        messenger = MpMessenger(api, window, wc.status_template_id)
        media = MediaKeeper(api, config.path(config.service.media_dir) / FOLDERS["wechat_mp"], services, "wechat_mp")
        wiring.media = media
        outbox.every_run(media.retry_due)
        outbox.register("wechat_mp", MpDeliverer(messenger))
    wiring.mp_missing = _missing([("GRIDBOT_WECHAT__TOKEN", wc.token), ("GRIDBOT_WECHAT__APP_ID", wc.app_id)])
    if not wiring.mp_missing:
        sender = MpSender(outbox) if messenger is not None else _NoSender("official account API", mp_api_missing)
        wiring.mp = WeChatMpChannel(
            MpCallbackConfig(wc.token, wc.app_id, wc.encoding_aes_key, wc.max_clock_skew, wc.reply_budget_seconds),
            mp_handler(services, window, media), dedup, sender,
        )

    ww = config.wecom
    wecom_api: WecomApi | None = None
    api_missing = _missing([("GRIDBOT_WECOM__CORP_ID", ww.corp_id),
                            ("GRIDBOT_WECOM__AGENT_ID", "" if ww.agent_id is None else str(ww.agent_id)),
                            ("GRIDBOT_WECOM__SECRET", ww.secret)])
    if not api_missing and ww.agent_id is not None:
        wecom_api = WecomApi(WecomApiConfig(ww.corp_id, ww.agent_id, ww.secret, api_base=ww.api_base),
                             session, tokens)
        outbox.register("wecom_card", WecomCardDeliverer(wecom_api, links, config.outbox.wecom_per_minute))
        outbox.register("wecom_text", WecomTextDeliverer(wecom_api, config.outbox.wecom_per_minute))
        wiring.wecom_media = desk.downloads = MediaKeeper(
            wecom_api, config.path(config.service.media_dir) / WECOM_FOLDER, services, WECOM_FOLDER
        )
        outbox.every_run(wiring.wecom_media.retry_due)
    chats = RobotChats()
    wecom_sender = WecomSender(outbox if wecom_api is not None else None, robots, services, chats)
    wiring.work_missing = _missing([("GRIDBOT_WECOM__TOKEN", ww.token),
                                    ("GRIDBOT_WECOM__ENCODING_AES_KEY", ww.encoding_aes_key),
                                    ("GRIDBOT_WECOM__CORP_ID", ww.corp_id)])
    if not wiring.work_missing:
        wiring.work = WecomChannel(
            WecomCallbackConfig(ww.token, ww.encoding_aes_key, ww.corp_id, wc.max_clock_skew,
                                wc.reply_budget_seconds),
            desk.handle, dedup, wecom_sender,
        )
    wiring.robot_missing = _missing([("GRIDBOT_WECOM__ROBOT_TOKEN", ww.robot_token),
                                     ("GRIDBOT_WECOM__ROBOT_ENCODING_AES_KEY", ww.robot_encoding_aes_key)])
    if not wiring.robot_missing:
        wiring.robot = WecomRobotChannel(
            RobotCallbackConfig(ww.robot_token, ww.robot_encoding_aes_key, wc.max_clock_skew, wc.reply_budget_seconds),
            robot_handler(desk, chats), dedup, wecom_sender,
        )
    log_event(log, "wechat_wired", official_account=wiring.mp is not None, wecom=wiring.work is not None,
              wecom_robot=wiring.robot is not None, wecom_api=wecom_api is not None)
    yield
    for channel in (wiring.mp, wiring.work, wiring.robot):
        if channel is not None:
            await channel.drain(5.0)
    for keeper in (media, wiring.wecom_media):
        if keeper is not None:
            await keeper.drain(5.0)
    await session.close()


class _NoSender:
    """Late replies when the callback is configured but the sending API is not."""

    def __init__(self, what: str, missing: str) -> None:
        self._why = f"no {what}: set {missing}"

    async def send(self, reply: Reply) -> None:
        log_event(log, "wechat_reply_not_sent", logging.WARNING, user=reply.recipient_id, reason=self._why)


def _not_configured(what: str, missing: str) -> web.Response:
    return web.Response(status=503, text=f"{what} is not configured: set {missing} and restart the service\n")


_CALLBACKS = {"mp": "the WeChat official account", "work": "the WeCom app", "robot": "the WeCom group robot callback"}


async def _callback(request: web.Request) -> web.StreamResponse:
    """/wechat/mp, /wechat/work and /wechat/robot: to the channel, or 503 naming what is missing."""
    name = request.match_info["channel"]
    wiring = request.app[WECHAT]
    channel, missing = {
        "mp": (wiring.mp, wiring.mp_missing),
        "work": (wiring.work, wiring.work_missing),
        "robot": (wiring.robot, wiring.robot_missing),
    }[name]
    if channel is None:
        return _not_configured(_CALLBACKS[name], missing)
    return await (channel.verify_url(request) if request.method == "GET" else channel.receive(request))


async def _task_page(request: web.Request) -> web.StreamResponse:
    pages = request.app[WECHAT].tasks
    assert pages is not None  # set while the app starts
    return await (pages.show(request) if request.method == "GET" else pages.act(request))


def setup(app: web.Application) -> None:
    """Mount /wechat/mp, /wechat/work, /wechat/robot and /tasks/{number}; wire them at start."""
    app[WECHAT] = WechatWiring()
    callbacks = "/wechat/{channel:" + "|".join(_CALLBACKS) + "}"
    app.router.add_route("GET", callbacks, _callback)
    app.router.add_route("POST", callbacks, _callback)
    app.router.add_route("GET", "/tasks/{number}", _task_page)
    app.router.add_route("POST", "/tasks/{number}", _task_page)
    app.cleanup_ctx.append(_wire)
