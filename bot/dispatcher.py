"""One dispatcher for every channel: dedupe, lock, understand, converse, answer.

The path of one message (see docs/architecture in the shared docs):
1. keep what the resident sent (the inbox stream) — nothing is ever lost — and, in the same
   round trip, drop provider retries (bot/inbox.py: a claim on the provider message id; a retry
   gets the first answer replayed);
2. take the per-conversation lock and load the state in one Lua call, so one person's
   messages are handled in order;
3. NLU, then the dialogue state machine;
4. save the state (with its TTL), release the lock and keep the answer for retries, in one call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime

from redis.asyncio import Redis

from bot.config import DialogueConfig
from bot.dialogue import IDLE, Conversation, Dialogue
from bot.inbox import Inbox
from bot.keys import Keys
from bot.logs import log_event
from bot.metrics import Metrics
from bot.replies import Replies
from integrations.base import IncomingMessage, Reply
from nlu.types import NluBackend, NluResult

log = logging.getLogger("gridbot.dispatcher")

LOCK_LEASE_SECONDS = 15
LOCK_WAIT_SECONDS = 10

# KEYS: lock, conversation; ARGV: token, lease ms. Returns {1, state or ""} if the lock was taken.
_ACQUIRE_AND_LOAD = """
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
  return {1, redis.call("GET", KEYS[2]) or ""}
end
return {0, ""}
"""

# KEYS: lock, [conversation, [seen]]; ARGV: token, state ("" = idle), state ttl, answer ("" = none), answer ttl.
# Saves the state only while still holding the lock; the answer to a provider id is kept regardless
# (settled as `Inbox.settle` does: a JSON list of texts).
_SAVE_AND_RELEASE = """
local held = redis.call("GET", KEYS[1]) == ARGV[1]
if held then
  if KEYS[2] then
    if ARGV[2] == "" then redis.call("DEL", KEYS[2]) else redis.call("SET", KEYS[2], ARGV[2], "EX", ARGV[3]) end
  end
  redis.call("DEL", KEYS[1])
