"""Encrypted official-account callbacks per second and p99 through the FULL service.

bench/wechat_callbacks.py measures the adapter with an echo handler; this one starts the real
app (`create_app`: Redis, the embedded NLU, the dialogue, tickets through the flow engine, the
outbox and timer loops running) in a server process and sends encrypted text callbacks at a
fixed rate (open loop: latency counts from each request's scheduled time). Every simulated
resident walks a whole report: description with an address → skip the phone → 确认 (a ticket
opens) → 我的工单, one resident's messages seconds apart, as in life. `--mix phased` (the
default, the worst case) has every resident at the same step at once, so for a quarter of the
run every callback opens a ticket; `--mix steady` starts residents one after another, so every
second mixes all four steps (a quarter of the callbacks open tickets), as a city's day does.

    .venv/bin/python bench/wechat_full.py --rate 300 --seconds 10 [--mix phased|steady] [--processes 2] [--worker]

With --worker the service processes answer only (outbox and timer loops off) and one more
process delivers and fires timers, as `gridbot worker` does in production.

The WeChat and WeCom APIs are the tests' fake (tests/fakes/wechat_api.py) in a process of its
own, so what the service sends while it answers (late replies, task cards, the grid robots'
pushes) is really delivered, as in production, rather than failing against an unreachable host.

Target (issue 5): p99 <= 100 ms at 300 callbacks/s. Keys go under a fresh prefix, removed after.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
from aiohttp import web
from loadgen import at_fixed_rate, encrypted_text_callback, summary
from redis.asyncio import Redis

from integrations.wechat.crypto import CallbackCrypto

TOKEN = "bench-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wxbench0000000000"
STEPS = ("{place}门口垃圾好几天没人清理了，臭得很（{i}）", "跳过", "确认", "我的工单")
PLACES = ("金桥小区", "龙湖花园", "松林苑", "翠湖家园", "玉峰花园", "幸福小区3栋")


ROOT = Path(__file__).resolve().parents[1]


async def fake_api(conn: Connection) -> None:
    sys.path.insert(0, str(ROOT))  # the fake lives with the tests
    from flows import GridDirectory
    from tests.fakes.wechat_api import FakeWeChatApi

    directory = GridDirectory.load(ROOT / "flows" / "directory" / "sample.yaml")
    fake = FakeWeChatApi(app_id=APP_ID, robot_keys=tuple(g.robot_key for g in directory.grids if g.robot_key))
    await fake.start()
    conn.send(fake.base_url)
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
    conn.send(dict(Counter(m.api for m in fake.sent)))
    await fake.close()


def fake_main(conn: Connection) -> None:
    asyncio.run(fake_api(conn))


async def serve(
    conn: Connection, redis_url: str, prefix: str, port: int, api_base: str, role: str, first: bool
) -> None:
    """role: "all" (answers and delivers), "web" (answers only) or "worker" (delivers only)."""
    from bot.app import create_app
    from bot.config import load_config

    config = load_config(
        env={
            "GRIDBOT_REDIS__URL": redis_url,
            "GRIDBOT_REDIS__KEY_PREFIX": prefix,
            "GRIDBOT_WECHAT__TOKEN": TOKEN,
            "GRIDBOT_WECHAT__ENCODING_AES_KEY": AES_KEY,
            "GRIDBOT_WECHAT__APP_ID": APP_ID,
            "GRIDBOT_WECHAT__APP_SECRET": "mp-secret",  # the fake's defaults
            "GRIDBOT_WECHAT__API_BASE": api_base,
            "GRIDBOT_WECHAT__MAX_CLOCK_SKEW": "0",
            "GRIDBOT_WECOM__CORP_ID": "wwfakecorp",
            "GRIDBOT_WECOM__AGENT_ID": "1000002",
            "GRIDBOT_WECOM__SECRET": "corp-secret",
            "GRIDBOT_WECOM__API_BASE": api_base,
            "GRIDBOT_SERVICE__LINK_SECRET": "bench-link-secret",
            **({"GRIDBOT_OUTBOX__INTERVAL_SECONDS": "0", "GRIDBOT_FLOWS__TIMER_INTERVAL_SECONDS": "0"}
               if role == "web" else {}),
        }
    )
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    if role == "worker":
        conn.send(0)
    else:
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_port=True)  # several processes share the port
        await site.start()
        conn.send(runner.addresses[0][1])
    started = time.process_time()  # the NLU and the flow are loaded: count only the run
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
    cpu = time.process_time() - started
    await runner.cleanup()
    conn.send(cpu)
    if not first:
        return  # the first process counts and cleans up
    redis = Redis.from_url(redis_url)
    tickets = await redis.zcard(f"{prefix}tickets")
    keys = [k async for k in redis.scan_iter(match=prefix + "*", count=1000)]
    for i in range(0, len(keys), 1000):
        await redis.delete(*keys[i : i + 1000])
    await redis.aclose()
    conn.send(tickets)


def server_main(
    conn: Connection, redis_url: str, prefix: str, port: int, api_base: str, role: str, first: bool, cpus: set[int]
) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    asyncio.run(serve(conn, redis_url, prefix, port, api_base, role, first))


@dataclass(frozen=True, slots=True)
class Prepared:
    url: str
    body: bytes
    step: int


def phased(n: int) -> list[tuple[int, int]]:
    """(resident, step) of request j: resident j % residents, step j // residents. Every resident
    is at the same step at once: the 确认 quarter of the run opens a ticket with every callback."""
    residents = max(1, n // len(STEPS))
    return [(j % residents, min(j // residents, len(STEPS) - 1)) for j in range(n)]


def steady(n: int, rate: int) -> list[tuple[int, int]]:
    """(resident, step) in a steady mix: residents start one after another (a quarter of the
    rate a second) and take each next step 2.5 s later, so after the first 7.5 s every second
    holds every step, a quarter of the callbacks opening a ticket."""
    gap = max(1, int(rate / len(STEPS) * 2.5))  # residents who start within 2.5 s
    events = sorted((who + step * gap, step, who) for who in range(n) for step in range(len(STEPS)))
    return [(who, step) for _, step, who in events[:n]]


def prepare(base: str, plan: list[tuple[int, int]]) -> list[Prepared]:
    """The encrypted callbacks of `plan`: (resident, step of their report) in sending order."""
    crypto = CallbackCrypto(TOKEN, AES_KEY, APP_ID)
    run = uuid.uuid4().hex[:6]
    out = []
    now = str(int(time.time()))
    for j, (who, step) in enumerate(plan):
        user = f"o_{run}_{who}"
        text = STEPS[step].format(place=PLACES[who % len(PLACES)], i=who)
        query, body = encrypted_text_callback(TOKEN, crypto, user, text, 10**12 + j, now)
        out.append(Prepared(f"{base}/wechat/mp?{query}", body, step))
    return out


async def post(session: aiohttp.ClientSession, req: Prepared) -> bool:
    async with session.post(req.url, data=req.body) as resp:
        body = await resp.read()
    return resp.status == 200 and body.startswith(b"<xml><Encrypt>")  # an encrypted passive reply


async def fixed_rate(base: str, rate: int, seconds: float, mix: str) -> str:
    n = int(rate * seconds)
    reqs = prepare(base, steady(n, rate) if mix == "steady" else phased(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=300)) as session:
        results, elapsed = await at_fixed_rate(reqs, rate, lambda req: post(session, req))
    latencies = [latency for _, latency, _ in results]
    errors = sum(not ok for _, _, ok in results)
    by_step: dict[int, list[float]] = {}
    for req, latency, _ in results:
        by_step.setdefault(req.step, []).append(latency)
    lines = [summary(f"full app, {mix} mix, fixed rate {rate}/s", latencies, errors, elapsed, failed="not answered")]
    for step, values in sorted(by_step.items()):
        ms = sorted(v * 1000 for v in values)
        lines.append(
            f"  step {step + 1} ({STEPS[step][:6]}…): p50 {ms[len(ms) // 2]:.1f} "
            f"p99 {ms[min(len(ms) - 1, int(len(ms) * 0.99))]:.1f} ms"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=300, help="callbacks per second")
    parser.add_argument("--seconds", type=float, default=10, help="length of the run")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="the Redis the service uses")
    parser.add_argument("--processes", type=int, default=1, help="service processes sharing the port")
    parser.add_argument("--worker", action="store_true", help="deliveries and timers in a process of their own")
    parser.add_argument("--pin", action="store_true", help="service processes on CPU 0, the rest on the others")
    parser.add_argument("--mix", choices=("phased", "steady"), default="phased",
                        help="phased: all residents at one step at a time (worst case); steady: all steps at once")
    args = parser.parse_args()
    prefix = f"bench-full:{uuid.uuid4().hex[:8]}:"
    service_cpus: set[int] = set()
    if args.pin:  # the service on CPU 0; the load generator and the fake API (spawned next) elsewhere
        service_cpus = {0}
        os.sched_setaffinity(0, os.sched_getaffinity(0) - service_cpus)
    ctx = mp.get_context("spawn")
    fake_pipe, fake_child = ctx.Pipe()
    fake = ctx.Process(target=fake_main, args=(fake_child,), daemon=True)
    fake.start()
    api_base = fake_pipe.recv()
    roles = ["web" if args.worker else "all"] * args.processes + (["worker"] if args.worker else [])
    pipes, servers, port = [], [], 0
    for i, role in enumerate(roles):  # the first picks a port, the others join it (SO_REUSEPORT)
        parent, child = ctx.Pipe()
        server = ctx.Process(
            target=server_main, args=(child, args.redis, prefix, port, api_base, role, i == 0, service_cpus),
            daemon=True,
        )
        server.start()
        got = parent.recv()  # the NLU is trained (or loaded from its cache) before this
        port = got if role != "worker" else port
        pipes.append(parent)
        servers.append(server)
    try:
        print(asyncio.run(fixed_rate(f"http://127.0.0.1:{port}", args.rate, args.seconds, args.mix)))
    finally:
        for role, parent in reversed(list(zip(roles, pipes, strict=True))):  # the first last: it cleans up
            parent.send("stop")
            cpu = parent.recv() if parent.poll(30) else float("nan")
            print(f"{role} process CPU: {cpu:.1f} s = {cpu * 1000 / (args.rate * args.seconds):.2f} ms a callback")
        if pipes[0].poll(30):
            print(f"tickets opened: {pipes[0].recv()}")
        fake_pipe.send("stop")
        if fake_pipe.poll(30):
            print(f"sent to the fake WeChat/WeCom API: {fake_pipe.recv()}")
        for process in (*servers, fake):
            process.join(timeout=10)


if __name__ == "__main__":
    main()
