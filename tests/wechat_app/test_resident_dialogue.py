"""What a follower of the official account sees, through encrypted callbacks: menu buttons keyed
by their labels, a transcribed voice report, changes made at the summary, a bare rating after
办结, platform events that need no answer, and phone numbers masked in what is echoed back."""

from __future__ import annotations

import pytest

from bot.app import SERVICES
from tests.fakes.wechat_api import event_xml, message_xml
from tests.wechat_app.conftest import NUMBER, Service

GARBAGE = "金桥小区门口垃圾好几天没人清理了，臭得很"


async def click(service: Service, openid: str, key: str) -> str:
    status, reply = await service.send(service.mp.message(event_xml(openid, "CLICK", key)))
    assert status == 200
    return reply["Content"] if isinstance(reply, dict) else ""


@pytest.mark.parametrize(("key", "expected"), [("我要反映", "描述"), ("查询进度", "还没有提交过工单"),
                                               ("我的工单", "还没有提交过工单")])
async def test_menu_buttons_keyed_by_their_chinese_labels_do_what_they_say(
    service: Service, key: str, expected: str
) -> None:
    assert expected in await click(service, f"o-menu-{key}", key)


async def test_a_transcribed_voice_report_opens_a_ticket_without_a_phantom_photo(service: Service) -> None:
    voice = message_xml(("ToUserName", "gh_account"), ("FromUserName", "o-voice"), ("CreateTime", 1764000000),
                        ("MsgType", "voice"), ("MediaId", "voice-media-1"), ("Format", "amr"),
                        ("Recognition", GARBAGE), ("MsgId", 7001))
    status, reply = await service.send(service.mp.message(voice))
    assert status == 200 and "手机号" in reply["Content"]
    await service.resident("o-voice", "跳过", 7002)
    number = NUMBER.search(await service.resident("o-voice", "确认", 7003)).group(0)
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert ticket.description == GARBAGE
    assert ticket.media_ids == ()  # the recording is not a photo: the console shows none pending


async def test_a_location_sent_at_the_summary_shows_the_summary_again_and_is_what_gets_filed(
    service: Service,
) -> None:
    await service.resident("o-move", GARBAGE, 7101)
    summary = await service.resident("o-move", "跳过", 7102)
    assert "金桥小区" in summary
    location = message_xml(("ToUserName", "gh_account"), ("FromUserName", "o-move"), ("CreateTime", 1764000000),
                           ("MsgType", "location"), ("Location_X", "29.7180"), ("Location_Y", "106.6310"),
                           ("Scale", "15"), ("Label", "重庆市渝北区龙湖花园东门"), ("MsgId", 7103))
    status, reply = await service.send(service.mp.message(location))
    assert status == 200
    again = reply["Content"]
    assert "再核对" in again and "龙湖花园东门" in again and "确认" in again
    number = NUMBER.search(await service.resident("o-move", "确认", 7104)).group(0)
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert ticket.location_text == "重庆市渝北区龙湖花园东门"
    assert (ticket.lat, ticket.lon) == (29.718, 106.631)


async def test_a_detail_added_at_the_summary_joins_the_report(service: Service) -> None:
    await service.resident("o-more", GARBAGE, 7201)
    await service.resident("o-more", "跳过", 7202)
    again = await service.resident("o-more", "补充一下，垃圾桶旁边还有很多建筑垃圾", 7203)
    assert "再核对" in again and "建筑垃圾" in again
    assert "再核对" not in await service.resident("o-more", "好的谢谢", 7204)  # not a detail: asked again
    number = NUMBER.search(await service.resident("o-more", "确认", 7205)).group(0)
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert "建筑垃圾" in ticket.description and "谢谢" not in ticket.description


async def test_a_phone_given_at_the_summary_goes_into_its_field_not_into_the_description(service: Service) -> None:
    await service.resident("o-newphone", GARBAGE, 7251)
    await service.resident("o-newphone", "跳过", 7252)
    again = await service.resident("o-newphone", "电话换成13912345678", 7253)
    assert "139****5678" in again and "13912345678" not in again
    again = await service.resident("o-newphone", "补充一下，还有很多建筑垃圾，有事打13912340000", 7254)
    number = NUMBER.search(await service.resident("o-newphone", "确认", 7255)).group(0)
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert ticket.phone == "13912340000"
    assert "建筑垃圾" in ticket.description and "13912340000" not in ticket.description
    assert "13912345678" not in ticket.description


async def resolved_ticket(service: Service, openid: str, first_id: int) -> str:
    number = await service.report(openid, first_id)
    await service.outbox.run_once()
    assert "已接单" in await service.worker("ZhangFang00", f"接单 {number}", first_id + 50)
    assert "已办结" in await service.worker("ZhangFang00", f"办结 {number} 垃圾已清运完毕", first_id + 51)
    return number


@pytest.mark.parametrize(("answer", "status"), [("3", "closed"), ("5分", "closed"), ("一般", "closed"),
                                                ("1", "reopened"), ("不满意", "reopened")])
async def test_a_bare_rating_after_resolution_rates_the_ticket(service: Service, answer: str, status: str) -> None:
    number = await resolved_ticket(service, f"o-rate-{answer}", 7300)
    thanks = await service.resident(f"o-rate-{answer}", answer, 7390)
    assert number in thanks and "评价" in thanks
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert (ticket.status == "closed") == (status == "closed")
    if status == "reopened":
        assert "重新打开" in thanks and ticket.flow.level != "grid"


async def test_a_bare_number_with_nothing_to_rate_says_so(service: Service) -> None:
    assert "没有待评价" in await service.resident("o-nothing", "4", 7401)


async def test_platform_events_get_no_answer(service: Service) -> None:
    status, body = await service.send(service.mp.message(event_xml("o-events", "TEMPLATESENDJOBFINISH")))
    assert (status, body) == (200, "success")
    assert service.fake.sent_to("mp_custom") == []


async def test_phone_numbers_typed_into_the_report_are_masked_in_the_summary(service: Service) -> None:
    # the mobile in the text is taken as the contact number, so the summary comes at once
    summary = await service.resident("o-phone", f"{GARBAGE}，我电话13812345678，物业电话023-68881234", 7501)
    assert "核对" in summary
    assert "13812345678" not in summary and "68881234" not in summary
    assert "138****5678" in summary and "023-****1234" in summary
