"""Tickets above the grid reach the staff the directory lists for the community, street or district,
as task cards like the grid workers' (the staff work them the same way: tests/wechat_app/test_staff_desk.py).

flows/directory/sample.yaml: 青枫街道 (HanBo91, FengXue91) and 示例区 (QinHai90, DuLi90) have staff,
so does 金桥社区 (TangMing94); 松林社区 has none, so its tickets go to the dispatchers (Dispatcher01).
"""

from __future__ import annotations

from bot.app import SERVICES
from bot.outbox import deliveries
from bot.timers import TimerRunner
from flows import Event
from tests.wechat_app.conftest import NUMBER, Service

STREET_STAFF = {("HanBo91",), ("FengXue91",)}
DISTRICT_STAFF = {("QinHai90",), ("DuLi90",)}


async def _report(service: Service, openid: str, text: str, first_id: int) -> str:
    """A report whose text carries the resident's phone, confirmed at once: its number."""
    summary = await service.resident(openid, text, first_id)
    assert "确认" in summary, summary
    found = NUMBER.search(await service.resident(openid, "确认", first_id + 1))
    assert found
    return found.group(0)


def _texts(service: Service, since: int = 0) -> dict[tuple[str, ...], list[str]]:
    """The plain WeCom app texts sent since the `since`-th app message, by recipient."""
    out: dict[tuple[str, ...], list[str]] = {}
    for m in service.fake.sent_to("wecom_app")[since:]:
        if m.msgtype == "text":
            out.setdefault(m.to, []).append(m.content)
    return out


def _cards(service: Service, since: int = 0) -> dict[tuple[str, ...], list[str]]:
    """The WeCom app task cards sent since the `since`-th app message, by recipient: title and
    description, one text each."""
    out: dict[tuple[str, ...], list[str]] = {}
    for m in service.fake.sent_to("wecom_app")[since:]:
        if m.msgtype == "textcard":
            out.setdefault(m.to, []).append(f"{m.title}\n{m.content}")
    return out


async def _run_timers(service: Service) -> None:
    services = service.client.app[SERVICES]
    await TimerRunner(services.redis, services.keys, services.tickets, service.clock).run_once()
    await service.outbox.run_once()


async def test_a_workers_escalation_reaches_the_street_staff_as_a_task_card_with_what_they_need(service: Service):
    number = await _report(service, "o-street", "金桥小区门口垃圾好几天没人清理了，臭得很，我电话13912345678", 7000)
    await service.outbox.run_once()
    before = len(service.fake.sent_to("wecom_app"))
    assert "已上报" in await service.worker("ZhangFang00", f"上报 {number} 需要街道协调", 7010)
    await service.outbox.run_once()

    sent = service.fake.sent_to("wecom_app")[before:]
    assert {(m.to, m.msgtype) for m in sent} == {(("HanBo91",), "textcard"), (("FengXue91",), "textcard")}
    [card] = [m for m in sent if m.to == ("HanBo91",)]  # neither the dispatchers nor the other streets
    assert card.title == f"【新工单】{number}" and card.btntxt == "处理工单"
    for shown in ("环境卫生", "红色", "街道（青枫街道）", "金桥小区（金桥社区第一网格）", "门口垃圾好几天没人清理了",
                  "上报原因：需要街道协调", "时限：11月25日（周三）10:00"):
        assert shown in card.content, (shown, card.content)
    assert "13912345678" not in card.content and "139****5678" in card.content
    assert f"/tasks/{number}?u=HanBo91&" in card.url  # their own signed task page
    services = service.client.app[SERVICES]
    pushed = [s for s in await deliveries(services.redis, services.keys, number)
              if s.template == "notify/task_assigned" and s.audience == "assignee" and s.recipient != "ZhangFang00"]
    assert {(s.channel, s.recipient, s.status) for s in pushed} == {("wecom_card", "HanBo91", "sent"),
                                                                     ("wecom_card", "FengXue91", "sent")}


async def test_the_street_is_reminded_and_a_red_card_takes_the_ticket_to_the_district_staff(service: Service):
    number = await service.escalated("o-district")

    service.clock.advance(days=1)  # 11-25 10:00: the street's deadline, not accepted yet
    before = len(service.fake.sent_to("wecom_app"))
    await _run_timers(service)
    told = _cards(service, before)
    assert any("催办" in t and number in t for t in told[("HanBo91",)])
    assert any("黄牌" in t and number in t for t in told[("FengXue91",)])
    assert not set(told) & DISTRICT_STAFF

    service.clock.advance(days=1)  # twice the street's deadline: red card, up to the district
    before = len(service.fake.sent_to("wecom_app"))
    await _run_timers(service)
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert (ticket.status, ticket.flow.level) == ("escalated", "district")
    for staff in DISTRICT_STAFF:
        [task] = [t for t in _cards(service, before)[staff] if t.startswith("【新工单】")]
        assert number in task and "区（示例区）" in task and "已亮红牌" in task
    assert not [t for t in _texts(service, before).get(("Dispatcher01",), []) if t.startswith("【新工单】")]


