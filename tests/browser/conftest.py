"""Browser tests: the real service on a free loopback port, Debian's Chromium driven by Playwright.

Chromium comes from Debian (`apt-get install chromium`, see scripts/setup.sh), never from
`playwright install`. Screenshots go to test-artifacts/browser/ (gitignored).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bot.app import SERVICES, Services, create_app
from bot.config import PROJECT_ROOT

CHROMIUM = os.environ.get("GRIDBOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


class LiveService:
    def __init__(self, url: str, services: Services) -> None:
        self.url = url
        self.services = services


@pytest.fixture
async def live(config, clock, nlu, redis) -> AsyncIterator[LiveService]:
    app = create_app(config, clock=clock, nlu=nlu)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield LiveService(f"http://{host}:{port}", app[SERVICES])
    finally:
        await runner.cleanup()


@pytest.fixture
async def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest):
    """shot(page, name): a full-page screenshot under test-artifacts/browser/<test>/."""
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)

    async def shot(page, name: str) -> Path:
        path = folder / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return shot
