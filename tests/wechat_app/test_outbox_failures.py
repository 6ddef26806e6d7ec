"""What goes wrong in the delivery worker stays with the one notification it went wrong for: a
ticket record that cannot be read, a template an admin broke, a malformed retry, a worker killed
in mid-send. That one is dead-lettered (or listed as uncertain) for an admin, everything else
goes on."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot import cli_outbox
from bot.app import SERVICES
from bot.outbox import RETRY_LEASE_SECONDS, Delivery, MaybeDelivered, Outbox, Outgoing, dead_letters, retry_dead
from tests.conftest import TZ
from tests.wechat_app.conftest import Service
from tests.wechat_app.test_outbox import CrashAfterSending, notify, statuses


def another_worker(service: Service, name: str, **replacing: object) -> Outbox:
    """A second process's outbox, with the app's deliverers except those given."""
    services = service.client.app[SERVICES]
    ours = service.outbox
    other = Outbox(services.redis, services.keys, services.tickets, ours._audiences, ours._texts,
                   services.config.outbox, service.clock, consumer=name, claim_idle_ms=0)
    for channel, deliverer in {**ours._deliverers, **replacing}.items():
        other.register(channel, deliverer)  # type: ignore[arg-type]
    return other


async def test_a_ticket_record_that_cannot_be_read_does_not_stop_the_other_notifications(service: Service):
    services = service.client.app[SERVICES]
    number = await service.report("o-poison")
    await service.outbox.run_once()
    before = len(service.fake.sent_to("mp_custom"))
    await services.redis.set(services.keys.ticket("WG000BAD"), '{"number": "WG000BAD"}')  # an old, partial record
    await notify(service, "WG000BAD", "notify/progress", "resident")
    await notify(service, number, "notify/progress", "resident")
    await service.outbox.run_once()
    await notify(service, number, "notify/accepted", "resident")
    await another_worker(service, "second").run_once()  # would take over anything left unacknowledged
    assert len(service.fake.sent_to("mp_custom")) == before + 2
    [dead] = await dead_letters(services.redis, services.keys)
    assert dead.delivery.ticket == "WG000BAD" and "KeyError" in dead.error
    assert (await services.redis.xpending(services.keys.outbox(), "delivery"))["pending"] == 0


async def test_a_missing_template_is_dead_lettered_with_its_error_and_sent_once_an_admin_adds_it(
    service: Service, tmp_path: Path
):
    services = service.client.app[SERVICES]
    number = await service.report("o-template")
    await service.outbox.run_once()
    before = len(service.fake.sent_to("mp_custom"))
    await notify(service, number, "notify/site_visit", "resident")  # a rule names a template nobody wrote
    await notify(service, number, "notify/progress", "resident")
    await service.outbox.run_once()
    assert len(service.fake.sent_to("mp_custom")) == before + 1
    [dead] = await dead_letters(services.redis, services.keys)
    assert dead.delivery.template == "notify/site_visit" and "site_visit" in dead.error
    assert ("resident", "wechat_mp", "dead") in await statuses(service, number)

    # the admin writes it (the console's template editor keeps overrides here) and retries
    override = tmp_path / "templates" / "notify" / "site_visit.j2"
    override.parent.mkdir(parents=True)
    override.write_text("【上门核查】工单 {{ t.number }}\n网格员将上门核查。", encoding="utf-8")
    assert await retry_dead(services.redis, services.keys, dead.delivery.id, service.clock())
    await service.outbox.run_once()
    assert service.fake.sent_to("mp_custom")[-1].content.startswith(f"【上门核查】工单 {number}")
    assert await dead_letters(services.redis, services.keys) == []


async def test_a_malformed_retry_is_dead_lettered_and_the_good_one_after_it_is_still_sent(service: Service):
    services = service.client.app[SERVICES]
    number = await service.report("o-retryset")
    await service.outbox.run_once()
    before = len(service.fake.sent_to("mp_custom"))
    now = service.clock().timestamp()
    good = Delivery(id="9-0/wechat_mp/x", entry="9-0", ticket=number, template="notify/progress",
                    audience="resident", channel="wechat_mp", recipient="o-retryset", attempt=1)
    await services.redis.zadd(services.keys.outbox_retry(), {'{"id": "8-0/sms/13812345678"': now - 10,
                                                             good.to_json(): now - 5})
    await service.outbox.run_once()
    assert len(service.fake.sent_to("mp_custom")) == before + 1
    [dead] = await dead_letters(services.redis, services.keys)
    assert "malformed" in dead.error and "13812345678" not in dead.error  # shown to admins: masked
    assert await services.redis.zcard(services.keys.outbox_retry()) == 0


async def test_a_worker_killed_in_the_middle_of_the_retries_leaves_the_rest_to_the_next(service: Service):
    services = service.client.app[SERVICES]
    number = await service.report("o-crashbatch")
    await service.outbox.run_once()
    before = len(service.fake.sent_to("wecom_app"))
    service.fake.fail_next(3, errcode=45009, path="/cgi-bin/message/send")  # WeCom: too many calls
    for _ in range(3):
        await notify(service, number, "notify/returned", "dispatcher")
    await service.outbox.run_once()
    assert [s[2] for s in await statuses(service, number) if s[0] == "dispatcher"] == ["retrying"] * 3

    real = service.outbox._deliverers["wecom_text"]

    class KilledOnTheSecond:
        per_minute = 0
        calls = 0

        async def deliver(self, recipient: str, message: Outgoing) -> str:
            self.calls += 1
            if self.calls == 2:
                raise asyncio.CancelledError  # the process is killed while sending #2
            return await real.deliver(recipient, message)

    service.clock.advance(seconds=service.outbox.backoff(1))
    with pytest.raises(asyncio.CancelledError):
        await another_worker(service, "killed", wecom_text=KilledOnTheSecond()).run_once()
    await service.outbox.run_once()  # the third is tried at once
    assert len(service.fake.sent_to("wecom_app")) == before + 2
    # the second comes back when the dead worker's lease runs out: nobody knows if it left
    service.clock.advance(seconds=RETRY_LEASE_SECONDS + 1)
    await service.outbox.run_once()
    assert sorted(s[2] for s in await statuses(service, number) if s[0] == "dispatcher") == \
        ["sent", "sent", "uncertain"]
    [uncertain] = await dead_letters(services.redis, services.keys)
    assert uncertain.uncertain and uncertain.delivery.channel == "wecom_text"


class AnswerLost:
    """Wraps a real deliverer: the message goes out, the answer never comes back."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.per_minute = 0

    async def deliver(self, recipient: str, message: Outgoing) -> str:
        await self.inner.deliver(recipient, message)
        raise MaybeDelivered("/cgi-bin/message/custom/send: TimeoutError")


