"""Rasa server backend: asks a real Rasa Open Source 3.6 server (``rasa run --enable-api``) for
intent, category and entities, and falls back to another backend (the embedded one) on timeout or
error.

Rasa has one flat list of intents; the categories of ``report_issue`` are encoded in the training data
as the intents ``report_issue+<category>`` (see the header of ``nlu/data/nlu.yml``). This module turns
them back into ``intent="report_issue", category=<category>``.

Emergencies: Rasa has no emergency flag. The fallback backend is run on every message (it costs about
a millisecond) and ``emergency``/``emergency_kind`` always come from it, so an emergency is never missed
because Rasa is slow, down or wrong. Intent, category and entities come from Rasa when it answers in
time; entity types Rasa did not find are filled in from the fallback backend's result (so a grid place
name the embedded gazetteer knows is not lost).

This module must not import ``bot`` (the app wires the Prometheus counter through ``on_fallback``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import aiohttp

from .types import Entity, NluBackend, NluResult

log = logging.getLogger(__name__)

CATEGORY_SEPARATOR = "+"
REPORT_ISSUE = "report_issue"

# Reasons passed to ``on_fallback`` (and logged); the app may use them as a Prometheus label.
FALLBACK_REASONS = ("timeout", "connection", "http_status", "bad_response", "no_intent", "circuit_open")


class RasaResponseError(ValueError):
    """The server answered, but not with a /model/parse result we understand."""


def split_intent(rasa_intent: str) -> tuple[str, str | None]:
    """``"report_issue+noise"`` -> ``("report_issue", "noise")``; ``"greet"`` -> ``("greet", None)``."""
    intent, sep, category = rasa_intent.partition(CATEGORY_SEPARATOR)
    return intent, (category or None) if sep else None


def result_from_rasa(text: str, data: Mapping[str, Any]) -> NluResult:
    """Map a Rasa ``/model/parse`` response to an ``NluResult`` (``backend="rasa"``, no emergency).

    Intent probabilities are summed over categories: P(report_issue) is the sum of the confidences of
    all ``report_issue+*`` intents in ``intent_ranking``, so a message split between two categories is
    still confidently a report. ``category_ranking`` holds P(category | report_issue), best first, and
    ``category_confidence`` its top value. ``category`` is set only when the top intent is report_issue.
    """
    try:
        top = data["intent"]
        top_name = top.get("name") if isinstance(top, Mapping) else None
        if not top_name:
            raise RasaResponseError("no intent in response")
        ranking: Sequence[Mapping[str, Any]] = data.get("intent_ranking") or [top]
        intent_prob: dict[str, float] = {}
        category_prob: dict[str, float] = {}
        for item in ranking:
            name = str(item["name"])
            conf = float(item.get("confidence") or 0.0)
            item_intent, item_category = split_intent(name)
            intent_prob[item_intent] = intent_prob.get(item_intent, 0.0) + conf
            if item_intent == REPORT_ISSUE and item_category:
                category_prob[item_category] = category_prob.get(item_category, 0.0) + conf
        top_intent, top_category = split_intent(str(top_name))
        if top_intent not in intent_prob:  # ranking truncated or absent
            intent_prob[top_intent] = float(top.get("confidence") or 0.0)
        intent = max(intent_prob, key=lambda k: intent_prob[k])
        confidence = intent_prob[intent]

        total = sum(category_prob.values())
        category_ranking = tuple(
            sorted(
                ((c, p / total) for c, p in category_prob.items()) if total > 0 else (),
                key=lambda cp: cp[1],
                reverse=True,
            )
        )
        category: str | None = None
        category_confidence = 0.0
        if intent == REPORT_ISSUE:
            if category_ranking:
                category, category_confidence = category_ranking[0]
            elif top_category:
                category, category_confidence = top_category, confidence
            else:
                category = "other"  # a bare report_issue intent: the category is unknown

        entities = tuple(_entities(text, data.get("entities") or ()))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, RasaResponseError):
            raise
        raise RasaResponseError(f"malformed /model/parse response: {exc!r}") from exc
    return NluResult(
        text=text,
        intent=intent,
        confidence=round(min(max(confidence, 0.0), 1.0), 6),
        category=category,
        entities=entities,
        category_ranking=tuple((c, round(p, 6)) for c, p in category_ranking),
        category_confidence=round(category_confidence, 6),
        backend="rasa",
    )


def _entities(text: str, raw: Sequence[Mapping[str, Any]]) -> list[Entity]:
    """Rasa entities with valid offsets; where two extractors found overlapping spans of the same type
    (DIET and the regex extractor both learn ticket and phone numbers), the regex/lookup match wins."""

    def rank(e: Mapping[str, Any]) -> int:
        return 0 if e.get("extractor") == "RegexEntityExtractor" else 1

    out: list[Entity] = []
    for e in sorted(raw, key=rank):
        name, start, end = e.get("entity"), e.get("start"), e.get("end")
        if not name or start is None or end is None:
            continue
        start, end = int(start), int(end)
        if not 0 <= start < end <= len(text):
            continue
        if any(o.entity == name and o.start < end and start < o.end for o in out):
            continue
        value = e.get("value")
        out.append(Entity(str(name), str(value) if value is not None else text[start:end], start, end))
    out.sort(key=lambda x: (x.start, x.end))
    return out


class RasaHttpNlu:
    """NluBackend that calls a Rasa server's ``POST /model/parse`` within a time budget.

    Parameters
    ----------
    url: base URL of the Rasa server, e.g. ``http://127.0.0.1:5005``.
    fallback: the backend answering when Rasa cannot (and always supplying emergency detection).
    timeout_ms: time budget for one Rasa request (default 800 ms).
    session: an aiohttp ClientSession to use; if omitted one is created lazily and closed by ``close()``.
    on_fallback: called with a reason from ``FALLBACK_REASONS`` each time the fallback answers instead.
    ready_ttl_s: how long a successful answer keeps ``ready`` true.
    cooldown_s: after a failure, skip Rasa for this long (reason ``circuit_open``) so a hung server does
        not add ``timeout_ms`` to every message; 0 disables.
    max_chars: longer messages are cut to this many characters before being sent to Rasa (the
        fallback still sees the whole text; entity offsets stay valid for the original text).
    """

    name = "rasa"

    def __init__(
        self,
        url: str = "http://127.0.0.1:5005",
        *,
        fallback: NluBackend,
        timeout_ms: float = 800,
        session: aiohttp.ClientSession | None = None,
        on_fallback: Callable[[str], None] | None = None,
        ready_ttl_s: float = 30.0,
        cooldown_s: float = 2.0,
        max_chars: int = 2000,
    ) -> None:
        self.url = url.rstrip("/")
        self.fallback = fallback
        self.timeout_s = timeout_ms / 1000.0
        self.on_fallback = on_fallback
        self.ready_ttl_s = ready_ttl_s
        self.cooldown_s = cooldown_s
        self.max_chars = max_chars
        self._session = session
        self._owns_session = session is None
        self._last_ok: float | None = None
        self._skip_until = 0.0
        self.fallback_count = 0
        self.last_fallback_reason: str | None = None

    # -- NluBackend --------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True if the Rasa server answered (``/status`` or a parse) within the last ``ready_ttl_s``."""
        return self._last_ok is not None and time.monotonic() - self._last_ok < self.ready_ttl_s

    def set_places(self, names: Iterable[str]) -> None:
        """Passed on to the fallback backend (its gazetteer fills in the address entities Rasa did not
        find, and it answers when Rasa cannot). The Rasa server's own lookup tables come from the
        training data and change only when the model is retrained: nothing is sent to the server."""
        self.fallback.set_places(names)

    async def parse(self, text: str) -> NluResult:
        local_task = asyncio.ensure_future(self.fallback.parse(text))
        if not any(ch.isalnum() for ch in text[: self.max_chars]):
            return await local_task  # empty, emoji or punctuation: nothing for Rasa to classify
        if self.cooldown_s and time.monotonic() < self._skip_until:
            return await self._fall_back("circuit_open", local_task, None)
        try:
            data = await self._post_parse(text[: self.max_chars])
            remote = result_from_rasa(text, data)
        except TimeoutError as exc:
            return await self._fall_back("timeout", local_task, exc)
        except aiohttp.ClientResponseError as exc:
            return await self._fall_back("http_status", local_task, exc)
        except (aiohttp.ClientError, OSError) as exc:
            return await self._fall_back("connection", local_task, exc)
        except RasaResponseError as exc:
            reason = "no_intent" if "no intent" in str(exc) else "bad_response"
            return await self._fall_back(reason, local_task, exc)
        except BaseException:
            local_task.cancel()
            raise
        self._last_ok = time.monotonic()
        local = await local_task
        return _merge(remote, local)

    # -- extra API -----------------------------------------------------------------------------------
    async def check(self) -> bool:
        """Ask ``GET /status`` (needs ``--enable-api``; ``GET /`` otherwise); update and return ``ready``.

        /status also tells whether a model is loaded: a server without a model is not ready.
        """
        session = self._get_session()
        timeout = aiohttp.ClientTimeout(total=max(self.timeout_s, 2.0))
        try:
            async with session.get(f"{self.url}/status", timeout=timeout) as resp:
                if resp.status == 200:
                    body = await resp.json(content_type=None)
                    ok = bool(isinstance(body, Mapping) and body.get("model_file"))
                elif resp.status in (401, 403, 404):  # API not enabled or protected: is it alive?
                    async with session.get(f"{self.url}/", timeout=timeout) as root:
                        ok = root.status == 200
                else:
                    ok = False
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            ok = False
        if ok:
            self._last_ok = time.monotonic()
        else:
            self._last_ok = None
        return ok

    async def close(self) -> None:
        """Close the HTTP session if this object created it."""
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> RasaHttpNlu:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- internals -----------------------------------------------------------------------------------
    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if not self._owns_session and self._session is not None:
                raise RuntimeError("the aiohttp session given to RasaHttpNlu is closed")
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def _post_parse(self, text: str) -> Mapping[str, Any]:
        session = self._get_session()
        # asyncio.timeout bounds everything (connect, send, read, JSON); aiohttp's timeout is a backstop.
        async with asyncio.timeout(self.timeout_s):
            async with session.post(
                f"{self.url}/model/parse",
                json={"text": text},
                timeout=aiohttp.ClientTimeout(total=self.timeout_s + 0.5),
                raise_for_status=True,
            ) as resp:
                try:
                    data = await resp.json(content_type=None)
                except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
                    raise RasaResponseError(f"/model/parse returned no JSON: {exc}") from exc
        if not isinstance(data, Mapping):
            raise RasaResponseError(f"/model/parse returned {type(data).__name__}, not an object")
        return data

    async def _fall_back(
        self, reason: str, local_task: asyncio.Future[NluResult], exc: BaseException | None
    ) -> NluResult:
        self.fallback_count += 1
        self.last_fallback_reason = reason
        if reason != "circuit_open":
            self._last_ok = None
            if self.cooldown_s:
                self._skip_until = time.monotonic() + self.cooldown_s
            log.warning(
                "rasa nlu at %s failed (%s: %s); answering with %s",
                self.url,
                reason,
                exc if exc is not None and str(exc) else type(exc).__name__,
                getattr(self.fallback, "name", "fallback"),
            )
        if self.on_fallback is not None:
            with contextlib.suppress(Exception):
                self.on_fallback(reason)
        return await local_task


