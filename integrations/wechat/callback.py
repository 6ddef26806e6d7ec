"""What the official-account and WeCom callbacks share: limits, the message mapping, dedup and
the 5-second rule.

WeChat waits 5 s for an answer and then retries (three tries in all). So the handler gets a
budget (default 3 s, counted from the request's arrival): if it answers in time, the first
reply goes back passively (at most 2,048 bytes); otherwise the callback answers `success` at
once and the replies go out through the `AsyncSender` when ready. Retries are recognised with
the `Deduplicator` before the handler runs, so a retry is answered `success` and never handled
twice, whether the first try is still running or long finished.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol
from xml.parsers.expat import ExpatError

from aiohttp import web
from wechatpy import events, messages
from wechatpy.enterprise.events import EnterAgentEvent

from integrations.base import IncomingMessage, Location, MessageHandler, Reply
from integrations.wechat.crypto import CallbackCrypto, CallbackError
from integrations.wechat.xmlmsg import MalformedXmlError, encrypted_envelope_xml, text_reply_xml

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
PASSIVE_REPLY_MAX_BYTES = 2048
SUCCESS = "success"  # WeChat's "received, no passive reply"
VOICE_MEDIA_ID = "voice_media_id"  # IncomingMessage.extra: a voice message's recording


class Deduplicator(Protocol):
    """True the first time a key is seen (the app: Redis `SET key 1 NX EX 3600`; WeChat's
    retries all come within about 15 s). Use a key space apart from the dispatcher's own."""

    async def first_time(self, key: str) -> bool: ...

    async def forget(self, key: str) -> None:
        """The key's message was not handled after all: its retry must be let in."""


class AsyncSender(Protocol):
    """Delivers a reply outside the callback (the app: customer-service / WeCom app message,
    within the quota, with a template-message fallback)."""

    async def send(self, reply: Reply) -> None: ...


class BodyTooLargeError(CallbackError):
    status = 413


class IncompleteBodyError(CallbackError):
    status = 400


class HandlerFailedError(Exception):
    """The handler raised within the reply budget: the message was not handled."""


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refusing anything over `limit` bytes whatever Content-Length says."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLargeError("body too large")
    body = bytearray()
    try:
        while chunk := await request.content.read(limit + 1 - len(body)):
            body += chunk
            if len(body) > limit:
                raise BodyTooLargeError("body too large")
    except ConnectionResetError:  # the peer hung up mid-body: nothing to handle, nobody to answer
        raise IncompleteBodyError("connection lost before the body was complete") from None
    return bytes(body)


@dataclass(frozen=True, slots=True)
class Callback:
    """One decoded callback message."""

    message: IncomingMessage
    dedup_key: str  # channel-qualified, e.g. "wechat_mp:wx123:6054768590064713728"
    account: str  # ToUserName: our account id, the sender of a passive reply


def _text(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedXmlError("expected a text field")
    return value


def _location(lat: object, lon: object, label: object = "") -> Location:
    try:
        latitude, longitude = float(_text(lat)), float(_text(lon))
    except ValueError:
        raise MalformedXmlError("bad coordinates") from None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):  # also refuses nan and inf
        raise MalformedXmlError("coordinates out of range")
    return Location(lat=latitude, lon=longitude, label=_text(label))


