"""Wiring: the service starts without WeChat credentials; tokens are fetched once under a Redis lock."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest
from aiohttp import web

from bot.app import BACKGROUND, SERVICES, create_app
from bot.config import ConfigError, load_config
from bot.keys import Keys
from bot.wechat import WECHAT, MediaKeeper, RedisTokenStore
from integrations.wechat import ApiUnavailable, WeChatMpApi, WecomApi
from tests.fakes.wechat_api import FakeWeChatApi


async def test_without_credentials_the_service_starts_and_the_wechat_routes_say_what_is_missing(client):
    assert (await client.get("/healthz")).status == 200
    mp = await client.post("/wechat/mp", data=b"<xml/>")
    assert mp.status == 503 and "GRIDBOT_WECHAT__TOKEN" in await mp.text()
    work = await client.get("/wechat/work")
    assert work.status == 503 and "GRIDBOT_WECOM__ENCODING_AES_KEY" in await work.text()
    assert (await client.get("/tasks/WG202611240001?u=x&e=1&s=y")).status == 403


def test_a_wecom_agent_id_that_is_not_a_number_is_a_config_error_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="GRIDBOT_WECOM__AGENT_ID"):
        load_config(tmp_path / "absent.yaml", env={"GRIDBOT_WECOM__AGENT_ID": "agent-2"})


async def test_concurrent_token_refresh_fetches_once_across_processes(fake: FakeWeChatApi, redis, key_prefix):
    fake.slow_next(1, 0.2, path="/cgi-bin/token")  # the first fetch takes a while: everyone piles up
    keys = Keys(key_prefix)
    async with aiohttp.ClientSession() as one, aiohttp.ClientSession() as two:
        # two "processes": separate clients and stores, sharing only Redis
        apis = [WeChatMpApi(fake.mp_config(), s, RedisTokenStore(redis, keys)) for s in (one, two)]
        tokens = await asyncio.gather(*(apis[i % 2].access_token() for i in range(40)))
    assert len(set(tokens)) == 1
    assert fake.mp_token_fetches == 1
    assert await redis.ttl(keys.wechat_token(f"wechat_mp:{fake.app_id}")) > 6000


async def test_a_rejected_token_is_replaced_once_for_every_waiting_caller(fake: FakeWeChatApi, redis, key_prefix):
    keys = Keys(key_prefix)
    async with aiohttp.ClientSession() as session:
        api = WecomApi(fake.wecom_config(), session, RedisTokenStore(redis, keys))
        await api.send_text(["ZhangFang00"], "第一条")
        fake.revoke_tokens()
        await asyncio.gather(*(api.send_text(["ZhangFang00"], f"并发 {i}") for i in range(10)))
    assert fake.wecom_token_fetches == 2
    assert len(fake.sent_to("wecom_app")) == 11


async def test_a_token_lock_left_by_a_dead_process_lapses_within_fifteen_seconds(fake: FakeWeChatApi, redis,
                                                                             key_prefix):
    keys = Keys(key_prefix)
    async with RedisTokenStore(redis, keys).lock("wechat_mp:wx"):
        # what a holder killed now would leave behind: every token call waits this long at most
        assert 0 < await redis.pttl(keys.wechat_token_lock("wechat_mp:wx")) <= 15_000


async def test_a_token_fetch_longer_than_the_lease_keeps_the_lock_and_fetches_once(fake: FakeWeChatApi, redis,
                                                                               key_prefix):
    fake.slow_next(1, 0.6, path="/cgi-bin/token")  # longer than the lease: the holder must extend it
    keys = Keys(key_prefix)
    async with aiohttp.ClientSession() as one, aiohttp.ClientSession() as two:
        apis = [WeChatMpApi(fake.mp_config(), s, RedisTokenStore(redis, keys, lease_seconds=0.4)) for s in (one, two)]
        first = asyncio.create_task(apis[0].access_token())
        await asyncio.sleep(0.05)  # the first holds the lock and fetches
        tokens = await asyncio.gather(first, apis[1].access_token())
    assert tokens[0] == tokens[1] and fake.mp_token_fetches == 1


async def test_a_token_lock_that_cannot_be_had_in_time_is_an_api_error_a_photo_download_tries_again(
    service, redis, tmp_path
):
    services = service.client.app[SERVICES]
    service.fake.add_media("m-locked", b"\xff\xd8photo")
    # another process holds the lock (fetching, or dead with a lease not yet run out)
    await redis.set(services.keys.wechat_token_lock(f"wechat_mp:{service.fake.app_id}"), "someone-else", px=5000)
    async with aiohttp.ClientSession() as session:
        api = WeChatMpApi(service.fake.mp_config(), session, RedisTokenStore(redis, services.keys, lease_seconds=0.2))
        with pytest.raises(ApiUnavailable):
            await api.access_token()
        keeper = MediaKeeper(api, tmp_path / "media", services, "wechat_mp")
        keeper.keep(("m-locked",))
        await keeper.drain(5.0)
    # a passing failure: not given up (the console shows it as still being fetched), tried again later
    assert await redis.hget(services.keys.media_failed(), "m-locked") is None
    [waiting] = await redis.zrange(services.keys.media_retry("wechat_mp"), 0, -1)
    assert "m-locked" in waiting


async def test_the_delivery_loops_stop_before_the_wechat_session_closes(wechat_config, clock, nlu, redis) -> None:
    """Shutdown stops the outbox and timer loops first; only then do the channels close their
    HTTP sessions (a robot push under way once found its session closed)."""
    config = wechat_config.replace(
        outbox=dataclasses.replace(wechat_config.outbox, interval_seconds=0.05),
        flows=dataclasses.replace(wechat_config.flows, timer_interval_seconds=0.05),
    )
    app = create_app(config, clock=clock, nlu=nlu)
    runner = web.AppRunner(app)
    await runner.setup()
    loops = app[BACKGROUND]
    assert len(loops) >= 3 and not any(t.done() for t in loops)
    await app.shutdown()  # what the runner does first on SIGTERM
    assert all(t.done() for t in loops)
    session = app[WECHAT].session
    assert session is not None and not session.closed
    await runner.cleanup()
    assert session.closed
