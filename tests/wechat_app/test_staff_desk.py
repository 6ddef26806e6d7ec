"""Staff work the tickets above the grid as grid workers work theirs: the same commands, the same
task page from their task card, at their own level and within their own area.

flows/directory/sample.yaml: 青枫街道's staff HanBo91 and FengXue91 (its grids include ZhangFang00's,
金桥社区第一网格); 云岭街道's CaoLei92; the district's QinHai90 and DuLi90.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.app import SERVICES
from bot.worker_tasks import TaskLinks
from flows import Event
from tests.wechat_app.conftest import LINK_SECRET, NUMBER, Service, task_form

UNKNOWN = "WG202611249999"


def _told(service: Service, openid: str) -> list[str]:
    return [m.content for m in service.fake.sent_to("mp_custom") if m.to == (openid,)]


def _card(service: Service, user: str, number: str) -> urlsplit:
    card = next(m for m in reversed(service.fake.sent_to("wecom_app"))
                if m.msgtype == "textcard" and m.to == (user,) and number in m.title)
    return urlsplit(card.url)


async def test_street_staff_accept_report_progress_and_resolve_an_escalated_ticket_by_command(service: Service):
    number = await service.escalated("o-staff-cmd", 1000)
    services = service.client.app[SERVICES]

    accepted = await service.worker("HanBo91", f"接单 {number}", 1101)
    assert accepted.startswith(f"已接单：工单 {number}（环境卫生），当前状态：已受理"), accepted
    assert "已报告进展" in await service.worker("HanBo91", f"进度 {number} 已协调城管明早清运", 1102)
    await service.outbox.run_once()
    done = await service.worker("HanBo91", f"办结 {number} 垃圾已清运完毕", 1103)
    assert "已办结" in done.split("当前状态：")[1]

    ticket = await services.tickets.store.get(number)
    assert (ticket.status, ticket.flow.level, ticket.flow.assignee) == ("resolved", "street", "HanBo91")
    assert [(e.actor, e.kind) for e in ticket.timeline if e.kind in ("accept", "progress", "resolve")] == [
        ("worker:HanBo91", "accept"), ("worker:HanBo91", "progress"), ("worker:HanBo91", "resolve")
    ]
    await service.outbox.run_once()
    told = _told(service, "o-staff-cmd")
    assert any(number in t and "已由街道受理" in t for t in told), told
    assert any("有新进展：已协调城管明早清运" in t for t in told)
    assert any("已办结：垃圾已清运完毕" in t and "1–5" in t for t in told)  # resolved, asked to rate


async def test_street_staff_work_an_escalated_ticket_on_the_task_page_from_their_card(service: Service):
    number = await service.escalated("o-staff-page", 1000)
    link = _card(service, "FengXue91", number)
    page = await service.client.get(f"{link.path}?{link.query}")
    html = await page.text()
    assert page.status == 200 and number in html and "冯雪" in html and "街道（青枫街道）" in html
    assert "需要街道协调" in html  # the grid worker's reason, in the ticket's record

    acted = await service.client.post(link.path, data=task_form(link.query, action="accept"))
    assert acted.status == 200 and "已接单" in await acted.text()
    resolved = await service.client.post(link.path, data=task_form(link.query, action="resolve", note="已拆除清运"))
    assert resolved.status == 200 and "已办结" in await resolved.text()
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert (ticket.status, ticket.flow.assignee) == ("resolved", "FengXue91")
    await service.outbox.run_once()
    told = _told(service, "o-staff-page")
    assert any("已由街道受理" in t for t in told) and any("已办结：已拆除清运" in t for t in told)


async def test_staff_of_another_area_or_at_another_level_are_refused_like_an_unknown_number(service: Service):
    escalated = await service.escalated("o-staff-refused", 1000)
    at_grid = await service.report("o-staff-grid", first_id=1100)
    await service.outbox.run_once()

    def unknown(answer: str, number: str) -> str:
        return answer.replace(number, UNKNOWN)

    for user, number, msg_id in (("CaoLei92", escalated, 1201),  # 云岭街道: not their street
                                 ("HanBo91", at_grid, 1202),  # their street's grid, still at grid level
                                 ("QinHai90", escalated, 1203)):  # the district: it is the street's
        refused = await service.worker(user, f"接单 {number}", msg_id)
        assert unknown(refused, number) == await service.worker(user, f"接单 {UNKNOWN}", msg_id + 10)
    refused = await service.worker("CaoLei92", f"接单 {UNKNOWN}", 1301)
    assert refused == f"未找到工单 {UNKNOWN}，或该工单不由云岭街道承办。"

    services = service.client.app[SERVICES]
    links = TaskLinks(LINK_SECRET, "https://grid.example.cn", services.config.service.task_link_ttl_seconds,
                      service.clock)
    refusal = await (await service.client.get(urlsplit(links.url(UNKNOWN, "CaoLei92")).geturl()
                                              .removeprefix("https://grid.example.cn"))).text()
    for user, number in (("CaoLei92", escalated), ("HanBo91", at_grid)):
        link = urlsplit(links.url(number, user))
        page = await service.client.get(f"{link.path}?{link.query}")
        assert page.status == 403 and await page.text() == refusal
        posted = await service.client.post(link.path, data=task_form(link.query, action="accept"))
        assert posted.status == 403
    for number, status, level in ((escalated, "escalated", "street"), (at_grid, "dispatched", "grid")):
        ticket = await services.tickets.store.get(number)
        assert (ticket.status, ticket.flow.level, ticket.flow.assignee) == (status, level, None)


async def test_a_bare_command_by_staff_acts_only_when_one_ticket_fits_else_lists_them(service: Service):
    first = await service.escalated("o-staff-bare-1", 1000)
    assert "已接单" in await service.worker("HanBo91", "接单", 1401)  # the one escalated ticket
    second = await service.escalated("o-staff-bare-2", 1100)
    third = await service.escalated("o-staff-bare-3", 1200)
    listed = await service.worker("FengXue91", "接单", 1402)
    assert "2张工单可以接单" in listed and second in listed and third in listed and first not in listed
    assert "13812345678" not in listed and "金桥小区" not in listed
    services = service.client.app[SERVICES]
    for number in (second, third):
        assert (await services.tickets.store.get(number)).status == "escalated"  # neither moved
    # the one HanBo91 holds is the one his bare 办结 means; FengXue91 holds none
    assert "已办结" in await service.worker("HanBo91", "办结 已清运", 1403)
    assert (await services.tickets.store.get(first)).status == "resolved"
    assert "没有可以直接办结的工单" in await service.worker("FengXue91", "办结 已清运", 1404)
    # a grid worker's bare command does not reach up to them
    assert "没有可以直接接单的工单" in await service.worker("ZhangFang00", "接单", 1405)


async def test_district_staff_work_a_ticket_without_a_grid_that_a_dispatcher_sent_the_district(service: Service):
    assert "地点" in await service.resident("o-no-grid", "井盖丢了好几天，很危险", 1500)
    assert "手机号" in await service.resident("o-no-grid", "建设大道188号门口", 1501)  # in no grid of the directory
    assert "确认" in await service.resident("o-no-grid", "13912345678", 1503)
    number = NUMBER.search(await service.resident("o-no-grid", "确认", 1504)).group(0)
    services = service.client.app[SERVICES]
    assert (await services.tickets.store.get(number)).grid_code is None
    await services.tickets.act(number, Event("dispatch", "dispatcher", service.clock(),
                                             data=(("unit", "urban_management"),), by="dispatcher01"))
    await service.outbox.run_once()
    link = _card(service, "DuLi90", number)
    assert (await service.client.get(f"{link.path}?{link.query}")).status == 200
    assert "已接单" in await service.worker("QinHai90", "接单", 1505)
    ticket = await services.tickets.store.get(number)
    assert (ticket.status, ticket.flow.level, ticket.flow.assignee) == ("accepted", "district", "QinHai90")


async def test_a_ticket_the_street_owns_from_the_start_is_copied_to_the_grid_without_a_task_link(service: Service):
    # 违章搭建 is 青枫街道's from the start, copied to the grid (flows/default.yaml: notify [grid_team])
    summary = await service.resident("o-street-own", "金桥小区有人在楼顶违章搭建彩钢房，我电话13912345678", 1600)
    assert "确认" in summary, summary
    number = NUMBER.search(await service.resident("o-street-own", "确认", 1601)).group(0)
    await service.outbox.run_once()

    to_grid = [m for m in service.fake.sent_to("wecom_app") if m.to == ("ZhangFang00",)]
    assert [m.msgtype for m in to_grid] == ["text"]  # the task page would refuse the grid's worker
    assert to_grid[0].content.startswith(f"【抄送】工单 {number}（违章搭建）已派街道处理")
    assert {m.to for m in service.fake.sent_to("wecom_app") if m.msgtype == "textcard"} == {
        ("HanBo91",), ("FengXue91",)
    }
    group = [m.content for m in service.fake.sent_to("wecom_robot") if number in m.content]
    assert group == [f"【抄送】工单 {number}（违章搭建·橙色）已派街道（青枫街道）承办，办理时限 "
                     f"{group[0].split('办理时限 ')[1].split('，')[0]}，抄送本网格知悉。"]
    assert "无需接单" not in group[0] and "13912345678" not in group[0]
