"""The queue's filters and search, the ticket page, and dispatcher actions through the flow engine."""

from __future__ import annotations

import re

from bot.admin.audit import AuditLog
from bot.keys import Keys
from tests.admin.helpers import logged_in, login
from tests.admin.tickets import event, report, services_of


def numbers_in(html: str) -> set[str]:
    return set(re.findall(r'<a href="/admin/tickets/(WG\d{12})">', html))


async def test_queue_filters_and_search(client, redis, key_prefix, clock):
    noise = await report(client, clock, "楼下烧烤摊油烟太大", phone="13812345678")
    rubbish = await report(client, clock, "垃圾桶满了没人清运", category="sanitation")
    lost = await report(client, clock, "路灯坏了", category="public_facilities", where="")
    await event(client, clock, noise.number, "accept", "worker")
    await logged_in(client, redis, key_prefix, "viewer")

    async def queue(query: str) -> set[str]:
        resp = await client.get(f"/admin/tickets?{query}")
        assert resp.status == 200
        return numbers_in(await resp.text())

    assert await queue("") == {noise.number, rubbish.number, lost.number}
    assert await queue("status=accepted") == {noise.number}
    assert await queue("category=sanitation") == {rubbish.number}
    assert await queue("colour=orange") == {lost.number}
    assert await queue("level=district") == {lost.number}  # no grid: the linkage centre's queue
    assert await queue("unit=grid_team") == {noise.number, rubbish.number}
    assert await queue("channel=rest") == {noise.number, rubbish.number, lost.number}
    assert await queue("channel=sms") == set()
    assert await queue("q=5678") == {noise.number}  # the phone's last digits
    assert await queue("q=垃圾") == {rubbish.number}  # the text
    assert await queue(f"q={lost.number[-6:]}") == {lost.number}  # part of the number
    assert await queue("from=2026-11-24&to=2026-11-24") == {noise.number, rubbish.number, lost.number}
    assert await queue("from=2026-11-25") == set()
    assert await queue("overdue=1") == set()
    clock.advance(days=1, hours=1)  # past the red tickets' one working day; the orange one has five
    assert (await login(client, "viewer-user")).status == 303  # the session expired meanwhile
    assert await queue("overdue=1") == {rubbish.number, noise.number}
    page = await client.get("/admin/tickets?from=yesterday")
    assert "日期格式不正确" in await page.text()
    html = await (await client.get("/admin/tickets")).text()
    assert "138****5678" in html and "13812345678" not in html


async def test_ticket_page_shows_timeline_rules_notifications_and_plan(client, redis, key_prefix, clock):
    ticket = await report(client, clock, "楼下烧烤摊油烟太大")
    await logged_in(client, redis, key_prefix, "viewer")
    resp = await client.get(f"/admin/tickets/{ticket.number}")
    html = await resp.text()
    assert resp.status == 200
    assert "居民上报" in html and "派单推送" in html  # the rule's name next to what it did
    assert "notify/task_assigned" in html
    assert "<svg" in html and "反映位置" not in html  # a plan of the grids; no point was sent
    assert 'id="actions"' not in html  # a viewer sees no action forms
    assert (await client.get("/admin/tickets/WG202611249999")).status == 404


async def test_dispatcher_escalates_through_the_flow(client, redis, key_prefix, clock):
    ticket = await report(client, clock, "楼下烧烤摊油烟太大")
    csrf = await logged_in(client, redis, key_prefix, "dispatcher", username="zhao")
    resp = await client.post(
        f"/admin/tickets/{ticket.number}/act", data={"csrf": csrf, "action": "escalate", "note": "需街道执法"},
        allow_redirects=False,
    )
    assert resp.status == 303
    moved = await services_of(client).tickets.store.get(ticket.number)
    assert moved.flow.status == "escalated" and moved.flow.level == "street"
    assert any(e.kind == "escalate" and e.actor == "dispatcher:zhao" and e.text == "需街道执法" for e in moved.timeline)
    audit = await AuditLog(redis, Keys(key_prefix)).recent(action="ticket.")
    assert (audit[0].who, audit[0].action, audit[0].target, audit[0].outcome) == (
        "zhao", "ticket.escalate", ticket.number, "ok"
    )


async def test_a_refused_transition_shows_the_flows_reason_and_changes_nothing(client, redis, key_prefix, clock):
    ticket = await report(client, clock, "楼下烧烤摊油烟太大")
    csrf = await logged_in(client, redis, key_prefix, "dispatcher")
    before = await redis.get(f"{key_prefix}ticket:{ticket.number}")
    resp = await client.post(f"/admin/tickets/{ticket.number}/act", data={"csrf": csrf, "action": "close"})
    assert resp.status == 409
    html = await resp.text()
    assert "流程不允许此操作" in html and "不能结案" in html
    assert await redis.get(f"{key_prefix}ticket:{ticket.number}") == before


async def test_a_viewer_may_not_act(client, redis, key_prefix, clock):
    ticket = await report(client, clock, "楼下烧烤摊油烟太大")
    csrf = await logged_in(client, redis, key_prefix, "viewer")
    before = await redis.get(f"{key_prefix}ticket:{ticket.number}")
    resp = await client.post(f"/admin/tickets/{ticket.number}/act", data={"csrf": csrf, "action": "escalate"})
    assert resp.status == 403
    assert "没有权限" in await resp.text()
    assert await redis.get(f"{key_prefix}ticket:{ticket.number}") == before


