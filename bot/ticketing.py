"""Opening and moving tickets: the flow engine decides, this module stores and records.

`flows.step` is pure; here its actions become timeline entries, outbox notifications and
timers, written atomically with the new ticket state by `TicketStore`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.flow_versions import FlowVersions
from bot.tickets import Change, Notification, Ticket, TicketNotFound, TicketStore, TimelineEntry
from flows import Action, Event, Flow, GridDirectory, StepResult, TicketState, migrate, new_ticket, step

GRID_LEVEL = "grid"  # the flow's lowest level: the grid directory's workers act on tickets there


@dataclass(frozen=True, slots=True)
class ReportDraft:
    description: str
    category: str
    location_text: str = ""
    lat: float | None = None
    lon: float | None = None
    phone: str | None = None
    emergency: bool = False
    media_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TicketView:
    """What a reply template may show of a ticket (phone already masked)."""

    number: str
    description: str
    category_name: str
    colour_name: str
    colour_rhythm: str
    status_name: str
    level_name: str
    unit_name: str
    deadline: str | None
    card_name: str
    location: str
    open: bool
    last_progress: str
    return_reason: str = ""  # the worker's, of the latest 退回
    escalate_reason: str = ""  # the worker's, of the latest 上报
    at_grid: bool = True  # False once it is the community's, street's or district's
    grid_name: str = ""  # the grid it was reported in, "" without one


class FlowHolder:
    """The flow in force for new tickets, plus every version an open ticket may still run under."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self._versions: dict[str, Flow] = {flow.version: flow}

    def set_current(self, flow: Flow) -> None:
        self._versions[flow.version] = flow
        self.flow = flow

    def add(self, flow: Flow) -> None:
        self._versions.setdefault(flow.version, flow)

    def get(self, version: str) -> Flow | None:
        return self._versions.get(version)


