"""The SMS channel wired into the app: inbound SMS to the dispatcher, replies out through the gateway.

- `POST /sms/inbound` (our signed format) and `POST /sms/tencent/reply` (Tencent Cloud's reply
  callback) both end in `SmsService.receive`.
- 退订 / TD stores the number in a Redis set: no more notifications (the outbox's SMS
  deliveries, the hotline's "ticket opened" SMS); the resident's own messages are still
  answered. 订阅 undoes it.
- 回复1-5评价: a bare 1-5 (or "4分"), sent while no report is in progress, rates the newest
  resolved ticket of this phone: one it texted (through the dialogue) or else one an operator
  filed for it on the hotline.
- A caller texting the number of a hotline ticket of this phone gets its status, and "查询"
  lists the tickets filed for this phone on the hotline with the texted ones: on the unified
  number the phone is the identity, whether the resident called or texted.
- A reply longer than one SMS (70 characters) is split into numbered segments; a short one is
  sent as it is.
- The provider answers within its deadline: replies are sent in the background, with the
  gateway client's retries. A provider retry of a message already answered sends nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from bot.app import SERVICES, Services
from bot.dialogue import STATUS_WORDS
from bot.dispatcher import Dispatcher
from bot.keys import Keys
from bot.logs import log_event
from bot.metrics import Metrics
from bot.outbox import OUTBOX, Outgoing, RetryLater, Undeliverable
from bot.replies import Replies
from bot.ticketing import TicketService
from bot.tickets import Ticket
from flows import Event, TransitionRefused
from integrations.base import IncomingMessage
from integrations.sms.client import OutboundSms, RetryPolicy, SmsError, SmsGatewayClient, SmsRejected
from integrations.sms.inbound import CHANNEL, InboundSms, SmsInboundChannel
from integrations.sms.signing import Signer
from integrations.sms.tencent import TencentReplyChannel

log = logging.getLogger("gridbot.sms")

OPT_OUT_WORDS = frozenset({"TD", "T", "退订", "取消订阅"})
OPT_IN_WORDS = frozenset({"订阅", "DY"})
TICKET_NUMBER = re.compile(r"[A-Za-z]{2}\d{12}")
STATUS_QUERY_WORDS = frozenset({"查询", "查", "工单"})
SCORE = re.compile(r"\s*([1-5])\s*分?\s*")
RATING_LOOKBACK = 5  # the dialogue rates the newest resolved ticket among the sender's latest
REPLIED_TTL_SECONDS = 86400
SHUTDOWN_GRACE_SECONDS = 10.0


def segments(text: str, limit: int = 70) -> list[str]:
    """The SMS to send for `text`: itself if it fits, else pieces marked (1/3), (2/3)... within `limit`."""
    text = text.strip()
    if len(text) <= limit:
        return [text]
    count = 2
    while True:
        room = limit - len(f"({count}/{count})")
        pieces = _pack(text, room)
        if len(pieces) <= count:
            return [f"({i}/{len(pieces)}){p}" for i, p in enumerate(pieces, start=1)]
        count = len(pieces)


def _pack(text: str, room: int) -> list[str]:
    """Greedy: whole lines while they fit, a line longer than a segment is cut."""
    pieces: list[str] = []
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= room:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while len(line) > room:
            pieces.append(line[:room])
            line = line[room:]
        current = line
    if current:
        pieces.append(current)
    return pieces


class SmsService:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        replies: Replies,
        dispatcher: Dispatcher,
        tickets: TicketService,
        metrics: Metrics,
        gateway: SmsGatewayClient | None,
        segment_chars: int,
        list_size: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._replies = replies
        self._dispatcher = dispatcher
        self._tickets = tickets
        self._metrics = metrics
        self._gateway = gateway
        self._segment_chars = segment_chars
        self._list_size = list_size
        self._clock = clock
        self._sending: set[asyncio.Task[None]] = set()

    async def receive(self, sms: InboundSms) -> None:
        word = sms.text.strip().upper()
        if word in OPT_OUT_WORDS or word in OPT_IN_WORDS:
            await self._dispatcher.record(sms.to_incoming())
            texts = [await self._subscription(sms.sender, opt_out=word in OPT_OUT_WORDS)]
        else:
            texts = await self._converse(sms)
        first_time = await self._redis.set(self._keys.sms_replied(sms.message_id), "1", nx=True, ex=REPLIED_TTL_SECONDS)
        if not first_time:
            log_event(log, "sms_retry_not_answered_again", phone=sms.sender, message_id=sms.message_id)
            return
        for i, text in enumerate(texts):
            self.send_in_background(sms.sender, text, f"{sms.message_id}:r{i}")

    async def _converse(self, sms: InboundSms) -> list[str]:
        answered = await self._outside_dialogue(sms)
        if answered is not None:
            await self._dispatcher.record(sms.to_incoming())  # kept like every other message
            return answered
        return [reply.text for reply in await self._dispatcher.handle(await self._as_incoming(sms))]

    async def _outside_dialogue(self, sms: InboundSms) -> list[str] | None:
        """What the unified number answers itself: a caller's tickets that an operator filed."""
        hotline_answer = await self._hotline_ticket_status(sms)
        if hotline_answer is not None:
            return [hotline_answer]
        idle = not await self._redis.exists(self._keys.conversation(CHANNEL, sms.sender))
        if idle and _is_status_query(sms.text):
            listing = await self._list_with_hotline_tickets(sms.sender)
            if listing is not None:
                return [listing]
        score = SCORE.fullmatch(sms.text)
        if score and idle and not await self._resolved(CHANNEL, sms.sender):
            # not mid-report, where a digit answers the bot's question (a category choice...)
            rated = await self._rate_hotline_ticket(sms.sender, int(score.group(1)))
            if rated is not None:
                return [rated]
        return None

    async def _as_incoming(self, sms: InboundSms) -> IncomingMessage:
        """A bare 1–5 from an idle sender with a resolved SMS ticket is a rating ("4分")."""
        incoming = sms.to_incoming()
        score = SCORE.fullmatch(sms.text)
        idle = not await self._redis.exists(self._keys.conversation(CHANNEL, sms.sender))
        if score and idle and await self._resolved(CHANNEL, sms.sender):
            incoming = dataclasses.replace(incoming, text=f"{score.group(1)}分")
        return incoming

    async def _list_with_hotline_tickets(self, phone: str) -> str | None:
        """ "查询" from a phone an operator filed tickets for lists those too (else the dialogue answers)."""
        called = await self._tickets.own_tickets("hotline", phone, self._list_size)
        if not called:
            return None
        texted = await self._tickets.own_tickets(CHANNEL, phone, self._list_size)
        tickets = sorted([*called, *texted], key=lambda t: (t.created_at, t.number), reverse=True)
        views = [self._tickets.view(t) for t in tickets[: self._list_size]]
        return self._replies.render("status_list", channel=CHANNEL, tickets=views)

    async def _resolved(self, channel: str, phone: str) -> list[Ticket]:
        """The sender's tickets on `channel` waiting for a rating, newest first."""
        tickets = await self._tickets.own_tickets(channel, phone, RATING_LOOKBACK)
        return [t for t in tickets if t.status == "resolved"]

    async def _rate_hotline_ticket(self, phone: str, score: int) -> str | None:
        """The rating invitation of a ticket filed by phone reaches the caller by SMS: the reply rates it."""
        waiting = await self._resolved("hotline", phone)
        if not waiting:
            return None
        event = Event(kind="rate", actor="resident", at=self._clock(), data=(("score", str(score)),))
        try:
            moved = await self._tickets.act(waiting[0].number, event)
        except TransitionRefused:
            return None
        reopened = moved.status not in {"closed", "resolved"}
        view = self._tickets.view(moved)
        return self._replies.render("rated", channel=CHANNEL, t=view, score=score, reopened=reopened)

    async def _hotline_ticket_status(self, sms: InboundSms) -> str | None:
        """A caller texting the number of a ticket an operator filed for this phone gets its status.

        The dialogue only shows a channel's own tickets; on the unified number the phone is the
        identity, whether the resident called or texted.
        """
        match = TICKET_NUMBER.fullmatch(sms.text.strip())
        if match is None:
            return None
        ticket = await self._tickets.own_ticket("hotline", sms.sender, match.group(0).upper())
        if ticket is None:
            return None
        return self._replies.render("status_detail", channel=CHANNEL, t=self._tickets.view(ticket))

    async def _subscription(self, phone: str, opt_out: bool) -> str:
        key = self._keys.sms_opted_out()
        if opt_out:
            await self._redis.sadd(key, phone)
        else:
            await self._redis.srem(key, phone)
        log_event(log, "sms_opted_out" if opt_out else "sms_opted_in", phone=phone)
        return self._replies.render("opted_out" if opt_out else "opted_in", channel=CHANNEL)

    async def opted_out(self, phone: str) -> bool:
        return bool(await self._redis.sismember(self._keys.sms_opted_out(), phone))

    async def notify(self, phone: str, text: str, message_id: str) -> bool:
        """A notification the resident did not ask for: not sent to a number that opted out."""
        if await self.opted_out(phone):
            log_event(log, "sms_notice_skipped_opted_out", phone=phone, message_id=message_id)
            return False
        self.send_in_background(phone, text, message_id)
        return True

    def send_in_background(self, phone: str, text: str, message_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._send(phone, text, message_id))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, phone: str, text: str, message_id: str) -> None:
        try:
            await self.send_now(phone, text, message_id)
        except SmsError as exc:
            self._metrics.errors.labels("sms_send").inc()
            log_event(log, "sms_send_failed", logging.ERROR, phone=phone, message_id=message_id, error=str(exc))

    async def send_now(self, phone: str, text: str, message_id: str) -> None:
        """Hand every segment to the gateway; raises SmsError (no gateway configured: SmsRejected)."""
        if self._gateway is None:
            raise SmsRejected("no SMS gateway is configured (sms.gateway_url)")
        for i, piece in enumerate(segments(text, self._segment_chars)):
            await self._gateway.send(OutboundSms(message_id=f"{message_id}:s{i}", to=phone, text=piece))

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until the SMS on their way now have been handed to the gateway (or given up)."""
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=timeout)

    async def close(self) -> None:
        """Let SMS already on their way finish (bounded), then stop."""
        await self.drain(SHUTDOWN_GRACE_SECONDS)
        for task in set(self._sending):
            task.cancel()


def _is_status_query(text: str) -> bool:
    text = text.strip()
    return text in STATUS_QUERY_WORDS or any(w in text for w in STATUS_WORDS)


class SmsDeliverer:
    """The outbox's way out by SMS (residents who texted or called): not to numbers that sent TD."""

    def __init__(self, sms: SmsService, per_minute: int) -> None:
        self._sms = sms
        self.per_minute = per_minute

    async def deliver(self, recipient: str, message: Outgoing) -> str:
        if await self._sms.opted_out(recipient):
            return "opted_out"
        try:
            # the delivery id makes the gateway's message ids stable: a retry is not sent twice
            await self._sms.send_now(recipient, message.text, message.delivery_id)
        except SmsRejected as exc:
            raise Undeliverable(str(exc)) from exc
        except SmsError as exc:
            raise RetryLater(str(exc)) from exc
        return "sent"