def _specialise(msg: messages.BaseMessage, base: IncomingMessage, fields: dict[str, str]) -> IncomingMessage:
    if isinstance(msg, messages.TextMessage):
        return replace(base, text=_text(msg.content))
    if isinstance(msg, messages.ImageMessage):
        return replace(base, kind="image", media_ids=(_text(msg.media_id),))
    if isinstance(msg, messages.VoiceMessage):
        # the recording's id goes in `extra`, not `media_ids`: those are a report's photos
        recognition = _text(msg.recognition).strip()
        return replace(base, kind="text" if recognition else "voice", text=recognition,
                       extra=(*base.extra, (VOICE_MEDIA_ID, _text(msg.media_id))))
    if isinstance(msg, messages.LocationMessage):
        return replace(base, kind="location", location=_location(msg.location_x, msg.location_y, msg.label))
    if isinstance(msg, events.SubscribeScanEvent):
        return replace(base, kind="subscribe", event_key=_text(msg.scene_id))
    if isinstance(msg, events.SubscribeEvent):
        return replace(base, kind="subscribe", event_key=_text(msg.key))
    if isinstance(msg, events.UnsubscribeEvent):
        return replace(base, kind="unsubscribe")
    if isinstance(msg, events.ScanEvent):
        return replace(base, kind="scan", event_key=_text(msg.scene_id))
    if isinstance(msg, events.ClickEvent):
        return replace(base, kind="click", event_key=_text(msg.key))
    if isinstance(msg, events.ViewEvent):
        return replace(base, kind="view", event_key=_text(msg.url))
    if isinstance(msg, events.LocationEvent):
        return replace(base, kind="location_report",
                       location=_location(fields.get("Latitude"), fields.get("Longitude")))
    if isinstance(msg, EnterAgentEvent):
        return replace(base, kind="enter_agent")
    return replace(base, kind="unsupported", extra=(
        *base.extra, ("msg_type", fields.get("MsgType", "")), ("event", fields.get("Event", "")),
    ))


def decode_callback(
    parse: Callable[[str], messages.BaseMessage],
    body: bytes,
    fields: dict[str, str],
    channel: str,
    dedup_scope: str,
    extra: tuple[tuple[str, str], ...] = (),
) -> Callback:
    """A decrypted, defusedxml-checked message body → `Callback`, via wechatpy's `parse`."""
    try:
        msg = parse(body.decode("utf-8"))
        user = _text(msg.source)
        created = int(msg.time or 0)
        # events carry no MsgId (wechatpy gives 0): FromUserName + CreateTime identify their
        # retries; the event and its key keep two clicks in one second apart
        msg_id = (
            str(msg.id) if msg.id
            else f"{user}:{created}:{fields.get('Event', '').lower()}:{fields.get('EventKey', '')}"
        )
        base = IncomingMessage(
            channel=channel,
            user_id=user,
            provider_message_id=msg_id,
            received_at=datetime.fromtimestamp(created, UTC),
            extra=extra,
        )
        incoming = _specialise(msg, base, fields)
        account = _text(msg.target)
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError, ExpatError):
        raise MalformedXmlError("not a WeChat message") from None
    if not user:
        raise MalformedXmlError("no FromUserName")
    return Callback(message=incoming, dedup_key=f"{channel}:{dedup_scope}:{msg_id}", account=account)


def split_utf8(text: str, limit: int = PASSIVE_REPLY_MAX_BYTES) -> list[str]:
    """`text` in pieces of at most `limit` UTF-8 bytes, cut at a newline when one is near the end
    of a piece, else between characters (never inside one)."""
    pieces: list[str] = []
    rest = text
    while len(rest.encode()) > limit:
        head = rest.encode()[:limit].decode("utf-8", "ignore")
        newline = head.rfind("\n")
        if newline >= len(head) // 2:
            head = head[: newline + 1]
        pieces.append(head)
        rest = rest[len(head) :]
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def plan_replies(replies: list[Reply], passive_to: str) -> tuple[str | None, list[Reply]]:
    """(passive text, replies for the sender): the first reply to `passive_to` (the sender, or the
    group a group message came from) goes back passively, cut to 2,048 bytes; a private reply never
    does. What does not fit and every other reply goes through the sender."""
    passive: str | None = None
    later: list[Reply] = []
    for reply in replies:
        if not reply.text:
            continue
        pieces = [replace(reply, text=p) for p in split_utf8(reply.text)]
        if passive is None and reply.recipient_id == passive_to and not reply.private:
            passive = pieces.pop(0).text
        later.extend(pieces)
    return passive, later


def passive_text_xml(callback: Callback, text: str) -> str:
    """The official account's and the WeCom app's passive reply: from our account to the sender."""
    return text_reply_xml(callback.account, callback.message.user_id, text)


