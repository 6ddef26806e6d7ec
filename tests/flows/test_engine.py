"""The pure engine: new_ticket and step, refused transitions, timers and their staleness."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from flows import Action, Event, Flow, StepResult, TicketState, TransitionRefused, new_ticket, pending_timers, step
from tests.flows.conftest import at

GRID = "500199001001-01"


def kinds(result: StepResult) -> list[tuple[str, str]]:
    return [(a.kind, a.rule) for a in result.actions if a.kind not in ("schedule", "cancel_timers")]


def timers(result: StepResult) -> dict[str, datetime]:
    return {
        a.param("timer") or "": datetime.fromisoformat(a.param("due") or "")
        for a in result.actions
        if a.kind == "schedule"
    }


def fire(flow: Flow, state: TicketState, timer_id: str, now: datetime) -> StepResult:
    return step(flow, state, Event("timer", "system", now, (("timer", timer_id),)), now)


def timer_of(state_or_result: StepResult | TicketState, flow: Flow, rule: str) -> tuple[str, datetime]:
    state = state_or_result.state if isinstance(state_or_result, StepResult) else state_or_result
    [timer] = [t for t in pending_timers(flow, state) if t.rule == rule]
    return timer.id, timer.due


def act(
    flow: Flow, state: TicketState, kind: str, actor: str, when: str, by: str | None = None, **data: str
) -> StepResult:
    """step() with an event at `when` (also the engine's now)."""
    return step(flow, state, Event(kind, actor, at(when), tuple(data.items()), by=by), at(when))


def opened(flow: Flow, category: str = "noise", when: str = "2026-11-24 10:00", grid: str | None = GRID) -> StepResult:
    return new_ticket(flow, category=category, now=at(when), grid_code=grid)


def test_a_report_with_a_grid_is_dispatched_to_that_grid(flow: Flow) -> None:
    result = opened(flow)
    s = result.state
    assert (s.status, s.level, s.unit, s.grid_code, s.colour, s.ladder) == (
        "dispatched", "grid", "grid_team", GRID, "red", "two_level"
    )
    assert s.deadline == at("2026-11-25 10:00") and s.flow_version == flow.version
    assert kinds(result) == [
        ("set_deadline", "intake"), ("assign", "push_task"), ("notify", "push_task"), ("notify", "push_task")
    ]
    # the worker gets the task, and the grid's work group hears of it
    assert [a.param("to") for a in result.actions if a.kind == "notify"] == ["assignee", "grid_group"]
    assign = result.actions[1]
    assert dict(assign.params) == {"level": "grid", "unit": "grid_team", "grid": GRID}
    assert set(timers(result)) == {t.id for t in pending_timers(flow, s)}


def test_a_report_without_a_grid_waits_in_the_dispatchers_queue(flow: Flow) -> None:
    result = opened(flow, grid=None)
    assert (result.state.status, result.state.level, result.state.unit) == ("received", "district", "linkage_centre")
    [notify] = [a for a in result.actions if a.kind == "notify"]
    assert (notify.rule, notify.param("to"), notify.param("template")) == (
        "queue_without_grid", "dispatcher", "notify/task_assigned"
    )


def test_the_category_decides_colour_level_unit_and_copies(flow: Flow) -> None:
    result = opened(flow, category="illegal_construction")
    s = result.state
    assert (s.colour, s.level, s.unit) == ("orange", "street", "street_enforcement")
    copied = [a.param("to") for a in result.actions if a.rule == "copy_task"]
    assert copied == ["unit:grid_team"]


def test_an_emergency_colour_overrides_the_category(flow: Flow) -> None:
    result = new_ticket(flow, category="greening", now=at("2026-11-24 10:00"), grid_code=GRID, colour="red")
    assert result.state.colour == "red" and result.state.deadline == at("2026-11-25 10:00")


def test_red_before_national_day_is_due_after_it(flow: Flow) -> None:
    assert opened(flow, when="2026-09-30 16:00").state.deadline == at("2026-10-08 16:00")


def test_reminder_after_two_working_hours_without_acceptance(flow: Flow) -> None:
    result = opened(flow, when="2026-11-24 16:30")
    timer, due = timer_of(result, flow, "remind_not_accepted")
    assert due == at("2026-11-25 10:00")  # 1 h that afternoon, 1 h the next morning
    fired = fire(flow, result.state, timer, due)
    assert [(a.kind, a.param("template"), a.param("to")) for a in fired.actions] == [
        ("notify", "notify/reminder_not_accepted", "assignee")
    ]
    assert fire(flow, fired.state, timer, due).actions == ()  # delivered twice, fires once


def test_accepting_cancels_the_reminder(flow: Flow) -> None:
    result = opened(flow)
    reminder, due = timer_of(result, flow, "remind_not_accepted")
    accepted = act(flow, result.state, "accept", "worker", "2026-11-24 10:30", by="LiuYang01")
    assert accepted.state.status == "accepted" and accepted.state.assignee == "LiuYang01"
    assert ("notify", "tell_accepted") in kinds(accepted)
    assert any(a.kind == "cancel_timers" for a in accepted.actions)
    assert reminder not in timers(accepted)
    assert fire(flow, accepted.state, reminder, due) == StepResult(accepted.state, ())  # stale


def test_yellow_card_at_the_deadline_and_red_at_twice_then_escalation(flow: Flow) -> None:
    result = opened(flow)
    accepted = act(flow, result.state, "accept", "worker", "2026-11-24 11:00", by="w1")
    yellow, due = timer_of(accepted, flow, "yellow_card")
    assert due == at("2026-11-25 10:00")
    carded = fire(flow, accepted.state, yellow, due)
    assert carded.state.card == "yellow"
    card = next(a for a in carded.actions if a.kind == "card")
    assert dict(card.params) == {"card": "yellow", "level": "grid", "unit": "grid_team"} and card.rule == "yellow_card"
    red, red_due = timer_of(carded, flow, "red_card")
    assert red_due == at("2026-11-26 10:00")
    escalated = fire(flow, carded.state, red, red_due)
    s = escalated.state
    assert (s.status, s.level, s.unit, s.card, s.assignee) == ("escalated", "street", "street_centre", "red", None)
    assert s.deadline == at("2026-11-27 10:00")  # restarted for the street
    # the red card is the grid's: the notices went out before the escalation moved the ticket
    red_notes = [a for a in escalated.actions if a.kind == "notify" and a.rule == "red_card"]
    assert {(a.param("level"), a.param("worker")) for a in red_notes} == {("grid", "w1")}
    escalate = next(a for a in escalated.actions if a.kind == "escalate")
    assert dict(escalate.params) == {
        "from_level": "grid", "level": "street", "unit": "street_centre", "ladder": "two_level", "label": "一级响应"
    }
    assert [a.rule for a in escalated.actions if a.kind not in ("schedule", "cancel_timers")] == [
        "red_card", "red_card", "red_card", "red_card", "restart_deadline", "push_task_above_grid",
        "push_task_above_grid", "tell_grid_group_moved_up", "tell_escalated",
    ]
    # the street's task goes to its assignee (the street's staff); the grid's group hears it left the grid
    assert [(a.rule, a.param("to")) for a in escalated.actions if a.kind == "notify" and "grid" in a.rule] == [
        ("push_task_above_grid", "assignee"), ("tell_grid_group_moved_up", "grid_group")
    ]


def test_red_card_at_the_top_of_the_ladder_does_not_escalate(flow: Flow) -> None:
    result = opened(flow, grid=None)  # district already
    red, due = timer_of(result, flow, "red_card")
    fired = fire(flow, result.state, red, due)
    assert fired.state.level == "district" and fired.state.status == "received" and fired.state.card == "red"
    assert not any(a.kind == "escalate" for a in fired.actions)


def test_a_resolved_ticket_gets_no_card(flow: Flow) -> None:
    result = opened(flow)
    s = act(flow, result.state, "accept", "worker", "2026-11-24 11:00").state
    resolved = act(flow, s, "resolve", "worker", "2026-11-24 15:00")
    assert {t.rule for t in pending_timers(flow, resolved.state)} == {"close_by_default"}
    yellow, due = timer_of(s, flow, "yellow_card")
    assert fire(flow, resolved.state, yellow, due).actions == ()


def test_a_good_rating_closes(flow: Flow) -> None:
    s = resolved(flow)
    closed = act(flow, s, "rate", "resident", "2026-11-25 09:00", score="4")
    assert (closed.state.status, closed.state.rating, closed.state.closed_reason) == ("closed", 4, "rated")
    assert kinds(closed) == [("notify", "tell_closed")]
    assert pending_timers(flow, closed.state) == ()


def test_a_bad_rating_reopens_one_level_up(flow: Flow) -> None:
    s = resolved(flow)
    reopened = act(flow, s, "rate", "resident", "2026-11-25 09:00", score="2")
    r = reopened.state
    assert (r.status, r.level, r.unit, r.reopen_count, r.rating) == ("reopened", "street", "street_centre", 1, None)
    assert r.deadline == at("2026-11-25 17:30")  # 09:00 + 7 working hours
    assert kinds(reopened)[0] == ("reopen", "bad_rating")
    told = {(a.param("template"), a.param("to")) for a in reopened.actions if a.kind == "notify"}
    assert ("notify/reopened", "resident") in told and ("notify/task_assigned", "assignee") in told


def test_no_rating_within_three_days_closes_as_satisfied(flow: Flow) -> None:
    s = resolved(flow)
    timer, due = timer_of(s, flow, "close_by_default")
    assert due == at("2026-11-27 15:00")
    closed = fire(flow, s, timer, due)
    assert (closed.state.status, closed.state.closed_reason) == ("closed", "satisfied_by_default")
    assert kinds(closed) == [("close", "close_by_default"), ("notify", "tell_closed")]


def test_a_worker_may_switch_to_the_four_level_triage(flow: Flow) -> None:
    s = opened(flow, category="dispute").state
    event = Event("escalate", "worker", at("2026-11-24 11:00"), (("ladder", "four_level_triage"),))
    moved = step(flow, s, event, at("2026-11-24 11:00"))
    m = moved.state
    assert (m.status, m.ladder, m.level) == ("escalated", "four_level_triage", "community")
    assert m.unit == "community_mediation"
    assert next(a for a in moved.actions if a.kind == "escalate").param("label") == "村社坐诊"
    up = step(flow, act(flow, m, "accept", "worker", "2026-11-24 14:00").state,
              Event("escalate", "worker", at("2026-11-24 15:00")), at("2026-11-24 15:00"))
    assert (up.state.level, up.state.unit) == ("street", "street_judicial")


def test_escalating_past_the_top_is_refused(flow: Flow) -> None:
    s = opened(flow, grid=None).state
    s = act(flow, s, "dispatch", "dispatcher", "2026-11-24 10:10").state
    with pytest.raises(TransitionRefused, match="不能再向上上报"):
        act(flow, s, "escalate", "worker", "2026-11-24 10:20")


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (Event("rate", "resident", at("2026-11-24 11:00"), (("score", "5"),)), "工单已派单，不能评价"),
        (Event("accept", "resident", at("2026-11-24 11:00")), "居民不能对已派单的工单受理"),
        (Event("fly", "worker", at("2026-11-24 11:00")), "未知的操作"),
        (Event("accept", "robot", at("2026-11-24 11:00")), "未知的操作人类型"),
    ],
)
def test_disallowed_events_are_refused_with_a_reason(flow: Flow, event: Event, reason: str) -> None:
    s = opened(flow).state
    with pytest.raises(TransitionRefused) as refused:
        step(flow, s, event, at("2026-11-24 11:00"))
    assert reason in refused.value.reason and refused.value.status == "dispatched"


