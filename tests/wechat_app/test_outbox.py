"""The delivery worker: the customer-service quota, backoff, dead letters and their retry,
idempotency across a crash between send and ack, robots that merge instead of dropping."""

from __future__ import annotations

import argparse
import asyncio
import json

import pytest
from redis.asyncio import Redis

from bot import cli_outbox
from bot.app import SERVICES
from bot.outbox import Outbox, Outgoing, build_outbox, dead_letters, deliveries, retry_dead
from bot.tickets import Notification
from tests.wechat_app.conftest import TEMPLATE_ID, Service


async def notify(service: Service, number: str, template: str, audience: str) -> None:
    """What bot/tickets.py writes with a ticket change."""
    services = service.client.app[SERVICES]
    note = Notification(ticket=number, template=template, audience=audience, rule="test")
    await services.redis.xadd(services.keys.outbox(), note.to_fields())


async def statuses(service: Service, number: str) -> list[tuple[str, str, str]]:
    services = service.client.app[SERVICES]
    return [(s.audience, s.channel, s.status) for s in await deliveries(services.redis, services.keys, number)]


async def test_beyond_five_customer_service_messages_status_changes_go_as_template_messages(service: Service):
    number = await service.report("o-quota")
    await service.outbox.run_once()
    for _ in range(7):
        await notify(service, number, "notify/progress", "resident")
    await service.outbox.run_once()
    custom = service.fake.sent_to("mp_custom")
    templates = service.fake.sent_to("mp_template")
    assert len(custom) == 5 and len(templates) == 2
    assert templates[0].template_id == TEMPLATE_ID
    assert dict(templates[0].data)["keyword1"] == number
    # the follower writes again: a new window of five
    await service.resident("o-quota", "谢谢", 3100)
    await notify(service, number, "notify/progress", "resident")
    await service.outbox.run_once()
    assert len(service.fake.sent_to("mp_custom")) == 6


async def test_wechat_refusing_the_customer_service_message_falls_back_to_a_template(service: Service):
    number = await service.report("o-45015")
    await service.outbox.run_once()
    service.fake.fail_next(1, errcode=45015, path="/cgi-bin/message/custom/send")
    await notify(service, number, "notify/accepted", "resident")
    await service.outbox.run_once()
    assert service.fake.sent_to("mp_custom") == []
    assert [m.to for m in service.fake.sent_to("mp_template")] == [("o-45015",)]
    assert ("resident", "wechat_mp", "sent_template") in await statuses(service, number)


async def test_failures_back_off_then_go_dead_and_an_admin_retry_delivers(service: Service):
    number = await service.report("o-dead")
    await service.outbox.run_once()
    outbox = service.outbox
    sent_before = len(service.fake.sent_to("wecom_app"))
    service.fake.fail_next(6, errcode=45009, path="/cgi-bin/message/send")  # WeCom: too many calls, six times
    await notify(service, number, "notify/reminder_not_accepted", "assignee")
    await outbox.run_once()
    assert ("assignee", "wecom_card", "retrying") in await statuses(service, number)
    await outbox.run_once()  # not due yet: nothing is tried
    tries = service.fake.calls.count("/cgi-bin/message/send")
    for attempt in range(1, 6):
        service.clock.advance(seconds=outbox.backoff(attempt))
        await outbox.run_once()
    assert service.fake.calls.count("/cgi-bin/message/send") == tries + 5
    services = service.client.app[SERVICES]
    dead = await dead_letters(services.redis, services.keys)
    assert len(dead) == 1 and dead[0].delivery.ticket == number and "45009" in dead[0].error
    assert ("assignee", "wecom_card", "dead") in await statuses(service, number)

    # WeCom has recovered (the six injected failures are used up); the admin retries
    assert await retry_dead(services.redis, services.keys, dead[0].delivery.id, service.clock())
    await outbox.run_once()
    assert len(service.fake.sent_to("wecom_app")) == sent_before + 1
    assert await dead_letters(services.redis, services.keys) == []
    assert ("assignee", "wecom_card", "sent") in await statuses(service, number)


