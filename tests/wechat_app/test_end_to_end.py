"""The whole loop through the fakes: resident (official account) → ticket → task card (WeCom) →
the worker accepts by WeCom callback → the resident is told; and WeChat's retries."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from bot.app import SERVICES
from bot.outbox import deliveries
from tests.fakes.wechat_api import text_xml
from tests.wechat_app.conftest import Service


async def test_resident_to_ticket_to_worker_card_to_accept_to_resident(service: Service, redis) -> None:
    number = await service.report("o-resident-1")
    await service.outbox.run_once()

    cards = [m for m in service.fake.sent_to("wecom_app") if m.msgtype == "textcard"]
    assert len(cards) == 1, service.fake.sent
    card = cards[0]
    assert card.to == ("ZhangFang00",)  # the only worker of grid 500199001001-01
    assert number in card.title
    assert "垃圾" in card.content and "红色" in card.content and "时限" in card.content
    link = urlsplit(card.url)
    assert link.path == f"/tasks/{number}" and set(parse_qs(link.query)) == {"u", "e", "s"}

    answer = await service.worker("ZhangFang00", "接单", 5001)
    assert "已接单" in answer and number in answer

    await service.outbox.run_once()
    told = service.fake.sent_to("mp_custom")
    assert [m.to for m in told] == [("o-resident-1",)]
    assert number in told[0].content and "受理" in told[0].content

    keys = service.client.app[SERVICES].keys
    statuses = {(s.audience, s.channel, s.status) for s in await deliveries(redis, keys, number)}
    assert ("resident", "wechat_mp", "sent") in statuses
    assert ("assignee", "wecom_card", "sent") in statuses


async def test_wechat_retrying_the_same_msgid_three_times_opens_one_ticket_and_answers_once(service: Service) -> None:
    await service.resident("o-retry", "金桥小区门口垃圾好几天没人清理了，臭得很", 2000)
    await service.resident("o-retry", "跳过", 2001)
    confirm = service.mp.message(text_xml("o-retry", "确认", 2002))
    answers = [await service.send(confirm) for _ in range(3)]
    assert [status for status, _ in answers] == [200, 200, 200]
    passive = [body for _, body in answers if isinstance(body, dict)]
    assert len(passive) == 1 and "WG" in passive[0]["Content"]
    assert [body for _, body in answers if not isinstance(body, dict)] == ["success", "success"]
    await service.wiring.mp.drain(2.0)
    tickets = await service.client.app[SERVICES].tickets.own_tickets("wechat_mp", "o-retry", 10)
    assert len(tickets) == 1
    assert service.fake.sent_to("mp_custom") == []  # no second answer by the customer-service API