def test_a_rating_needs_a_score_in_range(flow: Flow) -> None:
    s = resolved(flow)
    for data in ((), (("score", "0"),), (("score", "6"),), (("score", "好"),)):
        with pytest.raises(TransitionRefused, match="1 到 5"):
            step(flow, s, Event("rate", "resident", at("2026-11-25 09:00"), data), at("2026-11-25 09:00"))


def test_withdrawing_a_closed_ticket_is_refused_but_an_open_one_is_not(flow: Flow) -> None:
    s = opened(flow).state
    gone = act(flow, s, "withdraw", "resident", "2026-11-24 10:05")
    assert (gone.state.status, gone.state.closed_reason) == ("withdrawn", "withdraw")
    assert pending_timers(flow, gone.state) == ()
    with pytest.raises(TransitionRefused, match="已撤回"):
        act(flow, gone.state, "withdraw", "resident", "2026-11-24 10:06")


def test_recolouring_recomputes_the_deadline_from_the_report(flow: Flow) -> None:
    s = opened(flow).state
    event = Event("set_colour", "dispatcher", at("2026-11-24 12:00"), (("colour", "orange"),))
    recoloured = step(flow, s, event, at("2026-11-24 12:00"))
    assert recoloured.state.colour == "orange" and recoloured.state.deadline == at("2026-12-01 10:00")
    assert kinds(recoloured) == [("set_colour", "event:set_colour"), ("set_deadline", "event:set_colour")]
    assert recoloured.state.status == "dispatched" and recoloured.state.status_since == s.status_since


