"""Async clients for the official-account API, the WeCom app API and WeCom group robots.

aiohttp with a timeout on every request and retries with exponential backoff and jitter on
network errors, HTTP 5xx and errcode -1 ("system busy"). A send that may already have reached
WeChat (the connection broke after the request went out) is not retried: it raises
`ApiUnavailable(maybe_delivered=True)` and the caller's outbox decides, so a retry never
notifies anyone twice behind its back.

Access tokens live in a `TokenStore` the app provides (Redis); the client fetches one under the
store's lock, so concurrent callers and processes trigger one fetch. A token WeChat rejects
(40001 / 40014 / 42001) is refreshed once, unless another caller already replaced it.

Quotas (5 customer-service messages per user within 48 h of their last message; 20 robot
messages per minute) are the app's: it keeps the counters. Here they surface as typed errors
(`OutOfTimeLimit`, `OutOfResponseCount`, `RateLimited`) so it can fall back to templates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 1024 * 1024
ROBOT_TEXT_MAX_BYTES = 2048
ROBOT_MARKDOWN_MAX_BYTES = 4096
TOKEN_EARLY_REFRESH_SECONDS = 300  # WeChat keeps the old token valid ~5 min after a refresh


class TokenStore(Protocol):
    """Shared access-token cache (the app: Redis GET / SET EX and a Redis lock).

    `lock(name)` must exclude every other holder of the same name, in every process, until the
    context exits; the client re-reads the store inside it before fetching. The fetch under the
    lock may take up to attempts × timeout + backoff (about 45 s with the default policy): a
    Redis lock's lease must be extended while it runs (and kept short, so that a holder that
    died stalls nobody for long). A lock that cannot be had in time raises `ApiUnavailable`, as
    any other call that did not get through.
    """

    async def get(self, name: str) -> str | None: ...

    async def set(self, name: str, token: str, ttl_seconds: int) -> None: ...

    def lock(self, name: str) -> AbstractAsyncContextManager[object]: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4  # tries in all
    base_delay: float = 0.25  # seconds before the second try; doubles each time, jittered
    max_delay: float = 4.0
    timeout: float = 10.0  # per try, connect to last byte

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Equal jitter: half the exponential delay fixed, half random."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return rng.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class MpApiConfig:
    app_id: str
    app_secret: str
    api_base: str = "https://api.weixin.qq.com"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_media_bytes: int = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class WecomApiConfig:
    corp_id: str
    agent_id: int
    secret: str
    api_base: str = "https://qyapi.weixin.qq.com"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_media_bytes: int = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class MediaFile:
    data: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class WecomSendResult:
    msgid: str
    invalid_users: tuple[str, ...] = ()  # user ids WeCom did not deliver to


class ApiUnavailable(Exception):
    """No usable answer after the retries (network, timeouts, HTTP errors, system busy)."""

    def __init__(self, path: str, reason: str, maybe_delivered: bool = False) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.maybe_delivered = maybe_delivered


class WeChatApiError(Exception):
    """WeChat answered with a non-zero errcode."""

    def __init__(self, path: str, errcode: int, errmsg: str) -> None:
        super().__init__(f"{path}: errcode {errcode} {errmsg}")
        self.path = path
        self.errcode = errcode
        self.errmsg = errmsg


class AccessTokenRejected(WeChatApiError):
    """40001 / 40014 / 42001 even with a freshly fetched token."""


class CustomerServiceRefused(WeChatApiError):
    """A customer-service message was refused by quota: send a template message instead."""


class OutOfTimeLimit(CustomerServiceRefused):
    """45015: more than 48 h since the user's last message."""


class OutOfResponseCount(CustomerServiceRefused):
    """45047: the messages allowed since the user's last message are used up."""


class RateLimited(WeChatApiError):
    """45009 (API call quota, or a robot's 20 messages per minute) / 45033."""


class RecipientRefused(WeChatApiError):
    """The recipient cannot receive: unfollowed (43004), unknown openid (40003), no valid
    WeCom user (81013)."""


