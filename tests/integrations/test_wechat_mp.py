"""The official account callback over HTTP: verification, plain and safe mode, the 5-second
rule, retries, message kinds and bad input."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from wechatpy.crypto import WeChatCrypto as WechatpyMpCrypto

from integrations.base import IncomingMessage, Location, Reply
from integrations.wechat.callback import Deduplicator
from integrations.wechat.mp import MpCallbackConfig, WeChatMpChannel
from integrations.wechat.xmlmsg import parse_fields
from tests.fakes.wechat_api import CallbackRequest, CallbackSigner, RecordingSender, event_xml, message_xml, text_xml

VECTORS = json.loads((Path(__file__).parents[3] / "shared/data/wechat/vectors.json").read_text())
OFFICIAL = VECTORS["official_account_wxbizmsgcrypt_sample"]
TOKEN, AES_KEY, APP_ID = OFFICIAL["token"], OFFICIAL["encoding_aes_key"], OFFICIAL["app_id"]

ClientFactory = Callable[[web.Application], Awaitable[TestClient]]


class Handler:
    """Records what it was given; answers `echo:<text>` (or `answer(msg)`) after `delay`."""

    def __init__(self, delay: float = 0.0, answer: Callable[[IncomingMessage], list[Reply]] | None = None) -> None:
        self.calls: list[IncomingMessage] = []
        self.delay = delay
        self.answer = answer or (lambda m: [Reply(m.user_id, f"echo:{m.text}")])

    async def __call__(self, msg: IncomingMessage) -> list[Reply]:
        self.calls.append(msg)
        await asyncio.sleep(self.delay)
        return self.answer(msg)


class Mp:
    """One adapter on a test server, with its handler, sender and signers."""

    def __init__(self, client: TestClient, channel: WeChatMpChannel, handler: Handler, sender: RecordingSender,
                 signer: CallbackSigner) -> None:
        self.client, self.channel, self.handler, self.sender, self.signer = client, channel, handler, sender, signer

    async def send(self, req: CallbackRequest) -> tuple[int, bytes]:
        resp = await self.client.request(req.method, req.url, data=req.body)
        return resp.status, await resp.read()


MakeMp = Callable[..., Awaitable["Mp"]]


@pytest.fixture
async def make_mp(
    aiohttp_client: ClientFactory, dedup: Deduplicator, sender: RecordingSender
) -> AsyncIterator[Callable[..., Awaitable[Mp]]]:
    channels: list[WeChatMpChannel] = []

    async def make(handler: Handler | None = None, safe: bool = True, **config: object) -> Mp:
        handler = handler or Handler()
        cfg = MpCallbackConfig(token=TOKEN, app_id=APP_ID, encoding_aes_key=AES_KEY if safe else "", **config)  # type: ignore[arg-type]
        channel = WeChatMpChannel(cfg, handler, dedup, sender)
        channels.append(channel)
        app = web.Application()
        app.add_routes(channel.routes())
        signer = CallbackSigner(TOKEN, APP_ID, AES_KEY if safe else "")
        return Mp(await aiohttp_client(app), channel, handler, sender, signer)

    yield make
    for channel in channels:
        await channel.drain(timeout=5)


# ---------------------------------------------------------------- verification and modes


async def test_url_verification_echoes_echostr_only_with_the_right_signature(make_mp: MakeMp) -> None:
    mp = await make_mp()
    assert await mp.send(mp.signer.verify_url_plain("5837397749785493823")) == (200, b"5837397749785493823")
    wrong = CallbackSigner("not-the-token", APP_ID).verify_url_plain("5837397749785493823")
    status, body = await mp.send(wrong)
    assert status == 403 and b"5837397749785493823" not in body


async def test_the_official_vector_posted_in_safe_mode_reaches_the_handler_and_the_reply_is_encrypted(
    make_mp: MakeMp,
) -> None:
    mp = await make_mp(max_clock_skew=0)  # the vector's timestamp is from 2014
    m = OFFICIAL["message"]
    body = message_xml(("ToUserName", "gh_10f6c3c3ac5a"), ("Encrypt", m["encrypt"]))
    query = (("timestamp", m["timestamp"]), ("nonce", m["nonce"]), ("encrypt_type", "aes"),
             ("msg_signature", m["msg_signature"]))
    req = CallbackRequest("POST", "/wechat/mp", query, body.encode())
    status, reply = await mp.send(req)
    assert status == 200
    [msg] = mp.handler.calls
    assert (msg.channel, msg.user_id, msg.kind) == ("wechat_mp", m["expected"]["FromUserName"], "text")
    assert msg.text == "abcdteT"
    assert msg.provider_message_id == m["expected"]["MsgId"]
    assert msg.received_at is not None and msg.received_at.year == 2014
    # decrypted by an independent implementation
    envelope = mp.signer.open_reply(reply)
    assert envelope["Content"] == "echo:abcdteT"
    assert envelope["ToUserName"] == m["expected"]["FromUserName"]
    assert envelope["FromUserName"] == "gh_10f6c3c3ac5a"


async def test_safe_mode_round_trip_reply_decrypts_with_wechatpy(make_mp: MakeMp) -> None:
    mp = await make_mp()
    status, reply = await mp.send(mp.signer.message(text_xml("o_resident", "路灯坏了", 1001)))
    assert status == 200
    assert b"echo" not in reply  # not in clear text
    fields = parse_fields(reply)
    plain = WechatpyMpCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message(
        reply.decode(), fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"]
    )
    assert "<Content><![CDATA[echo:路灯坏了]]></Content>" in plain


async def test_plain_mode_works_when_no_aes_key_is_configured(make_mp: MakeMp) -> None:
    mp = await make_mp(safe=False)
    status, reply = await mp.send(mp.signer.message(text_xml("o_resident", "你好", 1002), safe=False))
    assert status == 200
    assert mp.signer.open_reply(reply)["Content"] == "echo:你好"


async def test_plain_mode_posts_are_refused_once_safe_mode_is_configured(make_mp: MakeMp) -> None:
    mp = await make_mp()
    status, _ = await mp.send(mp.signer.message(text_xml("o_resident", "你好", 1003), safe=False))
    assert status == 403
    assert mp.handler.calls == []


async def test_a_wrong_signature_is_403_and_nothing_is_processed(make_mp: MakeMp) -> None:
    mp = await make_mp()
    forger = CallbackSigner("wrong-token", APP_ID, AES_KEY)
    assert (await mp.send(forger.message(text_xml("o_x", "hi", 1004))))[0] == 403
    plain = await make_mp(safe=False)
    forged_plain = CallbackSigner("wrong-token", APP_ID).message(text_xml("o_x", "hi", 1005), safe=False)
    assert (await plain.send(forged_plain))[0] == 403
    assert mp.handler.calls == [] and plain.handler.calls == []


async def test_a_payload_encrypted_for_another_app_id_is_403(make_mp: MakeMp) -> None:
    mp = await make_mp()
    other_app = CallbackSigner(TOKEN, "wx_another_app_id", AES_KEY)
    assert (await mp.send(other_app.message(text_xml("o_x", "hi", 1006))))[0] == 403
    assert mp.handler.calls == []


async def test_stale_timestamps_are_refused_when_replay_protection_is_on(make_mp: MakeMp) -> None:
    mp = await make_mp(max_clock_skew=300)
    stale = mp.signer.message(text_xml("o_x", "hi", 1007), timestamp=int(time.time()) - 3600)
    assert (await mp.send(stale))[0] == 403
    assert (await mp.send(mp.signer.message(text_xml("o_x", "hi", 1008))))[0] == 200
    assert [m.provider_message_id for m in mp.handler.calls] == ["1008"]


async def test_the_clock_skew_allows_as_much_in_the_past_as_in_the_future(make_mp: MakeMp) -> None:
    mp = await make_mp(max_clock_skew=300)
    now = int(time.time())
    for msg_id, stamp in ((1011, now - 299), (1012, now + 299)):
        assert (await mp.send(mp.signer.message(text_xml("o_x", "hi", msg_id), timestamp=stamp)))[0] == 200
    for msg_id, stamp in ((1013, now - 302), (1014, now + 302)):
        assert (await mp.send(mp.signer.message(text_xml("o_x", "hi", msg_id), timestamp=stamp)))[0] == 403
    assert [m.provider_message_id for m in mp.handler.calls] == ["1011", "1012"]


# ---------------------------------------------------------------- bad input


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o_x</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&d;</Content><MsgId>1</MsgId></xml>"""
ENTITY = """<!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/hostname">]>
<xml><FromUserName>o_x</FromUserName><MsgType>text</MsgType><Content>&e;</Content><MsgId>2</MsgId></xml>"""
DTD = """<!DOCTYPE xml [<!ELEMENT xml ANY>]><xml><FromUserName>o_x</FromUserName><MsgType>text</MsgType></xml>"""