async def test_missing_csrf_on_an_action_changes_nothing(client, redis, key_prefix, clock):
    ticket = await report(client, clock, "楼下烧烤摊油烟太大")
    await logged_in(client, redis, key_prefix, "dispatcher")
    before = await redis.get(f"{key_prefix}ticket:{ticket.number}")
    resp = await client.post(f"/admin/tickets/{ticket.number}/act", data={"action": "escalate"})
    assert resp.status == 403
    assert await redis.get(f"{key_prefix}ticket:{ticket.number}") == before


async def test_mark_duplicate_notifies_both_reporters(client, redis, key_prefix, clock):
    first = await report(client, clock, "楼下烧烤摊油烟太大", reporter="a")
    second = await report(client, clock, "烧烤摊油烟熏人", category="noise", where="", reporter="b")
    csrf = await logged_in(client, redis, key_prefix, "dispatcher")
    outbox_before = await redis.xlen(f"{key_prefix}outbox")
    resp = await client.post(
        f"/admin/tickets/{second.number}/act",
        data={"csrf": csrf, "action": "mark_duplicate", "duplicate_of": first.number},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    store = services_of(client).tickets.store
    assert (await store.get(second.number)).flow.status == "duplicate"
    new = await redis.xrange(f"{key_prefix}outbox", min="-", max="+")
    merged = [f for _, f in new[outbox_before:] if f["template"] == "notify/duplicate_merged"]
    assert sorted((f["ticket"], f["audience"]) for f in merged) == sorted(
        [(first.number, "resident"), (second.number, "resident")]
    )
    assert any(second.number in e.text for e in (await store.get(first.number)).timeline)


async def test_mark_duplicate_of_an_unknown_ticket_is_refused(client, redis, key_prefix, clock):
    ticket = await report(client, clock, "楼下烧烤摊油烟太大")
    csrf = await logged_in(client, redis, key_prefix, "dispatcher")
    resp = await client.post(
        f"/admin/tickets/{ticket.number}/act",
        data={"csrf": csrf, "action": "mark_duplicate", "duplicate_of": "WG202611249999"},
    )
    assert resp.status == 400
    assert "没有流水号为 WG202611249999 的工单" in await resp.text()


async def test_reassign_and_note(client, redis, key_prefix, clock):
    ticket = await report(client, clock, "楼下烧烤摊油烟太大")
    csrf = await logged_in(client, redis, key_prefix, "dispatcher", username="zhao")
    url = f"/admin/tickets/{ticket.number}/act"
    resp = await client.post(url, data={"csrf": csrf, "action": "dispatch", "unit": "street_enforcement"})
    assert resp.status == 200 and "已执行「改派」" in await resp.text()
    resp = await client.post(url, data={"csrf": csrf, "action": "assign", "worker": "XuJun01"})
    assert resp.status == 200
    resp = await client.post(url, data={"csrf": csrf, "action": "note", "note": "已电话联系反映人"})
    assert "备注已添加" in await resp.text()
    moved = await services_of(client).tickets.store.get(ticket.number)
    assert (moved.flow.unit, moved.flow.level, moved.flow.assignee) == ("street_enforcement", "street", "XuJun01")
    assert moved.timeline[-1].kind == "note" and moved.timeline[-1].actor == "dispatcher:zhao"
    resp = await client.post(url, data={"csrf": csrf, "action": "assign", "worker": ""})
    assert resp.status == 400 and "需要填写：处理人" in await resp.text()


async def test_resolved_ticket_closed_then_reopened_and_a_prank_invalidated(client, redis, key_prefix, clock):
    done = await report(client, clock, "楼下烧烤摊油烟太大")
    prank = await report(client, clock, "测试测试", category="other", where="")
    await event(client, clock, done.number, "accept", "worker")
    await event(client, clock, done.number, "resolve", "worker", note="已处理")
    csrf = await logged_in(client, redis, key_prefix, "dispatcher")
    store = services_of(client).tickets.store
    for number, action, status in (
        (done.number, "close", "closed"),
        (done.number, "reopen", "reopened"),
        (prank.number, "invalidate", "invalid"),
    ):
        resp = await client.post(f"/admin/tickets/{number}/act", data={"csrf": csrf, "action": action})
        assert resp.status == 200, await resp.text()
        assert (await store.get(number)).flow.status == status


async def test_unroutable_tickets_are_listed_on_the_directory_page(client, redis, key_prefix, clock):
    routed = await report(client, clock, "楼下烧烤摊油烟太大")
    lost = await report(client, clock, "路灯坏了", category="public_facilities", where="")
    await logged_in(client, redis, key_prefix, "viewer")
    html = await (await client.get("/admin/directory")).text()
    unroutable = html[html.index('id="unroutable"'):]
    assert lost.number in unroutable and routed.number not in unroutable
    assert "138****0000" in html and "13800000000" not in html  # workers' phones masked for a viewer
