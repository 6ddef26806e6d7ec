"""Handlers of the hotline console: the page, suggestions while typing, filing, lookup by phone."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from bot.admin.auth import ROLE_NAMES
from bot.admin.context import ADMIN
from bot.admin.guard import session_of
from bot.app import Services
from bot.logs import log_event, mask_phone
from bot.replies import cn_datetime
from bot.sms import SMS
from bot.ticketing import ReportDraft
from bot.tickets import Ticket
from integrations.sms.phone import normalize_mobile, normalize_phone
from nlu.taxonomy import load_categories

log = logging.getLogger("gridbot.hotline")

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
CHANNEL = "hotline"
DUPLICATE_SCAN = 500  # most recent tickets looked at for possible duplicates
MAX_DUPLICATES = 5
LOOKUP_LIMIT = 20


def page_environment() -> jinja2.Environment:
    """The console's own pages, extending the console layout (admin/base.html)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(TEMPLATES / "hotline"), str(TEMPLATES / "admin")]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["mask_phone"] = mask_phone
    env.globals["role_names"] = ROLE_NAMES
    return env


def _bad(field: str, message: str) -> web.Response:
    return web.json_response({"error": "invalid_field", "field": field, "message": message}, status=400)


def _text(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


class HotlineConsole:
    def __init__(self, services: Services) -> None:
        self._s = services
        self._pages = page_environment()
        self._categories = {c.id: c.name_zh for c in load_categories()}

    async def page(self, request: web.Request) -> web.Response:
        session = session_of(request)
        html = self._pages.get_template("console.html").render(
            session=session,
            csrf=session.csrf,
            path="/admin/hotline/",
            categories=self._categories,
            colour_of={c: self._colour_name(c, emergency=False) for c in self._categories},
            emergency_colour=self._colour_name("other", emergency=True),
        )
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    def _colour(self, category: str, emergency: bool) -> str:
        return "red" if emergency else self._s.flows.flow.category_rule(category).colour

    def _colour_name(self, category: str, emergency: bool) -> str:
        return self._s.flows.flow.colour_name(self._colour(category, emergency))

    async def suggest(self, request: web.Request) -> web.Response:
        form = await request.post()
        text = _text(form, "text")
        if not text:
            return _bad("text", "请先记录来电内容")
        if len(text) > self._s.config.dialogue.max_message_chars:
            return _bad("text", f"来电内容超过 {self._s.config.dialogue.max_message_chars} 字")
        nlu = await self._s.nlu.parse(text)
        category = nlu.category if nlu.category in self._categories else "other"
        address = _text(form, "address") or nlu.entity("address") or ""
        draft = ReportDraft(description=text, category=category, location_text=address)
        grid_code = self._s.tickets.route(draft)
        colour = self._colour(category, nlu.emergency)
        return web.json_response(
            {
                "category": category,
                "category_name": self._categories[category],
                "ranking": [
                    {"id": c, "name": self._categories.get(c, c), "p": round(p, 3)} for c, p in nlu.category_ranking[:3]
                ],
                "colour": colour,
                "colour_name": self._s.flows.flow.colour_name(colour),
                "emergency": nlu.emergency,
                "emergency_kind": nlu.emergency_kind,
                "address": address,
                "phone": nlu.entity("phone"),
                "grid": {"code": grid_code, "name": self._grid_name(grid_code)} if grid_code else None,
                "duplicates": await self._duplicates(category, grid_code, address),
            },
            dumps=_dumps,
        )

    def _grid_name(self, code: str) -> str:
        directory = self._s.directory
        return (directory.unit_name(code) if directory else None) or code

    async def _duplicates(self, category: str, grid_code: str | None, address: str) -> list[dict[str, str]]:
        """Open tickets in the same category and grid (or, without a grid, at the same address)."""
        if grid_code is None and not address:
            return []
        store = self._s.tickets.store
        recent = await self._s.redis.zrevrange(self._s.keys.all_tickets(), 0, DUPLICATE_SCAN - 1)
        numbers = [str(n) for n in recent]
        found = []
        for ticket in await store.get_many(numbers):
            if ticket.flow.category != category:
                continue
            near = ticket.grid_code == grid_code if grid_code else address in ticket.location_text
            view = self._s.tickets.view(ticket)
            if near and view.open:
                found.append(
                    {
                        "number": ticket.number,
                        "description": mask_phone(ticket.description),
                        "location": ticket.location_text,
                        "status_name": view.status_name,
                        "created": cn_datetime(ticket.created_at),
                    }
                )
            if len(found) >= MAX_DUPLICATES:
                break
        return found

    async def file_ticket(self, request: web.Request) -> web.Response:
        form = await request.post()
        phone = normalize_phone(_text(form, "phone"))
        if phone is None:
            return _bad("phone", "来电号码不是有效的手机号或带区号的座机号")
        description = _text(form, "description")
        if not description:
            return _bad("description", "请填写问题描述")
        if len(description) > self._s.config.dialogue.max_message_chars:
            return _bad("description", f"问题描述超过 {self._s.config.dialogue.max_message_chars} 字")
        category = _text(form, "category")
        if category not in self._categories:
            return _bad("category", "请选择问题类别")
        emergency = _text(form, "emergency") in {"1", "on", "true"}
        draft = ReportDraft(
            description=description,
            category=category,
            location_text=_text(form, "address"),
            phone=phone,
            emergency=emergency,
        )
        # the SMS with the number goes through the outbox, written with the ticket: it survives a
        # restart and a gateway outage (retries, then the dead-letter list)
        sms = "not_mobile"
        if normalize_mobile(phone):
            sms = "opted_out" if await request.config_dict[SMS].opted_out(phone) else "sent"
        acknowledge = "notify/hotline_opened" if sms == "sent" else ""
        ticket = await self._s.tickets.open(CHANNEL, phone, draft, self._s.clock(), acknowledge=acknowledge)
        self._s.metrics.tickets_opened.labels(CHANNEL, category).inc()
        operator = session_of(request).username
        await request.app[ADMIN].record(request, "hotline_ticket", ticket.number, "ok", f"caller {mask_phone(phone)}")
        log_event(log, "ticket_opened", ticket=ticket.number, channel=CHANNEL, operator=operator, phone=phone)
        return web.json_response({"ticket": self._ticket_json(ticket), "sms": sms}, dumps=_dumps)

    async def lookup(self, request: web.Request) -> web.Response:
        phone = normalize_phone(request.query.get("phone", ""))
        if phone is None:
            return _bad("phone", "请输入有效的手机号或带区号的座机号")
        tickets: list[Ticket] = []
        for channel in (CHANNEL, "sms"):
            tickets += await self._s.tickets.own_tickets(channel, phone, LOOKUP_LIMIT)
        tickets.sort(key=lambda t: (t.created_at, t.number), reverse=True)
        await request.app[ADMIN].record(request, "hotline_lookup", mask_phone(phone), "ok", f"{len(tickets)} tickets")
        return web.json_response(
            {"phone": mask_phone(phone), "tickets": [self._ticket_json(t) for t in tickets[:LOOKUP_LIMIT]]},
            dumps=_dumps,
        )

    def _ticket_json(self, ticket: Ticket) -> dict[str, Any]:
        view = self._s.tickets.view(ticket)
        view = dataclasses.replace(view, description=mask_phone(view.description))
        data = dataclasses.asdict(view)
        data["deadline_text"] = cn_datetime(view.deadline) if view.deadline else ""
        data["channel"] = ticket.channel
        data["read_aloud"] = self._s.replies.render("status_detail", channel=CHANNEL, t=view)
        return data


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


HOTLINE = web.AppKey("hotline", HotlineConsole)
