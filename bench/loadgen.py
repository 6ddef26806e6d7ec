"""Shared by the WeChat benchmarks: build encrypted callbacks, send requests on a fixed schedule
and summarise the latencies.

Latency counts from each request's scheduled time, so a server that falls behind shows it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar
from urllib.parse import urlencode

import aiohttp

from integrations.wechat.crypto import CallbackCrypto, sha1_signature

T = TypeVar("T")


async def at_fixed_rate(
    items: Sequence[T], rate: float, send: Callable[[T], Awaitable[bool]], timeout: float = 5.0
) -> tuple[list[tuple[T, float, bool]], float]:
    """Send `items` at `rate` per second; returns (item, latency s, answered well) per item and the elapsed time."""
    results: list[tuple[T, float, bool]] = []

    async def one(item: T, due: float) -> None:
        try:
            ok = await asyncio.wait_for(send(item), timeout)
        except (TimeoutError, aiohttp.ClientError):
            ok = False
        results.append((item, time.perf_counter() - due, ok))

    start = time.perf_counter()
    tasks = []
    for i, item in enumerate(items):
        due = start + i / rate
        if (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(item, due)))
    await asyncio.gather(*tasks)
    return results, time.perf_counter() - start


def summary(name: str, latencies: list[float], failures: int, elapsed: float, failed: str = "errors") -> str:
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100) if len(ms) > 1 else ms * 99
    return (
        f"{name}: {len(ms)} callbacks in {elapsed:.1f} s = {len(ms) / elapsed:.0f}/s, {failed} {failures}; "
        f"latency ms p50 {q[49]:.1f} p90 {q[89]:.1f} p99 {q[98]:.1f} max {ms[-1]:.1f}"
    )


def encrypted_text_callback(
    token: str, crypto: CallbackCrypto, user: str, text: str, msg_id: int, now: str
) -> tuple[str, bytes]:
    """(query string, body) of an official-account text message in safe mode, as WeChat sends it."""
    xml = (
        f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
    nonce = str(msg_id)
    encrypted, msg_sig = crypto.encrypt(xml.encode(), now, nonce)
    query = urlencode(
        {
            "signature": sha1_signature(token, now, nonce),
            "timestamp": now,
            "nonce": nonce,
            "encrypt_type": "aes",
            "msg_signature": msg_sig,
            "openid": user,
        }
    )
    body = f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    return query, body.encode()
