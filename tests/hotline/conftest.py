"""The app with SMS wired to the fake gateway, for the hotline console tests."""

from __future__ import annotations

import pytest

from bot.app import create_app
from tests.fakes.sms_gateway import sms_gateway  # noqa: F401  (the fixture)
from tests.sms.conftest import sms_config


@pytest.fixture
async def hotline_client(aiohttp_client, config, clock, nlu, redis, sms_gateway):  # noqa: F811
    return await aiohttp_client(create_app(sms_config(config, sms_gateway), clock=clock, nlu=nlu))
