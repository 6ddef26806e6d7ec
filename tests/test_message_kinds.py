"""Events, menu clicks, photos, voice and locations (what WeChat sends besides text)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from shapely.geometry import Polygon

from bot.app import Services, build_services
from integrations.base import IncomingMessage, Location


@pytest.fixture
async def services(config, clock, nlu, redis) -> AsyncIterator[Services]:
    services = await build_services(config, clock=clock, nlu=nlu)
    yield services
    await services.close()


async def send(services: Services, user: str, **fields) -> list[str]:
    replies = await services.dispatcher.handle(IncomingMessage(channel="wechat_mp", user_id=user, **fields))
    return [r.text for r in replies]


async def test_subscribe_gets_a_welcome_and_unsubscribe_gets_nothing(services):
    assert "感谢关注" in (await send(services, "o1", kind="subscribe"))[0]
    assert await send(services, "o1", kind="unsubscribe") == []
    assert await send(services, "o1", kind="view", event_key="https://example.invalid/") == []


async def test_menu_clicks(services):
    assert "描述" in (await send(services, "o2", kind="click", event_key="REPORT"))[0]
    assert "还没有提交过工单" in (await send(services, "o2", kind="click", event_key="MY_TICKETS"))[0]
    assert "我的工单" in (await send(services, "o2", kind="click", event_key="SOMETHING_NEW"))[0]


async def test_voice_without_transcription_asks_for_text(services):
    assert "文字" in (await send(services, "o3", kind="voice", extra=(("voice_media_id", "voice-1"),)))[0]


async def test_unknown_kinds_get_a_polite_answer(services):
    assert "暂时无法处理" in (await send(services, "o4", kind="unsupported"))[0]


async def test_photo_first_then_text_opens_a_ticket_with_the_photo(services):
    asked = await send(services, "o5", kind="image", media_ids=("media-1",))
    assert "照片收到了" in asked[0]
    await send(services, "o5", text="楼道里堆满了纸箱和电动车，堵住了消防通道，在幸福小区2栋")
    summary = await send(services, "o5", text="跳过")
    assert "确认" in summary[0]
    opened = await send(services, "o5", text="确认")
    number = re.search(r"WG\d{12}", opened[0]).group(0)
    ticket = await services.tickets.store.get(number)
    assert ticket.media_ids == ("media-1",)
    assert ticket.flow.category == "fire_safety"


async def test_a_wechat_location_answers_where_and_routes_the_ticket(services):
    await send(services, "o6", text="小区路灯坏了一个多月了没人修")
    grid = services.directory.grids[0]
    point = Polygon(grid.polygon).representative_point()  # polygon is (lon, lat) pairs
    asked_phone = await send(services, "o6", kind="location", location=Location(lat=point.y, lon=point.x, label="某路"))
    assert "手机号" in asked_phone[0]
    await send(services, "o6", text="跳过")
    opened = await send(services, "o6", text="确认")
    number = re.search(r"WG\d{12}", opened[0]).group(0)
    ticket = await services.tickets.store.get(number)
    assert ticket.grid_code == grid.code
    assert ticket.lat == pytest.approx(point.y)
