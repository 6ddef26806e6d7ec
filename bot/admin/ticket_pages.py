"""The ticket queue (工单队列), one ticket's page, and the dispatcher's actions on it.

Every action that moves a ticket goes through `services.tickets.act(number, Event(...))` with
actor "dispatcher", so the flow engine decides; when it refuses, its reason is shown and the
ticket is unchanged. A note changes no state: it is appended to the timeline through the
ticket store's read-modify-write.

Photos: a ticket's photos are numbered — the resident's (`media_ids`), then each timeline
entry's (a worker's 办结) in order — and served by that number from `/photos/{index}`, so the
file's path comes only from the stored reference (bot/media.py), never from the request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiMapping

from bot.admin.context import ADMIN
from bot.admin.data import all_tickets
from bot.admin.figures import is_overdue
from bot.admin.guard import session_of
from bot.admin.plan import plan_for
from bot.app import Services
from bot.media import image_type, media_id_of, photo_path
from bot.outbox import DeliveryStatus, deliveries
from bot.tickets import Change, Notification, Ticket, TicketNotFound, TimelineEntry
from flows import Event, TransitionRefused

QUEUE_LIMIT = 300
OUTBOX_SCAN = 5000
DUPLICATE_TEMPLATE = "notify/duplicate_merged"
SNIFF_BYTES = 16
MEDIA_ERRORS = {"40007": "素材已过期或无效，渠道只保留 3 天"}  # WeChat / WeCom errcodes, for the reader


@dataclass(frozen=True, slots=True)
class QueueFilter:
    status: str = ""
    colour: str = ""
    category: str = ""
    level: str = ""
    unit: str = ""
    channel: str = ""
    overdue: bool = False
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""

    @classmethod
    def from_query(cls, query: MultiMapping[str]) -> tuple[QueueFilter, str]:
        """The filter and an error message for a malformed date ("" when all is well)."""
        error = ""
        dates: list[date | None] = []
        for name in ("from", "to"):
            raw = query.get(name, "").strip()
            try:
                dates.append(date.fromisoformat(raw) if raw else None)
            except ValueError:
                dates.append(None)
                error = f"日期格式不正确：{raw}（应为 2026-11-24 这样的格式），已忽略该条件。"
        return (
            cls(
                status=query.get("status", ""),
                colour=query.get("colour", ""),
                category=query.get("category", ""),
                level=query.get("level", ""),
                unit=query.get("unit", ""),
                channel=query.get("channel", ""),
                overdue=query.get("overdue", "") == "1",
                date_from=dates[0],
                date_to=dates[1],
                q=query.get("q", "").strip(),
            ),
            error,
        )

    def matches(self, t: Ticket, now: datetime, tz: ZoneInfo) -> bool:
        s = t.flow
        if self.status and s.status != self.status:
            return False
        if self.colour and s.colour != self.colour:
            return False
        if self.category and s.category != self.category:
            return False
        if self.level and s.level != self.level:
            return False
        if self.unit and s.unit != self.unit:
            return False
        if self.channel and t.channel != self.channel:
            return False
        if self.overdue and not is_overdue(t, now):
            return False
        day = datetime.fromisoformat(t.created_at).astimezone(tz).date()
        if self.date_from and day < self.date_from:
            return False
        if self.date_to and day > self.date_to:
            return False
        return not self.q or _search_hit(t, self.q)


def _search_hit(t: Ticket, q: str) -> bool:
    """By number (any part), phone (the digits typed, e.g. the last four) or text."""
    if q.upper() in t.number.upper():
        return True
    digits = "".join(ch for ch in q if ch.isdigit())
    if digits and len(digits) >= 4 and t.phone and digits in t.phone:
        return True
    return q in t.description or q in t.location_text


async def queue_page(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    services = ctx.services
    flt, error = QueueFilter.from_query(request.query)
    tz = ZoneInfo(services.config.tickets.timezone)
    now = ctx.now()
    tickets = await all_tickets(services)
    hits = [t for t in tickets if flt.matches(t, now, tz)]
    flow = services.flows.flow
    return ctx.render(
        request,
        "queue.html",
        f=flt,
        error=error,
        tickets=hits[:QUEUE_LIMIT],
        total=len(hits),
        limit=QUEUE_LIMIT,
        now=now,
        statuses=tuple(flow.statuses),
        colours=tuple(flow.colours),
        levels=flow.levels,
        units=tuple(flow.units),
        categories=sorted({t.flow.category for t in tickets} | set(flow.categories)),
        channels=sorted({t.channel for t in tickets}),
        overdue_numbers={t.number for t in hits if is_overdue(t, now)},
    )


@dataclass(frozen=True, slots=True)
class QueuedNotification:
    stream_id: str
    template: str
    audience: str
    rule: str
    queued_at: datetime
    deliveries: tuple[DeliveryStatus, ...]  # what the outbox worker did with it, per recipient


async def notifications_of(services: Services, number: str) -> list[QueuedNotification]:
    """This ticket's notifications in the outbox stream (the most recent OUTBOX_SCAN entries),
    each with its deliveries as the outbox worker recorded them."""
    entries = await services.redis.xrevrange(services.keys.outbox(), count=OUTBOX_SCAN) or []
    delivered = await deliveries(services.redis, services.keys, number)
    found = []
    for raw_id, raw in reversed(entries):
        data = {str(k): str(v) for k, v in (raw or {}).items()}
        if data.get("ticket") == number:
            stream_id = str(raw_id)
            millis = int(stream_id.split("-")[0])
            found.append(
                QueuedNotification(
                    stream_id,
                    data.get("template", ""),
                    data.get("audience", ""),
                    data.get("rule", ""),
                    datetime.fromtimestamp(millis / 1000, tz=services.clock().tzinfo),
                    tuple(d for d in delivered if d.id.startswith(f"{stream_id}/")),
                )
            )
    return found


async def ticket_page(request: web.Request, message: str = "", error: str = "", status: int = 200) -> web.Response:
    ctx = request.app[ADMIN]
    services = ctx.services
    number = request.match_info["number"]
    ticket = await services.tickets.store.get(number)
    if ticket is None:
        message = f"没有流水号为 {number} 的工单。"
        return ctx.render(request, "error.html", status=404, title="未找到工单", message=message, login=False)
    flow = await services.tickets.flow_for(ticket)
    grid = services.directory.grid(ticket.grid_code) if services.directory and ticket.grid_code else None
    photos = await photos_of(services, ticket)
    entry_photos: dict[int, list[Photo]] = {}
    for p in photos:
        if p.entry is not None:
            entry_photos.setdefault(p.entry, []).append(p)
    done = request.query.get("done", "")
    if not message and done in ACTION_NAMES:
        message = f"已执行「{ACTION_NAMES[done]}」。"
    return ctx.render(
        request,
        "ticket.html",
        status=status,
        t=ticket,
        message=message,
        error=error,
        notifications=await notifications_of(services, number),
        photos=[p for p in photos if p.entry is None],
        entry_photos=entry_photos,
        plan=plan_for(services.directory, ticket),
        workers=grid.workers if grid else (),
        units=tuple(flow.units),
        colours=tuple(flow.colours),
        overdue=is_overdue(ticket, ctx.now()),
        can_act=session_of(request).role in ("dispatcher", "admin"),
        can_migrate=session_of(request).role == "admin" and ticket.flow.flow_version != services.flows.flow.version,
        current_version=services.flows.flow.version,
        rules={r.id: r.name for r in flow.rules},
    )


PhotoState = Literal["image", "file", "failed", "pending", "not_kept"]


@dataclass(frozen=True, slots=True)
class Photo:
    """One of a ticket's photos as the page shows it (never its path)."""

    index: int  # in `photo_references`: the number in its URL
    entry: int | None  # the timeline entry it came with; None for the resident's
    state: PhotoState  # on disk as an image / as another file; fetching failed; not yet; never kept
    failed: str = ""  # why fetching it failed


