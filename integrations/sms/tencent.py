"""Tencent Cloud SMS 回复回调 (SMS reply callback): a resident's reply to our SMS, pushed to us.

Tencent posts UTF-8 JSON, one object (older accounts) or a list of them:

    {"extend": "", "mobile": "13812345678", "nationcode": "86",
     "sign": "某某街道", "text": "TD", "time": 1795000000}

and expects `{"result": 0, "errmsg": "OK"}` (any other `result` makes it retry).

Field mapping to `InboundSms`:
| Tencent      | InboundSms   | note                                                         |
|--------------|--------------|--------------------------------------------------------------|
| mobile       | sender       | normalised; only nationcode 86 (mainland) is accepted         |
| text         | text         |                                                              |
| time         | received_at  | Unix seconds                                                 |
| extend       | to           | the extension code our outbound SMS carried, if any          |
| (none)       | message_id   | `tc-` + SHA-256 of nationcode, mobile, time and text: a retry |
|              |              | of the same callback gets the same id and is dropped          |
| sign         | —            | our own SMS signature, echoed back; not used                  |

The callback carries no signature, so the URL configured in Tencent's console holds a secret:
`https://<host>/sms/tencent/reply?token=<sms.tencent_token>`, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from integrations.sms.inbound import MAX_TEXT_CHARS, InboundError, InboundSms, SmsHandler
from integrations.sms.phone import normalize_mobile


def parse_reply(item: Any) -> InboundSms:
    if not isinstance(item, dict):
        raise InboundError("body", "each reply must be a JSON object")
    nationcode = str(item.get("nationcode", ""))
    if nationcode not in {"86", "+86"}:
        raise InboundError("nationcode", "only mainland China numbers (nationcode 86) are served")
    mobile = item.get("mobile")
    phone = normalize_mobile(mobile) if isinstance(mobile, str) else None
    if phone is None:
        raise InboundError("mobile", "'mobile' is not a mainland China mobile number")
    text = item.get("text")
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
        raise InboundError("text", "'text' is required and must be a string")
    at = item.get("time")
    if isinstance(at, bool) or not isinstance(at, int) or at <= 0:
        raise InboundError("time", "'time' must be a Unix timestamp in seconds")
    extend = item.get("extend") or ""
    digest = hashlib.sha256(f"{nationcode}|{phone}|{at}|{text}".encode()).hexdigest()[:32]
    return InboundSms(
        message_id=f"tc-{digest}",
        sender=phone,
        text=text,
        to=str(extend)[:32],
        received_at=datetime.fromtimestamp(at, UTC),
    )


class TencentReplyChannel:
    path = "/sms/tencent/reply"

    def __init__(self, handler: SmsHandler, token: str) -> None:
        self._handler = handler
        self._token = token

    def routes(self) -> list[web.RouteDef]:
        return [web.post(self.path, self.receive)]

    async def receive(self, request: web.Request) -> web.Response:
        given = request.query.get("token", "")
        if not self._token or not hmac.compare_digest(given.encode(), self._token.encode()):
            return web.json_response({"result": 403, "errmsg": "forbidden"}, status=403)
        try:
            data = json.loads(await request.read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"result": 400, "errmsg": "body: not JSON"}, status=400)
        items = data if isinstance(data, list) else [data]
        try:
            replies = [parse_reply(item) for item in items]
        except InboundError as exc:
            return web.json_response({"result": 400, "errmsg": f"{exc.field}: {exc}"}, status=400)
        for sms in replies:
            await self._handler(sms)
        return web.json_response({"result": 0, "errmsg": "OK"})
