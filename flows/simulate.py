"""Run one ticket through a flow without Redis: events at given times, timers fired in between.

    simulate(flow, "noise", start, "accepted@+1h,resolved@+3d,rated:1@+4d")

Each event is `name[:value][/actor]@when`:
  name   an event kind (accept, resolve, rate, escalate, ...) or its past tense (accepted,
         resolved, rated, escalated, ...)
  value  rate: the score; escalate: a ladder id or a level; reopen: up | same | a level;
         dispatch / assign: a worker id; set_colour: a colour; anything else: a note
  actor  resident | worker | dispatcher | system (default: the first the flow allows)
  when   +1h, +3d, +90m, +1d2h (after the start) or an ISO time
Between events, and for `horizon` after the last one, due timers fire in time order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flows.engine import Action, Event, StepResult, TicketState, TransitionRefused, new_ticket, step
from flows.model import EVENT_NAMES, Flow

PAST_TENSE: dict[str, str] = {
    "dispatched": "dispatch",
    "assigned": "assign",
    "accepted": "accept",
    "progressed": "progress",
    "resolved": "resolve",
    "closed": "close",
    "rated": "rate",
    "returned": "return",
    "escalated": "escalate",
    "reopened": "reopen",
    "duplicate": "mark_duplicate",
    "invalid": "invalidate",
    "withdrawn": "withdraw",
    "recoloured": "set_colour",
}
_TOKEN = re.compile(r"^\s*([a-z_]+)(?::([^/@]+))?(?:/([a-z]+))?\s*@\s*(\S+)\s*$")
_OFFSET = re.compile(r"^\+(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
SIM_WORKER = "sim-worker"


@dataclass(frozen=True, slots=True)
class SimEvent:
    at: datetime
    kind: str
    value: str | None
    actor: str | None
    text: str  # as written


@dataclass(frozen=True, slots=True)
class SimStep:
    at: datetime
    event: str  # "new", an event kind, or "timer:<rule id>"
    state: TicketState
    actions: tuple[Action, ...]
    refused: str | None = None  # the reason, when the flow refused the event

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "at": self.at.isoformat(),
            "event": self.event,
            "state": self.state.status,
            "level": self.state.level,
            "colour": self.state.colour,
            "card": self.state.card,
            "deadline": self.state.deadline.isoformat(),
            "actions": [{"kind": a.kind, "rule": a.rule, "params": dict(a.params)} for a in self.actions],
        }
        if self.refused is not None:
            out["refused"] = self.refused
        return out


def parse_events(text: str, start: datetime) -> tuple[SimEvent, ...]:
    """The `--events` string; raises ValueError naming the bad item."""
    events = []
    for item in (part for part in text.split(",") if part.strip()):
        m = _TOKEN.match(item)
        if m is None:
            raise ValueError(f"cannot read event {item.strip()!r} (write e.g. accepted@+1h or rated:1@+4d)")
        name, value, actor, when = m.groups()
        kind = PAST_TENSE.get(name, name)
        if kind not in EVENT_NAMES:
            raise ValueError(f"unknown event {name!r} in {item.strip()!r} (known: {', '.join(sorted(EVENT_NAMES))})")
        events.append(SimEvent(_when(when, start, item), kind, value, actor, item.strip()))
    return tuple(sorted(events, key=lambda e: e.at))


def _when(text: str, start: datetime, item: str) -> datetime:
    m = _OFFSET.match(text)
    if m is not None and any(m.groups()):
        days, hours, minutes = (int(g or 0) for g in m.groups())
        return start + timedelta(days=days, hours=hours, minutes=minutes)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"cannot read the time {text!r} in {item.strip()!r} (write +1h, +3d, +1d2h or ISO)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=start.tzinfo)


def _event(flow: Flow, state: TicketState, sim: SimEvent) -> Event:
    actor = sim.actor or next(
        (a for t in flow.transitions if t.event == sim.kind and state.status in t.sources for a in t.actors),
        "dispatcher",
    )
    key = {
        "rate": "score",
        "reopen": "level",
        "dispatch": "worker",
        "assign": "worker",
        "set_colour": "colour",
    }.get(sim.kind, "note")
    if sim.kind == "escalate" and sim.value:
        key = "ladder" if sim.value in flow.ladders else "level"
    data = ((key, sim.value),) if sim.value else ()
    return Event(sim.kind, actor, sim.at, data, by=SIM_WORKER if actor == "worker" else None)


def simulate(
    flow: Flow,
    category: str,
    start: datetime,
    events: str = "",
    *,
    grid_code: str | None = "SIM-GRID",
    colour: str | None = None,
    horizon: timedelta = timedelta(days=30),
) -> list[SimStep]:
    """The ticket's timeline under the flow, from its opening until `horizon` after the last event."""
    steps: list[SimStep] = []
    pending: dict[str, datetime] = {}

    def record(at: datetime, label: str, result: StepResult) -> TicketState:
        for action in result.actions:
            if action.kind == "cancel_timers":
                pending.clear()
            elif action.kind == "schedule":
                pending[action.param("timer") or ""] = datetime.fromisoformat(action.param("due") or "")
        steps.append(SimStep(at, label, result.state, result.actions))
        return result.state

    def fire_until(state: TicketState, until: datetime) -> TicketState:
        while pending:
            timer_id, due = min(pending.items(), key=lambda item: (item[1], item[0]))
            if due > until:
                break
            del pending[timer_id]
            result = step(flow, state, Event("timer", "system", due, (("timer", timer_id),)), due)
            if result.actions or result.state != state:
                state = record(due, f"timer:{timer_id.split(':', 1)[0]}", result)
        return state

    state = record(start, "new", new_ticket(flow, category=category, now=start, grid_code=grid_code, colour=colour))
    last = start
    for sim in parse_events(events, start):
        state = fire_until(state, sim.at)
        last = max(last, sim.at)
        try:
            state = record(sim.at, sim.kind, step(flow, state, _event(flow, state, sim), sim.at))
        except TransitionRefused as refused:
            steps.append(SimStep(sim.at, sim.kind, state, (), refused=refused.reason))
    fire_until(state, last + horizon)
    return steps