class InvalidMedia(WeChatApiError):
    """40007: unknown or expired media id (media live 3 days)."""


_TOKEN_REJECTED = frozenset({40001, 40014, 42001})
_ERRORS: dict[int, type[WeChatApiError]] = {
    **dict.fromkeys(_TOKEN_REJECTED, AccessTokenRejected),
    45015: OutOfTimeLimit,
    45047: OutOfResponseCount,
    45009: RateLimited,
    45033: RateLimited,
    43004: RecipientRefused,
    40003: RecipientRefused,
    81013: RecipientRefused,
    40007: InvalidMedia,
}
_SYSTEM_BUSY = -1


def _raise_for_errcode(path: str, payload: Mapping[str, object]) -> None:
    errcode = payload.get("errcode", 0)
    if isinstance(errcode, int) and errcode != 0:
        raise _ERRORS.get(errcode, WeChatApiError)(path, errcode, str(payload.get("errmsg", "")))


@dataclass(frozen=True, slots=True)
class _Answer:
    content_type: str
    body: bytes
    payload: Mapping[str, object] | None  # the JSON object, when the answer is JSON

    @property
    def errcode(self) -> int | None:
        code = self.payload.get("errcode") if self.payload is not None else None
        return code if isinstance(code, int) else None


def _json_object(body: bytes) -> Mapping[str, object] | None:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


class _Http:
    """One base URL, timeouts, bounded reads, retries."""

    def __init__(self, session: aiohttp.ClientSession, base: str, policy: RetryPolicy, rng: random.Random) -> None:
        self._session = session
        self._base = base.rstrip("/")
        self._policy = policy
        self._rng = rng

    async def _once(
        self, method: str, path: str, params: Mapping[str, str], body: object | None, max_bytes: int
    ) -> tuple[int, _Answer]:
        timeout = aiohttp.ClientTimeout(total=self._policy.timeout)
        async with self._session.request(
            method, self._base + path, params=params, json=body, timeout=timeout
        ) as resp:
            data = await resp.content.read(max_bytes + 1)
            while len(data) <= max_bytes and (more := await resp.content.read(max_bytes + 1 - len(data))):
                data += more
            if len(data) > max_bytes:
                raise ApiUnavailable(path, f"answer larger than {max_bytes} bytes")
            content_type = resp.content_type
        is_json = content_type in ("application/json", "text/plain", "text/json")
        return resp.status, _Answer(content_type, data, _json_object(data) if is_json else None)

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: object | None = None,
        *,
        resend_ok: bool,
        max_bytes: int = MAX_JSON_BYTES,
    ) -> _Answer:
        """`resend_ok`: the call may be repeated even if the first one might have gone through
        (reads, token fetches); sends are repeated only when they surely were not processed."""
        reason, maybe_delivered = "", False
        for attempt in range(1, self._policy.attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self._policy.delay(attempt - 1, self._rng))
            try:
                status, answer = await self._once(method, path, params, body, max_bytes)
            except aiohttp.ClientConnectorError as exc:  # never reached WeChat
                reason = f"cannot connect: {exc}"
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason, maybe_delivered = f"{type(exc).__name__}: {exc}", True
                if not resend_ok:
                    break
                continue
            if status >= 500:
                reason = f"HTTP {status}"
            elif status != 200:
                raise ApiUnavailable(path, f"HTTP {status}", maybe_delivered=False)
            elif answer.errcode == _SYSTEM_BUSY:
                reason = "errcode -1 system busy"
            else:
                return answer
            log.info("wechat_api_retry path=%s attempt=%d reason=%s", path, attempt, reason)
        raise ApiUnavailable(path, reason, maybe_delivered=maybe_delivered and not resend_ok)


