"""`gridbot outbox dead` and `gridbot outbox retry ID|--all`: the notification dead-letter list.

It holds the deliveries that gave up and those that are uncertain (the request left, the answer
was lost: the resident may have it already). `retry ID` sends either again; `--all` only those
that surely did not arrive, so nobody is told twice unless an admin decides it.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime

from redis.asyncio import Redis

from bot.config import load_config
from bot.keys import Keys
from bot.logs import mask_phone
from bot.outbox import dead_letters, mask_recipient, retry_dead


async def _dead(redis: Redis, keys: Keys) -> int:
    letters = await dead_letters(redis, keys)
    if not letters:
        print("no dead letters")
    for letter in letters:
        d = letter.delivery
        who = mask_recipient(d.channel, d.recipient)
        state = "uncertain: it may have arrived, a retry may send it twice" if letter.uncertain else "dead"
        # an error may quote the number it was about (an SMS gateway's refusal)
        print(mask_phone(f"{d.id}\t{letter.at}\t{d.ticket}\t{d.template}\t{d.audience}->{d.channel}:{who}\t"
                         f"tries={d.attempt}\t{letter.error}\t{state}"))
    return 0


async def _retry(redis: Redis, keys: Keys, ids: list[str], everything: bool) -> int:
    if everything:
        letters = await dead_letters(redis, keys)
        for letter in letters:
            if letter.uncertain:
                print(f"left as it is (uncertain, retry it by its id): {letter.delivery.id}")
        ids = [letter.delivery.id for letter in letters if not letter.uncertain]
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
    dead = commands.add_parser("dead", help="list the dead-letter and uncertain deliveries")
    dead.add_argument("--config", default=None, help="path to config.yaml")
    dead.set_defaults(func=_run)
    retry = commands.add_parser("retry", help="queue dead deliveries again (the worker sends them)")
    retry.add_argument("ids", nargs="*", help="delivery ids as listed by `gridbot outbox dead`")
    retry.add_argument("--all", action="store_true", help="every dead delivery (not the uncertain ones)")
    retry.add_argument("--config", default=None, help="path to config.yaml")
    retry.set_defaults(func=_run)
