"""The flow engine: a pure function from (flow, ticket state, event, now) to (new state, actions).

Nothing here reads a clock, sleeps or talks to Redis. The application executes the actions
(push a task, send a notification, store a timer) and records each with the rule that
caused it.

Timers are derived, not stored in the state: `pending_timers(flow, state)` lists the timers
the state calls for, with ids that spell the rule, the anchor ("state" = time in the current
status, "deadline" = against the deadline), the occurrence and the due time, e.g.
`yellow_card:deadline:1:2026-10-08T16:00:00+08:00`. A timer is live only while that exact id
is still pending; anything else (the ticket left the status, the deadline moved, the flow
changed) makes it stale and firing it yields nothing. A fired id is kept in `state.fired`
until its anchor changes, so a timer delivered twice fires once.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction

from flows.calendar import Duration
from flows.model import ACTORS, EVENT_NAMES, ActionSpec, Condition, Flow, Rule, Transition

JsonValue = str | int | list[str] | None
# How many status entries one step may cascade through; a checked flow stays far below.
_MAX_CASCADE = 64
_CARD_RANK: dict[str | None, int] = {None: 0, "yellow": 1, "red": 2}


class TransitionRefused(Exception):
    """The event is not allowed now; `reason` (Chinese) may be shown to whoever sent it."""

    def __init__(self, reason: str, status: str = "", event: str = "", actor: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.event = event
        self.actor = actor


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a ticket.

    kind: an EVENT_NAMES key or "timer"; actor: resident | worker | dispatcher | system;
    by: who exactly (a WeCom user id for a worker). Data keys by kind: rate: score;
    dispatch: grid, level, unit, worker; assign: worker; escalate: ladder, level;
    reopen: level (up | same | a level); set_colour: colour; close: reason;
    mark_duplicate: duplicate_of; timer: timer; any: note.
    """

    kind: str
    actor: str
    at: datetime
    data: tuple[tuple[str, str], ...] = ()
    by: str | None = None

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.data if k == key), None)


@dataclass(frozen=True, slots=True)
class Action:
    """What the application must do, and the rule that said so.

    kinds and params:
      assign        level, unit, grid (if known), worker (if assigned)
      notify        template, to (resident | assignee | unit | dispatcher | grid_group | unit:<id>),
                    level, unit, worker, grid: the owner when the rule ran (a red card goes to the
                    unit that earned it even if the same rule then escalates)
      set_deadline  deadline, from, span
      set_colour    colour
      card          card (yellow | red), level, unit
      escalate      from_level, level, unit, ladder, label
      reopen        from_level, level, unit
      close         reason
      schedule      timer, due (ISO 8601)
      cancel_timers (none): forget every pending timer of the ticket; the schedule actions
                    that follow in the same result are the complete set
    Built-in causes use the rule ids "intake" (new_ticket) and "event:<kind>".
    """

    kind: str
    rule: str
    params: tuple[tuple[str, str], ...] = ()

    def param(self, key: str) -> str | None:
        return next((v for k, v in self.params if k == key), None)


@dataclass(frozen=True, slots=True)
class TicketState:
    """Where a ticket stands in its flow. Round-trips through JSON (`to_json` / `from_json`)."""

    status: str
    category: str
    colour: str
    level: str
    unit: str
    ladder: str
    created_at: datetime
    status_since: datetime
    deadline_from: datetime
    deadline: datetime
    deadline_span: str  # a Duration, e.g. "1 working day"
    flow_version: str
    grid_code: str | None = None
    assignee: str | None = None
    card: str | None = None  # None | "yellow" | "red": the most severe card the ticket has had
    rating: int | None = None
    reopen_count: int = 0
    closed_reason: str | None = None
    fired: tuple[str, ...] = field(default=())  # timer ids fired since their anchor was set

    def to_json(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                out[f.name] = value.isoformat()
            elif isinstance(value, tuple):
                out[f.name] = list(value)
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, JsonValue]) -> TicketState:
        """The inverse of to_json; raises ValueError naming the first bad field."""
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ValueError(f"ticket state: missing {f.name!r}")
                continue
            raw = data[f.name]
            kind = str(f.type)
            if kind == "datetime":
                if not isinstance(raw, str):
                    raise ValueError(f"ticket state: {f.name!r} must be an ISO time")
                moment = datetime.fromisoformat(raw)
                if moment.tzinfo is None:
                    raise ValueError(f"ticket state: {f.name!r} has no time zone")
                values[f.name] = moment
            elif kind == "tuple[str, ...]":
                if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
                    raise ValueError(f"ticket state: {f.name!r} must be a list of strings")
                values[f.name] = tuple(raw)
            elif kind == "int" or kind == "int | None":
                if not (isinstance(raw, int) or (raw is None and kind == "int | None")):
                    raise ValueError(f"ticket state: {f.name!r} must be an integer")
                values[f.name] = raw
            else:
                if not (isinstance(raw, str) or (raw is None and kind == "str | None")):
                    raise ValueError(f"ticket state: {f.name!r} must be a string")
                values[f.name] = raw
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class StepResult:
    state: TicketState
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class Timer:
    id: str
    due: datetime
    rule: str


