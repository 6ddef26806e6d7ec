"""The whole service with WeChat and WeCom configured against the fake API on loopback.

Real Redis (own key prefix), the injected clock, the embedded NLU; the outbox and timer loops
are off (interval 0) so each test runs a delivery round exactly when it means to.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.config import Config, load_config
from bot.outbox import OUTBOX, Outbox
from bot.wechat import WECHAT, WechatWiring
from flows import GridDirectory
from tests.conftest import TEST_REDIS_URL, Clock
from tests.fakes.wechat_api import CallbackSigner, FakeWeChatApi, message_xml, text_xml

MP_TOKEN = "mptoken123"
MP_AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
WECOM_TOKEN = "wecomtoken456"
WECOM_AES = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
ROBOT_TOKEN = "robottoken789"
ROBOT_AES = "robotAESkey0123456789abcdefghijklmnopqrstuv"
TEMPLATE_ID = "TPL-status-change"
LINK_SECRET = "link-secret-for-tests"
NUMBER = re.compile(r"WG\d{12}")
DIRECTORY = Path(__file__).resolve().parents[2] / "flows" / "directory" / "sample.yaml"


def task_form(query: str, **fields: str) -> aiohttp.FormData:
    """A task page's form: the signed link's query (u, e, s) and the fields the page posts."""
    form = aiohttp.FormData()
    for key, value in [kv.split("=", 1) for kv in query.split("&")]:
        form.add_field(key, value)
    for key, value in fields.items():
        form.add_field(key, value)
    return form


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChatApi]:
    robot_keys = tuple(g.robot_key for g in GridDirectory.load(DIRECTORY).grids if g.robot_key)
    api = FakeWeChatApi(robot_keys=robot_keys)
    await api.start()
    yield api
    await api.close()


@pytest.fixture
def wechat_env(tmp_path: Path, key_prefix: str, fake: FakeWeChatApi) -> dict[str, str]:
    return {
        "GRIDBOT_REDIS__URL": TEST_REDIS_URL,
        "GRIDBOT_REDIS__KEY_PREFIX": key_prefix,
        "GRIDBOT_TEMPLATES__OVERRIDE_DIR": str(tmp_path / "templates"),
        "GRIDBOT_FLOWS__TIMER_INTERVAL_SECONDS": "0",
        "GRIDBOT_OUTBOX__INTERVAL_SECONDS": "0",
        "GRIDBOT_SERVICE__LINK_SECRET": LINK_SECRET,
        "GRIDBOT_SERVICE__PUBLIC_URL": "https://grid.example.cn",
        "GRIDBOT_SERVICE__MEDIA_DIR": str(tmp_path / "media"),
        "GRIDBOT_WECHAT__TOKEN": MP_TOKEN,
        "GRIDBOT_WECHAT__ENCODING_AES_KEY": MP_AES,
        "GRIDBOT_WECHAT__APP_ID": fake.app_id,
        "GRIDBOT_WECHAT__APP_SECRET": fake.app_secret,
        "GRIDBOT_WECHAT__API_BASE": fake.base_url,
        "GRIDBOT_WECHAT__STATUS_TEMPLATE_ID": TEMPLATE_ID,
        "GRIDBOT_WECOM__CORP_ID": fake.corp_id,
        "GRIDBOT_WECOM__AGENT_ID": str(fake.agent_id),
        "GRIDBOT_WECOM__SECRET": fake.corp_secret,
        "GRIDBOT_WECOM__TOKEN": WECOM_TOKEN,
        "GRIDBOT_WECOM__ENCODING_AES_KEY": WECOM_AES,
        "GRIDBOT_WECOM__API_BASE": fake.base_url,
        "GRIDBOT_WECOM__DISPATCHER_USER_IDS": "Dispatcher01",
        "GRIDBOT_WECOM__ROBOT_TOKEN": ROBOT_TOKEN,
        "GRIDBOT_WECOM__ROBOT_ENCODING_AES_KEY": ROBOT_AES,
    }


@pytest.fixture
def wechat_config(wechat_env: dict[str, str]) -> Config:
    return load_config(env=wechat_env)


@dataclass
class Service:
    client: TestClient
    fake: FakeWeChatApi
    clock: Clock
    mp: CallbackSigner
    work: CallbackSigner
    robot: CallbackSigner

    @property
    def outbox(self) -> Outbox:
        return self.client.app[OUTBOX]

    @property
    def wiring(self) -> WechatWiring:
        return self.client.app[WECHAT]

    async def send(self, request) -> tuple[int, dict[str, str] | str]:
        resp = await self.client.request(request.method, request.url, data=request.body)
        body = await resp.read()
        if resp.status == 200 and body.startswith(b"<xml>"):
            signer = {s.path: s for s in (self.mp, self.work, self.robot)}[request.path]
            return resp.status, signer.open_reply(body)
        return resp.status, body.decode()

    async def resident(self, openid: str, text: str, msg_id: int) -> str:
        """One encrypted text from a follower; the passive reply's text ("" for `success`)."""
        status, reply = await self.send(self.mp.message(text_xml(openid, text, msg_id)))
        assert status == 200, reply
        return reply["Content"] if isinstance(reply, dict) else ""

    async def worker(self, user_id: str, text: str, msg_id: int) -> str:
        xml = message_xml(("ToUserName", self.fake.corp_id), ("FromUserName", user_id), ("CreateTime", 1764000000),
                          ("MsgType", "text"), ("Content", text), ("MsgId", msg_id), ("AgentID", self.fake.agent_id))
        status, reply = await self.send(self.work.message(xml))
        assert status == 200, reply
        return reply["Content"] if isinstance(reply, dict) else ""

    async def report(self, openid: str, first_id: int = 1000) -> str:
        """A follower reports garbage at 金桥小区 (grid 500199001001-01) and confirms: the number."""
        asked = await self.resident(openid, "金桥小区门口垃圾好几天没人清理了，臭得很", first_id)
        assert "手机号" in asked, asked
        summary = await self.resident(openid, "13812345678", first_id + 1)
        assert "确认" in summary, summary
        opened = await self.resident(openid, "确认", first_id + 2)
        found = NUMBER.search(opened)
        assert found, opened
        return found.group(0)

    async def escalated(self, openid: str, first_id: int = 1000) -> str:
        """`report`, its task card delivered, then escalated to 青枫街道 by the grid's worker (the
        street's task delivered too): the number."""
        number = await self.report(openid, first_id)
        await self.outbox.run_once()
        assert "已上报" in await self.worker("ZhangFang00", f"上报 {number} 需要街道协调", first_id + 5)
        await self.outbox.run_once()
        return number


@pytest.fixture
async def service(aiohttp_client, wechat_config: Config, clock: Clock, nlu, redis, fake: FakeWeChatApi) -> Service:
    client = await aiohttp_client(create_app(wechat_config, clock=clock, nlu=nlu))
    return Service(
        client=client,
        fake=fake,
        clock=clock,
        mp=CallbackSigner(MP_TOKEN, fake.app_id, MP_AES, path="/wechat/mp"),
        work=CallbackSigner(WECOM_TOKEN, fake.corp_id, WECOM_AES, path="/wechat/work"),
        robot=CallbackSigner(ROBOT_TOKEN, "", ROBOT_AES, path="/wechat/robot"),  # a robot's receive id is ""
    )
