"""Console users: argon2-hashed passwords, three roles, and lock-out after repeated failures.

A user is one JSON value in Redis (`admin-user:<name>`). Failed logins are counted per
username and per client address in keys that expire with the window, so a lock lifts by
itself; a successful login clears the username's counter.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from bot.keys import Keys

Role = Literal["viewer", "dispatcher", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "dispatcher", "admin")
ROLE_NAMES: dict[str, str] = {"viewer": "查看者", "dispatcher": "调度员", "admin": "管理员"}
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{2,32}$")
MIN_PASSWORD_CHARS = 10


class UserError(ValueError):
    """A user cannot be created as asked; the message is shown to the operator."""


def role_allows(role: str, needed: Role) -> bool:
    """viewer < dispatcher < admin: a role may do everything a lower one may."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: Role
    password_hash: str
    created_at: str

    def to_json(self) -> str:
        fields = {"username": self.username, "role": self.role, "password_hash": self.password_hash}
        return json.dumps({**fields, "created_at": self.created_at})

    @classmethod
    def from_json(cls, raw: str) -> User:
        data = json.loads(raw)
        return cls(data["username"], data["role"], data["password_hash"], data["created_at"])


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    max_per_user: int = 5
    max_per_ip: int = 20  # an office behind one address must not lock itself out by one typo each
    window_seconds: int = 15 * 60


class Users:
    def __init__(self, redis: Redis, keys: Keys, hasher: PasswordHasher | None = None) -> None:
        self._redis = redis
        self._keys = keys
        self._hasher = hasher or PasswordHasher()
        # verified when the username is unknown, so a missing user costs as long as a wrong password
        self._dummy_hash = self._hasher.hash("gridbot-no-such-user")

    async def create(self, username: str, password: str, role: str, now: str) -> User:
        if not USERNAME_RE.fullmatch(username):
            raise UserError("用户名只能包含字母、数字、点、下划线和连字符，长度 2–32")
        if role not in ROLES:
            raise UserError(f"角色必须是 {' / '.join(ROLES)} 之一")
        if len(password) < MIN_PASSWORD_CHARS:
            raise UserError(f"密码至少 {MIN_PASSWORD_CHARS} 个字符")
        password_hash = await asyncio.to_thread(self._hasher.hash, password)
        user = User(username, role, password_hash, now)
        created = await self._redis.set(self._keys.admin_user(username), user.to_json(), nx=True)
        if not created:
            raise UserError(f"用户 {username} 已存在")
        await self._redis.sadd(self._keys.admin_users(), username)
        return user

    async def get(self, username: str) -> User | None:
        raw = await self._redis.get(self._keys.admin_user(username))
        return User.from_json(str(raw)) if raw else None

    async def all(self) -> list[User]:
        names = sorted(str(n) for n in await self._redis.smembers(self._keys.admin_users()))
        raws = await self._redis.mget([self._keys.admin_user(n) for n in names]) if names else []
        return [User.from_json(str(r)) for r in raws if r]

    async def remove(self, username: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.admin_user(username))
            pipe.srem(self._keys.admin_users(), username)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def set_role(self, username: str, role: str) -> User:
        if role not in ROLES:
            raise UserError(f"角色必须是 {' / '.join(ROLES)} 之一")
        user = await self.get(username)
        if user is None:
            raise UserError(f"没有用户 {username}")
        changed = User(user.username, role, user.password_hash, user.created_at)
        await self._redis.set(self._keys.admin_user(username), changed.to_json(), xx=True)
        return changed

    async def verify(self, username: str, password: str) -> User | None:
        """The user when the password matches, else None (same cost either way)."""
        user = await self.get(username) if USERNAME_RE.fullmatch(username) else None
        stored = user.password_hash if user else self._dummy_hash
        try:
            await asyncio.to_thread(self._hasher.verify, stored, password)
        except (VerificationError, InvalidHashError):
            return None
        return user


class Lockout:
    def __init__(self, redis: Redis, keys: Keys, policy: LockoutPolicy) -> None:
        self._redis = redis
        self._keys = keys
        self.policy = policy

    async def locked(self, username: str, ip: str) -> bool:
        user_count, ip_count = await self._redis.mget(
            [self._keys.admin_failures_user(username), self._keys.admin_failures_ip(ip)]
        )
        return int(user_count or 0) >= self.policy.max_per_user or int(ip_count or 0) >= self.policy.max_per_ip

    async def failed(self, username: str, ip: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in (self._keys.admin_failures_user(username), self._keys.admin_failures_ip(ip)):
                pipe.incr(key)
                pipe.expire(key, self.policy.window_seconds, nx=True)
            await pipe.execute()

    async def succeeded(self, username: str) -> None:
        await self._redis.delete(self._keys.admin_failures_user(username))
