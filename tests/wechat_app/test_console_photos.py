"""The console's ticket page shows the ticket's photos — the resident's from the official account,
a worker's from the task page and from the WeCom app — and serves each by its number only."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import aiohttp

from bot.app import SERVICES
from tests.admin.helpers import logged_in
from tests.fakes.wechat_api import message_xml
from tests.wechat_app.conftest import NUMBER, Service
from tests.wechat_app.test_media import image_xml

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 300


def img_urls(html: str) -> list[str]:
    return re.findall(r'<img src="(/admin/tickets/WG\d{12}/photos/\d+)" loading="lazy"', html)


def entry_of(html: str, kind: str) -> str:
    """The timeline entry of `kind` (its <li>), as HTML."""
    found = re.search(rf'<li class="{kind}">(.*?)\n</li>', html, re.S)
    assert found, html
    return found.group(1)


async def worker_image(service: Service, user_id: str, media_id: str, msg_id: int) -> None:
    xml = message_xml(("ToUserName", service.fake.corp_id), ("FromUserName", user_id), ("CreateTime", 1764000000),
                      ("MsgType", "image"), ("PicUrl", "http://x/p.jpg"), ("MediaId", media_id),
                      ("MsgId", msg_id), ("AgentID", service.fake.agent_id))
    status, reply = await service.send(service.work.message(xml))
    assert status == 200 and "照片" in reply["Content"], reply


async def test_a_residents_photo_is_shown_on_the_ticket_page_and_served_as_jpeg(service: Service, redis, key_prefix,
                                                                               tmp_path):
    service.fake.add_media("media-ok", JPEG, "image/jpeg")
    await service.send(service.mp.message(image_xml("o-cphoto", "media-ok", 8001)))
    await service.send(service.mp.message(image_xml("o-cphoto", "media-gone", 8002)))  # WeChat: 40007
    await service.wiring.media.drain(5.0)
    await service.resident("o-cphoto", "金桥小区门口垃圾好几天没人清理了，臭得很", 8003)
    await service.resident("o-cphoto", "跳过", 8004)
    number = NUMBER.search(await service.resident("o-cphoto", "确认", 8005)).group(0)

    await logged_in(service.client, redis, key_prefix, "viewer")
    page = await service.client.get(f"/admin/tickets/{number}")
    html = await page.text()
    assert page.status == 200
    assert img_urls(html) == [f"/admin/tickets/{number}/photos/0"]
    assert f'<a href="/admin/tickets/{number}/photos/0"' in html  # the thumbnail links to the full image
    assert "照片未能取回：" in html and "40007" in html  # the second one, and why
    assert str(tmp_path) not in html and "wechat_mp/" not in html  # no file system path

    photo = await service.client.get(f"/admin/tickets/{number}/photos/0")
    assert photo.status == 200 and await photo.read() == JPEG
    assert photo.headers["Content-Type"] == "image/jpeg"
    assert photo.headers["Cache-Control"] == "private"
    assert "Content-Disposition" not in photo.headers
    assert (await service.client.get(f"/admin/tickets/{number}/photos/1")).status == 404  # never downloaded
    assert (await service.client.get(f"/admin/tickets/{number}/photos/2")).status == 404  # out of range
    assert (await service.client.get("/admin/tickets/WG202611249999/photos/0")).status == 404
    assert (await service.client.get(f"/admin/tickets/{number}/photos/..%2F..%2Fetc")).status == 404


async def test_a_workers_task_page_upload_is_shown_next_to_the_resolve_entry(service: Service, redis, key_prefix):
    number = await service.report("o-cupload")
    await service.outbox.run_once()
    card = next(m for m in service.fake.sent_to("wecom_app") if m.msgtype == "textcard")
    link = urlsplit(card.url)
    for action, photo in (("accept", None), ("resolve", PNG)):
        form = aiohttp.FormData()
        for key, value in [kv.split("=", 1) for kv in link.query.split("&")]:
            form.add_field(key, value)
        form.add_field("action", action)
        form.add_field("note", "已清运")
        if photo is not None:
            form.add_field("photo", photo, filename="p.png", content_type="image/png")
        assert (await service.client.post(link.path, data=form)).status == 200
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    resolved = next(e for e in ticket.timeline if e.kind == "resolve")
    assert len(resolved.photos) == 1 and resolved.photos[0].startswith(f"upload:{number}/")

    await logged_in(service.client, redis, key_prefix, "viewer")
    html = await (await service.client.get(f"/admin/tickets/{number}")).text()
    assert "居民未提供照片" in html and "处理人上传的照片" in html
    assert img_urls(entry_of(html, "resolve")) == [f"/admin/tickets/{number}/photos/0"]
    photo = await service.client.get(f"/admin/tickets/{number}/photos/0")
    assert photo.status == 200 and await photo.read() == PNG and photo.headers["Content-Type"] == "image/png"


async def test_a_workers_wecom_photos_are_downloaded_and_shown_with_the_resolve_entry(
    service: Service, redis, key_prefix
):
    number = await service.report("o-cwecom")
    await service.outbox.run_once()  # the task card: a bare 办结 now means this ticket
    assert "已接单" in await service.worker("ZhangFang00", "接单", 8101)
    service.fake.add_media("wecom-jpg", JPEG, "image/jpeg")
    service.fake.add_media("wecom-odd", b"<html>not a photo</html>", "image/jpeg")
    await worker_image(service, "ZhangFang00", "wecom-jpg", 8102)
    await worker_image(service, "ZhangFang00", "wecom-odd", 8103)
    await worker_image(service, "ZhangFang00", "wecom-gone", 8104)  # WeCom: 40007
    await service.wiring.wecom_media.drain(5.0)
    assert "已办结" in await service.worker("ZhangFang00", "办结 已清运", 8105)

    services = service.client.app[SERVICES]
    ticket = await services.tickets.store.get(number)
    resolved = next(e for e in ticket.timeline if e.kind == "resolve")
    assert resolved.photos == ("wecom:wecom-jpg", "wecom:wecom-odd", "wecom:wecom-gone")
    assert "40007" in await services.redis.hget(services.keys.media_failed(), "wecom-gone")

    await logged_in(service.client, redis, key_prefix, "viewer")
    html = await (await service.client.get(f"/admin/tickets/{number}")).text()
    entry = entry_of(html, "resolve")
    assert img_urls(entry) == [f"/admin/tickets/{number}/photos/0"]
    assert f'href="/admin/tickets/{number}/photos/1"' in entry and "点击下载" in entry  # not an image
    assert "照片未能取回：" in entry and "40007" in entry
    jpg = await service.client.get(f"/admin/tickets/{number}/photos/0")
    assert await jpg.read() == JPEG and jpg.headers["Content-Type"] == "image/jpeg"
    odd = await service.client.get(f"/admin/tickets/{number}/photos/1")
    assert odd.status == 200 and odd.headers["Content-Type"] == "application/octet-stream"
    assert odd.headers["Content-Disposition"].startswith("attachment")
    assert (await service.client.get(f"/admin/tickets/{number}/photos/2")).status == 404
    assert (await service.client.get(f"/admin/tickets/{number}/photos/3")).status == 404


async def test_a_photo_needs_a_console_login(service: Service):
    service.fake.add_media("media-login", JPEG, "image/jpeg")
    await service.send(service.mp.message(image_xml("o-clogin", "media-login", 8201)))
    await service.wiring.media.drain(5.0)
    await service.resident("o-clogin", "金桥小区门口垃圾好几天没人清理了，臭得很", 8202)
    await service.resident("o-clogin", "跳过", 8203)
    number = NUMBER.search(await service.resident("o-clogin", "确认", 8204)).group(0)
    resp = await service.client.get(f"/admin/tickets/{number}/photos/0", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/admin/login?")
    assert await resp.read() != JPEG
