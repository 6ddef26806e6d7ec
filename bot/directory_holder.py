"""The live grid directory (网格名录): one holder per process, the current copy in Redis.

`LiveDirectory` is what `Services.directory` holds and what every part of the service was
given at start-up (ticket routing, the outbox's audiences, the WeCom desk and digest, the
console). It answers the same lookups as `flows.GridDirectory` (it is one, for the type
annotations) by delegating to the directory that is current now, so an import takes effect at
once without anything being rebuilt; `replace` swaps it in one assignment and tells the
listeners (the NLU's place names follow through `NluBackend.set_places`).

Redis holds the current version (`Keys.directory_current`), its text with who imported it
when (`Keys.directory_text`, JSON) and every version ever current (`Keys.directory_versions`);
`DirectoryStore.publish` writes them in one transaction and announces the version on
`Keys.directory_changed`.
Each process listens (`DirectoryStore.follow`), reads the text from Redis and parses it
itself, so processes on other machines follow too. Only the process that handled the
console's import writes the configured file (and its `.bak`); the others keep their file.

Which directory a process starts with (`DirectoryStore.seed`), the configured file or the
Redis copy:
1. Redis has none: the file, and it is stored as the current copy.
2. The file's text is the Redis copy's: either.
3. The file's text was current in Redis at some time (a stale copy, e.g. a redeploy of the
   shipped sample): the Redis copy.
4. Otherwise the newer one: the file when its modification time is later than the moment the
   Redis copy was stored (an operator edited the file); it is then published as if imported,
   and every process switches to it. An invalid file in that case stops the start-up, as it
   always did; an older file is ignored with a warning.
Redis unreachable at start-up: the file; the process switches to the Redis copy as soon as it
can listen again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.keys import Keys
from bot.logs import log_event
from flows import Area, DirectoryError, Grid, GridDirectory, Post, Problem, Worker

log = logging.getLogger("gridbot.directory")


def directory_version(text: str) -> str:
    """A directory's version: the content hash of its text (sha256[:12]), as flows have."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


class LiveDirectory(GridDirectory):
    """The current grid directory of this process; every lookup goes to the one current now.

    It is a `GridDirectory` so that it can be passed wherever one is expected, but it keeps
    none of the parent's state: every public method and attribute is overridden here (a test
    keeps it so). Lookups are synchronous, so one lookup never sees two directories.
    """

    def __init__(self, directory: GridDirectory, version: str) -> None:
        # deliberately not GridDirectory.__init__: the parent's state would be a stale copy
        self._current = directory
        self._version = version
        self._listeners: list[Callable[[GridDirectory], None]] = []

    @property
    def current(self) -> GridDirectory:
        return self._current

    @property
    def version(self) -> str:
        return self._version

    def on_replace(self, listener: Callable[[GridDirectory], None]) -> None:
        """Call `listener(new directory)` after every replacement (e.g. the NLU's place names)."""
        self._listeners.append(listener)

    def replace(self, directory: GridDirectory, version: str) -> bool:
        """Make `directory` current; False (and nothing happens) when `version` already is."""
        if version == self._version:
            return False
        self._current, self._version = directory, version
        for listener in self._listeners:
            try:
                listener(directory)
            except Exception:  # one listener's failure must not stop the others or the switch
                log.exception("directory_listener_failed")
        return True

    # -- GridDirectory's read interface, delegated -----------------------------------------

    @property
    def grids(self) -> tuple[Grid, ...]:
        return self._current.grids

    @grids.setter
    def grids(self, value: tuple[Grid, ...]) -> None:
        raise AttributeError("a LiveDirectory changes only through replace()")

    def grid(self, code: str) -> Grid | None:
        return self._current.grid(code)

    def route_point(self, lat: float, lon: float) -> Grid | None:
        return self._current.route_point(lat, lon)

    def route_address(self, text: str) -> Grid | None:
        return self._current.route_address(text)

    def place_names(self) -> tuple[str, ...]:
        return self._current.place_names()

    def post(self, wecom_user_id: str) -> Post | None:
        return self._current.post(wecom_user_id)

    def areas(self) -> tuple[Area, ...]:
        return self._current.areas()

    def staff(self, level: str, grid_code: str | None) -> tuple[Worker, ...]:
        return self._current.staff(level, grid_code)

    def unit_name(self, unit_id: str) -> str | None:
        return self._current.unit_name(unit_id)

    def area_name(self, grid_code: str, level: str) -> str | None:
        return self._current.area_name(grid_code, level)


