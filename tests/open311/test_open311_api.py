"""Open311 GeoReport v2 end to end: services, POST a request, GET it back, watch it close."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from bot.app import SERVICES
from flows import Event

NEW = {
    "service_code": "sanitation",
    "description": "幸福小区3栋楼下垃圾三天没人收，联系电话13812345678",
    "address_string": "幸福小区3栋",
    "phone": "13812345678",
    "media_url": "https://example.org/photo.jpg",
}


async def post_request(client, api_key: str, fmt: str = "json", **fields: str):
    return await client.post(f"/open311/v2/requests.{fmt}", data={**NEW, "api_key": api_key, **fields})


async def test_services_are_our_categories(client) -> None:
    resp = await client.get("/open311/v2/services.json")
    assert resp.status == 200
    services = await resp.json()
    codes = {s["service_code"] for s in services}
    assert {"noise", "sanitation", "other"} <= codes
    noise = next(s for s in services if s["service_code"] == "noise")
    assert noise["service_name"] == "噪音扰民" and noise["metadata"] is False and noise["type"] == "realtime"

    resp = await client.get("/open311/v2/services.xml")
    assert resp.status == 200 and resp.content_type == "application/xml"
    assert ET.fromstring(await resp.read()).tag == "services"

    resp = await client.get("/open311/v2/services/noise.json")
    assert await resp.json() == {"service_code": "noise", "attributes": []}
    resp = await client.get("/open311/v2/services/nope.json")
    assert resp.status == 404
    assert (await resp.json())[0]["code"] == 404


async def test_round_trip_post_get_and_close(client, api_key: str, clock) -> None:
    resp = await post_request(client, api_key)
    assert resp.status == 200, await resp.text()
    (created,) = await resp.json()
    number = created["service_request_id"]
    assert number.startswith("WG20261124")

    resp = await client.get(f"/open311/v2/requests/{number}.json")
    (request,) = await resp.json()
    assert request["status"] == "open"
    assert request["service_code"] == "sanitation"
    assert request["address"] == "幸福小区3栋"
    assert request["media_url"] == "https://example.org/photo.jpg"
    assert request["expected_datetime"] is not None
    assert "13812345678" not in request["description"] and "138****5678" in request["description"]
    assert "phone" not in request and "email" not in request

    services = client.server.app[SERVICES]
    ticket = await services.tickets.store.get(number)
    assert ticket is not None and (ticket.channel, ticket.phone) == ("open311", "13812345678")
    now = clock()
    if ticket.status in {"received", "returned"}:
        await services.tickets.act(number, Event(kind="dispatch", actor="dispatcher", at=now, data=()))
    await services.tickets.act(number, Event(kind="accept", actor="worker", at=now, data=()))
    resp = await client.get(f"/open311/v2/requests/{number}.json")
    assert (await resp.json())[0]["status"] == "open"
    await services.tickets.act(number, Event(kind="resolve", actor="worker", at=now, data=(("note", "已清运"),)))
    await services.tickets.act(number, Event(kind="close", actor="dispatcher", at=now, data=()))

    resp = await client.get(f"/open311/v2/requests/{number}.xml")
    root = ET.fromstring(await resp.read())
    assert root.tag == "service_requests"
    assert root.find("request/status").text == "closed"  # type: ignore[union-attr]
    assert root.find("request/status_notes").text  # type: ignore[union-attr]

    resp = await client.get("/open311/v2/requests.json", params={"status": "closed"})
    assert [r["service_request_id"] for r in await resp.json()] == [number]
    resp = await client.get("/open311/v2/requests.json", params={"status": "open"})
    assert await resp.json() == []


async def test_search_filters(client, api_key: str, clock) -> None:
    first = (await (await post_request(client, api_key)).json())[0]["service_request_id"]
    clock.advance(hours=1)
    second = (await (await post_request(client, api_key, service_code="noise", description="工地夜间施工")).json())[0][
        "service_request_id"
    ]

    async def ids(**params: str) -> list[str]:
        resp = await client.get("/open311/v2/requests.json", params=params)
        assert resp.status == 200, await resp.text()
        return [r["service_request_id"] for r in await resp.json()]

    assert await ids() == [second, first]
    assert await ids(service_code="noise") == [second]
    assert await ids(service_request_id=f"{first},WG209901010001") == [first]
    assert await ids(start_date="2026-11-24T10:30:00+08:00") == [second]
    assert await ids(end_date="2026-11-24T10:30:00+08:00") == [first]
    resp = await client.get("/open311/v2/requests.json", params={"status": "pending"})
    assert resp.status == 400 and (await resp.json())[0]["code"] == 400


async def test_tickets_from_other_channels_are_not_published(client, api_key: str) -> None:
    from tests.conftest import say

    for text in ("幸福小区3栋楼下垃圾三天没人收了", "幸福小区3栋", "跳过", "确认"):
        replies = await say(client, "wx-resident", text)
    number = next(w for w in "".join(replies).replace("：", " ").split() if w.startswith("WG"))[:14]
    resp = await client.get(f"/open311/v2/requests/{number}.json")
    assert resp.status == 404
    assert await (await client.get("/open311/v2/requests.json")).json() == []


async def test_bad_requests_get_the_spec_errors(client, api_key: str) -> None:
    async def error(resp, status: int) -> str:
        assert resp.status == status, await resp.text()
        (body,) = await resp.json()
        assert body["code"] == status
        return body["description"]

    await error(await client.post("/open311/v2/requests.json", data=NEW), 403)
    await error(await post_request(client, "g311_not-a-real-key"), 403)
    assert "service_code" in await error(await post_request(client, api_key, service_code="ufo"), 400)
    assert "location" in await error(await post_request(client, api_key, address_string=""), 400)
    assert "description" in await error(await post_request(client, api_key, description="长" * 4001), 400)
    assert "phone" in await error(await post_request(client, api_key, phone="not-a-phone"), 400)
    resp = await client.get("/open311/v2/requests/WG209901010001.json")
    await error(resp, 404)

    entity = '<!DOCTYPE r [<!ENTITY x "y">]><service_request><api_key>k</api_key></service_request>'
    resp = await client.post(
        "/open311/v2/requests.xml", data=entity.encode(), headers={"Content-Type": "application/xml"}
    )
    assert resp.status == 400 and resp.content_type == "application/xml"
    assert ET.fromstring(await resp.read()).find("error/code").text == "400"  # type: ignore[union-attr]


async def test_xml_post_is_accepted(client, api_key: str) -> None:
    body = (
        f"<service_request><api_key>{api_key}</api_key><service_code>noise</service_code>"
        "<description>广场舞音响太吵</description><lat>29.60</lat><long>106.50</long></service_request>"
    )
    resp = await client.post("/open311/v2/requests.xml", data=body.encode(), headers={"Content-Type": "text/xml"})
    assert resp.status == 200, await resp.text()
    root = ET.fromstring(await resp.read())
    assert root.find("request/service_request_id").text.startswith("WG")  # type: ignore[union-attr]