def test_dispatcher_routes_a_queued_report_to_a_grid(flow: Flow) -> None:
    s = opened(flow, grid=None).state
    event = Event("dispatch", "dispatcher", at("2026-11-24 10:30"), (("grid", GRID),))
    moved = step(flow, s, event, at("2026-11-24 10:30"))
    assert (moved.state.status, moved.state.level, moved.state.unit, moved.state.grid_code) == (
        "dispatched", "grid", "grid_team", GRID
    )


def test_a_dispatch_to_another_grid_drops_the_old_grids_assignee_but_a_named_worker_holds(flow: Flow) -> None:
    s = act(flow, opened(flow).state, "assign", "dispatcher", "2026-11-24 10:10", worker="ZhangFang00").state
    assert s.assignee == "ZhangFang00"
    moved = act(flow, s, "dispatch", "dispatcher", "2026-11-24 10:20", grid="500199001001-02").state
    assert (moved.grid_code, moved.assignee) == ("500199001001-02", None)
    same = act(flow, s, "dispatch", "dispatcher", "2026-11-24 10:20", grid=GRID).state
    assert same.assignee == "ZhangFang00"  # the same grid: it stays with whoever holds it
    named = act(flow, s, "dispatch", "dispatcher", "2026-11-24 10:20", grid="500199001001-02", worker="LiuYang01")
    assert named.state.assignee == "LiuYang01"


