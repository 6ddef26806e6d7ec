"""An operator takes a call in a real browser (Debian's headless Chromium): log in, type what the
caller says, accept the suggestion, file the ticket; the caller gets the number by SMS."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest

from bot.app import SERVICES
from bot.outbox import OUTBOX
from tests.admin.helpers import PASSWORD, make_user

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CALLER = "13912345678"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed (scripts/setup.sh)"),
]


@pytest.fixture
async def browser() -> AsyncIterator:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def test_an_operator_files_a_ticket_for_a_caller(hotline_client, redis, key_prefix, sms_gateway, browser):
    await make_user(redis, key_prefix, "zhao.operator", "dispatcher")
    base = str(hotline_client.server.make_url("/")).rstrip("/")
    page = await browser.new_page()
    page.set_default_timeout(10_000)

    await page.goto(f"{base}/admin/hotline/")
    assert "/admin/login" in page.url  # behind the console login
    await page.fill("input[name=username]", "zhao.operator")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/admin/hotline/")

    await page.fill("#phone", CALLER)
    await page.fill("#description", "幸福小区3栋楼下垃圾三天没人收了，臭得很")
    await page.click("#suggest-button")
    await page.wait_for_selector("#suggestion-body:not([hidden])")
    assert await page.inner_text("#suggest-category") == "环境卫生"
    assert await page.input_value("#category") == "sanitation"  # the suggestion fills the form
    assert await page.input_value("#address")  # the place the caller named
    await page.fill("#address", "幸福小区3栋")
    # the operator may correct: the colour follows the category, an emergency is always red
    await page.check("#emergency")
    assert await page.inner_text("#suggest-colour") == "红色"
    await page.uncheck("#emergency")
    assert await page.inner_text("#suggest-colour") not in {"", "—"}

    await page.click("#file-button")
    await page.wait_for_selector("#result:not([hidden])")
    number = await page.inner_text("#ticket-number")
    assert number.startswith("WG20261124")
    assert "短信" in await page.inner_text("#sms-status")

    services = hotline_client.server.app[SERVICES]
    ticket = await services.tickets.store.get(number)
    assert ticket is not None and (ticket.channel, ticket.phone) == ("hotline", CALLER)
    await hotline_client.server.app[OUTBOX].run_once()
    assert sms_gateway.to(CALLER)[0].startswith(f"工单号{number}")

    # the caller rings again: look the ticket up by phone and read its status aloud
    await page.fill("#lookup-phone", CALLER)
    await page.click("#lookup button[type=submit]")
    await page.wait_for_selector("#lookup-list li")
    assert number in await page.inner_text("#lookup-list")
