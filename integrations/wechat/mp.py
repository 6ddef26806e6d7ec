"""The official account (公众号) callback: residents' messages and events at `/wechat/mp`.

GET verifies the URL (signature over token, timestamp, nonce → echo `echostr`). POST carries a
message in plain mode (signed URL, plain XML) or safe mode (`encrypt_type=aes`, `msg_signature`
over the `Encrypt` field too, passive replies encrypted). With an EncodingAESKey configured,
plain-mode POSTs are refused: their signature does not cover the body.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from wechatpy import parse_message

from integrations.base import MessageHandler
from integrations.wechat.callback import (
    MAX_BODY_BYTES,
    AsyncSender,
    Deduplicator,
    ReplyRunner,
    decode_callback,
    error_response,
    read_body,
)
from integrations.wechat.crypto import (
    CallbackCrypto,
    CallbackError,
    SignatureError,
    check_timestamp,
    verify_signature,
)
from integrations.wechat.xmlmsg import MalformedXmlError, parse_fields

CHANNEL = "wechat_mp"


@dataclass(frozen=True, slots=True)
class MpCallbackConfig:
    token: str
    app_id: str
    encoding_aes_key: str = ""  # empty: plain mode; set: safe mode, plain POSTs refused
    max_clock_skew: int = 300  # seconds; 0 switches replay protection off
    reply_budget_seconds: float = 3.0  # must stay well under WeChat's 5 s
    path: str = "/wechat/mp"
    max_body_bytes: int = MAX_BODY_BYTES

    def __post_init__(self) -> None:
        if not self.token or not self.app_id:
            raise ValueError("the official account callback needs a token and an app id")
        if not 0 < self.reply_budget_seconds < 5:
            raise ValueError("reply_budget_seconds must be between 0 and 5")


class WeChatMpChannel:
    """Official account callback adapter; `routes()` go on the app, `drain()` on shutdown."""

    name = CHANNEL

    def __init__(
        self,
        config: MpCallbackConfig,
        handler: MessageHandler,
        dedup: Deduplicator,
        sender: AsyncSender,
    ) -> None:
        self._config = config
        self._crypto = (
            CallbackCrypto(config.token, config.encoding_aes_key, config.app_id)
            if config.encoding_aes_key
            else None
        )
        self._runner = ReplyRunner(handler, dedup, sender, config.reply_budget_seconds)

    def routes(self) -> list[web.RouteDef]:
        return [web.get(self._config.path, self.verify_url), web.post(self._config.path, self.receive)]

    async def drain(self, timeout: float = 10.0) -> None:
        await self._runner.drain(timeout)

    async def verify_url(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            check_timestamp(q.get("timestamp", ""), self._config.max_clock_skew)
            verify_signature(q.get("signature", ""), self._config.token, q.get("timestamp", ""), q.get("nonce", ""))
        except CallbackError as exc:
            return error_response(request, exc)
        return web.Response(text=q.get("echostr", ""))

    async def receive(self, request: web.Request) -> web.StreamResponse:
        started = asyncio.get_running_loop().time()
        q = request.query
        timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
        safe = q.get("encrypt_type", "raw").lower() == "aes"
        try:
            body = await read_body(request, self._config.max_body_bytes)
            check_timestamp(timestamp, self._config.max_clock_skew)
            if safe:
                if self._crypto is None:
                    raise SignatureError("safe-mode callback but no EncodingAESKey configured")
                encrypted = parse_fields(body).get("Encrypt")
                if not encrypted:
                    raise MalformedXmlError("safe-mode body without Encrypt")
                plain = self._crypto.decrypt(q.get("msg_signature", ""), timestamp, nonce, encrypted)
            else:
                if self._crypto is not None:
                    raise SignatureError("plain-mode callback refused: safe mode is configured")
                verify_signature(q.get("signature", ""), self._config.token, timestamp, nonce)
                plain = body
            callback = decode_callback(parse_message, plain, parse_fields(plain), CHANNEL, self._config.app_id)
        except CallbackError as exc:
            return error_response(request, exc)
        return await self._runner.respond(request, callback, started, self._crypto if safe else None)