# ------------------------------------------------------------------------------------------
# Timers


def pending_timers(flow: Flow, state: TicketState) -> tuple[Timer, ...]:
    """The timers this state calls for, not yet fired (also what to reschedule after migrating)."""
    return tuple(timer for timer, _ in _pending(flow, state))


def _pending(flow: Flow, state: TicketState) -> list[tuple[Timer, Rule]]:
    timers = []
    calendar = flow.calendar
    for rule in flow.rules:
        trigger = rule.trigger
        if trigger.kind == "state" and state.status in trigger.names:
            anchor = "state"
            prefix = f"{rule.id}:{anchor}:"
            occurrence = 1 + sum(1 for t in state.fired if t.startswith(prefix))
            if occurrence > 1 and not trigger.repeat:
                continue
            span = trigger.after or flow.colours[state.colour].progress
            due = calendar.add(state.status_since, span.scaled(occurrence))
        elif trigger.kind == "deadline" and flow.statuses[state.status].clock:
            anchor = "deadline"
            prefix = f"{rule.id}:{anchor}:"
            if any(t.startswith(prefix) for t in state.fired):
                continue
            occurrence = 1
            due = _against_deadline(flow, state, trigger.multiple, trigger.offset)
        else:
            continue
        if holds(flow, rule.condition, state):
            timers.append((Timer(f"{prefix}{occurrence}:{due.isoformat()}", due, rule.id), rule))
    return timers


def _against_deadline(flow: Flow, state: TicketState, multiple: Fraction, offset: Duration | None) -> datetime:
    base = state.deadline
    if multiple != 1:
        span = Duration.parse(state.deadline_span)
        base = flow.calendar.add(state.deadline_from, span.scaled(multiple))
    return flow.calendar.add(base, offset) if offset is not None else base


# ------------------------------------------------------------------------------------------
# Conditions


def holds(flow: Flow, condition: Condition, state: TicketState) -> bool:
    """True when every field the condition sets holds for the state."""
    c = condition
    checks = (
        not c.status or state.status in c.status,
        not c.colour or state.colour in c.colour,
        not c.level or state.level in c.level,
        not c.category or state.category in c.category,
        not c.card or (state.card or "none") in c.card,
        not c.ladder or state.ladder in c.ladder,
        c.rating_at_most is None or (state.rating is not None and state.rating <= c.rating_at_most),
        c.rating_at_least is None or (state.rating is not None and state.rating >= c.rating_at_least),
        c.reopened_at_most is None or state.reopen_count <= c.reopened_at_most,
        c.assigned is None or (state.assignee is not None) == c.assigned,
        c.grid is None or (state.grid_code is not None) == c.grid,
        c.top_of_ladder is None or (flow.next_step(state.ladder, state.level) is None) == c.top_of_ladder,
    )
    return all(checks)


# ------------------------------------------------------------------------------------------
# One step


