"""The WeCom group robot's callback (群机器人回调) at `/wechat/robot`: how a grid's work group
reaches the bot.

WeCom posts here when someone @-mentions the robot in a group, or writes to it in a one-to-one
chat. The scheme is the WeCom app's (msg_signature, AES, 1 s URL verification) with an empty
receive id, and the decrypted XML nests the sender: `<From><UserId>`, plus `<ChatId>`,
`<ChatType>` (single / group / blackboard…) and `<WebhookUrl>` (the robot's own push address).

A group message becomes `IncomingMessage(channel="wecom", in_group=True, group_id=<ChatId>)`:
the same channel as the WeCom app, so a report started in the group goes on in the person's
private chat with the app. A passive reply goes back to the chat the message came from; the
handler must address anything personal as a private reply (`Reply.private`), which is never
passive here and leaves through the `AsyncSender`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit
from xml.etree.ElementTree import Element

from aiohttp import web

from integrations.base import IncomingMessage, MessageHandler, MessageKind
from integrations.wechat.callback import (
    MAX_BODY_BYTES,
    AsyncSender,
    Callback,
    Deduplicator,
    ReplyRunner,
    error_response,
    read_body,
)
from integrations.wechat.crypto import CallbackCrypto, CallbackError, check_timestamp
from integrations.wechat.xmlmsg import MalformedXmlError, parse_fields, parse_root, robot_text_reply_xml

CHANNEL = "wecom"
ROBOT_KEY = "robot_key"  # extra: the key of the robot's webhook, which identifies the robot
CHAT_TYPE = "chat_type"  # extra: single, group, blackboard or blackboard_reply
# add_to_chat / delete_from_chat need no answer: they arrive as "unsupported" and go unanswered
_EVENT_KINDS: dict[str, MessageKind] = {"enter_chat": "enter_agent"}


@dataclass(frozen=True, slots=True)
class RobotCallbackConfig:
    token: str
    encoding_aes_key: str
    max_clock_skew: int = 300  # seconds; 0 switches replay protection off
    reply_budget_seconds: float = 3.0
    path: str = "/wechat/robot"
    max_body_bytes: int = MAX_BODY_BYTES

    def __post_init__(self) -> None:
        if not self.token or not self.encoding_aes_key:
            raise ValueError("the group robot callback needs a token and an EncodingAESKey")
        if not 0 < self.reply_budget_seconds < 5:
            raise ValueError("reply_budget_seconds must be between 0 and 5")


def _robot_key(webhook_url: str) -> str:
    return parse_qs(urlsplit(webhook_url).query).get("key", [""])[0]


def _mixed_text(root: Element) -> str:
    """The text items of a 图文混排 message, in order (its pictures cannot be fetched)."""
    return "\n".join(
        (item.findtext("Text/Content") or "").strip()
        for item in root.iterfind("MixedMessage/MsgItem")
        if item.findtext("MsgType") == "text"
    ).strip()


def decode_robot_callback(plain: bytes, received_at: datetime) -> Callback:
    """A decrypted robot callback body → `Callback` (the dedup key is the robot's MsgId)."""
    root = parse_root(plain)
    user = (root.findtext("From/UserId") or "").strip()
    msg_id = (root.findtext("MsgId") or "").strip()
    if not user or not msg_id:
        raise MalformedXmlError("robot callback without From/UserId or MsgId")
    chat_type = (root.findtext("ChatType") or "single").strip()
    chat_id = (root.findtext("ChatId") or "").strip()
    msg_type = (root.findtext("MsgType") or "").strip()
    base = IncomingMessage(
        channel=CHANNEL,
        user_id=user,
        provider_message_id=f"robot:{msg_id}",
        received_at=received_at,
        in_group=chat_type != "single",
        group_id=chat_id or None,
        extra=((ROBOT_KEY, _robot_key(root.findtext("WebhookUrl") or "")), (CHAT_TYPE, chat_type)),
    )
    event = (root.findtext("Event/EventType") or "").strip()
    if msg_type == "text":
        message = replace(base, text=root.findtext("Text/Content") or "")
    elif msg_type == "mixed":
        message = replace(base, text=_mixed_text(root))
    elif msg_type == "event" and event in _EVENT_KINDS:
        message = replace(base, kind=_EVENT_KINDS[event])
    else:
        message = replace(base, kind="unsupported", extra=(*base.extra, ("msg_type", msg_type), ("event", event)))
    return Callback(message=message, dedup_key=f"{CHANNEL}:robot:{msg_id}", account="")


def _passive(callback: Callback, text: str) -> str:
    return robot_text_reply_xml(text)


class WecomRobotChannel:
    """Group robot callback adapter; `routes()` go on the app, `drain()` on shutdown."""

    name = "wecom_robot"

    def __init__(
        self, config: RobotCallbackConfig, handler: MessageHandler, dedup: Deduplicator, sender: AsyncSender
    ) -> None:
        self._config = config
        self._crypto = CallbackCrypto(config.token, config.encoding_aes_key, "")  # WeCom: "receiveid 传空字符串"
        self._runner = ReplyRunner(handler, dedup, sender, config.reply_budget_seconds, render_passive=_passive)

    def routes(self) -> list[web.RouteDef]:
        return [web.get(self._config.path, self.verify_url), web.post(self._config.path, self.receive)]

    async def drain(self, timeout: float = 10.0) -> None:
        await self._runner.drain(timeout)

    async def verify_url(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            check_timestamp(q.get("timestamp", ""), self._config.max_clock_skew)
            echo = self._crypto.decrypt(
                q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""), q.get("echostr", "")
            )
        except CallbackError as exc:
            return error_response(request, exc)
        return web.Response(body=echo, content_type="text/plain")

    async def receive(self, request: web.Request) -> web.StreamResponse:
        started = asyncio.get_running_loop().time()
        q = request.query
        timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
        try:
            body = await read_body(request, self._config.max_body_bytes)
            check_timestamp(timestamp, self._config.max_clock_skew)
            encrypted = parse_fields(body).get("Encrypt")
            if not encrypted:
                raise MalformedXmlError("robot callback without Encrypt")
            plain = self._crypto.decrypt(q.get("msg_signature", ""), timestamp, nonce, encrypted)
            callback = decode_robot_callback(plain, datetime.now(UTC))
        except CallbackError as exc:
            return error_response(request, exc)
        return await self._runner.respond(request, callback, started, self._crypto)
