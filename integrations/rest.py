"""Web chat in Rasa's REST channel format, so widgets and tools built for Rasa work unchanged.

`POST /webhooks/rest/webhook` with `{"sender": "...", "message": "..."}` answers
`[{"recipient_id": "...", "text": "..."}, ...]`. An optional `"message_id"` (top level or in
`"metadata"`) makes a retried request idempotent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from integrations.base import IncomingMessage, MessageHandler

MAX_SENDER_CHARS = 128
MAX_MESSAGE_ID_CHARS = 128


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


class RestChannel:
    name = "rest"
    path = "/webhooks/rest/webhook"

    def __init__(self, handler: MessageHandler, channel: str = "rest") -> None:
        self._handler = handler
        self._channel = channel

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/webhooks/rest/", self.health), web.post(self.path, self.receive)]

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def receive(self, request: web.Request) -> web.Response:
        try:
            body: Any = json.loads(await request.text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return json_error(400, "invalid_json", "the request body must be a JSON object")
        if not isinstance(body, dict):
            return json_error(400, "invalid_body", "the request body must be a JSON object")
        sender, message = body.get("sender"), body.get("message")
        if not isinstance(sender, str) or not sender.strip():
            return json_error(400, "missing_field", "'sender' is required and must be a non-empty string")
        if len(sender) > MAX_SENDER_CHARS:
            return json_error(400, "invalid_field", f"'sender' is longer than {MAX_SENDER_CHARS} characters")
        if not isinstance(message, str):
            return json_error(400, "missing_field", "'message' is required and must be a string")
        metadata = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
        message_id = body.get("message_id", metadata.get("message_id"))
        if message_id is not None and (not isinstance(message_id, str) or len(message_id) > MAX_MESSAGE_ID_CHARS):
            return json_error(400, "invalid_field", "'message_id' must be a string of at most 128 characters")
        incoming = IncomingMessage(
            channel=self._channel,
            user_id=sender,
            text=message,
            provider_message_id=message_id or None,
            received_at=datetime.now(UTC),
        )
        replies = await self._handler(incoming)
        return web.json_response(
            [{"recipient_id": r.recipient_id, "text": r.text} for r in replies],
            dumps=lambda obj: json.dumps(obj, ensure_ascii=False),
        )
