"""Open311 GeoReport v2 under /open311/v2/, backed by the same ticket queue as every channel.

- services: our report categories (service_code = category id).
- POST requests: needs an `api_key` (`gridbot apikeys create`); the ticket opens on channel
  `open311` with the client's id as reporter, routed to a grid by lat/long or address.
- GET requests / requests/{id}: only requests filed through Open311. Residents who wrote on
  WeChat, texted or called did not publish their reports, so their tickets are not listed
  here; descriptions are shown with phone numbers masked, contact fields never.
- Our statuses map to `open` / `closed` (closed = a final status: closed, withdrawn,
  duplicate, invalid); `status_notes` is the latest progress, `expected_datetime` the
  deadline while open.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import timedelta

from aiohttp import web

from bot.apikeys import ApiKeys
from bot.app import SERVICES, Services
from bot.logs import log_event, mask_phone
from bot.ticketing import ReportDraft
from bot.tickets import Ticket
from integrations.open311.georeport import (
    CreatedRequest,
    Format,
    GeoReportError,
    RequestQuery,
    Service,
    ServiceRequest,
    parse_new_request,
    parse_query,
    read_fields,
    render_created,
    render_definition,
    render_error,
    render_requests,
    render_services,
)
from integrations.sms.phone import normalize_phone
from nlu.taxonomy import load_categories

log = logging.getLogger("gridbot.open311")

CHANNEL = "open311"
PREFIX = "/open311/v2"
BATCH = 200


def _respond(rendered: tuple[bytes, str], status: int = 200) -> web.Response:
    body, content_type = rendered
    return web.Response(body=body, status=status, content_type=content_type, charset="utf-8")


def _fmt(request: web.Request) -> Format:
    return "xml" if request.match_info.get("fmt") == "xml" else "json"


def _error(request: web.Request, error: GeoReportError) -> web.Response:
    return _respond(render_error(_fmt(request), error), status=error.status)


class Open311:
    def __init__(self, services: Services) -> None:
        self._s = services
        self._catalogue = {
            c.id: Service(service_code=c.id, service_name=c.name_zh, description=c.description, keywords=c.description)
            for c in load_categories()
        }
        self._api_keys = ApiKeys(services.redis, services.keys)

    # ---------------------------------------------------------------- services
    async def services(self, request: web.Request) -> web.Response:
        return _respond(render_services(_fmt(request), list(self._catalogue.values())))

    async def definition(self, request: web.Request) -> web.Response:
        service = self._catalogue.get(request.match_info["code"])
        if service is None:
            return _error(request, GeoReportError(404, "no service with this service_code"))
        return _respond(render_definition(_fmt(request), service))

    # ---------------------------------------------------------------- requests
    async def create(self, request: web.Request) -> web.Response:
        cfg = self._s.config.open311
        try:
            form = read_fields(request.content_type, await request.read())
            form.setdefault("api_key", request.query.get("api_key", ""))
            new = parse_new_request(form, cfg.max_description_chars)
            client = await self._api_keys.verify(new.api_key)
            if client is None:
                raise GeoReportError(403, "api_key is not valid")
            if new.service_code not in self._catalogue:
                raise GeoReportError(400, "service_code is not one of services.json")
            phone = normalize_phone(new.phone) if new.phone else None
            if new.phone and phone is None:
                raise GeoReportError(400, "phone is not a phone number")
        except GeoReportError as exc:
            return _error(request, exc)
        draft = ReportDraft(
            description=new.description,
            category=new.service_code,
            location_text=new.address_string,
            lat=new.lat,
            lon=new.long,
            phone=phone,
            media_ids=(new.media_url,) if new.media_url else (),
        )
        ticket = await self._s.tickets.open(CHANNEL, client.id, draft, self._s.clock())
        self._s.metrics.tickets_opened.labels(CHANNEL, new.service_code).inc()
        log_event(log, "ticket_opened", ticket=ticket.number, channel=CHANNEL, client=client.id)
        created = CreatedRequest(service_request_id=ticket.number, account_id=new.account_id or None)
        return _respond(render_created(_fmt(request), created))

    async def one(self, request: web.Request) -> web.Response:
        ticket = await self._s.tickets.store.get(request.match_info["id"].upper())
        if ticket is None or ticket.channel != CHANNEL:
            return _error(request, GeoReportError(404, "no service request with this id"))
        return _respond(render_requests(_fmt(request), [self._request(ticket)]))

    async def search(self, request: web.Request) -> web.Response:
        try:
            query = parse_query(request.query)
        except GeoReportError as exc:
            return _error(request, exc)
        tickets = await (self._by_ids(query.ids) if query.ids else self._by_filters(query))
        return _respond(render_requests(_fmt(request), [self._request(t) for t in tickets]))

    async def _by_ids(self, ids: Iterable[str]) -> list[Ticket]:
        found = await self._s.tickets.store.get_many([i.upper() for i in ids][: self._s.config.open311.max_results])
        return [t for t in found if t.channel == CHANNEL]

    async def _by_filters(self, query: RequestQuery) -> list[Ticket]:
        cfg = self._s.config.open311
        end = query.end or self._s.clock()
        start = query.start or end - timedelta(days=cfg.default_days)
        redis, key = self._s.redis, self._s.keys.all_tickets()
        found: list[Ticket] = []
        offset = 0
        while len(found) < cfg.max_results:
            page = await redis.zrevrangebyscore(key, end.timestamp(), start.timestamp(), start=offset, num=BATCH)
            numbers = [str(n) for n in page]
            if not numbers:
                break
            offset += len(numbers)
            for ticket in await self._s.tickets.store.get_many(numbers):
                if ticket.channel != CHANNEL:
                    continue
                if query.service_codes and ticket.flow.category not in query.service_codes:
                    continue
                if query.statuses and self._status(ticket) not in query.statuses:
                    continue
                found.append(ticket)
        return found[: cfg.max_results]

    def _status(self, ticket: Ticket) -> str:
        return "open" if self._s.tickets.view(ticket).open else "closed"

    def _request(self, ticket: Ticket) -> ServiceRequest:
        view = self._s.tickets.view(ticket)
        media = next((m for m in ticket.media_ids if m.startswith(("http://", "https://"))), None)
        return ServiceRequest(
            service_request_id=ticket.number,
            status="open" if view.open else "closed",
            status_notes=view.last_progress,
            service_name=view.category_name,
            service_code=ticket.flow.category,
            description=mask_phone(ticket.description),
            agency_responsible=view.unit_name or view.level_name,
            requested_datetime=ticket.created_at,
            updated_datetime=ticket.updated_at,
            expected_datetime=view.deadline if view.open else None,
            address=ticket.location_text or None,
            lat=ticket.lat,
            long=ticket.lon,
            media_url=media,
        )


async def not_found(request: web.Request) -> web.Response:
    fmt: Format = "xml" if request.path.endswith(".xml") else "json"
    return _respond(render_error(fmt, GeoReportError(404, "no such resource; formats are .json and .xml")), 404)


OPEN311 = web.AppKey("open311", Open311)
Handler = Callable[[web.Request], Awaitable[web.Response]]


def setup(app: web.Application) -> None:
    async def open311_ctx(app: web.Application) -> AsyncIterator[None]:
        app[OPEN311] = Open311(app[SERVICES])
        yield

    app.cleanup_ctx.append(open311_ctx)

    def route(pick: Callable[[Open311], Handler]) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return await pick(request.app[OPEN311])(request)

        return handler

    fmt = "{fmt:(json|xml)}"
    app.router.add_get(f"{PREFIX}/services.{fmt}", route(lambda o: o.services))
    app.router.add_get(f"{PREFIX}/services/{{code}}.{fmt}", route(lambda o: o.definition))
    app.router.add_get(f"{PREFIX}/requests.{fmt}", route(lambda o: o.search))
    app.router.add_post(f"{PREFIX}/requests.{fmt}", route(lambda o: o.create))
    app.router.add_get(f"{PREFIX}/requests/{{id}}.{fmt}", route(lambda o: o.one))
    # anything else under the prefix (another format, a malformed id) gets the spec's 404 body
    app.router.add_route("*", rf"{PREFIX}/{{tail:[\s\S]*}}", not_found)