def photo_references(ticket: Ticket) -> list[tuple[str, int | None]]:
    """(reference, timeline position or None) for every photo, in the order of their numbers."""
    found: list[tuple[str, int | None]] = [(m, None) for m in ticket.media_ids]
    for position, entry in enumerate(ticket.timeline):
        found.extend((p, position) for p in entry.photos)
    return found


def media_dir_of(services: Services) -> Path:
    return services.config.path(services.config.service.media_dir)


def _head(path: Path) -> bytes | None:
    try:
        with path.open("rb") as f:
            return f.read(SNIFF_BYTES)
    except OSError:  # not downloaded (yet), or not a file
        return None


async def photos_of(services: Services, ticket: Ticket) -> list[Photo]:
    references = photo_references(ticket)
    media_ids = sorted({m for m in (media_id_of(r) for r, _ in references) if m})
    reasons = await services.redis.hmget(services.keys.media_failed(), media_ids) if media_ids else []
    failed = {m: str(why) for m, why in zip(media_ids, reasons, strict=True) if why}
    media_dir = media_dir_of(services)

    def look() -> list[Photo]:
        photos = []
        for index, (reference, entry) in enumerate(references):
            path = photo_path(media_dir, reference, ticket.channel)
            head = _head(path) if path is not None else None
            why = failed.get(media_id_of(reference), "")
            state: PhotoState
            if head is not None:
                state = "image" if image_type(head) else "file"
            elif why:
                state = "failed"
            else:
                state = "pending" if path is not None else "not_kept"
            photos.append(Photo(index, entry, state, failure_text(why) if state == "failed" else ""))
        return photos

    return await asyncio.to_thread(look) if references else []


