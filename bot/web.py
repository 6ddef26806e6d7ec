"""HTTP routes of the service itself: health, readiness, metrics, the chat page, channels."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot import hotline, open311, openapi, sms, wechat
from bot.admin import setup as setup_admin
from bot.app import SERVICES
from integrations.base import IncomingMessage, Reply
from integrations.rest import RestChannel

CHAT_PAGE = Path(__file__).parent / "templates" / "web" / "chat.html"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    checks: dict[str, bool] = {}
    try:
        checks["redis"] = bool(await services.redis.ping())
    except Exception:
        checks["redis"] = False
    checks["flow"] = services.flows.flow is not None
    check_nlu = getattr(services.nlu, "check", None)  # Rasa: ask the server rather than wait for a parse
    checks["nlu"] = services.nlu.ready or (check_nlu is not None and await check_nlu())
    ready = all(checks.values())
    body = {
        "status": "ready" if ready else "not_ready",
        "checks": checks,
        "flow_version": services.flows.flow.version,
        "nlu": services.nlu.name,
    }
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICES].metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def chat_page(request: web.Request) -> web.Response:
    return web.Response(text=CHAT_PAGE.read_text(encoding="utf-8"), content_type="text/html", charset="utf-8")


def setup(app: web.Application) -> None:
    async def dispatch(msg: IncomingMessage) -> list[Reply]:
        return await app[SERVICES].dispatcher.handle(msg)

    app.router.add_get("/", chat_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_routes(RestChannel(dispatch).routes())
    # the unified number (issue 6): SMS, the hotline console, Open311 and the OpenAPI document
    sms.setup(app)
    hotline.setup(app)
    open311.setup(app)
    openapi.setup(app)
    setup_admin(app)  # the admin and dispatcher console under /admin (issue 7)
    wechat.setup(app)  # /wechat/mp, /wechat/work, workers' /tasks pages, WeChat deliverers (issue 5)
