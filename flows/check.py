"""Loading and checking flow files: schema first, then meaning, every message with file:line:column.

`check_flow_text` returns every problem it finds (errors and warnings); `load_flow_text`
returns the `Flow` or raises `FlowError` carrying the errors, so the service can refuse a bad
file and keep running the previous one.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import re
from collections import deque
from collections.abc import Collection, Iterable
from datetime import date, timedelta
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from flows.calendar import Duration, WorkCalendar, YearSchedule, parse_hours
from flows.model import (
    ACTION_TARGETS,
    CARDS,
    EVENT_NAMES,
    REQUIRED_STATUSES,
    ROLES,
    ActionSpec,
    CategoryRule,
    Colour,
    Condition,
    Flow,
    Ladder,
    LadderStep,
    Level,
    Routing,
    Rule,
    Status,
    Transition,
    Trigger,
    Unit,
    rule_statuses,
)
from flows.source import Data, Document, PathItem, Problem, YamlSyntaxError, parse_yaml

SCHEMA_FILE = Path(__file__).parent / "schema" / "flow.schema.json"
_ID_PATTERN = "^[a-z][a-z0-9_]*$"
_DEADLINE_EXPR = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*[×xX*]\s*)?deadline\s*(?:([+-])\s*(.+?))?\s*$")
# A deadline may land in next year: years needed = today's and the one ~half a year ahead.
_CALENDAR_HORIZON = timedelta(days=180)
_MAX_LISTED = 12


class FlowError(ValueError):
    """A flow file was refused; `problems` lists every error (file:line:column)."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_flow(
    path: str | Path,
    *,
    known_categories: Collection[str],
    known_templates: Collection[str],
    today: date | None = None,
) -> Flow:
    """Read, check and build a flow; raises FlowError on any error (warnings are allowed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError([Problem(str(path), 1, 1, f"cannot read the flow file: {exc}")]) from exc
    return load_flow_text(
        text, source=str(path), known_categories=known_categories, known_templates=known_templates, today=today
    )


def load_flow_text(
    text: str,
    *,
    source: str = "<text>",
    known_categories: Collection[str],
    known_templates: Collection[str],
    today: date | None = None,
) -> Flow:
    flow, problems = _build(text, source, known_categories, known_templates, today)
    errors = [p for p in problems if p.severity == "error"]
    if errors or flow is None:
        raise FlowError(errors)
    return flow


def check_flow_file(
    path: str | Path,
    known_categories: Collection[str],
    known_templates: Collection[str],
    today: date | None = None,
) -> list[Problem]:
    """Every problem in the file, errors and warnings, sorted by position.

    `today` enables the calendar check: a year a deadline may fall in (today's year and the
    one ~180 days ahead) without holiday data is an error under `fallback: error`, else a
    warning.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(str(path), 1, 1, f"cannot read the flow file: {exc}")]
    return check_flow_text(text, source=str(path), known_categories=known_categories,
                           known_templates=known_templates, today=today)


def check_flow_text(
    text: str,
    *,
    source: str = "<text>",
    known_categories: Collection[str],
    known_templates: Collection[str],
    today: date | None = None,
) -> list[Problem]:
    return _build(text, source, known_categories, known_templates, today)[1]


def flow_version(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def parse_deadline_expr(text: str) -> tuple[Fraction, Duration | None]:
    """'deadline', 'deadline + 2 working hours', 'deadline - 1 working day', '2 × deadline'."""
    m = _DEADLINE_EXPR.match(text)
    if m is None:
        raise ValueError(
            f"not a time against the deadline: {text!r} "
            "(write e.g. 'deadline', 'deadline + 2 working hours', '2 × deadline')"
        )
    multiple = Fraction(m.group(1)) if m.group(1) else Fraction(1)
    if multiple <= 0:
        raise ValueError(f"{text!r}: the multiple of the deadline must be positive")
    offset = None
    if m.group(3) is not None and m.group(3).strip() != "0":
        offset = Duration.parse(m.group(3))
        if m.group(2) == "-":
            offset = offset.scaled(-1)
    return multiple, offset


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _dotted(path: Iterable[PathItem]) -> str:
    out = ""
    for item in path:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else str(item))
    return out or "(top level)"