@dataclass(frozen=True, slots=True)
class SmsWebhooks:
    inbound: SmsInboundChannel
    tencent: TencentReplyChannel


SMS = web.AppKey("sms", SmsService)
SMS_WEBHOOKS = web.AppKey("sms_webhooks", SmsWebhooks)


def build_sms(services: Services, session: aiohttp.ClientSession) -> SmsService:
    cfg = services.config.sms
    gateway = None
    if cfg.gateway_url:
        policy = RetryPolicy(attempts=cfg.attempts, base_delay=cfg.retry_delay_seconds, timeout=cfg.timeout_seconds)
        gateway = SmsGatewayClient(session, cfg.gateway_url, Signer(cfg.gateway_secret), cfg.sender, policy)
    return SmsService(
        services.redis,
        services.keys,
        services.replies,
        services.dispatcher,
        services.tickets,
        services.metrics,
        gateway,
        cfg.segment_chars,
        services.config.dialogue.status_list_size,
        services.clock,
    )


def build_webhooks(services: Services, sms: SmsService) -> SmsWebhooks:
    cfg = services.config.sms
    signer = Signer(cfg.signing_secret, cfg.max_clock_skew)
    return SmsWebhooks(
        inbound=SmsInboundChannel(sms.receive, signer, now=lambda: services.clock().timestamp()),
        tencent=TencentReplyChannel(sms.receive, cfg.tencent_token),
    )


def setup(app: web.Application) -> None:
    """Mount the SMS webhooks and put an `SmsService` (outbound too) under `SMS`."""

    async def sms_ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        async with aiohttp.ClientSession() as session:
            sms = build_sms(services, session)
            app[SMS] = sms
            app[SMS_WEBHOOKS] = build_webhooks(services, sms)
            app[OUTBOX].register("sms", SmsDeliverer(sms, services.config.sms.per_minute))
            yield
            await sms.close()

    app.cleanup_ctx.append(sms_ctx)

    async def inbound(request: web.Request) -> web.StreamResponse:
        return await request.app[SMS_WEBHOOKS].inbound.receive(request)

    async def tencent(request: web.Request) -> web.StreamResponse:
        return await request.app[SMS_WEBHOOKS].tencent.receive(request)

    app.router.add_post(SmsInboundChannel.path, inbound)
    app.router.add_post(TencentReplyChannel.path, tencent)
