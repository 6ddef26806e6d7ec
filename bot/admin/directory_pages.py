"""The grid directory (网格名录): grids and workers, a plan, unroutable tickets, importing a new file.

An imported file is checked with the same loader the service uses (`GridDirectory.from_text`);
an invalid one is refused with every problem and its line, and nothing is written. A valid
one replaces the configured directory file (the previous one is kept next to it as
`<name>.<time>.bak`) and takes effect when the service restarts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from aiohttp import web

from bot.admin.context import ADMIN
from bot.admin.data import all_tickets
from bot.admin.guard import session_of
from bot.admin.plan import plan_svg
from bot.app import Services
from flows import DirectoryError, GridDirectory, Problem

MAX_DIRECTORY_BYTES = 2_000_000


async def _page(
    request: web.Request, status: int = 200, problems: tuple[Problem, ...] = (), message: str = "", error: str = ""
) -> web.Response:
    ctx = request.app[ADMIN]
    services = ctx.services
    directory = services.directory
    unroutable = [t for t in await all_tickets(services) if not t.grid_code]
    return ctx.render(
        request,
        "directory.html",
        status=status,
        directory=directory,
        plan=plan_svg(directory) if directory else "",
        unroutable=unroutable,
        problems=problems,
        message=message,
        error=error,
        show_phones=session_of(request).role in ("dispatcher", "admin"),
    )


async def directory_page(request: web.Request) -> web.Response:
    return await _page(request)


def _directory_path(services: Services) -> Path:
    return services.config.path(services.config.flows.directory)


async def directory_import(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        await ctx.record(request, "directory.import", "", "invalid", "no file")
        return await _page(request, 400, error="请选择要导入的名录文件（YAML）。名录没有变化。")
    raw = upload.file.read(MAX_DIRECTORY_BYTES + 1)
    if len(raw) > MAX_DIRECTORY_BYTES:
        await ctx.record(request, "directory.import", upload.filename, "invalid", "too large")
        return await _page(request, 413, error="文件过大（超过 2 MB）。名录没有变化。")
    try:
        text = raw.decode("utf-8")
        imported = GridDirectory.from_text(text, source=upload.filename or "上传的文件")
    except UnicodeDecodeError:
        await ctx.record(request, "directory.import", upload.filename, "invalid", "not UTF-8")
        return await _page(request, 422, error="文件不是 UTF-8 编码的文本。名录没有变化。")
    except DirectoryError as exc:
        await ctx.record(request, "directory.import", upload.filename, "invalid", str(exc))
        return await _page(
            request, 422, problems=exc.problems, error=f"名录文件有 {len(exc.problems)} 处问题，未导入。名录没有变化。"
        )
    target = _directory_path(ctx.services)
    stamp = ctx.now().strftime("%Y%m%d%H%M%S")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    if target.exists():
        shutil.copy2(target, target.with_name(f"{target.name}.{stamp}.bak"))
    os.replace(tmp, target)
    await ctx.record(request, "directory.import", upload.filename, "ok", f"{len(imported.grids)} grids")
    return await _page(
        request,
        message=f"已导入 {len(imported.grids)} 个网格，保存为 {target.name}（原文件已备份），重启服务后生效。",
    )
