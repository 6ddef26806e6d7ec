"""Every console request passes here: a live session, a valid CSRF token on every POST, a role.

Nothing behind the guard runs for a request that fails it, so a refused request changes
nothing; each refusal is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from urllib.parse import quote

from aiohttp import web

from bot.admin.auth import ROLE_NAMES, Role, role_allows
from bot.admin.context import ADMIN, SESSION
from bot.admin.sessions import COOKIE, Session

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PREFIXES = ("/admin/login", "/admin/static/")


@web.middleware
async def session_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    ctx = request.app[ADMIN]
    token = request.cookies.get(COOKIE, "")
    session = await ctx.sessions.resume(token, ctx.now())
    user = await ctx.users.get(session.username) if session is not None else None
    if session is not None and user is None:  # the account was removed: its sessions end with it
        await ctx.sessions.end(token)
        session = None
    if session is None or user is None:
        reason = "expired" if token else "login"
        if request.method == "GET":
            raise web.HTTPSeeOther(f"/admin/login?reason={reason}&next={quote(request.path_qs)}")
        message = "登录已过期，请重新登录后再提交。" if token else "请先登录。"
        await ctx.record(request, "request", request.path, "denied", "no session")
        return ctx.render(request, "error.html", status=401, title="需要登录", message=message, login=True)
    request[SESSION] = replace(session, role=user.role)  # a changed role counts from the next request
    if request.method == "POST":
        form = await request.post()
        submitted = form.get("csrf", "")
        if not isinstance(submitted, str) or not session.csrf_ok(submitted):
            await ctx.record(request, "request", request.path, "denied", "missing or wrong CSRF token")
            return ctx.render(
                request,
                "error.html",
                status=403,
                title="表单已失效",
                message="表单缺少有效的安全令牌（CSRF），操作没有执行。请返回上一页、刷新后重新提交。",
                login=False,
            )
    return await handler(request)


def session_of(request: web.Request) -> Session:
    return request[SESSION]


def requires(role: Role, handler: Handler) -> Handler:
    """Wrap a handler so only `role` or a higher one may call it (403 page otherwise)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        session = session_of(request)
        if not role_allows(session.role, role):
            ctx = request.app[ADMIN]
            await ctx.record(request, "request", request.path, "denied", f"role {session.role} < {role}")
            return ctx.render(
                request,
                "error.html",
                status=403,
                title="没有权限",
                message=(
                    f"您的角色是「{ROLE_NAMES.get(session.role, session.role)}」，"
                    f"此操作需要「{ROLE_NAMES[role]}」或更高权限。操作没有执行。"
                ),
                login=False,
            )
        return await handler(request)

    return guarded
