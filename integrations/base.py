"""Boundary types shared by every channel adapter and the application's dispatcher.

A channel adapter verifies a provider request, turns it into an `IncomingMessage`, hands
it to a `MessageHandler` and renders the `Reply` list in the provider's format.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

# What an incoming message is. Adapters set it; the application answers each kind:
#   "text"            text is set (typed, or a voice message the provider transcribed)
#   "image"           media_ids holds the provider's media id(s); text is empty
#   "voice"           a voice message without a transcription: ask for text
#                     (a voice message's recording id, transcribed or not, is in extra, not media_ids)
#   "location"        location is set (a location the user chose to send)
#   "subscribe"       the user followed the account; event_key holds a QR scene if any
#   "unsubscribe"     the user unfollowed: nothing can be sent to them any more
#   "scan"            a follower scanned a QR code; event_key holds the scene
#   "click"           a menu button; event_key holds the button's key
#   "view"            a menu link was opened; event_key holds the URL (no answer expected)
#   "location_report" the client's periodic location report (no answer expected)
#   "enter_agent"     a WeCom user opened the app (no answer expected)
#   "unsupported"     any other message or event; extra holds ("msg_type", ...) and ("event", ...)
MessageKind = Literal[
    "text",
    "image",
    "voice",
    "location",
    "subscribe",
    "unsubscribe",
    "scan",
    "click",
    "view",
    "location_report",
    "enter_agent",
    "unsupported",
]


@dataclass(frozen=True, slots=True)
class Location:
    lat: float
    lon: float
    label: str = ""


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    channel: str  # "rest" | "wechat_mp" | "wecom" | "sms" | "hotline" | "open311" | "cli"
    user_id: str  # the provider's id of the sender, unique within the channel
    text: str = ""
    provider_message_id: str | None = None  # used to drop provider retries
    received_at: datetime | None = None
    location: Location | None = None
    media_ids: tuple[str, ...] = ()
    phone: str | None = None  # known caller number (SMS, hotline)
    in_group: bool = False  # came from a group chat: never answer personal data there
    group_id: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    kind: MessageKind = "text"
    event_key: str = ""  # menu key, QR scene or link of an event (see MessageKind)


@dataclass(frozen=True, slots=True)
class Reply:
    recipient_id: str
    text: str
    private: bool = False  # must go to a private chat, not to the group it came from


MessageHandler = Callable[[IncomingMessage], Awaitable[list[Reply]]]