class _Run:
    """The working copy of one step: the state so far, the actions so far, what to trigger next."""

    def __init__(self, flow: Flow, state: TicketState, now: datetime) -> None:
        self.flow = flow
        self.state = state
        self.now = now
        self.actions: list[Action] = []
        self.queue: deque[tuple[str, str]] = deque()

    def emit(self, kind: str, rule: str, **params: str | None) -> None:
        self.actions.append(Action(kind, rule, tuple((k, v) for k, v in params.items() if v is not None)))

    def update(self, **changes: object) -> None:
        self.state = dataclasses.replace(self.state, **changes)  # type: ignore[arg-type]

    def enter(self, status: str) -> None:
        self.update(status=status, status_since=self.now)
        self.queue.append(("enter", status))

    # -- effects shared by events and rules -------------------------------------------------

    def set_deadline(self, start: datetime, span: Duration, rule: str) -> None:
        deadline = self.flow.calendar.add(start, span)
        self.update(deadline_from=start, deadline=deadline, deadline_span=str(span))
        self.emit("set_deadline", rule, deadline=deadline.isoformat(), **{"from": start.isoformat()}, span=str(span))

    def set_colour(self, colour: str, rule: str) -> None:
        if colour == self.state.colour:
            return
        self.update(colour=colour)
        self.emit("set_colour", rule, colour=colour)
        self.set_deadline(self.state.deadline_from, self.flow.colours[colour].deadline, rule)

    def place(self, level: str, unit: str | None = None) -> None:
        """Move the ticket to a level (and unit); a new owner starts unassigned."""
        unit = unit or self.flow.office(level)
        if (level, unit) != (self.state.level, self.state.unit):
            self.update(level=level, unit=unit, assignee=None)

    def escalation(self, target: str, ladder: str) -> tuple[str, str, str] | None:
        """(level, unit, label) of an escalation to `target` ("up" or a level), None if not upward."""
        flow = self.flow
        if target == "up":
            step = flow.next_step(ladder, self.state.level)
            if step is None:
                return None
            return step.level, step.unit or flow.office(step.level), step.label
        if flow.level_rank(target) <= flow.level_rank(self.state.level):
            return None
        step = next((s for s in flow.ladders[ladder].steps if s.level == target), None)
        unit = step.unit if step is not None and step.unit else flow.office(target)
        return target, unit, step.label if step is not None else flow.level_name(target)

    def escalate(self, move: tuple[str, str, str], ladder: str, rule: str) -> None:
        level, unit, label = move
        self.emit("escalate", rule, from_level=self.state.level, level=level, unit=unit, ladder=ladder, label=label)
        self.update(ladder=ladder)
        self.place(level, unit)

    def reopen_level(self, target: str) -> tuple[str, str]:
        if target == "same":
            return self.state.level, self.state.unit
        if target == "up":
            step = self.flow.next_step(self.state.ladder, self.state.level)
            if step is None:
                return self.state.level, self.state.unit
            return step.level, step.unit or self.flow.office(step.level)
        return target, self.flow.office(target)

    def reopen(self, target: str, rule: str) -> None:
        level, unit = self.reopen_level(target)
        self.emit("reopen", rule, from_level=self.state.level, level=level, unit=unit)
        self.place(level, unit)
        self.update(reopen_count=self.state.reopen_count + 1, rating=None, closed_reason=None)

    # -- rules ------------------------------------------------------------------------------

    def run_rule(self, rule: Rule) -> None:
        for spec in rule.actions:
            self.act(spec, rule.id)

    def act(self, spec: ActionSpec, rule: str) -> None:
        flow, state = self.flow, self.state
        if spec.kind == "assign":
            if spec.value:
                self.place(spec.value, spec.unit)
            s = self.state
            self.emit("assign", rule, level=s.level, unit=s.unit, grid=s.grid_code, worker=s.assignee)
        elif spec.kind == "notify":
            for to in _recipients(flow, state, spec.to):
                self.emit(
                    "notify", rule, template=spec.template, to=to, level=state.level, unit=state.unit,
                    worker=state.assignee, grid=state.grid_code,
                )
        elif spec.kind == "set_colour":
            self.set_colour(spec.value, rule)
        elif spec.kind == "set_deadline":
            if spec.value == "restart":
                self.set_deadline(self.now, flow.colours[state.colour].deadline, rule)
            else:
                self.set_deadline(self.now, Duration.parse(spec.value), rule)
        elif spec.kind == "card":
            # the unit that earned it is in the action; the state keeps the worst card so far
            if _CARD_RANK[spec.value] > _CARD_RANK[state.card]:
                self.update(card=spec.value)
            self.emit("card", rule, card=spec.value, level=state.level, unit=state.unit)
        elif spec.kind == "escalate":
            move = self.escalation(spec.value, state.ladder)
            if move is not None:  # at the top of the ladder there is nowhere to go
                self.escalate(move, state.ladder, rule)
                self.enter("escalated")
        elif spec.kind == "reopen":
            self.reopen(spec.value, rule)
            self.enter("reopened")
        elif spec.kind == "close":
            if not flow.is_final(state.status):
                self.update(closed_reason=spec.value)
                self.emit("close", rule, reason=spec.value)
                self.enter("closed")
        else:
            raise ValueError(f"unknown action {spec.kind!r}")

    def drain(self) -> None:
        """Run the rules for every queued trigger, including those the rules themselves cause."""
        for _ in range(_MAX_CASCADE):
            if not self.queue:
                return
            kind, name = self.queue.popleft()
            for rule in self.flow.rules:
                if rule.trigger.kind == kind and name in rule.trigger.names and holds(
                    self.flow, rule.condition, self.state
                ):
                    self.run_rule(rule)
        raise RuntimeError(f"flow {self.flow.version}: rules keep changing the status (more than {_MAX_CASCADE})")


