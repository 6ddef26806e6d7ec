"""Shared fixtures: a real Redis (own database and key prefix per test), an injected clock,
the embedded NLU trained once per session, and the service under test over HTTP."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from bot.app import build_nlu, create_app
from bot.config import Config, load_config
from bot.metrics import Metrics
from flows import GridDirectory
from nlu.types import NluBackend

TEST_REDIS_URL = os.environ.get("GRIDBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TZ = ZoneInfo("Asia/Shanghai")


@dataclass
class Clock:
    """The time the service under test believes it is; tests move it, nobody sleeps."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    # a Tuesday afternoon, well inside working hours
    return Clock(datetime(2026, 11, 24, 10, 0, tzinfo=TZ))


@pytest.fixture
def key_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def config(tmp_path: Path, key_prefix: str) -> Config:
    env = {
        "GRIDBOT_REDIS__URL": TEST_REDIS_URL,
        "GRIDBOT_REDIS__KEY_PREFIX": key_prefix,
        "GRIDBOT_TEMPLATES__OVERRIDE_DIR": str(tmp_path / "templates"),
    }
    return load_config(env=env)


@pytest.fixture(scope="session")
def nlu() -> NluBackend:
    return build_nlu(load_config(env={}), Metrics())


@pytest.fixture
async def redis(key_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{key_prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def client(aiohttp_client, config: Config, clock: Clock, nlu: NluBackend, redis: Redis):
    return await aiohttp_client(create_app(config, clock=clock, nlu=nlu))


async def say(client, sender: str, text: str, message_id: str | None = None) -> list[str]:
    """One message through the Rasa-format REST channel; the bot's texts back."""
    body: dict[str, str] = {"sender": sender, "message": text}
    if message_id:
        body["message_id"] = message_id
    resp = await client.post("/webhooks/rest/webhook", json=body)
    assert resp.status == 200, await resp.text()
    replies = await resp.json()
    assert all(r["recipient_id"] == sender for r in replies)
    return [r["text"] for r in replies]


def without_staff(directory_text: str) -> str:
    """A grid directory's text with every `staff:` list taken out (as directories were before staff)."""
    ids = {w.wecom_user_id for a in GridDirectory.from_text(directory_text).areas() for w in a.staff}
    return "\n".join(line for line in directory_text.splitlines()
                     if "staff:" not in line and not any(i in line for i in ids))
