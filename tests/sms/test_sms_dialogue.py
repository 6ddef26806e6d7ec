"""A resident who only texts: report, follow, withdraw and rate through /sms/inbound and the fake gateway."""

from __future__ import annotations

import json

from bot.app import SERVICES
from bot.outbox import OUTBOX
from bot.sms import SMS
from integrations.sms.signing import Signer
from tests.sms.conftest import SIGNING_SECRET, TENCENT_TOKEN, Texter, report, resolve, services_of

PHONE = "13812345678"


async def test_a_texted_report_gets_a_ticket_number_first_and_short(sms_client, sms_gateway) -> None:
    texter = Texter(sms_client, sms_gateway, PHONE)
    number = await report(texter)
    assert number.startswith("WG20261124")
    opened = sms_gateway.to(PHONE)[-1]
    assert opened.startswith(f"工单号{number}")
    ticket = await services_of(sms_client).tickets.store.get(number)
    assert ticket is not None
    assert (ticket.channel, ticket.reporter_id, ticket.phone) == ("sms", PHONE, PHONE)
    assert all(len(s.text) <= 70 for s in sms_gateway.sent)


async def test_an_emergency_text_is_told_whom_to_call_with_its_red_ticket(sms_client, sms_gateway) -> None:
    texts = await Texter(sms_client, sms_gateway, PHONE).send("幸福小区3栋楼道里着火了，好多烟")
    first = texts[0].split(")", 1)[-1]  # without a segment mark, if any
    assert first.startswith("工单号WG20261124") and "119" in "".join(texts)


async def test_status_by_number_and_by_query(sms_client, sms_gateway) -> None:
    texter = Texter(sms_client, sms_gateway, PHONE)
    number = await report(texter)
    (detail,) = await texter.send(number)
    assert detail.startswith(f"工单{number}")
    listing = await texter.send("查询")
    assert number in "".join(listing)


async def test_someone_elses_number_is_not_found(sms_client, sms_gateway) -> None:
    number = await report(Texter(sms_client, sms_gateway, PHONE))
    (answer,) = await Texter(sms_client, sms_gateway, "13900001111").send(number)
    assert number not in answer and "未找到" in answer


async def test_a_provider_retry_sends_nothing_again_and_opens_no_second_ticket(sms_client, sms_gateway) -> None:
    texter = Texter(sms_client, sms_gateway, PHONE)
    number = await report(texter)
    sent_before = len(sms_gateway.sent)
    await texter.post("确认", message_id=f"{PHONE}-1")  # the first report again: the provider retried it
    await sms_client.server.app[SMS].drain()
    assert len(sms_gateway.sent) == sent_before
    services = services_of(sms_client)
    assert await services.tickets.store.numbers_by_reporter("sms", PHONE, 10) == [number]


async def test_rating_by_replying_a_digit_closes_the_resolved_ticket(sms_client, sms_gateway) -> None:
    texter = Texter(sms_client, sms_gateway, PHONE)
    number = await report(texter)
    services = services_of(sms_client)
    await resolve(services, number)
    (thanks,) = await texter.send("5")
    assert thanks.startswith(f"工单{number}") and "5分" in thanks
    ticket = await services.tickets.store.get(number)
    assert ticket is not None and ticket.status == "closed"


async def test_withdraw_by_sms(sms_client, sms_gateway) -> None:
    texter = Texter(sms_client, sms_gateway, PHONE)
    number = await report(texter)
    (answer,) = await texter.send(f"撤回{number}")
    assert answer.startswith(f"工单{number}已撤回")
    ticket = await services_of(sms_client).tickets.store.get(number)
    assert ticket is not None and ticket.status == "withdrawn"


async def test_td_stops_notifications_and_dingyue_restores_them(sms_client, sms_gateway) -> None:
    texter = Texter(sms_client, sms_gateway, PHONE)
    (confirmation,) = await texter.send("TD")
    assert "退订" in confirmation
    sms = sms_client.server.app[SMS]
    assert await sms.opted_out(PHONE)
    assert not await sms.notify(PHONE, "工单号WG202611240001：进度通知", "WG202611240001:progress")
    (again,) = await texter.send("订阅")
    assert "恢复" in again
    assert await sms.notify(PHONE, "工单号WG202611240001：进度通知", "WG202611240001:progress")
    await sms.drain()
    assert sms_gateway.to(PHONE)[-1] == "工单号WG202611240001：进度通知"
    # answered outside the dialogue, but kept like every message a resident sends
    services = sms_client.server.app[SERVICES]
    kept = [f["text"] for _, f in await services.redis.xrange(services.keys.inbox()) if f["user"] == PHONE]
    assert kept == ["TD", "订阅"]


