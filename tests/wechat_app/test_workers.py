"""Grid workers: commands only on their own grid's tickets, the signed task page, groups."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from bot.app import SERVICES
from bot.outbox import deliveries
from bot.timers import TimerRunner
from flows import Event
from tests.conftest import say
from tests.wechat_app.conftest import NUMBER, Service, task_form


async def test_a_worker_of_another_grid_is_refused_and_the_ticket_does_not_move(service: Service):
    number = await service.report("o-other-grid")
    answer = await service.worker("LiuYang01", f"接单 {number}", 6001)  # grid 500199001001-02
    assert answer == f"未找到工单 {number}，或该工单不属于您所在的网格。"
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert ticket.status == "dispatched" and ticket.flow.assignee is None
    # and exactly like a number that does not exist
    assert (await service.worker("LiuYang01", "接单 WG202611249999", 6002)).startswith("未找到工单 WG202611249999，")


def photo_xml(user: str, media_id: str, msg_id: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[c]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
        "<CreateTime>1764000001</CreateTime><MsgType><![CDATA[image]]></MsgType>"
        f"<PicUrl><![CDATA[http://x/p.jpg]]></PicUrl><MediaId><![CDATA[{media_id}]]></MediaId>"
        f"<MsgId>{msg_id}</MsgId><AgentID>1000002</AgentID></xml>"
    )


async def send_photo(service: Service, user: str, media_id: str, msg_id: int) -> str:
    status, reply = await service.send(service.work.message(photo_xml(user, media_id, msg_id)))
    assert status == 200 and isinstance(reply, dict), reply
    return reply["Content"]


async def test_worker_commands_progress_resolve_with_photo(service: Service):
    number = await service.report("o-commands")
    await service.outbox.run_once()  # the task card makes this the worker's current ticket
    assert "已接单" in await service.worker("ZhangFang00", "接单", 6101)
    assert "需要写明内容" in await service.worker("ZhangFang00", "进度", 6102)
    assert "报告进展" in await service.worker("ZhangFang00", "进度 已联系物业，明早清运", 6103)
    photo = await service.send(service.work.message(
        "<xml><ToUserName><![CDATA[c]]></ToUserName><FromUserName><![CDATA[ZhangFang00]]></FromUserName>"
        "<CreateTime>1764000001</CreateTime><MsgType><![CDATA[image]]></MsgType>"
        "<PicUrl><![CDATA[http://x/p.jpg]]></PicUrl><MediaId><![CDATA[media-1]]></MediaId>"
        "<MsgId>6104</MsgId><AgentID>1000002</AgentID></xml>"))
    assert "照片" in photo[1]["Content"]
    done = await service.worker("ZhangFang00", f"办结 {number} 垃圾已清运完毕", 6105)
    assert "已办结" in done and "已办结" in done.split("当前状态：")[1]
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert ticket.status == "resolved"
    assert any(e.kind == "resolve" and "附照片1张" in e.text for e in ticket.timeline)
    await service.outbox.run_once()
    told = [m.content for m in service.fake.sent_to("mp_custom")]
    assert any("已办结" in t and "1–5" in t for t in told)  # resolved, with the request to rate


async def test_the_task_page_needs_a_valid_unexpired_link_and_lets_the_worker_act(service: Service):
    number = await service.report("o-page")
    await service.outbox.run_once()
    card = next(m for m in service.fake.sent_to("wecom_app") if m.msgtype == "textcard")
    link = urlsplit(card.url)
    page = await service.client.get(f"{link.path}?{link.query}")
    assert page.status == 200
    html = await page.text()
    assert number in html and "接单" in html and "13812345678" not in html

    forged = link.query.replace("u=ZhangFang00", "u=LiuYang01")
    assert (await service.client.get(f"{link.path}?{forged}")).status == 403
    tampered = link.query[:-1] + ("0" if link.query[-1] != "0" else "1")
    assert (await service.client.get(f"{link.path}?{tampered}")).status == 403

    form = aiohttp.FormData()
    for key, value in [kv.split("=", 1) for kv in link.query.split("&")]:
        form.add_field(key, value)
    form.add_field("action", "accept")
    acted = await service.client.post(link.path, data=form)
    assert acted.status == 200 and "已接单" in await acted.text()
    assert (await service.client.app[SERVICES].tickets.store.get(number)).status == "accepted"

    form = aiohttp.FormData()
    for key, value in [kv.split("=", 1) for kv in link.query.split("&")]:
        form.add_field(key, value)
    form.add_field("action", "resolve")
    form.add_field("note", "已清运")
    form.add_field("photo", b"\xff\xd8\xff" + b"0" * 200_000, filename="p.jpg", content_type="image/jpeg")
    resolved = await service.client.post(link.path, data=form)  # larger than the service's 64 KB body limit
    assert resolved.status == 200, await resolved.text()
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert ticket.status == "resolved" and any("附照片1张" in e.text for e in ticket.timeline)

    service.clock.advance(days=8)  # links live 7 days
    assert (await service.client.get(f"{link.path}?{link.query}")).status == 403


async def test_the_daily_digest_lists_overdue_tickets_per_grid_robot_without_details(service: Service):
    number = await service.report("o-digest")
    await service.outbox.run_once()
    before = len(service.fake.sent_to("wecom_robot"))
    service.clock.advance(days=3)  # red: one working day; now well past it, at 10:00
    await service.outbox.run_once()
    digest = service.fake.sent_to("wecom_robot")[before:]
    digest = [m for m in digest if "超期工单日报" in m.content]
    assert len(digest) == 1 and number in digest[0].content and "超期" in digest[0].content
    assert "垃圾" not in digest[0].content and "5678" not in digest[0].content
    await service.outbox.run_once()  # once a day
    assert len([m for m in service.fake.sent_to("wecom_robot") if "超期工单日报" in m.content]) == 1


async def test_return_goes_to_the_dispatchers_wecom_and_escalate_tells_the_resident(service: Service):
    number = await service.report("o-return")
    await service.outbox.run_once()
    answer = await service.worker("ZhangFang00", f"退回 {number} 不属于本网格，是隔壁小区", 6201)
    assert "已退回" in answer
    await service.outbox.run_once()
    to_dispatcher = [m for m in service.fake.sent_to("wecom_app") if m.to == ("Dispatcher01",)]
    assert len(to_dispatcher) == 1 and number in to_dispatcher[0].content and "退回" in to_dispatcher[0].content

    second = await service.report("o-escalate", first_id=1100)
    await service.outbox.run_once()
    assert "已上报" in await service.worker("ZhangFang00", f"上报 {second} 需要执法队", 6202)
    await service.outbox.run_once()
    told = [m.content for m in service.fake.sent_to("mp_custom") if m.to == ("o-escalate",)]
    assert any("上报" in t and second in t for t in told)


async def test_a_resident_of_the_rest_channel_has_no_channel_and_it_is_recorded(service: Service):
    await say(service.client, "rest-1", "金桥小区门口垃圾好几天没人清理了，臭得很")
    await say(service.client, "rest-1", "跳过")
    number = NUMBER.search((await say(service.client, "rest-1", "确认"))[0]).group(0)
    services = service.client.app[SERVICES]
    await services.tickets.act(number, Event("accept", "worker", service.clock(), by="ZhangFang00"))
    await service.outbox.run_once()
    states = {(s.audience, s.status) for s in await deliveries(services.redis, services.keys, number)}
    assert ("resident", "no_channel") in states and ("assignee", "sent") in states


async def test_casual_talk_starting_with_a_verb_moves_nothing_and_tells_the_resident_nothing(service: Service):
    number = await service.report("o-casual")
    await service.outbox.run_once()
    told_before = len(service.fake.sent_to("mp_custom"))
    asked = await service.worker("ZhangFang00", "进度怎么样了", 6301)
    assert asked.startswith("未办理") and "进度 怎么样了" in asked
    assert "未办理" in await service.worker("ZhangFang00", "上报了吗？", 6302)
    hint = await service.worker("ZhangFang00", "办结已清理完毕", 6303)
    assert "办结 已清理完毕" in hint
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert (ticket.status, ticket.flow.level) == ("dispatched", "grid")
    assert not [e for e in ticket.timeline if e.kind in ("progress", "escalate", "resolve")]
    await service.outbox.run_once()
    assert len(service.fake.sent_to("mp_custom")) == told_before  # no "有新进展：怎么样了"


async def test_the_dispatcher_reads_why_a_worker_returned_the_ticket(service: Service):
    number = await service.report("o-return-reason")
    await service.outbox.run_once()
    await service.worker("ZhangFang00", f"退回 {number} 不属于本网格，是隔壁小区", 6401)
    await service.outbox.run_once()
    [told] = [m.content for m in service.fake.sent_to("wecom_app") if m.to == ("Dispatcher01",)]
    assert number in told and "不属于本网格，是隔壁小区" in told


async def test_the_digest_leaves_out_tickets_resolved_in_time_and_counts_hours_under_a_day(service: Service):
    resolved = await service.report("o-digest-done")
    late = await service.report("o-digest-late", first_id=1100)
    await service.outbox.run_once()
    await service.worker("ZhangFang00", f"接单 {resolved}", 6501)
    await service.worker("ZhangFang00", f"办结 {resolved} 已清运", 6502)  # before the deadline (11-25 10:00)
    service.clock.advance(days=1, hours=5)  # 11-25 15:00: five hours past it
    await service.outbox.run_once()
    [digest] = [m.content for m in service.fake.sent_to("wecom_robot") if "超期工单日报" in m.content]
    assert "1 件超期未办结" in digest and late in digest and "超期5小时" in digest
    assert resolved not in digest


async def test_a_digest_longer_than_one_robot_message_arrives_whole_in_order(service: Service):
    service.fake.robot_per_minute = 1000  # the fake counts real seconds; the service counts its own clock
    numbers = [await service.report(f"o-many-{i}", first_id=2000 + 10 * i) for i in range(35)]
    await service.outbox.run_once()
    before = len(service.fake.sent_to("wecom_robot"))
    service.clock.advance(days=3)
    await service.outbox.run_once()
    sent = [m.content for m in service.fake.sent_to("wecom_robot")[before:]]
    assert len(sent) >= 2 and all(len(text.encode()) <= 2048 for text in sent)
    lines = "\n".join(sent).split("\n")
    assert lines[0].startswith("【超期工单日报】") and "35 件超期未办结" in lines[0]
    listed = [NUMBER.search(line).group(0) for line in lines[1:] if NUMBER.search(line)]
    assert listed == sorted(numbers)[:30]  # every line, in order, none cut off
    assert lines[-1] == "……等共 35 件"


async def test_an_escalated_ticket_leaves_the_grid_and_the_street_staff_are_told(service: Service):
    number = await service.report("o-up")
    await service.outbox.run_once()
    link = urlsplit(next(m for m in service.fake.sent_to("wecom_app") if m.msgtype == "textcard").url)
    robot_before = len(service.fake.sent_to("wecom_robot"))
    assert "已上报" in await service.worker("ZhangFang00", f"上报 {number} 需要街道协调", 6601)
    await service.outbox.run_once()

    group = [m.content for m in service.fake.sent_to("wecom_robot")[robot_before:]]
    assert group and all("已派本网格" not in text for text in group)
    assert any(number in text and "街道" in text and "无需接单" in text for text in group)
    # the street's staff (flows/directory/sample.yaml: 青枫街道) have it; the dispatchers need not hand it on
    told = {m.to: m for m in service.fake.sent_to("wecom_app") if m.to != ("ZhangFang00",)}
    assert set(told) == {("HanBo91",), ("FengXue91",)}
    assert all(m.msgtype == "textcard" and number in m.title and "街道（青枫街道）" in m.content
               for m in told.values())

    # a grid worker can no longer act on it, by command or on the task page
    refused = await service.worker("ZhangFang00", f"接单 {number}", 6602)
    assert "网格不能再办理" in refused
    page = await service.client.get(f"{link.path}?{link.query}")
    html = await page.text()
    assert page.status == 403 and "网格不能再办理" in html and "垃圾" not in html
    posted = await service.client.post(link.path, data=task_form(link.query, action="accept"))
    assert posted.status == 403
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert (ticket.status, ticket.flow.level, ticket.flow.assignee) == ("escalated", "street", None)

    # nor is it in the grid's overdue digest: the street is late with it, not the grid
    service.clock.advance(days=3)
    await service.outbox.run_once()
    assert not [m for m in service.fake.sent_to("wecom_robot") if "超期工单日报" in m.content]


async def test_a_bare_command_acts_only_when_one_ticket_fits_else_lists_them(service: Service):
    services = service.client.app[SERVICES]
    older = await service.report("o-bare-1")
    await service.outbox.run_once()
    service.clock.advance(minutes=30)
    newer = await service.report("o-bare-2", first_id=1100)
    await service.outbox.run_once()  # the newer card came last
    listed = await service.worker("ZhangFang00", "接单", 6701)
    assert "2张工单可以接单" in listed and older in listed and newer in listed and "环境卫生" in listed
    assert "13812345678" not in listed and "金桥小区" not in listed
    service.clock.advance(hours=1, minutes=45)  # the older one's 催办 card comes now
    await TimerRunner(services.redis, services.keys, services.tickets, service.clock).run_once()
    await service.outbox.run_once()
    cards = [m.title for m in service.fake.sent_to("wecom_app") if m.msgtype == "textcard"]
    assert "催办" in cards[-1] and older in cards[-1]
    assert "2张工单可以接单" in await service.worker("ZhangFang00", "接单", 6702)
    for number in (older, newer):
        assert (await services.tickets.store.get(number)).status == "dispatched"  # neither moved

    assert "已接单" in await service.worker("ZhangFang00", f"接单 {older}", 6703)
    assert "已接单" in await service.worker("ZhangFang00", "接单", 6704)  # only the newer one waits now
    assert (await services.tickets.store.get(newer)).flow.assignee == "ZhangFang00"
    assert "2张工单可以报告进展" in await service.worker("ZhangFang00", "进度 已联系物业", 6705)
    assert "没有可以直接办结的工单" in await service.worker("LiuYang01", "办结 已清运", 6706)  # another grid's


async def test_a_refused_resolve_keeps_the_photo_for_the_next_one(service: Service):
    number = await service.report("o-photo-refused")
    await service.outbox.run_once()
    await send_photo(service, "ZhangFang00", "media-early", 6801)
    refused = await service.worker("ZhangFang00", f"办结 {number} 已清运", 6802)  # not accepted yet
    assert "不能" in refused
    await service.worker("ZhangFang00", f"接单 {number}", 6803)
    done = await service.worker("ZhangFang00", f"办结 {number} 已清运", 6804)
    assert "已办结" in done and "附照片1张" in done
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert [e.photos for e in ticket.timeline if e.kind == "resolve"] == [("wecom:media-early",)]


async def test_a_photo_goes_with_its_own_ticket_or_only_a_resolve_soon_after_it(service: Service):
    services = service.client.app[SERVICES]
    first = await service.report("o-photo-a")
    second = await service.report("o-photo-b", first_id=1100)
    await service.outbox.run_once()
    await service.worker("ZhangFang00", f"接单 {first}", 6901)
    tied = await send_photo(service, "ZhangFang00", "media-for-a", 6902)  # the only ticket she holds
    assert first in tied
    await service.worker("ZhangFang00", f"接单 {second}", 6903)
    untied = await send_photo(service, "ZhangFang00", "media-unclear", 6904)  # she holds two now
    assert "30分钟内" in untied
    service.clock.advance(hours=1)
    done = await service.worker("ZhangFang00", f"办结 {second} 噪音已劝停", 6905)
    assert "未附照片" in done  # neither the first ticket's photo nor the hour-old unclear one
    done = await service.worker("ZhangFang00", f"办结 {first} 已清运", 6906)
    assert "附照片1张" in done
    photos = {n: [e.photos for e in (await services.tickets.store.get(n)).timeline if e.kind == "resolve"]
              for n in (first, second)}
    assert photos == {first: [("wecom:media-for-a",)], second: [()]}


async def test_the_task_page_takes_only_real_images_and_may_not_be_framed(service: Service, tmp_path):
    number = await service.report("o-upload")
    await service.outbox.run_once()
    link = urlsplit(next(m for m in service.fake.sent_to("wecom_app") if m.msgtype == "textcard").url)
    page = await service.client.get(f"{link.path}?{link.query}")
    forbidden = await service.client.get(f"{link.path}?u=ZhangFang00&e=1&s=0")
    for response in (page, forbidden):
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    await service.client.post(link.path, data=task_form(link.query, action="accept"))

    svg = task_form(link.query, action="resolve", note="已清运")
    svg.add_field("photo", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
                  filename="x.svg", content_type="image/svg+xml")
    refused = await service.client.post(link.path, data=svg)
    assert refused.status == 400 and "不是照片" in await refused.text()
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert ticket.status == "accepted" and not (tmp_path / "media" / number).exists()

    jpeg = task_form(link.query, action="resolve", note="已清运")
    jpeg.add_field("photo", b"\xff\xd8\xff" + b"0" * 1000, filename="p", content_type="application/octet-stream")
    done = await service.client.post(link.path, data=jpeg)
    assert done.status == 200 and "附照片1张" in await done.text()
    assert [p.suffix for p in (tmp_path / "media" / number).iterdir()] == [".jpeg"]


async def test_a_message_to_the_app_that_is_no_command_gets_the_commands_help_by_name(service: Service):
    # the help's `name` once clashed with the template name's parameter: a 503, WeCom retrying in vain
    for user, name, msg_id in (("ZhangFang00", "张芳", 7001), ("HanBo91", "韩波", 7002)):
        answer = await service.worker(user, "你好，今天有什么任务", msg_id)
        assert answer.startswith(f"{name}您好，回复以下指令办理工单") and "办结 <办理结果>" in answer
