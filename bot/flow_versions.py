"""Flow versions in Redis: every applied YAML is kept, one is current, all processes follow it.

The current version is authoritative once set; the configured file only seeds an empty Redis.
`gridbot flows apply FILE`, SIGHUP (re-read the configured file) and the console's editor all
end in `FlowVersions.apply`, which checks the text first: an invalid flow is refused and the
running one stays.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from redis.asyncio import Redis

from bot.keys import Keys
from bot.logs import log_event
from flows import Flow, load_flow_text

log = logging.getLogger("gridbot.flows")


@dataclass(frozen=True, slots=True)
class FlowVersionInfo:
    version: str
    author: str
    at: str
    source: str
    active: bool = False


class FlowVersions:
    def __init__(self, redis: Redis, keys: Keys, known_categories: Collection[str], known_templates: Collection[str]):
        self._redis = redis
        self._keys = keys
        self._categories = tuple(known_categories)
        self._templates = tuple(known_templates)

    def parse(self, text: str, source: str, today: date | None = None) -> Flow:
        """Check and load; raises flows.FlowError with every problem (file:line:column).

        With `today`, a calendar that does not cover this year or the next is caught too.
        """
        return load_flow_text(
            text, source=source, known_categories=self._categories, known_templates=self._templates, today=today
        )

    async def apply(self, text: str, author: str, source: str, now: datetime) -> Flow:
        """Check `text`, store it as a version, make it current and tell every process."""
        flow = self.parse(text, source, today=now.date())
        record = {"text": text, "author": author, "at": now.isoformat(), "source": source}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(self._keys.flow_versions(), flow.version, json.dumps(record, ensure_ascii=False))
            pipe.lrem(self._keys.flow_history(), 0, flow.version)
            pipe.lpush(self._keys.flow_history(), flow.version)
            pipe.set(self._keys.flow_current(), flow.version)
            pipe.publish(self._keys.flow_changed(), flow.version)
            await pipe.execute()
        log_event(log, "flow_applied", version=flow.version, author=author, source=source)
        return flow

    async def activate(self, version: str, author: str, now: datetime) -> Flow:
        """Roll back (or forward) to a stored version."""
        text = await self.text(version)
        if text is None:
            raise KeyError(version)
        return await self.apply(text, author=author, source=f"version {version}", now=now)

    async def current_version(self) -> str | None:
        return await self._redis.get(self._keys.flow_current())

    async def text(self, version: str) -> str | None:
        raw = await self._redis.hget(self._keys.flow_versions(), version)
        return json.loads(raw)["text"] if raw else None

    async def load(self, version: str) -> Flow | None:
        text = await self.text(version)
        return self.parse(text, source=f"version {version}") if text is not None else None

    async def history(self, limit: int = 50) -> list[FlowVersionInfo]:
        versions = await self._redis.lrange(self._keys.flow_history(), 0, limit - 1)
        current = await self.current_version()
        if not versions:
            return []
        raws = await self._redis.hmget(self._keys.flow_versions(), versions)
        infos = []
        for version, raw in zip(versions, raws, strict=True):
            if raw:
                data = json.loads(raw)
                infos.append(FlowVersionInfo(version, data["author"], data["at"], data["source"], version == current))
        return infos

    async def seed(self, path: Path, now: datetime) -> Flow:
        """At start-up: the current version from Redis, or the configured file when there is none."""
        version = await self.current_version()
        if version is not None:
            flow = await self.load(version)
            if flow is not None:
                return flow
        return await self.apply(path.read_text(encoding="utf-8"), author="startup", source=str(path), now=now)
