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

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit
from xml.etree.ElementTree import Element

from integrations.base import IncomingMessage, MessageHandler, MessageKind
from integrations.wechat.callback import MAX_BODY_BYTES, AsyncSender, Callback, Deduplicator, ReplyRunner
from integrations.wechat.work import WecomChannel
from integrations.wechat.xmlmsg import MalformedXmlError, parse_root, robot_text_reply_xml

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


class WecomRobotChannel(WecomChannel):
    """Group robot callback adapter: WeCom's app callback with the robot's message format."""

    name = "wecom_robot"

    def __init__(
        self, config: RobotCallbackConfig, handler: MessageHandler, dedup: Deduplicator, sender: AsyncSender
    ) -> None:
        runner = ReplyRunner(handler, dedup, sender, config.reply_budget_seconds, render_passive=_passive)
        self._setup(config, "", runner)  # WeCom: "receiveid 传空字符串"

    def _decode(self, plain: bytes) -> Callback:
        return decode_robot_callback(plain, datetime.now(UTC))
