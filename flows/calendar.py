"""Working time on the Chinese official calendar: deadlines in working days and hours.

A working day is a weekday, except public holidays, plus the make-up working days (调休,
often a Saturday or Sunday) — all from `chinese_calendar`, which knows the State Council's
schedule up to its last release (1.11: up to 2026). For later years the flow says what to
do: `fallback: weekends` treats Saturday and Sunday as rest days, `fallback: error` refuses;
an admin may also enter a year's schedule by hand (`calendar.years`).

Arithmetic is in working seconds: "1 working day" is one day's working hours (09:00–12:00
and 13:30–17:30 make 7 hours), so a report at 16:00 on the day before National Day is due
at 16:00 on the first working day after the holiday. A deadline that uses up exactly the
rest of a period lands on its end (17:30), not on the next morning.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from fractions import Fraction

import chinese_calendar

UNITS: dict[str, str] = {
    "working day": "working_days",
    "working hour": "working_hours",
    "day": "days",
    "hour": "hours",
    "minute": "minutes",
}
_UNIT_TEXT = {v: k for k, v in UNITS.items()}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(working days?|working hours?|days?|hours?|minutes?)\s*$")
_CALENDAR_SECONDS = {"days": 86400, "hours": 3600, "minutes": 60}
# How far working-time arithmetic may walk before it gives up (a calendar with no working time).
_MAX_DAYS = 3700


class CalendarError(ValueError):
    """A date the calendar cannot place: a year without holiday data and no fallback."""


@dataclass(frozen=True, slots=True)
class Duration:
    """An amount of time: working days/hours on the calendar, or plain days/hours/minutes."""

    amount: Fraction
    unit: str  # "working_days" | "working_hours" | "days" | "hours" | "minutes"

    @classmethod
    def parse(cls, text: str) -> Duration:
        """'1 working day', '2 working hours', '7 days', '3 hours', '30 minutes' (singular or plural)."""
        m = _DURATION.match(text)
        if m is None:
            raise ValueError(
                f"not a duration: {text!r} (write e.g. '1 working day', '2 working hours', '7 days', '30 minutes')"
            )
        return cls(Fraction(m.group(1)), UNITS[m.group(2).removesuffix("s")])

    @property
    def working(self) -> bool:
        return self.unit.startswith("working_")

    def scaled(self, factor: Fraction | int) -> Duration:
        return Duration(self.amount * factor, self.unit)

    def __str__(self) -> str:
        amount = self.amount.numerator if self.amount.denominator == 1 else float(self.amount)
        word = _UNIT_TEXT[self.unit]
        return f"{amount} {word}" if self.amount == 1 else f"{amount} {word}s"


@dataclass(frozen=True, slots=True)
class YearSchedule:
    """A year the admin entered by hand: its holidays and its make-up working days."""

    year: int
    holidays: frozenset[date]
    workdays: frozenset[date]


def parse_hours(text: str) -> tuple[time, time]:
    """'09:00-12:00' (or with an en dash) -> (09:00, 12:00)."""
    m = re.match(r"^\s*(\d{1,2}):(\d{2})\s*[-–—~]\s*(\d{1,2}):(\d{2})\s*$", text)
    if m is None:
        raise ValueError(f"not a working-hours period: {text!r} (write e.g. '09:00-12:00')")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"not a time of day in {text!r}")
    start, end = time(h1, m1), time(h2, m2)
    if end <= start:
        raise ValueError(f"working-hours period {text!r} ends before it starts")
    return start, end


def library_years() -> range:
    """The years chinese_calendar has official holiday data for."""
    years = sorted({d.year for d in chinese_calendar.holidays})
    return range(years[0], years[-1] + 1)


@functools.lru_cache(maxsize=4096)
def _official_workday(day: date) -> bool:
    """chinese_calendar's answer, remembered: it scans its whole holiday table on every call
    (most of the CPU of opening a ticket), and a day's answer never changes."""
    return bool(chinese_calendar.is_workday(day))