@pytest.mark.parametrize(
    "xml",
    [BILLION_LAUGHS, ENTITY, DTD, "<xml><Content>broken", "<xml><MsgType>text</MsgType></xml>"],
    ids=["billion-laughs", "entity", "dtd", "unclosed", "no-sender"],
)
@pytest.mark.parametrize("safe", [True, False], ids=["safe", "plain"])
async def test_malformed_or_hostile_xml_is_400_and_nothing_is_processed(
    make_mp: MakeMp, xml: str, safe: bool
) -> None:
    mp = await make_mp(safe=safe)
    assert (await mp.send(mp.signer.message(xml, safe=safe)))[0] == 400
    assert mp.handler.calls == []


async def test_a_hostile_outer_envelope_is_400(make_mp: MakeMp) -> None:
    mp = await make_mp()
    req = mp.signer.message(text_xml("o_x", "hi", 1009))
    hostile = CallbackRequest(req.method, req.path, req.query, BILLION_LAUGHS.encode())
    assert (await mp.send(hostile))[0] == 400


@pytest.mark.parametrize("encoding", ["gbk", "x-unknown"])
async def test_an_envelope_declaring_an_odd_encoding_is_400_not_a_server_error(
    make_mp: MakeMp, encoding: str
) -> None:
    mp = await make_mp()
    req = mp.signer.message(text_xml("o_x", "hi", 1010))
    odd = f'<?xml version="1.0" encoding="{encoding}"?><xml><Encrypt>X</Encrypt></xml>'.encode()
    assert (await mp.send(CallbackRequest(req.method, req.path, req.query, odd)))[0] == 400
    assert mp.handler.calls == []