class ReplyRunner:
    """Dedup, the reply budget, and late delivery of what missed it."""

    def __init__(
        self,
        handler: MessageHandler,
        dedup: Deduplicator,
        sender: AsyncSender,
        budget_seconds: float,
        render_passive: Callable[[Callback, str], str] = passive_text_xml,
    ) -> None:
        self._handler = handler
        self._dedup = dedup
        self._sender = sender
        self._budget = budget_seconds
        self._render_passive = render_passive
        self._background: set[asyncio.Task[None]] = set()

    async def respond(
        self, request: web.Request, callback: Callback, started: float, crypto: CallbackCrypto | None
    ) -> web.StreamResponse:
        """Handle `callback` once and answer WeChat: the passive reply (encrypted when `crypto` is
        given) or `success`. `started` is the loop time at the request's arrival."""
        try:
            passive, later = await self._run(callback, started)
        except HandlerFailedError:  # nothing was handled (logged): let WeChat's retry try again
            return web.Response(status=503, text="try again")
        except Exception:  # the deduplicator (Redis) failed: nothing was handled, let WeChat retry
            log.exception("wechat_dedup_failed key=%s", callback.dedup_key)
            return web.Response(status=503, text="try again")
        if passive is None:
            if later:
                self._spawn(self._send_all(later, callback.dedup_key))
            return web.Response(text=SUCCESS)
        xml = self._render_passive(callback, passive)
        if crypto is not None:
            timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
            encrypted, signature = crypto.encrypt(xml.encode(), timestamp, nonce)
            xml = encrypted_envelope_xml(encrypted, signature, timestamp, nonce)
        response = web.Response(text=xml, content_type="application/xml")
        if later:  # the passive part leaves first, then the rest starts through the sender
            try:
                await response.prepare(request)
                await response.write_eof()
            finally:
                self._spawn(self._send_all(later, callback.dedup_key))
        return response

    async def _run(self, callback: Callback, started: float) -> tuple[str | None, list[Reply]]:
        msg = callback.message
        if not await self._dedup.first_time(callback.dedup_key):
            log.info("wechat_retry_dropped key=%s", callback.dedup_key)
            return None, []
        task = asyncio.create_task(self._handle(msg))
        remaining = max(0.0, started + self._budget - asyncio.get_running_loop().time())
        try:
            done, _ = await asyncio.wait({task}, timeout=remaining)
        except asyncio.CancelledError:  # the provider hung up: the answer still goes out
            self._deliver_late(task, msg.user_id, callback.dedup_key)
            raise
        if not done:
            log.info("wechat_reply_late key=%s budget=%.1fs", callback.dedup_key, self._budget)
            self._deliver_late(task, msg.user_id, callback.dedup_key)
            return None, []
        if task.exception() is not None:
            log.error("wechat_handler_failed key=%s", callback.dedup_key, exc_info=task.exception())
            await self._forget(callback.dedup_key)
            raise HandlerFailedError(callback.dedup_key)
        return plan_replies(task.result(), (msg.group_id or msg.user_id) if msg.in_group else msg.user_id)

    async def _handle(self, msg: IncomingMessage) -> list[Reply]:
        return await self._handler(msg)

    def _deliver_late(self, task: asyncio.Task[list[Reply]], user_id: str, key: str) -> None:
        async def deliver() -> None:
            try:
                replies = await task
            except Exception:
                log.exception("wechat_handler_failed key=%s", key)
                await self._forget(key)
                return
            _, later = plan_replies(replies, passive_to="")  # nothing is passive any more
            await self._send_all(later, key)

        self._spawn(deliver())

    async def _forget(self, key: str) -> None:
        try:
            await self._dedup.forget(key)
        except Exception:  # Redis is likely what failed the handler too: the key expires in time
            log.exception("wechat_dedup_forget_failed key=%s", key)

    async def _send_all(self, replies: list[Reply], key: str) -> None:
        for reply in replies:  # in order: a long answer's pieces must arrive in sequence
            try:
                await self._sender.send(reply)
            except Exception:
                log.exception("wechat_send_failed key=%s", key)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self, timeout: float) -> None:
        """Wait (up to `timeout`) for late replies still being produced or sent."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)


def error_response(request: web.Request, exc: CallbackError) -> web.Response:
    log.warning("wechat_callback_refused path=%s peer=%s status=%d reason=%s",
                request.path, request.remote, exc.status, exc)
    return web.Response(status=exc.status, text=type(exc).__name__)

