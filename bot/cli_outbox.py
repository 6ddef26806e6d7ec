"""`gridbot outbox dead` and `gridbot outbox retry ID|--all`: the notification dead-letter list."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime

from redis.asyncio import Redis

from bot.config import load_config
from bot.keys import Keys
from bot.outbox import dead_letters, mask_recipient, retry_dead


async def _dead(redis: Redis, keys: Keys) -> int:
    letters = await dead_letters(redis, keys)
    if not letters:
        print("no dead letters")
    for letter in letters:
        d = letter.delivery
        who = mask_recipient(d.channel, d.recipient)
        print(f"{d.id}\t{letter.at}\t{d.ticket}\t{d.template}\t{d.audience}->{d.channel}:{who}\t"
              f"tries={d.attempt}\t{letter.error}")
    return 0


async def _retry(redis: Redis, keys: Keys, ids: list[str], everything: bool) -> int:
    if everything:
        ids = [letter.delivery.id for letter in await dead_letters(redis, keys)]
    missing = 0
    for delivery_id in ids:
        if await retry_dead(redis, keys, delivery_id, datetime.now().astimezone()):
            print(f"queued again: {delivery_id}")
        else:
            print(f"not in the dead-letter list: {delivery_id}")
            missing += 1
    return 1 if missing else 0


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)

    async def go() -> int:
        redis = config.redis.connect()
        keys = Keys(config.redis.key_prefix)
        try:
            if args.outbox_command == "dead":
                return await _dead(redis, keys)
            if not args.ids and not args.all:
                print("give delivery ids (from `gridbot outbox dead`) or --all")
                return 2
            return await _retry(redis, keys, args.ids, args.all)
        finally:
            await redis.aclose()

    return asyncio.run(go())


def register(sub: argparse._SubParsersAction) -> None:
    outbox = sub.add_parser("outbox", help="notification deliveries that gave up: list and retry")
    commands = outbox.add_subparsers(dest="outbox_command", required=True)
    dead = commands.add_parser("dead", help="list the dead-letter deliveries")
    dead.add_argument("--config", default=None, help="path to config.yaml")
    dead.set_defaults(func=_run)
    retry = commands.add_parser("retry", help="queue dead deliveries again (the worker sends them)")
    retry.add_argument("ids", nargs="*", help="delivery ids as listed by `gridbot outbox dead`")
    retry.add_argument("--all", action="store_true", help="every dead delivery")
    retry.add_argument("--config", default=None, help="path to config.yaml")
    retry.set_defaults(func=_run)
