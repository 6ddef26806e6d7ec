"""`flows check`: schema and meaning, every message with file:line:column."""

from __future__ import annotations

import re
from datetime import date

import pytest

from flows import FlowError, Problem, check_flow_file, check_flow_text, load_flow_text
from tests.flows.conftest import DEFAULT_FLOW, DEFAULT_TEMPLATES

LOCATED = re.compile(r"^f\.yaml:\d+:\d+: (error|warning): ")


def check(text: str, categories: tuple[str, ...], today: date | None = None) -> list[Problem]:
    return check_flow_text(
        text, source="f.yaml", known_categories=categories, known_templates=DEFAULT_TEMPLATES, today=today
    )


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_the_default_flow_is_clean(categories: tuple[str, ...]) -> None:
    problems = check_flow_file(DEFAULT_FLOW, categories, DEFAULT_TEMPLATES)
    assert problems == []


def test_the_default_flow_uses_exactly_the_listed_templates(default_text: str) -> None:
    used = set(re.findall(r"template: (notify/[a-z_]+)", default_text))
    assert used == DEFAULT_TEMPLATES


def test_every_category_the_nlu_knows_has_a_rule(flow, categories: tuple[str, ...]) -> None:
    assert set(flow.categories) == set(categories)


def test_yubei_colours_and_display_names(flow) -> None:
    assert [(c.name, c.rhythm, str(c.deadline), str(c.progress)) for c in flow.colours.values()] == [
        ("红色", "日清周进", "1 working day", "7 days"),
        ("橙色", "周清月进", "5 working days", "30 days"),
        ("黄色", "月清季进", "22 working days", "90 days"),
    ]
    assert flow.levels == ("grid", "community", "street", "district")
    assert [flow.level_name(lv) for lv in flow.levels] == ["网格", "社区", "街道", "区"]
    assert flow.status_name("accepted") == "已受理" and flow.status_name("duplicate") == "重复件"
    assert flow.is_final("withdrawn") and not flow.is_final("resolved")
    assert [s.label for s in flow.ladders["two_level"].steps] == ["网格处置", "一级响应", "二级响应"]
    four = [s.label for s in flow.ladders["four_level_triage"].steps]
    assert four == ["网格首诊", "村社坐诊", "街镇接诊", "区级会诊"]


