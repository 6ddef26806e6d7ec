"""Grid workers and area staff in WeCom: reply commands, the signed mobile task page, and group
@-mentions.

A WeCom message comes from a worker when the sender's user id is in the grid directory: a
grid's worker, or a staff member of the district, a street or a community (`flows.Post`). A
command (接单 / 进度 <text> / 办结 <text> / 上报 [reason] / 退回 <reason>, optionally with a
ticket number) becomes a flow event with actor "worker" (the flow's `by: [worker]`: whoever
works the ticket at its level) and `by` = the user id. Without a number it applies only when
exactly one ticket fits (`WorkerDesk.candidates`); otherwise the worker gets the list to choose
from. A grid's worker acts only on their grid's tickets while they are at grid level (an
escalated one says it left the grid); a staff member only on the tickets of their area's grids
at their area's level (a street's staff: level `street`; the district's: level `district`, the
tickets without a grid too). Any other ticket reads exactly like an unknown number.

The task page (`/tasks/<number>?u=&e=&s=`) is reached from the task card: the link carries the
worker's (or staff member's) id and an expiry, signed with HMAC-SHA256 under
`service.link_secret`; it refuses what the commands refuse.

In a group chat the bot hears only messages that @-mention its robot (WeCom sends nothing
else). A worker's command there is carried out as in the app and answered in private; anything
else is a report that continues in a private chat (the replies are marked private). Either way
the group only hears that the answer went to private — never a phone number, an address or what
was reported. A worker who started a report that way answers its questions in the app: text
that is not a command goes to the dialogue while one is under way.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
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
from flows import Event, GridDirectory, Post, TransitionRefused, Worker
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
    """The WeCom app's message handler: the commands of grid workers and area staff, everyone
    else to the dispatcher.

    Each of their messages is kept in the inbox and done once, whatever WeChat's retries
    (bot/inbox.py, the dispatcher's claim on the provider message id): a retry of a command that
    changed a ticket gets the first answer (or, if it failed after the change, `already_done`)
    and changes nothing; one that failed before anything changed is handled afresh.

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
        self._inbox = dispatcher.inbox
        self._clock = clock
        self._bot_name = bot_name
        # WeCom keeps the mention in the text: "@网格助手 楼道堆满杂物"; a robot named otherwise
        # than `bot_name` still starts the text with its own "@name"
        names = rf"@{re.escape(bot_name)}\s*|^\s*@\S+\s*" if bot_name else r"^\s*@\S+\s*"
        self._mention = re.compile(names)

    def post(self, user_id: str) -> Post | None:
        """Where the sender works tickets, if the directory lists them (a grid's or an area's)."""
        return self._directory.post(user_id) if self._directory is not None else None

    async def handle(self, msg: IncomingMessage) -> list[Reply]:
        if msg.in_group:
            return await self._group(msg)
        post = self.post(msg.user_id)
        if msg.kind == "image" and self.downloads is not None:
            self.downloads.keep(msg.media_ids)  # a resident's or a worker's: fetched while WeCom has it
        if post is None:  # a resident writing to the WeCom app (a customer group member)
            return await self._dispatcher.handle(msg)
        if msg.kind == "image":
            answer = await self._once(msg, lambda claim: self._photos(post, msg))
        elif msg.kind == "text":
            command = parse_worker_command(msg.text)
            if command is None and await self._dispatcher.in_conversation(msg.channel, msg.user_id):
                return await self._dispatcher.handle(msg)  # the answers to a report under way
            answer = await self._once(msg, lambda claim: self._text(post, msg.text, command, claim))
        else:
            await self._inbox.record(msg)
            return []
        return [Reply(recipient_id=msg.user_id, text=text) for text in answer]

    async def _once(self, msg: IncomingMessage, work: Callable[[str | None], Awaitable[list[str]]]) -> list[str]:
        """`work`'s answer, done once for the message: kept and claimed by its provider id (the
        claim goes to `work`, which settles it as soon as it has changed a ticket)."""
        claim = self._inbox.claim_key(msg)
        first = await self._inbox.keep(msg, claim)
        if claim is not None and not first:
            log_event(log, "worker_retry_replayed", worker=msg.user_id, message_id=msg.provider_message_id)
            return await self._inbox.replay(claim)
        try:
            answer = await work(claim)
        except Exception:
            await self._inbox.release(claim)  # its retry is handled afresh, unless a change was settled
            raise
        await self._inbox.settle(claim, answer)
        return answer

    async def _photos(self, post: Post, msg: IncomingMessage) -> list[str]:
        held = await self.candidates(post, "resolve")
        tied = held[0].number if len(held) == 1 else ""
        minutes = int(PHOTO_WINDOW.total_seconds() // 60)
        # rendered first: a broken template keeps nothing, and the retry keeps them once
        answer = [self._render("photo_received", count=len(msg.media_ids), number=tied, minutes=minutes)]
        await self.keep_photos(post.person, tuple(f"{WECOM}{m}" for m in msg.media_ids), tied)
        return answer

    async def _text(self, post: Post, text: str, command: WorkerCommand | None, claim: str | None) -> list[str]:
        """The answer to a command, or to a verb run into its words ("办结已清理完毕": the form
        that would have worked, acting on nothing; "进度怎么样了" reads the same way), else help."""
        if command is not None:
            template, context = await self._command(post, command, claim)
        elif (guess := unspaced_command(text)) is not None:
            example = guess.argument[:30] if guess.needs_argument else ""
            template, context = "add_space", {"word": guess.word, "action": VERB_NAMES[guess.verb], "example": example}
        else:
            template, context = "help", {"name": post.person.name}
        return [self._render(template, **context)]

    async def _command(
        self, post: Post, command: WorkerCommand, claim: str | None
    ) -> tuple[str, dict[str, object]]:
        if command.missing_argument:
            return "missing_argument", {"verb": VERB_NAMES[command.verb]}
        number = command.ticket_number
        if number is None:  # a bare command: only the one ticket it can mean, else ask which
            candidates = await self.candidates(post, command.verb)
            if len(candidates) != 1:
                views = [self._tickets.view(t) for t in candidates[:MAX_LISTED]]
                return "which_ticket", {"action": VERB_NAMES[command.verb], "word": command.word,
                                        "needs_argument": command.needs_argument, "tickets": views,
                                        "total": len(candidates)}
            number = candidates[0].number
        return await self.act(post, number, command, claim)

    def refusal(self, post: Post, number: str, ticket: Ticket | None) -> tuple[str, dict[str, object]] | None:
        """(reply template, context) when the ticket is not the post's to work now, else None.
        Another area's ticket reads exactly like an unknown number, and so, for staff, does one
        of their area at another level; a grid's own ticket that left the grid says so."""
        person = post.person.wecom_user_id
        if ticket is None or not post.covers(ticket.grid_code):
            log_event(log, "worker_refused_ticket", worker=person, ticket=number)
            return self._not_found(post, number)
        if ticket.flow.level != post.level:
            log_event(log, "worker_refused_level", worker=person, ticket=number, at=ticket.flow.level)
            if post.level == GRID_LEVEL:  # escalated: the street's (or higher) now, not the grid's
                return "left_grid", {"number": number, "level": self._tickets.view(ticket).level_name}
            return self._not_found(post, number)
        return None

    async def act(
        self, post: Post, number: str, command: WorkerCommand, claim: str | None = None
    ) -> tuple[str, dict[str, object]]:
        """(reply template, its context) after applying the command to a ticket the post works;
        `claim`: the message's (bot/inbox.py), settled the moment the ticket has changed."""
        refused = self.refusal(post, number, await self._tickets.store.get(number))
        if refused is not None:
            return refused
        person = post.person
        data: list[tuple[str, str]] = []
        note = command.argument
        photos = await self._photos_for(person, number) if command.verb == "resolve" else []
        if photos:
            data.append(("photos", ",".join(p.reference for _, p in photos)))
            note = f"{note}（附照片{len(photos)}张）"
        if note:
            data.append(("note", note))
        if command.verb == "return" and command.argument:
            data.append(("reason", command.argument))
        # the flow's `worker` is whoever works the ticket at its level: a grid's worker or an area's staff
        event = Event(kind=command.verb, actor="worker", at=self._clock(), data=tuple(data), by=person.wecom_user_id)
        # rendered before the change: a broken template fails while nothing has happened yet
        interim = [self._render("already_done", number=number)] if claim else []
        try:
            moved = await self._tickets.act(number, event)
        except TransitionRefused as exc:
            return "refused", {"number": number, "reason": exc.reason}
        except TicketNotFound:
            return self._not_found(post, number)
        await self._inbox.settle(claim, interim)  # committed: from here on a retry replays, never acts
        if photos:  # only now: a refused 办结 keeps them for the next one
            await self._forget_photos(person, [raw for raw, _ in photos])
        log_event(log, "worker_acted", worker=person.wecom_user_id, ticket=number, verb=command.verb)
        attached = len(photos) if command.verb == "resolve" else None
        return "done", {"verb": VERB_NAMES[command.verb], "t": self._tickets.view(moved), "photos": attached}

    async def candidates(self, post: Post, verb: WorkerVerb) -> list[Ticket]:
        """The tickets a bare command may mean: the post's (of its grids, at its level), in a
        status the flow lets a worker `verb` from; for 接单 not yet anyone else's, for the rest
        this person's own (accepted by them)."""
        flow = self._tickets.flow
        store = self._tickets.store
        statuses = {s for t in flow.transitions if t.event == verb and "worker" in t.actors for s in t.sources}
        if post.covers(None):  # the district's: the tickets without a grid too
            numbers = await store.numbers_in_status(statuses)
        else:  # a grid's, or the union of an area's grids (the per-grid index, side by side)
            found = await asyncio.gather(*(store.numbers_in_grid(code, statuses) for code in post.grids))
            numbers = set().union(*found)
        me = post.person.wecom_user_id
        holders = (None, me) if verb == "accept" else (me,)
        return [
            t for t in await store.get_many(sorted(numbers))
            if post.holds(t.flow.level, t.grid_code) and t.status in statuses and t.flow.assignee in holders
        ]

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
        post = self.post(msg.user_id)
        command = parse_worker_command(private.text)
        mistyped = command is None and unspaced_command(private.text) is not None \
            and not await self._dispatcher.in_conversation(private.channel, private.user_id)
        if post is not None and (command is not None or mistyped):
            answer = await self._once(private, lambda claim: self._text(post, private.text, command, claim))
            notice, answers = "answered_in_private", [Reply(recipient_id=msg.user_id, text=t) for t in answer]
        else:
            notice, answers = "moved_to_private", await self._dispatcher.handle(private)
        to_group = Reply(
            recipient_id=msg.group_id or msg.user_id,
            text=self._replies.render(notice, channel="worker", bot_name=self._bot_name),
            private=False,
        )
        return [to_group, *(replace(r, private=True) for r in answers)]

    def _not_found(self, post: Post, number: str) -> tuple[str, dict[str, object]]:
        return "not_found", {"number": number, "at_grid": post.level == GRID_LEVEL, "unit": post.name}

    def _render(self, template: str, **context: object) -> str:
        return self._replies.render(template, channel="worker", **context)


class TaskPages:
    """GET/POST /tasks/{number}: the mobile task page of a worker or staff member, behind a
    signed link."""

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

    async def _authorised(self, request: web.Request, fields: dict[str, str]) -> tuple[Post, Ticket]:
        """The post and its ticket for a valid link; else a refusal page that shows nothing of the
        ticket (for a grid's own escalated ticket, only that it left the grid)."""
        number = request.match_info["number"]
        user, expires, signature = fields.get("u", ""), fields.get("e", ""), fields.get("s", "")
        post = self._desk.post(user) if self._links.verify(number, user, expires, signature) else None
        ticket = await self._tickets.store.get(number) if post is not None else None
        refused = self._desk.refusal(post, number, ticket) if post is not None else None
        if post is not None and ticket is not None and refused is None:
            return post, ticket
        if refused is not None and refused[0] == "left_grid":
            raise self._forbidden("tasks/left_grid.html", **refused[1])
        log_event(log, "task_link_refused", logging.WARNING, ticket=number, peer=request.remote or "")
        raise self._forbidden("tasks/refused.html")

    def _forbidden(self, page: str, **context: object) -> web.HTTPForbidden:
        return web.HTTPForbidden(text=self._page(page, **context), content_type="text/html", headers=PAGE_HEADERS)

    def _page(self, name: str, **context: object) -> str:
        return self._env.get_template(name).render(**context)

    async def show(self, request: web.Request) -> web.Response:
        post, ticket = await self._authorised(request, dict(request.query))
        return self._html(ticket, post.person, dict(request.query), message="")

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
        post, ticket = await self._authorised(request, fields)
        worker = post.person
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
            template, context = await self._desk.act(post, ticket.number, command)
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