class _TokenKeeper:
    def __init__(self, name: str, store: TokenStore, fetch: Callable[[], Awaitable[tuple[str, int]]]) -> None:
        self._name = name
        self._store = store
        self._fetch = fetch

    async def current(self) -> str:
        token = await self._store.get(self._name)
        return token or await self.refresh(rejected=None)

    async def refresh(self, rejected: str | None) -> str:
        """A token other than `rejected`: another holder's fresh one, or a new fetch."""
        async with self._store.lock(self._name):
            token = await self._store.get(self._name)
            if token and token != rejected:
                return token
            token, expires_in = await self._fetch()
            await self._store.set(self._name, token, max(60, expires_in - TOKEN_EARLY_REFRESH_SECONDS))
            log.info("wechat_token_fetched name=%s expires_in=%d", self._name, expires_in)
            return token


class _AuthorisedApi:
    """Calls that carry `access_token`, with one refresh when WeChat rejects it."""

    def __init__(self, http: _Http, tokens: _TokenKeeper) -> None:
        self.http = http
        self.tokens = tokens

    async def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        body: object | None = None,
        *,
        resend_ok: bool,
        max_bytes: int = MAX_JSON_BYTES,
    ) -> _Answer:
        token = await self.tokens.current()
        for refreshed in (False, True):
            answer = await self.http.request(
                method, path, {**(params or {}), "access_token": token}, body,
                resend_ok=resend_ok, max_bytes=max_bytes,
            )
            if answer.errcode not in _TOKEN_REJECTED or refreshed:
                break
            token = await self.tokens.refresh(rejected=token)
        if answer.payload is not None:
            _raise_for_errcode(path, answer.payload)
        return answer

    async def send(self, path: str, body: object) -> Mapping[str, object]:
        answer = await self.call("POST", path, body=body, resend_ok=False)
        if answer.payload is None:
            raise ApiUnavailable(path, f"unexpected {answer.content_type} answer")
        return answer.payload

    async def download(self, media_id: str, max_bytes: int) -> MediaFile:
        path = "/cgi-bin/media/get"
        answer = await self.call("GET", path, {"media_id": media_id}, resend_ok=True, max_bytes=max_bytes)
        if answer.payload is not None:  # a JSON answer without an errcode is no media either
            raise WeChatApiError(path, 0, "JSON answer instead of media")
        return MediaFile(data=answer.body, content_type=answer.content_type)


async def _fetch_token(http: _Http, path: str, params: Mapping[str, str]) -> tuple[str, int]:
    answer = await http.request("GET", path, params, resend_ok=True)
    payload = answer.payload or {}
    _raise_for_errcode(path, payload)
    token, expires_in = payload.get("access_token"), payload.get("expires_in", 7200)
    if not isinstance(token, str) or not token or not isinstance(expires_in, int):
        raise ApiUnavailable(path, "no access_token in the answer")
    return token, expires_in


