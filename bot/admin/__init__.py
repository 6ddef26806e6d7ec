"""The admin and dispatcher console under /admin: a sub-application with its own session guard.

Mounted by `bot.web.setup` with `admin.setup(app)`. Pages are server-rendered Jinja2
(bot/templates/admin), static files (CSS, the vendored Chart.js) come from bot/static.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bot.admin import dashboard, directory_pages, flow_editor, login, template_editor, ticket_pages
from bot.admin.context import ADMIN, STATIC_DIR, AdminContext, AdminSettings
from bot.admin.guard import requires, session_guard
from bot.app import SERVICES


def build(parent: web.Application, settings: AdminSettings) -> web.Application:
    admin = web.Application(middlewares=[session_guard])

    async def context(app: web.Application) -> AsyncIterator[None]:
        app[ADMIN] = AdminContext.build(parent[SERVICES], settings)
        yield

    admin.cleanup_ctx.append(context)
    r = admin.router
    r.add_static("/static", STATIC_DIR)
    r.add_get("/login", login.login_form)
    r.add_post("/login", login.login_submit)
    r.add_post("/logout", requires("viewer", login.logout))
    r.add_get("/audit", requires("admin", login.audit_page))
    r.add_get("/users", requires("admin", login.users_page))
    r.add_post("/users", requires("admin", login.users_submit))

    r.add_get("/", requires("viewer", dashboard.dashboard_page))
    r.add_get("/assessment.csv", requires("viewer", dashboard.assessment_csv))

    r.add_get("/tickets", requires("viewer", ticket_pages.queue_page))
    r.add_get("/tickets/{number}", requires("viewer", ticket_pages.ticket_page))
    r.add_get("/tickets/{number}/photos/{index:[0-9]{1,4}}", requires("viewer", ticket_pages.ticket_photo))
    r.add_post("/tickets/{number}/act", requires("dispatcher", ticket_pages.ticket_action))
    r.add_post("/tickets/{number}/migrate", requires("admin", ticket_pages.ticket_migrate))

    r.add_get("/flows", requires("admin", flow_editor.editor_page))
    r.add_post("/flows", requires("admin", flow_editor.editor_submit))
    r.add_post("/flows/rollback", requires("admin", flow_editor.rollback))

    r.add_get("/templates", requires("admin", template_editor.list_page))
    r.add_get("/templates/edit", requires("admin", template_editor.edit_page))
    r.add_post("/templates/edit", requires("admin", template_editor.edit_submit))

    r.add_get("/directory", requires("viewer", directory_pages.directory_page))
    r.add_post("/directory", requires("admin", directory_pages.directory_import))
    return admin


def setup(app: web.Application, settings: AdminSettings | None = None) -> None:
    app.add_subapp("/admin", build(app, settings or AdminSettings()))
