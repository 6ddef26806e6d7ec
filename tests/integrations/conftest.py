"""Fixtures for the WeChat / WeCom adapters and API clients: the fake WeChat API, a Redis
deduplicator (the app's), a recording sender and an in-memory token store."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from redis.asyncio import Redis

from bot.keys import Keys
from bot.wechat import RedisDeduplicator
from tests.fakes.wechat_api import MemoryTokenStore, RecordingSender, wechat_api  # noqa: F401  (a fixture)

TEST_REDIS_URL = os.environ.get("GRIDBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(TEST_REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def dedup(redis: Redis) -> AsyncIterator[RedisDeduplicator]:
    prefix = f"test-wechat:{uuid.uuid4().hex[:12]}:"
    yield RedisDeduplicator(redis, Keys(prefix))
    keys = [k async for k in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def token_store() -> MemoryTokenStore:
    return MemoryTokenStore()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
