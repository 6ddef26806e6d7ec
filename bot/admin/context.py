"""What every console handler needs, built once per process next to the core `Services`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from bot.admin.audit import AuditLog
from bot.admin.auth import ROLE_NAMES, Lockout, LockoutPolicy, Users
from bot.admin.names import Names
from bot.admin.sessions import Session, SessionPolicy, Sessions
from bot.app import Services
from bot.logs import mask_phone
from bot.replies import cn_datetime

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "admin"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# scripts and images only from the service itself; inline style attributes are allowed
CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'"
)


DELIVERY_NAMES = {
    "sending": "发送中",
    "sent": "已送达",
    "queued": "排队合并中",
    "retrying": "等待重试",
    "dead": "投递失败（已转人工）",
    "uncertain": "结果不确定",
    "no_channel": "无可用渠道",
}


@dataclass(frozen=True, slots=True)
class AdminSettings:
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)


def page_environment() -> jinja2.Environment:
    """HTML pages: autoescaped, undefined names are errors (a typo must not render as blank)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["mask_phone"] = mask_phone
    env.filters["cn_datetime"] = cn_datetime
    env.filters["pct"] = lambda v: "—" if v is None else f"{v * 100:.1f}%"
    env.globals["role_names"] = ROLE_NAMES
    env.globals["delivery_names"] = DELIVERY_NAMES
    return env


@dataclass(frozen=True, slots=True)
class AdminContext:
    services: Services
    users: Users
    sessions: Sessions
    lockout: Lockout
    audit: AuditLog
    pages: jinja2.Environment

    @classmethod
    def build(cls, services: Services, settings: AdminSettings) -> AdminContext:
        return cls(
            services=services,
            users=Users(services.redis, services.keys),
            sessions=Sessions(services.redis, services.keys, settings.sessions),
            lockout=Lockout(services.redis, services.keys, settings.lockout),
            audit=AuditLog(services.redis, services.keys),
            pages=page_environment(),
        )

    def now(self) -> datetime:
        return self.services.clock()

    def render(self, request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
        session = request.get(SESSION)
        text = self.pages.get_template(template).render(
            session=session,
            csrf=session.csrf if session else "",
            path=request.path,
            names=Names(self.services),
            **context,
        )
        response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        return response

    async def record(
        self, request: web.Request, action: str, target: str = "", outcome: str = "ok", detail: str = ""
    ) -> None:
        session = request.get(SESSION)
        who = session.username if session else "-"
        await self.audit.record(self.now(), who, action, target, client_ip(request), outcome, detail)


ADMIN = web.AppKey("admin", AdminContext)
SESSION = web.RequestKey("admin.session", Session)  # the logged-in session


def client_ip(request: web.Request) -> str:
    """The peer address (the console is served directly or behind a proxy the operator trusts)."""
    return request.remote or "-"