def _recipients(flow: Flow, state: TicketState, names: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for name in names:
        expanded = flow.category_rule(state.category).notify if name == "category" else (name,)
        for item in expanded:
            to = f"unit:{item}" if item in flow.units else item
            if to not in out:
                out.append(to)
    return out


def _finish(flow: Flow, before: TicketState | None, run: _Run, fired: str | None = None) -> StepResult:
    """Drop fired ids whose anchor moved, then say which timers to schedule or forget."""
    state = run.state
    if before is not None:
        kept = tuple(
            t for t in state.fired
            if not (":state:" in t and state.status_since != before.status_since)
            and not (":deadline:" in t and state.deadline != before.deadline)
        )
        state = dataclasses.replace(state, fired=kept)
    old = {t.id for t in pending_timers(flow, before)} - {fired} if before is not None else set()
    new = pending_timers(flow, state)
    actions = run.actions
    if old - {t.id for t in new}:
        actions.append(Action("cancel_timers", "timers"))
        schedule = new
    else:
        schedule = tuple(t for t in new if t.id not in old)
    actions.extend(Action("schedule", t.rule, (("timer", t.id), ("due", t.due.isoformat()))) for t in schedule)
    return StepResult(state, tuple(actions))


def new_ticket(
    flow: Flow,
    *,
    category: str,
    now: datetime,
    grid_code: str | None = None,
    colour: str | None = None,
) -> StepResult:
    """A new ticket: the category's colour (or `colour`), its deadline, then routing.

    With a grid and `routing.auto_dispatch` it is dispatched at once (event dispatch by
    system) to the category's level and unit; without a grid it waits in the dispatcher's
    queue (`routing.no_grid`).
    """
    now = _local(flow, now)
    rule = flow.category_rule(category)
    colour = colour or rule.colour
    if colour not in flow.colours:
        raise ValueError(f"unknown colour {colour!r}")
    level, unit = (rule.level, rule.unit) if grid_code else (flow.routing.no_grid_level, flow.routing.no_grid_unit)
    span = flow.colours[colour].deadline
    state = TicketState(
        status=flow.initial,
        category=category,
        colour=colour,
        level=level,
        unit=unit,
        ladder=flow.default_ladder,
        created_at=now,
        status_since=now,
        deadline_from=now,
        deadline=now,
        deadline_span=str(span),
        flow_version=flow.version,
        grid_code=grid_code,
    )
    run = _Run(flow, state, now)
    run.set_deadline(now, span, "intake")
    run.queue.append(("enter", flow.initial))
    run.drain()
    if grid_code and flow.routing.auto_dispatch:
        dispatch = Event("dispatch", "system", now)
        try:
            transition = _choose(flow, run.state, dispatch, _candidates(flow, run.state, dispatch))
        except TransitionRefused:
            transition = None  # the flow's conditions keep this one in the queue
        if transition is not None:
            if transition.target is not None:
                run.enter(transition.target)
            run.queue.append(("event", "dispatch"))
            run.drain()
    return _finish(flow, None, run)


def migrate(flow: Flow, state: TicketState, now: datetime) -> StepResult:
    """Move an open ticket onto `flow` (usually a newer version), when an admin asks for it.

    The deadline is recomputed from when its clock started with the colour's span in `flow`;
    every timer is forgotten and the new flow's timers are scheduled. Raises TransitionRefused
    for a closed ticket or one whose colour or level the new flow no longer has.
    """
    now = _local(flow, now)
    if state.status not in flow.statuses or flow.is_final(state.status):
        raise _refuse(state, Event("migrate", "dispatcher", now), "工单已结束或状态在新流程中不存在，无需迁移")
    if state.colour not in flow.colours or state.level not in flow.levels:
        raise _refuse(state, Event("migrate", "dispatcher", now), "新流程中没有该工单的颜色或层级")
    run = _Run(flow, dataclasses.replace(state, flow_version=flow.version), now)
    run.set_deadline(state.deadline_from, flow.colours[state.colour].deadline, "migrate")
    moved = run.state
    if moved.deadline != state.deadline:
        moved = dataclasses.replace(moved, fired=tuple(t for t in moved.fired if ":deadline:" not in t))
    timers = pending_timers(flow, moved)
    actions = [
        *run.actions,
        Action("cancel_timers", "migrate"),
        *(Action("schedule", t.rule, (("timer", t.id), ("due", t.due.isoformat()))) for t in timers),
    ]
    return StepResult(moved, tuple(actions))


def step(flow: Flow, state: TicketState, event: Event, now: datetime) -> StepResult:
    """Apply one event; raises TransitionRefused when the flow does not allow it."""
    now = _local(flow, now)
    if event.actor not in ACTORS:
        raise TransitionRefused(f"未知的操作人类型 {event.actor!r}", state.status, event.kind, event.actor)
    if event.kind == "timer":
        return _fire(flow, state, event, now)
    if event.kind not in EVENT_NAMES:
        raise TransitionRefused(f"未知的操作 {event.kind!r}", state.status, event.kind, event.actor)
    run = _Run(flow, state, now)
    candidates = _candidates(flow, state, event)
    _apply_data(run, event)  # may refuse; only the run's copy changes
    transition = _choose(flow, run.state, event, candidates)
    _apply_move(run, event)
    if transition.target is not None:
        if flow.is_final(transition.target):
            ended = {"rate": "rated", "close": "verified"}.get(event.kind, event.kind)
            run.update(closed_reason=event.get("reason") or ended)
        run.enter(transition.target)
    run.queue.append(("event", event.kind))
    run.drain()
    return _finish(flow, state, run)


def _fire(flow: Flow, state: TicketState, event: Event, now: datetime) -> StepResult:
    timer_id = event.get("timer") or ""
    found = next(((t, r) for t, r in _pending(flow, state) if t.id == timer_id), None)
    if found is None:  # stale: the status was left, the deadline moved, or it already fired
        return StepResult(state, ())
    timer, rule = found
    if timer.due > now:  # delivered early: keep it
        return StepResult(state, (Action("schedule", rule.id, (("timer", timer.id), ("due", timer.due.isoformat()))),))
    run = _Run(flow, dataclasses.replace(state, fired=(*state.fired, timer.id)), now)
    run.run_rule(rule)
    run.drain()
    return _finish(flow, state, run, fired=timer.id)


def _local(flow: Flow, now: datetime) -> datetime:
    """`now` in the flow's time zone, so stored times and timer ids read the same everywhere."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now needs a time zone")
    return now.astimezone(flow.calendar.tz)


def _refuse(state: TicketState, event: Event, reason: str) -> TransitionRefused:
    return TransitionRefused(reason, state.status, event.kind, event.actor)


def _candidates(flow: Flow, state: TicketState, event: Event) -> list[Transition]:
    """Transitions for this event from this status by this actor; else TransitionRefused."""
    status_name = flow.status_name(state.status)
    what = EVENT_NAMES[event.kind]
    candidates = [t for t in flow.transitions if t.event == event.kind and state.status in t.sources]
    if not candidates:
        raise _refuse(state, event, f"工单{status_name}，不能{what}")
    candidates = [t for t in candidates if event.actor in t.actors]
    if not candidates:
        raise _refuse(state, event, f"{ACTORS[event.actor]}不能对{status_name}的工单{what}")
    return candidates


def _choose(flow: Flow, state: TicketState, event: Event, candidates: list[Transition]) -> Transition:
    """The first candidate whose `if` holds (on the state with the event's data applied)."""
    for t in candidates:
        if holds(flow, t.condition, state):
            return t
    raise _refuse(state, event, f"工单{flow.status_name(state.status)}，当前条件下不能{EVENT_NAMES[event.kind]}")


def _apply_data(run: _Run, event: Event) -> None:
    """What the event's data says about the ticket, checked before the transition is chosen."""
    flow, state = run.flow, run.state
    kind = event.kind
    if kind == "rate":
        score = event.get("score")
        if score is None or not score.strip().isdigit() or not 1 <= int(score) <= flow.rating_scale:
            raise _refuse(state, event, f"评价请给 1 到 {flow.rating_scale} 分")
        run.update(rating=int(score))
    elif kind == "set_colour":
        colour = event.get("colour") or ""
        if colour not in flow.colours:
            raise _refuse(state, event, f"没有这种颜色：{colour}")
    elif kind == "dispatch":
        level, unit = event.get("level"), event.get("unit")
        if level is not None and level not in flow.levels:
            raise _refuse(state, event, f"没有这一层级：{level}")
        if unit is not None and (unit not in flow.units or (level and flow.units[unit].level != level)):
            raise _refuse(state, event, f"没有这个单位：{unit}")
    elif kind == "assign" and not (event.get("worker") or event.by):
        raise _refuse(state, event, "指派需要指明网格员")
    elif kind == "escalate":
        ladder = event.get("ladder") or state.ladder
        if ladder not in flow.ladders:
            raise _refuse(state, event, f"没有这种上报方式：{ladder}")
        target = event.get("level") or "up"
        if target != "up" and target not in flow.levels:
            raise _refuse(state, event, f"没有这一层级：{target}")
        if run.escalation(target, ladder) is None:
            raise _refuse(state, event, f"工单已在{flow.level_name(state.level)}级，不能再向上上报")
    elif kind == "reopen":
        target = event.get("level") or "same"
        if target not in ("up", "same") and target not in flow.levels:
            raise _refuse(state, event, f"没有这一层级：{target}")


def _apply_move(run: _Run, event: Event) -> None:
    """The event's own effect once the transition is allowed."""
    flow, state = run.flow, run.state
    cause = f"event:{event.kind}"
    kind = event.kind
    if kind == "dispatch":
        grid = event.get("grid") or state.grid_code
        # another grid: its own workers take it from the start, not the old grid's assignee
        run.update(grid_code=grid, **({"assignee": None} if grid != state.grid_code else {}))
        level, unit = event.get("level"), event.get("unit")
        if level is None and unit is None:
            rule = flow.category_rule(state.category)
            level, unit = (rule.level, rule.unit) if grid else (state.level, state.unit)
        elif level is None and unit is not None:
            level = flow.units[unit].level
        assert level is not None
        run.place(level, unit)
        if event.get("worker"):
            run.update(assignee=event.get("worker"))
    elif kind == "assign":
        run.update(assignee=event.get("worker") or event.by)
    elif kind == "accept" and event.by:
        run.update(assignee=event.by)
    elif kind == "set_colour":
        run.set_colour(event.get("colour") or state.colour, cause)
    elif kind == "escalate":
        ladder = event.get("ladder") or state.ladder
        move = run.escalation(event.get("level") or "up", ladder)
        assert move is not None  # _apply_data refused otherwise
        run.escalate(move, ladder, cause)
    elif kind == "reopen":
        run.reopen(event.get("level") or "same", cause)
