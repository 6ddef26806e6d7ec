"""The WeCom app callback for grid workers over HTTP, with the published WeCom vectors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from wechatpy.enterprise.crypto import WeChatCrypto as WechatpyWorkCrypto

from integrations.base import IncomingMessage, Reply
from integrations.wechat.callback import Deduplicator
from integrations.wechat.work import WecomCallbackConfig, WecomChannel
from integrations.wechat.xmlmsg import parse_fields
from tests.fakes.wechat_api import CallbackRequest, CallbackSigner, RecordingSender, message_xml

VECTORS = json.loads((Path(__file__).parents[3] / "shared/data/wechat/vectors.json").read_text())
NAMES = ["wecom_official_doc", "wecom_weworkapi_python_sample"]
CORP = VECTORS["wecom_weworkapi_python_sample"]

ClientFactory = Callable[[web.Application], Awaitable[TestClient]]


class Worker:
    def __init__(self, client: TestClient, calls: list[IncomingMessage], signer: CallbackSigner) -> None:
        self.client, self.calls, self.signer = client, calls, signer

    async def send(self, req: CallbackRequest) -> tuple[int, bytes, str]:
        resp = await self.client.request(req.method, req.url, data=req.body)
        return resp.status, await resp.read(), resp.content_type


async def worker_app(
    aiohttp_client: ClientFactory, dedup: Deduplicator, sender: RecordingSender, vector: dict[str, str],
    delay: float = 0.0,
) -> Worker:
    calls: list[IncomingMessage] = []

    async def handler(msg: IncomingMessage) -> list[Reply]:
        calls.append(msg)
        await asyncio.sleep(delay)
        return [Reply(msg.user_id, f"收到：{msg.text}")]

    config = WecomCallbackConfig(vector["token"], vector["encoding_aes_key"], vector["receive_id"], max_clock_skew=0)
    app = web.Application()
    app.add_routes(WecomChannel(config, handler, dedup, sender).routes())
    signer = CallbackSigner(vector["token"], vector["receive_id"], vector["encoding_aes_key"], path="/wechat/work")
    return Worker(await aiohttp_client(app), calls, signer)


@pytest.mark.parametrize("name", NAMES)
async def test_url_verification_vectors_answer_exactly_the_decrypted_echostr(
    aiohttp_client: ClientFactory, dedup: Deduplicator, sender: RecordingSender, name: str
) -> None:
    v = VECTORS[name]
    u = v["url_verification"]
    worker = await worker_app(aiohttp_client, dedup, sender, v)
    query = tuple((k, u[k]) for k in ("msg_signature", "timestamp", "nonce", "echostr"))
    started = time.perf_counter()
    status, body, content_type = await worker.send(CallbackRequest("GET", "/wechat/work", query))
    assert time.perf_counter() - started < 0.5  # WeCom gives 1 s
    assert (status, body, content_type) == (200, u["expected_plain"].encode(), "text/plain")


@pytest.mark.parametrize("name", NAMES)
async def test_message_vectors_reach_the_handler_as_wecom_messages(
    aiohttp_client: ClientFactory, dedup: Deduplicator, sender: RecordingSender, name: str
) -> None:
    v = VECTORS[name]
    m = v["message"]
    worker = await worker_app(aiohttp_client, dedup, sender, v)
    agent = m["expected"]["AgentID"]
    body = message_xml(("ToUserName", v["receive_id"]), ("AgentID", agent), ("Encrypt", m["encrypt"]))
    query = (("msg_signature", m["msg_signature"]), ("timestamp", m["timestamp"]), ("nonce", m["nonce"]))
    status, reply, _ = await worker.send(CallbackRequest("POST", "/wechat/work", query, body.encode()))
    assert status == 200
    [msg] = worker.calls
    assert (msg.channel, msg.user_id, msg.text) == ("wecom", m["expected"]["FromUserName"], m["expected"]["Content"])
    assert msg.provider_message_id == m["expected"]["MsgId"]
    assert dict(msg.extra) == {"agent_id": m["expected"]["AgentID"]}
    # the passive reply is encrypted for this corp: wechatpy's enterprise crypto opens it
    fields = parse_fields(reply)
    plain = WechatpyWorkCrypto(v["token"], v["encoding_aes_key"], v["receive_id"]).decrypt_message(
        reply.decode(), fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"]
    )
    assert f"收到：{m['expected']['Content']}" in plain


async def test_wrong_signature_and_foreign_corp_are_403(
    aiohttp_client: ClientFactory, dedup: Deduplicator, sender: RecordingSender
) -> None:
    worker = await worker_app(aiohttp_client, dedup, sender, CORP)
    xml = message_xml(("ToUserName", CORP["receive_id"]), ("FromUserName", "zhangsan"), ("CreateTime", 1),
                      ("MsgType", "text"), ("Content", "接单"), ("MsgId", 1), ("AgentID", 1000002))
    forged = CallbackSigner("other-token", CORP["receive_id"], CORP["encoding_aes_key"], "/wechat/work")
    foreign = CallbackSigner(CORP["token"], "ww_other_corp", CORP["encoding_aes_key"], "/wechat/work")
    assert (await worker.send(forged.message(xml)))[0] == 403
    assert (await worker.send(foreign.message(xml)))[0] == 403
    assert (await worker.send(forged.verify_url_encrypted("123")))[0] == 403
    assert (await worker.send(foreign.verify_url_encrypted("123")))[0] == 403
    assert worker.calls == []


async def test_worker_retries_are_handled_once(
    aiohttp_client: ClientFactory, dedup: Deduplicator, sender: RecordingSender
) -> None:
    worker = await worker_app(aiohttp_client, dedup, sender, CORP, delay=0.2)
    xml = message_xml(("ToUserName", CORP["receive_id"]), ("FromUserName", "zhangsan"), ("CreateTime", 1),
                      ("MsgType", "text"), ("Content", "办结 已清理完毕"), ("MsgId", 77), ("AgentID", 1000002))
    answers = await asyncio.gather(*(worker.send(worker.signer.message(xml)) for _ in range(3)))
    assert len(worker.calls) == 1
    assert sorted(body == b"success" for _, body, _ in answers) == [False, True, True]


async def test_worker_photos_carry_their_media_id(
    aiohttp_client: ClientFactory, dedup: Deduplicator, sender: RecordingSender
) -> None:
    worker = await worker_app(aiohttp_client, dedup, sender, CORP)
    xml = message_xml(("ToUserName", CORP["receive_id"]), ("FromUserName", "zhangsan"), ("CreateTime", 2),
                      ("MsgType", "image"), ("PicUrl", "https://p"), ("MediaId", "wecom-media-1"), ("MsgId", 78),
                      ("AgentID", 1000002))
    assert (await worker.send(worker.signer.message(xml)))[0] == 200
    [msg] = worker.calls
    assert (msg.kind, msg.media_ids) == ("image", ("wecom-media-1",))


async def test_enter_agent_event_and_bad_input(
    aiohttp_client: ClientFactory, dedup: Deduplicator, sender: RecordingSender
) -> None:
    worker = await worker_app(aiohttp_client, dedup, sender, CORP)
    enter = message_xml(("ToUserName", CORP["receive_id"]), ("FromUserName", "zhangsan"), ("CreateTime", 3),
                        ("MsgType", "event"), ("Event", "enter_agent"), ("EventKey", ""), ("AgentID", 1000002))
    assert (await worker.send(worker.signer.message(enter)))[0] == 200
    assert worker.calls[-1].kind == "enter_agent"
    dtd = '<!DOCTYPE xml [<!ENTITY x "y">]><xml><FromUserName>&x;</FromUserName></xml>'
    assert (await worker.send(worker.signer.message(dtd)))[0] == 400
    big = worker.signer.message(message_xml(("Content", "x" * 70_000)))
    assert (await worker.send(big))[0] == 413
    assert len(worker.calls) == 1
