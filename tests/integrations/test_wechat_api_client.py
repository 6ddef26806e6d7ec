"""The async WeChat / WeCom API clients against the fake API on loopback."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import aiohttp
import pytest

from integrations.wechat.api import (
    AccessTokenRejected,
    ApiUnavailable,
    CustomerServiceRefused,
    InvalidMedia,
    MpApiConfig,
    OutOfResponseCount,
    OutOfTimeLimit,
    RateLimited,
    RetryPolicy,
    WeChatApiError,
    WeChatMpApi,
    WecomApi,
    WecomRobot,
)
from tests.fakes.wechat_api import FakeWeChatApi, MemoryTokenStore


@pytest.fixture
def mp(wechat_api: FakeWeChatApi, http: aiohttp.ClientSession, token_store: MemoryTokenStore) -> WeChatMpApi:
    return WeChatMpApi(wechat_api.mp_config(), http, token_store, rng=random.Random(1))


@pytest.fixture
def wecom(wechat_api: FakeWeChatApi, http: aiohttp.ClientSession, token_store: MemoryTokenStore) -> WecomApi:
    return WecomApi(wechat_api.wecom_config(), http, token_store, rng=random.Random(1))


@pytest.fixture
def robot(wechat_api: FakeWeChatApi, http: aiohttp.ClientSession) -> WecomRobot:
    return WecomRobot(http, wechat_api.base_url, RetryPolicy(attempts=2, base_delay=0.01))


# ---------------------------------------------------------------- tokens


async def test_concurrent_sends_fetch_the_token_once(
    mp: WeChatMpApi, wechat_api: FakeWeChatApi, token_store: MemoryTokenStore
) -> None:
    await asyncio.gather(*(mp.send_custom_text(f"o_{i}", f"第{i}条") for i in range(20)))
    assert wechat_api.mp_token_fetches == 1
    assert sorted(m.to[0] for m in wechat_api.sent_to("mp_custom")) == sorted(f"o_{i}" for i in range(20))
    # cached with WeChat's lifetime less a safety margin
    assert list(token_store.ttls.values()) == [7200 - 300]


async def test_a_revoked_token_is_refreshed_once_even_under_concurrency(
    mp: WeChatMpApi, wechat_api: FakeWeChatApi
) -> None:
    await mp.send_custom_text("o_a", "first")
    wechat_api.revoke_tokens()  # 40001, as when someone else fetched a new one
    await asyncio.gather(*(mp.send_custom_text(f"o_{i}", "x") for i in range(10)))
    assert wechat_api.mp_token_fetches == 2
    assert len(wechat_api.sent_to("mp_custom")) == 11


async def test_an_expired_token_42001_is_refreshed(wecom: WecomApi, wechat_api: FakeWeChatApi) -> None:
    await wecom.send_text(["zhangsan"], "新任务")
    wechat_api.expire_tokens()
    await wecom.send_text(["zhangsan"], "又一个任务")
    assert wechat_api.wecom_token_fetches == 2
    assert [m.content for m in wechat_api.sent_to("wecom_app")] == ["新任务", "又一个任务"]


async def test_a_token_rejected_even_after_a_refresh_raises(mp: WeChatMpApi, wechat_api: FakeWeChatApi) -> None:
    wechat_api.fail_next(2, errcode=40001, path="/cgi-bin/message/custom/send")
    with pytest.raises(AccessTokenRejected):
        await mp.send_custom_text("o_a", "x")
    assert wechat_api.mp_token_fetches == 2  # the first, and one refresh; no loop
    assert wechat_api.sent == []


async def test_wrong_credentials_are_an_api_error(
    wechat_api: FakeWeChatApi, http: aiohttp.ClientSession, token_store: MemoryTokenStore
) -> None:
    bad = WeChatMpApi(replace(wechat_api.mp_config(), app_secret="wrong-secret"), http, token_store)
    with pytest.raises(WeChatApiError) as err:
        await bad.send_custom_text("o_a", "x")
    assert err.value.errcode == 40125


# ---------------------------------------------------------------- retries


async def test_5xx_and_system_busy_are_retried_with_backoff(mp: WeChatMpApi, wechat_api: FakeWeChatApi) -> None:
    path = "/cgi-bin/message/custom/send"
    wechat_api.fail_next(2, status=502, path=path)
    wechat_api.fail_next(1, errcode=-1, path=path)
    await mp.send_custom_text("o_a", "终于到了")
    assert wechat_api.calls.count(path) == 4
    assert [m.content for m in wechat_api.sent] == ["终于到了"]


async def test_retries_give_up_after_the_policy_attempts(mp: WeChatMpApi, wechat_api: FakeWeChatApi) -> None:
    wechat_api.fail_next(10, status=503, path="/cgi-bin/message/template/send")
    with pytest.raises(ApiUnavailable) as err:
        await mp.send_template("o_a", "TPL", {"first": "x"})
    assert not err.value.maybe_delivered
    assert wechat_api.calls.count("/cgi-bin/message/template/send") == 4


async def test_connection_refused_is_retried_then_unavailable(
    http: aiohttp.ClientSession, token_store: MemoryTokenStore, unused_tcp_port: int
) -> None:
    config = MpApiConfig("wx", "s", api_base=f"http://127.0.0.1:{unused_tcp_port}",
                         retry=RetryPolicy(attempts=3, base_delay=0.01, timeout=1))
    with pytest.raises(ApiUnavailable) as err:
        await WeChatMpApi(config, http, token_store).send_custom_text("o_a", "x")
    assert not err.value.maybe_delivered


async def test_a_slow_download_is_retried_but_a_slow_send_is_not_resent(
    wechat_api: FakeWeChatApi, http: aiohttp.ClientSession, token_store: MemoryTokenStore
) -> None:
    quick = RetryPolicy(attempts=3, base_delay=0.01, timeout=0.3)
    mp = WeChatMpApi(wechat_api.mp_config(quick), http, token_store)
    wechat_api.add_media("m1", b"\xff\xd8photo")
    wechat_api.slow_next(1, 0.6, path="/cgi-bin/media/get")
    assert (await mp.download_media("m1")).data == b"\xff\xd8photo"

    wechat_api.slow_next(1, 0.6, path="/cgi-bin/message/custom/send")
    with pytest.raises(ApiUnavailable) as err:
        await mp.send_custom_text("o_a", "只发一次")
    assert err.value.maybe_delivered
    assert [m.content for m in wechat_api.sent] == ["只发一次"]  # it went through once, never twice


def test_backoff_grows_exponentially_with_jitter_and_a_ceiling() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


# ---------------------------------------------------------------- official account calls


async def test_quota_errors_are_typed_so_the_app_can_fall_back_to_templates(
    mp: WeChatMpApi, wechat_api: FakeWeChatApi
) -> None:
    path = "/cgi-bin/message/custom/send"
    wechat_api.fail_next(1, errcode=45015, path=path)
    with pytest.raises(OutOfTimeLimit) as late:
        await mp.send_custom_text("o_a", "x")
    wechat_api.fail_next(1, errcode=45047, path=path)
    with pytest.raises(OutOfResponseCount) as spent:
        await mp.send_custom_text("o_a", "x")
    assert isinstance(late.value, CustomerServiceRefused) and isinstance(spent.value, CustomerServiceRefused)
    assert (late.value.errcode, spent.value.errcode) == (45015, 45047)
    msgid = await mp.send_template("o_a", "TPL_STATUS", {"keyword1": "WG202611220001", "keyword2": "已受理"},
                                   url="https://grid.example/t/WG202611220001")
    [template] = wechat_api.sent_to("mp_template")
    assert msgid
    assert template.template_id == "TPL_STATUS"
    assert template.data == (("keyword1", "WG202611220001"), ("keyword2", "已受理"))
    assert template.url == "https://grid.example/t/WG202611220001"


async def test_media_download_returns_bytes_and_type_and_unknown_ids_are_invalid_media(
    mp: WeChatMpApi, wecom: WecomApi, wechat_api: FakeWeChatApi
) -> None:
    wechat_api.add_media("media-1", b"\x89PNG...", "image/png")
    got = await mp.download_media("media-1")
    assert (got.data, got.content_type) == (b"\x89PNG...", "image/png")
    assert (await wecom.download_media("media-1")).data == b"\x89PNG..."
    with pytest.raises(InvalidMedia):
        await mp.download_media("gone")


async def test_oversized_media_is_refused(
    wechat_api: FakeWeChatApi, http: aiohttp.ClientSession, token_store: MemoryTokenStore
) -> None:
    small = WeChatMpApi(replace(wechat_api.mp_config(), max_media_bytes=1000), http, token_store)
    wechat_api.add_media("big", b"x" * 5000)
    with pytest.raises(ApiUnavailable):
        await small.download_media("big")


# ---------------------------------------------------------------- WeCom app and robots


async def test_wecom_text_and_text_cards_reach_the_workers(wecom: WecomApi, wechat_api: FakeWeChatApi) -> None:
    result = await wecom.send_text(["zhangsan", "lisi"], "新任务 WG202611220001")
    assert result.msgid and result.invalid_users == ()
    await wecom.send_textcard(["zhangsan"], "新任务 WG202611220001",
                              '<div class="highlight">红色</div><div class="normal">占道经营</div>',
                              "https://grid.example/task/WG202611220001?sig=x", btntxt="处理")
    text, card = wechat_api.sent_to("wecom_app")
    assert text.to == ("zhangsan", "lisi")
    assert (card.msgtype, card.title, card.btntxt) == ("textcard", "新任务 WG202611220001", "处理")
    assert card.url.endswith("sig=x") and "红色" in card.content
    assert wechat_api.wecom_token_fetches == 1
    with pytest.raises(ValueError):
        await wecom.send_text([], "nobody")


async def test_robot_text_markdown_mentions_and_errors(robot: WecomRobot, wechat_api: FakeWeChatApi) -> None:
    await robot.send_text("robot-key", "今日超期工单 3 件", mentioned_list=["zhangsan", "@all"])
    await robot.send_markdown("robot-key", "## 新任务\n> 占道经营")
    text, markdown = wechat_api.sent_to("wecom_robot")
    assert text.mentioned == ("zhangsan", "@all") and text.content == "今日超期工单 3 件"
    assert markdown.msgtype == "markdown"
    with pytest.raises(WeChatApiError) as err:
        await robot.send_text("unknown-key", "x")
    assert err.value.errcode == 93000
    with pytest.raises(ValueError):
        await robot.send_text("robot-key", "长" * 700)  # 2,100 bytes


async def test_the_21st_robot_message_in_a_minute_is_rate_limited(robot: WecomRobot, wechat_api: FakeWeChatApi) -> None:
    for i in range(20):
        await robot.send_text("robot-key", f"#{i}")
    with pytest.raises(RateLimited):
        await robot.send_text("robot-key", "#20")
    assert len(wechat_api.sent) == 20
