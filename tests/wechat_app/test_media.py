"""Residents' photos are downloaded while WeChat keeps them; a failed download stops nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from bot.app import SERVICES
from bot.wechat import MediaKeeper
from tests.conftest import TZ
from tests.fakes.wechat_api import message_xml
from tests.wechat_app.conftest import NUMBER, Service

MEDIA_GET = "/cgi-bin/media/get"


def image_xml(openid: str, media_id: str, msg_id: int) -> str:
    return message_xml(("ToUserName", "gh_account"), ("FromUserName", openid), ("CreateTime", 1764000000),
                       ("MsgType", "image"), ("PicUrl", "http://mmbiz.example/p.jpg"), ("MediaId", media_id),
                       ("MsgId", msg_id))


async def test_a_photo_is_kept_and_attached_and_a_failed_download_still_opens_the_ticket(service: Service):
    service.fake.add_media("media-ok", b"\xff\xd8\xffphoto", "image/jpeg")
    assert (await service.send(service.mp.message(image_xml("o-photo", "media-ok", 7001))))[0] == 200
    await service.send(service.mp.message(image_xml("o-photo", "media-gone", 7002)))  # WeChat: 40007
    await service.wiring.media.drain(5.0)
    assert service.wiring.media.path("media-ok").read_bytes() == b"\xff\xd8\xffphoto"
    services = service.client.app[SERVICES]
    assert "40007" in await services.redis.hget(services.keys.media_failed(), "media-gone")

    await service.resident("o-photo", "金桥小区门口垃圾好几天没人清理了，臭得很", 7003)
    await service.resident("o-photo", "跳过", 7004)
    number = NUMBER.search(await service.resident("o-photo", "确认", 7005)).group(0)
    ticket = await services.tickets.store.get(number)
    assert ticket.media_ids == ("media-ok", "media-gone")
    # the dispatcher reads in the timeline which photo is missing, and why
    failed = [e for e in ticket.timeline if e.kind == "media_failed"]
    assert len(failed) == 1 and "media-gone" in failed[0].text and "40007" in failed[0].text


async def test_a_download_that_fails_after_the_report_is_confirmed_is_noted_in_the_ticket(service: Service):
    service.fake.slow_next(1, 1.0, path="/cgi-bin/media/get")  # WeChat answers 40007, but slowly
    await service.send(service.mp.message(image_xml("o-late", "media-late", 7101)))
    await service.resident("o-late", "金桥小区门口垃圾好几天没人清理了，臭得很", 7102)
    await service.resident("o-late", "跳过", 7103)
    number = NUMBER.search(await service.resident("o-late", "确认", 7104)).group(0)
    services = service.client.app[SERVICES]
    opened = await services.tickets.store.get(number)
    assert opened.media_ids == ("media-late",) and not [e for e in opened.timeline if e.kind == "media_failed"]

    await service.wiring.media.drain(5.0)
    ticket = await services.tickets.store.get(number)
    failed = [e for e in ticket.timeline if e.kind == "media_failed"]
    assert len(failed) == 1 and "media-late" in failed[0].text


async def test_a_download_during_a_wechat_outage_is_tried_again_later_and_the_photo_arrives(service: Service):
    service.fake.add_media("media-busy", b"\xff\xd8\xffbusy", "image/jpeg")
    service.fake.fail_next(4, status=503, path="/cgi-bin/media/get")  # every try of the first download
    await service.send(service.mp.message(image_xml("o-busy", "media-busy", 7201)))
    await service.wiring.media.drain(10.0)
    services = service.client.app[SERVICES]
    assert not service.wiring.media.path("media-busy").exists()
    assert await services.redis.hget(services.keys.media_failed(), "media-busy") is None  # not given up

    await service.resident("o-busy", "金桥小区门口垃圾好几天没人清理了，臭得很", 7202)
    await service.resident("o-busy", "跳过", 7203)
    number = NUMBER.search(await service.resident("o-busy", "确认", 7204)).group(0)
    await service.outbox.run_once()  # not due yet
    await service.wiring.media.drain(5.0)
    assert not service.wiring.media.path("media-busy").exists()

    service.clock.advance(minutes=2)
    await service.outbox.run_once()
    await service.wiring.media.drain(5.0)
    assert service.wiring.media.path("media-busy").read_bytes() == b"\xff\xd8\xffbusy"
    ticket = await services.tickets.store.get(number)
    assert ticket.media_ids == ("media-busy",) and not [e for e in ticket.timeline if e.kind == "media_failed"]
    assert await services.redis.zcard(services.keys.media_retry("wechat_mp")) == 0


async def test_a_download_still_failing_when_wechat_no_longer_keeps_the_photo_is_noted(service: Service):
    service.fake.fail_next(8, status=503, path="/cgi-bin/media/get")  # the first download and the retry
    await service.send(service.mp.message(image_xml("o-gone", "media-outage", 7301)))
    await service.wiring.media.drain(10.0)
    await service.resident("o-gone", "金桥小区门口垃圾好几天没人清理了，臭得很", 7302)
    await service.resident("o-gone", "跳过", 7303)
    number = NUMBER.search(await service.resident("o-gone", "确认", 7304)).group(0)

    service.clock.advance(days=3)  # the retry comes due only after WeChat has dropped the file
    await service.outbox.run_once()
    await service.wiring.media.drain(10.0)
    services = service.client.app[SERVICES]
    assert "503" in await services.redis.hget(services.keys.media_failed(), "media-outage")
    ticket = await services.tickets.store.get(number)
    failed = [e for e in ticket.timeline if e.kind == "media_failed"]
    assert len(failed) == 1 and "media-outage" in failed[0].text
    assert await services.redis.zcard(services.keys.media_retry("wechat_mp")) == 0


async def test_a_backlog_of_photo_retries_is_claimed_only_as_fast_as_downloads_can_run(service: Service):
    services = service.client.app[SERVICES]
    photos = [f"media-backlog-{i}" for i in range(MediaKeeper.MAX_AT_ONCE + 4)]
    service.fake.fail_next(len(photos), status=429, path=MEDIA_GET)  # WeChat busy: every first download
    for i, media_id in enumerate(photos):
        service.fake.add_media(media_id, f"photo {i}".encode())
        await service.send(service.mp.message(image_xml(f"o-backlog-{i}", media_id, 7400 + i)))
    await service.wiring.media.drain(10.0)
    due = services.keys.media_retry("wechat_mp")
    assert await services.redis.zcard(due) == len(photos)

    service.clock.advance(minutes=2)
    await service.outbox.run_once()
    # as many as can download at once; the others stay due rather than wait out their lease
    assert await services.redis.zcard(due) == len(photos) - MediaKeeper.MAX_AT_ONCE
    await service.wiring.media.drain(10.0)
    await service.outbox.run_once()
    await service.wiring.media.drain(10.0)
    assert all(service.wiring.media.path(m).exists() for m in photos)
    assert service.fake.calls.count(MEDIA_GET) == 2 * len(photos)  # each downloaded once, after its failure


async def test_a_photo_wechat_cannot_give_for_a_day_is_still_tried_on_the_third_day(service: Service):
    services = service.client.app[SERVICES]
    service.fake.add_media("media-day", b"\xff\xd8\xffday", "image/jpeg")
    service.fake.fail_next(7, status=429, path=MEDIA_GET)  # the download and six retries, about 23 h
    first = service.clock()
    await service.send(service.mp.message(image_xml("o-day", "media-day", 7501)))
    await service.wiring.media.drain(5.0)
    due = services.keys.media_retry("wechat_mp")
    while await services.redis.zcard(due):
        [(_, at)] = await services.redis.zrange(due, 0, 0, withscores=True)
        service.clock.now = datetime.fromtimestamp(at, TZ)
        await service.outbox.run_once()
        await service.wiring.media.drain(5.0)
    assert service.wiring.media.path("media-day").read_bytes() == b"\xff\xd8\xffday"
    assert await services.redis.hget(services.keys.media_failed(), "media-day") is None
    assert timedelta(hours=70) < service.clock() - first < MediaKeeper.KEPT_BY_PROVIDER


async def shut_down(keeper: MediaKeeper) -> None:
    """A process stopping: the app waits a little for the downloads, then whatever still runs is
    cancelled (by the keeper itself, or else by the event loop: `asyncio.run` and `web.run_app`)."""
    await keeper.drain(0.3)
    running = list(keeper._running)
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


async def test_a_photo_retry_cut_off_by_a_shutdown_is_taken_up_again_by_the_next_process(service: Service):
    service.fake.add_media("media-stop", b"\xff\xd8\xffstop", "image/jpeg")
    service.fake.fail_next(1, status=429, path=MEDIA_GET)
    await service.send(service.mp.message(image_xml("o-stop", "media-stop", 7601)))
    await service.wiring.media.drain(5.0)
    service.fake.slow_next(1, 3.0, path=MEDIA_GET)  # the retry's download is under way at shutdown
    service.clock.advance(minutes=2)
    await service.outbox.run_once()
    await shut_down(service.wiring.media)
    assert not service.wiring.media.path("media-stop").exists()

    service.clock.advance(seconds=MediaKeeper.RETRY_LEASE_SECONDS + 1)  # the stopped process's claim runs out
    await service.outbox.run_once()
    await service.wiring.media.drain(5.0)
    assert service.wiring.media.path("media-stop").read_bytes() == b"\xff\xd8\xffstop"


async def test_a_first_download_cut_off_by_a_shutdown_is_taken_up_again_by_the_next_process(service: Service):
    service.fake.add_media("media-first-stop", b"\xff\xd8\xfffirst", "image/jpeg")
    service.fake.slow_next(1, 3.0, path=MEDIA_GET)  # still downloading when the service stops
    await service.send(service.mp.message(image_xml("o-first-stop", "media-first-stop", 7701)))
    await shut_down(service.wiring.media)
    assert not service.wiring.media.path("media-first-stop").exists()

    service.clock.advance(seconds=MediaKeeper.RETRY_LEASE_SECONDS + 1)
    await service.outbox.run_once()
    await service.wiring.media.drain(5.0)
    assert service.wiring.media.path("media-first-stop").read_bytes() == b"\xff\xd8\xfffirst"