async def test_bodies_over_64_kb_are_413_by_header_and_by_actual_size(make_mp: MakeMp) -> None:
    mp = await make_mp(safe=False)
    req = mp.signer.message(text_xml("o_x", "很" * 30_000, 1010), safe=False)
    assert len(req.body) > 64 * 1024
    assert (await mp.send(req))[0] == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: only the read can tell
        for i in range(0, len(req.body), 4096):
            yield req.body[i : i + 4096]

    resp = await mp.client.post(req.url, data=chunks())
    assert resp.status == 413
    assert mp.handler.calls == []


# ---------------------------------------------------------------- the 5-second rule and retries


async def test_three_tries_of_one_msgid_are_handled_once_and_answered_once(make_mp: MakeMp) -> None:
    mp = await make_mp()
    xml = text_xml("o_resident", "垃圾没人清", 2001)
    first = await mp.send(mp.signer.message(xml))
    retries = [await mp.send(mp.signer.message(xml)) for _ in range(2)]
    assert len(mp.handler.calls) == 1
    assert mp.signer.open_reply(first[1])["Content"] == "echo:垃圾没人清"
    assert retries == [(200, b"success"), (200, b"success")]


async def test_retries_arriving_while_the_first_try_is_still_running_are_answered_success(
    make_mp: MakeMp,
) -> None:
    mp = await make_mp(Handler(delay=0.3))
    xml = text_xml("o_resident", "井盖丢了", 2002)
    results = await asyncio.gather(*(mp.send(mp.signer.message(xml)) for _ in range(3)))
    assert len(mp.handler.calls) == 1
    assert sorted(body == b"success" for _, body in results) == [False, True, True]
    assert mp.sender.sent == []  # answered passively, exactly once


async def test_a_slow_handler_gets_success_within_the_budget_and_the_answer_goes_through_the_sender(
    make_mp: MakeMp,
) -> None:
    mp = await make_mp(Handler(delay=0.6), reply_budget_seconds=0.2)
    started = time.perf_counter()
    status, body = await mp.send(mp.signer.message(text_xml("o_resident", "路面塌陷", 2003)))
    elapsed = time.perf_counter() - started
    assert (status, body) == (200, b"success")
    assert elapsed < 0.5
    [late] = await mp.sender.wait_for(1)
    assert late == Reply("o_resident", "echo:路面塌陷")
    # WeChat's retry of the same message after the success: not handled, not answered again
    assert (await mp.send(mp.signer.message(text_xml("o_resident", "路面塌陷", 2003))))[1] == b"success"
    await mp.channel.drain(timeout=2)
    assert len(mp.handler.calls) == 1 and len(mp.sender.sent) == 1