def failure_text(why: str) -> str:
    """A download's failure as a dispatcher reads it: the known error codes in words."""
    code = re.search(r"errcode (\d+)", why)
    meaning = MEDIA_ERRORS.get(code.group(1)) if code else None
    return f"{meaning}（错误码 {code.group(1)}）" if meaning and code else why


async def ticket_photo(request: web.Request) -> web.Response:
    """GET /tickets/{number}/photos/{index}: the photo's bytes, an image type only when its
    first bytes say so; 404 for no such photo or one not downloaded (yet)."""
    services = request.app[ADMIN].services
    number = request.match_info["number"]
    index = int(request.match_info["index"])
    not_found = web.HTTPNotFound(text="没有这张照片，或照片尚未取回。")
    ticket = await services.tickets.store.get(number)
    if ticket is None:
        raise not_found
    references = photo_references(ticket)
    path = photo_path(media_dir_of(services), references[index][0], ticket.channel) \
        if index < len(references) else None
    if path is None:
        raise not_found
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError:  # not downloaded (yet)
        raise not_found from None
    headers = {
        "Cache-Control": "private",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    content_type = image_type(data[:SNIFF_BYTES])
    if content_type is None:
        content_type = "application/octet-stream"
        headers["Content-Disposition"] = f'attachment; filename="{ticket.number}-{index + 1}.bin"'
    return web.Response(body=data, content_type=content_type, headers=headers)


# form action -> (flow event, the form fields passed to the engine as event data)
ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dispatch": ("dispatch", ("unit",)),
    "assign": ("assign", ("worker",)),
    "escalate": ("escalate", ()),
    "return": ("return", ()),
    "mark_duplicate": ("mark_duplicate", ("duplicate_of",)),
    "close": ("close", ()),
    "set_colour": ("set_colour", ("colour",)),
    "invalidate": ("invalidate", ()),
    "reopen": ("reopen", ()),
}
FIELD_NAMES = {"unit": "单位", "worker": "处理人", "duplicate_of": "原工单流水号", "colour": "颜色"}
ACTION_NAMES = {
    "dispatch": "改派",
    "assign": "指派",
    "escalate": "上报",
    "return": "退回",
    "mark_duplicate": "标记重复件",
    "close": "结案",
    "set_colour": "调整颜色",
    "invalidate": "标记无效",
    "reopen": "重新打开",
    "note": "添加备注",
}


def _with_entry(ticket: Ticket, entry: TimelineEntry, *notes: Notification) -> Change:
    moved = dataclasses.replace(ticket, timeline=(*ticket.timeline, entry), updated_at=entry.at)
    return Change(ticket=moved, notifications=notes)


