"""Milliseconds per message for each step of a report, through the dispatcher alone.

No HTTP and no WeChat: `build_services` on a real Redis, then N residents each send the four
steps one after another (description, 跳过, 确认, 我的工单), sequentially, so each figure is
one message's own cost (CPU plus its Redis round trips), with nothing queued in front of it.
Use it to compare code or machines; bench/wechat_full.py measures latency under load.

    .venv/bin/python bench/dispatch_steps.py [--residents 300] [--redis redis://127.0.0.1:6379/15]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from bot.app import build_services
from bot.config import load_config
from integrations.base import IncomingMessage

STEPS = ("{place}门口垃圾好几天没人清理了，臭得很（{i}）", "跳过", "确认", "我的工单")


async def run(residents: int, redis_url: str) -> None:
    prefix = f"bench-steps:{uuid.uuid4().hex[:8]}:"
    config = load_config(env={"GRIDBOT_REDIS__URL": redis_url, "GRIDBOT_REDIS__KEY_PREFIX": prefix})
    services = await build_services(config)
    try:
        for step, text in enumerate(STEPS):
            started, cpu = time.perf_counter(), time.process_time()
            for i in range(residents):
                msg = IncomingMessage(channel="wechat_mp", user_id=f"u{i}", text=text.format(place="金桥小区", i=i),
                                      provider_message_id=f"{step}-{i}")
                await services.dispatcher.handle(msg)
            wall = (time.perf_counter() - started) / residents * 1000
            print(f"step {step + 1} ({text[:6]}…): {wall:.2f} ms a message, "
                  f"{(time.process_time() - cpu) / residents * 1000:.2f} ms CPU")
        keys = [k async for k in services.redis.scan_iter(match=prefix + "*", count=1000)]
        for i in range(0, len(keys), 1000):
            await services.redis.delete(*keys[i : i + 1000])
    finally:
        await services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--residents", type=int, default=300)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    asyncio.run(run(args.residents, args.redis))


if __name__ == "__main__":
    main()
