"""The outbound gateway client against the fake gateway on loopback: signing, retries, refusals."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from integrations.sms.client import OutboundSms, RetryPolicy, SmsGatewayClient, SmsRejected, SmsUnavailable
from integrations.sms.signing import Signer
from tests.fakes.sms_gateway import GATEWAY_SECRET, FakeSmsGateway

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, timeout=1.0)


def client(
    session: aiohttp.ClientSession, url: str, secret: str = GATEWAY_SECRET, policy: RetryPolicy = FAST
) -> SmsGatewayClient:
    return SmsGatewayClient(session, url, Signer(secret), sender="12345", policy=policy, rng=random.Random(1))


async def test_a_signed_sms_reaches_the_gateway(sms_gateway: FakeSmsGateway) -> None:
    async with aiohttp.ClientSession() as session:
        await client(session, sms_gateway.url).send(
            OutboundSms("m1:r0:s0", "13812345678", "工单号WG202611240001：已登记")
        )
    assert [(s.message_id, s.to, s.text, s.sender) for s in sms_gateway.sent] == [
        ("m1:r0:s0", "13812345678", "工单号WG202611240001：已登记", "12345")
    ]


async def test_a_busy_gateway_is_retried_until_it_accepts(sms_gateway: FakeSmsGateway) -> None:
    sms_gateway.fail_next = 2
    async with aiohttp.ClientSession() as session:
        await client(session, sms_gateway.url).send(OutboundSms("m2", "13812345678", "hi"))
    assert sms_gateway.requests == 3
    assert len(sms_gateway.sent) == 1


async def test_a_gateway_that_stays_busy_gives_up_after_the_tries(sms_gateway: FakeSmsGateway) -> None:
    sms_gateway.fail_next = 10
    async with aiohttp.ClientSession() as session:
        with pytest.raises(SmsUnavailable):
            await client(session, sms_gateway.url).send(OutboundSms("m3", "13812345678", "hi"))
    assert sms_gateway.requests == 3
    assert sms_gateway.sent == []


async def test_a_refusal_is_not_retried(sms_gateway: FakeSmsGateway) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(SmsRejected):
            await client(session, sms_gateway.url, secret="wrong").send(OutboundSms("m4", "13812345678", "hi"))
    assert sms_gateway.requests == 1


async def test_an_unreachable_gateway_is_unavailable() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(SmsUnavailable):
            await client(session, "http://127.0.0.1:9/send").send(OutboundSms("m5", "13812345678", "hi"))


async def test_a_slow_gateway_times_out_and_is_retried() -> None:
    calls = []

    async def slow(request: web.Request) -> web.Response:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(1)
        return web.json_response({"status": "queued"})

    app = web.Application()
    app.router.add_post("/send", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            impatient = client(session, str(server.make_url("/send")), policy=replace(FAST, timeout=0.2))
            await impatient.send(OutboundSms("m6", "13812345678", "x"))
    finally:
        await server.close()
    assert len(calls) == 2
