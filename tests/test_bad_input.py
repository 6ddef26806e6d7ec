"""Bad input gets a clear answer and changes nothing."""

from __future__ import annotations

from redis.asyncio import Redis

from bot.keys import Keys
from tests.conftest import say


async def _state(redis: Redis, prefix: str) -> dict[str, str]:
    """Every key but the inbox (which keeps what residents sent) with a dump of its value."""
    keys = sorted([k async for k in redis.scan_iter(match=f"{prefix}*") if not k.endswith(":inbox")])
    return {k: await redis.dump(k) for k in keys}


async def test_empty_and_whitespace_messages(client, redis, key_prefix):
    before = await _state(redis, key_prefix)
    for text in ("", "   ", "\n\t"):
        replies = await say(client, "b1", text)
        assert "没有输入内容" in replies[0]
    assert await _state(redis, key_prefix) == before


async def test_message_over_2000_characters_is_politely_refused(client, redis, key_prefix):
    before = await _state(redis, key_prefix)
    replies = await say(client, "b2", "噪音" * 1001)
    assert "2002" in replies[0] and "2000" in replies[0]
    assert await _state(redis, key_prefix) == before
    # but what the resident sent is kept
    inbox = await redis.xrange(Keys(key_prefix).inbox())
    assert len(inbox) == 1 and inbox[0][1]["text"] == "噪音" * 1001


async def test_invalid_json_is_a_400_with_a_json_error(client):
    resp = await client.post("/webhooks/rest/webhook", data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == "invalid_json" and body["message"]


async def test_missing_or_wrong_fields_are_400_naming_the_field(client, redis, key_prefix):
    before = await _state(redis, key_prefix)
    for payload, field in (
        ({"message": "你好"}, "sender"),
        ({"sender": "b3"}, "message"),
        ({"sender": "", "message": "你好"}, "sender"),
        ({"sender": "b3", "message": 42}, "message"),
        (["sender", "message"], "object"),
    ):
        resp = await client.post("/webhooks/rest/webhook", json=payload)
        assert resp.status == 400, payload
        body = await resp.json()
        assert field in body["message"], body
    assert await _state(redis, key_prefix) == before


async def test_oversized_body_is_rejected(client):
    resp = await client.post("/webhooks/rest/webhook", json={"sender": "b4", "message": "x" * 70000})
    assert resp.status == 413


async def test_malformed_or_unknown_ticket_numbers_read_not_found(client):
    for text in ("WG20261124", "wg 20261124 9999", "WG209912319999", "WG2026112400012345", "查一下 WG2026"):
        replies = await say(client, "b5", text)
        assert replies[0].startswith("未找到该工单"), (text, replies)
