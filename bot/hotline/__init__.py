"""The hotline operator console at /admin/hotline/, behind the console login (bot/admin).

While on a call the operator types what the caller says; the page asks `/suggest` for the
NLU's category, colour and emergency flag, the directory's grid for the address, and open
tickets in the same grid and category (possible duplicates). The operator corrects and
confirms; the ticket opens on channel `hotline` with the caller's phone as reporter, and the
caller gets an SMS with the number (unless the number sent 退订/TD). `/lookup` lists a
caller's tickets by phone (called in or texted) with a status text to read aloud.

A sub-application of its own under /admin/hotline, so the console's session cookie (path
/admin) reaches it; it runs the console's `session_guard` (session, CSRF on every POST) and
every route needs the dispatcher role.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bot.admin.context import ADMIN, AdminContext, AdminSettings
from bot.admin.guard import requires, session_guard
from bot.app import SERVICES
from bot.hotline.console import HOTLINE, HotlineConsole

PATH = "/admin/hotline"


def build(parent: web.Application) -> web.Application:
    hotline = web.Application(middlewares=[session_guard])

    async def context(app: web.Application) -> AsyncIterator[None]:
        app[ADMIN] = AdminContext.build(parent[SERVICES], AdminSettings())
        app[HOTLINE] = HotlineConsole(parent[SERVICES])
        yield

    hotline.cleanup_ctx.append(context)
    r = hotline.router
    r.add_get("/", requires("dispatcher", lambda request: request.app[HOTLINE].page(request)))
    r.add_post("/suggest", requires("dispatcher", lambda request: request.app[HOTLINE].suggest(request)))
    r.add_post("/tickets", requires("dispatcher", lambda request: request.app[HOTLINE].file_ticket(request)))
    r.add_get("/lookup", requires("dispatcher", lambda request: request.app[HOTLINE].lookup(request)))
    return hotline


def setup(app: web.Application) -> None:
    app.add_subapp(PATH, build(app))