end
if KEYS[3] and ARGV[4] ~= "" then redis.call("SET", KEYS[3], ARGV[4], "EX", ARGV[5]) end
return held and 1 or 0
"""


class Dispatcher:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        nlu: NluBackend,
        dialogue: Dialogue,
        replies: Replies,
        metrics: Metrics,
        settings: DialogueConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._nlu = nlu
        self._dialogue = dialogue
        self._replies = replies
        self._metrics = metrics
        self._settings = settings
        self._clock = clock
        self.inbox = Inbox(redis, keys, clock, settings.dedup_ttl_seconds)  # the worker desk's too
        self._acquire_and_load = redis.register_script(_ACQUIRE_AND_LOAD)
        self._save_and_release = redis.register_script(_SAVE_AND_RELEASE)

    async def handle(self, msg: IncomingMessage) -> list[Reply]:
        started = time.perf_counter()
        try:
            return await self._handle(msg)
        finally:
            self._metrics.latency.labels(msg.channel).observe(time.perf_counter() - started)

    async def _handle(self, msg: IncomingMessage) -> list[Reply]:
        text = msg.text.strip()
        if msg.kind == "text" and not text and msg.location is None and not msg.media_ids:
            return [self._reply(msg, self._replies.render("empty_message", channel=msg.channel))]
        too_long = len(msg.text) > self._settings.max_message_chars
        seen_key = None if too_long else self.inbox.claim_key(msg)
        first_time = await self.inbox.keep(msg, seen_key)
        if too_long:
            refusal = self._replies.render(
                "too_long", channel=msg.channel, length=len(msg.text), limit=self._settings.max_message_chars
            )
            return [self._reply(msg, refusal)]
        if seen_key and not first_time:
            self._metrics.duplicates.labels(msg.channel).inc()
            log_event(log, "duplicate_dropped", channel=msg.channel, message_id=msg.provider_message_id)
            return [self._reply(msg, text) for text in await self.inbox.replay(seen_key)]
        try:
            return await self._converse(msg, seen_key)
        except Exception:
            self._metrics.errors.labels("dispatcher").inc()
            log.exception("message_failed", extra={"fields": {"channel": msg.channel, "user": msg.user_id}})
            await self.inbox.release(seen_key)  # let the provider's retry try again
            return [self._reply(msg, self._replies.render("error", channel=msg.channel))]

    async def _converse(self, msg: IncomingMessage, seen_key: str | None) -> list[Reply]:
        """Under the conversation's lock: load, understand, answer, save (two Redis round trips)."""
        conv_key = self._keys.conversation(msg.channel, msg.user_id)
        lock_key = self._keys.conversation_lock(msg.channel, msg.user_id)
        token = secrets.token_hex(8)
        raw = await self._acquire(lock_key, conv_key, token)
        conv = Conversation.from_json(json.loads(raw)) if raw else IDLE
        nlu = await self._nlu.parse(msg.text) if msg.kind == "text" else _not_text(msg)
        self._metrics.messages.labels(msg.channel, nlu.intent).inc()
        try:
            turn = await self._dialogue.handle(conv, msg, nlu, self._clock())
        except BaseException:
            await self._release(lock_key, token)
            raise
        replies = [self._reply(msg, text) for text in turn.replies]
        state = "" if turn.conversation == IDLE else json.dumps(turn.conversation.to_json(), ensure_ascii=False)
        answer = json.dumps([r.text for r in replies], ensure_ascii=False) if seen_key else ""
        saved = await self._save_and_release(
            keys=[lock_key, conv_key, *([seen_key] if seen_key else [])],
            args=[token, state, self._settings.state_ttl_seconds, answer, self._settings.dedup_ttl_seconds],
        )
        if not saved:  # the lease ran out mid-message; another message may have moved on meanwhile
            log_event(log, "conversation_lease_lost", logging.WARNING, channel=msg.channel, user=msg.user_id)
        log_event(
            log,
            "message",
            channel=msg.channel,
            user=msg.user_id,
            intent=nlu.intent,
            category=nlu.category,
            state=turn.conversation.state,
            emergency=nlu.emergency,
        )
        if turn.opened is not None:
            self._metrics.tickets_opened.labels(msg.channel, turn.opened.flow.category).inc()
            log_event(
                log,
                "ticket_opened",
                ticket=turn.opened.number,
                channel=msg.channel,
                category=turn.opened.flow.category,
                colour=turn.opened.flow.colour,
                phone=turn.opened.phone or "",
            )
        return replies

    async def _acquire(self, lock_key: str, conv_key: str, token: str) -> str:
        """Take the per-conversation lock and read the state in one call; wait while another holds it."""
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            got, raw = await self._acquire_and_load(keys=[lock_key, conv_key], args=[token, LOCK_LEASE_SECONDS * 1000])
            if got:
                return raw
            if time.monotonic() > deadline:
                raise TimeoutError(f"conversation lock {lock_key} held for over {LOCK_WAIT_SECONDS} s")
            await asyncio.sleep(0.005)

    async def _release(self, lock_key: str, token: str) -> None:
        await self._save_and_release(keys=[lock_key], args=[token, "", 0, "", 0])

    async def in_conversation(self, channel: str, user_id: str) -> bool:
        """A dialogue with this person is under way (e.g. a report waiting for its location)."""
        return bool(await self._redis.exists(self._keys.conversation(channel, user_id)))

    async def record(self, msg: IncomingMessage) -> None:
        """Keep a message that a channel answers without the dialogue (an SMS 退订, say)."""
        await self.inbox.record(msg)

    def _reply(self, msg: IncomingMessage, text: str) -> Reply:
        return Reply(recipient_id=msg.user_id, text=text, private=msg.in_group)


def _not_text(msg: IncomingMessage) -> NluResult:
    """Events, photos and locations need no NLU; metrics count them as `event:<kind>`."""
    return NluResult(text="", intent=f"event:{msg.kind}", confidence=1.0, category=None)
