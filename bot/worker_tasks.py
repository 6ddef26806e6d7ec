"""Grid workers in WeCom: reply commands, the signed mobile task page, and group @-mentions.

A WeCom message comes from a worker when the sender's user id is in the grid directory. A
worker's command (接单 / 进度 <text> / 办结 <text> / 上报 [reason] / 退回 <reason>, optionally
with a ticket number) becomes a flow event with actor "worker" and `by` = the user id. Without
a number it applies only when exactly one ticket fits (`WorkerDesk.candidates`); otherwise
the worker gets the list to choose from. A worker acts only on tickets of their own grid while
they are at grid level; another grid's ticket reads exactly like an unknown number.

The task page (`/tasks/<number>?u=&e=&s=`) is reached from the task card: the link carries the
worker's id and an expiry, signed with HMAC-SHA256 under `service.link_secret`.

In a group chat the bot hears only messages that @-mention its robot (WeCom sends nothing
else). A worker's command there is carried out as in the app and answered in private; anything
else is a report that continues in a private chat (the replies are marked private). Either way
the group only hears that the answer went to private — never a phone number, an address or what
was reported. A worker who started a report that way answers its questions in the app: text
that is not a command goes to the dialogue while one is under way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import jinja2
from aiohttp import BodyPartReader, web
from redis.asyncio import Redis

from bot.dispatcher import Dispatcher
from bot.keys import Keys
from bot.logs import log_event
from bot.media import UPLOAD, WECOM, image_type
from bot.replies import BUILTIN_DIR, Replies
from bot.ticketing import GRID_LEVEL, TicketService
from bot.tickets import Ticket, TicketNotFound
from flows import Event, Grid, GridDirectory, TransitionRefused, Worker
from integrations.base import IncomingMessage, Reply
from integrations.wechat import WorkerCommand, parse_worker_command, unspaced_command
from integrations.wechat.work import WorkerVerb

log = logging.getLogger("gridbot.workers")

# A photo sent while the worker held exactly one ticket is that ticket's and waits a day for its
# 办结; any other goes only with a 办结 within the window (service clock), whichever ticket.
PHOTO_WINDOW = timedelta(minutes=30)
PHOTO_KEEP = timedelta(hours=24)
MAX_KEPT_PHOTOS = 50
MAX_LISTED = 10  # tickets a bare command lists when it could mean several
MAX_PHOTO_BYTES = 5 * 1024 * 1024
# the task pages are never to be framed by another site (clickjacking their buttons)
PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
                "Content-Security-Policy": "frame-ancestors 'none'"}
VERB_NAMES = {"accept": "接单", "progress": "报告进展", "resolve": "办结", "escalate": "上报", "return": "退回"}
PAGE_ACTIONS = tuple(VERB_NAMES)


@dataclass(frozen=True, slots=True)
class TaskLinks:
    """Signed, expiring links to a worker's task page."""

    secret: str
    public_url: str
    ttl_seconds: int
    clock: Callable[[], datetime]

    def _sign(self, number: str, user_id: str, expires: int) -> str:
        message = f"{number}|{user_id}|{expires}".encode()
        return hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()[:32]

    def url(self, number: str, user_id: str) -> str:
        base = f"{self.public_url.rstrip('/')}/tasks/{number}"
        if not self.secret:
            return base  # the page refuses it: configure GRIDBOT_SERVICE__LINK_SECRET
        expires = int(self.clock().timestamp()) + self.ttl_seconds
        return f"{base}?u={user_id}&e={expires}&s={self._sign(number, user_id, expires)}"

    def verify(self, number: str, user_id: str, expires: str, signature: str) -> bool:
        if not self.secret or not user_id or not expires.isdigit():
            return False
        expected = self._sign(number, user_id, int(expires))
        return hmac.compare_digest(expected, signature) and int(expires) > self.clock().timestamp()


@dataclass(frozen=True, slots=True)
class KeptPhoto:
    """A photo awaiting a 办结, as JSON in `keys.worker_photos`."""

    reference: str  # "wecom:<media id>" or "upload:<number>/<name>"
    at: str  # when it arrived, ISO on the service clock
    ticket: str = ""  # the ticket it was sent for, when that was unambiguous

    def goes_with(self, number: str, now: datetime) -> bool:
        age = now - datetime.fromisoformat(self.at)
        return self.ticket == number and age <= PHOTO_KEEP if self.ticket else age <= PHOTO_WINDOW


class PhotoKeeper(Protocol):
    """Downloads WeCom media ids in the background (bot.wechat.MediaKeeper)."""

    def keep(self, media_ids: tuple[str, ...]) -> None: ...