class WorkCalendar:
    """Working days and hours in one time zone; pure arithmetic, no clock."""

    def __init__(
        self,
        tz: tzinfo,
        periods: Iterable[tuple[time, time]],
        fallback: str = "weekends",
        years: Iterable[YearSchedule] = (),
    ) -> None:
        if fallback not in ("weekends", "error"):
            raise ValueError(f"fallback must be 'weekends' or 'error', not {fallback!r}")
        self.tz = tz
        self.periods = tuple(sorted(periods))
        if not self.periods:
            raise ValueError("a calendar needs at least one working-hours period")
        for (_, end), (start, _) in itertools.pairwise(self.periods):
            if start < end:
                raise ValueError("working-hours periods overlap")
        self.fallback = fallback
        self.years = {y.year: y for y in years}
        self.library = library_years()
        self.day_length = sum((_span(s, e) for s, e in self.periods), timedelta())

    def covers(self, year: int) -> bool:
        """True when the year's official holidays are known (library or entered by hand)."""
        return year in self.library or year in self.years

    def is_workday(self, day: date) -> bool:
        manual = self.years.get(day.year)
        if manual is not None:
            if day in manual.workdays:
                return True
            if day in manual.holidays:
                return False
            return day.weekday() < 5
        if day.year in self.library:
            return _official_workday(day)
        if self.fallback == "weekends":
            return day.weekday() < 5
        raise CalendarError(
            f"no official holiday data for {day.year}: chinese_calendar knows "
            f"{self.library.start}–{self.library.stop - 1}; set calendar.fallback: weekends "
            f"or enter {day.year} under calendar.years"
        )

    # -- arithmetic -----------------------------------------------------------------------

    def add(self, start: datetime, duration: Duration) -> datetime:
        """`start` moved by `duration` (negative amounts move back); working units skip rest time."""
        _aware(start)
        if not duration.working:
            seconds = duration.amount * _CALENDAR_SECONDS[duration.unit]
            return start + timedelta(seconds=round(seconds))
        per_unit = self.day_length if duration.unit == "working_days" else timedelta(hours=1)
        amount = timedelta(seconds=round(duration.amount * Fraction(per_unit.total_seconds())))
        if amount >= timedelta():
            return self._forward(start, amount)
        return self._backward(start, -amount)

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        """Working time between two instants (negative if end is before start)."""
        _aware(start)
        _aware(end)
        if end < start:
            return -self.working_time(end, start)
        total = timedelta()
        day = start.astimezone(self.tz).date()
        last = end.astimezone(self.tz).date()
        while day <= last:
            for s, e in self._periods_on(day):
                lo, hi = max(s, start), min(e, end)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total

    def is_working_time(self, moment: datetime) -> bool:
        """True inside a working period (start included, end excluded)."""
        local = _aware(moment).astimezone(self.tz)
        return any(s <= local < e for s, e in self._periods_on(local.date()))

    def _periods_on(self, day: date) -> list[tuple[datetime, datetime]]:
        if not self.is_workday(day):
            return []
        return [(datetime.combine(day, s, self.tz), datetime.combine(day, e, self.tz)) for s, e in self.periods]

    def _exhausted(self, start: datetime) -> CalendarError:
        return CalendarError(f"no working time within {_MAX_DAYS} days of {start.isoformat()}")

    def _forward(self, start: datetime, amount: timedelta) -> datetime:
        if not amount:
            return start
        day = start.astimezone(self.tz).date()
        for _ in range(_MAX_DAYS):
            for s, e in self._periods_on(day):
                begin = max(s, start)
                if e <= begin:
                    continue
                if amount <= e - begin:
                    return begin + amount
                amount -= e - begin
            day += timedelta(days=1)
        raise self._exhausted(start)

    def _backward(self, start: datetime, amount: timedelta) -> datetime:
        if not amount:
            return start
        day = start.astimezone(self.tz).date()
        for _ in range(_MAX_DAYS):
            for s, e in reversed(self._periods_on(day)):
                end = min(e, start)
                if end <= s:
                    continue
                if amount <= end - s:
                    return end - amount
                amount -= end - s
            day -= timedelta(days=1)
        raise self._exhausted(start)


def _span(start: time, end: time) -> timedelta:
    day = date(2000, 1, 3)
    return datetime.combine(day, end) - datetime.combine(day, start)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a time zone is required: {moment.isoformat()} has none")
    return moment