async def test_a_long_answer_is_cut_to_2048_bytes_and_the_rest_follows_through_the_sender(
    make_mp: MakeMp,
) -> None:
    long = "您的工单已受理。" * 300  # 7,200 bytes
    mp = await make_mp(Handler(answer=lambda m: [Reply(m.user_id, long), Reply(m.user_id, "second")]))
    _, body = await mp.send(mp.signer.message(text_xml("o_resident", "x", 2004)))
    passive = mp.signer.open_reply(body)["Content"]
    assert len(passive.encode()) <= 2048
    rest = await mp.sender.wait_for(4)
    assert passive + "".join(r.text for r in rest[:3]) == long
    assert rest[3].text == "second"
    assert all(len(r.text.encode()) <= 2048 for r in rest)


async def test_no_answer_is_success(make_mp: MakeMp) -> None:
    silent = await make_mp(Handler(answer=lambda m: []))
    assert (await silent.send(silent.signer.message(text_xml("o_a", "x", 2005)))) == (200, b"success")


async def test_a_failing_handler_is_503_and_wechats_retry_is_handled_not_dropped(make_mp: MakeMp) -> None:
    failures = [RuntimeError("redis went away")]

    def flaky(m: IncomingMessage) -> list[Reply]:
        if failures:
            raise failures.pop()
        return [Reply(m.user_id, "已收到")]

    mp = await make_mp(Handler(answer=flaky))
    request = mp.signer.message(text_xml("o_a", "x", 2006))
    assert (await mp.send(request))[0] == 503
    status, reply = await mp.send(request)  # WeChat's retry of the same MsgId
    assert status == 200 and mp.signer.open_reply(reply)["Content"] == "已收到"
    assert len(mp.handler.calls) == 2


async def test_a_deduplicator_outage_is_503_so_wechat_retries(
    aiohttp_client: ClientFactory, sender: RecordingSender
) -> None:
    class Down:
        async def first_time(self, key: str) -> bool:
            raise ConnectionError("redis down")

    handler = Handler()
    channel = WeChatMpChannel(MpCallbackConfig(TOKEN, APP_ID, AES_KEY), handler, Down(), sender)
    app = web.Application()
    app.add_routes(channel.routes())
    client = await aiohttp_client(app)
    req = CallbackSigner(TOKEN, APP_ID, AES_KEY).message(text_xml("o_a", "x", 2007))
    assert (await client.post(req.url, data=req.body)).status == 503
    assert handler.calls == []


# ---------------------------------------------------------------- message kinds


async def received(mp: Mp, xml: str) -> IncomingMessage:
    status, _ = await mp.send(mp.signer.message(xml))
    assert status == 200
    return mp.handler.calls[-1]


def base(user: str, msg_type: str, *fields: tuple[str, str | int]) -> str:
    return message_xml(("ToUserName", "gh_account"), ("FromUserName", user), ("CreateTime", int(time.time())),
                       ("MsgType", msg_type), *fields)


async def test_voice_with_recognition_arrives_as_text(make_mp: MakeMp) -> None:
    mp = await make_mp()
    msg = await received(mp, base("o_v", "voice", ("MediaId", "media-v1"), ("Format", "amr"),
                                  ("Recognition", "小区门口路灯不亮"), ("MsgId", 3001)))
    assert (msg.kind, msg.text, msg.media_ids) == ("text", "小区门口路灯不亮", ())
    assert ("voice_media_id", "media-v1") in msg.extra  # kept with the message, not taken for a photo


async def test_voice_without_recognition_is_kind_voice(make_mp: MakeMp) -> None:
    mp = await make_mp()
    msg = await received(mp, base("o_v", "voice", ("MediaId", "media-v2"), ("Format", "amr"), ("MsgId", 3002)))
    assert (msg.kind, msg.text, msg.media_ids) == ("voice", "", ())
    assert ("voice_media_id", "media-v2") in msg.extra