async def test_an_uncertain_delivery_is_listed_for_the_admin_who_may_send_it_again(service: Service, capsys):
    services = service.client.app[SERVICES]
    number = await service.report("o-uncertain")
    await service.outbox.run_once()
    real = service.outbox._deliverers["wechat_mp"]
    service.outbox.register("wechat_mp", AnswerLost(real))
    await notify(service, number, "notify/accepted", "resident")
    await service.outbox.run_once()
    service.outbox.register("wechat_mp", real)
    assert len(service.fake.sent_to("mp_custom")) == 1
    assert ("resident", "wechat_mp", "uncertain") in await statuses(service, number)

    await cli_outbox._dead(services.redis, services.keys)  # `gridbot outbox dead`
    [line] = capsys.readouterr().out.splitlines()
    delivery_id, _at, ticket, template, *_rest, error, state = line.split("\t")
    assert (ticket, template) == (number, "notify/accepted") and "TimeoutError" in error
    assert "uncertain" in state and "twice" in state
    # `--all` re-sends only what surely did not arrive; by its id the admin decides
    await cli_outbox._retry(services.redis, services.keys, [], everything=True)
    assert "uncertain" in capsys.readouterr().out
    await service.outbox.run_once()
    assert len(service.fake.sent_to("mp_custom")) == 1
    assert await cli_outbox._retry(services.redis, services.keys, [delivery_id], everything=False) == 0
    service.clock.now = max(service.clock.now, datetime.now(TZ) + timedelta(seconds=1))  # the CLI's clock is real
    await service.outbox.run_once()
    assert len(service.fake.sent_to("mp_custom")) == 2
    assert ("resident", "wechat_mp", "sent") in await statuses(service, number)
    assert await dead_letters(services.redis, services.keys) == []


async def test_a_delivery_a_dead_worker_left_behind_takes_no_rate_slot_from_the_next(service: Service):
    number = await service.report("o-slot")
    await service.outbox.run_once()
    before = len(service.fake.sent_to("wecom_app"))
    real = service.outbox._deliverers["wecom_text"]
    real.per_minute = 2  # WeCom app messages, all recipients together
    crashing = CrashAfterSending(real)
    crashing.per_minute = 2
    first = another_worker(service, "first", wecom_text=crashing)
    await notify(service, number, "notify/returned", "dispatcher")
    with pytest.raises(asyncio.CancelledError):
        await first.run_once()
    await notify(service, number, "notify/returned", "dispatcher")
    await another_worker(service, "second").run_once()  # takes over the first's, then reads the next
    assert len(service.fake.sent_to("wecom_app")) == before + 2  # the second went within the minute
    assert "sent" in [s[2] for s in await statuses(service, number) if s[0] == "dispatcher"]


async def test_the_dead_letter_list_masks_the_phone_numbers_an_error_carries(service: Service, capsys):
    services = service.client.app[SERVICES]
    sms = Delivery(id="1-0/sms/abc", entry="1-0", ticket="WG202611240001", template="notify/accepted",
                   audience="resident", channel="sms", recipient="13812345678")
    refused = 'gateway answered 400: {"error": "13812345678 is on the operator blocklist"}'
    await services.redis.hset(services.keys.outbox_dead(), sms.id, json.dumps(
        {"delivery": json.loads(sms.to_json()), "error": refused, "at": service.clock().isoformat()}))
    await cli_outbox._dead(services.redis, services.keys)  # `gridbot outbox dead`
    listed = capsys.readouterr().out
    assert "13812345678" not in listed and listed.count("138****5678") == 2  # recipient and error