class TicketService:
    def __init__(
        self,
        store: TicketStore,
        flows: FlowHolder,
        directory: GridDirectory | None,
        category_names: Mapping[str, str],
        versions: FlowVersions | None = None,
    ) -> None:
        self.store = store
        self._flows = flows
        self._versions = versions
        self._directory = directory
        self._category_names = category_names

    @property
    def flow(self) -> Flow:
        return self._flows.flow

    def route(self, draft: ReportDraft) -> str | None:
        """The grid code for a report: the WeChat location first, then names in the address."""
        if self._directory is None:
            return None
        grid = None
        if draft.lat is not None and draft.lon is not None:
            grid = self._directory.route_point(draft.lat, draft.lon)
        if grid is None and draft.location_text:
            grid = self._directory.route_address(draft.location_text)
        if grid is None:
            grid = self._directory.route_address(draft.description)
        return grid.code if grid else None

    async def open(
        self, channel: str, reporter_id: str, draft: ReportDraft, now: datetime, acknowledge: str = ""
    ) -> Ticket:
        """Number, route and store a new ticket. `acknowledge`: a notification template the
        resident gets through the outbox, written with the ticket (e.g. the hotline's SMS)."""
        flow = self.flow
        number = await self.store.allocate_number(now)
        grid_code = self.route(draft)
        result = new_ticket(
            flow,
            category=draft.category,
            now=now,
            grid_code=grid_code,
            colour="red" if draft.emergency else None,
        )
        stamp = now.isoformat()
        created = TimelineEntry(at=stamp, actor="resident", kind="created", text=draft.description)
        ticket = Ticket(
            number=number,
            channel=channel,
            reporter_id=reporter_id,
            description=draft.description,
            flow=result.state,
            created_at=stamp,
            updated_at=stamp,
            location_text=draft.location_text,
            lat=draft.lat,
            lon=draft.lon,
            grid_code=grid_code,
            phone=draft.phone,
            emergency=draft.emergency,
            media_ids=draft.media_ids,
            timeline=(created,),
        )
        change = self._record(ticket, result, actor="system", now=now)
        extra = []
        if draft.emergency:
            extra.append(Notification(ticket=number, template="notify/emergency_alert", audience="duty_dispatcher"))
        if acknowledge:
            extra.append(Notification(ticket=number, template=acknowledge, audience="resident"))
        if extra:
            change = dataclasses.replace(change, notifications=(*extra, *change.notifications))
        await self.store.create(change)
        if ticket.media_ids:  # a photo whose download failed before the ticket existed
            await self.note_failed_media(number, ticket.media_ids, now)
        return change.ticket

    async def note_failed_media(self, number: str, media_ids: tuple[str, ...], now: datetime) -> None:
        """A resident's photo that could not be fetched: the ticket stands, its timeline says so."""
        for media_id, why in await self.store.claim_failed_media(media_ids):
            entry = TimelineEntry(at=now.isoformat(), actor="system", kind="media_failed", text=f"{media_id}：{why}")
            await self.add_entry(number, entry)

    async def add_entry(self, number: str, entry: TimelineEntry) -> None:
        """A line in the timeline that moves nothing in the flow (a note, a failed photo)."""
        await self.store.update(number, lambda t: Change(ticket=_with(t, timeline=(*t.timeline, entry))))

    async def flow_for(self, ticket: Ticket) -> Flow:
        """The version the ticket was opened under (its rules and deadlines stay), else the current one."""
        version = ticket.flow.flow_version
        flow = self._flows.get(version)
        if flow is None and self._versions is not None:
            flow = await self._versions.load(version)
            if flow is not None:
                self._flows.add(flow)
        return flow or self.flow

    async def act(self, number: str, event: Event) -> Ticket:
        """Apply an event through the flow; raises TransitionRefused or TicketNotFound."""
        current = await self.store.get(number)
        if current is None:
            raise TicketNotFound(number)
        flow = await self.flow_for(current)
        photos = tuple(p for p in (event.get("photos") or "").split(",") if p)
        entry = TimelineEntry(
            at=event.at.isoformat(), actor=_actor(event), kind=event.kind, text=event.get("note") or "", photos=photos
        )
        return await self._change(number, lambda state: step(flow, state, event, event.at), entry, event.at)

    async def migrate(self, number: str, now: datetime, author: str) -> Ticket:
        """Put an open ticket under the current flow version: new deadline and timers."""
        flow = self.flow
        entry = TimelineEntry(at=now.isoformat(), actor=f"dispatcher:{author}", kind="migrate", text=flow.version)
        return await self._change(number, lambda state: migrate(flow, state, now), entry, now)

    async def _change(
        self, number: str, run: Callable[[TicketState], StepResult], entry: TimelineEntry, now: datetime
    ) -> Ticket:
        def apply(ticket: Ticket) -> Change:
            result = run(ticket.flow)
            # a dispatch may name another grid: the ticket is then that grid's (its workers, its group)
            moved = _with(ticket, flow=result.state, grid_code=result.state.grid_code,
                          timeline=(*ticket.timeline, entry))
            return self._record(moved, result, actor="system", now=now)

        change = await self.store.update(number, apply)
        if change is None:
            raise TicketNotFound(number)
        return change.ticket

    def _record(self, ticket: Ticket, result: StepResult, actor: str, now: datetime) -> Change:
        """Turn the engine's actions into timeline lines, notifications and timers."""
        entries: list[TimelineEntry] = []
        notes: list[Notification] = []
        timers: list[tuple[str, datetime]] = []
        cancel = False
        for action in result.actions:
            params = dict(action.params)
            if action.kind == "schedule":
                timers.append((params["timer"], datetime.fromisoformat(params["due"])))
                continue  # timers are bookkeeping, not history
            if action.kind == "cancel_timers":
                cancel = True
                continue
            if action.kind == "notify":
                notes.append(
                    Notification(
                        ticket=ticket.number,
                        template=params["template"],
                        audience=params.get("to", "resident"),
                        rule=action.rule,
                        # who held the ticket when the rule said so (a later action may move it on)
                        level=params.get("level", ""),
                        unit=params.get("unit", ""),
                        assignee=params.get("worker", ""),
                        grid=params.get("grid", ""),
                    )
                )
            entries.append(
                TimelineEntry(
                    at=now.isoformat(), actor=actor, kind=action.kind, text=_describe(action), rule=action.rule
                )
            )
        updated = _with(ticket, timeline=(*ticket.timeline, *entries), updated_at=now.isoformat())
        return Change(ticket=updated, notifications=tuple(notes), timers=tuple(timers), cancel_timers=cancel)

    async def own_tickets(self, channel: str, user_id: str, limit: int) -> list[Ticket]:
        return await self.store.get_many(await self.store.numbers_by_reporter(channel, user_id, limit))

    async def own_ticket(self, channel: str, user_id: str, number: str) -> Ticket | None:
        """The ticket only if this sender reported it: nobody learns whether others' numbers exist."""
        ticket = await self.store.get(number)
        if ticket is None or ticket.channel != channel or ticket.reporter_id != user_id:
            return None
        return ticket

    def category_name(self, category: str) -> str:
        return self._category_names.get(category, category)

    def view(self, ticket: Ticket) -> TicketView:
        flow = self.flow
        state = ticket.flow
        progress = next(
            (e.text for e in reversed(ticket.timeline) if e.kind in {"progress", "resolve", "accept"} and e.text),
            flow.status_name(state.status),
        )
        def latest(kind: str) -> str:
            """The text of the latest `kind` event (someone's words; a rule's action has its rule)."""
            return next((e.text for e in reversed(ticket.timeline) if e.kind == kind and e.text and not e.rule), "")

        # the place (e.g. 青枫街道) when the ticket has a grid, else the flow's unit (e.g. 区联动中心)
        area = self._directory.area_name(state.grid_code, state.level) if state.grid_code and self._directory else None
        grid = self._directory.area_name(state.grid_code, GRID_LEVEL) if state.grid_code and self._directory else None
        unit_name = area or (flow.unit_name(state.unit) if state.unit in flow.units else "")
        return TicketView(
            number=ticket.number,
            description=ticket.description,
            category_name=self.category_name(state.category),
            colour_name=flow.colour_name(state.colour),
            colour_rhythm=flow.colour_rhythm(state.colour),
            status_name=flow.status_name(state.status),
            level_name=flow.level_name(state.level),
            unit_name=unit_name,
            deadline=state.deadline.isoformat() if state.deadline else None,
            card_name={"yellow": "黄牌", "red": "红牌"}.get(state.card or "", ""),
            location=ticket.location_text,
            open=not flow.is_final(state.status),
            last_progress=progress,
            return_reason=latest("return"),
            escalate_reason=latest("escalate"),
            at_grid=state.level == GRID_LEVEL,
            grid_name=grid or "",
        )


def _describe(action: Action) -> str:
    return ", ".join(f"{k}={v}" for k, v in action.params)


def _with(ticket: Ticket, **changes: object) -> Ticket:
    return dataclasses.replace(ticket, **changes)  # type: ignore[arg-type]


def _actor(event: Event) -> str:
    """Who, for the timeline: "worker:<wecom id>" when the engine knows exactly who."""
    return f"{event.actor}:{event.by}" if event.by else event.actor
