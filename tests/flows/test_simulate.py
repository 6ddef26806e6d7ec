"""simulate(): one ticket's timeline under a flow, timers fired in time order between events."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from flows import Flow, simulate
from flows.simulate import parse_events
from tests.flows.conftest import at


def line(step) -> tuple[str, str, str, str, str, str | None]:
    s = step.state
    return (step.at.strftime("%m-%d %H:%M"), step.event, s.status, s.level, s.colour, s.card)


def test_the_issue_example_accepted_resolved_rated_badly(flow: Flow) -> None:
    steps = simulate(flow, "noise", at("2026-09-30 16:00"), "accepted@+1h,resolved@+3d,rated:1@+4d")
    assert [line(s) for s in steps] == [
        ("09-30 16:00", "new", "dispatched", "grid", "red", None),
        ("09-30 17:00", "accept", "accepted", "grid", "red", None),
        ("10-03 16:00", "resolve", "resolved", "grid", "red", None),
        ("10-04 16:00", "rate", "reopened", "street", "red", None),  # a bad rating: one level up
        # nobody at the street accepts: reminder, yellow, then red and escalation to the district
        ("10-08 11:00", "timer:remind_not_accepted", "reopened", "street", "red", None),
        ("10-08 17:30", "timer:yellow_card", "reopened", "street", "red", "yellow"),
        ("10-09 17:30", "timer:red_card", "escalated", "district", "red", "red"),
        ("10-10 11:00", "timer:remind_not_accepted", "escalated", "district", "red", "red"),  # 调休 Saturday
        ("10-10 17:30", "timer:yellow_card", "escalated", "district", "red", "red"),
        ("10-12 17:30", "timer:red_card", "escalated", "district", "red", "red"),
    ]
    # the holiday: 1 working day from 16:00 before National Day is 16:00 on the first day after
    assert steps[0].state.deadline == at("2026-10-08 16:00")


def test_a_good_rating_closes_and_nothing_fires_after(flow: Flow) -> None:
    steps = simulate(flow, "noise", at("2026-11-24 10:00"), "accepted@+30m,resolved@+5h,rated:5@+1d")
    assert [s.event for s in steps] == ["new", "accept", "resolve", "rate"]
    assert steps[-1].state.status == "closed"


def test_silence_after_resolution_closes_as_satisfied(flow: Flow) -> None:
    steps = simulate(flow, "noise", at("2026-11-24 10:00"), "accepted@+30m,resolved@+5h")
    assert [(s.event, s.state.status, s.state.closed_reason) for s in steps[-1:]] == [
        ("timer:close_by_default", "closed", "satisfied_by_default")
    ]
    assert steps[-1].at == at("2026-11-27 15:00")


def test_a_refused_event_is_recorded_and_the_ticket_goes_on(flow: Flow) -> None:
    steps = simulate(flow, "noise", at("2026-11-24 10:00"), "rated:5@+1h,accepted@+90m", horizon=timedelta(0))
    assert [(s.event, s.refused) for s in steps] == [
        ("new", None), ("rate", "工单已派单，不能评价"), ("accept", None)
    ]


def test_events_are_applied_in_time_order_with_timers_between(flow: Flow) -> None:
    steps = simulate(flow, "noise", at("2026-11-24 10:00"), "accepted@+1d")
    assert [s.event for s in steps][:3] == ["new", "timer:remind_not_accepted", "timer:yellow_card"]
    assert steps[3].event == "accept"


def test_json_lines_have_the_documented_keys(flow: Flow) -> None:
    steps = simulate(flow, "wage_arrears", at("2026-11-24 10:00"), "accepted@+1h")
    data = json.loads(json.dumps([s.to_json() for s in steps], ensure_ascii=False))
    assert set(data[0]) == {"at", "event", "state", "level", "colour", "card", "deadline", "actions"}
    assert data[0]["state"] == "dispatched" and data[0]["level"] == "street" and data[0]["colour"] == "orange"
    copied = [a for a in data[0]["actions"] if a["rule"] == "copy_task"]
    assert copied == [{"kind": "notify", "rule": "copy_task", "params": {
        "template": "notify/task_copied", "to": "unit:labour_inspection", "level": "street", "unit": "street_centre",
        "grid": "SIM-GRID"}}]


def test_a_worker_asks_for_the_four_level_triage(flow: Flow) -> None:
    steps = simulate(flow, "dispute", at("2026-11-24 10:00"), "accepted@+1h,escalated:four_level_triage@+2h")
    escalated = next(s for s in steps if s.event == "escalate")
    assert (escalated.state.level, escalated.state.unit, escalated.state.ladder) == (
        "community", "community_mediation", "four_level_triage"
    )


def test_no_grid_waits_for_the_dispatcher(flow: Flow) -> None:
    steps = simulate(flow, "noise", at("2026-11-24 10:00"), "", grid_code=None)
    assert (steps[0].state.status, steps[0].state.level) == ("received", "district")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("accepted", "cannot read event"),
        ("flew@+1h", "unknown event 'flew'"),
        ("accepted@tomorrow", "cannot read the time"),
    ],
)
def test_bad_event_scripts_are_refused(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_events(text, at("2026-11-24 10:00"))


def test_event_script_forms() -> None:
    events = parse_events("rated:1/resident@+4d, accepted@+1d2h30m ,resolved@2026-11-30T09:00", at("2026-11-24 10:00"))
    assert [(e.kind, e.value, e.actor, e.at) for e in events] == [
        ("accept", None, None, at("2026-11-25 12:30")),
        ("rate", "1", "resident", at("2026-11-28 10:00")),
        ("resolve", None, None, at("2026-11-30 09:00")),
    ]