async def test_a_community_without_staff_falls_back_to_the_dispatchers_once(service: Service):
    # 物业服务 is the community's from the start (flows/default.yaml)
    complaint = "物业不管事，电梯坏了一个月没人修，我电话"
    staffed = await _report(service, "o-jinqiao", f"金桥小区{complaint}13912345678", 7200)
    unstaffed = await _report(service, "o-songlin", f"松林苑小区{complaint}13912345670", 7210)
    await service.outbox.run_once()
    assert [staffed in t for t in _cards(service)[("TangMing94",)]] == [True]  # 金桥社区's own staff
    assert ("TangMing94",) not in _texts(service)
    [handed] = _texts(service)[("Dispatcher01",)]  # to hand on: a text, the task page is not theirs
    assert unstaffed in handed and "承办：社区（松林社区）" in handed and "请转交承办单位办理" in handed
    assert "13912345670" not in handed

    # its yellow card goes to the dispatchers by the rule itself: once, not once more for the assignee
    service.clock.advance(days=7, hours=1)  # 12-01 11:00: past the orange deadline (5 working days)
    before = len(service.fake.sent_to("wecom_app"))
    await _run_timers(service)
    cards = [t for t in _texts(service, before)[("Dispatcher01",)] if "黄牌" in t and unstaffed in t]
    assert len(cards) == 1


async def test_a_street_ticket_assigned_to_a_staff_member_comes_as_their_task_card(service: Service):
    number = await service.escalated("o-assigned")
    before = len(service.fake.sent_to("wecom_app"))
    services = service.client.app[SERVICES]
    await services.tickets.act(number, Event("assign", "dispatcher", service.clock(), data=(("worker", "FengXue91"),)))
    await service.outbox.run_once()
    sent = service.fake.sent_to("wecom_app")[before:]
    assert [(m.to, m.msgtype) for m in sent] == [(("FengXue91",), "textcard")]
    assert number in sent[0].title and "u=FengXue91&" in sent[0].url


async def test_a_street_ticket_assigned_to_someone_the_directory_does_not_list_comes_as_text(service: Service):
    number = await service.escalated("o-assigned-out")
    before = len(service.fake.sent_to("wecom_app"))
    services = service.client.app[SERVICES]
    for worker in ("CaoLei92", "ZhangFang00"):  # 云岭街道's staff; 青枫街道's grid worker
        await services.tickets.act(number, Event("assign", "dispatcher", service.clock(), data=(("worker", worker),)))
    await service.outbox.run_once()
    sent = service.fake.sent_to("wecom_app")[before:]
    # the task page would refuse them: a card linking to it would lead nowhere
    assert [(m.to, m.msgtype) for m in sent] == [(("CaoLei92",), "text"), (("ZhangFang00",), "text")]


async def test_a_copy_to_a_street_unit_reaches_that_streets_staff(service: Service):
    # 占道经营 is the grid's, copied to the street's enforcement team (flows/default.yaml)
    number = await _report(service, "o-vending", "金桥小区门口天天有人摆摊占道经营，我电话13912345678", 7400)
    await service.outbox.run_once()
    told = _texts(service)
    assert set(told) == STREET_STAFF
    [copy] = told[("FengXue91",)]
    assert copy.startswith(f"【抄送】工单 {number}（占道经营）已派网格处理") and "金桥社区第一网格" in copy
    assert "13912345678" not in copy
    cards = [m.to for m in service.fake.sent_to("wecom_app") if m.msgtype == "textcard"]
    assert cards == [("ZhangFang00",)]  # the task itself is the grid's


async def test_the_streets_own_cards_reach_the_street_even_when_the_ticket_moved_up_before_delivery(
    service: Service,
):
    number = await service.escalated("o-late-round")

    # the yellow card (street's deadline) and the red card (to the district) fire in one timer
    # round, before the outbox delivers either
    service.clock.advance(days=2)
    before = len(service.fake.sent_to("wecom_app"))
    services = service.client.app[SERVICES]
    await TimerRunner(services.redis, services.keys, services.tickets, service.clock).run_once()
    await service.outbox.run_once()
    assert (await services.tickets.store.get(number)).flow.level == "district"
    told = _cards(service, before)
    street = [t for staff in STREET_STAFF for t in told.get(staff, [])]
    assert any("黄牌" in t and number in t for t in street), told  # written while the street held it
    for staff in DISTRICT_STAFF:
        assert any(t.startswith("【新工单】") and number in t for t in told[staff])


async def test_a_red_card_reaches_the_street_that_let_it_lapse_and_the_district_gets_the_ticket(service: Service):
    number = await service.escalated("o-red-street")
    service.clock.advance(days=1)
    await _run_timers(service)  # the street's yellow card
    service.clock.advance(days=1)
    before = len(service.fake.sent_to("wecom_app"))
    await _run_timers(service)  # twice the deadline: red card, then up to the district
    told = _cards(service, before)
    assert any("红牌" in t and number in t for staff in STREET_STAFF for t in told.get(staff, []))
    for staff in DISTRICT_STAFF:
        assert any(t.startswith("【新工单】") and number in t for t in told[staff])