def _schema_problems(doc: Document, error: ValidationError) -> list[Problem]:
    if error.validator in ("oneOf", "anyOf") and error.context:
        return _schema_problems(doc, best_match(error.context))
    path = tuple(error.absolute_path)
    where = _dotted(path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        return [
            doc.problem((*path, k), f"{where}: unknown key {k!r}{hint}", key=True)
            for k in error.instance
            if k not in schema.get("properties", {})
        ]
    if error.validator == "pattern":
        pattern = str(error.validator_value)
        if pattern == _ID_PATTERN:
            message = f"{error.instance!r} is not a valid id (lowercase letters, digits and _, starting with a letter)"
        elif "working" in pattern:
            message = f"{error.instance!r} is not a duration (write e.g. '1 working day', '2 working hours', '7 days')"
        elif "\\d{4}-" in pattern:
            message = f"{error.instance!r} is not a date (write YYYY-MM-DD)"
        elif pattern.startswith("^\\d{4}$"):
            message = f"{error.instance!r} is not a year"
        else:
            message = error.message
        return [doc.problem(path, f"{where}: {message}", key=error.validator == "propertyNames")]
    if error.validator == "maxProperties" and path and "actions" in path:
        return [doc.problem(path, f"{where}: an action has exactly one key; put each action in its own list item")]
    if error.validator == "minProperties" and path and path[-1] == "when":
        return [doc.problem(path, f"{where}: say when the rule runs: event, enter, state + after, or at")]
    if error.validator == "propertyNames" and error.context:
        return _schema_problems(doc, best_match(error.context))
    return [doc.problem(path, f"{where}: {error.message}")]


def _build(
    text: str, source: str, known_categories: Collection[str], known_templates: Collection[str], today: date | None
) -> tuple[Flow | None, list[Problem]]:
    try:
        doc = parse_yaml(text, source)
    except YamlSyntaxError as exc:
        return None, list(exc.problems)
    schema_problems = [p for e in _validator().iter_errors(doc.data) for p in _schema_problems(doc, e)]
    if schema_problems:
        return None, sorted(set(schema_problems), key=lambda p: (p.line, p.column, p.message))
    builder = _Builder(doc, flow_version(text), set(known_categories), set(known_templates), today)
    flow = builder.build()
    problems = sorted(builder.problems, key=lambda p: (p.line, p.column, p.message))
    return (flow if not any(p.severity == "error" for p in problems) else None), problems


# ----------------------------------------------------------------------------------------
# Meaning: names that must exist, numbers that must make sense, the shape of the graph.
# The schema has passed, so the types below hold; `cast` only tells mypy.


def _m(value: Data) -> dict[str, Data]:
    return cast(dict[str, Data], value)


def _names(value: Data) -> tuple[str, ...]:
    """A name or a list of names (schema $defs/names)."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(cast(list[str], value))


def _unknown(what: str, name: str, known: Collection[str], listed_as: str = "known") -> str:
    """"unknown status 'acepted' — did you mean 'accepted'? (known: ...)"."""
    def tail(text: str) -> str:  # compare template names without their shared "notify/"
        return text.rsplit("/", 1)[-1]

    scored = [(difflib.SequenceMatcher(None, tail(name), tail(k)).ratio(), k) for k in known]
    score, best = max(scored, default=(0.0, ""))
    hint = f" — did you mean {best!r}?" if score >= 0.6 else ""
    return f"unknown {what} {name!r}{hint} ({listed_as}: {_listing(known) or 'none'})"


def _listing(names: Iterable[str]) -> str:
    names = sorted(names)
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", … ({len(names)} in all)" if len(names) > _MAX_LISTED else "")


class _Builder:
    def __init__(
        self, doc: Document, version: str, categories: set[str], templates: set[str], today: date | None
    ) -> None:
        self.doc = doc
        self.data = _m(doc.data)
        self.version = version
        self.known_categories = categories
        self.known_templates = templates
        self.today = today
        self.problems: list[Problem] = []
        self.levels: tuple[Level, ...] = ()
        self.units: dict[str, Unit] = {}
        self.colours: dict[str, Colour] = {}
        self.statuses: dict[str, Status] = {}
        self.ladders: dict[str, Ladder] = {}
        self.rating_scale = cast(int, self.data.get("rating_scale", 5))

    def error(self, path: tuple[PathItem, ...], message: str, key: bool = False) -> None:
        self.problems.append(self.doc.problem(path, message, key=key))

    def warn(self, path: tuple[PathItem, ...], message: str, key: bool = False) -> None:
        self.problems.append(self.doc.problem(path, message, key=key, severity="warning"))

    # -- sections -------------------------------------------------------------------------

    def build(self) -> Flow | None:
        calendar = self._calendar()
        self.levels = self._levels()
        self.colours = self._colours()
        self.statuses = self._statuses()
        initial = self._initial()
        defaults = self._category(("category_defaults",), _m(self.data["category_defaults"]), None)
        categories = self._categories(defaults)
        transitions = self._transitions()
        self.ladders = self._ladders()
        default_ladder = self._ref(("default_ladder",), cast(str, self.data["default_ladder"]), self.ladders, "ladder")
        routing = self._routing(transitions, initial)
        rules = self._rules(transitions)
        if any(p.severity == "error" for p in self.problems) or calendar is None:
            return None
        self._graph(initial, transitions, rules)
        if any(p.severity == "error" for p in self.problems):
            return None
        return Flow(
            source=self.doc.file,
            version=self.version,
            name=cast(str, self.data["name"]),
            rating_scale=self.rating_scale,
            calendar=calendar,
            level_defs=self.levels,
            units=self.units,
            colours=self.colours,
            category_defaults=defaults,
            categories=categories,
            statuses=self.statuses,
            initial=initial,
            transitions=transitions,
            rules=rules,
            ladders=self.ladders,
            default_ladder=default_ladder,
            routing=routing,
        )

    def _calendar(self) -> WorkCalendar | None:
        base = ("calendar",)
        raw = _m(self.data["calendar"])
        ok = True
        tz_name = cast(str, raw["timezone"])
        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            self.error((*base, "timezone"), f"unknown time zone {tz_name!r} (write e.g. Asia/Shanghai)")
            ok = False
        periods = []
        for i, text in enumerate(cast(list[str], raw["working_hours"])):
            try:
                periods.append(parse_hours(text))
            except ValueError as exc:
                self.error((*base, "working_hours", i), str(exc))
                ok = False
        ordered = sorted(periods)
        for (_, end), (start, _) in itertools.pairwise(ordered):
            if start < end:
                self.error((*base, "working_hours"), "working-hours periods overlap")
                ok = False
        years = []
        for year_text, entry in _m(raw.get("years") or {}).items():
            year = int(year_text)
            days: dict[str, frozenset[date]] = {}
            for kind in ("holidays", "workdays"):
                parsed = set()
                for i, day_text in enumerate(cast(list[str], _m(entry).get(kind, []))):
                    where = (*base, "years", year_text, kind, i)
                    try:
                        day = date.fromisoformat(day_text)
                    except ValueError:
                        self.error(where, f"{day_text!r} is not a date")
                        ok = False
                        continue
                    if day.year != year:
                        self.error(where, f"{day_text} is not in {year}")
                        ok = False
                    parsed.add(day)
                days[kind] = frozenset(parsed)
            both = days["holidays"] & days["workdays"]
            if both:
                self.error((*base, "years", year_text), f"both a holiday and a workday: {_listing(map(str, both))}")
                ok = False
            years.append(YearSchedule(year, days["holidays"], days["workdays"]))
        fallback = cast(str, raw["fallback"])
        if not ok:
            return None
        calendar = WorkCalendar(tz, ordered, fallback, years)
        if self.today is not None:
            needed = sorted({self.today.year, (self.today + _CALENDAR_HORIZON).year})
            for year in needed:
                if calendar.covers(year):
                    continue
                known = f"chinese_calendar knows {calendar.library.start}–{calendar.library.stop - 1}"
                if fallback == "error":
                    self.error(
                        (*base, "fallback"),
                        f"calendar: no holiday data for {year} ({known}) and fallback is 'error': deadlines in "
                        f"{year} cannot be computed; enter {year} under calendar.years or set fallback: weekends",
                    )
                else:
                    self.warn(
                        (*base, "fallback"),
                        f"calendar: no holiday data for {year} ({known}); Saturdays and Sundays are used as rest "
                        f"days: enter {year}'s holidays and make-up working days (调休) under calendar.years "
                        "once the State Council publishes them",
                    )
        return calendar

    def _levels(self) -> tuple[Level, ...]:
        levels = []
        seen: set[str] = set()
        for i, raw in enumerate(cast(list[Data], self.data["levels"])):
            entry = _m(raw)
            level_id = cast(str, entry["id"])
            if level_id in seen:
                self.error(("levels", i, "id"), f"duplicate level {level_id!r}")
                continue
            seen.add(level_id)
            unit_ids = []
            for unit_id, name in _m(entry["units"]).items():
                where = ("levels", i, "units", unit_id)
                if unit_id in self.units:
                    owner = self.units[unit_id].level
                    self.error(where, f"unit {unit_id!r} is already a unit of level {owner!r}", key=True)
                    continue
                if unit_id in ROLES:
                    self.error(where, f"{unit_id!r} is a recipient role; give the unit another id", True)
                    continue
                self.units[unit_id] = Unit(unit_id, cast(str, name), level_id)
                unit_ids.append(unit_id)
            if unit_ids:
                levels.append(Level(level_id, cast(str, entry["name"]), tuple(unit_ids)))
        return tuple(levels)

    def _colours(self) -> dict[str, Colour]:
        colours = {}
        for colour_id, raw in _m(self.data["colours"]).items():
            entry = _m(raw)
            spans = {}
            for key in ("deadline", "progress"):
                span = Duration.parse(cast(str, entry[key]))
                if span.amount <= 0:
                    self.error(("colours", colour_id, key), f"colours.{colour_id}.{key} must be more than zero")
                spans[key] = span
            colours[colour_id] = Colour(
                colour_id, cast(str, entry["name"]), cast(str, entry.get("rhythm", "")), spans["deadline"],
                spans["progress"],
            )
        return colours

    def _statuses(self) -> dict[str, Status]:
        statuses = {}
        for status_id, raw in _m(self.data["statuses"]).items():
            entry = _m(raw)
            final = cast(bool, entry.get("final", False))
            clock = cast(bool, entry.get("clock", not final))
            statuses[status_id] = Status(status_id, cast(str, entry["name"]), final, clock)
        missing = [s for s in REQUIRED_STATUSES if s not in statuses]
        if missing:
            self.error(("statuses",), f"statuses: missing {', '.join(missing)} (the service relies on them)", key=True)
        return statuses

    def _initial(self) -> str:
        initial = cast(str, self.data["initial"])
        if self._ref(("initial",), initial, self.statuses, "status") and self.statuses[initial].final:
            self.error(("initial",), f"the initial status {initial!r} must not be final")
        return initial

    def _ref(self, path: tuple[PathItem, ...], name: str, known: Collection[str], what: str, key: bool = False) -> str:
        """`name` if it is in `known`, else an error naming the choices."""
        if name not in known:
            self.error(path, _unknown(what, name, known), key=key)
        return name

    def _unit_of(self, path: tuple[PathItem, ...], level: str, unit: str) -> None:
        if level in {lv.id for lv in self.levels} and unit in self.units and self.units[unit].level != level:
            self.error(path, f"unit {unit!r} belongs to level {self.units[unit].level!r}, not {level!r}")

    def _recipients(self, path: tuple[PathItem, ...], names: Iterable[str], allow_category: bool) -> tuple[str, ...]:
        allowed = set(self.units) | set(ROLES)
        if not allow_category:
            allowed.discard("category")
        for i, name in enumerate(names):
            self._ref((*path, i), name, allowed, "recipient")
        return tuple(names)

    def _category(
        self, path: tuple[PathItem, ...], raw: dict[str, Data], defaults: CategoryRule | None
    ) -> CategoryRule:
        colour = cast(str, raw.get("colour", defaults.colour if defaults else ""))
        level = cast(str, raw.get("level", defaults.level if defaults else ""))
        if "level" in raw and "unit" not in raw:
            unit = self.levels_office(level)
        else:
            unit = cast(str, raw.get("unit", defaults.unit if defaults else ""))
        self._ref((*path, "colour"), colour, self.colours, "colour")
        self._ref((*path, "level"), level, {lv.id for lv in self.levels}, "level")
        self._ref((*path, "unit"), unit, self.units, "unit")
        self._unit_of((*path, "unit"), level, unit)
        notify_raw = raw.get("notify")
        notify = (
            self._recipients((*path, "notify"), cast(list[str], notify_raw), allow_category=False)
            if notify_raw is not None
            else (defaults.notify if defaults else ())
        )
        return CategoryRule(colour, level, unit, notify)

    def levels_office(self, level: str) -> str:
        return next((lv.units[0] for lv in self.levels if lv.id == level), "")

    def _categories(self, defaults: CategoryRule) -> dict[str, CategoryRule]:
        rules = {}
        for category, raw in _m(self.data.get("categories") or {}).items():
            path = ("categories", category)
            if category not in self.known_categories:
                self.error(path, _unknown("category", category, self.known_categories, "the NLU has"), key=True)
                continue
            rules[category] = self._category(path, _m(raw), defaults)
        return rules

    def _condition(self, path: tuple[PathItem, ...], raw: Data) -> Condition:
        if raw is None:
            return Condition()
        entry = _m(raw)

        def names(key: str, known: Collection[str], what: str) -> tuple[str, ...]:
            values = _names(entry.get(key))
            for i, value in enumerate(values):
                where = (*path, key, i) if isinstance(entry.get(key), list) else (*path, key)
                self._ref(where, value, known, what)
            return values

        for key in ("rating_at_most", "rating_at_least"):
            if key in entry and not 1 <= cast(int, entry[key]) <= self.rating_scale:
                self.error((*path, key), f"{key} must be between 1 and the rating scale {self.rating_scale}")
        return Condition(
            status=names("status", self.statuses, "status"),
            colour=names("colour", self.colours, "colour"),
            level=names("level", {lv.id for lv in self.levels}, "level"),
            category=names("category", self.known_categories, "category"),
            card=names("card", {*CARDS, "none"}, "card"),
            ladder=names("ladder", cast(dict[str, Data], self.data["ladders"]), "ladder"),
            rating_at_most=cast(int | None, entry.get("rating_at_most")),
            rating_at_least=cast(int | None, entry.get("rating_at_least")),
            reopened_at_most=cast(int | None, entry.get("reopened_at_most")),
            assigned=cast(bool | None, entry.get("assigned")),
            grid=cast(bool | None, entry.get("grid")),
            top_of_ladder=cast(bool | None, entry.get("top_of_ladder")),
        )

    def _transitions(self) -> tuple[Transition, ...]:
        out = []
        for i, raw in enumerate(cast(list[Data], self.data["transitions"])):
            entry = _m(raw)
            path: tuple[PathItem, ...] = ("transitions", i)
            event = self._ref((*path, "event"), cast(str, entry["event"]), EVENT_NAMES, "event")
            sources = _names(entry["from"])
            for j, status in enumerate(sources):
                self._ref((*path, "from", j) if isinstance(entry["from"], list) else (*path, "from"), status,
                          self.statuses, "status")
            target = cast(str | None, entry.get("to"))
            if target is not None:
                self._ref((*path, "to"), target, self.statuses, "status")
            out.append(
                Transition(event, sources, target, tuple(cast(list[str], entry["by"])),
                           self._condition((*path, "if"), entry.get("if")))
            )
        return tuple(out)

    def _ladders(self) -> dict[str, Ladder]:
        ladders = {}
        level_ids = [lv.id for lv in self.levels]
        for ladder_id, raw in _m(self.data["ladders"]).items():
            entry = _m(raw)
            steps: list[LadderStep] = []
            for i, step_raw in enumerate(cast(list[Data], entry["steps"])):
                step = _m(step_raw)
                path: tuple[PathItem, ...] = ("ladders", ladder_id, "steps", i)
                level = self._ref((*path, "level"), cast(str, step["level"]), level_ids, "level")
                unit = cast(str | None, step.get("unit"))
                if unit is not None:
                    self._ref((*path, "unit"), unit, self.units, "unit")
                    self._unit_of((*path, "unit"), level, unit)
                if steps and level in level_ids and steps[-1].level in level_ids:
                    before = steps[-1].level
                    if level_ids.index(level) <= level_ids.index(before):
                        self.error(
                            (*path, "level"),
                            f"ladder {ladder_id!r} goes from {before!r} to {level!r}: steps must go up, "
                            "or escalation could loop forever",
                        )
                steps.append(LadderStep(level, cast(str, step["label"]), unit))
            ladders[ladder_id] = Ladder(ladder_id, cast(str, entry["name"]), tuple(steps))
        return ladders

    def _routing(self, transitions: tuple[Transition, ...], initial: str) -> Routing:
        raw = _m(self.data["routing"])
        no_grid = _m(raw["no_grid"])
        level = self._ref(("routing", "no_grid", "level"), cast(str, no_grid["level"]),
                          [lv.id for lv in self.levels], "level")
        unit = self._ref(("routing", "no_grid", "unit"), cast(str, no_grid["unit"]), self.units, "unit")
        self._unit_of(("routing", "no_grid", "unit"), level, unit)
        auto = cast(bool, raw["auto_dispatch"])
        if auto and not any(
            t.event == "dispatch" and initial in t.sources and "system" in t.actors and t.target for t in transitions
        ):
            self.error(("routing", "auto_dispatch"),
                       f"auto_dispatch needs a transition: event dispatch from {initial} by system, with a `to`")
        return Routing(auto, level, unit)

    def _trigger(self, path: tuple[PathItem, ...], raw: dict[str, Data]) -> Trigger | None:
        kinds = [k for k in ("event", "enter", "state", "at") if k in raw]
        if len(kinds) != 1:
            self.error(path, "a rule runs on exactly one of: event, enter, state (+ after), at")
            return None
        kind = kinds[0]
        if "after" in raw and kind != "state":
            self.error((*path, "after"), "`after` goes with `state` (time spent in a status)")
        if "repeat" in raw and kind != "state":
            self.error((*path, "repeat"), "`repeat` goes with `state` + `after`")
        if kind == "at":
            try:
                multiple, offset = parse_deadline_expr(cast(str, raw["at"]))
            except ValueError as exc:
                self.error((*path, "at"), str(exc))
                return None
            return Trigger("deadline", multiple=multiple, offset=offset)
        names = _names(raw[kind])
        known: Collection[str] = EVENT_NAMES if kind == "event" else self.statuses
        for i, name in enumerate(names):
            where = (*path, kind, i) if isinstance(raw[kind], list) else (*path, kind)
            self._ref(where, name, known, "event" if kind == "event" else "status")
        if kind != "state":
            return Trigger(kind, names)
        after_text = raw.get("after")
        if after_text is None:
            self.error(path, "`state` needs `after`: how long in the status (a duration, or 'progress')")
            return None
        after = None
        if after_text != "progress":
            try:
                after = Duration.parse(cast(str, after_text))
            except ValueError as exc:
                self.error((*path, "after"), f"{exc}; or 'progress' for the colour's progress rhythm")
                return None
            if after.amount <= 0:
                self.error((*path, "after"), "`after` must be more than zero")
        return Trigger("state", names, after=after, repeat=cast(bool, raw.get("repeat", False)))

    def _action(self, path: tuple[PathItem, ...], raw: dict[str, Data]) -> ActionSpec:
        kind, value = next(iter(raw.items()))
        where = (*path, kind)
        levels = [lv.id for lv in self.levels]
        if kind == "assign":
            if value == "current":
                return ActionSpec("assign")
            spec = _m(value)
            unit = cast(str, spec.get("unit", ""))
            level = cast(str, spec.get("level", self.units[unit].level if unit in self.units else ""))
            if "level" in spec:
                self._ref((*where, "level"), level, levels, "level")
            if unit:
                self._ref((*where, "unit"), unit, self.units, "unit")
                self._unit_of((*where, "unit"), level, unit)
            return ActionSpec("assign", value=level, unit=unit or self.levels_office(level))
        if kind == "notify":
            spec = _m(value)
            template = cast(str, spec["template"])
            if template not in self.known_templates:
                message = _unknown("template", template, self.known_templates, "the service has")
                self.error((*where, "template"), message)
            to = self._recipients((*where, "to"), cast(list[str], spec["to"]), allow_category=True)
            return ActionSpec("notify", template=template, to=to)
        text = cast(str, value)
        if kind == "set_colour":
            self._ref(where, text, self.colours, "colour")
        elif kind == "set_deadline" and text != "restart":
            try:
                if Duration.parse(text).amount <= 0:
                    self.error(where, "set_deadline must be more than zero")
            except ValueError as exc:
                self.error(where, f"{exc}; or 'restart' for the colour's deadline from now")
        elif kind == "escalate" and text != "up":
            self._ref(where, text, levels, "level (or 'up')")
        elif kind == "reopen" and text not in ("up", "same"):
            self._ref(where, text, levels, "level (or 'up', 'same')")
        return ActionSpec(kind, value=text)

    def _rules(self, transitions: tuple[Transition, ...]) -> tuple[Rule, ...]:
        rules = []
        seen: dict[str, int] = {}
        allowed_events = {t.event for t in transitions}
        for i, raw in enumerate(cast(list[Data], self.data["rules"])):
            entry = _m(raw)
            path: tuple[PathItem, ...] = ("rules", i)
            rule_id = cast(str, entry["id"])
            if rule_id in seen:
                self.error((*path, "id"), f"duplicate rule id {rule_id!r} (first is rules[{seen[rule_id]}])")
            seen.setdefault(rule_id, i)
            trigger = self._trigger((*path, "when"), _m(entry["when"]))
            condition = self._condition((*path, "if"), entry.get("if"))
            actions = tuple(self._action((*path, "actions", j), _m(a))
                            for j, a in enumerate(cast(list[Data], entry["actions"])))
            if trigger is None:
                continue
            if not actions:
                what = "a timer with no action" if trigger.timed else "a rule with no action"
                self.error((*path, "actions"), f"rule {rule_id!r}: {what}")
            if trigger.kind == "event":
                for name in trigger.names:
                    if name in EVENT_NAMES and name not in allowed_events:
                        self.warn((*path, "when"), f"rule {rule_id!r} never runs: no transition allows event {name!r}")
            rules.append(Rule(rule_id, cast(str, entry.get("name", rule_id)), trigger, condition, actions))
        return tuple(rules)

    # -- the graph ------------------------------------------------------------------------

    def _rule_path(self, rule_id: str) -> tuple[PathItem, ...]:
        for i, raw in enumerate(cast(list[Data], self.data["rules"])):
            if _m(raw)["id"] == rule_id:
                return ("rules", i)
        return ("rules",)

    def _graph(self, initial: str, transitions: tuple[Transition, ...], rules: tuple[Rule, ...]) -> None:
        # reachable statuses
        reached = {initial}
        changed = True
        while changed:
            changed = False
            for t in transitions:
                if t.target and t.target not in reached and reached & set(t.sources):
                    reached.add(t.target)
                    changed = True
            for rule in rules:
                if not rule_statuses(rule, self.statuses, transitions) & reached:
                    continue
                for action in rule.actions:
                    target = ACTION_TARGETS.get(action.kind)
                    if target and target not in reached:
                        reached.add(target)
                        changed = True
        for status in self.statuses:
            if status not in reached:
                self.error(("statuses", status),
                           f"status {status!r} can never be reached: no transition or rule leads to it", key=True)

        # automatic status changes: rules that run without anyone acting
        edges: dict[str, list[tuple[str, str, bool]]] = {s: [] for s in self.statuses}
        for rule in rules:
            for source in rule_statuses(rule, self.statuses, transitions, automatic=True):
                for action in rule.actions:
                    target = ACTION_TARGETS.get(action.kind)
                    if target is None or (action.kind == "close" and self.statuses[source].final):
                        continue
                    # an escalation always goes up a level, so a chain of them ends at the top
                    edges[source].append((target, rule.id, action.kind == "escalate"))
        reported: set[str] = set()
        for source, out in edges.items():
            for target, rule_id, bounded in out:
                if bounded or rule_id in reported:
                    continue
                cycle = _path(edges, target, source)
                if cycle is not None:
                    reported.add(rule_id)
                    loop = " → ".join([source, *cycle])
                    self.error(self._rule_path(rule_id),
                               f"rule {rule_id!r} can loop forever without anyone acting: {loop}")

        # dead ends
        for info in self.statuses.values():
            if info.final or info.id not in reached:
                continue
            leaves = any(info.id in t.sources and t.target and t.target != info.id for t in transitions)
            leaves = leaves or any(t != info.id for t, _, _ in edges[info.id])
            if not leaves:
                message = f"status {info.id!r} is not final but nothing leads out of it"
                self.warn(("statuses", info.id), message, key=True)


def _path(edges: dict[str, list[tuple[str, str, bool]]], start: str, goal: str) -> list[str] | None:
    """Statuses from start to goal along automatic edges (breadth first), or None."""
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            out = [node]
            while (back := previous[out[-1]]) is not None:
                out.append(back)
            return out[::-1]
        for target, _, _ in edges.get(node, []):
            if target not in previous:
                previous[target] = node
                queue.append(target)
    return None
