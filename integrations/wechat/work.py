"""The WeCom (企业微信) app callback for grid workers at `/wechat/work`, and their commands.

WeCom callbacks are always encrypted; the receive id is the CorpID. URL verification (GET with
`msg_signature`, `timestamp`, `nonce`, `echostr`) must be answered within 1 s with the
decrypted echostr and nothing else: no I/O happens on that path.

Messages reach the app as `IncomingMessage(channel="wecom", user_id=<WeCom userid>)`; what a
worker's command does is the app's business, `parse_worker_command` only reads it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Literal, Protocol

from aiohttp import web
from wechatpy.enterprise import parse_message

from integrations.base import MessageHandler
from integrations.wechat.callback import (
    MAX_BODY_BYTES,
    AsyncSender,
    Callback,
    Deduplicator,
    ReplyRunner,
    decode_callback,
    error_response,
    read_body,
)
from integrations.wechat.crypto import CallbackCrypto, CallbackError, check_timestamp
from integrations.wechat.xmlmsg import MalformedXmlError, parse_fields

CHANNEL = "wecom"


@dataclass(frozen=True, slots=True)
class WecomCallbackConfig:
    token: str
    encoding_aes_key: str
    corp_id: str
    max_clock_skew: int = 300  # seconds; 0 switches replay protection off
    reply_budget_seconds: float = 3.0
    path: str = "/wechat/work"
    max_body_bytes: int = MAX_BODY_BYTES

    def __post_init__(self) -> None:
        if not self.token or not self.encoding_aes_key or not self.corp_id:
            raise ValueError("the WeCom callback needs a token, an EncodingAESKey and a corp id")
        if not 0 < self.reply_budget_seconds < 5:
            raise ValueError("reply_budget_seconds must be between 0 and 5")


class EncryptedCallbackSettings(Protocol):
    """What an always-encrypted WeCom callback needs (the app's and the group robots')."""

    @property
    def token(self) -> str: ...
    @property
    def encoding_aes_key(self) -> str: ...
    @property
    def max_clock_skew(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def max_body_bytes(self) -> int: ...


class WecomChannel:
    """WeCom app callback adapter; `routes()` go on the app, `drain()` on shutdown."""

    name = CHANNEL

    def __init__(
        self,
        config: WecomCallbackConfig,
        handler: MessageHandler,
        dedup: Deduplicator,
        sender: AsyncSender,
    ) -> None:
        self._corp_id = config.corp_id
        self._setup(config, config.corp_id, ReplyRunner(handler, dedup, sender, config.reply_budget_seconds))

    def _setup(self, config: EncryptedCallbackSettings, receive_id: str, runner: ReplyRunner) -> None:
        self._config = config
        self._crypto = CallbackCrypto(config.token, config.encoding_aes_key, receive_id)
        self._runner = runner

    def _decode(self, plain: bytes) -> Callback:
        """The decrypted message body → `Callback`."""
        fields = parse_fields(plain)
        agent = (("agent_id", fields["AgentID"]),) if fields.get("AgentID") else ()
        return decode_callback(parse_message, plain, fields, CHANNEL, self._corp_id, agent)

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
                raise MalformedXmlError("WeCom body without Encrypt")
            plain = self._crypto.decrypt(q.get("msg_signature", ""), timestamp, nonce, encrypted)
            callback = self._decode(plain)
        except CallbackError as exc:
            return error_response(request, exc)
        return await self._runner.respond(request, callback, started, self._crypto)


WorkerVerb = Literal["accept", "progress", "resolve", "escalate", "return"]
_VERBS: dict[str, WorkerVerb] = {
    "接单": "accept",
    "进度": "progress",
    "办结": "resolve",
    "上报": "escalate",
    "退回": "return",
}
_WORDS: dict[WorkerVerb, str] = {verb: word for word, verb in _VERBS.items()}
_NEEDS_ARGUMENT: frozenset[WorkerVerb] = frozenset({"progress", "resolve", "return"})
_SEP = r"[\s:：,，、;；.。!！]"
_NUMBER = r"[A-Za-z]{1,6}\d{8,16}(?![A-Za-z0-9])"
_VERB = f"({'|'.join(_VERBS)})"
# after the verb: a separator, a ticket number or nothing — "进度怎么样了" and "上报了吗？" are talk
_COMMAND = re.compile(rf"^{_VERB}(?:{_SEP}+|(?={_NUMBER})|$)(?:({_NUMBER}){_SEP}*)?(.*)$", re.DOTALL)
_UNSPACED = re.compile(rf"^{_VERB}(.+)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class WorkerCommand:
    verb: WorkerVerb
    ticket_number: str | None = None  # "接单 WG202611220001"; None: the one ticket the verb can mean
    argument: str = ""  # progress note, resolution note, reason for escalating or returning

    @property
    def word(self) -> str:
        """The command as the worker types it: 接单, 进度, 办结, 上报, 退回."""
        return _WORDS[self.verb]

    @property
    def needs_argument(self) -> bool:
        """进度, 办结 and 退回 need a text (the note or the reason)."""
        return self.verb in _NEEDS_ARGUMENT

    @property
    def missing_argument(self) -> bool:
        return self.needs_argument and not self.argument


def _normal(text: str) -> str:
    return text.replace("\u3000", " ").strip()


def parse_worker_command(text: str) -> WorkerCommand | None:
    """接单 / 进度 <text> / 办结 <text> / 上报 [reason] / 退回 <reason>, each optionally followed by
    a ticket number; None when the text is not a command. The verb must be followed by a
    separator (space, colon, comma…), a ticket number or the end of the text."""
    match = _COMMAND.match(_normal(text))
    if match is None:
        return None
    verb, number, argument = match.groups()
    return WorkerCommand(
        verb=_VERBS[verb], ticket_number=number.upper() if number else None, argument=argument.strip()
    )


def unspaced_command(text: str) -> WorkerCommand | None:
    """What a text that runs a verb into its words ("办结已清理完毕") would mean with a space, when
    it is not a command as written. Never to be acted on ("进度怎么样了" reads the same way): only
    to show the worker the form that would have worked."""
    if parse_worker_command(text) is not None:
        return None
    match = _UNSPACED.match(_normal(text))
    if match is None:
        return None
    verb, rest = match.groups()
    return WorkerCommand(verb=_VERBS[verb], argument=rest.strip())