class WeChatMpApi:
    """Official account API: customer-service and template messages, media."""

    def __init__(
        self,
        config: MpApiConfig,
        session: aiohttp.ClientSession,
        tokens: TokenStore,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        http = _Http(session, config.api_base, config.retry, rng or random.Random())
        credentials = {"grant_type": "client_credential", "appid": config.app_id, "secret": config.app_secret}
        keeper = _TokenKeeper(
            f"wechat_mp:{config.app_id}", tokens, lambda: _fetch_token(http, "/cgi-bin/token", credentials)
        )
        self._api = _AuthorisedApi(http, keeper)

    async def access_token(self) -> str:
        return await self._api.tokens.current()

    async def send_custom_text(self, openid: str, text: str) -> None:
        """Customer-service text; `CustomerServiceRefused` when out of the 48 h window / count."""
        await self._api.send(
            "/cgi-bin/message/custom/send", {"touser": openid, "msgtype": "text", "text": {"content": text}}
        )

    async def send_template(
        self, openid: str, template_id: str, data: Mapping[str, str], url: str = ""
    ) -> str:
        """Template message; `data` maps the template's keys to values. → WeChat's msgid."""
        body: dict[str, object] = {
            "touser": openid,
            "template_id": template_id,
            "data": {key: {"value": value} for key, value in data.items()},
        }
        if url:
            body["url"] = url
        payload = await self._api.send("/cgi-bin/message/template/send", body)
        return str(payload.get("msgid", ""))

    async def download_media(self, media_id: str) -> MediaFile:
        """A resident's photo / voice by MediaId (kept by WeChat for 3 days)."""
        return await self._api.download(media_id, self._config.max_media_bytes)


class WecomApi:
    """WeCom app API: messages to workers (text, text card), media."""

    def __init__(
        self,
        config: WecomApiConfig,
        session: aiohttp.ClientSession,
        tokens: TokenStore,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        http = _Http(session, config.api_base, config.retry, rng or random.Random())
        credentials = {"corpid": config.corp_id, "corpsecret": config.secret}
        # one token per app secret: the agent id names the secret
        keeper = _TokenKeeper(
            f"wecom:{config.corp_id}:{config.agent_id}", tokens,
            lambda: _fetch_token(http, "/cgi-bin/gettoken", credentials),
        )
        self._api = _AuthorisedApi(http, keeper)

    async def _send(self, user_ids: Sequence[str], msgtype: str, content: Mapping[str, str]) -> WecomSendResult:
        if not user_ids:
            raise ValueError("no recipients")
        payload = await self._api.send("/cgi-bin/message/send", {
            "touser": "|".join(user_ids),
            "msgtype": msgtype,
            "agentid": self._config.agent_id,
            msgtype: content,
        })
        invalid = str(payload.get("invaliduser") or "")
        return WecomSendResult(
            msgid=str(payload.get("msgid", "")), invalid_users=tuple(u for u in invalid.split("|") if u)
        )

    async def send_text(self, user_ids: Sequence[str], text: str) -> WecomSendResult:
        return await self._send(user_ids, "text", {"content": text})

    async def send_textcard(
        self, user_ids: Sequence[str], title: str, description: str, url: str, btntxt: str = ""
    ) -> WecomSendResult:
        """A text card (title, description with WeCom's <div class="gray|normal|highlight"> markup,
        a link); `btntxt` empty leaves WeCom's default button text."""
        card = {"title": title, "description": description, "url": url}
        if btntxt:
            card["btntxt"] = btntxt
        return await self._send(user_ids, "textcard", card)

    async def download_media(self, media_id: str) -> MediaFile:
        return await self._api.download(media_id, self._config.max_media_bytes)


class WecomRobot:
    """WeCom group robot webhooks (`/cgi-bin/webhook/send?key=…`); no access token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_base: str = "https://qyapi.weixin.qq.com",
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._http = _Http(session, api_base, retry or RetryPolicy(), rng or random.Random())

    async def _send(self, key: str, body: Mapping[str, object]) -> None:
        path = "/cgi-bin/webhook/send"
        answer = await self._http.request("POST", path, {"key": key}, body, resend_ok=False)
        _raise_for_errcode(path, answer.payload or {})

    async def send_text(
        self, key: str, text: str, mentioned_list: Sequence[str] = (), mentioned_mobile_list: Sequence[str] = ()
    ) -> None:
        """Text of at most 2,048 bytes; `mentioned_list` takes user ids or "@all"."""
        if len(text.encode()) > ROBOT_TEXT_MAX_BYTES:
            raise ValueError(f"robot text is over {ROBOT_TEXT_MAX_BYTES} bytes")
        content: dict[str, object] = {"content": text}
        if mentioned_list:
            content["mentioned_list"] = list(mentioned_list)
        if mentioned_mobile_list:
            content["mentioned_mobile_list"] = list(mentioned_mobile_list)
        await self._send(key, {"msgtype": "text", "text": content})

    async def send_markdown(self, key: str, markdown: str) -> None:
        if len(markdown.encode()) > ROBOT_MARKDOWN_MAX_BYTES:
            raise ValueError(f"robot markdown is over {ROBOT_MARKDOWN_MAX_BYTES} bytes")
        await self._send(key, {"msgtype": "markdown", "markdown": {"content": markdown}})
