"""Throughput and latency of the REST channel: many residents doing a full report plus a status query.

Starts one `gridbot serve` process (embedded NLU, the Redis from config.yaml, its own key prefix),
then drives it from this process over loopback and prints messages/s and p50/p99 latency.

    .venv/bin/python bench/rest_dialogue.py [--residents 200] [--concurrency 50] [--port 8099]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
DIALOGUE = ("小区门口垃圾好几天没人清理了，臭得很", "阳光花园北门", "跳过", "确认", "我的工单")


async def resident(session: aiohttp.ClientSession, url: str, n: int, latencies: list[float]) -> None:
    sender = f"bench-{n}"
    for text in DIALOGUE:
        started = time.perf_counter()
        async with session.post(url, json={"sender": sender, "message": text}) as resp:
            body = await resp.json()
            if resp.status != 200 or not body:
                raise RuntimeError(f"{resp.status}: {body}")
        latencies.append(time.perf_counter() - started)


async def wait_ready(base: str, proc: subprocess.Popen) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError("the service exited; see its output above")
            try:
                async with session.get(f"{base}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the service did not become ready in 60 s")


async def run(args: argparse.Namespace) -> None:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    env = {**os.environ, "GRIDBOT_REDIS__KEY_PREFIX": prefix, "GRIDBOT_SERVICE__LOG_LEVEL": "WARNING"}
    base = f"http://127.0.0.1:{args.port}"
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/gridbot"), "serve", "--port", str(args.port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        await wait_ready(base, proc)
        url = f"{base}/webhooks/rest/webhook"
        latencies: list[float] = []
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            # warm up the connection pool and the service
            await asyncio.gather(*(resident(session, url, -i - 1, []) for i in range(10)))
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(args.residents):
                queue.put_nowait(i)

            async def worker() -> None:
                while not queue.empty():
                    await resident(session, url, queue.get_nowait(), latencies)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            elapsed = time.perf_counter() - started
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        print(f"residents={args.residents} concurrency={args.concurrency} messages={len(latencies)}")
        print(f"throughput: {len(latencies) / elapsed:.0f} messages/s over {elapsed:.1f} s")
        print(f"latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        redis = Redis.from_url(os.environ.get("GRIDBOT_REDIS__URL", "redis://127.0.0.1:6379/0"))
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--port", type=int, default=8099)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