def _merge(remote: NluResult, local: NluResult) -> NluResult:
    """Rasa's intent/category/entities, the fallback's emergency flag, and entity types Rasa missed.

    As in the embedded backend, an emergency is always a report: if Rasa read it as something else,
    the intent becomes report_issue with Rasa's best category (or the fallback's, if Rasa has none).
    """
    have = {e.entity for e in remote.entities}
    extra = [e for e in local.entities if e.entity not in have]
    entities = tuple(sorted((*remote.entities, *extra), key=lambda e: (e.start, e.end)))
    intent, confidence, category = remote.intent, remote.confidence, remote.category
    ranking, category_confidence = remote.category_ranking, remote.category_confidence
    if local.emergency and intent != REPORT_ISSUE:
        intent = REPORT_ISSUE
        if ranking:
            category, category_confidence = ranking[0]
        else:
            category, category_confidence, ranking = (
                local.category or "other",
                local.category_confidence,
                local.category_ranking,
            )
    if intent != REPORT_ISSUE:  # like the embedded backend: a ranking only to choose among for reports
        ranking, category_confidence = (), 0.0
    return NluResult(
        text=remote.text,
        intent=intent,
        confidence=confidence,
        category=category,
        entities=entities,
        emergency=local.emergency,
        emergency_kind=local.emergency_kind,
        category_ranking=ranking,
        category_confidence=category_confidence,
        backend="rasa",
    )
