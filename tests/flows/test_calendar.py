"""Working-time arithmetic on the Chinese official calendar: weekends, holidays, 调休."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.calendar import CalendarError, Duration, WorkCalendar, YearSchedule, parse_hours
from tests.flows.conftest import TZ, at

HOURS = (parse_hours("09:00-12:00"), parse_hours("13:30-17:30"))
CAL = WorkCalendar(TZ, HOURS, fallback="error")
WEEKENDS = WorkCalendar(TZ, HOURS, fallback="weekends")

# instants from 2024 to the end of 2026 (the library's data), at any minute
moments = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31, 23, 59), timezones=st.just(TZ)
).map(lambda m: m.replace(second=0, microsecond=0))
working = st.builds(
    Duration,
    st.fractions(min_value=0, max_value=30, max_denominator=4),
    st.sampled_from(["working_days", "working_hours"]),
)


def test_day_length_is_the_sum_of_the_periods() -> None:
    assert CAL.day_length == timedelta(hours=7)


def test_red_ticket_the_afternoon_before_national_day_is_due_the_first_working_day_after() -> None:
    # 2026-10-01..07 are National Day holidays; 10-08 (Thursday) is the first working day
    due = CAL.add(at("2026-09-30 16:00"), Duration.parse("1 working day"))
    assert due == at("2026-10-08 16:00")


def test_make_up_saturday_counts_as_a_working_day() -> None:
    # 调休: Saturday 2026-10-10 is a working day
    assert CAL.is_workday(date(2026, 10, 10))
    assert CAL.add(at("2026-10-09 16:00"), Duration.parse("1 working day")) == at("2026-10-10 16:00")


def test_a_report_at_night_starts_counting_next_morning() -> None:
    assert CAL.add(at("2026-11-23 20:00"), Duration.parse("2 working hours")) == at("2026-11-24 11:00")


def test_using_up_a_period_exactly_lands_on_its_end() -> None:
    assert CAL.add(at("2026-11-23 09:00"), Duration.parse("3 working hours")) == at("2026-11-23 12:00")
    assert CAL.add(at("2026-11-23 09:00"), Duration.parse("1 working day")) == at("2026-11-23 17:30")


def test_lunch_break_is_not_working_time() -> None:
    assert CAL.add(at("2026-11-23 11:00"), Duration.parse("2 working hours")) == at("2026-11-23 14:30")


def test_calendar_units_ignore_working_hours() -> None:
    assert CAL.add(at("2026-09-30 16:00"), Duration.parse("3 days")) == at("2026-10-03 16:00")
    assert CAL.add(at("2026-09-30 16:00"), Duration.parse("90 minutes")) == at("2026-09-30 17:30")


def test_year_without_data_and_fallback_error_is_refused_clearly() -> None:
    with pytest.raises(CalendarError, match=r"2027.*fallback: weekends"):
        CAL.add(at("2026-12-31 16:00"), Duration.parse("1 working day"))


def test_fallback_weekends_rests_on_saturday_and_sunday() -> None:
    # 2027-01-01 is a Friday: without holiday data it is an ordinary working day
    assert WEEKENDS.add(at("2026-12-31 16:00"), Duration.parse("1 working day")) == at("2027-01-01 16:00")
    assert WEEKENDS.add(at("2027-01-08 16:00"), Duration.parse("1 working day")) == at("2027-01-11 16:00")


def test_a_year_entered_by_hand_is_covered() -> None:
    year = YearSchedule(2027, holidays=frozenset({date(2027, 1, 1)}), workdays=frozenset({date(2027, 1, 9)}))
    cal = WorkCalendar(TZ, HOURS, fallback="error", years=[year])
    assert cal.covers(2027)
    assert cal.add(at("2026-12-31 16:00"), Duration.parse("1 working day")) == at("2027-01-04 16:00")
    assert cal.is_workday(date(2027, 1, 9))  # a Saturday made a working day


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [
        ("1 working day", 1, "working_days"),
        ("22 working days", 22, "working_days"),
        ("2 working hours", 2, "working_hours"),
        ("0.5 working day", Fraction(1, 2), "working_days"),
        ("7 days", 7, "days"),
        ("30 minutes", 30, "minutes"),
    ],
)
def test_durations_parse_and_print_back(text: str, amount: Fraction, unit: str) -> None:
    duration = Duration.parse(text)
    assert (duration.amount, duration.unit) == (amount, unit)
    assert Duration.parse(str(duration)) == duration


@pytest.mark.parametrize("text", ["1wd", "two days", "1 week", "-1 day", ""])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        Duration.parse(text)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        CAL.add(datetime(2026, 11, 23, 9, 0), Duration.parse("1 working day"))


@pytest.mark.parametrize("text", ["9-12", "12:00-09:00", "25:00-26:00"])
def test_bad_working_hours_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hours(text)


# -- properties ---------------------------------------------------------------------------
# On the calendar with fallback: weekends, so long durations from late 2026 may run into 2027.


@settings(max_examples=200, deadline=None)
@given(moments, working)
def test_working_time_added_is_working_time_between(start: datetime, duration: Duration) -> None:
    due = WEEKENDS.add(start, duration)
    per_unit = WEEKENDS.day_length if duration.unit == "working_days" else timedelta(hours=1)
    expected = timedelta(seconds=round(duration.amount * Fraction(per_unit.total_seconds())))
    assert WEEKENDS.working_time(start, due) == expected


@settings(max_examples=200, deadline=None)
@given(moments, working)
def test_a_deadline_never_lands_in_rest_time(start: datetime, duration: Duration) -> None:
    due = WEEKENDS.add(start, duration)
    if duration.amount == 0:
        assert due == start
        return
    local = due.astimezone(TZ)
    assert WEEKENDS.is_workday(local.date()), f"{local} is a rest day"
    assert any(s < local.time() <= e for s, e in HOURS), f"{local} is outside working hours"


@settings(max_examples=200, deadline=None)
@given(moments, moments, working)
def test_later_start_never_gives_earlier_deadline(a: datetime, b: datetime, duration: Duration) -> None:
    early, late = sorted((a, b))
    assert WEEKENDS.add(early, duration) <= WEEKENDS.add(late, duration)


@settings(max_examples=200, deadline=None)
@given(moments, working, working)
def test_adding_in_two_steps_is_adding_once(start: datetime, d1: Duration, d2: Duration) -> None:
    in_hours = [d.amount * (7 if d.unit == "working_days" else 1) for d in (d1, d2)]
    both = Duration(in_hours[0] + in_hours[1], "working_hours")
    once = WEEKENDS.add(start, both)
    halfway = WEEKENDS.add(start, Duration(in_hours[0], "working_hours"))
    twice = WEEKENDS.add(halfway, Duration(in_hours[1], "working_hours"))
    assert abs(once - twice) <= timedelta(seconds=1)  # rounding to whole seconds


@settings(max_examples=200, deadline=None)
@given(moments, st.integers(min_value=1, max_value=40))
def test_going_back_undoes_going_forward(start: datetime, hours: int) -> None:
    forward = WEEKENDS.add(start, Duration(Fraction(hours), "working_hours"))
    back = WEEKENDS.add(forward, Duration(Fraction(-hours), "working_hours"))
    assert WEEKENDS.working_time(back, start) == timedelta()  # same moment, or the same gap of rest time
    assert back <= start or not WEEKENDS.is_working_time(start)


@settings(max_examples=100, deadline=None)
@given(st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 12, 31)), st.integers(min_value=1, max_value=10))
def test_n_working_days_from_a_morning_end_on_the_nth_working_day(day: date, n: int) -> None:
    start = datetime.combine(day, time(9, 0), TZ)
    due = WEEKENDS.add(start, Duration(Fraction(n), "working_days"))
    # counted by hand: the n-th working day on or after `day`, at closing time
    current, counted = day, 0
    while True:
        counted += WEEKENDS.is_workday(current)
        if counted == n:
            break
        current += timedelta(days=1)
    assert due.astimezone(TZ) == datetime.combine(current, time(17, 30), TZ)
