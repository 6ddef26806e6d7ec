"""A loaded flow: typed, frozen, already checked. Built by `flows.check` from YAML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from flows.calendar import Duration, WorkCalendar

# "worker": whoever works a ticket at its level, a grid's worker or a community's, street's or
# district's staff member (the grid directory says who: bot/worker_tasks.py)
ACTORS: dict[str, str] = {"resident": "居民", "worker": "承办人", "dispatcher": "坐席", "system": "系统"}

# The events the application sends (besides "timer"), with what a resident would call them.
EVENT_NAMES: dict[str, str] = {
    "dispatch": "派单",
    "assign": "指派",
    "accept": "受理",
    "progress": "反馈进展",
    "resolve": "办结",
    "close": "结案",
    "rate": "评价",
    "return": "退回",
    "escalate": "上报",
    "reopen": "重新打开",
    "mark_duplicate": "标记为重复件",
    "invalidate": "标记为无效",
    "withdraw": "撤回",
    "set_colour": "调整颜色",
}

# Statuses the engine and the application rely on; a flow may add its own.
REQUIRED_STATUSES: tuple[str, ...] = (
    "received",
    "dispatched",
    "accepted",
    "in_progress",
    "resolved",
    "closed",
    "returned",
    "escalated",
    "reopened",
    "duplicate",
    "withdrawn",
    "invalid",
)

# Whom a notify action may address besides unit ids (see Flow.recipients).
ROLES: tuple[str, ...] = ("resident", "assignee", "unit", "dispatcher", "grid_group", "category")

CARDS: dict[str, str] = {"yellow": "黄牌", "red": "红牌"}

# Status changes that actions cause.
ACTION_TARGETS: dict[str, str] = {"escalate": "escalated", "reopen": "reopened", "close": "closed"}


@dataclass(frozen=True, slots=True)
class Unit:
    id: str
    name: str
    level: str


@dataclass(frozen=True, slots=True)
class Level:
    id: str
    name: str
    units: tuple[str, ...]  # the first is the level's own office


@dataclass(frozen=True, slots=True)
class Colour:
    id: str
    name: str
    rhythm: str
    deadline: Duration
    progress: Duration


@dataclass(frozen=True, slots=True)
class CategoryRule:
    colour: str
    level: str
    unit: str
    notify: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Status:
    id: str
    name: str
    final: bool
    clock: bool  # the deadline clock runs (deadline timers and cards apply)


@dataclass(frozen=True, slots=True)
class Condition:
    """All given fields must hold; an empty condition always holds."""

    status: tuple[str, ...] = ()
    colour: tuple[str, ...] = ()
    level: tuple[str, ...] = ()
    category: tuple[str, ...] = ()
    card: tuple[str, ...] = ()  # "yellow" | "red" | "none"
    ladder: tuple[str, ...] = ()
    rating_at_most: int | None = None
    rating_at_least: int | None = None
    reopened_at_most: int | None = None
    assigned: bool | None = None
    grid: bool | None = None
    top_of_ladder: bool | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    event: str
    sources: tuple[str, ...]
    target: str | None  # None: the event is accepted and the status stays
    actors: tuple[str, ...]
    condition: Condition


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: str  # "event" | "enter" | "state" | "deadline"
    names: tuple[str, ...] = ()  # event kinds (event) or statuses (enter, state)
    after: Duration | None = None  # state: time in the status; None with kind "state" = colour's progress
    repeat: bool = False  # state: again every `after`
    multiple: Fraction = Fraction(1)  # deadline: k × the deadline span
    offset: Duration | None = None  # deadline: ± this (amount may be negative)

    @property
    def timed(self) -> bool:
        return self.kind in ("state", "deadline")


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action of a rule. `value` is the action's argument: a level, colour, reason, ..."""

    kind: str  # assign | notify | set_colour | set_deadline | card | escalate | reopen | close
    value: str = ""
    unit: str = ""  # assign
    template: str = ""  # notify
    to: tuple[str, ...] = ()  # notify


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    trigger: Trigger
    condition: Condition
    actions: tuple[ActionSpec, ...]


@dataclass(frozen=True, slots=True)
class LadderStep:
    level: str
    label: str
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Ladder:
    id: str
    name: str
    steps: tuple[LadderStep, ...]


@dataclass(frozen=True, slots=True)
class Routing:
    auto_dispatch: bool
    no_grid_level: str
    no_grid_unit: str


def rule_statuses(
    rule: Rule, statuses: Mapping[str, Status], transitions: tuple[Transition, ...], automatic: bool = False
) -> set[str]:
    """Statuses a rule may run in; with `automatic`, only runs that nobody's event starts."""
    trigger = rule.trigger
    if trigger.kind in ("enter", "state"):
        found = set(trigger.names)
    elif trigger.kind == "deadline":
        found = {s.id for s in statuses.values() if s.clock}
    elif automatic:
        found = set()
    else:  # after an event: where its transitions lead (or stay)
        found = {t.target or s for t in transitions if t.event in trigger.names for s in t.sources}
    if rule.condition.status:
        found &= set(rule.condition.status)
    return found


@dataclass(frozen=True)
class Flow:
    """A checked flow. Build it with `load_flow` / `load_flow_text`, never by hand."""

    source: str
    version: str  # sha256[:12] of the YAML text
    name: str
    rating_scale: int
    calendar: WorkCalendar
    level_defs: tuple[Level, ...]
    units: Mapping[str, Unit]
    colours: Mapping[str, Colour]
    category_defaults: CategoryRule
    categories: Mapping[str, CategoryRule]
    statuses: Mapping[str, Status]
    initial: str
    transitions: tuple[Transition, ...]
    rules: tuple[Rule, ...]
    ladders: Mapping[str, Ladder]
    default_ladder: str
    routing: Routing

    @property
    def levels(self) -> tuple[str, ...]:
        """Level ids from the lowest to the highest."""
        return tuple(level.id for level in self.level_defs)

    def level(self, level_id: str) -> Level:
        return next(level for level in self.level_defs if level.id == level_id)

    def level_rank(self, level_id: str) -> int:
        return self.levels.index(level_id)

    def level_name(self, level_id: str) -> str:
        return self.level(level_id).name

    def office(self, level_id: str) -> str:
        """The level's own unit (its first)."""
        return self.level(level_id).units[0]

    def unit_name(self, unit_id: str) -> str:
        return self.units[unit_id].name

    def colour_name(self, colour_id: str) -> str:
        return self.colours[colour_id].name

    def colour_rhythm(self, colour_id: str) -> str:
        return self.colours[colour_id].rhythm

    def status_name(self, status: str) -> str:
        return self.statuses[status].name

    def is_final(self, status: str) -> bool:
        return self.statuses[status].final

    def category_rule(self, category: str) -> CategoryRule:
        """The category's rule; a category the flow does not list gets `category_defaults`."""
        return self.categories.get(category, self.category_defaults)

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def next_step(self, ladder_id: str, level_id: str) -> LadderStep | None:
        """The first step of the ladder above `level_id`, or None at the top."""
        rank = self.level_rank(level_id)
        return next((s for s in self.ladders[ladder_id].steps if self.level_rank(s.level) > rank), None)
