"""End to end through HTTP: a resident reports, gets a number, asks where it stands, withdraws."""

from __future__ import annotations

import asyncio
import re

from redis.asyncio import Redis

from bot.keys import Keys
from tests.conftest import say

NUMBER = re.compile(r"WG\d{8}\d{4}")


async def report(client, sender: str, description: str, location: str, phone: str = "跳过") -> str:
    """Walk the whole report dialogue; returns the ticket number from the final reply."""
    first = await say(client, sender, description)
    assert "地点" in first[0], first
    asked_phone = await say(client, sender, location)
    assert "手机号" in asked_phone[0], asked_phone
    summary = await say(client, sender, phone)
    assert "回复“确认”提交" in summary[0], summary
    opened = await say(client, sender, "确认")
    found = NUMBER.search(opened[0])
    assert found, opened
    return found.group(0)


async def test_bbq_smoke_report_ends_with_a_numbered_ticket(client, clock):
    first = await say(client, "r1", "楼下烧烤摊油烟太大，熏得窗户都不敢开")
    assert "环境污染" in first[0]
    assert "地点" in first[0]
    second = await say(client, "r1", "幸福小区3栋")
    assert "幸福小区3栋" in second[0] and "手机号" in second[0]
    summary = await say(client, "r1", "13812345678")
    assert "138****5678" in summary[0]
    assert "13812345678" not in summary[0]
    opened = await say(client, "r1", "确认")
    text = opened[0]
    number = NUMBER.search(text).group(0)
    assert number.startswith("WG20261124")
    assert "环境污染" in text
    assert "红色" in text or "橙色" in text or "黄色" in text
    assert "前处理" in text  # the expected deadline, in words


async def test_address_in_first_message_is_not_asked_again(client):
    first = await say(client, "r2", "幸福小区5栋楼道里的灯坏了好几天了，晚上黑漆漆的")
    assert "手机号" in first[0], first  # location came with the report: the next question is the phone


async def test_status_query_lists_own_tickets_with_level_and_deadline(client):
    number = await report(client, "r3", "小区门口垃圾好几天没人清理了，臭得很", "阳光花园北门")
    listing = await say(client, "r3", "我的工单")
    assert number in listing[0]
    assert "办理" in listing[0] and "时限" in listing[0]
    detail = await say(client, "r3", number.lower())
    assert number in detail[0]
    assert "当前承办" in detail[0] and "办理时限" in detail[0]


async def test_another_sender_cannot_read_a_ticket_by_number(client):
    number = await report(client, "owner", "小区门口垃圾好几天没人清理了，臭得很", "阳光花园北门", "13912345678")
    stranger = await say(client, "stranger", number)
    assert stranger[0].startswith("未找到该工单")
    assert number not in stranger[0] and "垃圾" not in stranger[0] and "5678" not in stranger[0]
    # a number that exists for nobody reads exactly the same
    assert (await say(client, "stranger", "WG202611249999")) == stranger
    assert (await say(client, "stranger", "我的工单"))[0] != stranger[0]


async def test_withdraw_own_ticket(client):
    number = await report(client, "r4", "楼上装修电钻从早响到晚，周末也不停", "幸福小区2栋")
    done = await say(client, "r4", f"撤回 {number}")
    assert number in done[0] and "已撤回" in done[0]
    detail = await say(client, "r4", number)
    assert "已撤回" in detail[0]
    again = await say(client, "r4", f"撤回 {number}")
    assert "不能撤回" in again[0]


async def test_withdraw_without_number_offers_a_choice(client):
    number = await report(client, "r5", "路灯坏了一个多月了没人修", "幸福小区南门")
    choose = await say(client, "r5", "撤回")
    assert number in choose[0]
    done = await say(client, "r5", "1")
    assert "已撤回" in done[0]


async def test_stranger_cannot_withdraw_someone_elses_ticket(client):
    number = await report(client, "r6", "路灯坏了一个多月了没人修", "幸福小区南门")
    attempt = await say(client, "intruder", f"撤回 {number}")
    assert attempt[0].startswith("未找到该工单")
    assert "已撤回" not in (await say(client, "r6", number))[0]


async def test_cancel_drops_the_draft(client, redis: Redis, key_prefix: str):
    await say(client, "r7", "小区门口垃圾好几天没人清理了")
    cancelled = await say(client, "r7", "取消")
    assert "已取消" in cancelled[0]
    assert await redis.exists(Keys(key_prefix).conversation("rest", "r7")) == 0
    assert "还没有提交过工单" in (await say(client, "r7", "我的工单"))[0]


async def test_status_query_mid_report_keeps_the_draft(client):
    await say(client, "r8", "小区门口垃圾好几天没人清理了")
    await say(client, "r8", "我的工单")
    asked_phone = await say(client, "r8", "阳光花园北门")
    assert "手机号" in asked_phone[0]


async def test_greeting_thanks_help_and_nonsense_get_helpful_answers(client):
    assert "网格服务小助手" in (await say(client, "r9", "你好"))[0]
    assert "不客气" in (await say(client, "r9", "谢谢"))[0]
    helped = (await say(client, "r9", "帮助"))[0]
    assert "我的工单" in helped and "撤回" in helped
    lost = (await say(client, "r9", "asdfgh qwerty"))[0]
    assert "我的工单" in lost


async def test_conversation_state_expires_after_the_configured_ttl(client, redis: Redis, key_prefix: str):
    await say(client, "r10", "小区门口垃圾好几天没人清理了")
    ttl = await redis.ttl(Keys(key_prefix).conversation("rest", "r10"))
    assert 1700 < ttl <= 1800


async def test_two_confirmations_at_once_open_one_ticket(client, redis: Redis, key_prefix: str):
    """The per-conversation lock: two messages of one person are handled one after the other."""
    await say(client, "r11", "小区门口垃圾好几天没人清理了")
    await say(client, "r11", "阳光花园北门")
    await say(client, "r11", "跳过")
    first, second = await asyncio.gather(say(client, "r11", "确认"), say(client, "r11", "确认"))
    numbers = NUMBER.findall(first[0] + second[0])
    assert len(numbers) == 1, (first, second)
    assert await redis.zcard(Keys(key_prefix).tickets_by_reporter("rest", "r11")) == 1


async def test_emergency_is_answered_with_the_number_to_call_and_a_red_ticket(client, redis, key_prefix):
    replies = await say(client, "r12", "楼下着火了，好大的烟，快来人")
    text = replies[0]
    assert "119" in text
    number = NUMBER.search(text).group(0)
    assert "红色" in (await say(client, "r12", number))[0]
    outbox = await redis.xrange(Keys(key_prefix).outbox())
    assert any(f["template"] == "notify/emergency_alert" and f["ticket"] == number for _, f in outbox)