def test_progress_restarts_the_progress_rhythm(flow: Flow) -> None:
    s = step(flow, opened(flow).state, Event("accept", "worker", at("2026-11-24 11:00")), at("2026-11-24 11:00")).state
    _, due = timer_of(s, flow, "progress_rhythm")
    assert due == at("2026-12-01 11:00")  # red: progress every 7 days
    noted = act(flow, s, "progress", "worker", "2026-11-26 09:00", note="已约谈")
    timer, due = timer_of(noted, flow, "progress_rhythm")
    assert due == at("2026-12-03 09:00")
    assert ("notify", "tell_progress") in kinds(noted)
    again = fire(flow, noted.state, timer, due)
    _, next_due = timer_of(again, flow, "progress_rhythm")
    assert next_due == at("2026-12-10 09:00")  # it repeats


def test_a_timer_delivered_early_is_kept(flow: Flow) -> None:
    result = opened(flow)
    timer, _ = timer_of(result, flow, "yellow_card")
    early = fire(flow, result.state, timer, at("2026-11-24 12:00"))
    assert early.state == result.state
    assert [(a.kind, a.param("timer")) for a in early.actions] == [("schedule", timer)]


def test_a_timer_of_another_flow_version_is_stale(flow: Flow) -> None:
    s = opened(flow).state
    assert fire(flow, s, "no_such_rule:state:1:2026-11-24T12:00:00+08:00", at("2026-11-25 12:00")).actions == ()


def test_ticket_state_round_trips_through_json(flow: Flow) -> None:
    s = resolved(flow)
    s = act(flow, s, "rate", "resident", "2026-11-25 09:00", score="1").state
    data = json.loads(json.dumps(s.to_json()))
    assert TicketState.from_json(data) == s
    assert data["deadline"] == "2026-11-25T17:30:00+08:00" and data["rating"] is None


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("deadline", "soon", "Invalid isoformat"), ("reopen_count", "1", "integer"), ("fired", "x", "list")],
)
def test_bad_json_state_is_refused(flow: Flow, field: str, value: str, words: str) -> None:
    data = opened(flow).state.to_json()
    data[field] = value
    with pytest.raises(ValueError, match=words):
        TicketState.from_json(data)


def test_every_action_names_its_rule(flow: Flow) -> None:
    s = resolved(flow)
    result = act(flow, s, "rate", "resident", "2026-11-25 09:00", score="1")
    rule_ids = {r.id for r in flow.rules} | {"intake", "timers"} | {f"event:{k}" for k in ("set_colour", "escalate")}
    assert all(isinstance(a, Action) and a.rule in rule_ids for a in result.actions)


def test_naive_now_is_refused(flow: Flow) -> None:
    with pytest.raises(ValueError, match="time zone"):
        new_ticket(flow, category="noise", now=datetime(2026, 11, 24, 10), grid_code=GRID)


def resolved(flow: Flow) -> TicketState:
    s = opened(flow).state
    s = act(flow, s, "accept", "worker", "2026-11-24 11:00", by="w1").state
    return act(flow, s, "resolve", "worker", "2026-11-24 15:00").state


def test_times_are_kept_in_the_flows_zone(flow: Flow) -> None:
    from datetime import UTC

    utc = at("2026-11-24 10:00").astimezone(UTC)
    s = new_ticket(flow, category="noise", now=utc, grid_code=GRID).state
    assert s.created_at == utc and s.created_at.utcoffset() == at("2026-11-24 10:00").utcoffset()
    assert all(t.id.endswith("+08:00") for t in pending_timers(flow, s))


def test_a_dispatcher_assigns_a_named_worker(flow: Flow) -> None:
    s = opened(flow).state
    assigned = act(flow, s, "assign", "dispatcher", "2026-11-24 10:20", worker="XuJun01")
    assert (assigned.state.status, assigned.state.assignee) == ("dispatched", "XuJun01")
    push = [a for a in assigned.actions if a.rule == "push_to_worker"]
    assert [(a.kind, a.param("worker")) for a in push] == [("assign", "XuJun01"), ("notify", "XuJun01")]
