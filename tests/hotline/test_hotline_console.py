"""The hotline console's endpoints behind the console login: suggest, file for a caller, look up."""

from __future__ import annotations

from bot.admin.audit import AuditLog
from bot.app import SERVICES
from bot.outbox import OUTBOX
from bot.sms import SMS
from tests.admin.helpers import csrf_of, logged_in
from tests.sms.conftest import Texter, report, resolve

CALLER = "13912345678"
SAID = "幸福小区3栋楼下垃圾三天没人收了，臭得很"


async def open_console(client, redis, key_prefix, role: str = "dispatcher") -> str:
    await logged_in(client, redis, key_prefix, role)
    page = await client.get("/admin/hotline/")
    assert page.status == 200, await page.text()
    return csrf_of(await page.text())


async def file(client, csrf: str, **fields: str):
    data = {"csrf": csrf, "phone": CALLER, "description": SAID, "address": "幸福小区3栋", "category": "sanitation"}
    return await client.post("/admin/hotline/tickets", data={**data, **fields})


async def test_the_console_needs_a_login(hotline_client) -> None:
    resp = await hotline_client.get("/admin/hotline/", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/admin/login")
    resp = await hotline_client.post("/admin/hotline/tickets", data={"phone": CALLER, "description": SAID})
    assert resp.status == 401
    services = hotline_client.server.app[SERVICES]
    assert await services.tickets.store.numbers_by_reporter("hotline", CALLER, 5) == []


async def test_a_viewer_may_not_take_calls(hotline_client, redis, key_prefix) -> None:
    await logged_in(hotline_client, redis, key_prefix, "viewer")
    resp = await hotline_client.get("/admin/hotline/")
    assert resp.status == 403


async def test_a_post_without_the_csrf_token_changes_nothing(hotline_client, redis, key_prefix) -> None:
    await open_console(hotline_client, redis, key_prefix)
    resp = await file(hotline_client, csrf="forged")
    assert resp.status == 403
    services = hotline_client.server.app[SERVICES]
    assert await services.tickets.store.numbers_by_reporter("hotline", CALLER, 5) == []


async def test_suggestions_category_colour_grid_and_duplicates(hotline_client, redis, key_prefix, sms_gateway) -> None:
    earlier = await report(Texter(hotline_client, sms_gateway, "13700001111"))
    csrf = await open_console(hotline_client, redis, key_prefix)
    resp = await hotline_client.post("/admin/hotline/suggest", data={"csrf": csrf, "text": SAID, "address": ""})
    assert resp.status == 200, await resp.text()
    s = await resp.json()
    assert s["category"] == "sanitation" and s["category_name"] == "环境卫生"
    assert s["colour_name"] and s["emergency"] is False
    assert s["address"]  # the NLU found the place in what the caller said
    assert [d["number"] for d in s["duplicates"]] == [earlier]

    resp = await hotline_client.post("/admin/hotline/suggest", data={"csrf": csrf, "text": "楼道里着火了，好多烟"})
    fire = await resp.json()
    assert fire["emergency"] is True and fire["colour"] == "red"


async def test_filing_for_a_caller_opens_a_hotline_ticket_and_texts_the_number(
    hotline_client, redis, key_prefix, sms_gateway
) -> None:
    csrf = await open_console(hotline_client, redis, key_prefix)
    resp = await file(hotline_client, csrf)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    number = body["ticket"]["number"]
    assert body["sms"] == "sent"
    services = hotline_client.server.app[SERVICES]
    ticket = await services.tickets.store.get(number)
    assert ticket is not None
    assert (ticket.channel, ticket.reporter_id, ticket.phone, ticket.flow.category) == (
        "hotline",
        CALLER,
        CALLER,
        "sanitation",
    )
    await hotline_client.server.app[OUTBOX].run_once()  # the SMS was written with the ticket
    (sms,) = sms_gateway.to(CALLER)
    assert sms.startswith(f"工单号{number}")

    # the caller texts the number back, or 查询, and reads where it stands
    caller = Texter(hotline_client, sms_gateway, CALLER)
    (status,) = await caller.send(number)
    assert status.startswith(f"工单{number}")
    (listing,) = await caller.send("查询")
    assert listing.startswith(number)


async def test_the_caller_rates_a_hotline_ticket_by_replying_a_digit(
    hotline_client, redis, key_prefix, sms_gateway
) -> None:
    csrf = await open_console(hotline_client, redis, key_prefix)
    number = (await (await file(hotline_client, csrf)).json())["ticket"]["number"]
    services = hotline_client.server.app[SERVICES]
    await resolve(services, number)
    (thanks,) = await Texter(hotline_client, sms_gateway, CALLER).send("4")
    assert thanks.startswith(f"工单{number}") and "4分" in thanks
    ticket = await services.tickets.store.get(number)
    assert ticket is not None and ticket.status == "closed"


async def test_a_caller_who_opted_out_gets_no_sms(hotline_client, redis, key_prefix, sms_gateway) -> None:
    await Texter(hotline_client, sms_gateway, CALLER).send("TD")
    csrf = await open_console(hotline_client, redis, key_prefix)
    body = await (await file(hotline_client, csrf)).json()
    assert body["sms"] == "opted_out"
    await hotline_client.server.app[OUTBOX].run_once()
    await hotline_client.server.app[SMS].drain()
    assert len(sms_gateway.to(CALLER)) == 1  # only the 退订 confirmation


async def test_the_number_reaches_the_caller_even_when_the_sms_gateway_is_down_at_filing(
    hotline_client, redis, key_prefix, sms_gateway, clock
) -> None:
    csrf = await open_console(hotline_client, redis, key_prefix)
    sms_gateway.fail_next = 100  # the gateway answers 503 for now
    number = (await (await file(hotline_client, csrf)).json())["ticket"]["number"]
    outbox = hotline_client.server.app[OUTBOX]
    await outbox.run_once()
    assert sms_gateway.to(CALLER) == []
    sms_gateway.fail_next = 0  # back up; the retry is due after the backoff
    clock.advance(minutes=5)
    await outbox.run_once()
    (sms,) = sms_gateway.to(CALLER)
    assert sms.startswith(f"工单号{number}")


async def test_a_landline_caller_gets_no_sms_later_either(hotline_client, redis, key_prefix, sms_gateway) -> None:
    csrf = await open_console(hotline_client, redis, key_prefix)
    number = (await (await file(hotline_client, csrf, phone="023-8888 9999")).json())["ticket"]["number"]
    services = hotline_client.server.app[SERVICES]
    await resolve(services, number)  # 请评价 goes to the resident: not to a landline by SMS
    await hotline_client.server.app[OUTBOX].run_once()
    assert sms_gateway.requests == 0


async def test_a_landline_caller_is_told_the_number_by_the_operator(hotline_client, redis, key_prefix) -> None:
    csrf = await open_console(hotline_client, redis, key_prefix)
    body = await (await file(hotline_client, csrf, phone="023-8888 9999")).json()
    assert body["sms"] == "not_mobile"


async def test_bad_input_names_the_field(hotline_client, redis, key_prefix) -> None:
    csrf = await open_console(hotline_client, redis, key_prefix)
    for fields, field in (
        ({"phone": "12345"}, "phone"),
        ({"description": " "}, "description"),
        ({"category": "ufo"}, "category"),
    ):
        resp = await file(hotline_client, csrf, **fields)
        assert resp.status == 400
        assert (await resp.json())["field"] == field


async def test_lookup_by_phone_lists_called_in_and_texted_tickets(
    hotline_client, redis, key_prefix, sms_gateway
) -> None:
    texted = await report(Texter(hotline_client, sms_gateway, CALLER))
    csrf = await open_console(hotline_client, redis, key_prefix)
    called = (await (await file(hotline_client, csrf)).json())["ticket"]["number"]
    resp = await hotline_client.get("/admin/hotline/lookup", params={"phone": f"+86 {CALLER}"})
    assert resp.status == 200
    found = await resp.json()
    assert found["phone"] == "139****5678"
    assert [t["number"] for t in found["tickets"]] == sorted([texted, called], reverse=True)
    assert all(t["read_aloud"].startswith(f"工单 {t['number']}") for t in found["tickets"])
    services = hotline_client.server.app[SERVICES]
    (looked_up,) = await AuditLog(redis, services.keys).recent(action="hotline_lookup")
    assert looked_up.target == "139****5678"  # who looked whom up is in the audit log, masked
    resp = await hotline_client.get("/admin/hotline/lookup", params={"phone": "abc"})
    assert resp.status == 400 and (await resp.json())["field"] == "phone"
