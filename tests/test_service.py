"""Operational surface: idempotency, health, readiness, metrics, configuration, logs."""

from __future__ import annotations

import json
import logging
import re

import pytest
from redis.asyncio import Redis

from bot.config import ConfigError, load_config
from bot.keys import Keys
from bot.logs import JsonFormatter, log_event, mask_phone
from tests.conftest import say

NUMBER = re.compile(r"WG\d{12}")


async def test_a_repeated_provider_message_id_opens_one_ticket(client, redis: Redis, key_prefix: str):
    await say(client, "i1", "小区门口垃圾好几天没人清理了", message_id="m1")
    await say(client, "i1", "阳光花园北门", message_id="m2")
    await say(client, "i1", "跳过", message_id="m3")
    first = await say(client, "i1", "确认", message_id="m4")
    retries = [await say(client, "i1", "确认", message_id="m4") for _ in range(3)]
    assert all(r == first for r in retries)  # the same answer, replayed
    assert len(NUMBER.findall(first[0])) == 1
    assert await redis.zcard(Keys(key_prefix).tickets_by_reporter("rest", "i1")) == 1
    # a retry of an earlier step does not rewind the conversation either
    assert await say(client, "i1", "小区门口垃圾好几天没人清理了", message_id="m1") != []
    assert await redis.exists(Keys(key_prefix).conversation("rest", "i1")) == 0


async def test_healthz_and_readyz(client):
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["checks"] == {"redis": True, "flow": True, "nlu": True}


async def test_readyz_is_503_when_redis_is_unreachable(aiohttp_client, config, clock, nlu):
    from bot.app import create_app

    broken = config.replace(redis=config.redis.__class__(url="redis://127.0.0.1:1/0", key_prefix="x:"))
    client = await aiohttp_client(create_app(broken, clock=clock, nlu=nlu))
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["checks"]["redis"] is False


async def test_metrics_count_messages_tickets_and_latency(client):
    await say(client, "p1", "你好")
    await say(client, "p1", "楼下着火了，好大的烟")
    text = await (await client.get("/metrics")).text()
    assert re.search(r'gridbot_messages_total\{channel="rest",intent="greet"\} 1\.0', text)
    assert re.search(r'gridbot_tickets_opened_total\{category="\w+",channel="rest"\} 1\.0', text)
    assert 'gridbot_message_seconds_count{channel="rest"} 2.0' in text
    assert "gridbot_errors_total" in text


async def test_chat_page_is_served(client):
    resp = await client.get("/")
    assert resp.status == 200
    page = await resp.text()
    assert "/webhooks/rest/webhook" in page and "网格服务小助手" in page


def test_every_key_can_be_overridden_from_the_environment(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("redis:\n  url: redis://from-file:6379/0\ndialogue:\n  state_ttl_seconds: 60\n")
    config = load_config(
        cfg,
        env={
            "GRIDBOT_REDIS__URL": "redis://from-env:6379/3",
            "GRIDBOT_SERVICE__PORT": "9090",
            "GRIDBOT_WECHAT__TOKEN": "tok",
            "GRIDBOT_WECHAT__MAX_CLOCK_SKEW": "0",
        },
    )
    assert config.redis.url == "redis://from-env:6379/3"
    assert config.service.port == 9090
    assert config.dialogue.state_ttl_seconds == 60
    assert config.wechat.token == "tok" and config.wechat.max_clock_skew == 0


def test_secrets_in_the_config_file_are_refused(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("wechat:\n  app_secret: s3cret\n")
    with pytest.raises(ConfigError, match="GRIDBOT_WECHAT__APP_SECRET"):
        load_config(cfg, env={})


def test_bad_config_values_name_the_key(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("service:\n  port: eighty\n")
    with pytest.raises(ConfigError, match=r"service\.port"):
        load_config(cfg, env={})
    cfg.write_text("servce:\n  port: 80\n")
    with pytest.raises(ConfigError, match="servce"):
        load_config(cfg, env={})
    with pytest.raises(ConfigError, match="GRIDBOT_DIALOGUE__LOW_CONFIDENCE"):
        load_config(tmp_path / "absent.yaml", env={"GRIDBOT_DIALOGUE__LOW_CONFIDENCE": "high"})


def test_a_reply_budget_wechat_would_not_wait_for_is_refused_when_loading(tmp_path):
    with pytest.raises(ConfigError, match=r"GRIDBOT_WECHAT__REPLY_BUDGET_SECONDS: must be between 0 and 5"):
        load_config(tmp_path / "absent.yaml", env={"GRIDBOT_WECHAT__REPLY_BUDGET_SECONDS": "9"})
    cfg = tmp_path / "config.yaml"
    cfg.write_text("wechat:\n  reply_budget_seconds: 0\n")
    with pytest.raises(ConfigError, match=r"wechat\.reply_budget_seconds: must be between"):
        load_config(cfg, env={})
    assert load_config(tmp_path / "absent.yaml", env={}).wechat.reply_budget_seconds == 3.0


def test_phone_numbers_are_masked_in_log_lines():
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "ticket for 13812345678", None, None)
    record.fields = {"phone": "+86 139-1234-5678", "note": "call 15012345678 or 010-12345678"}
    line = json.loads(JsonFormatter().format(record))
    assert line["event"] == "ticket for 138****5678"
    assert line["phone"] == "139****5678"
    assert "15012345678" not in line["note"] and "150****5678" in line["note"]
    assert mask_phone("订单号 2026112213812345678") == "订单号 2026112213812345678"  # not a phone inside digits


def test_landlines_are_masked_but_ticket_numbers_and_decimals_are_not():
    assert mask_phone("物业 023-68881234，家里 02368881234") == "物业 023-****1234，家里 0236****1234"
    assert mask_phone("(023)68881234 / 023-6888-1234 / 023 6888 1234") == "(023)****1234 / 023-****1234 / 023 ****1234"
    assert mask_phone("工单 WG202611220001 位置 29.0123456789") == "工单 WG202611220001 位置 29.0123456789"


async def test_service_logs_mask_the_reporters_phone(client, caplog):
    caplog.set_level(logging.INFO, logger="gridbot")
    formatter = JsonFormatter()
    await say(client, "l1", "小区门口垃圾好几天没人清理了，电话13812345678")
    await say(client, "l1", "阳光花园北门")
    await say(client, "l1", "确认")
    lines = [formatter.format(r) for r in caplog.records]
    assert any('"ticket_opened"' in line for line in lines)
    assert all("13812345678" not in line for line in lines)
    assert any("138****5678" in line for line in lines)


def test_log_event_writes_one_json_line(capsys):
    from bot.logs import setup_logging

    setup_logging("INFO")
    log_event(logging.getLogger("gridbot.test"), "hello", user="u1")
    err = capsys.readouterr().err.strip().splitlines()
    assert json.loads(err[-1])["event"] == "hello"
