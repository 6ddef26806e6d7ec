"""`gridbot apikeys …`: Open311 API keys for third-party apps.

    gridbot apikeys create --name "街道随手拍"    # the new key is the LAST line printed
    gridbot apikeys revoke g311_…

The key is shown once and stored only as a hash; a lost key is revoked and a new one issued.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from bot.apikeys import ApiKeys
from bot.config import Config, load_config
from bot.keys import Keys

T = TypeVar("T")


async def _with_keys(config: Config, action: Callable[[ApiKeys], Awaitable[T]]) -> T:
    redis = config.redis.connect()
    try:
        return await action(ApiKeys(redis, Keys(config.redis.key_prefix)))
    finally:
        await redis.aclose()


def _create(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    now = datetime.now(ZoneInfo(config.tickets.timezone))
    try:
        key, client = asyncio.run(_with_keys(config, lambda keys: keys.create(args.name, now)))
    except ValueError as exc:
        print(f"gridbot: {exc}", file=sys.stderr)
        return 1
    print(f"gridbot: 已为“{client.name}”创建 Open311 API key（客户端编号 {client.id}）")
    print("gridbot: 请立即妥善保存，之后无法再次查看：")
    print(key)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if not asyncio.run(_with_keys(config, lambda keys: keys.revoke(args.key))):
        print("gridbot: 没有这个 API key（可能已被吊销）", file=sys.stderr)
        return 1
    print("gridbot: API key 已吊销")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    apikeys = subparsers.add_parser("apikeys", help="Open311 API keys")
    sub = apikeys.add_subparsers(dest="apikeys_command", required=True)
    create = sub.add_parser("create", help="issue a key; it is printed as the last line")
    create.add_argument("--name", required=True, help="who the key is for, e.g. the app's name")
    create.add_argument("--config", default=None, help="path to config.yaml")
    create.set_defaults(func=_create)
    revoke = sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key")
    revoke.add_argument("--config", default=None, help="path to config.yaml")
    revoke.set_defaults(func=_revoke)
