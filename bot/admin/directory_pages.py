"""The grid directory (网格名录): grids and workers, a plan, unroutable tickets, importing a new file.

An imported file is checked with the same loader the service uses (`GridDirectory.from_text`);
an invalid one is refused with every problem and its line, and nothing is written. A valid
one is stored in Redis as the current directory (bot/directory_holder.py), which every process
sharing that Redis switches to at once (routing, workers, notifications, the NLU's place
names), and replaces the configured directory file of this machine (the previous one is kept
next to it as `<name>.<time>.bak`). If Redis cannot be written, nothing changes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from aiohttp import web
from redis.exceptions import RedisError

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
    services = ctx.services
    live = services.directory
    if live is None:
        await ctx.record(request, "directory.import", upload.filename, "invalid", "no flows.directory configured")
        return await _page(request, 409, error="配置中没有名录文件（flows.directory），不能导入。名录没有变化。")
    target = _directory_path(services)
    stamp = ctx.now().strftime("%Y%m%d%H%M%S")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".yaml")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        await ctx.record(request, "directory.import", upload.filename, "refused", f"cannot write: {exc}")
        return await _page(request, 500, error=f"名录文件无法写入（{exc.strerror or exc}）。名录没有变化。")
    session = session_of(request)
    try:
        version = await services.directory_store.publish(
            text, author=session.username, source=upload.filename or "上传的文件", now=ctx.now()
        )
    except RedisError:
        os.unlink(tmp)
        return web.Response(status=503, text="Redis 暂时不可用，名录未导入。名录没有变化。")
    if target.exists():
        shutil.copy2(target, target.with_name(f"{target.name}.{stamp}.bak"))
    os.replace(tmp, target)
    # this process at once (the others follow the Redis message); a later import elsewhere wins
    with contextlib.suppress(RedisError):  # if Redis went away just now, the follower catches up
        await services.directory_store.refresh(live, known=(version, imported))
    await ctx.record(
        request, "directory.import", upload.filename, "ok", f"{len(imported.grids)} grids, version {version}"
    )
    return await _page(
        request,
        message=f"已导入 {len(imported.grids)} 个网格（版本 {version}），已在所有服务进程生效；"
        f"保存为 {target.name}（原文件已备份）。",
    )
