"""An answer that misses the passive reply (slow NLU, a busy Redis) goes through the outbox like a
notification: retried with backoff while WeChat or WeCom fails, a long answer's pieces in order."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.app import SERVICES
from bot.outbox import dead_letters
from integrations.base import Reply
from tests.wechat_app.conftest import Service
from tests.wechat_app.test_group_robot import mention
from tests.wechat_app.test_outbox_failures import another_worker

CUSTOM = "/cgi-bin/message/custom/send"


@pytest.fixture
def wechat_env(wechat_env: dict[str, str]) -> dict[str, str]:
    # every answer misses the passive reply, as one slower than 3 s would
    return {**wechat_env, "GRIDBOT_WECHAT__REPLY_BUDGET_SECONDS": "0.001"}


async def late(service: Service) -> None:
    """The answers still being produced are queued in the outbox (the callback said `success`)."""
    for channel in (service.wiring.mp, service.wiring.work, service.wiring.robot):
        await channel.drain(5.0)


def told(service: Service, openid: str) -> list[str]:
    return [m.content for m in service.fake.sent_to("mp_custom") if m.to == (openid,)]


async def test_a_late_answer_reaches_the_resident_even_through_a_customer_service_outage(service: Service):
    service.fake.fail_next(4, status=503, path=CUSTOM)  # every try of the client's first send
    assert await service.resident("o-late", "金桥小区门口垃圾好几天没人清理了，臭得很", 6001) == ""  # success
    await late(service)
    await service.outbox.run_once()
    assert told(service, "o-late") == []
    service.clock.advance(seconds=service.outbox.backoff(1))
    await service.outbox.run_once()
    [answer] = told(service, "o-late")
    assert "手机号" in answer  # the dialogue's next question, not lost


async def test_a_long_late_answer_arrives_in_order_when_its_first_piece_must_wait(service: Service):
    await service.resident("o-order", "你好", 6101)  # opens the 48-hour window
    await late(service)
    await service.outbox.run_once()
    assert len(told(service, "o-order")) == 1
    sender = service.wiring.mp._runner._sender  # what late replies go through, piece by piece
    service.fake.fail_next(4, status=503, path=CUSTOM)
    for piece in ("第一段", "第二段", "第三段"):
        await sender.send(Reply("o-order", piece))
    await service.outbox.run_once()
    assert len(told(service, "o-order")) == 1  # the first failed: the others wait behind it
    for _ in range(3):
        service.clock.advance(seconds=service.outbox.backoff(1))
        await service.outbox.run_once()
    assert told(service, "o-order")[1:] == ["第一段", "第二段", "第三段"]


async def test_a_private_wecom_answer_is_retried_until_it_arrives(service: Service):
    member = "community-staff-8"
    service.fake.fail_next(4, status=503, path="/cgi-bin/message/send")
    status, _ = await mention(service, member, "@网格助手 幸福路8号楼道里电动车充电，很危险", "g-late-1")
    assert status == 200
    await late(service)
    await service.outbox.run_once()
    assert not [m for m in service.fake.sent_to("wecom_app") if member in m.to]
    service.clock.advance(seconds=service.outbox.backoff(1))
    await service.outbox.run_once()
    [asked] = [m for m in service.fake.sent_to("wecom_app") if member in m.to]
    assert "手机号" in asked.content


async def test_a_reply_an_old_process_took_and_the_stream_lost_holds_the_later_ones_only_minutes(
    service: Service, caplog
):
    caplog.set_level(logging.INFO, logger="gridbot")
    services = service.client.app[SERVICES]
    stream = services.keys.outbox()
    await service.resident("o-stuck", "你好", 6201)
    await late(service)
    await service.outbox.run_once()
    assert len(told(service, "o-stuck")) == 1
    sender = service.wiring.mp._runner._sender
    await sender.send(Reply("o-stuck", "第一段"))
    # a process of the old version reads it and never acknowledges it, and the stream is trimmed
    # past it: nobody will ever deliver (or settle) that first piece
    [[_, [(lost, _)]]] = await services.redis.xreadgroup("delivery", "old-process", {stream: ">"})
    await services.redis.xdel(stream, lost)
    await sender.send(Reply("o-stuck", "第二段"))

    takeover = another_worker(service, "takeover")
    await takeover.run_once()
    assert [r for r in caplog.records if r.getMessage() == "outbox_entries_lost"
            and lost in r.fields["entries"]]  # type: ignore[attr-defined]
    for _ in range(4):
        service.clock.advance(seconds=15)
        await takeover.run_once()
    assert told(service, "o-stuck")[1:] == []  # a minute: the order still holds
    for _ in range(20):
        service.clock.advance(seconds=15)
        await takeover.run_once()
    assert told(service, "o-stuck")[1:] == ["第二段"]  # a few minutes: the later piece goes
    order = services.keys.outbox_reply_order("wechat_mp", "o-stuck")
    assert await services.redis.lrange(order, 0, -1) == []
    assert await dead_letters(services.redis, services.keys) == []


async def test_a_resident_who_keeps_writing_does_not_keep_their_reply_order_alive_forever(service: Service):
    services = service.client.app[SERVICES]
    sender = service.wiring.mp._runner._sender
    order = services.keys.outbox_reply_order("wechat_mp", "o-chatty")
    await sender.send(Reply("o-chatty", "第一段"))  # not delivered yet: the line stays
    first = await services.redis.pttl(order)
    await asyncio.sleep(0.2)
    await sender.send(Reply("o-chatty", "第二段"))
    assert await services.redis.pttl(order) <= first - 150  # the line's expiry was set once


async def test_a_late_reply_leaves_no_text_in_the_outbox_stream_once_settled(service: Service):
    services = service.client.app[SERVICES]
    stream = services.keys.outbox()
    await service.resident("o-privacy", "你好", 6301)
    await service.resident("o-dies", "你好", 6302)
    await late(service)
    await service.outbox.run_once()
    sender = service.wiring.mp._runner._sender
    service.fake.fail_next(4, status=503, path=CUSTOM)  # its first try fails: it goes from the retries
    await sender.send(Reply("o-privacy", "您反映的幸福路8号3单元楼道堆物，已转网格员"))
    await service.outbox.run_once()
    service.clock.advance(seconds=service.outbox.backoff(1))
    await service.outbox.run_once()
    assert told(service, "o-privacy")[1:] == ["您反映的幸福路8号3单元楼道堆物，已转网格员"]

    attempts = services.config.outbox.max_attempts
    service.fake.fail_next(4 * attempts, status=503, path=CUSTOM)  # every try of this one fails
    await sender.send(Reply("o-dies", "您反映的金桥小区5栋漏水，已转网格员"))
    await service.outbox.run_once()
    for _ in range(attempts - 1):
        service.clock.advance(seconds=services.config.outbox.backoff_max_seconds)
        await service.outbox.run_once()
    [dead] = await dead_letters(services.redis, services.keys)
    # the one that gave up is kept where an admin finds it, and only there
    assert dead.delivery.recipient == "o-dies" and "金桥小区5栋" in dead.delivery.text
    texts = [fields.get("text", "") for _, fields in await services.redis.xrange(stream)]
    assert not [t for t in texts if "幸福路8号" in t or "金桥小区5栋" in t]
