"""Fixtures for the flow engine: the shipped default flow, checked against the real category
ids and the notification template names it uses. No Redis, no clock: times are literals."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flows import Flow, load_flow
from nlu.taxonomy import category_ids

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FLOW = ROOT / "flows" / "default.yaml"
SAMPLE_DIRECTORY = ROOT / "flows" / "directory" / "sample.yaml"
TZ = ZoneInfo("Asia/Shanghai")

# Every notification template flows/default.yaml names: bot/templates/notify/<name>.j2.
DEFAULT_TEMPLATES = frozenset(
    f"notify/{name}"
    for name in (
        "task_assigned",
        "task_copied",
        "reminder_not_accepted",
        "accepted",
        "progress",
        "reminder_progress",
        "yellow_card",
        "red_card",
        "escalated",
        "resolved_please_rate",
        "reopened",
        "closed",
        "returned",
    )
)


def at(text: str) -> datetime:
    """'2026-09-30 16:00' in China Standard Time."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.fixture(scope="session")
def categories() -> tuple[str, ...]:
    return category_ids()


@pytest.fixture(scope="session")
def default_text() -> str:
    return DEFAULT_FLOW.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def flow(categories: tuple[str, ...]) -> Flow:
    return load_flow(DEFAULT_FLOW, known_categories=categories, known_templates=DEFAULT_TEMPLATES)
