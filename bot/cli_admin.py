"""`gridbot admin …`: console accounts from the command line (the first admin is made here).

gridbot admin create-user --username li.ming --role admin     # prompts twice for the password
printf '%s\\n' "$PW" | gridbot admin create-user --username zhao --role dispatcher
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.admin.auth import ROLES, UserError, Users
from bot.config import load_config
from bot.keys import Keys


def _read_password() -> str | None:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("密码: ")
    if getpass.getpass("再输一次: ") != first:
        print("gridbot: 两次输入的密码不一致", file=sys.stderr)
        return None
    return first


def _create_user(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    password = _read_password()
    if password is None:
        return 1

    async def create() -> None:
        redis = config.redis.connect()
        try:
            now = datetime.now(ZoneInfo(config.tickets.timezone)).isoformat()
            await Users(redis, Keys(config.redis.key_prefix)).create(args.username, password, args.role, now)
        finally:
            await redis.aclose()

    try:
        asyncio.run(create())
    except UserError as exc:
        print(f"gridbot: {exc}", file=sys.stderr)
        return 1
    print(f"gridbot: 已创建账号 {args.username}（{args.role}），登录地址 {config.service.public_url}/admin/login")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    admin = subparsers.add_parser("admin", help="console accounts")
    sub = admin.add_subparsers(dest="admin_command", required=True)
    create = sub.add_parser("create-user", help="create a console account (password from stdin or a prompt)")
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--config", default=None, help="path to config.yaml")
    create.set_defaults(func=_create_user)