class WorkerDesk:
    """The WeCom app's message handler: workers' commands, everyone else to the dispatcher.

    Photos sent in the app are fetched at once by `downloads` (WeCom keeps a media id 3 days);
    a worker's wait in Redis for their 办结 as "wecom:<media id>", task-page uploads as "upload:…".
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        tickets: TicketService,
        directory: GridDirectory | None,
        replies: Replies,
        dispatcher: Dispatcher,
        clock: Callable[[], datetime],
        bot_name: str,
        downloads: PhotoKeeper | None = None,
    ) -> None:
        self.downloads = downloads  # set once the WeCom API is configured
        self._redis = redis
        self._keys = keys
        self._tickets = tickets
        self._directory = directory
        self._replies = replies
        self._dispatcher = dispatcher
        self._clock = clock
        self._bot_name = bot_name
        # WeCom keeps the mention in the text: "@网格助手 楼道堆满杂物"; a robot named otherwise
        # than `bot_name` still starts the text with its own "@name"
        names = rf"@{re.escape(bot_name)}\s*|^\s*@\S+\s*" if bot_name else r"^\s*@\S+\s*"
        self._mention = re.compile(names)

    async def handle(self, msg: IncomingMessage) -> list[Reply]:
        if msg.in_group:
            return await self._group(msg)
        found = self._directory.worker(msg.user_id) if self._directory is not None else None
        if msg.kind == "image" and self.downloads is not None:
            self.downloads.keep(msg.media_ids)  # a resident's or a worker's: fetched while WeCom has it
        if found is None:  # a resident writing to the WeCom app (a customer group member)
            return await self._dispatcher.handle(msg)
        worker, grid = found
        if msg.kind == "image":
            held = await self.candidates(worker, grid, "resolve")
            tied = held[0].number if len(held) == 1 else ""
            await self.keep_photos(worker, tuple(f"{WECOM}{m}" for m in msg.media_ids), tied)
            minutes = int(PHOTO_WINDOW.total_seconds() // 60)
            return [self._say(msg, "photo_received", count=len(msg.media_ids), number=tied, minutes=minutes)]
        if msg.kind != "text":
            return []
        answer = await self._answer(worker, grid, msg)
        if answer is not None:
            return [self._say(msg, answer[0], **answer[1])]
        if await self._dispatcher.in_conversation(msg.channel, msg.user_id):
            return await self._dispatcher.handle(msg)
        return [self._say(msg, "help", name=worker.name)]

    async def _answer(
        self, worker: Worker, grid: Grid, msg: IncomingMessage
    ) -> tuple[str, dict[str, object]] | None:
        """(reply template, context) for a worker's command, or for a verb run into its words
        while no report is under way; None when the text is not for the desk."""
        command = parse_worker_command(msg.text)
        if command is not None:
            return await self._command(worker, grid, command)
        guess = unspaced_command(msg.text)
        if guess is None or await self._dispatcher.in_conversation(msg.channel, msg.user_id):
            return None
        # "办结已清理完毕": show the form, act on nothing ("进度怎么样了" reads the same way)
        example = guess.argument[:30] if guess.needs_argument else ""
        return "add_space", {"word": guess.word, "action": VERB_NAMES[guess.verb], "example": example}

    async def _command(self, worker: Worker, grid: Grid, command: WorkerCommand) -> tuple[str, dict[str, object]]:
        if command.missing_argument:
            return "missing_argument", {"verb": VERB_NAMES[command.verb]}
        number = command.ticket_number
        if number is None:  # a bare command: only the one ticket it can mean, else ask which
            candidates = await self.candidates(worker, grid, command.verb)
            if len(candidates) != 1:
                views = [self._tickets.view(t) for t in candidates[:MAX_LISTED]]
                return "which_ticket", {"action": VERB_NAMES[command.verb], "word": command.word,
                                        "needs_argument": command.needs_argument, "tickets": views,
                                        "total": len(candidates)}
            number = candidates[0].number
        return await self.act(worker, grid, number, command)

    async def act(
        self, worker: Worker, grid: Grid, number: str, command: WorkerCommand
    ) -> tuple[str, dict[str, object]]:
        """(reply template, its context) after applying the command to a ticket of the worker's grid."""
        ticket = await self._tickets.store.get(number)
        if ticket is None or ticket.grid_code != grid.code:
            log_event(log, "worker_refused_ticket", worker=worker.wecom_user_id, ticket=number)
            return "not_found", {"number": number}
        if ticket.flow.level != GRID_LEVEL:  # escalated: the street's (or higher) now, not the grid's
            log_event(log, "worker_refused_level", worker=worker.wecom_user_id, ticket=number, at=ticket.flow.level)
            return "left_grid", {"number": number, "level": self._tickets.view(ticket).level_name}
        data: list[tuple[str, str]] = []
        note = command.argument
        photos = await self._photos_for(worker, number) if command.verb == "resolve" else []
        if photos:
            data.append(("photos", ",".join(p.reference for _, p in photos)))
            note = f"{note}（附照片{len(photos)}张）"
        if note:
            data.append(("note", note))
        if command.verb == "return" and command.argument:
            data.append(("reason", command.argument))
        event = Event(kind=command.verb, actor="worker", at=self._clock(), data=tuple(data), by=worker.wecom_user_id)
        try:
            moved = await self._tickets.act(number, event)
        except TransitionRefused as exc:
            return "refused", {"number": number, "reason": exc.reason}
        except TicketNotFound:
            return "not_found", {"number": number}
        if photos:  # only now: a refused 办结 keeps them for the next one
            await self._forget_photos(worker, [raw for raw, _ in photos])
        log_event(log, "worker_acted", worker=worker.wecom_user_id, ticket=number, verb=command.verb)
        attached = len(photos) if command.verb == "resolve" else None
        return "done", {"verb": VERB_NAMES[command.verb], "t": self._tickets.view(moved), "photos": attached}

    async def candidates(self, worker: Worker, grid: Grid, verb: WorkerVerb) -> list[Ticket]:
        """The tickets a bare command may mean: of the worker's grid, at grid level, in a status
        the flow lets a worker `verb` from; for 接单 not yet anyone else's, for the rest this
        worker's own (accepted by them)."""
        flow = self._tickets.flow
        statuses = {s for t in flow.transitions if t.event == verb and "worker" in t.actors for s in t.sources}
        numbers = await self._tickets.store.numbers_in_grid(grid.code, statuses)
        holders = (None, worker.wecom_user_id) if verb == "accept" else (worker.wecom_user_id,)
        return [
            t for t in await self._tickets.store.get_many(sorted(numbers))
            if t.grid_code == grid.code and t.flow.level == GRID_LEVEL and t.status in statuses
            and t.flow.assignee in holders
        ]

    async def own_ticket(self, user_id: str, number: str) -> tuple[Worker, Grid, Ticket] | None:
        """The worker and the ticket, if the ticket belongs to the worker's grid."""
        found = self._directory.worker(user_id) if self._directory is not None else None
        ticket = await self._tickets.store.get(number)
        if found is None or ticket is None or ticket.grid_code != found[1].code:
            return None
        return found[0], found[1], ticket

    async def keep_photos(self, worker: Worker, references: tuple[str, ...], ticket: str) -> None:
        """Photos for a 办结: "wecom:<media id>" or "upload:<number>/<name>", for `ticket` when
        it is known ("" otherwise)."""
        key = self._keys.worker_photos(worker.wecom_user_id)
        at = self._clock().isoformat()
        entries = [json.dumps(asdict(KeptPhoto(r, at, ticket)), ensure_ascii=False) for r in references]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *entries)
            pipe.ltrim(key, -MAX_KEPT_PHOTOS, -1)
            pipe.expire(key, int(PHOTO_KEEP.total_seconds()))
            await pipe.execute()

    async def _photos_for(self, worker: Worker, number: str) -> list[tuple[str, KeptPhoto]]:
        """(stored entry, photo) of the kept photos that go with a 办结 of `number` now."""
        now = self._clock()
        kept = [(raw, KeptPhoto(**json.loads(raw)))
                for raw in await self._redis.lrange(self._keys.worker_photos(worker.wecom_user_id), 0, -1)]
        return [(raw, photo) for raw, photo in kept if photo.goes_with(number, now)]

    async def _forget_photos(self, worker: Worker, entries: list[str]) -> None:
        key = self._keys.worker_photos(worker.wecom_user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            for raw in entries:
                pipe.lrem(key, 1, raw)
            await pipe.execute()

    async def _group(self, msg: IncomingMessage) -> list[Reply]:
        """@-mentioned in a group: a worker's command is answered in private, anything else is a
        report that goes on in private; the group hears only that."""
        if msg.kind != "text":
            return []
        private = replace(msg, in_group=False, group_id=None, text=self._mention.sub("", msg.text).strip())
        found = self._directory.worker(msg.user_id) if self._directory is not None else None
        answer = await self._answer(*found, private) if found is not None else None
        if answer is not None:
            notice, answers = "answered_in_private", [self._say(private, answer[0], **answer[1])]
        else:
            notice, answers = "moved_to_private", await self._dispatcher.handle(private)
        to_group = Reply(
            recipient_id=msg.group_id or msg.user_id,
            text=self._replies.render(notice, channel="worker", bot_name=self._bot_name),
            private=False,
        )
        return [to_group, *(replace(r, private=True) for r in answers)]

    def _say(self, msg: IncomingMessage, template: str, **context: object) -> Reply:
        return Reply(recipient_id=msg.user_id, text=self._replies.render(template, channel="worker", **context))


class TaskPages:
    """GET/POST /tasks/{number}: the worker's mobile task page behind a signed link."""

    def __init__(
        self, desk: WorkerDesk, links: TaskLinks, tickets: TicketService, replies: Replies, media_dir: Path
    ) -> None:
        self._desk = desk
        self._links = links
        self._tickets = tickets
        self._replies = replies
        self._media_dir = media_dir
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(BUILTIN_DIR)), autoescape=True, undefined=jinja2.StrictUndefined
        )
        self._env.filters["cn_datetime"] = replies.env.filters["cn_datetime"]

    async def _authorised(self, request: web.Request, fields: dict[str, str]) -> tuple[Worker, Grid, Ticket]:
        number = request.match_info["number"]
        user, expires, signature = fields.get("u", ""), fields.get("e", ""), fields.get("s", "")
        owned = await self._desk.own_ticket(user, number) if self._links.verify(number, user, expires, signature) \
            else None
        if owned is None:
            log_event(log, "task_link_refused", logging.WARNING, ticket=number, peer=request.remote or "")
            raise web.HTTPForbidden(text=self._page("tasks/refused.html"), content_type="text/html",
                                    headers=PAGE_HEADERS)
        if owned[2].flow.level != GRID_LEVEL:  # escalated: nothing of it shows, nothing may be done
            view = self._tickets.view(owned[2])
            raise web.HTTPForbidden(text=self._page("tasks/left_grid.html", number=number, level=view.level_name),
                                    content_type="text/html", headers=PAGE_HEADERS)
        return owned

    def _page(self, name: str, **context: object) -> str:
        return self._env.get_template(name).render(**context)

    async def show(self, request: web.Request) -> web.Response:
        worker, _, ticket = await self._authorised(request, dict(request.query))
        return self._html(ticket, worker, dict(request.query), message="")

    def _html(
        self, ticket: Ticket, worker: Worker, auth: dict[str, str], message: str, status: int = 200
    ) -> web.Response:
        view = self._tickets.view(ticket)
        recent = [e for e in ticket.timeline if e.text and e.kind in PAGE_ACTIONS][-5:]
        auth = {k: auth.get(k, "") for k in ("u", "e", "s")}
        text = self._page("tasks/page.html", t=view, worker=worker, auth=auth, message=message,
                          actions=VERB_NAMES, recent=recent)
        return web.Response(text=text, status=status, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)

    async def act(self, request: web.Request) -> web.Response:
        """The page's form: multipart (read as a stream: a photo may be larger than the service's
        body limit), or urlencoded without a photo."""
        if request.content_type.startswith("multipart/"):
            fields, photo = await self._read_form(request)
        else:
            form = await request.post()
            fields, photo = {k: v for k, v in form.items() if isinstance(v, str)}, None
        worker, grid, ticket = await self._authorised(request, fields)
        verb = fields.get("action", "")
        if verb not in VERB_NAMES:
            raise web.HTTPBadRequest(text="unknown action")
        command = WorkerCommand(verb=verb, ticket_number=ticket.number,  # type: ignore[arg-type]
                                argument=fields.get("note", "").strip()[:500])
        kind = image_type(photo[:16]) if photo is not None else None
        if photo is not None and kind is None:  # whatever the browser declared: an SVG is no photo
            message = self._replies.render("not_a_photo", channel="worker")
            return self._html(ticket, worker, fields, message=message, status=400)
        if command.missing_argument:
            message = self._replies.render("missing_argument", channel="worker", verb=VERB_NAMES[command.verb])
        else:
            if verb == "resolve" and photo is not None and kind is not None:
                await self._desk.keep_photos(worker, (self._save_photo(ticket.number, kind, photo),), ticket.number)
            template, context = await self._desk.act(worker, grid, ticket.number, command)
            message = self._replies.render(template, channel="worker", **context)
        after = await self._tickets.store.get(ticket.number) or ticket
        return self._html(after, worker, fields, message=message)

    async def _read_form(self, request: web.Request) -> tuple[dict[str, str], bytes | None]:
        reader = await request.multipart()
        fields: dict[str, str] = {}
        photo: bytes | None = None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.name:
                continue
            if part.name == "photo":
                data = bytearray()
                while chunk := await part.read_chunk():
                    data += chunk
                    if len(data) > MAX_PHOTO_BYTES:
                        raise web.HTTPRequestEntityTooLarge(max_size=MAX_PHOTO_BYTES, actual_size=len(data))
                if data:
                    photo = bytes(data)
            else:
                fields[part.name] = (await part.text())[:2000]
        return fields, photo

    def _save_photo(self, number: str, content_type: str, data: bytes) -> str:
        """`content_type`: what `image_type` found in the data (jpeg, png, gif, webp)."""
        folder = self._media_dir / number
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.{content_type.removeprefix('image/')}"
        (folder / name).write_bytes(data)
        return f"{UPLOAD}{number}/{name}"