async def test_a_long_reply_goes_out_in_numbered_segments(sms_client, sms_gateway) -> None:
    texter = Texter(sms_client, sms_gateway, PHONE)
    for place in ("幸福小区3栋", "和平路12号", "光明街5号"):
        await report(texter, (f"{place}门口垃圾三天没人收了",))
    listing = await texter.send("查询")
    assert len(listing) > 1
    assert listing[0].startswith(f"(1/{len(listing)})")
    assert all(len(s) <= 70 for s in listing)


async def test_notifications_reach_the_texter_by_sms_until_td(sms_client, sms_gateway) -> None:
    texter = Texter(sms_client, sms_gateway, PHONE)
    first = await report(texter)
    services = services_of(sms_client)
    outbox = sms_client.server.app[OUTBOX]
    await resolve(services, first)
    await outbox.run_once()
    texts = sms_gateway.to(PHONE)
    assert any(first in t and "已办结" in t for t in texts)  # the rating invitation
    assert all(len(t) <= 70 for t in texts)

    second = await report(texter, ("和平路12号路灯坏了一个星期",))
    await texter.send("TD")
    before = len(sms_gateway.to(PHONE))
    await resolve(services, second, note="路灯已修好")
    await outbox.run_once()
    assert len(sms_gateway.to(PHONE)) == before


# ------------------------------------------------------------------ bad input


def signed(body: bytes, timestamp: int, secret: str = SIGNING_SECRET) -> dict[str, str]:
    return {**Signer(secret).headers(timestamp, body), "Content-Type": "application/json"}


async def test_a_wrong_or_stale_signature_is_403(sms_client, sms_gateway) -> None:
    body = json.dumps({"message_id": "x1", "from": PHONE, "text": "你好"}).encode()
    now = int(services_of(sms_client).clock().timestamp())
    for headers in (signed(body, now, secret="guess"), signed(body, now - 3600), {"Content-Type": "application/json"}):
        resp = await sms_client.post("/sms/inbound", data=body, headers=headers)
        assert resp.status == 403
        assert (await resp.json())["field"] == "signature"
    assert sms_gateway.requests == 0


async def test_a_phone_that_is_not_a_phone_is_400_naming_the_field(sms_client) -> None:
    body = json.dumps({"message_id": "x2", "from": "not-a-phone", "text": "你好"}).encode()
    now = int(services_of(sms_client).clock().timestamp())
    resp = await sms_client.post("/sms/inbound", data=body, headers=signed(body, now))
    assert resp.status == 400
    assert (await resp.json())["field"] == "from"


# ------------------------------------------------------------------ Tencent Cloud reply callback


async def test_tencent_reply_callback_reaches_the_same_dialogue(sms_client, sms_gateway) -> None:
    now = int(services_of(sms_client).clock().timestamp())
    item = {"extend": "", "mobile": PHONE, "nationcode": "86", "sign": "网格服务", "text": "帮助", "time": now}
    resp = await sms_client.post("/sms/tencent/reply", params={"token": "guess"}, json=item)
    assert resp.status == 403
    resp = await sms_client.post("/sms/tencent/reply", params={"token": TENCENT_TOKEN}, json=item)
    assert resp.status == 200 and await resp.json() == {"result": 0, "errmsg": "OK"}
    await sms_gateway.wait_for(1, phone=PHONE)
    await sms_client.server.app[SMS].drain()
    (help_text,) = sms_gateway.to(PHONE)
    assert "TD" in help_text
    # Tencent retries the same callback: dropped
    resp = await sms_client.post("/sms/tencent/reply", params={"token": TENCENT_TOKEN}, json=[item])
    assert resp.status == 200
    await sms_client.server.app[SMS].drain()
    assert sms_gateway.to(PHONE) == [help_text]