async def test_image_carries_its_media_id(make_mp: MakeMp) -> None:
    mp = await make_mp()
    msg = await received(mp, base("o_i", "image", ("PicUrl", "http://mmbiz/x.jpg"), ("MediaId", "media-i1"),
                                  ("MsgId", 3003)))
    assert (msg.kind, msg.media_ids, msg.provider_message_id) == ("image", ("media-i1",), "3003")


async def test_location_carries_coordinates_and_label(make_mp: MakeMp) -> None:
    mp = await make_mp()
    msg = await received(mp, base("o_l", "location", ("Location_X", "29.718"), ("Location_Y", "106.631"),
                                  ("Scale", "15"), ("Label", "重庆市渝北区双凤桥街道"), ("MsgId", 3004)))
    assert msg.kind == "location"
    assert msg.location == Location(lat=29.718, lon=106.631, label="重庆市渝北区双凤桥街道")


@pytest.mark.parametrize(("lat", "lon"), [("north", "106.6"), ("nan", "106.6"), ("29.7", "inf"), ("95", "106.6")])
async def test_bad_coordinates_are_400(make_mp: MakeMp, lat: str, lon: str) -> None:
    mp = await make_mp()
    xml = base("o_l", "location", ("Location_X", lat), ("Location_Y", lon), ("MsgId", 3005))
    assert (await mp.send(mp.signer.message(xml)))[0] == 400
    assert mp.handler.calls == []


@pytest.mark.parametrize(
    ("event", "key", "kind", "event_key"),
    [
        ("subscribe", "", "subscribe", ""),
        ("subscribe", "qrscene_grid-0501", "subscribe", "grid-0501"),
        ("unsubscribe", "", "unsubscribe", ""),
        ("SCAN", "grid-0501", "scan", "grid-0501"),
        ("CLICK", "MY_TICKETS", "click", "MY_TICKETS"),
        ("VIEW", "https://example.org/tickets", "view", "https://example.org/tickets"),
    ],
)
async def test_events_become_kinds(
    make_mp: MakeMp, event: str, key: str, kind: str, event_key: str
) -> None:
    mp = await make_mp()
    msg = await received(mp, event_xml("o_e", event, key))
    assert (msg.kind, msg.event_key, msg.text) == (kind, event_key, "")
    assert msg.provider_message_id is not None and msg.provider_message_id.startswith("o_e:")


async def test_a_retried_event_is_handled_once(make_mp: MakeMp) -> None:
    mp = await make_mp()
    xml = event_xml("o_e", "CLICK", "REPORT", created=1_800_000_000)
    answers = [(await mp.send(mp.signer.message(xml)))[1] for _ in range(3)]
    assert len(mp.handler.calls) == 1
    assert answers[1:] == [b"success", b"success"]
    # another button clicked by the same user in the same second is not a retry
    await mp.send(mp.signer.message(event_xml("o_e", "CLICK", "STATUS", created=1_800_000_000)))
    assert [m.event_key for m in mp.handler.calls] == ["REPORT", "STATUS"]


async def test_a_location_report_event_carries_the_position(make_mp: MakeMp) -> None:
    mp = await make_mp()
    msg = await received(mp, base("o_r", "event", ("Event", "LOCATION"), ("Latitude", "29.7"),
                                  ("Longitude", "106.6"), ("Precision", "30")))
    assert msg.kind == "location_report"
    assert msg.location == Location(lat=29.7, lon=106.6)


@pytest.mark.parametrize(
    ("xml", "msg_type", "event"),
    [
        (base("o_u", "video", ("MediaId", "m"), ("ThumbMediaId", "t"), ("MsgId", 3101)), "video", ""),
        (base("o_u", "link", ("Title", "t"), ("Url", "https://x"), ("MsgId", 3102)), "link", ""),
        (base("o_u", "event", ("Event", "TEMPLATESENDJOBFINISH"), ("MsgID", 3103)), "event", "TEMPLATESENDJOBFINISH"),
        (base("o_u", "brand_new_type", ("MsgId", 3104)), "brand_new_type", ""),
    ],
    ids=["video", "link", "unknown-event", "unknown-type"],
)
async def test_unknown_types_arrive_as_unsupported(
    make_mp: MakeMp, xml: str, msg_type: str, event: str
) -> None:
    mp = await make_mp()
    msg = await received(mp, xml)
    assert msg.kind == "unsupported"
    assert dict(msg.extra) == {"msg_type": msg_type, "event": event}
