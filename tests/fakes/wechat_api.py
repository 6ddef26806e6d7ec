"""A fake WeChat + WeCom API on loopback, and signed / encrypted callback requests.

`FakeWeChatApi` answers the endpoints the service calls (tokens, customer-service and template
messages, WeCom app messages and text cards, group robots, media) like the real ones do,
records every message, and can be told to fail or to be slow. The `wechat_api` fixture starts
one on a free loopback port; point `api_base` at `wechat_api.base_url`.

`CallbackSigner` builds the requests WeChat would send to `/wechat/mp` or `/wechat/work`:
URL verification, plain-mode and safe-mode messages, and opens the passive replies.
`RecordingSender` (an `AsyncSender`) and `MemoryTokenStore` (a one-process `TokenStore`) stand
in for the app's Redis-backed parts.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler

from integrations.base import Reply
from integrations.wechat.api import MpApiConfig, RetryPolicy, WecomApiConfig
from integrations.wechat.crypto import CallbackCrypto, sha1_signature
from integrations.wechat.xmlmsg import parse_fields, parse_root

# ---------------------------------------------------------------- callback requests


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: bytes = b""

    @property
    def url(self) -> str:
        return f"{self.path}?{urlencode(self.query)}"


def message_xml(*fields: tuple[str, str | int]) -> str:
    """`<xml>` with one element per field: text in CDATA, integers bare (as WeChat sends them)."""
    parts = (f"<{k}>{v}</{k}>" if isinstance(v, int) else f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields)
    return "<xml>" + "".join(parts) + "</xml>"


def text_xml(user: str, content: str, msg_id: int, account: str = "gh_account", created: int | None = None) -> str:
    return message_xml(
        ("ToUserName", account), ("FromUserName", user), ("CreateTime", created or int(time.time())),
        ("MsgType", "text"), ("Content", content), ("MsgId", msg_id),
    )


def event_xml(user: str, event: str, key: str = "", account: str = "gh_account", created: int | None = None) -> str:
    return message_xml(
        ("ToUserName", account), ("FromUserName", user), ("CreateTime", created or int(time.time())),
        ("MsgType", "event"), ("Event", event), ("EventKey", key),
    )


class CallbackSigner:
    """Signs (and in safe mode encrypts) callbacks the way WeChat does, for one account."""

    def __init__(self, token: str, receive_id: str, encoding_aes_key: str = "", path: str = "/wechat/mp") -> None:
        self.token = token
        self.path = path
        self._crypto = CallbackCrypto(token, encoding_aes_key, receive_id) if encoding_aes_key else None

    @staticmethod
    def _stamp(timestamp: int | None, nonce: str | None) -> tuple[str, str]:
        return str(timestamp if timestamp is not None else int(time.time())), nonce or str(secrets.randbelow(10**9))

    def _need_crypto(self) -> CallbackCrypto:
        if self._crypto is None:
            raise ValueError("this signer has no EncodingAESKey")
        return self._crypto

    def verify_url_plain(self, echostr: str, timestamp: int | None = None, nonce: str | None = None) -> CallbackRequest:
        """Official account URL verification: `signature` over token, timestamp, nonce."""
        ts, nonce = self._stamp(timestamp, nonce)
        sig = sha1_signature(self.token, ts, nonce)
        return CallbackRequest("GET", self.path, (("signature", sig), ("timestamp", ts), ("nonce", nonce),
                                                  ("echostr", echostr)))

    def verify_url_encrypted(self, plain_echostr: str, timestamp: int | None = None,
                             nonce: str | None = None) -> CallbackRequest:
        """WeCom URL verification: an encrypted echostr and its `msg_signature`."""
        ts, nonce = self._stamp(timestamp, nonce)
        echostr, sig = self._need_crypto().encrypt(plain_echostr.encode(), ts, nonce)
        return CallbackRequest("GET", self.path, (("msg_signature", sig), ("timestamp", ts), ("nonce", nonce),
                                                  ("echostr", echostr)))

    def message(self, xml: str, safe: bool = True, timestamp: int | None = None,
                nonce: str | None = None) -> CallbackRequest:
        """A POSTed message: safe mode (WeCom always) or plain mode (official account only)."""
        ts, nonce = self._stamp(timestamp, nonce)
        plain_sig = sha1_signature(self.token, ts, nonce)
        if not safe:
            return CallbackRequest("POST", self.path, (("signature", plain_sig), ("timestamp", ts),
                                                       ("nonce", nonce), ("openid", "o")), xml.encode())
        encrypted, sig = self._need_crypto().encrypt(xml.encode(), ts, nonce)
        body = message_xml(("ToUserName", "gh_account"), ("Encrypt", encrypted)).encode()
        return CallbackRequest("POST", self.path, (("signature", plain_sig), ("timestamp", ts), ("nonce", nonce),
                                                   ("encrypt_type", "aes"), ("msg_signature", sig)), body)

    def open_reply(self, body: bytes) -> dict[str, str]:
        """The fields of a passive reply; an encrypted one is signature-checked and decrypted."""
        fields = parse_fields(body)
        if "Encrypt" not in fields:
            return fields
        plain = self._need_crypto().decrypt(fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"],
                                            fields["Encrypt"])
        # every leaf, nested ones too: a group robot's reply keeps its text in <Text><Content>
        return {el.tag: el.text or "" for el in parse_root(plain).iter() if len(el) == 0}


# ---------------------------------------------------------------- stand-ins for the app's parts


class RecordingSender:
    """Records late replies; `wait_for(n)` returns once n have arrived."""

    def __init__(self) -> None:
        self.sent: list[Reply] = []
        self._arrived = asyncio.Condition()

    async def send(self, reply: Reply) -> None:
        async with self._arrived:
            self.sent.append(reply)
            self._arrived.notify_all()

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[Reply]:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.sent) >= n), timeout)
        return self.sent


class MemoryTokenStore:
    """The TokenStore protocol in one process (the app's is Redis); TTLs are recorded, not enforced."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.ttls: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, name: str) -> str | None:
        return self.tokens.get(name)

    async def set(self, name: str, token: str, ttl_seconds: int) -> None:
        self.tokens[name] = token
        self.ttls[name] = ttl_seconds

    def lock(self, name: str) -> AbstractAsyncContextManager[object]:
        return self._locks.setdefault(name, asyncio.Lock())


# ---------------------------------------------------------------- the fake API

Api = Literal["mp_custom", "mp_template", "wecom_app", "wecom_robot"]


@dataclass(frozen=True, slots=True)
class SentMessage:
    api: Api
    to: tuple[str, ...]  # openid, WeCom user ids, or () for a robot
    msgtype: str  # "text" | "textcard" | "markdown" | "template"
    content: str = ""  # text, markdown, or a text card's description
    title: str = ""
    url: str = ""
    btntxt: str = ""
    template_id: str = ""
    data: tuple[tuple[str, str], ...] = ()  # template data, key → value
    mentioned: tuple[str, ...] = ()
    robot_key: str = ""


@dataclass(slots=True)
class _Trouble:
    remaining: int
    path: str | None
    status: int = 200
    errcode: int | None = None
    delay: float = 0.0


TokenState = Literal["ok", "expired", "revoked"]


class FakeWeChatApi:
    def __init__(
        self,
        app_id: str = "wxfakeappid",
        app_secret: str = "mp-secret",
        corp_id: str = "wwfakecorp",
        corp_secret: str = "corp-secret",
        agent_id: int = 1000002,
        robot_keys: tuple[str, ...] = ("robot-key",),
        robot_per_minute: int = 20,
    ) -> None:
        self.app_id, self.app_secret = app_id, app_secret
        self.corp_id, self.corp_secret, self.agent_id = corp_id, corp_secret, agent_id
        self.robot_keys = set(robot_keys)
        self.robot_per_minute = robot_per_minute
        self.sent: list[SentMessage] = []
        self.calls: list[str] = []  # every request path, in order
        self.mp_token_fetches = 0
        self.wecom_token_fetches = 0
        self.media: dict[str, tuple[bytes, str]] = {}
        self._tokens: dict[str, TokenState] = {}
        self._serial = itertools.count(1)
        self._troubles: list[_Trouble] = []
        self._robot_times: dict[str, deque[float]] = {}
        self._server: TestServer | None = None
        self.app = web.Application(middlewares=[self._trouble_middleware])
        self.app.add_routes([
            web.get("/cgi-bin/token", self._mp_token),
            web.get("/cgi-bin/gettoken", self._wecom_token),
            web.post("/cgi-bin/message/custom/send", self._custom_send),
            web.post("/cgi-bin/message/template/send", self._template_send),
            web.post("/cgi-bin/message/send", self._wecom_send),
            web.get("/cgi-bin/media/get", self._media_get),
            web.post("/cgi-bin/webhook/send", self._robot_send),
        ])

    # ---- lifecycle and configuration helpers

    async def start(self) -> None:
        self._server = TestServer(self.app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.make_url("")).rstrip("/")

    def mp_config(self, retry: RetryPolicy | None = None) -> MpApiConfig:
        """Client configuration pointing at this fake, with quick retries."""
        return MpApiConfig(self.app_id, self.app_secret, api_base=self.base_url, retry=retry or FAST_RETRY)

    def wecom_config(self, retry: RetryPolicy | None = None) -> WecomApiConfig:
        return WecomApiConfig(self.corp_id, self.agent_id, self.corp_secret, api_base=self.base_url,
                              retry=retry or FAST_RETRY)

    # ---- test controls

    def add_media(self, media_id: str, data: bytes, content_type: str = "image/jpeg") -> None:
        self.media[media_id] = (data, content_type)

    def fail_next(self, n: int, *, status: int = 503, errcode: int | None = None, path: str | None = None) -> None:
        """The next `n` calls (to `path`, or any) answer HTTP `status`, or 200 with `errcode`."""
        self._troubles.append(_Trouble(n, path, 200 if errcode is not None else status, errcode))

    def slow_next(self, n: int, seconds: float, path: str | None = None) -> None:
        """The next `n` calls (to `path`, or any) are carried out but answer only after `seconds`."""
        self._troubles.append(_Trouble(n, path, delay=seconds))

    def expire_tokens(self) -> None:
        """Every issued token now gets 42001 (access_token expired)."""
        self._tokens = dict.fromkeys(self._tokens, "expired")

    def revoke_tokens(self) -> None:
        """Every issued token now gets 40001 (invalid credential), as after another fetch."""
        self._tokens = dict.fromkeys(self._tokens, "revoked")

    def sent_to(self, api: Api) -> list[SentMessage]:
        return [m for m in self.sent if m.api == api]

    # ---- server side

    @web.middleware
    async def _trouble_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.calls.append(request.path)
        for trouble in self._troubles:
            if trouble.remaining > 0 and trouble.path in (None, request.path):
                trouble.remaining -= 1
                if trouble.delay:  # the call is carried out; only the answer is late
                    response = await handler(request)
                    await asyncio.sleep(trouble.delay)
                    return response
                if trouble.errcode is not None:
                    return _err(trouble.errcode, "injected failure")
                return web.Response(status=trouble.status, text="injected failure")
        return await handler(request)

    def _issue(self, kind: str) -> web.Response:
        token = f"{kind}-token-{next(self._serial)}-{secrets.token_hex(4)}"
        self._tokens[token] = "ok"
        return web.json_response({"access_token": token, "expires_in": 7200})

    async def _mp_token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("grant_type") != "client_credential" or q.get("appid") != self.app_id:
            return _err(40013, "invalid appid")
        if q.get("secret") != self.app_secret:
            return _err(40125, "invalid appsecret")
        self.mp_token_fetches += 1
        return self._issue("mp")

    async def _wecom_token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("corpid") != self.corp_id:
            return _err(40013, "invalid corpid")
        if q.get("corpsecret") != self.corp_secret:
            return _err(40001, "invalid credential")
        self.wecom_token_fetches += 1
        return self._issue("wecom")

    def _token_problem(self, request: web.Request, kind: str) -> web.Response | None:
        token = request.query.get("access_token", "")
        if not token:
            return _err(41001, "access_token missing")
        state = self._tokens.get(token) if token.startswith(kind + "-") else None
        if state == "expired":
            return _err(42001, "access_token expired")
        if state != "ok":
            return _err(40001 if kind == "mp" else 40014, "invalid credential, access_token is invalid")
        return None

    async def _custom_send(self, request: web.Request) -> web.Response:
        if problem := self._token_problem(request, "mp"):
            return problem
        body = await request.json()
        if body.get("msgtype") != "text" or not body.get("touser"):
            return _err(44002, "empty post data")
        self.sent.append(SentMessage("mp_custom", (body["touser"],), "text", body["text"]["content"]))
        return _err(0, "ok")

    async def _template_send(self, request: web.Request) -> web.Response:
        if problem := self._token_problem(request, "mp"):
            return problem
        body = await request.json()
        if not body.get("template_id"):
            return _err(40037, "invalid template_id")
        data = tuple((k, v["value"]) for k, v in body.get("data", {}).items())
        self.sent.append(SentMessage("mp_template", (body["touser"],), "template", template_id=body["template_id"],
                                     url=body.get("url", ""), data=data))
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": next(self._serial)})

    async def _wecom_send(self, request: web.Request) -> web.Response:
        if problem := self._token_problem(request, "wecom"):
            return problem
        body = await request.json()
        if body.get("agentid") != self.agent_id:
            return _err(40056, "invalid agentid")
        to = tuple(u for u in str(body.get("touser", "")).split("|") if u)
        if not to:
            return _err(81013, "user & party & tag all invalid")
        kind = body.get("msgtype")
        if kind == "text":
            msg = SentMessage("wecom_app", to, "text", body["text"]["content"])
        elif kind == "textcard":
            card = body["textcard"]
            msg = SentMessage("wecom_app", to, "textcard", card["description"], title=card["title"],
                              url=card["url"], btntxt=card.get("btntxt", ""))
        else:
            return _err(40008, "invalid message type")
        self.sent.append(msg)
        return web.json_response({"errcode": 0, "errmsg": "ok", "invaliduser": "",
                                  "msgid": f"wecom-msg-{next(self._serial)}"})

    async def _media_get(self, request: web.Request) -> web.Response:
        kind = "mp" if request.query.get("access_token", "").startswith("mp-") else "wecom"
        if problem := self._token_problem(request, kind):
            return problem
        media = self.media.get(request.query.get("media_id", ""))
        if media is None:
            return _err(40007, "invalid media_id")
        return web.Response(body=media[0], content_type=media[1])

    async def _robot_send(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        if key not in self.robot_keys:
            return _err(93000, "invalid webhook url")
        times = self._robot_times.setdefault(key, deque())
        now = time.monotonic()
        while times and now - times[0] >= 60:
            times.popleft()
        if len(times) >= self.robot_per_minute:
            return _err(45009, "api freq out of limit")
        body = await request.json()
        kind = body.get("msgtype")
        if kind == "text":
            text = body["text"]
            msg = SentMessage("wecom_robot", (), "text", text["content"], robot_key=key,
                              mentioned=tuple(text.get("mentioned_list", ())))
        elif kind == "markdown":
            msg = SentMessage("wecom_robot", (), "markdown", body["markdown"]["content"], robot_key=key)
        else:
            return _err(40008, "invalid message type")
        times.append(now)
        self.sent.append(msg)
        return _err(0, "ok")


FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, timeout=2.0)


def _err(errcode: int, errmsg: str) -> web.Response:
    # WeChat answers errors with HTTP 200 and a JSON body, often labelled text/plain
    return web.Response(text=json.dumps({"errcode": errcode, "errmsg": errmsg}), content_type="text/plain")


@pytest.fixture
async def wechat_api() -> AsyncIterator[FakeWeChatApi]:
    fake = FakeWeChatApi()
    await fake.start()
    yield fake
    await fake.close()
