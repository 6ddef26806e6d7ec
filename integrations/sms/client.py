"""Outbound SMS through an HTTP gateway, with a timeout per try and retries with backoff.

Wire format (provider-neutral; the same HMAC headers as the inbound webhook, signed with the
gateway secret):

    POST <gateway_url>
    {"message_id": "<our id>", "to": "13812345678", "text": "...", "sender": "12345"}

    200/201/202 {"status": "queued", ...}   -> delivered to the gateway
    4xx                                    -> rejected, not retried (SmsRejected)
    5xx, timeout, connection error         -> retried; SmsUnavailable when tries run out

The gateway must treat `message_id` as an idempotency key: a retry after a timeout may repeat
a request that already arrived, and must not send the SMS twice. (Mainland providers only
send free text through an operator gateway or an approved template, so the relay that turns
this request into CMPP or a provider template call lives with the gateway, not here.)
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass

import aiohttp

from integrations.sms.signing import Signer

JSON_UTF8 = "application/json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class OutboundSms:
    message_id: str
    to: str
    text: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3  # tries in all
    base_delay: float = 0.5  # seconds before the second try; doubles, with jitter
    max_delay: float = 5.0
    timeout: float = 5.0  # per try, connect to last byte

    def delay(self, attempt: int, rng: random.Random) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.0)


class SmsError(Exception):
    pass


class SmsRejected(SmsError):
    """The gateway refused the message (4xx): retrying would not help."""


class SmsUnavailable(SmsError):
    """The gateway could not be reached or kept failing; the message may or may not have gone out."""


class SmsGatewayClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        signer: Signer,
        sender: str = "",
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._session = session
        self._url = url
        self._signer = signer
        self._sender = sender
        self._policy = policy or RetryPolicy()
        self._rng = rng or random.Random()

    async def send(self, sms: OutboundSms) -> None:
        body = json.dumps(
            {"message_id": sms.message_id, "to": sms.to, "text": sms.text, "sender": self._sender},
            ensure_ascii=False,
        ).encode()
        policy = self._policy
        last_error = ""
        for attempt in range(1, policy.attempts + 1):
            headers = {"Content-Type": JSON_UTF8, **self._signer.headers(int(time.time()), body)}
            try:
                async with self._session.post(
                    self._url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=policy.timeout)
                ) as resp:
                    if resp.status < 300:
                        return
                    detail = (await resp.text())[:200]
                    if 400 <= resp.status < 500:
                        raise SmsRejected(f"gateway answered {resp.status}: {detail}")
                    last_error = f"gateway answered {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if attempt < policy.attempts:
                await asyncio.sleep(policy.delay(attempt, self._rng))
        raise SmsUnavailable(f"{sms.message_id}: {last_error} after {policy.attempts} tries")