@dataclass(frozen=True, slots=True)
class StoredDirectory:
    version: str
    text: str
    author: str
    at: str  # the service clock's time of the import, ISO (shown to people)
    source: str  # the uploaded file's name or the configured path
    written: float  # wall-clock seconds when it was stored (compared with file mtimes)


class DirectoryStore:
    """The current directory in Redis, and this process following it."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._lock = asyncio.Lock()  # one refresh at a time: the last one reads the latest version

    async def current_version(self) -> str | None:
        return await self._redis.get(self._keys.directory_current())

    async def stored(self) -> StoredDirectory | None:
        raw = await self._redis.get(self._keys.directory_text())
        if not raw:
            return None
        data = json.loads(raw)
        return StoredDirectory(
            data["version"], data["text"], data["author"], data["at"], data["source"], float(data["written"])
        )

    async def publish(self, text: str, *, author: str, source: str, now: datetime) -> str:
        """Store an already checked directory text as the current one and tell every process."""
        version = directory_version(text)
        written = time.time()
        record = StoredDirectory(version, text, author, now.isoformat(), source, written)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.directory_text(), json.dumps(dataclasses.asdict(record), ensure_ascii=False))
            pipe.set(self._keys.directory_current(), version)
            pipe.hsetnx(self._keys.directory_versions(), version, repr(written))
            pipe.publish(self._keys.directory_changed(), version)
            await pipe.execute()
        log_event(log, "directory_published", version=version, author=author, source=source)
        return version

    async def refresh(self, live: LiveDirectory, known: tuple[str, GridDirectory] | None = None) -> bool:
        """Switch `live` to the Redis copy when that is another version; True if it switched.

        `known`: (version, directory) just published by this process; saves parsing its text
        again, and is used only while that version is still the current one (a later import
        elsewhere wins).
        """
        async with self._lock:
            version = await self.current_version()
            if version is None or version == live.version:
                return False
            if known is not None and known[0] == version:
                directory = known[1]
            else:
                stored = await self.stored()
                if stored is None or stored.version != version:
                    return False  # replaced meanwhile: its own message follows
                try:
                    directory = GridDirectory.from_text(stored.text, source=f"directory version {version}")
                except DirectoryError as exc:
                    log_event(log, "directory_refused", logging.ERROR, version=version, problems=str(exc))
                    return False
            live.replace(directory, version)
            log_event(log, "directory_switched", version=version, grids=len(directory.grids))
            return True

    async def follow(self, live: LiveDirectory) -> None:
        """Until cancelled: switch `live` whenever a directory is published anywhere."""
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._keys.directory_changed())
                    await self.refresh(live)  # anything published while we were not listening
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            await self.refresh(live)
            except RedisError:
                log_event(log, "directory_watch_lost", logging.WARNING)
                await asyncio.sleep(2.0)

    async def seed(self, path: Path, now: datetime) -> LiveDirectory:
        """At start-up: the configured file or the Redis copy (the rule is in the module's docstring)."""
        text = _read(path)
        version = directory_version(text)
        try:
            stored = await self.stored()
            if stored is None:
                directory = GridDirectory.from_text(text, str(path))
                await self.publish(text, author="startup", source=str(path), now=now)
                return LiveDirectory(directory, version)
            if stored.version == version:
                return LiveDirectory(GridDirectory.from_text(text, str(path)), version)
            stale = await self._redis.hexists(self._keys.directory_versions(), version)
        except RedisError:
            log_event(log, "directory_seed_without_redis", logging.WARNING, file=str(path))
            return LiveDirectory(GridDirectory.from_text(text, str(path)), version)
        if not stale and path.stat().st_mtime > stored.written:
            directory = GridDirectory.from_text(text, str(path))  # an invalid edited file stops the start-up
            with contextlib.suppress(RedisError):  # gone just now: this process runs the file meanwhile
                await self.publish(text, author="startup (newer file)", source=str(path), now=now)
            return LiveDirectory(directory, version)
        try:
            directory = GridDirectory.from_text(stored.text, source=f"directory version {stored.version}")
        except DirectoryError as exc:
            log_event(log, "directory_refused", logging.ERROR, version=stored.version, problems=str(exc))
            return LiveDirectory(GridDirectory.from_text(text, str(path)), version)
        log_event(log, "directory_from_redis", logging.INFO if stale else logging.WARNING, version=stored.version,
                  file=str(path), reason="the file was current before" if stale else "the file is older")
        return LiveDirectory(directory, stored.version)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DirectoryError([Problem(str(path), 1, 1, f"cannot read the grid directory: {exc}")]) from exc
