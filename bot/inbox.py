"""Every message anyone sends, kept before anything else happens to it, and its provider's
retries told apart from it.

WeChat and WeCom send a message again when its callback failed or answered late. The callback
adapters drop the retries they recognise, but forget a message whose handler raised, so that its
retry is handled (integrations/wechat/callback.py). Whoever handles a message — the dispatcher
for residents, the worker desk for the commands of workers and staff — claims it here by its
provider message id as it keeps it, so that nothing it did is done twice:

- `keep` appends the message to the inbox stream and claims its id (`pending`) in the same
  round trip; a retry finds the claim taken and gets `replay`, never a second run;
- `settle` keeps what the first attempt answered (a JSON list of texts; the dispatcher writes the
  same from its Lua script, with the conversation) for a retry to be given; a handler settles as
  soon as its change is committed, with an interim answer if the real one is not ready yet;
- `release` lets a retry in after all, unless the attempt had settled: what failed before its
  change was committed is handled afresh, what failed after it is not done again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime

from redis.asyncio import Redis

from bot.keys import Keys
from integrations.base import IncomingMessage

PENDING = "pending"
# how long a claimed-but-unfinished provider message blocks its retries (a crash frees it)
PENDING_SECONDS = 60
REPLAY_WAIT_SECONDS = 3.0  # a retry waits this long for a first attempt still running
INBOX_MAX = 1_000_000  # approximate cap of the inbox stream

# KEYS[1] the claim; ARGV[1] the pending marker: free the claim unless an answer settled it.
_RELEASE = """
if redis.call("GET", KEYS[1]) == ARGV[1] then redis.call("DEL", KEYS[1]) end
"""


class Inbox:
    def __init__(self, redis: Redis, keys: Keys, clock: Callable[[], datetime], answer_ttl_seconds: int) -> None:
        self._redis = redis
        self._keys = keys
        self._clock = clock
        self._answer_ttl = answer_ttl_seconds
        self._release = redis.register_script(_RELEASE)

    def claim_key(self, msg: IncomingMessage) -> str | None:
        """The key that claims the message; None when its provider gives it no id."""
        return self._keys.seen_message(msg.channel, msg.provider_message_id) if msg.provider_message_id else None

    async def record(self, msg: IncomingMessage) -> None:
        """Keep a message that is handled without a claim."""
        await self._redis.xadd(self._keys.inbox(), self._fields(msg), maxlen=INBOX_MAX, approximate=True)

    async def keep(self, msg: IncomingMessage, claim: str | None) -> bool:
        """Append the message to the inbox and, with a claim key, claim it; True unless a retry."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self._keys.inbox(), self._fields(msg), maxlen=INBOX_MAX, approximate=True)
            if claim:
                pipe.set(claim, PENDING, nx=True, ex=PENDING_SECONDS)
            results = await pipe.execute()
        return bool(results[1]) if claim else True

    async def settle(self, claim: str | None, answer: list[str]) -> None:
        """What a retry of the claimed message is given from now on."""
        if claim:
            await self._redis.set(claim, json.dumps(answer, ensure_ascii=False), ex=self._answer_ttl)

    async def release(self, claim: str | None) -> None:
        """The attempt failed: its retry is handled afresh, unless the attempt had settled."""
        if claim:
            await self._release(keys=[claim], args=[PENDING])

    async def replay(self, claim: str) -> list[str]:
        """What the first attempt answered, once it has; nothing while it is still running after
        `REPLAY_WAIT_SECONDS` or when its claim is gone (and never a second run)."""
        deadline = time.monotonic() + REPLAY_WAIT_SECONDS
        while True:
            stored = await self._redis.get(claim)
            if stored != PENDING or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        if not stored or stored == PENDING:
            return []
        return list(json.loads(stored))

    def _fields(self, msg: IncomingMessage) -> dict[str, str]:
        fields = {
            "channel": msg.channel,
            "user": msg.user_id,
            "kind": msg.kind,
            "text": msg.text,
            "at": self._clock().isoformat(),
        }
        if msg.provider_message_id:
            fields["message_id"] = msg.provider_message_id
        if msg.location is not None:
            fields["location"] = f"{msg.location.lat},{msg.location.lon},{msg.location.label}"
        if msg.media_ids:
            fields["media"] = ",".join(msg.media_ids)
        return fields
