"""An app with the SMS channel configured against the fake gateway, and helpers to text it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime

import pytest
from aiohttp.test_utils import TestClient

from bot.app import SERVICES, Services, create_app
from bot.config import Config
from bot.sms import SMS
from flows import Event
from integrations.sms.signing import Signer
from tests.fakes.sms_gateway import GATEWAY_SECRET, FakeSmsGateway, sms_gateway  # noqa: F401  (the fixture)

SIGNING_SECRET = "inbound-secret-for-tests"
TENCENT_TOKEN = "tencent-token-for-tests"


def sms_config(config: Config, gateway: FakeSmsGateway) -> Config:
    sms = dataclasses.replace(
        config.sms,
        signing_secret=SIGNING_SECRET,
        tencent_token=TENCENT_TOKEN,
        gateway_url=gateway.url,
        gateway_secret=GATEWAY_SECRET,
        retry_delay_seconds=0.01,
    )
    # the outbox worker runs when a test says so (outbox.run_once), never behind its back
    return config.replace(sms=sms, outbox=dataclasses.replace(config.outbox, interval_seconds=0))


@pytest.fixture
async def sms_client(aiohttp_client, config, clock, nlu, redis, sms_gateway):  # noqa: F811
    return await aiohttp_client(create_app(sms_config(config, sms_gateway), clock=clock, nlu=nlu))


def services_of(client: TestClient) -> Services:
    return client.server.app[SERVICES]


class Texter:
    """A resident's phone: texts the unified number through the webhook, reads the SMS that come back."""

    def __init__(self, client: TestClient, gateway: FakeSmsGateway, phone: str) -> None:
        self.client = client
        self.gateway = gateway
        self.phone = phone
        self._count = 0

    def now(self) -> datetime:
        return services_of(self.client).clock()

    async def post(self, text: str, message_id: str | None = None) -> int:
        self._count += 1
        body = json.dumps(
            {"message_id": message_id or f"{self.phone}-{self._count}", "from": self.phone, "text": text},
            ensure_ascii=False,
        ).encode()
        headers = Signer(SIGNING_SECRET).headers(int(self.now().timestamp()), body)
        resp = await self.client.post(
            "/sms/inbound", data=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert resp.status == 200, await resp.text()
        return resp.status

    async def send(self, text: str, message_id: str | None = None) -> list[str]:
        """Text the number; the SMS this message caused (waits for at least one)."""
        before = len(self.gateway.to(self.phone))
        await self.post(text, message_id)
        await self.gateway.wait_for(before + 1, phone=self.phone)
        await self.client.server.app[SMS].drain()
        return self.gateway.to(self.phone)[before:]


async def report(texter: Texter, words: Sequence[str] = ("幸福小区3栋楼下垃圾三天没人收了，臭得很",)) -> str:
    """Report a problem by SMS and answer the bot's questions until a ticket number comes back."""
    replies = []
    for text in words:
        replies = await texter.send(text)
    for _ in range(5):
        last = replies[-1]
        if last.startswith("工单号"):
            return last[3:17]
        if "序号" in last:
            replies = await texter.send("1")
        elif "地点" in last:
            replies = await texter.send("幸福小区3栋")
        elif "确认" in last:
            replies = await texter.send("确认")
        else:
            raise AssertionError(f"unexpected SMS: {last}")
    raise AssertionError("no ticket number after five SMS")


async def resolve(services: Services, number: str, note: str = "垃圾已清运") -> None:
    """What the grid worker's side does, through the flow: dispatch if needed, accept, resolve."""
    ticket = await services.tickets.store.get(number)
    assert ticket is not None
    now = services.clock()
    if ticket.status in {"received", "returned"}:
        await services.tickets.act(number, Event(kind="dispatch", actor="dispatcher", at=now, data=()))
    await services.tickets.act(number, Event(kind="accept", actor="worker", at=now, data=()))
    await services.tickets.act(number, Event(kind="resolve", actor="worker", at=now, data=(("note", note),)))
