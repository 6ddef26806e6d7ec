"""The conversation with one resident: a small explicit state machine.

States (`Conversation.state`):

    idle ──report──▶ await_category? ──▶ await_location? ──▶ await_phone? ──▶ await_confirm ──确认──▶ idle (ticket)
    idle ──撤回────▶ await_withdraw ──number──▶ idle
    idle ──photo/location──▶ await_description ──text──▶ (as a report, the attachment kept)

Every state also understands: 取消 (drop the draft), 帮助, a status query or a ticket
number (answered without losing the draft), and an emergency (answered at once).
The state is stored as JSON in Redis by the dispatcher; this module does no storage itself.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from bot.logs import mask_phone
from bot.replies import Replies
from bot.ticketing import ReportDraft, TicketService
from bot.tickets import Ticket, TicketNotFound
from flows import Event, TransitionRefused
from integrations.base import IncomingMessage
from nlu.entities import rating
from nlu.types import NluResult

# anything that looks like an attempt at a ticket number; a malformed one simply finds nothing
TICKET_NUMBER = re.compile(r"(?<![A-Za-z])[A-Za-z]{2}\s*\d[\d\s]{2,}\d")
PHONE = re.compile(r"(?<!\d)(?:1[3-9]\d{9}|0\d{2,3}-?\d{7,8})(?!\d)")

CANCEL_WORDS = frozenset({"取消", "算了", "不报了", "不用了", "退出", "cancel"})
HELP_WORDS = frozenset({"帮助", "help", "菜单", "？", "?", "你能做什么", "功能"})
SKIP_WORDS = frozenset({"跳过", "不留", "不用", "不方便", "skip", "不想留", "没有"})
CONFIRM_WORDS = frozenset({"确认", "确定", "提交", "是", "是的", "对", "好", "好的", "可以", "ok", "yes", "嗯"})
STATUS_WORDS = ("我的工单", "查询进度", "查进度", "进度", "工单进度")
WITHDRAW_WORDS = ("撤回", "撤销", "不用处理了")
SUPPLEMENT_MIN_CHARS = 4  # a shorter answer to the summary that is not 确认 is asked again, never added

# kinds that expect no answer at all
SILENT_KINDS = frozenset({"unsubscribe", "view", "location_report", "enter_agent"})
# official-account menu button keys → what they do (reply template name, or "status"). Admins
# may key a button by its label, so the Chinese labels work as keys too (docs/wechat-setup.md).
MENU_KEYS = {
    "REPORT": "menu_report", "我要反映": "menu_report", "反映问题": "menu_report",
    "STATUS": "status", "查询进度": "status", "MY_TICKETS": "status", "我的工单": "status",
    "HELP": "help", "帮助": "help", "使用帮助": "help",
}

# Which number to call, per emergency kind. Shown before anything else.
EMERGENCY_ADVICE: dict[str, dict[str, str]] = {
    "fire": {
        "headline": "疑似火情",
        "number": "119",
        "what_to_do": "请尽快撤离到安全地带，不要乘坐电梯，用湿毛巾捂住口鼻。",
    },
    "gas": {
        "headline": "疑似燃气泄漏",
        "number": "燃气公司抢修电话或 119",
        "what_to_do": "请立即关闭燃气阀门、打开门窗通风，不要开关电器、不要打电话于室内，人员先撤到室外。",
    },
    "police": {"headline": "治安险情", "number": "110", "what_to_do": "请先确保自身安全，远离冲突现场。"},
    "medical": {"headline": "有人受伤或突发疾病", "number": "120", "what_to_do": "请不要随意搬动伤者，保持电话畅通。"},
    "electric": {
        "headline": "电线掉落或漏电",
        "number": "110 或供电抢修 95598",
        "what_to_do": "请远离电线至少 10 米，不要触碰，也不要让他人靠近。",
    },
    "rescue": {"headline": "有人被困或遇险", "number": "119", "what_to_do": "请不要贸然施救，先报警等待专业救援。"},
}


@dataclass(frozen=True, slots=True)
class Draft:
    description: str = ""
    category: str | None = None
    category_choices: tuple[str, ...] = ()
    location_text: str = ""
    lat: float | None = None
    lon: float | None = None
    phone: str | None = None
    phone_asked: bool = False
    media_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Conversation:
    state: str = "idle"
    draft: Draft | None = None
    withdraw_choices: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Conversation:
        draft = data.get("draft")
        return cls(
            state=data.get("state", "idle"),
            draft=Draft(
                **{
                    **draft,
                    "category_choices": tuple(draft.get("category_choices", ())),
                    "media_ids": tuple(draft.get("media_ids", ())),
                }
            )
            if draft
            else None,
            withdraw_choices=tuple(data.get("withdraw_choices", ())),
        )


IDLE = Conversation()
StateHandler = Callable[["Dialogue", Conversation, IncomingMessage, NluResult, datetime], Awaitable["Turn"]]


@dataclass(frozen=True, slots=True)
class Turn:
    """The outcome of one message: the next conversation state and the texts to send back."""

    conversation: Conversation
    replies: tuple[str, ...]
    opened: Ticket | None = None


@dataclass(frozen=True, slots=True)
class DialogueSettings:
    low_confidence: float = 0.35
    min_intent_confidence: float = 0.5
    status_list_size: int = 5
    category_choices: int = 3


@dataclass
class Dialogue:
    tickets: TicketService
    replies: Replies
    settings: DialogueSettings = field(default_factory=DialogueSettings)

    async def handle(self, conv: Conversation, msg: IncomingMessage, nlu: NluResult, now: datetime) -> Turn:
        if msg.kind != "text":
            return await self._non_text(conv, msg, now)
        text = msg.text.strip()
        lowered = text.lower()
        if nlu.emergency:
            return await self._emergency(conv, msg, nlu, now)
        if lowered in CANCEL_WORDS and conv.state != "idle":
            return self._say(msg, IDLE, "cancelled")
        if lowered in HELP_WORDS:
            return self._say(msg, conv, "help")
        number = _ticket_number(text, nlu)
        if number and conv.state not in {"await_withdraw"} and not _is_withdraw(text, nlu):
            return Turn(conv, (await self._status_detail(msg, number),))
        if conv.state == "idle":
            return await self._idle(msg, nlu, now)
        # mid-report answers are short (an address, a phone number): only explicit words interrupt
        if any(w in text for w in STATUS_WORDS):
            return Turn(conv, (await self._status_list(msg),))
        handler = self._states[conv.state]
        return await handler(self, conv, msg, nlu, now)

    async def _non_text(self, conv: Conversation, msg: IncomingMessage, now: datetime) -> Turn:
        """Events, photos, voice and locations (WeChat), none of which goes through the NLU."""
        if msg.kind in SILENT_KINDS:
            return Turn(conv, ())
        if msg.kind in {"subscribe", "scan"}:
            return self._say(msg, conv, "welcome")
        if msg.kind == "click":
            menu = MENU_KEYS.get(msg.event_key.strip().upper(), "help")
            if menu == "status":
                return Turn(conv, (await self._status_list(msg),))
            return self._say(msg, conv, menu)
        if msg.kind == "voice":
            return self._say(msg, conv, "voice_not_recognised")
        if msg.kind in {"image", "location"}:
            return await self._attachment(conv, msg, now)
        if dict(msg.extra).get("msg_type") == "event":  # the platform's own events (群发结果…): no one to answer
            return Turn(conv, ())
        return self._say(msg, conv, "unsupported")

    async def _attachment(self, conv: Conversation, msg: IncomingMessage, now: datetime) -> Turn:
        """A photo or a location joins the report being told, or starts one."""
        draft = conv.draft or Draft()
        draft = dataclasses.replace(draft, media_ids=(*draft.media_ids, *msg.media_ids))
        if msg.location is not None:
            draft = dataclasses.replace(
                draft,
                lat=msg.location.lat,
                lon=msg.location.lon,
                location_text=msg.location.label or draft.location_text,
            )
        if conv.state in {"idle", "await_description", "await_withdraw"}:
            return self._say(
                msg, Conversation("await_description", draft), "ask_description", photo=bool(msg.media_ids)
            )
        if conv.state == "await_location" and msg.location is not None:
            return await self._next_question(draft, msg, now)
        if conv.state == "await_confirm":  # what is about to be filed changed: show it again
            return Turn(Conversation("await_confirm", draft), (self._confirm_text(msg, draft, updated=True),))
        return self._say(msg, dataclasses.replace(conv, draft=draft), "attachment_added", photo=bool(msg.media_ids))

    async def _await_description(self, conv: Conversation, msg: IncomingMessage, nlu: NluResult, now: datetime) -> Turn:
        """After a photo or location came first: this text is the report, whatever the NLU's intent."""
        assert conv.draft is not None
        start = await self._start_report(msg, nlu, now)
        if start.conversation.draft is None:
            return start
        told = start.conversation.draft
        draft = dataclasses.replace(
            told,
            phone_asked=False,  # the question _start_report chose is recomputed below
            media_ids=conv.draft.media_ids,
            lat=conv.draft.lat,
            lon=conv.draft.lon,
            location_text=told.location_text or conv.draft.location_text,
        )
        if start.conversation.state == "await_category":
            return self._ask_category(msg, draft)
        return await self._next_question(draft, msg, now)

    # idle: what does the resident want?
    async def _idle(self, msg: IncomingMessage, nlu: NluResult, now: datetime) -> Turn:
        text = msg.text.strip()
        if msg.location is not None and not text:
            return self._say(msg, IDLE, "help")
        if _is_status_query(text, nlu):
            return Turn(IDLE, (await self._status_list(msg),))
        if _is_withdraw(text, nlu):
            return await self._start_withdraw(msg, nlu, now)
        if _bare_rating(text):
            return await self._rate(msg, nlu, now)
        intent = nlu.intent if nlu.confidence >= self.settings.min_intent_confidence else "unknown"
        if intent == "report_issue":
            return await self._start_report(msg, nlu, now)
        if intent == "rate":
            return await self._rate(msg, nlu, now)
        simple = {"greet": "greet", "thanks": "thanks", "human": "human", "consult": "consult"}
        if intent in simple:
            return self._say(msg, IDLE, simple[intent])
        return self._say(msg, IDLE, "fallback")

    async def _start_report(self, msg: IncomingMessage, nlu: NluResult, now: datetime) -> Turn:
        draft = Draft(
            description=msg.text.strip(),
            location_text=nlu.entity("address") or "",
            lat=msg.location.lat if msg.location else None,
            lon=msg.location.lon if msg.location else None,
            phone=nlu.entity("phone") or msg.phone,
            media_ids=msg.media_ids,
        )
        confident = nlu.category is not None and nlu.category_confidence >= self.settings.low_confidence
        if confident:
            return await self._next_question(dataclasses.replace(draft, category=nlu.category), msg, now)
        choices = tuple(c for c, _ in nlu.category_ranking[: self.settings.category_choices])
        if nlu.category and nlu.category not in choices:
            choices = (nlu.category, *choices[:-1]) if choices else (nlu.category,)
        choices = (*[c for c in choices if c != "other"], "other")
        draft = dataclasses.replace(draft, category_choices=choices)
        return self._ask_category(msg, draft)

    def _ask_category(self, msg: IncomingMessage, draft: Draft) -> Turn:
        names = [self.tickets.category_name(c) for c in draft.category_choices]
        return Turn(
            Conversation("await_category", draft),
            (self.replies.render("ask_category", channel=msg.channel, choices=names),),
        )

    async def _await_category(self, conv: Conversation, msg: IncomingMessage, nlu: NluResult, now: datetime) -> Turn:
        assert conv.draft is not None
        choice = _small_number(msg.text)
        choices = conv.draft.category_choices
        if choice is None or not 1 <= choice <= len(choices):
            return self._ask_category(msg, conv.draft)
        draft = dataclasses.replace(conv.draft, category=choices[choice - 1])
        return await self._next_question(draft, msg, now)

    async def _await_location(self, conv: Conversation, msg: IncomingMessage, nlu: NluResult, now: datetime) -> Turn:
        assert conv.draft is not None
        draft = conv.draft
        if msg.location is not None:
            draft = dataclasses.replace(
                draft,
                lat=msg.location.lat,
                lon=msg.location.lon,
                location_text=msg.location.label or draft.location_text,
            )
        text = msg.text.strip()
        if text:
            draft = dataclasses.replace(draft, location_text=nlu.entity("address") or text)
        if not draft.location_text and draft.lat is None:
            return self._say(msg, conv, "ask_location", category_name=self._category_name(draft))
        return await self._next_question(draft, msg, now)

    async def _await_phone(self, conv: Conversation, msg: IncomingMessage, nlu: NluResult, now: datetime) -> Turn:
        assert conv.draft is not None
        text = msg.text.strip()
        phone = nlu.entity("phone") or _find_phone(text)
        if phone:
            return await self._next_question(dataclasses.replace(conv.draft, phone=phone), msg, now)
        if text.lower() in SKIP_WORDS or nlu.intent == "deny":
            return await self._next_question(conv.draft, msg, now)
        return self._say(msg, conv, "bad_phone")

    async def _await_confirm(self, conv: Conversation, msg: IncomingMessage, nlu: NluResult, now: datetime) -> Turn:
        assert conv.draft is not None
        text = msg.text.strip().lower().rstrip("!！。.")
        if text in CONFIRM_WORDS or (nlu.intent == "affirm" and nlu.confidence >= 0.5):
            return await self._open(conv.draft, msg, now)
        if nlu.intent == "deny":
            return self._say(msg, IDLE, "cancelled")
        place, phone = nlu.entity("address"), nlu.entity("phone") or _find_phone(msg.text)
        detail = nlu.intent == "report_issue"
        if len(text) < SUPPLEMENT_MIN_CHARS or not (detail or place or phone):  # "嗯嗯", "好的谢谢": ask again
            return Turn(conv, (self._confirm_text(msg, conv.draft),))
        # a detail joins the description; a corrected place or phone replaces the old one (the
        # phone in full only in its field: the description is shown to the grid's workers)
        draft = dataclasses.replace(
            conv.draft,
            description=f"{conv.draft.description}；{mask_phone(msg.text.strip())}" if detail
            else conv.draft.description,
            location_text=place or conv.draft.location_text,
            phone=phone or conv.draft.phone,
        )
        return Turn(Conversation("await_confirm", draft), (self._confirm_text(msg, draft, updated=True),))

    async def _next_question(self, draft: Draft, msg: IncomingMessage, now: datetime) -> Turn:
        """Ask for what is still missing, in order: location, phone (once), confirmation."""
        if not draft.location_text and draft.lat is None:
            return self._say(
                msg, Conversation("await_location", draft), "ask_location", category_name=self._category_name(draft)
            )
        if not draft.phone and not draft.phone_asked:
            draft = dataclasses.replace(draft, phone_asked=True)
            return self._say(msg, Conversation("await_phone", draft), "ask_phone", location=_where(draft))
        return Turn(Conversation("await_confirm", draft), (self._confirm_text(msg, draft),))

    def _confirm_text(self, msg: IncomingMessage, draft: Draft, updated: bool = False) -> str:
        return self.replies.render(
            "confirm",
            channel=msg.channel,
            updated=updated,
            description=draft.description,
            category_name=self._category_name(draft),
            location=_where(draft),
            phone=draft.phone,
        )

    async def _open(self, draft: Draft, msg: IncomingMessage, now: datetime, emergency: bool = False) -> Turn:
        ticket = await self.tickets.open(
            msg.channel,
            msg.user_id,
            ReportDraft(
                description=draft.description,
                category=draft.category or "other",
                location_text=draft.location_text,
                lat=draft.lat,
                lon=draft.lon,
                phone=draft.phone,
                emergency=emergency,
                media_ids=draft.media_ids,
            ),
            now,
        )
        text = self.replies.render("ticket_opened", channel=msg.channel, t=self.tickets.view(ticket))
        return Turn(IDLE, (text,), opened=ticket)

    async def _emergency(self, conv: Conversation, msg: IncomingMessage, nlu: NluResult, now: datetime) -> Turn:
        """Tell the resident whom to call before anything else, then open a red ticket at once."""
        advice = EMERGENCY_ADVICE.get(nlu.emergency_kind or "", EMERGENCY_ADVICE["police"])
        draft = Draft(
            description=msg.text.strip(),
            category=nlu.category or "public_security",
            location_text=nlu.entity("address") or (msg.location.label if msg.location else ""),
            lat=msg.location.lat if msg.location else None,
            lon=msg.location.lon if msg.location else None,
            phone=nlu.entity("phone") or msg.phone,
            media_ids=msg.media_ids,
        )
        opened = await self._open(draft, msg, now, emergency=True)
        assert opened.opened is not None
        text = self.replies.render("emergency", channel=msg.channel, advice=advice, t=self.tickets.view(opened.opened))
        # a half-told report survives: the emergency is a ticket of its own
        return Turn(conv, (text,), opened=opened.opened)

    # status
    async def _status_list(self, msg: IncomingMessage) -> str:
        tickets = await self.tickets.own_tickets(msg.channel, msg.user_id, self.settings.status_list_size)
        if not tickets:
            return self.replies.render("no_tickets", channel=msg.channel)
        return self.replies.render("status_list", channel=msg.channel, tickets=[self.tickets.view(t) for t in tickets])

    async def _status_detail(self, msg: IncomingMessage, number: str) -> str:
        ticket = await self.tickets.own_ticket(msg.channel, msg.user_id, number)
        if ticket is None:
            return self.replies.render("not_found", channel=msg.channel)
        return self.replies.render("status_detail", channel=msg.channel, t=self.tickets.view(ticket))

    # withdraw
    async def _start_withdraw(self, msg: IncomingMessage, nlu: NluResult, now: datetime) -> Turn:
        number = _ticket_number(msg.text, nlu)
        if number:
            return Turn(IDLE, (await self._withdraw(msg, number, now),))
        tickets = await self.tickets.own_tickets(msg.channel, msg.user_id, self.settings.status_list_size)
        open_tickets = [t for t in tickets if self.tickets.view(t).open]
        if not open_tickets:
            return self._say(msg, IDLE, "withdraw_none")
        conv = Conversation("await_withdraw", withdraw_choices=tuple(t.number for t in open_tickets))
        return self._say(msg, conv, "withdraw_choose", tickets=[self.tickets.view(t) for t in open_tickets])

    async def _await_withdraw(self, conv: Conversation, msg: IncomingMessage, nlu: NluResult, now: datetime) -> Turn:
        number = _ticket_number(msg.text, nlu)
        choice = _small_number(msg.text)
        if number is None and choice is not None and 1 <= choice <= len(conv.withdraw_choices):
            number = conv.withdraw_choices[choice - 1]
        if number is None:
            return await self._idle(msg, nlu, now)
        return Turn(IDLE, (await self._withdraw(msg, number, now),))

    async def _withdraw(self, msg: IncomingMessage, number: str, now: datetime) -> str:
        ticket = await self.tickets.own_ticket(msg.channel, msg.user_id, number)
        if ticket is None:
            return self.replies.render("not_found", channel=msg.channel)
        try:
            moved = await self.tickets.act(number, Event(kind="withdraw", actor="resident", at=now, data=()))
        except TransitionRefused as refused:
            return self.replies.render(
                "withdraw_refused", channel=msg.channel, t=self.tickets.view(ticket), reason=str(refused)
            )
        except TicketNotFound:
            return self.replies.render("not_found", channel=msg.channel)
        return self.replies.render("withdrawn", channel=msg.channel, t=self.tickets.view(moved))

    # rating
    async def _rate(self, msg: IncomingMessage, nlu: NluResult, now: datetime) -> Turn:
        score = _score(msg.text, nlu)
        tickets = await self.tickets.own_tickets(msg.channel, msg.user_id, self.settings.status_list_size)
        waiting = [t for t in tickets if t.status == "resolved"]
        if score is None or not waiting:
            return self._say(msg, IDLE, "nothing_to_rate")
        target = waiting[0]
        event = Event(kind="rate", actor="resident", at=now, data=(("score", str(score)),))
        moved = await self.tickets.act(target.number, event)
        return self._say(
            msg,
            IDLE,
            "rated",
            t=self.tickets.view(moved),
            score=score,
            reopened=moved.status not in {"closed", "resolved"},
        )

    def _category_name(self, draft: Draft) -> str:
        return self.tickets.category_name(draft.category or "other")

    def _say(self, msg: IncomingMessage, conv: Conversation, template: str, **context: Any) -> Turn:
        return Turn(conv, (self.replies.render(template, channel=msg.channel, **context),))

    _states: ClassVar[dict[str, StateHandler]] = {
        "await_category": _await_category,
        "await_location": _await_location,
        "await_phone": _await_phone,
        "await_confirm": _await_confirm,
        "await_withdraw": _await_withdraw,
        "await_description": _await_description,
    }


