"""API keys of Open311 clients: issued and revoked by an admin, stored only as SHA-256 hashes.

A key is 32 random bytes (URL-safe base64) behind a `g311_` prefix, so a plain hash is enough:
there is nothing to guess, and reading Redis does not hand out working keys. The hash field
holds the client's record; its `id` is the reporter id of every ticket the client files.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime

from redis.asyncio import Redis

from bot.keys import Keys

KEY_PREFIX = "g311_"
MAX_NAME_CHARS = 64


@dataclass(frozen=True, slots=True)
class ApiClient:
    id: str  # short, stable, not secret: "c-" + 8 hex characters
    name: str
    created_at: str


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def create(self, name: str, now: datetime) -> tuple[str, ApiClient]:
        name = name.strip()
        if not name or len(name) > MAX_NAME_CHARS:
            raise ValueError(f"the client name must be 1 to {MAX_NAME_CHARS} characters")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        client = ApiClient(id=f"c-{secrets.token_hex(4)}", name=name, created_at=now.isoformat())
        await self._redis.hset(self._keys.api_keys(), _digest(key), json.dumps(asdict(client), ensure_ascii=False))
        return key, client

    async def verify(self, key: str) -> ApiClient | None:
        if not key.startswith(KEY_PREFIX):
            return None
        raw = await self._redis.hget(self._keys.api_keys(), _digest(key))
        return ApiClient(**json.loads(raw)) if raw else None

    async def revoke(self, key: str) -> bool:
        return bool(await self._redis.hdel(self._keys.api_keys(), _digest(key)))
