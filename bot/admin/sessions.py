"""Console sessions in Redis: a random token in an HttpOnly cookie, a CSRF token per session.

Only the SHA-256 of the cookie token is used as the key, so reading Redis does not hand out
live sessions. A session ends after `idle_seconds` without a request or `max_seconds` after
login, whichever comes first; the times are checked against the service clock, and the key
also carries a Redis TTL so abandoned sessions disappear.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from redis.asyncio import Redis

from bot.keys import Keys

COOKIE = "gridbot_admin"


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle_seconds: int = 2 * 3600
    max_seconds: int = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    username: str
    role: str
    csrf: str
    created_at: datetime
    expires_at: datetime
    ip: str

    def csrf_ok(self, submitted: str) -> bool:
        return bool(submitted) and hmac.compare_digest(self.csrf.encode(), submitted.encode())

    def to_json(self) -> str:
        return json.dumps(
            {
                "username": self.username,
                "role": self.role,
                "csrf": self.csrf,
                "created_at": self.created_at.isoformat(),
                "expires_at": self.expires_at.isoformat(),
                "ip": self.ip,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> Session:
        d = json.loads(raw)
        return cls(
            d["username"],
            d["role"],
            d["csrf"],
            datetime.fromisoformat(d["created_at"]),
            datetime.fromisoformat(d["expires_at"]),
            d["ip"],
        )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(self, redis: Redis, keys: Keys, policy: SessionPolicy) -> None:
        self._redis = redis
        self._keys = keys
        self.policy = policy

    async def start(self, username: str, role: str, ip: str, now: datetime) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(
            username=username,
            role=role,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + timedelta(seconds=self.policy.idle_seconds),
            ip=ip,
        )
        await self._save(token, session)
        return token, session

    async def resume(self, token: str, now: datetime) -> Session | None:
        """The live session for this token (its idle expiry pushed forward), or None."""
        if not token:
            return None
        raw = await self._redis.get(self._keys.admin_session(_digest(token)))
        if raw is None:
            return None
        session = Session.from_json(str(raw))
        if now >= session.expires_at:
            await self.end(token)
            return None
        hard_end = session.created_at + timedelta(seconds=self.policy.max_seconds)
        session = replace(session, expires_at=min(now + timedelta(seconds=self.policy.idle_seconds), hard_end))
        await self._save(token, session)
        return session

    async def end(self, token: str) -> None:
        await self._redis.delete(self._keys.admin_session(_digest(token)))

    async def _save(self, token: str, session: Session) -> None:
        await self._redis.set(self._keys.admin_session(_digest(token)), session.to_json(), ex=self.policy.max_seconds)
