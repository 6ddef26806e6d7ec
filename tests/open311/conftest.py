"""An Open311 client's key, and a helper to file a request."""

from __future__ import annotations

import pytest

from bot.apikeys import ApiKeys
from bot.app import SERVICES


@pytest.fixture
async def api_key(client, clock) -> str:
    services = client.server.app[SERVICES]
    key, _ = await ApiKeys(services.redis, services.keys).create("街道随手拍", clock())
    return key
