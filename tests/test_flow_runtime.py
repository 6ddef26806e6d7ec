"""Flows at run time: timers fire once across processes and restarts; versions apply live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from bot.app import Services, build_services, follow_flow_changes, reload_flow_file
from bot.config import Config
from bot.ticketing import ReportDraft
from bot.timers import TimerRunner
from flows import FlowError

DRAFT = ReportDraft(description="小区门口垃圾好几天没人清理了", category="sanitation", location_text="阳光花园北门")


@pytest.fixture
async def two_processes(config: Config, clock, nlu, redis: Redis) -> AsyncIterator[tuple[Services, Services]]:
    """Two service instances sharing one Redis, as two processes would."""
    a = await build_services(config, clock=clock, nlu=nlu)
    b = await build_services(config, clock=clock, nlu=nlu)
    yield a, b
    await a.redis.aclose()
    await b.redis.aclose()


def runner(services: Services) -> TimerRunner:
    return TimerRunner(services.redis, services.keys, services.tickets, services.clock)


async def outbox(services: Services, number: str) -> list[tuple[str, str]]:
    entries = await services.redis.xrange(services.keys.outbox())
    return [(f["template"], f["audience"]) for _, f in entries if f["ticket"] == number]


async def test_two_processes_show_one_yellow_card(two_processes, clock):
    a, b = two_processes
    ticket = await a.tickets.open("rest", "u1", DRAFT, clock())
    assert ticket.flow.colour == "red" and ticket.flow.card is None
    clock.now = ticket.flow.deadline + timedelta(minutes=1)
    fired_a, fired_b = await asyncio.gather(runner(a).run_once(), runner(b).run_once())
    after = await a.tickets.store.get(ticket.number)
    assert after.flow.card == "yellow"
    assert sum(1 for e in after.timeline if e.kind == "card") == 1
    yellow = [n for n in await outbox(a, ticket.number) if n[0] == "notify/yellow_card"]
    assert sorted(yellow) == sorted(set(yellow)) and len(yellow) >= 1  # each audience told once
    assert fired_a + fired_b >= 1
    # nothing is left to fire at this moment
    assert await runner(a).run_once() == 0 and await runner(b).run_once() == 0


async def test_overdue_timers_fire_once_after_a_restart(config, clock, nlu, redis):
    first = await build_services(config, clock=clock, nlu=nlu)
    ticket = await first.tickets.open("rest", "u2", DRAFT, clock())
    await first.close()  # the service goes down ...
    clock.now = ticket.flow.deadline + timedelta(days=5)  # ... and stays down past both cards
    second = await build_services(config, clock=clock, nlu=nlu)
    try:
        assert await runner(second).run_once() >= 1
        after = await second.tickets.store.get(ticket.number)
        assert after.flow.card == "red"
        assert sum(1 for e in after.timeline if e.kind == "card") == 2  # yellow, then red
        assert await runner(second).run_once() == 0
        again = await second.tickets.store.get(ticket.number)
        assert again.timeline == after.timeline
    finally:
        await second.close()


async def test_a_new_flow_applies_without_restart_and_open_tickets_keep_theirs(two_processes, clock):
    a, b = two_processes
    old = await a.tickets.open("rest", "u3", DRAFT, clock())
    watcher = asyncio.create_task(follow_flow_changes(b))
    try:
        text = a.config.path(a.config.flows.file).read_text(encoding="utf-8")
        slower = text.replace("    deadline: 1 working day", "    deadline: 3 working days", 1)
        assert slower != text
        applied = await a.flow_versions.apply(slower, author="admin", source="test", now=clock())
        for _ in range(200):  # the other process hears of it through pub/sub
            if b.flows.flow.version == applied.version:
                break
            await asyncio.sleep(0.01)
        assert b.flows.flow.version == applied.version
        new = await b.tickets.open("rest", "u4", DRAFT, clock())
        assert new.flow.flow_version == applied.version != old.flow.flow_version
        assert new.flow.deadline > old.flow.deadline
        kept = await b.tickets.store.get(old.number)
        assert kept.flow.deadline == old.flow.deadline
        history = await a.flow_versions.history()
        assert [h.version for h in history][:2] == [applied.version, old.flow.flow_version]
        assert history[0].active and not history[1].active
    finally:
        watcher.cancel()


async def test_an_invalid_flow_is_refused_and_the_running_one_stays(two_processes, clock):
    a, _ = two_processes
    before = await a.flow_versions.current_version()
    broken = "levels: [grid, street\ncolours: {}\n"
    with pytest.raises(FlowError) as refused:
        await a.flow_versions.apply(broken, author="admin", source="edited.yaml", now=clock())
    assert "edited.yaml:" in str(refused.value)
    assert await a.flow_versions.current_version() == before
    unknown = (
        a.config.path(a.config.flows.file)
        .read_text(encoding="utf-8")
        .replace("sanitation: {colour: red}", "sanitation: {colour: purple}")
    )
    with pytest.raises(FlowError, match="purple"):
        await a.flow_versions.apply(unknown, author="admin", source="edited.yaml", now=clock())
    assert await a.flow_versions.current_version() == before


async def test_rollback_to_an_earlier_version(two_processes, clock):
    a, _ = two_processes
    original = await a.flow_versions.current_version()
    text = a.config.path(a.config.flows.file).read_text(encoding="utf-8")
    await a.flow_versions.apply(text + "\n# tweak\n", author="admin", source="test", now=clock())
    assert await a.flow_versions.current_version() != original
    await a.flow_versions.activate(original, author="admin", now=clock())
    assert await a.flow_versions.current_version() == original


async def test_sighup_applies_the_edited_file_and_refuses_a_broken_one(config, clock, nlu, redis, tmp_path):
    flow_file = tmp_path / "flow.yaml"
    text = config.path(config.flows.file).read_text(encoding="utf-8")
    flow_file.write_text(text, encoding="utf-8")
    cfg = config.replace(flows=config.flows.__class__(file=str(flow_file), directory=config.flows.directory))
    services = await build_services(cfg, clock=clock, nlu=nlu)
    try:
        started = services.flows.flow.version
        flow_file.write_text(text.replace("deadline: 5 working days", "deadline: 4 working days"), encoding="utf-8")
        await reload_flow_file(services)
        changed = services.flows.flow.version
        assert changed != started
        flow_file.write_text("colours: [", encoding="utf-8")
        await reload_flow_file(services)
        assert services.flows.flow.version == changed
    finally:
        await services.close()
