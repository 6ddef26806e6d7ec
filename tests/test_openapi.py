"""schemathesis against the running service, driven by the service's own /openapi.json.

The app runs on a loopback port in a thread of its own (schemathesis calls it synchronously),
with a Redis key prefix of its own that is deleted afterwards. Every documented operation gets
generated valid and invalid requests; the service must never answer 5xx, and every answer must
match the document (status code, content type, body schema).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from redis import Redis
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from bot.app import create_app
from bot.config import load_config
from tests.conftest import TEST_REDIS_URL

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def live_app(nlu) -> Iterator[str]:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    config = load_config(
        env={
            "GRIDBOT_REDIS__URL": TEST_REDIS_URL,
            "GRIDBOT_REDIS__KEY_PREFIX": prefix,
            "GRIDBOT_SMS__SIGNING_SECRET": uuid.uuid4().hex,
            "GRIDBOT_SMS__TENCENT_TOKEN": uuid.uuid4().hex,
        }
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(create_app(config, nlu=nlu))

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(runner.addresses[0][1])

    port = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=60)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        redis = Redis.from_url(TEST_REDIS_URL)
        keys = list(redis.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            redis.delete(*keys)
        redis.close()


@pytest.fixture(scope="module")
def api_schema(live_app: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live_app}/openapi.json")


def test_the_document_covers_every_machine_endpoint(api_schema) -> None:
    paths = set(api_schema.raw_schema["paths"])
    assert {
        "/webhooks/rest/webhook",
        "/sms/inbound",
        "/open311/v2/services.{format}",
        "/open311/v2/services/{service_code}.{format}",
        "/open311/v2/requests.{format}",
        "/open311/v2/requests/{service_request_id}.{format}",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= paths


def operations(api_schema: schemathesis.BaseSchema, mode: GenerationMode) -> list[schemathesis.APIOperation]:
    """Every operation; for invalid requests only those that take input (nothing to break otherwise)."""
    found = [result.ok() for result in api_schema.get_all_operations()]
    if mode == GenerationMode.NEGATIVE:
        found = [op for op in found if op.definition.raw.get("parameters") or op.definition.raw.get("requestBody")]
    return found


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_the_service_keeps_to_its_document(api_schema, live_app: str, mode: GenerationMode) -> None:
    # schemathesis' own pytest integration (from_fixture) does not run under pytest 9, so each
    # operation's strategy is driven by hypothesis here
    for operation in operations(api_schema, mode):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def keeps_to_the_document(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=live_app, checks=CHECKS)

        keeps_to_the_document()
