"""`gridbot apikeys create/revoke`: the key is the last line, stored hashed, and revocation bites."""

from __future__ import annotations

import argparse
import asyncio

from bot import cli_apikeys
from bot.apikeys import ApiKeys
from bot.keys import Keys


def run(argv: list[str], config_file) -> int:
    parser = argparse.ArgumentParser(prog="gridbot")
    cli_apikeys.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([*argv, "--config", str(config_file)])
    return int(args.func(args))


async def test_create_prints_the_key_last_and_revoke_stops_it(tmp_path, redis, key_prefix, capsys):
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        f'redis:\n  url: "redis://127.0.0.1:6379/15"\n  key_prefix: "{key_prefix}"\n', encoding="utf-8"
    )
    # the CLI runs its own event loop: call it from a thread
    assert await asyncio.to_thread(run, ["apikeys", "create", "--name", "街道随手拍"], config_file) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("g311_")

    keys = ApiKeys(redis, Keys(key_prefix))
    client = await keys.verify(key)
    assert client is not None and client.name == "街道随手拍"
    stored = await redis.hgetall(Keys(key_prefix).api_keys())
    assert key not in str(stored)  # only its hash

    assert await asyncio.to_thread(run, ["apikeys", "revoke", key], config_file) == 0
    assert await keys.verify(key) is None
    assert await asyncio.to_thread(run, ["apikeys", "revoke", key], config_file) == 1
