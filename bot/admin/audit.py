"""The console's audit log: who did what, when, from where, and whether it worked.

A Redis stream (`admin-audit`), capped at about a million entries; the page reads it newest
first.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from bot.keys import Keys

AUDIT_MAXLEN = 1_000_000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: str
    who: str
    action: str  # "login", "login_failed", "ticket.escalate", "flow.apply", ...
    target: str
    ip: str
    outcome: str  # "ok" | "refused" | "denied" | "invalid" | "locked"
    detail: str = ""


class AuditLog:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def record(
        self, now: datetime, who: str, action: str, target: str, ip: str, outcome: str = "ok", detail: str = ""
    ) -> None:
        entry = AuditEntry(now.isoformat(), who, action, target, ip, outcome, detail[:500])
        values: dict[FieldT, EncodableT] = {f.name: getattr(entry, f.name) for f in fields(entry)}
        await self._redis.xadd(self._keys.admin_audit(), values, maxlen=AUDIT_MAXLEN, approximate=True)

    async def recent(self, count: int = 200, who: str = "", action: str = "") -> list[AuditEntry]:
        """Newest first, optionally only one user's or one kind of action (prefix match)."""
        entries: list[AuditEntry] = []
        last = "+"
        while len(entries) < count:
            batch = await self._redis.xrevrange(self._keys.admin_audit(), max=last, min="-", count=500)
            if not batch:
                break
            for stream_id, data in batch:
                if stream_id == last or not data:
                    continue
                entry = AuditEntry(**{str(k): str(v) for k, v in data.items()})
                if (not who or entry.who == who) and (not action or entry.action.startswith(action)):
                    entries.append(entry)
            if len(batch) < 500:
                break
            last = str(batch[-1][0])
        return entries[:count]
