"""Grid workers find their tickets through the per-grid index: a ticket dispatched to another
grid is that grid's (its workers' bare commands, its digest), and tickets stored before the
index are found after a restart."""

from __future__ import annotations

import dataclasses

from bot.app import SERVICES, create_app
from flows import Event, GridDirectory
from tests.test_grid_index import GRID_ONE, GRID_TWO, forget_the_grid_index
from tests.wechat_app.conftest import DIRECTORY, Service


def robot_of(grid_code: str) -> str | None:
    grid = GridDirectory.load(DIRECTORY).grid(grid_code)
    return grid.robot_key if grid is not None else None


async def test_a_ticket_dispatched_to_another_grid_is_that_grids_for_a_bare_command_and_the_digest(
    service: Service,
):
    services = service.client.app[SERVICES]
    number = await service.report("o-reroute")
    await service.outbox.run_once()
    assert "已退回" in await service.worker("ZhangFang00", f"退回 {number} 是隔壁龙湖花园的", 7001)
    before = len(service.fake.sent_to("wecom_app"))
    await services.tickets.act(number, Event(kind="dispatch", actor="dispatcher", at=service.clock(),
                                             data=(("grid", GRID_TWO),), by="li.ming"))
    await service.outbox.run_once()
    cards = [m for m in service.fake.sent_to("wecom_app")[before:] if m.msgtype == "textcard" and number in m.url]
    assert {user for m in cards for user in m.to} == {"LiuYang01", "XuJun01"}  # the new grid's workers

    assert "没有可以直接接单的工单" in await service.worker("ZhangFang00", "接单", 7002)
    assert "已接单" in await service.worker("LiuYang01", "接单", 7003)
    ticket = await services.tickets.store.get(number)
    assert (ticket.grid_code, ticket.status, ticket.flow.assignee) == (GRID_TWO, "accepted", "LiuYang01")

    service.clock.advance(days=3)  # well past the red deadline
    await service.outbox.run_once()
    digests = [m for m in service.fake.sent_to("wecom_robot") if "超期工单日报" in m.content]
    assert [m.robot_key for m in digests if number in m.content] == [robot_of(GRID_TWO)]
    assert not [m for m in digests if m.robot_key == robot_of(GRID_ONE)]


async def test_after_a_restart_a_bare_command_finds_a_ticket_stored_before_the_grid_index(
    service: Service, aiohttp_client, wechat_config, nlu
):
    number = await service.report("o-before-index")
    await service.outbox.run_once()
    await forget_the_grid_index(service.client.app[SERVICES])

    restarted = dataclasses.replace(
        service, client=await aiohttp_client(create_app(wechat_config, clock=service.clock, nlu=nlu))
    )
    answer = await restarted.worker("ZhangFang00", "接单", 7101)
    assert "已接单" in answer and number in answer
    assert await restarted.client.app[SERVICES].tickets.store.numbers_in_grid(GRID_ONE, ["accepted"]) == {number}


async def test_a_ticket_dispatched_to_another_grid_leaves_the_old_grids_assignee_behind(service: Service):
    services = service.client.app[SERVICES]
    number = await service.report("o-reroute-held")
    await service.outbox.run_once()
    await services.tickets.act(number, Event(kind="assign", actor="dispatcher", at=service.clock(),
                                             data=(("worker", "ZhangFang00"),), by="li.ming"))
    await service.outbox.run_once()
    before = len(service.fake.sent_to("wecom_app"))
    moved = await services.tickets.act(number, Event(kind="dispatch", actor="dispatcher", at=service.clock(),
                                                     data=(("grid", GRID_TWO),), by="li.ming"))
    assert (moved.grid_code, moved.flow.assignee) == (GRID_TWO, None)
    await service.outbox.run_once()
    cards = [m for m in service.fake.sent_to("wecom_app")[before:] if m.msgtype == "textcard" and number in m.url]
    assert {user for m in cards for user in m.to} == {"LiuYang01", "XuJun01"}  # not the old grid's ZhangFang00
    assert "已接单" in await service.worker("LiuYang01", "接单", 7101)