async def ticket_action(request: web.Request) -> web.Response:
    ctx = request.app[ADMIN]
    services = ctx.services
    number = request.match_info["number"]
    form = await request.post()
    action = str(form.get("action", ""))
    note = str(form.get("note", "")).strip()[:1000]
    user = session_of(request).username
    now = ctx.now()
    audit_action = f"ticket.{action}"
    if action not in ACTIONS and action != "note":
        await ctx.record(request, audit_action, number, "invalid", "unknown action")
        return await ticket_page(request, error="未知的操作，工单没有变化。", status=400)
    if await services.tickets.store.get(number) is None:
        await ctx.record(request, audit_action, number, "invalid", "no such ticket")
        return await ticket_page(request, status=404)

    if action == "note":
        if not note:
            return await ticket_page(request, error="备注内容不能为空。", status=400)
        entry = TimelineEntry(at=now.isoformat(), actor=f"dispatcher:{user}", kind="note", text=note)
        await services.tickets.store.update(number, lambda t: _with_entry(t, entry))
        await ctx.record(request, audit_action, number, "ok", note)
        return await ticket_page(request, message="备注已添加。")

    kind, fields = ACTIONS[action]
    data = [(name, str(form.get(name, "")).strip()) for name in fields]
    missing = [FIELD_NAMES[name] for name, value in data if not value]
    if missing:
        await ctx.record(request, audit_action, number, "invalid", f"missing {', '.join(missing)}")
        error = f"「{ACTION_NAMES[action]}」需要填写：{'、'.join(missing)}。工单没有变化。"
        return await ticket_page(request, error=error, status=400)
    other: Ticket | None = None
    if action == "mark_duplicate":
        other_number = data[0][1].upper()
        other = await services.tickets.store.get(other_number)
        if other is None or other_number == number:
            await ctx.record(request, audit_action, number, "invalid", f"of {other_number}")
            reason = "不能标记为自身的重复件" if other_number == number else f"没有流水号为 {other_number} 的工单"
            return await ticket_page(request, error=f"{reason}，工单没有变化。", status=400)
        data[0] = ("duplicate_of", other_number)
    if note:
        data.append(("note", note))
    event = Event(kind=kind, actor="dispatcher", at=now, data=tuple(data), by=user)
    try:
        await services.tickets.act(number, event)
    except TransitionRefused as exc:
        await ctx.record(request, audit_action, number, "refused", exc.reason)
        return await ticket_page(request, error=f"流程不允许此操作：{exc.reason}。工单没有变化。", status=409)
    except TicketNotFound:
        return await ticket_page(request, status=404)
    if other is not None:
        await _notify_duplicate_pair(services, number, other.number, now)
    await ctx.record(request, audit_action, number, "ok", ", ".join(f"{k}={v}" for k, v in data))
    raise web.HTTPSeeOther(f"/admin/tickets/{number}?done={action}")


async def ticket_migrate(request: web.Request) -> web.Response:
    """Admin: put an open ticket under the flow version now in force (new deadline and timers)."""
    ctx = request.app[ADMIN]
    number = request.match_info["number"]
    user = session_of(request).username
    try:
        moved = await ctx.services.tickets.migrate(number, ctx.now(), author=user)
    except TransitionRefused as exc:
        await ctx.record(request, "ticket.migrate", number, "refused", exc.reason)
        return await ticket_page(request, error=f"不能迁移：{exc.reason}。工单没有变化。", status=409)
    except TicketNotFound:
        return await ticket_page(request, status=404)
    await ctx.record(request, "ticket.migrate", number, "ok", moved.flow.flow_version)
    return await ticket_page(request, message=f"已按当前流程版本 {moved.flow.flow_version} 办理，期限已重新计算。")


async def _notify_duplicate_pair(services: Services, duplicate: str, original: str, now: datetime) -> None:
    """Both reporters hear about the merge: one notification on each ticket, with a timeline line."""
    stamp = now.isoformat()
    await services.tickets.store.update(
        duplicate,
        lambda t: _with_entry(
            t,
            TimelineEntry(at=stamp, actor="system", kind="notify", text=f"已与 {original} 合并办理"),
            Notification(ticket=duplicate, template=DUPLICATE_TEMPLATE, audience="resident"),
        ),
    )
    await services.tickets.store.update(
        original,
        lambda t: _with_entry(
            t,
            TimelineEntry(at=stamp, actor="system", kind="notify", text=f"重复件 {duplicate} 并入本工单"),
            Notification(ticket=original, template=DUPLICATE_TEMPLATE, audience="resident"),
        ),
    )
