"""`POST /sms/inbound`: the provider-neutral uplink format, signed with HMAC-SHA256.

Body (UTF-8 JSON):

    {"message_id": "up-20261124-0001",   # the provider's id of this SMS; a retry repeats it
     "from": "13812345678",              # the sender; +86 / 0086 / spaces / dashes are accepted
     "to": "12345",                      # optional: the service number it was sent to
     "text": "楼下垃圾三天没人收了",
     "received_at": "2026-11-24T10:00:00+08:00"}   # optional, ISO 8601 with offset

Headers: see `integrations.sms.signing` (timestamp + HMAC over timestamp and body).
Answers: 200 `{"status": "accepted"}`; 400 `{"error": ..., "field": ..., "message": ...}`
naming the field at fault; 403 on a missing, wrong or stale signature. Replies to the sender
are not in the answer: they go out as SMS through the gateway client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from integrations.base import IncomingMessage
from integrations.sms.phone import normalize_mobile
from integrations.sms.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, Signer

CHANNEL = "sms"
MAX_MESSAGE_ID_CHARS = 128
MAX_TEXT_CHARS = 2000  # a long concatenated SMS is ~1000 characters; anything beyond is not an SMS


@dataclass(frozen=True, slots=True)
class InboundSms:
    message_id: str
    sender: str  # canonical mobile number, e.g. 13812345678
    text: str
    to: str = ""
    received_at: datetime | None = None

    def to_incoming(self) -> IncomingMessage:
        return IncomingMessage(
            channel=CHANNEL,
            user_id=self.sender,
            text=self.text,
            provider_message_id=self.message_id,
            received_at=self.received_at,
            phone=self.sender,
        )


class InboundError(ValueError):
    """The body is not a valid inbound SMS; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


SmsHandler = Callable[[InboundSms], Awaitable[None]]


def parse_inbound(body: bytes) -> InboundSms:
    try:
        data: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InboundError("body", "the request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise InboundError("body", "the request body must be a JSON object")
    message_id = data.get("message_id")
    if not isinstance(message_id, str) or not message_id.strip() or len(message_id) > MAX_MESSAGE_ID_CHARS:
        raise InboundError("message_id", f"'message_id' must be a non-empty string of at most {MAX_MESSAGE_ID_CHARS}")
    sender = data.get("from")
    if not isinstance(sender, str):
        raise InboundError("from", "'from' is required: the sender's mobile number")
    phone = normalize_mobile(sender)
    if phone is None:
        raise InboundError("from", "'from' is not a mainland China mobile number")
    text = data.get("text")
    if not isinstance(text, str):
        raise InboundError("text", "'text' is required and must be a string")
    if len(text) > MAX_TEXT_CHARS:
        raise InboundError("text", f"'text' is longer than {MAX_TEXT_CHARS} characters")
    to = data.get("to", "")
    if not isinstance(to, str) or len(to) > 32:
        raise InboundError("to", "'to' must be a string of at most 32 characters")
    received_at = None
    raw_at = data.get("received_at")
    if raw_at is not None:
        try:
            received_at = datetime.fromisoformat(raw_at) if isinstance(raw_at, str) else None
        except ValueError:
            received_at = None
        if received_at is None or received_at.tzinfo is None:
            raise InboundError("received_at", "'received_at' must be an ISO 8601 time with an offset")
    return InboundSms(message_id=message_id, sender=phone, text=text, to=to, received_at=received_at)


def _error(status: int, code: str, field: str, message: str) -> web.Response:
    return web.json_response({"error": code, "field": field, "message": message}, status=status)


class SmsInboundChannel:
    path = "/sms/inbound"

    def __init__(self, handler: SmsHandler, signer: Signer, now: Callable[[], float] = time.time) -> None:
        self._handler = handler
        self._signer = signer
        self._now = now

    def routes(self) -> list[web.RouteDef]:
        return [web.post(self.path, self.receive)]

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            self._signer.verify(
                request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER), body, self._now()
            )
        except SignatureError as exc:
            return _error(403, "forbidden", "signature", str(exc))
        try:
            sms = parse_inbound(body)
        except InboundError as exc:
            return _error(400, "invalid_field", exc.field, str(exc))
        await self._handler(sms)
        return web.json_response({"status": "accepted", "message_id": sms.message_id})
