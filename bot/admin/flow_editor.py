"""The flow editor: the running YAML, check, diff, simulate, apply without restart, history, rollback.

Check runs the same checks as `gridbot flows check` (`flows.check_flow_text`), so every
problem points at a line. Apply goes through `FlowVersions.apply`, which checks again, stores
the text as a version, makes it current and tells every process (pub/sub); this process
switches at once. A refused text changes nothing.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from aiohttp import web

from bot.admin.context import ADMIN, AdminContext
from bot.admin.guard import session_of
from bot.app import template_names
from flows import FlowError, Problem, check_flow_text, simulate
from flows.diagram import render_svg
from nlu.taxonomy import load_categories

MAX_FLOW_CHARS = 200_000


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: str  # "add" | "del" | "hunk" | "same"
    text: str


def diff_lines(running: str, edited: str) -> tuple[DiffLine, ...]:
    lines = difflib.unified_diff(
        running.splitlines(), edited.splitlines(), fromfile="运行中的版本", tofile="编辑中的版本", lineterm="", n=3
    )
    out = []
    for line in lines:
        if line.startswith(("+++", "---")):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        elif line.startswith("@@"):
            kind = "hunk"
        else:
            kind = "same"
        out.append(DiffLine(kind, line))
    return tuple(out)


def check(ctx: AdminContext, text: str) -> list[Problem]:
    services = ctx.services
    return check_flow_text(
        text,
        source="编辑中的流程",
        known_categories=[c.id for c in load_categories()],
        known_templates=template_names(services.replies),
        today=ctx.now().date(),
    )


async def _running(ctx: AdminContext) -> tuple[str, str]:
    """(version, YAML text) of the flow in force."""
    services = ctx.services
    version = services.flows.flow.version
    text = await services.flow_versions.text(version)
    if text is None:  # seeded without Redis: the configured file
        text = services.config.path(services.config.flows.file).read_text(encoding="utf-8")
    return version, text


async def _page(
    request: web.Request,
    text: str | None = None,
    status: int = 200,
    **extra: object,
) -> web.Response:
    ctx = request.app[ADMIN]
    version, running = await _running(ctx)
    edited = running if text is None else text
    problems: list[Problem] = extra.pop("problems", [])  # type: ignore[assignment]
    values = {
        "message": "",
        "error": "",
        "diff": None,
        "simulation": None,
        "script": "",
        "category": "",
        **extra,
    }
    return ctx.render(
        request,
        "flows.html",
        status=status,
        version=version,
        text=edited,
        line_count=max(1, edited.count("\n") + 1),
        problems=problems,
        bad_lines={p.line for p in problems if p.severity == "error"},
        history=await ctx.services.flow_versions.history(),
        diagram=render_svg(ctx.services.flows.flow),
        categories=[c.id for c in load_categories()],
        **values,
    )


async def editor_page(request: web.Request) -> web.Response:
    return await _page(request)


async def editor_submit(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    form = await request.post()
    text = str(form.get("text", "")).replace("\r\n", "\n")
    op = str(form.get("op", "check"))
    if len(text) > MAX_FLOW_CHARS:
        return await _page(request, status=413, error=f"流程文件过大（超过 {MAX_FLOW_CHARS} 个字符），未作处理。")
    problems = check(ctx, text)
    errors = [p for p in problems if p.severity == "error"]
    _, running = await _running(ctx)
    if op == "diff":
        diff = diff_lines(running, text)
        same = "" if diff else "与运行中的版本没有差别。"
        return await _page(request, text, diff=diff, problems=problems, message=same)
    if op == "simulate":
        script = str(form.get("script", ""))
        category = str(form.get("category", ""))
        if errors:
            return await _page(
                request,
                text,
                422,
                problems=problems,
                script=script,
                category=category,
                error="流程有错误，无法模拟。请先按下方提示修改。",
            )
        flow = ctx.services.flow_versions.parse(text, "编辑中的流程")
        if category not in flow.categories and category != "other":
            return await _page(
                request,
                text,
                400,
                problems=problems,
                script=script,
                category=category,
                error=f"流程里没有类别「{category}」。",
            )
        try:
            result = simulate(flow, category, ctx.now(), script)
        except ValueError as exc:
            return await _page(
                request,
                text,
                400,
                problems=problems,
                script=script,
                category=category,
                error=f"模拟事件写法有误：{exc}",
            )
        return await _page(request, text, problems=problems, simulation=result, script=script, category=category)
    if op == "apply":
        user = session_of(request).username
        if errors:
            await ctx.record(request, "flow.apply", "", "invalid", f"{len(errors)} error(s), first: {errors[0]}")
            error = "流程有错误，未应用，运行中的流程没有变化。"
            return await _page(request, text, 422, problems=problems, error=error)
        try:
            flow = await ctx.services.flow_versions.apply(text, author=user, source=f"console:{user}", now=ctx.now())
        except FlowError as exc:
            await ctx.record(request, "flow.apply", "", "invalid", str(exc))
            return await _page(request, text, 422, problems=list(exc.problems), error="流程有错误，未应用。")
        ctx.services.flows.set_current(flow)
        await ctx.record(request, "flow.apply", flow.version, "ok")
        return await _page(request, message=f"已应用新版本 {flow.version}，无需重启；其他进程会立即切换。")
    message = "检查通过，没有错误。" if not errors else ""
    error = f"发现 {len(errors)} 处错误，请按行号修改。" if errors else ""
    return await _page(request, text, 422 if errors else 200, problems=problems, message=message, error=error)


async def rollback(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    form = await request.post()
    version = str(form.get("version", ""))
    user = session_of(request).username
    try:
        flow = await ctx.services.flow_versions.activate(version, author=user, now=ctx.now())
    except KeyError:
        await ctx.record(request, "flow.rollback", version, "invalid", "unknown version")
        return await _page(request, status=404, error=f"没有版本 {version}，运行中的流程没有变化。")
    except FlowError as exc:
        await ctx.record(request, "flow.rollback", version, "invalid", str(exc))
        return await _page(
            request, status=422, problems=list(exc.problems), error=f"版本 {version} 不能通过当前的检查，未回滚。"
        )
    ctx.services.flows.set_current(flow)
    await ctx.record(request, "flow.rollback", version, "ok")
    return await _page(request, message=f"已回滚到版本 {version}。")
