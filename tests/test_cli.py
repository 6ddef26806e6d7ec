"""The command line a newcomer uses: `gridbot chat`, `gridbot serve`, `python -m bot`."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import TEST_REDIS_URL
from tests.fakes.sms_gateway import sms_gateway  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parent.parent
GRIDBOT = ROOT / ".venv" / "bin" / "gridbot"


def _env(key_prefix: str) -> dict[str, str]:
    return {**os.environ, "GRIDBOT_REDIS__URL": TEST_REDIS_URL, "GRIDBOT_REDIS__KEY_PREFIX": key_prefix}


def test_python_dash_m_bot_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0
    for command in ("serve", "chat", "nlu", "flows"):
        assert command in out.stdout


async def test_chat_in_the_terminal_reports_and_queries(redis, key_prefix):
    script = "楼下烧烤摊油烟太大\n幸福小区3栋\n跳过\n确认\n我的工单\n"
    out = subprocess.run(
        [str(GRIDBOT), "chat", "--sender", "tty-1"],
        input=script,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(key_prefix),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    numbers = re.findall(r"WG\d{12}", out.stdout)
    assert len(numbers) >= 2 and len(set(numbers)) == 1  # opened, then listed
    assert "环境污染" in out.stdout


def _wait_ready(url: str) -> None:
    for _ in range(1200):  # a cold start trains the NLU first; on a loaded machine that takes a while
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the service never became ready")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_serve_answers_on_the_given_port(redis, key_prefix):
    port = _free_port()
    proc = subprocess.Popen(
        [str(GRIDBOT), "serve", "--port", str(port)],
        cwd=ROOT,
        env=_env(key_prefix),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert f"http://127.0.0.1:{port}/" in proc.stdout.readline()  # it says where to chat
        _wait_ready(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_serve_stops_on_sigterm_after_traffic(redis, key_prefix):
    """Regression: a background loop that swallowed its cancel kept the process alive after SIGTERM."""
    import json

    port = _free_port()
    proc = subprocess.Popen(
        [str(GRIDBOT), "serve", "--port", str(port)],
        cwd=ROOT,
        env=_env(key_prefix),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url)
        for i in range(20):  # tickets, so the outbox and timer loops have work when the signal comes
            for text in ("小区门口垃圾好几天没人清理了", "阳光花园北门", "跳过", "确认"):
                body = json.dumps({"sender": f"sig{i}", "message": text}).encode()
                req = urllib.request.Request(
                    f"{url}/webhooks/rest/webhook", data=body, headers={"Content-Type": "application/json"}
                )
                urllib.request.urlopen(req, timeout=10).read()
        proc.terminate()
        assert proc.wait(timeout=15) is not None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_worker_delivers_what_a_web_process_queued_and_stops_on_sigterm(
    redis, key_prefix, config, nlu, sms_gateway  # noqa: F811
):
    """`gridbot worker` has no HTTP: it delivers the outbox and fires timers for web processes
    that run with both loops off."""
    from bot.app import build_services
    from bot.ticketing import ReportDraft
    from tests.fakes.sms_gateway import GATEWAY_SECRET

    services = await build_services(config, nlu=nlu)
    try:  # a hotline ticket: the caller's SMS is written to the outbox with it
        draft = ReportDraft(description="楼道灯坏了一周", category="public_facilities", phone="13812345678")
        ticket = await services.tickets.open("hotline", "13812345678", draft, services.clock(),
                                             acknowledge="notify/hotline_opened")
    finally:
        await services.close()
    env = {
        **_env(key_prefix),
        "GRIDBOT_SMS__GATEWAY_URL": sms_gateway.url,
        "GRIDBOT_SMS__GATEWAY_SECRET": GATEWAY_SECRET,
        "GRIDBOT_WECOM__API_BASE": "http://127.0.0.1:9",  # robots: refused at once, never the internet
    }
    proc = subprocess.Popen([str(GRIDBOT), "worker"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert "worker" in proc.stdout.readline()
        (sms,) = await sms_gateway.wait_for(1, phone="13812345678", timeout=20)
        assert sms.startswith(f"工单号{ticket.number}")
        proc.terminate()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
