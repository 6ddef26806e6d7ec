"""The figures leaders read, computed from the tickets themselves — never typed in.

Approach: the console reads every ticket listed in the ticket index (`keys.all_tickets()`,
a sorted set by creation time) with MGET in batches and computes everything in memory on
each request. At a district's scale (tens of thousands of tickets a year) that is a few
megabytes and well under a second; a bigger deployment would keep running counters instead.

Definitions (also shown on the dashboard):
- counted tickets: all except 撤回 / 重复件 / 无效 (withdrawn, duplicate, invalid);
- 办结 (finished): status 已办结 (resolved) or 已结案 (closed);
- 办结率 = finished / counted;
- 按时办结率 = finished without any card and no later than the deadline / finished;
- 满意率 = ratings of at least 60 % of the scale (3–5 of 5: 满意 and 基本满意) / ratings;
- 超期: open (not final, not resolved) and past the deadline, or carrying a yellow or red card.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.tickets import Ticket
from flows import Flow

NOT_COUNTED = frozenset({"withdrawn", "duplicate", "invalid"})
FINISHED = frozenset({"resolved", "closed"})
FINISH_EVENTS = frozenset({"resolve", "close"})
SATISFIED_SHARE = 0.6


@dataclass(frozen=True, slots=True)
class Rates:
    counted: int = 0
    finished: int = 0
    on_time: int = 0
    rated: int = 0
    satisfied: int = 0
    yellow_cards: int = 0
    red_cards: int = 0

    @property
    def closure_rate(self) -> float | None:
        return self.finished / self.counted if self.counted else None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.finished if self.finished else None

    @property
    def satisfaction_rate(self) -> float | None:
        return self.satisfied / self.rated if self.rated else None

    def __add__(self, other: Rates) -> Rates:
        return Rates(
            self.counted + other.counted,
            self.finished + other.finished,
            self.on_time + other.on_time,
            self.rated + other.rated,
            self.satisfied + other.satisfied,
            self.yellow_cards + other.yellow_cards,
            self.red_cards + other.red_cards,
        )


@dataclass(frozen=True, slots=True)
class Count:
    key: str
    label: str
    n: int


@dataclass(frozen=True, slots=True)
class TrendPoint:
    label: str  # the week's Monday, e.g. "11-16"
    rates: Rates


@dataclass(frozen=True, slots=True)
class AssessmentRow:
    level: str  # "网格" | "社区" | "街道"
    code: str
    name: str
    rates: Rates


@dataclass(frozen=True, slots=True)
class Unit:
    """One unit of the assessment: a grid, a community or a street."""

    level: str
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class Dashboard:
    total: Rates
    open_count: int
    open_by_colour: tuple[Count, ...]
    open_by_status: tuple[Count, ...]
    open_by_level: tuple[Count, ...]
    overdue: tuple[Ticket, ...]
    trend: tuple[TrendPoint, ...]
    assessment: tuple[AssessmentRow, ...]


def _cards(ticket: Ticket) -> tuple[int, int]:
    """(yellow, red) cards the ticket ever received, from its timeline."""
    yellow = red = 0
    for entry in ticket.timeline:
        if entry.kind == "card":
            if "card=red" in entry.text:
                red += 1
            else:
                yellow += 1
    if not (yellow or red) and ticket.flow.card:
        return (0, 1) if ticket.flow.card == "red" else (1, 0)
    return yellow, red


def finished_at(ticket: Ticket) -> datetime | None:
    """When handling finished: the first resolve/close in the timeline, else the status change."""
    if ticket.flow.status not in FINISHED:
        return None
    for entry in ticket.timeline:
        if entry.kind in FINISH_EVENTS:
            return datetime.fromisoformat(entry.at)
    return ticket.flow.status_since


def is_open(ticket: Ticket) -> bool:
    return ticket.flow.status not in NOT_COUNTED and ticket.flow.status not in FINISHED


def is_overdue(ticket: Ticket, now: datetime) -> bool:
    state = ticket.flow
    if not is_open(ticket):
        return False
    return state.card is not None or (state.deadline is not None and state.deadline < now)


def rates_of(ticket: Ticket, rating_scale: int) -> Rates:
    state = ticket.flow
    if state.status in NOT_COUNTED:
        return Rates()
    yellow, red = _cards(ticket)
    done = finished_at(ticket)
    on_time = done is not None and not (yellow or red) and (state.deadline is None or done <= state.deadline)
    rated = state.rating is not None
    satisfied = rated and int(state.rating or 0) >= math.ceil(rating_scale * SATISFIED_SHARE)
    return Rates(1, int(done is not None), int(on_time), int(rated), int(satisfied), yellow, red)


def _counts(values: Iterable[str], label: Callable[[str], str], order: Sequence[str] = ()) -> tuple[Count, ...]:
    counter = Counter(values)
    keys = [k for k in order if k in counter] + sorted(k for k in counter if k not in order)
    return tuple(Count(k, label(k), counter[k]) for k in keys)


def _safe(name: Callable[[str], str]) -> Callable[[str], str]:
    """A display name from the current flow; an id it no longer knows is shown as is."""

    def lookup(key: str) -> str:
        try:
            return name(key)
        except (KeyError, StopIteration):
            return key

    return lookup


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def compute(
    tickets: Sequence[Ticket],
    flow: Flow,
    now: datetime,
    tz: ZoneInfo,
    units_of: Callable[[Ticket], Sequence[Unit]],
    weeks: int = 8,
) -> Dashboard:
    """Everything on the dashboard. `units_of` maps a ticket to its grid, community and street."""
    scale = flow.rating_scale
    per_ticket = [(t, rates_of(t, scale)) for t in tickets]
    total = sum((r for _, r in per_ticket), Rates())
    open_tickets = [t for t in tickets if is_open(t)]

    this_week = week_start(now.astimezone(tz).date())
    starts = [this_week - timedelta(weeks=i) for i in range(weeks - 1, -1, -1)]
    by_week: dict[date, Rates] = {s: Rates() for s in starts}
    for t, r in per_ticket:
        start = week_start(datetime.fromisoformat(t.created_at).astimezone(tz).date())
        if start in by_week:
            by_week[start] = by_week[start] + r

    units: dict[tuple[str, str], Unit] = {}
    by_unit: dict[tuple[str, str], Rates] = {}
    for t, r in per_ticket:
        for unit in units_of(t):
            key = (unit.level, unit.code)
            units[key] = unit
            by_unit[key] = by_unit.get(key, Rates()) + r
    level_order = {"街道": 0, "社区": 1, "网格": 2}
    assessment = tuple(
        AssessmentRow(units[k].level, units[k].code, units[k].name, by_unit[k])
        for k in sorted(by_unit, key=lambda k: (level_order.get(k[0], 9), k[1]))
    )
    overdue = sorted((t for t in open_tickets if is_overdue(t, now)), key=lambda t: t.flow.deadline or now)
    return Dashboard(
        total=total,
        open_count=len(open_tickets),
        open_by_colour=_counts((t.flow.colour for t in open_tickets), _safe(flow.colour_name), tuple(flow.colours)),
        open_by_status=_counts((t.flow.status for t in open_tickets), _safe(flow.status_name), tuple(flow.statuses)),
        open_by_level=_counts((t.flow.level for t in open_tickets), _safe(flow.level_name), flow.levels),
        overdue=tuple(overdue),
        trend=tuple(TrendPoint(f"{s:%m-%d}", by_week[s]) for s in starts),
        assessment=assessment,
    )
