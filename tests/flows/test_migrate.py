"""The pure migration: a ticket moved onto a newer flow gets that flow's deadline and timers."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flows import TransitionRefused, load_flow_text, migrate, new_ticket, pending_timers
from nlu.taxonomy import category_ids

DEFAULT = Path(__file__).resolve().parents[2] / "flows" / "default.yaml"
TZ = ZoneInfo("Asia/Shanghai")


def _flow(text: str):
    templates = {f"notify/{p.stem}" for p in (DEFAULT.parent.parent / "bot" / "templates" / "notify").glob("*.j2")}
    return load_flow_text(text, source="t.yaml", known_categories=category_ids(), known_templates=templates)


def test_migrating_recomputes_the_deadline_and_the_timers():
    text = DEFAULT.read_text(encoding="utf-8")
    old_flow = _flow(text)
    new_flow = _flow(text.replace("    deadline: 1 working day", "    deadline: 3 working days", 1))
    start = datetime(2026, 11, 24, 10, 0, tzinfo=TZ)
    state = new_ticket(old_flow, category="sanitation", now=start, grid_code="G01").state
    moved = migrate(new_flow, state, datetime(2026, 11, 24, 11, 0, tzinfo=TZ))
    assert moved.state.flow_version == new_flow.version
    assert moved.state.deadline == new_flow.calendar.add(state.deadline_from, new_flow.colours["red"].deadline)
    assert moved.state.deadline > state.deadline
    kinds = [a.kind for a in moved.actions]
    assert "cancel_timers" in kinds
    scheduled = {dict(a.params)["timer"] for a in moved.actions if a.kind == "schedule"}
    assert scheduled == {t.id for t in pending_timers(new_flow, moved.state)}


def test_a_closed_ticket_is_not_migrated():
    flow = _flow(DEFAULT.read_text(encoding="utf-8"))
    state = new_ticket(flow, category="sanitation", now=datetime(2026, 11, 24, 10, 0, tzinfo=TZ), grid_code="G01").state
    closed = dataclasses.replace(state, status="closed")
    with pytest.raises(TransitionRefused):
        migrate(flow, closed, datetime(2026, 11, 24, 11, 0, tzinfo=TZ))