# Each case: (text in default.yaml, its replacement, words the error must have); the error must
# name a line of the replacement (or the one after it, where the YAML parser notices).
BROKEN = {
    "unknown status": ("to: accepted, by: [worker]}", "to: acepted, by: [worker]}", "did you mean 'accepted'"),
    "unknown level": ("{level: street, label: 一级响应}", "{level: streets, label: 一级响应}", "level 'streets'"),
    "unknown category": ("  greening: {colour: yellow}", "  greenery: {colour: yellow}", "unknown category 'greenery'"),
    "unknown template": ("notify/closed", "notify/clsoed", "unknown template 'notify/clsoed'"),
    "unknown action": ("      - card: yellow", "      - crad: yellow", "unknown key 'crad'"),
    "unknown event": ("{event: accept, from:", "{event: acept, from:", "unknown event 'acept'"),
    "unknown recipient": ("to: [resident, dispatcher]", "to: [resident, dispatchr]", "unknown recipient"),
    "unit of another level": ("unit: street_enforcement, notify", "unit: linkage_centre, notify", "belongs to level"),
    "wrong type": ("    deadline: 1 working day", "    deadline: 1", "is not of type 'string'"),
    "not a duration": ("    deadline: 1 working day", "    deadline: 1 wd", "is not a duration"),
    "YAML syntax": ("    name: 红色", "    name: [红色", "YAML syntax"),
    "duplicate key": ("    rhythm: 日清周进", "    rhythm: 日清周进\n    rhythm: 日清", "duplicate key 'rhythm'"),
    "timer with no action": (
        "    when: {state: resolved, after: 3 days}\n    actions:\n      - close: satisfied_by_default",
        "    when: {state: resolved, after: 3 days}\n    actions: []",
        "a timer with no action",
    ),
    "ladder going down": ("      - {level: district, label: 二级响应}", "      - {level: grid, label: 二级响应}",
                          "steps must go up"),
    "bad working hours": ('"13:30-17:30"', '"13:30-11:30"', "ends before it starts"),
    "unknown time zone": ("Asia/Shanghai", "Asia/Chongqin", "unknown time zone"),
    "two triggers": ("when: {enter: returned}", "when: {enter: returned, event: accept}", "exactly one of"),
    "bad deadline expression": ("when: {at: deadline}", "when: {at: deadlne}", "not a time against the deadline"),
    "rating beyond the scale": ("if: {rating_at_most: 2}", "if: {rating_at_most: 7}", "rating scale"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_mistake_is_an_error_naming_its_line(case: str, default_text: str, categories: tuple[str, ...]) -> None:
    old, new, words = BROKEN[case]
    assert old in default_text, f"the default flow changed: {old!r} is gone"
    text = default_text.replace(old, new, 1)
    found = errors(check(text, categories))
    assert found, f"{case}: no error"
    assert all(LOCATED.match(str(p)) for p in found)
    hit = [p for p in found if words in p.message]
    assert hit, f"{case}: {[str(p) for p in found]}"
    first = text[: text.index(new)].count("\n") + 1
    assert first <= hit[0].line <= first + new.count("\n") + 1, str(hit[0])


def test_column_points_at_the_bad_value(default_text: str, categories: tuple[str, ...]) -> None:
    text = default_text.replace("to: accepted, by: [worker]}", "to: acepted, by: [worker]}", 1)
    [problem] = errors(check(text, categories))
    line = text.splitlines()[problem.line - 1]
    assert line[problem.column - 1:].startswith("acepted")


def test_an_unreachable_status(default_text: str, categories: tuple[str, ...]) -> None:
    text = default_text.replace(
        "  - {event: mark_duplicate, from: [received, dispatched, returned], to: duplicate, by: [dispatcher]}\n", ""
    )
    [problem] = errors(check(text, categories))
    assert "'duplicate' can never be reached" in problem.message
    assert problem.line == line_of(text, "  duplicate: {name: 重复件")


def test_rules_that_bounce_a_ticket_forever_are_refused(default_text: str, categories: tuple[str, ...]) -> None:
    bounce = (
        "  - id: bounce\n    when: {enter: reopened}\n    actions:\n      - close: again\n"
        "  - id: bounce_back\n    when: {state: closed, after: 1 hour}\n    actions:\n      - reopen: same\n"
    )
    text = default_text.replace("  - id: tell_returned\n", bounce + "  - id: tell_returned\n")
    messages = [p.message for p in errors(check(text, categories))]
    assert any("'bounce' can loop forever" in m and "reopened → closed → reopened" in m for m in messages)


def test_chained_escalations_are_bounded_by_the_ladder(default_text: str, categories: tuple[str, ...]) -> None:
    # escalating again on every escalation climbs the ladder and stops at its top: allowed
    chain = "  - id: climb\n    when: {enter: escalated}\n    actions:\n      - escalate: up\n"
    text = default_text.replace("  - id: tell_returned\n", chain + "  - id: tell_returned\n")
    assert errors(check(text, categories)) == []


def test_reopening_on_every_reopen_loops(default_text: str, categories: tuple[str, ...]) -> None:
    again = "  - id: again\n    when: {enter: reopened}\n    actions:\n      - reopen: same\n"
    text = default_text.replace("  - id: tell_returned\n", again + "  - id: tell_returned\n")
    assert any("loop forever" in p.message for p in errors(check(text, categories)))


def test_a_missing_calendar_year_without_fallback_is_an_error(default_text: str, categories) -> None:
    text = default_text.replace("fallback: weekends", "fallback: error")
    assert errors(check(text, categories)) == []  # without `today` the year is not known
    [problem] = errors(check(text, categories, today=date(2026, 11, 22)))
    assert "no holiday data for 2027" in problem.message and problem.line == line_of(text, "fallback: error")


def test_a_missing_year_with_fallback_is_a_warning(default_text: str, categories) -> None:
    [problem] = check(default_text, categories, today=date(2026, 11, 22))
    assert problem.severity == "warning" and "2027" in problem.message


def test_a_year_entered_by_hand_covers_it(default_text: str, categories) -> None:
    text = default_text.replace("fallback: weekends", "fallback: error").replace(
        "  years: {}", "  years:\n    2027:\n      holidays: [2027-01-01]\n      workdays: []"
    )
    assert check(text, categories, today=date(2026, 11, 22)) == []


def test_a_holiday_outside_its_year(default_text: str, categories) -> None:
    text = default_text.replace("  years: {}", "  years:\n    2027:\n      holidays: [2028-01-01]")
    [problem] = errors(check(text, categories))
    assert "not in 2027" in problem.message and problem.line == line_of(text, "holidays: [2028-01-01]")


def test_load_refuses_with_every_error(default_text: str, categories) -> None:
    text = default_text.replace("notify/closed", "notify/clsoed").replace("  greening:", "  greenery:")
    with pytest.raises(FlowError) as refused:
        load_flow_text(text, source="edited.yaml", known_categories=categories, known_templates=DEFAULT_TEMPLATES)
    assert len(refused.value.problems) == 2
    assert all(str(p).startswith("edited.yaml:") for p in refused.value.problems)


def test_not_yaml_at_all(categories) -> None:
    [problem] = check("levels: [grid, street\ncolours: {}\n", categories)
    assert problem.line == 2 and "YAML syntax" in problem.message


def test_missing_sections_are_named(categories) -> None:
    problems = check("name: x\n", categories)
    assert any("'calendar' is a required property" in p.message for p in problems)
    assert all(p.line == 1 for p in problems)


def test_an_unreadable_file(tmp_path, categories) -> None:
    [problem] = check_flow_file(tmp_path / "nope.yaml", categories, DEFAULT_TEMPLATES)
    assert "cannot read" in problem.message


def test_the_version_is_a_hash_of_the_text(default_text: str, categories) -> None:
    one = load_flow_text(default_text, known_categories=categories, known_templates=DEFAULT_TEMPLATES)
    two = load_flow_text(default_text + "\n# comment\n", known_categories=categories, known_templates=DEFAULT_TEMPLATES)
    assert len(one.version) == 12 and one.version != two.version
