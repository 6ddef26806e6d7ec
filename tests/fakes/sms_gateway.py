"""A fake SMS gateway on loopback: checks the HMAC signature, records every SMS it accepts.

It speaks the gateway format of `integrations/sms/client.py`, drops repeats of a `message_id`
like a real idempotent gateway, and can be told to fail the next N requests with 503. The
`sms_gateway` fixture starts one on a free port; point `sms.gateway_url` at `sms_gateway.url`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from integrations.sms.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, Signer

GATEWAY_SECRET = "gateway-secret-for-tests"


@dataclass(frozen=True, slots=True)
class SentSms:
    message_id: str
    to: str
    text: str
    sender: str


class FakeSmsGateway:
    def __init__(self, secret: str = GATEWAY_SECRET) -> None:
        self._signer = Signer(secret)
        self.sent: list[SentSms] = []
        self.requests = 0
        self.fail_next = 0
        self._changed = asyncio.Condition()
        self._server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("/send"))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/send", self._send)
        return app

    async def _send(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        try:
            self._signer.verify(
                request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER), body, time.time()
            )
        except SignatureError as exc:
            return web.json_response({"error": str(exc)}, status=403)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"error": "busy"}, status=503)
        data = json.loads(body)
        if not any(s.message_id == data["message_id"] for s in self.sent):
            async with self._changed:
                self.sent.append(SentSms(data["message_id"], data["to"], data["text"], data["sender"]))
                self._changed.notify_all()
        return web.json_response({"status": "queued"})

    def to(self, phone: str) -> list[str]:
        return [s.text for s in self.sent if s.to == phone]

    async def wait_for(self, count: int, phone: str | None = None, timeout: float = 5.0) -> list[str]:
        """The texts sent (to `phone`), once there are at least `count` of them."""

        def texts() -> list[str]:
            return [s.text for s in self.sent if phone is None or s.to == phone]

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(texts()) >= count), timeout)
        return texts()

    async def start(self) -> None:
        self._server = TestServer(self.app(), host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()


@pytest.fixture
async def sms_gateway() -> AsyncIterator[FakeSmsGateway]:
    gateway = FakeSmsGateway()
    await gateway.start()
    yield gateway
    await gateway.close()
