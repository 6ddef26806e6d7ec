"""An answer that misses the passive reply (slow NLU, a busy Redis) goes through the outbox like a
notification: retried with backoff while WeChat or WeCom fails, a long answer's pieces in order."""

from __future__ import annotations

import pytest

from integrations.base import Reply
from tests.wechat_app.conftest import Service
from tests.wechat_app.test_group_robot import mention

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
