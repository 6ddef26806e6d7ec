"""Encrypted official-account callbacks per second and their latency, on loopback.

A server process runs the `/wechat/mp` adapter in safe mode (signature, decryption, defusedxml,
wechatpy parse, dedup, handler, encrypted passive reply) with a trivial echo handler; this
process sends pre-built encrypted text callbacks at a fixed rate (open loop: latency counts
from each request's scheduled time, so a server that falls behind shows it) and then as fast as
`--concurrency` connections allow.

    .venv/bin/python bench/wechat_callbacks.py --rate 300 --seconds 10
    .venv/bin/python bench/wechat_callbacks.py --redis redis://127.0.0.1:6379/15   # dedup in Redis

Target (issue 5): p99 <= 100 ms at 300 callbacks/s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection

import aiohttp
from aiohttp import web
from loadgen import at_fixed_rate, encrypted_text_callback, summary
from redis.asyncio import Redis

from bot.keys import Keys
from bot.wechat import RedisDeduplicator
from integrations.base import IncomingMessage, Reply
from integrations.wechat.crypto import CallbackCrypto
from integrations.wechat.mp import MpCallbackConfig, WeChatMpChannel

TOKEN = "bench-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wxbench0000000000"


class MemoryDedup:
    def __init__(self) -> None:
        self._seen: set[str] = set()

    async def first_time(self, key: str) -> bool:
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    async def forget(self, key: str) -> None:
        self._seen.discard(key)


class DropSender:
    async def send(self, reply: Reply) -> None:
        return None


async def echo(msg: IncomingMessage) -> list[Reply]:
    return [Reply(msg.user_id, f"收到：{msg.text}")]


async def serve(conn: Connection, redis_url: str | None) -> None:
    redis = Redis.from_url(redis_url) if redis_url else None
    prefix = f"bench-wechat:{uuid.uuid4().hex[:8]}:"
    dedup = RedisDeduplicator(redis, Keys(prefix)) if redis else MemoryDedup()
    channel = WeChatMpChannel(MpCallbackConfig(TOKEN, APP_ID, AES_KEY), echo, dedup, DropSender())
    app = web.Application()
    app.add_routes(channel.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    conn.send(runner.addresses[0][1])
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
    await runner.cleanup()
    if redis:
        keys = [k async for k in redis.scan_iter(match=prefix + "*", count=1000)]
        for i in range(0, len(keys), 1000):
            await redis.delete(*keys[i : i + 1000])
        await redis.aclose()


def server_main(conn: Connection, redis_url: str | None) -> None:
    asyncio.run(serve(conn, redis_url))


@dataclass(frozen=True, slots=True)
class Prepared:
    url: str
    body: bytes


def prepare(base: str, n: int, first_id: int) -> list[Prepared]:
    crypto = CallbackCrypto(TOKEN, AES_KEY, APP_ID)
    out = []
    now = str(int(time.time()))
    for i in range(n):
        text = f"小区门口的路灯坏了三天了，晚上很黑，请尽快修理 {i}"
        query, body = encrypted_text_callback(TOKEN, crypto, f"o_user{i % 500}", text, first_id + i, now)
        out.append(Prepared(f"{base}/wechat/mp?{query}", body))
    return out


async def post(session: aiohttp.ClientSession, req: Prepared) -> bool:
    async with session.post(req.url, data=req.body) as resp:
        body = await resp.read()
    return resp.status == 200 and body.startswith(b"<xml><Encrypt>")


async def fixed_rate(base: str, rate: int, seconds: float) -> str:
    reqs = prepare(base, int(rate * seconds), first_id=10**12)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
        results, elapsed = await at_fixed_rate(reqs, rate, lambda req: post(session, req))
    latencies = [latency for _, latency, _ in results]
    errors = sum(not ok for _, _, ok in results)
    return summary(f"fixed rate {rate}/s", latencies, errors, elapsed)


async def flat_out(base: str, concurrency: int, n: int) -> str:
    reqs = prepare(base, n, first_id=2 * 10**12)
    latencies: list[float] = []
    errors = 0
    queue = iter(reqs)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            nonlocal errors
            for req in queue:
                t = time.perf_counter()
                errors += not await post(session, req)
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return summary(f"flat out, {concurrency} connections", latencies, errors, elapsed)


async def run(args: argparse.Namespace, port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    print(await fixed_rate(base, args.rate, args.seconds))
    print(await flat_out(base, args.concurrency, args.max_requests))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=300, help="callbacks per second in the fixed-rate run")
    parser.add_argument("--seconds", type=float, default=10, help="length of the fixed-rate run")
    parser.add_argument("--concurrency", type=int, default=32, help="connections in the flat-out run")
    parser.add_argument("--max-requests", type=int, default=5000, help="callbacks in the flat-out run")
    parser.add_argument("--redis", default=None, help="dedup with Redis SET NX at this URL (default: in memory)")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=server_main, args=(child, args.redis), daemon=True)
    server.start()
    try:
        port = parent.recv()
        asyncio.run(run(args, port))
    finally:
        parent.send("stop")
        server.join(timeout=10)


if __name__ == "__main__":
    main()
