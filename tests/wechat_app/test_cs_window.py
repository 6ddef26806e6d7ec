"""The customer-service window (5 messages within 48 h of the follower's last message, 3 within a
minute of a menu click, follow or QR scan): what counts, what opens it, and that a send which
never left does not use it up."""

from __future__ import annotations

from bot.app import SERVICES
from tests.fakes.wechat_api import event_xml, message_xml
from tests.wechat_app.test_outbox import notify

CUSTOM = "/cgi-bin/message/custom/send"


async def test_sends_that_surely_did_not_leave_do_not_use_up_the_five_customer_service_messages(service):
    number = await service.report("o-503")
    await service.outbox.run_once()
    service.fake.fail_next(8, status=503, path=CUSTOM)  # the first notification's first two tries
    await notify(service, number, "notify/progress", "resident")
    await service.outbox.run_once()
    for attempt in (1, 2):
        service.clock.advance(seconds=service.outbox.backoff(attempt))
        await service.outbox.run_once()
    assert len(service.fake.sent_to("mp_custom")) == 1
    for _ in range(4):
        await notify(service, number, "notify/progress", "resident")
    await service.outbox.run_once()
    assert len(service.fake.sent_to("mp_custom")) == 5 and service.fake.sent_to("mp_template") == []


async def test_a_menu_click_with_one_message_left_keeps_the_48_hour_window(service, redis):
    services = service.client.app[SERVICES]
    number = await service.report("o-click-late")
    await service.outbox.run_once()
    for _ in range(4):
        await notify(service, number, "notify/progress", "resident")
    await service.outbox.run_once()
    assert len(service.fake.sent_to("mp_custom")) == 4  # one of the five left
    status, _ = await service.send(service.mp.message(event_xml("o-click-late", "CLICK", "MENU_STATUS")))
    assert status == 200
    for _ in range(5):
        await notify(service, number, "notify/progress", "resident")
    await service.outbox.run_once()
    # the click's three and the one left; then templates
    assert len(service.fake.sent_to("mp_custom")) == 8 and len(service.fake.sent_to("mp_template")) == 1
    assert await redis.ttl(services.keys.wechat_cs_window("o-click-late")) > 47 * 3600


async def test_a_video_from_the_follower_opens_the_window_again(service):
    number = await service.report("o-video")
    await service.outbox.run_once()
    for _ in range(6):
        await notify(service, number, "notify/progress", "resident")
    await service.outbox.run_once()
    assert (len(service.fake.sent_to("mp_custom")), len(service.fake.sent_to("mp_template"))) == (5, 1)
    video = message_xml(("ToUserName", "gh_account"), ("FromUserName", "o-video"), ("CreateTime", 1764000000),
                        ("MsgType", "video"), ("MediaId", "video-1"), ("ThumbMediaId", "thumb-1"),
                        ("MsgId", 7301))
    assert (await service.send(service.mp.message(video)))[0] == 200
    await notify(service, number, "notify/progress", "resident")
    await service.outbox.run_once()
    assert len(service.fake.sent_to("mp_custom")) == 6
