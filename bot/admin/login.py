"""Log in, log out, the audit log page and the user list."""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from bot.admin.auth import ROLE_NAMES, UserError
from bot.admin.context import ADMIN, client_ip
from bot.admin.guard import session_of
from bot.admin.sessions import COOKIE

LOGIN_CSRF_COOKIE = "gridbot_login_csrf"
REASONS = {"expired": "登录已过期，请重新登录。", "login": "请先登录。", "logout": "您已退出登录。"}


def _safe_next(target: str) -> str:
    """Only a path inside the console: never an absolute URL or //host (open redirect)."""
    if target.startswith("/admin") and not target.startswith("//") and "\\" not in target:
        return target
    return "/admin/"


def _see_other(location: str) -> web.Response:
    """A 303 that can carry cookies (raising HTTPSeeOther would drop the ones set here)."""
    return web.Response(status=303, headers={"Location": location})


def _login_page(
    request: web.Request, status: int, error: str = "", notice: str = "", username: str = ""
) -> web.Response:
    ctx = request.app[ADMIN]
    token = secrets.token_urlsafe(24)
    response = ctx.render(
        request,
        "login.html",
        status=status,
        error=error,
        notice=notice,
        username=username,
        login_csrf=token,
        next=_safe_next(request.query.get("next", "/admin/")),
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/admin/login", secure=request.secure
    )
    return response


async def login_form(request: web.Request) -> web.Response:
    return _login_page(request, 200, notice=REASONS.get(request.query.get("reason", ""), ""))


async def login_submit(request: web.Request) -> web.StreamResponse:
    ctx = request.app[ADMIN]
    form = await request.post()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    ip = client_ip(request)
    now = ctx.now()
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    form_token = str(form.get("csrf", ""))
    if not cookie_token or not hmac.compare_digest(cookie_token.encode(), form_token.encode()):
        await ctx.audit.record(now, username or "-", "login", "", ip, "denied", "missing or wrong CSRF token")
        return _login_page(request, 403, error="登录表单已失效，请重新输入后提交。", username=username)
    if await ctx.lockout.locked(username, ip):
        await ctx.audit.record(now, username or "-", "login", "", ip, "locked")
        minutes = ctx.lockout.policy.window_seconds // 60
        return _login_page(
            request, 429, error=f"登录失败次数过多，已暂时锁定，请 {minutes} 分钟后再试。", username=username
        )
    user = await ctx.users.verify(username, password)
    if user is None:
        await ctx.lockout.failed(username, ip)
        await ctx.audit.record(now, username or "-", "login", "", ip, "refused", "wrong username or password")
        return _login_page(request, 401, error="用户名或密码错误。", username=username)
    await ctx.lockout.succeeded(username)
    token, _ = await ctx.sessions.start(user.username, user.role, ip, now)
    await ctx.audit.record(now, user.username, "login", "", ip, "ok", f"role {user.role}")
    response = _see_other(_safe_next(str(form.get("next", "/admin/"))))
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Lax",
        path="/admin",
        secure=request.secure,
        max_age=ctx.sessions.policy.max_seconds,
    )
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/admin/login")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    ctx = request.app[ADMIN]
    await ctx.sessions.end(request.cookies.get(COOKIE, ""))
    await ctx.record(request, "logout")
    response = _see_other("/admin/login?reason=logout")
    response.del_cookie(COOKIE, path="/admin")
    return response


async def audit_page(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    who = request.query.get("who", "").strip()
    action = request.query.get("action", "").strip()
    entries = await ctx.audit.recent(300, who=who, action=action)
    return ctx.render(request, "audit.html", entries=entries, who=who, action=action)


async def users_page(request: web.Request, status: int = 200, message: str = "", error: str = "") -> web.Response:
    ctx = request.app[ADMIN]
    me = session_of(request).username
    users = await ctx.users.all()
    return ctx.render(request, "users.html", status=status, users=users, me=me, message=message, error=error)


async def users_submit(request: web.Request) -> web.Response:
    """Create an account, change a role or remove an account (never one's own: no admin locks everyone out)."""
    ctx = request.app[ADMIN]
    form = await request.post()
    op = str(form.get("op", ""))
    username = str(form.get("username", "")).strip()
    role = str(form.get("role", ""))
    if username == session_of(request).username and op in ("role", "remove"):
        await ctx.record(request, f"user.{op}", username, "invalid", "own account")
        return await users_page(request, 400, error="不能修改或删除自己的账号。")
    try:
        if op == "create":
            await ctx.users.create(username, str(form.get("password", "")), role, ctx.now().isoformat())
            message = f"已创建账号 {username}。"
        elif op == "role":
            await ctx.users.set_role(username, role)
            message = f"已将 {username} 的角色改为「{ROLE_NAMES.get(role, role)}」，下一次请求起生效。"
        elif op == "remove":
            if not await ctx.users.remove(username):
                raise UserError(f"没有用户 {username}")
            message = f"已删除账号 {username}，其登录会话随即失效。"
        else:
            raise UserError("未知的操作")
    except UserError as exc:
        await ctx.record(request, f"user.{op}", username, "invalid", str(exc))
        return await users_page(request, 400, error=f"{exc}。账号没有变化。")
    await ctx.record(request, f"user.{op}", username, "ok", role)
    return await users_page(request, message=message)
