"""A day at the linkage centre in a real browser: log in, dashboard, queue filter, escalate, edit a flow."""

from __future__ import annotations

from bot.admin.auth import Users
from bot.ticketing import ReportDraft
from flows import Event
from tests.admin.helpers import PASSWORD


async def _tickets(live, clock):
    tickets = live.services.tickets
    noisy = await tickets.open("rest", "r1", ReportDraft("楼下烧烤摊油烟太大", "noise", "金桥小区"), clock())
    rubbish = await tickets.open("rest", "r2", ReportDraft("垃圾桶满了没人清运", "sanitation", "龙湖花园"), clock())
    lamp = await tickets.open("rest", "r3", ReportDraft("路灯坏了", "public_facilities", ""), clock())
    clock.advance(minutes=20)
    await tickets.act(noisy.number, Event("accept", "worker", clock(), by="ZhangFang00"))
    return noisy, rubbish, lamp


async def _log_in(page, live, username: str) -> None:
    await page.goto(f"{live.url}/admin/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{live.url}/admin/")


async def test_dispatcher_day(live, browser, shots, clock):
    noisy, rubbish, _ = await _tickets(live, clock)
    users = Users(live.services.redis, live.services.keys)
    await users.create("zhao", PASSWORD, "dispatcher", clock().isoformat())
    page = await browser.new_page(viewport={"width": 1280, "height": 900})

    await page.goto(f"{live.url}/admin/login")
    await page.fill("#username", "zhao")
    await page.fill("#password", "wrong password")
    await page.click("button[type=submit]")
    assert "用户名或密码错误" in await page.inner_text("[role=alert]")
    await shots(page, "01-wrong-password")

    await _log_in(page, live, "zhao")
    await page.wait_for_selector("body[data-charts=ready]")
    assert await page.inner_text("#fig-open") == "3"
    await shots(page, "02-dashboard")

    await page.click("text=工单队列")
    await page.select_option("#f-status", "accepted")
    await page.click("#queue-filters button[type=submit]")
    await page.wait_for_url("**/admin/tickets?**status=accepted**")
    rows = await page.locator("#queue tbody tr").all_inner_texts()
    assert len(rows) == 1 and noisy.number in rows[0]
    await shots(page, "03-queue-filtered")

    await page.goto(f"{live.url}/admin/tickets/{rubbish.number}")
    await page.fill("form[data-action=escalate] input[name=note]", "需街道执法队处理")
    await page.click("form[data-action=escalate] button[type=submit]")
    await page.wait_for_url(f"**/admin/tickets/{rubbish.number}?done=escalate")
    assert await page.inner_text("#ticket-status") == "已上报"
    assert "街道" in await page.inner_text("#ticket-level")
    assert "需街道执法队处理" in await page.inner_text("#timeline")
    await shots(page, "04-escalated")

    await page.click("form[data-action=close] button[type=submit]")
    assert "流程不允许此操作" in await page.inner_text("#action-error")
    await shots(page, "05-refused")

    await page.set_viewport_size({"width": 390, "height": 844})  # a phone
    for path, name in (("/admin/tickets", "06-queue-phone"), ("/admin/", "07-dashboard-phone"),
                       (f"/admin/tickets/{noisy.number}", "08-ticket-phone")):
        await page.goto(f"{live.url}{path}")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, f"{path} scrolls sideways on a phone ({width}px)"
        await shots(page, name)
    await page.goto(f"{live.url}/admin/tickets")
    assert await page.locator("#queue tbody tr").count() == 3


async def test_admin_edits_a_flow(live, browser, shots, clock):
    users = Users(live.services.redis, live.services.keys)
    await users.create("li.ming", PASSWORD, "admin", clock().isoformat())
    old_version = live.services.flows.flow.version
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await _log_in(page, live, "li.ming")

    await page.click("text=流程规则")
    text = await page.input_value("#flow-text")
    broken = text.replace("  greening: {colour: yellow}", "  greening: {colour: purple}")
    line = broken.splitlines().index("  greening: {colour: purple}") + 1
    await page.fill("#flow-text", broken)
    await page.click("button[value=check]")
    problems = await page.inner_text("#problems")
    assert f"第 {line} 行" in problems and "purple" in problems
    assert await page.inner_text("#gutter span.bad") == str(line)
    await shots(page, "01-flow-error")

    await page.click(f"#problems [data-line='{line}']")  # jumps to the line
    fixed = (await page.input_value("#flow-text")).replace("{colour: purple}", "{colour: orange}")
    await page.fill("#flow-text", fixed)
    await page.click("button[value=diff]")
    assert "+  greening: {colour: orange}" in await page.inner_text("#diff")
    await shots(page, "02-flow-diff")

    await page.click("button#apply")
    assert "已应用新版本" in await page.inner_text("#flow-message")
    assert live.services.flows.flow.version != old_version
    assert live.services.flows.flow.category_rule("greening").colour == "orange"
    assert await page.inner_text("#running-version") == live.services.flows.flow.version
    await shots(page, "03-flow-applied")