class CrashAfterSending:
    """Wraps a real deliverer: the message goes out, then the process dies (before the ack)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.per_minute = 0

    async def deliver(self, recipient: str, message: Outgoing) -> str:
        await self.inner.deliver(recipient, message)
        raise asyncio.CancelledError  # the process is killed: nothing after the send runs


async def test_a_crash_between_send_and_ack_does_not_notify_twice(service: Service):
    services = service.client.app[SERVICES]
    number = await service.report("o-crash")
    await service.outbox.run_once()
    real = service.outbox._deliverers["wechat_mp"]
    first = build_outbox(services.redis, services.keys, services.tickets, services.directory, services.replies,
                         services.config.outbox, services.config.wecom, service.clock)
    first.register("wechat_mp", CrashAfterSending(real))
    await notify(service, number, "notify/accepted", "resident")
    with pytest.raises(asyncio.CancelledError):
        await first.run_once()
    assert len(service.fake.sent_to("mp_custom")) == 1
    pending = await services.redis.xpending(services.keys.outbox(), "delivery")
    assert pending["pending"] == 1  # never acknowledged

    # another process takes the stale entry over
    second = Outbox(services.redis, services.keys, services.tickets, first._audiences, first._texts,
                    services.config.outbox, service.clock, consumer="second", claim_idle_ms=0)
    second.register("wechat_mp", real)
    await second.run_once()
    assert len(service.fake.sent_to("mp_custom")) == 1  # not sent again
    pending = await services.redis.xpending(services.keys.outbox(), "delivery")
    assert pending["pending"] == 0


async def test_a_robot_over_twenty_a_minute_queues_and_merges_and_drops_nothing(service: Service):
    service.fake.robot_per_minute = 1000  # the fake counts real seconds; the service counts its own clock
    number = await service.report("o-robot")
    await service.outbox.run_once()
    group = [m for m in service.fake.sent_to("wecom_robot")]
    assert len(group) == 1 and number in group[0].content  # the new task, announced in the grid's group
    for _ in range(24):
        await notify(service, number, "notify/yellow_card", "grid_group")
        await service.outbox.run_once()  # one at a time: each would go alone if it could
    group = service.fake.sent_to("wecom_robot")
    assert len(group) == 20  # the robot's minute is full
    queued = [s for s in await statuses(service, number) if s[1] == "robot" and s[2] == "queued"]
    assert len(queued) == 5
    service.clock.advance(seconds=61)
    await service.outbox.run_once()
    group = service.fake.sent_to("wecom_robot")
    assert len(group) == 21
    assert group[-1].content.count(number) == 5  # the five waiting ones, merged into one message
    assert all(s[2] == "sent" for s in await statuses(service, number) if s[1] == "robot")
    # nothing personal in the group: no phone, no address, no description
    for message in group:
        assert "5678" not in message.content and "金桥小区" not in message.content and "垃圾" not in message.content


def test_admin_lists_and_retries_dead_letters_from_the_command_line(wechat_env, monkeypatch, capsys):
    for name, value in wechat_env.items():
        monkeypatch.setenv(name, value)

    async def bury() -> tuple[str, str]:
        from bot.config import load_config
        from bot.keys import Keys

        config = load_config()
        redis = Redis.from_url(config.redis.url, decode_responses=True)
        keys = Keys(config.redis.key_prefix)
        delivery_id = "1-0/wecom_text/abc"
        dead = {"delivery": {"id": delivery_id, "entry": "1-0", "ticket": "WG202611240001",
                             "template": "notify/returned", "audience": "dispatcher", "channel": "wecom_text",
                             "recipient": "Dispatcher01", "rule": "tell_returned", "attempt": 6},
                "error": "RetryLater: errcode 45009", "at": "2026-11-24T10:00:00+08:00"}
        await redis.hset(keys.outbox_dead(), delivery_id, json.dumps(dead))
        await redis.aclose()
        return delivery_id, config.redis.key_prefix

    def gridbot(*argv: str) -> int:  # `gridbot outbox ...` (bot/cli.py registers the same subcommands)
        parser = argparse.ArgumentParser(prog="gridbot")
        cli_outbox.register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        return int(args.func(args))

    delivery_id, prefix = asyncio.run(bury())
    assert gridbot("outbox", "dead") == 0
    listed = capsys.readouterr().out
    assert delivery_id in listed and "WG202611240001" in listed and "45009" in listed
    assert gridbot("outbox", "retry", delivery_id) == 0
    assert "queued again" in capsys.readouterr().out
    assert gridbot("outbox", "dead") == 0
    assert "no dead letters" in capsys.readouterr().out

    async def cleanup() -> int:
        redis = Redis.from_url(wechat_env["GRIDBOT_REDIS__URL"], decode_responses=True)
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        retry = await redis.zcard(f"{prefix}outbox-retry")
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        return retry

    assert asyncio.run(cleanup()) == 1


async def test_two_processes_flushing_one_robot_queue_send_each_message_once(service: Service):
    import aiohttp

    from bot.wechat import QueuedText, RobotQueue
    from integrations.wechat import WecomRobot

    services = service.client.app[SERVICES]
    key = services.directory.grid("500199001001-01").robot_key
    async with aiohttp.ClientSession() as one, aiohttp.ClientSession() as two:
        robots = [
            RobotQueue(WecomRobot(session, service.fake.base_url), services.redis, services.keys,
                       service.outbox.rate, service.outbox, 20)
            for session in (one, two)
        ]
        for i in range(30):
            await robots[0].enqueue(key, QueuedText(f"消息{i:02d}：" + "汇" * 60))
        service.fake.slow_next(1, 0.2, path="/cgi-bin/webhook/send")  # the first send is slow
        await asyncio.gather(robots[0].flush(), robots[1].flush())
        await asyncio.gather(robots[0].flush(), robots[1].flush())
    texts = "\n".join(m.content for m in service.fake.sent_to("wecom_robot"))
    assert [texts.count(f"消息{i:02d}：") for i in range(30)] == [1] * 30


async def test_a_menu_click_opens_three_customer_service_messages_for_a_minute(service: Service, redis):
    from bot.wechat import CustomerServiceWindow

    services = service.client.app[SERVICES]
    window = CustomerServiceWindow(services.redis, services.keys)
    await window.opened_by_event("o-click")
    assert [bool(await window.take("o-click")) for _ in range(4)] == [True, True, True, False]
    assert 0 < await redis.ttl(services.keys.wechat_cs_event_window("o-click")) <= 60
    # a message opens the 48-hour window of five; a later click adds its three, shrinks nothing
    await window.opened("o-click")
    await window.opened_by_event("o-click")
    assert [bool(await window.take("o-click")) for _ in range(9)] == [True] * 8 + [False]


async def test_a_new_process_forgets_the_consumers_of_processes_gone_that_hold_nothing(service: Service):
    services = service.client.app[SERVICES]
    number = await service.report("o-consumers")
    stream = services.keys.outbox()
    await service.outbox.run_once()  # the app's own consumer, holding nothing now
    await notify(service, number, "notify/accepted", "resident")
    await services.redis.xreadgroup("delivery", "crashed-holding-one", {stream: ">"})  # took one, never acked
    await asyncio.sleep(0.05)

    app = service.outbox
    restarted = Outbox(services.redis, services.keys, services.tickets, app._audiences, app._texts,
                       services.config.outbox, service.clock, consumer="restarted", gone_idle_ms=10)
    await restarted.run_once()
    names = {c["name"] for c in await services.redis.xinfo_consumers(stream, "delivery")}
    assert "crashed-holding-one" in names  # its entry must still be taken over
    assert service.outbox._consumer not in names  # idle, holding nothing: forgotten
