"""Reply and notification templates: edit, preview with a sample ticket, apply as an override.

The shipped files (bot/templates/replies, bot/templates/notify) stay untouched; an applied
edit is written to `templates.override_dir` with the same name, which the reply loader reads
first (and re-reads when it changes, so no restart). A template that does not compile is
refused with Jinja2's message and line; so is one that uses a variable the shipped version
does not (the program would not provide it when sending).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2
from aiohttp import web
from jinja2 import meta

from bot.admin.context import ADMIN, AdminContext
from bot.app import Services
from bot.replies import BUILTIN_DIR
from bot.ticketing import TicketView

EDITABLE = ("replies/", "notify/")
MAX_TEMPLATE_CHARS = 20_000
SAMPLE = TicketView(
    number="WG202611240001",
    description="楼下烧烤摊油烟太大，晚上十点以后还在营业",
    category_name="噪声扰民",
    colour_name="红色",
    colour_rhythm="日清周进",
    status_name="已受理",
    level_name="网格",
    unit_name="网格工作组（网格长、网格员）",
    deadline="2026-11-25T17:30:00+08:00",
    card_name="",
    location="幸福路 12 号",
    open=True,
    last_progress="网格员已到现场核实",
)


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    name: str
    overridden: bool


@dataclass(frozen=True, slots=True)
class Checked:
    error: str  # "" when the template may be applied
    line: int  # the line of a syntax error, 0 otherwise
    preview: str


def _override_dir(services: Services) -> Path:
    return services.config.path(services.config.templates.override_dir)


def editable_names(services: Services) -> list[str]:
    return [n for n in services.replies.names() if n.startswith(EDITABLE) and n.count("/") == 1]


def _shipped_source(name: str) -> str:
    path = BUILTIN_DIR / name
    return path.read_text(encoding="utf-8") if path.exists() else ""


async def _sample(ctx: AdminContext) -> TicketView:
    """The newest real ticket when there is one, else a made-up one."""
    services = ctx.services
    newest = await services.redis.zrevrange(services.keys.all_tickets(), 0, 0)
    ticket = await services.tickets.store.get(str(newest[0])) if newest else None
    return services.tickets.view(ticket) if ticket else SAMPLE


def check_template(env: jinja2.Environment, name: str, source: str, sample: TicketView) -> Checked:
    try:
        ast = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return Checked(f"模板语法错误（第 {exc.lineno} 行）：{exc.message}", exc.lineno, "")
    used = meta.find_undeclared_variables(ast)
    shipped = _shipped_source(name)
    if shipped:
        provided = meta.find_undeclared_variables(env.parse(shipped))
        unknown = sorted(used - provided)
        if unknown:
            available = "、".join(sorted(provided)) or "无"
            return Checked(f"模板使用了发送时不会提供的变量：{'、'.join(unknown)}（可用：{available}）", 0, "")
    context: dict[str, object] = {v: f"〔{v}〕" for v in used}
    context.update(t=sample, tickets=[sample], choices=["噪声扰民", "环境卫生", "其他"], to_dispatcher=False)
    try:
        preview = env.from_string(source).render(**{k: v for k, v in context.items() if k in used}).strip()
    except jinja2.TemplateError as exc:
        return Checked(f"预览失败：{exc}", 0, "")
    return Checked("", 0, preview)


async def list_page(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    override = _override_dir(ctx.services)
    infos = [TemplateInfo(n, (override / n).exists()) for n in editable_names(ctx.services)]
    return ctx.render(request, "templates_list.html", templates=infos)


def _no_such_template(request: web.Request, name: str) -> web.Response:
    ctx = request.app[ADMIN]
    return ctx.render(
        request, "error.html", status=404, title="没有这个模板", message=f"没有名为 {name} 的模板。", login=False
    )


async def _edit(
    request: web.Request, name: str, source: str | None, status: int = 200, message: str = ""
) -> web.Response:
    ctx = request.app[ADMIN]
    services = ctx.services
    current = services.replies.env.loader.get_source(services.replies.env, name)[0]  # type: ignore[union-attr]
    text = current if source is None else source
    checked = check_template(services.replies.env, name, text, await _sample(ctx))
    return ctx.render(
        request,
        "template_edit.html",
        status=status,
        name=name,
        text=text,
        line_count=max(1, text.count("\n") + 1),
        checked=checked,
        overridden=(_override_dir(services) / name).exists(),
        message=message,
    )


async def edit_page(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    name = request.query.get("name", "")
    if name not in editable_names(ctx.services):
        return _no_such_template(request, name)
    return await _edit(request, name, None)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".j2")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


async def edit_submit(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    services = ctx.services
    form = await request.post()
    name = str(form.get("name", ""))
    op = str(form.get("op", "preview"))
    text = str(form.get("text", "")).replace("\r\n", "\n")
    if name not in editable_names(services):
        await ctx.record(request, "template.apply", name, "invalid", "unknown template")
        return _no_such_template(request, name)
    target = _override_dir(services) / name
    if op == "reset":
        target.unlink(missing_ok=True)
        await ctx.record(request, "template.reset", name)
        return await _edit(request, name, None, message="已恢复为系统自带的版本。")
    if len(text) > MAX_TEMPLATE_CHARS:
        return await _edit(request, name, text[:MAX_TEMPLATE_CHARS], 413)
    checked = check_template(services.replies.env, name, text, await _sample(ctx))
    if op != "apply":
        return await _edit(request, name, text, 422 if checked.error else 200)
    if checked.error:
        await ctx.record(request, "template.apply", name, "invalid", checked.error)
        return await _edit(request, name, text, 422)
    _write_atomically(target, text)
    await ctx.record(request, "template.apply", name)
    return await _edit(request, name, None, message="已应用，新消息立即使用此模板。")