def _ticket_number(text: str, nlu: NluResult) -> str | None:
    found = nlu.entity("ticket_number")
    if not found:
        m = TICKET_NUMBER.search(text)
        found = m.group(0) if m else None
    return re.sub(r"\s+", "", found).upper() if found else None


def _find_phone(text: str) -> str | None:
    m = PHONE.search(re.sub(r"[\s-]", "", text))
    return m.group(0) if m else None


def _is_status_query(text: str, nlu: NluResult) -> bool:
    return any(w in text for w in STATUS_WORDS) or (nlu.intent == "query_status" and nlu.confidence >= 0.5)


def _is_withdraw(text: str, nlu: NluResult) -> bool:
    return any(w in text for w in WITHDRAW_WORDS) or (nlu.intent == "withdraw" and nlu.confidence >= 0.5)


def _small_number(text: str) -> int | None:
    m = re.fullmatch(r"\s*(\d{1,2})\s*[.。、]?\s*", text)
    return int(m.group(1)) if m else None


def _score(text: str, nlu: NluResult) -> int | None:
    value = nlu.entity("rating")
    if value is None and (found := rating(text)) is not None:
        value = found.value
    return int(value) if value else None


def _bare_rating(text: str) -> bool:
    """A message that is only a rating ("3", "5分", "五星", "一般", "不满意"): the answer to the
    rating request, whatever intent the NLU gives such a short text."""
    core = text.strip().rstrip("!！。.~～")
    found = rating(core)
    return found is not None and found.start == 0 and found.end == len(core)


def _where(draft: Draft) -> str:
    if draft.location_text:
        return draft.location_text
    if draft.lat is not None and draft.lon is not None:
        return f"微信定位（{draft.lat:.5f}, {draft.lon:.5f}）"
    return "未提供"
